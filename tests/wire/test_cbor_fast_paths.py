"""The codec's fast paths accept and produce exactly what the strict paths do."""

from __future__ import annotations

import random
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.errors import DecodeError
from p2pmkt.wire import cbor
from p2pmkt.wire.cbor import decode, decode_text_uint_map, encode, encode_text_uint_map

scalars = (
    st.none() | st.booleans() | st.integers(-(2**64), 2**65) | st.binary(max_size=20)
    | st.text(max_size=12) | st.floats(allow_nan=False)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


def strict(data: bytes, depth: int = cbor.DEFAULT_MAX_DEPTH) -> Any:
    """What decode(canonical=True) returned before the fast path existed."""
    value = decode(data, max_depth=depth)
    if cbor2.dumps(value, canonical=True) != data:
        raise DecodeError("not canonical")
    return value


def _verdict(data: bytes, depth: int = cbor.DEFAULT_MAX_DEPTH) -> tuple[str, Any]:
    try:
        return "ok", strict(data, depth)
    except DecodeError:
        return "rejected", None


@settings(max_examples=300)
@given(values, st.randoms(use_true_random=False), st.integers(1, 6))
def test_fast_canonical_accept_agrees_with_the_strict_check(value: Any, rnd: random.Random, depth: int) -> None:
    # Both the canonical bytes and a plain encoding with shuffled keys (often non-canonical).
    def shuffled(v: Any) -> Any:
        if isinstance(v, dict):
            items = [(k, shuffled(x)) for k, x in v.items()]
            rnd.shuffle(items)
            return dict(items)
        if isinstance(v, list):
            return [shuffled(x) for x in v]
        return v

    for data in (cbor2.dumps(value, canonical=True), cbor2.dumps(shuffled(value))):
        fast = cbor._accept_canonical(data, depth)
        verdict, expected = _verdict(data, depth)
        if fast is not cbor._MISS:
            assert verdict == "ok" and fast == expected
        try:
            got = ("ok", decode(data, canonical=True, max_depth=depth))
        except DecodeError:
            got = ("rejected", None)
        assert got[0] == verdict and got[1] == expected


@settings(max_examples=200)
@given(values, st.data())
def test_fast_accept_never_accepts_a_mutation_the_strict_check_rejects(value: Any, data: st.DataObject) -> None:
    raw = bytearray(cbor2.dumps(value, canonical=True))
    if raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    fast = cbor._accept_canonical(bytes(raw), cbor.DEFAULT_MAX_DEPTH)
    if fast is not cbor._MISS:
        assert _verdict(bytes(raw)) == ("ok", fast)


@pytest.mark.parametrize(
    "data",
    [
        b"\x18\x05",  # 5 in two bytes
        b"\xa2\x61b\x01\x61a\x02",  # keys out of order
        b"\xa2\x62aa\x01\x61b\x02",  # longer key first
        b"\x01\x02",  # trailing bytes
        b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00",  # float
        b"\xc2\x49\x01\x00\x00\x00\x00\x00\x00\x00\x00",  # bignum 2**64: outside the subset
        b"\x3b\x80\x00\x00\x00\x00\x00\x00\x00",  # -2**63 - 1: outside the subset
    ],
)
def test_fast_accept_leaves_every_rejection_to_the_strict_path(data: bytes) -> None:
    assert cbor._accept_canonical(data, cbor.DEFAULT_MAX_DEPTH) is cbor._MISS


@pytest.mark.parametrize("value", [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1])
@pytest.mark.parametrize("key", ["nonce", "visits", "é"])
def test_uint_map_helpers_match_the_general_codec(key: str, value: int) -> None:
    data = encode_text_uint_map(key, value)
    assert data == encode({key: value})
    assert decode_text_uint_map(data, key) == value


def test_uint_map_decoder_falls_back_to_the_general_decoder() -> None:
    assert decode_text_uint_map(b"\xa1\x65nonce\x18\x05", "nonce") == 5  # non-shortest: still read
    with pytest.raises(KeyError):
        decode_text_uint_map(encode({"visits": 1}), "nonce")
    with pytest.raises(DecodeError):
        decode_text_uint_map(b"\xa1\x65nonce", "nonce")
    with pytest.raises(TypeError):
        encode_text_uint_map("nonce", -1)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize(
    "value",
    [
        [[1, "a"], [b"x", None, True]],  # a visit batch's shape: a list of flat lists
        [[1, [2]], []],  # a list nested one level below the inlined one
        [[{"a": 1}], [[-(2**63)]]],
        [[2**64 - 1, -(2**63)], ["é"]],
    ],
)
def test_fast_walk_of_lists_of_lists_keeps_the_depth_limit(value: Any, depth: int) -> None:
    data = cbor2.dumps(value, canonical=True)
    fast = cbor._accept_canonical(data, depth)
    verdict, expected = _verdict(data, depth)
    assert (verdict, expected) == (("rejected", None) if fast is cbor._MISS else ("ok", fast))


@pytest.mark.parametrize("leaf", [1.5, 2**64, -(2**63) - 1, cbor2.CBORTag(99, 1)])
def test_fast_walk_of_lists_of_lists_refuses_values_outside_the_subset(leaf: Any) -> None:
    data = cbor2.dumps([["ip", leaf]], canonical=True)
    assert cbor._accept_canonical(data, cbor.DEFAULT_MAX_DEPTH) is cbor._MISS
    with pytest.raises(DecodeError):
        decode(data, canonical=True)
