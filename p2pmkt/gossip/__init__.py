"""p2pmkt.gossip: pure gossip rules (topics, bundles, validation verdicts, dedup).

GossipSub itself is py-libp2p's, wired in :mod:`p2pmkt.net.pubsub`; nothing here imports trio
or libp2p.
"""

from p2pmkt.gossip.bundle import decode_bundle, encode_bundle
from p2pmkt.gossip.seen import SeenCache
from p2pmkt.gossip.topics import block_topic, tx_topic
from p2pmkt.gossip.validate import (
    ACCEPT,
    DUPLICATE,
    Accept,
    BlockCheck,
    BlockValidator,
    BundleCheck,
    Ignore,
    Reject,
    TxBundleValidator,
    Verdict,
)

__all__ = [
    "ACCEPT",
    "DUPLICATE",
    "Accept",
    "BlockCheck",
    "BlockValidator",
    "BundleCheck",
    "Ignore",
    "Reject",
    "SeenCache",
    "TxBundleValidator",
    "Verdict",
    "block_topic",
    "decode_bundle",
    "encode_bundle",
    "tx_topic",
]
