"""GossipSub topic names, one pair per chain id.

Topics carry the chain id so that two chains never share a mesh even when their nodes meet:
``p2pmkt/<chain>/txs/1`` carries transaction bundles (:mod:`p2pmkt.gossip.bundle`) and
``p2pmkt/<chain>/blocks/1`` carries committed blocks (``Block.encode()`` bytes). The trailing
``1`` is the message format version; a new format gets a new topic.
"""

from __future__ import annotations


def tx_topic(chain_id: str) -> str:
    """Topic of transaction bundles for ``chain_id``."""
    return f"p2pmkt/{chain_id}/txs/1"


def block_topic(chain_id: str) -> str:
    """Topic of committed blocks for ``chain_id``."""
    return f"p2pmkt/{chain_id}/blocks/1"
