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


keys_strategy = st.lists(st.text(max_size=6), min_size=1, max_size=5, unique=True).map(
    lambda ks: tuple(sorted(ks, key=lambda k: (len(k.encode()), k.encode())))
)


@settings(max_examples=300)
@given(keys_strategy, st.lists(values, min_size=5, max_size=5), st.integers(1, 6), st.booleans())
def test_decode_canonical_map_accepts_only_what_decode_accepts(
    keys: tuple[str, ...], vals: list[Any], depth: int, reverse: bool
) -> None:
    value = dict(zip(keys, vals, strict=False))
    for data in (cbor2.dumps(value, canonical=True), cbor2.dumps(dict(reversed(value.items())))):
        fast = cbor.decode_canonical_map(data, keys, max_depth=depth)
        verdict, expected = _verdict(data, depth)
        if fast is not None:
            assert verdict == "ok" and fast == expected and tuple(fast) == keys
        elif verdict == "ok" and tuple(expected) == keys:
            # Declining is allowed only for what the fast walk cannot judge cheaply: none here.
            pytest.fail(f"decode_canonical_map declined canonical {data.hex()}")


@pytest.mark.parametrize(
    "data",
    [
        b"\xa2\x61a\x01\x61b\x02",  # fine
        b"\xa2\x61a\x18\x01\x61b\x02",  # integer not in shortest form
        b"\xa2\x61b\x02\x61a\x01",  # keys out of order
        b"\xa2\x61a\x01\x61b\x02\x00",  # trailing byte
        b"\xa2\x61a\xc2\x41\x01\x61b\x02",  # bignum tag that decodes to an int
        b"\xa2\x61a\xf9\x3c\x00\x61b\x02",  # a float
        b"\xa2\x61a\x3b\xff\xff\xff\xff\xff\xff\xff\xff\x61b\x02",  # below -2**63
        b"\xa1\x61a\x01",  # a key missing (canonical, but not this shape)
        b"\x82\x01\x02",  # not a map (canonical, but not this shape)
        b"",
    ],
)
def test_decode_canonical_map_declines_what_decode_rejects(data: bytes) -> None:
    fast = cbor.decode_canonical_map(data, ("a", "b"))
    verdict, expected = _verdict(data) if data else ("rejected", None)
    shaped = verdict == "ok" and isinstance(expected, dict) and tuple(expected) == ("a", "b")
    assert (fast is not None) == shaped  # canonical but of another shape: declined too
    if fast is not None:
        assert fast == expected


def test_decode_canonical_map_refuses_keys_not_in_canonical_order() -> None:
    with pytest.raises(ValueError, match="canonical order"):
        cbor.decode_canonical_map(b"\xa0", ("bb", "a"))
