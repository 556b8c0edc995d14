"""Stateless validation of transaction and block bytes (what gossip runs before forwarding)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.chain.block import build_block
from p2pmkt.chain.tx import make_tx
from p2pmkt.chain.validation import validate_block_bytes, validate_tx_bytes
from p2pmkt.errors import (
    DecodeError,
    InvalidBlock,
    InvalidSignature,
    InvalidTransaction,
    RemoteError,
    UnknownKind,
)
from p2pmkt.testing.builders import visit
from p2pmkt.testing.keys import dev_genesis, dev_key
from p2pmkt.types import ZERO_HASH
from p2pmkt.wire.cbor import encode

GENESIS = dev_genesis()
GOOD_TX = make_tx(dev_key("terminal"), GENESIS.chain_id, 0, "visit.batch", {"visits": [visit()] * 3})
GOOD_BLOCK = build_block(dev_key("validator"), chain=GENESIS.chain_id, height=1, parent=ZERO_HASH,
                         state=ZERO_HASH, time=GENESIS.genesis_time + 1, txs=[GOOD_TX])


def test_good_bytes_pass() -> None:
    assert validate_tx_bytes(GOOD_TX.encode(), GENESIS).txid == GOOD_TX.txid
    assert validate_block_bytes(GOOD_BLOCK.encode(), GENESIS).hash == GOOD_BLOCK.hash


def test_foreign_chain_tx() -> None:
    t = make_tx(dev_key("terminal"), "p2pmkt-prod", 0, "visit.batch", {"visits": [visit()]})
    with pytest.raises(InvalidTransaction, match=r"^transaction is for chain 'p2pmkt-prod', this node runs 'p2pmkt-dev'$") as info:
        validate_tx_bytes(t.encode(), GENESIS)
    assert info.value.reason == "wrong_chain"


def test_signature_relabelled_for_another_chain_never_verifies() -> None:
    """Re-labelling a tx's chain invalidates the signature (chain id is in the signed digest)."""
    foreign = make_tx(dev_key("terminal"), "p2pmkt-prod", 0, "visit.batch", {"visits": [visit()]})
    relabelled = make_tx(dev_key("acme-ops"), GENESIS.chain_id, 0, "visit.batch", {"visits": [visit()]})
    spliced = dataclasses.replace(relabelled, sig=foreign.sig)
    with pytest.raises(InvalidSignature):
        validate_tx_bytes(spliced.encode(), GENESIS)


def test_unknown_kind_and_bad_payload_are_caught_before_forwarding() -> None:
    with pytest.raises(UnknownKind):
        validate_tx_bytes(make_tx(dev_key("terminal"), GENESIS.chain_id, 0, "spam", {}).encode(), GENESIS)
    bad = make_tx(dev_key("terminal"), GENESIS.chain_id, 0, "visit.batch", {"visits": []})
    with pytest.raises(InvalidTransaction, match=r"^visit.batch: 'visits' must be a non-empty array of visits$"):
        validate_tx_bytes(bad.encode(), GENESIS)


def test_oversized_tx_bytes_are_refused_before_decoding() -> None:
    with pytest.raises(InvalidTransaction, match=r"^transaction is \d+ bytes; this chain accepts at most \d+$"):
        validate_tx_bytes(b"\x00" * (GENESIS.params.max_tx_bytes + 100), GENESIS)


def test_non_canonical_tx_is_refused() -> None:
    # Same map with keys in the wrong order: a valid CBOR map, not the canonical one.
    # ("sig" sorts before "body": shorter encodings first, RFC 8949 §4.2.1.)
    data = bytes([0xA2]) + encode("body") + encode(GOOD_TX.body) + encode("sig") + encode(GOOD_TX.sig)
    with pytest.raises(DecodeError, match=r"not in canonical form"):
        validate_tx_bytes(data, GENESIS)


def test_block_for_another_chain() -> None:
    other = dataclasses.replace(GENESIS, chain_id="other")
    with pytest.raises(InvalidBlock, match=r"^block is for chain 'p2pmkt-dev', this node runs 'other'$"):
        validate_block_bytes(GOOD_BLOCK.encode(), other)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_tx_bytes_never_crash(data: st.DataObject) -> None:
    """Random byte flips and truncations yield a typed RemoteError, never another exception."""
    raw = bytearray(GOOD_TX.encode())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    try:
        stx = validate_tx_bytes(bytes(raw), GENESIS)
    except RemoteError:
        return
    # A flip that still validates must not have changed what was signed.
    assert stx.body == GOOD_TX.body


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_block_bytes_never_crash(data: st.DataObject) -> None:
    raw = bytearray(GOOD_BLOCK.encode())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    try:
        block = validate_block_bytes(bytes(raw), GENESIS)
    except RemoteError:
        return
    assert block.header_bytes == GOOD_BLOCK.header_bytes


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(blob: bytes) -> None:
    for check in (validate_tx_bytes, validate_block_bytes):
        with pytest.raises(RemoteError):
            check(blob, GENESIS)
