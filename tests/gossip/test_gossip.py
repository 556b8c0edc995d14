"""Pure gossip rules: bundles, seen-cache, validators (no network)."""

from __future__ import annotations

import pytest

from p2pmkt.chain.block import build_block, signed_header
from p2pmkt.chain.tx import make_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.errors import DecodeError
from p2pmkt.gossip import (
    ACCEPT,
    DUPLICATE,
    HeadValidator,
    Reject,
    SeenCache,
    TxBundleValidator,
    decode_bundle,
    encode_bundle,
    head_topic,
    tx_topic,
)
from p2pmkt.types import ZERO_HASH
from p2pmkt.wire.cbor import encode

CHAIN = "c1"
KEY = PrivateKey.from_seed("alice")


def tx(nonce: int, chain: str = CHAIN) -> bytes:
    return make_tx(KEY, chain, nonce, "visit.batch", {"n": nonce}).encode()


def test_topics_carry_chain_id() -> None:
    assert tx_topic("x") == "p2pmkt/x/txs/1"
    assert head_topic("x") == "p2pmkt/x/heads/1"


def test_bundle_round_trip() -> None:
    txs = [tx(0), tx(1)]
    assert decode_bundle(encode_bundle(txs)) == txs


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (encode({"txs": []}), r"^a bundle holds at least one transaction$"),
        (encode({"tx": [b"x"]}), r'^a bundle is a map \{"txs": \[bytes, \.\.\.\]\}$'),
        (encode({"txs": ["x"]}), r'^"txs" of a bundle must be a list of byte strings$'),
        (b"\xff", r"^malformed CBOR"),
    ],
)
def test_bundle_rejects_bad_shapes(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_bundle(data)


def test_bundle_limits() -> None:
    with pytest.raises(DecodeError, match=r"^bundle holds 3 transactions; the limit is 2$"):
        decode_bundle(encode_bundle([tx(0), tx(1), tx(2)]), max_txs=2)
    with pytest.raises(ValueError):
        encode_bundle([])


def test_seen_cache_expires_and_bounds() -> None:
    seen = SeenCache(ttl=10, max_entries=2)
    assert seen.add(b"a", now=0)
    assert not seen.add(b"a", now=5)
    assert seen.seen(b"a", now=9.9)
    assert not seen.seen(b"a", now=10)
    seen.add(b"b", 20)
    seen.add(b"c", 20)
    seen.add(b"d", 20)
    assert len(seen) == 2 and not seen.seen(b"b", 20)


def test_tx_validator_accepts_then_ignores_duplicates() -> None:
    v = TxBundleValidator(CHAIN)
    data = encode_bundle([tx(0), tx(1)])
    first = v.check(data, now=0)
    assert first.verdict == ACCEPT and len(first.txs) == 2
    assert v.check(data, now=1).verdict == DUPLICATE
    partly = v.check(encode_bundle([tx(1), tx(2)]), now=2)
    assert partly.verdict == ACCEPT and [t.tx.nonce for t in partly.txs] == [2]


def test_tx_validator_rejects() -> None:
    v = TxBundleValidator(CHAIN, max_bundle_bytes=4096)
    wrong_chain = v.check(encode_bundle([tx(0, chain="other")]), now=0).verdict
    assert isinstance(wrong_chain, Reject) and wrong_chain.reason == "wrong_chain"
    stx = make_tx(KEY, CHAIN, 5, "k", {})
    forged = encode({"body": stx.body, "sig": PrivateKey.from_seed("eve").sign_digest(b"\x01" * 32)})
    bad_sig = v.check(encode_bundle([forged]), now=0).verdict
    assert isinstance(bad_sig, Reject) and bad_sig.reason == "bad_signature"
    assert v.check(b"\x00" * 5000, now=0).verdict == Reject("oversized", "bundle of 5000 bytes")
    garbage = v.check(b"\xa1", now=0).verdict
    assert isinstance(garbage, Reject) and garbage.reason == "decode"


def test_head_validator() -> None:
    proposer = PrivateKey.from_seed("v1")
    block = build_block(proposer, chain=CHAIN, height=1, parent=ZERO_HASH, state=ZERO_HASH,
                        time=1, txs=[make_tx(KEY, CHAIN, 0, "visit.batch", {"n": 0})])
    v = HeadValidator(CHAIN, proposers=lambda: {proposer.address})
    ok = v.check(signed_header(block).encode(), now=0)
    assert ok.verdict == ACCEPT and ok.head == signed_header(block)
    assert (ok.head.hash, ok.head.height) == (block.hash, 1)
    assert v.check(signed_header(block).encode(), now=1).verdict == DUPLICATE
    outsider = build_block(PrivateKey.from_seed("x"), chain=CHAIN, height=1, parent=ZERO_HASH,
                           state=ZERO_HASH, time=1, txs=[])
    verdict = v.check(signed_header(outsider).encode(), now=0).verdict
    assert isinstance(verdict, Reject) and verdict.reason == "not_validator"
    other = build_block(proposer, chain="c2", height=1, parent=ZERO_HASH, state=ZERO_HASH,
                        time=1, txs=[])
    verdict = v.check(signed_header(other).encode(), now=0).verdict
    assert isinstance(verdict, Reject) and verdict.reason == "wrong_chain"
    # Block 1's signature on block 2's header.
    block2 = build_block(proposer, chain=CHAIN, height=2, parent=block.hash, state=ZERO_HASH,
                         time=2, txs=[])
    verdict = v.check(encode({"header": block2.header_bytes, "sig": block.sig}), now=0).verdict
    assert isinstance(verdict, Reject) and verdict.reason == "invalid_block"
    # A whole block is not an announcement; nor is anything oversized.
    verdict = v.check(block.encode(), now=0).verdict
    assert isinstance(verdict, Reject) and verdict.reason == "decode"
    verdict = v.check(b"\xa0" * 5000, now=0).verdict
    assert isinstance(verdict, Reject) and verdict.reason == "oversized"
