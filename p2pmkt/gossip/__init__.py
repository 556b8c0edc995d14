"""p2pmkt.gossip: pure gossip rules (topics, bundles, validation verdicts, dedup).

GossipSub itself is py-libp2p's, wired in :mod:`p2pmkt.net.pubsub`; nothing here imports trio
or libp2p.
"""

from p2pmkt.gossip.bundle import decode_bundle, encode_bundle
from p2pmkt.gossip.seen import SeenCache
from p2pmkt.gossip.topics import head_topic, tx_topic
from p2pmkt.gossip.validate import (
    ACCEPT,
    DUPLICATE,
    Accept,
    BundleCheck,
    HeadCheck,
    HeadValidator,
    Ignore,
    Reject,
    TxBundleValidator,
    Verdict,
)

__all__ = [
    "ACCEPT",
    "DUPLICATE",
    "Accept",
    "BundleCheck",
    "HeadCheck",
    "HeadValidator",
    "Ignore",
    "Reject",
    "SeenCache",
    "TxBundleValidator",
    "Verdict",
    "decode_bundle",
    "encode_bundle",
    "head_topic",
    "tx_topic",
]
