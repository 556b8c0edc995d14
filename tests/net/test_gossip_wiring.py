"""Gossip's wiring: the node's DecodedTxCache when given one, head announcements and the
report of refused messages (no network)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from libp2p.peer.id import ID

from p2pmkt.chain.block import build_block, signed_header
from p2pmkt.chain.tx import DecodedTxCache, decode_tx, make_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.gossip import encode_bundle
from p2pmkt.net import Gossip, GossipConfig
from p2pmkt.types import ZERO_HASH

CHAIN = "c1"
KEY = PrivateKey.from_seed("alice")


class _FakePubsub:
    """Just enough of py-libp2p's Pubsub for Gossip's constructor."""

    def __init__(self) -> None:
        self.host = SimpleNamespace(get_id=lambda: ID(b"self"))
        self.validators: dict[str, Any] = {}

    def set_topic_validator(self, topic: str, validator: Any, is_async: bool) -> None:
        self.validators[topic] = validator


def _msg(data: bytes) -> Any:
    return SimpleNamespace(data=data, from_id=b"peer", seqno=b"\x00")


def test_without_a_cache_gossip_decodes_afresh() -> None:
    gossip = Gossip(_FakePubsub(), CHAIN, GossipConfig(), None)
    assert gossip.tx_validator.decode is decode_tx


def test_with_a_cache_bundles_fill_it_and_rechecks_reuse_it() -> None:
    cache = DecodedTxCache()
    gossip = Gossip(_FakePubsub(), CHAIN, GossipConfig(), None, tx_cache=cache)
    stxs = [make_tx(KEY, CHAIN, n, "visit.batch", {"n": n}) for n in range(2)]
    bundle = encode_bundle([t.encode() for t in stxs])
    assert gossip.tx_validator.check(bundle, now=0).txs == tuple(stxs)
    assert len(cache) == 2 and cache.hits == 0
    assert gossip._recheck(_msg(bundle), is_tx=True) == tuple(stxs)
    assert cache.hits == 2


def test_heads_validate_and_recheck_to_the_blocks_signed_header() -> None:
    gossip = Gossip(_FakePubsub(), CHAIN, GossipConfig(), None)
    block = build_block(PrivateKey.from_seed("v1"), chain=CHAIN, height=1, parent=ZERO_HASH,
                        state=ZERO_HASH, time=1, txs=[make_tx(KEY, CHAIN, 0, "visit.batch", {"n": 0})])
    data = signed_header(block).encode()
    assert gossip.head_validator.check(data, now=0).head == signed_header(block)
    assert gossip._recheck(_msg(data), is_tx=False) == signed_header(block)
    assert gossip._recheck(_msg(block.encode()), is_tx=False) is None  # a whole block is no head


async def test_every_refused_message_is_reported_with_its_reason_and_duplicates_are_not() -> None:
    """The node counts these in p2pmkt_rejected{where="gossip"} (node.run_node wires it)."""

    class Outsiders:
        def is_member(self, peer: str) -> bool:
            return peer != ID(b"outsider").to_base58()

    reasons: list[str] = []
    ps = _FakePubsub()
    Gossip(ps, CHAIN, GossipConfig(), Outsiders(), on_reject=reasons.append)  # type: ignore[arg-type]
    tx_check, head_check = ps.validators[f"p2pmkt/{CHAIN}/txs/1"], ps.validators[f"p2pmkt/{CHAIN}/heads/1"]
    good = encode_bundle([make_tx(KEY, CHAIN, 0, "visit.batch", {"n": 0}).encode()])
    other_chain = encode_bundle([make_tx(KEY, "c2", 0, "visit.batch", {"n": 0}).encode()])
    peer = ID(b"peer")
    assert tx_check(peer, _msg(good)) is True
    assert tx_check(peer, _msg(good)) is False  # a duplicate: not forwarded, not a refusal
    assert tx_check(peer, _msg(b"\xff junk")) is False
    assert tx_check(peer, _msg(other_chain)) is False
    assert head_check(peer, _msg(b"\xa0")) is False
    assert tx_check(ID(b"outsider"), _msg(good)) is False
    assert len(reasons) == 4 and reasons[-1] == "not_member", reasons
    assert "wrong_chain" in reasons, reasons


async def test_heads_signed_by_anyone_but_the_given_proposers_are_refused() -> None:
    voter, other = PrivateKey.from_seed("v1"), PrivateKey.from_seed("member-not-validator")
    reasons: list[str] = []
    ps = _FakePubsub()
    Gossip(ps, CHAIN, GossipConfig(), None, on_reject=reasons.append,
           proposers=lambda: {bytes(voter.address)})
    head_check = ps.validators[f"p2pmkt/{CHAIN}/heads/1"]

    def head(key: PrivateKey, height: int) -> bytes:
        return signed_header(build_block(key, chain=CHAIN, height=height, parent=ZERO_HASH,
                                         state=ZERO_HASH, time=1, txs=[])).encode()

    assert head_check(ID(b"peer"), _msg(head(voter, 1))) is True
    assert head_check(ID(b"peer"), _msg(head(other, 10**9))) is False
    assert reasons == ["not_validator"]
