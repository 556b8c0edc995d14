"""GossipSub topic names, one pair per chain id.

Topics carry the chain id so that two chains never share a mesh even when their nodes meet:
``p2pmkt/<chain>/txs/1`` carries transaction bundles (:mod:`p2pmkt.gossip.bundle`) and
``p2pmkt/<chain>/heads/1`` announces committed blocks by their signed headers
(``SignedHeader.encode()`` bytes, no transactions: those travel by Raft, and by block sync to a
node that lacks them). The trailing ``1`` is the message format version; a new format gets a
new topic. (A ``blocks/1`` topic of whole blocks existed before: every follower received each
block a second time by gossip, up to once per mesh peer, and used only its height.)
"""

from __future__ import annotations


def tx_topic(chain_id: str) -> str:
    """Topic of transaction bundles for ``chain_id``."""
    return f"p2pmkt/{chain_id}/txs/1"


def head_topic(chain_id: str) -> str:
    """Topic of committed blocks' signed headers for ``chain_id``."""
    return f"p2pmkt/{chain_id}/heads/1"
