"""Reusing decoded transactions: DecodedTxCache and decode_block(known=...)."""

from __future__ import annotations

import dataclasses

import pytest

from p2pmkt.chain.block import build_block, decode_block
from p2pmkt.chain.tx import (
    ENTRY_COST_PER_WIRE_BYTE,
    DecodedTxCache,
    SignedTransaction,
    decode_tx,
    make_tx,
)
from p2pmkt.errors import DecodeError, InvalidBlock
from p2pmkt.testing.keys import dev_genesis, dev_key
from p2pmkt.types import ZERO_HASH

CHAIN = dev_genesis().chain_id


def _txs(n: int, start: int = 0) -> list[SignedTransaction]:
    key = dev_key("platform")
    return [
        make_tx(key, CHAIN, start + i, "rules.publish", {"merchant": "m", "rules": b"r%d" % i})
        for i in range(n)
    ]


def _block_bytes(txs: list[SignedTransaction]) -> bytes:
    return build_block(
        dev_key("platform"), chain=CHAIN, height=1, parent=ZERO_HASH, state=ZERO_HASH, time=1, txs=txs
    ).encode()


def test_cache_decodes_like_decode_tx_and_hands_out_the_same_object_for_the_same_bytes() -> None:
    cache = DecodedTxCache(8)
    raw = _txs(1)[0].encode()
    first = cache.decode(raw)
    assert first == decode_tx(raw)
    assert cache.decode(bytes(bytearray(raw))) is first  # equal bytes, another object
    assert cache.get(raw) is first
    assert (cache.hits, cache.misses) == (2, 1)


def test_cache_never_returns_a_transaction_for_other_bytes() -> None:
    cache = DecodedTxCache(8)
    a, b = (t.encode() for t in _txs(2))
    cache.decode(a)
    assert cache.get(b) is None
    assert cache.get(a[:-1]) is None
    assert cache.get(a + b"\x00") is None
    assert cache.decode(b) == decode_tx(b) != cache.decode(a)


def test_cache_still_applies_the_callers_size_limit_and_caches_no_failure() -> None:
    cache = DecodedTxCache(8)
    raw = _txs(1)[0].encode()
    cache.decode(raw)
    with pytest.raises(DecodeError):
        cache.decode(raw, max_size=len(raw) - 1)
    with pytest.raises(DecodeError):
        cache.decode(b"\xff" + raw)
    assert len(cache) == 1


def test_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    raws = [t.encode() for t in _txs(5)]
    cache = DecodedTxCache(3)
    for raw in raws[:3]:
        cache.decode(raw)
    cache.decode(raws[0])  # touch: raws[1] is now the oldest
    cache.decode(raws[3])
    assert len(cache) == 3
    assert raws[1] not in cache and raws[0] in cache and raws[3] in cache
    for raw in raws:
        cache.decode(raw)
    assert len(cache) == 3
    # The memory bound charges each entry ENTRY_COST_PER_WIRE_BYTE times its wire size.
    by_bytes = DecodedTxCache(100, max_bytes=2 * len(raws[0]) * ENTRY_COST_PER_WIRE_BYTE + 1)
    for raw in raws:
        by_bytes.decode(raw)
    assert len(by_bytes) == 2
    with pytest.raises(ValueError):
        DecodedTxCache(0)


def test_add_accepts_only_the_transaction_of_those_bytes() -> None:
    a, b = _txs(2)
    cache = DecodedTxCache(4)
    cache.add(a.encode(), a)
    assert cache.get(a.encode()) is a
    with pytest.raises(ValueError):
        cache.add(b.encode(), a)
    assert cache.get(b.encode()) is None


def test_decode_block_with_known_transactions_equals_decoding_without() -> None:
    txs = _txs(6)
    data = _block_bytes(txs)
    cache = DecodedTxCache(16)
    for t in txs[:4]:  # admission saw some of them
        cache.decode(t.encode())
    plain = decode_block(data)
    reused = decode_block(data, known=cache.get)
    assert reused == plain
    assert reused.encode() == plain.encode() == data
    assert reused.txroot_checked and reused.wire == data
    assert all(reused.txs[i] is cache.get(txs[i].encode()) for i in range(4))
    assert cache.hits >= 4


def test_decode_block_ignores_a_known_answer_for_other_bytes() -> None:
    txs = _txs(3)
    other = _txs(1, start=50)[0]
    data = _block_bytes(txs)
    block = decode_block(data, known=lambda raw: other)  # a buggy look-up
    assert block == decode_block(data)
    assert other not in block.txs


def test_decode_block_with_known_still_rejects_what_it_rejected() -> None:
    txs = _txs(2)
    good = build_block(
        dev_key("platform"), chain=CHAIN, height=1, parent=ZERO_HASH, state=ZERO_HASH, time=1, txs=txs
    )
    header = dataclasses.replace(good.header, txroot=ZERO_HASH)
    wrong_root = dataclasses.replace(good, header=header, header_bytes=header.encode())
    data = wrong_root.encode()
    cache = DecodedTxCache(4)
    for t in txs:
        cache.decode(t.encode())
    with pytest.raises(InvalidBlock) as plain:
        decode_block(data)
    with pytest.raises(InvalidBlock) as reused:
        decode_block(data, known=cache.get)
    assert str(reused.value) == str(plain.value)
