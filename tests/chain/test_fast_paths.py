"""The hot-path shortcuts of transactions and blocks change nothing a caller can observe."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import p2pmkt.chain.tx as txmod
from p2pmkt.chain._slots import slot_builder
from p2pmkt.chain.block import build_block, decode_block
from p2pmkt.chain.state import Receipt
from p2pmkt.chain.tx import (
    _VERIFIED,
    SignedTransaction,
    Transaction,
    decode_tx,
    make_tx,
    signing_digest_prefix,
    verify_tx,
    verify_txs,
)
from p2pmkt.crypto.signing import PURPOSE_TX, signing_digest
from p2pmkt.errors import DecodeError, InvalidSignature, InvalidTransaction
from p2pmkt.testing.keys import dev_genesis, dev_key
from p2pmkt.types import ZERO_HASH
from p2pmkt.wire.cbor import encode, encode_unchecked

CHAIN = dev_genesis().chain_id


def _tx(size: int) -> SignedTransaction:
    return make_tx(dev_key("platform"), CHAIN, 0, "rules.publish", {"merchant": "m", "rules": b"x" * size})


def _outcome(data: bytes, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(txmod, "_split_envelope", lambda data: None)
        try:
            stx = decode_tx(data)
        except (DecodeError, InvalidTransaction) as exc:
            return type(exc), str(exc)
        return stx


@pytest.mark.parametrize("size", [0, 10, 200, 70_000])  # body header of 1, 2, 3 and 5 bytes
def test_signed_tx_wire_form_is_the_canonical_encoding(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    stx = _tx(size)
    assert stx.encode() == encode({"body": stx.body, "sig": stx.sig})
    assert _outcome(stx.encode(), fast=True, monkeypatch=monkeypatch) == stx
    assert _outcome(stx.encode(), fast=False, monkeypatch=monkeypatch) == stx


@pytest.mark.parametrize(
    "data",
    [
        encode_unchecked({"body": b"\xa0", "sig": b"s" * 64}),  # short signature: general path
        b"\xa2\x64body\x41\xa0\x63sig\x58\x41" + b"s" * 65,  # keys out of canonical order
        b"\xa2\x63sig\x58\x41" + b"s" * 65 + b"\x64body\x58\x01\xa0",  # body length not shortest
        b"\xa2\x63sig\x58\x41" + b"s" * 65 + b"\x64body\x42\xa0",  # body length past the end
        b"\xa2\x63sig\x58\x41" + b"s" * 65 + b"\x64body",  # no body at all
        b"\xa2\x63sig\x58\x41" + b"s" * 65 + b"\x64body\x41\xa0\x00",  # trailing byte
    ],
)
def test_envelope_shortcut_decides_like_the_general_decoder(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _outcome(data, fast=True, monkeypatch=monkeypatch) == _outcome(data, fast=False, monkeypatch=monkeypatch)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_envelopes_decide_like_the_general_decoder(data: st.DataObject) -> None:
    raw = bytearray(_tx(data.draw(st.integers(0, 300))).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    with pytest.MonkeyPatch.context() as mp:
        assert _outcome(bytes(raw), fast=True, monkeypatch=mp) == _outcome(bytes(raw), fast=False, monkeypatch=mp)


def test_decoded_block_keeps_its_wire_bytes_and_replace_forgets_them() -> None:
    block = build_block(dev_key("platform"), chain=CHAIN, height=1, parent=ZERO_HASH, state=ZERO_HASH,
                        time=1, txs=[_tx(5), _tx(6)])
    raw = block.encode()
    assert raw == encode_unchecked({"header": block.header_bytes, "sig": block.sig,
                                    "txs": [t.encode() for t in block.txs]})
    decoded = decode_block(raw)
    assert decoded.wire is not None and decoded.encode() == raw and decoded.txroot_checked
    assert decoded == block
    tampered = dataclasses.replace(decoded, txs=decoded.txs[:1])
    assert tampered.wire is None and not tampered.txroot_checked
    assert tampered.encode() != raw


def test_slot_builder_builds_the_same_values_as_the_constructor() -> None:
    tx = Transaction(CHAIN, dev_key("platform").address, 3, "k", {"a": 1})
    assert slot_builder(Transaction)(*dataclasses.astuple(tx, tuple_factory=tuple)[:4], tx.payload) == tx
    built = slot_builder(Receipt)(b"t", "ok", "", "")
    assert built == Receipt(b"t", "ok") and hash(built) == hash(Receipt(b"t", "ok"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.status = "rejected"  # type: ignore[misc]
    with pytest.raises(TypeError, match="not a slotted dataclass"):
        slot_builder(int)


def test_block_signature_pre_pass_remembers_only_what_verify_tx_accepts() -> None:
    good = _tx(1)
    other = _tx(2)
    forged = dataclasses.replace(other, sig=good.sig)  # a valid signature, of another body
    foreign = make_tx(dev_key("platform"), "elsewhere", 0, "rules.publish", {"merchant": "m", "rules": b""})
    big = _tx(3000)
    _VERIFIED.clear()
    verify_txs([good, forged, foreign, big], CHAIN, max_bytes=1000)
    assert set(_VERIFIED) == {(CHAIN, good.txid, good.sig)}  # forged: refused; others: skipped
    with pytest.raises(InvalidSignature, match=r"^signature was made by 0x[0-9a-f]{40}, not by the sender"):
        verify_tx(forged, CHAIN)
    verify_tx(big, CHAIN)  # skipped above, still verified in its turn
    assert (CHAIN, big.txid, big.sig) in _VERIFIED


def _body_variant(data: st.DataObject) -> bytes:
    """A signed envelope around a body that may be wrong in any one field or encoding."""
    fields: dict[str, Any] = {
        "chain": CHAIN, "from": bytes(dev_key("platform").address), "nonce": 3,
        "kind": "rules.publish", "payload": {"merchant": "m", "rules": b"x"},
    }
    name = data.draw(st.sampled_from(["none", *fields]))
    if name != "none":
        fields[name] = data.draw(
            st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=25)
            | st.text(max_size=70) | st.floats(allow_nan=False) | st.lists(st.integers(), max_size=2)
            | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
        )
    if data.draw(st.booleans()):
        del fields[data.draw(st.sampled_from(sorted(fields)))]
    body = cbor2.dumps(fields, canonical=data.draw(st.booleans()))
    if data.draw(st.booleans()):
        raw = bytearray(body)
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        body = bytes(raw)
    return encode_unchecked({"body": body, "sig": b"s" * 65})


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_body_fast_path_decides_like_the_general_decoder(data: st.DataObject) -> None:
    raw = _body_variant(data)
    with pytest.MonkeyPatch.context() as mp:
        assert _outcome(raw, fast=True, monkeypatch=mp) == _outcome(raw, fast=False, monkeypatch=mp)


def test_signing_digest_prefix_matches_signing_digest() -> None:
    body = _tx(5).body
    for purpose in (PURPOSE_TX, "block"):
        prefix = signing_digest_prefix(CHAIN, purpose)
        assert hashlib.sha256(prefix + body).digest() == signing_digest(CHAIN, purpose, body)


def test_a_valid_transaction_takes_the_body_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    stx = _tx(10)

    def no_general_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("the general decoder ran")

    monkeypatch.setattr(txmod, "decode", no_general_decode)
    assert decode_tx(stx.encode()) == stx
