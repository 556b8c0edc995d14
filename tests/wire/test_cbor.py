"""Canonical CBOR: round trips, canonical-form enforcement, bounds, and hostile bytes."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.errors import DecodeError
from p2pmkt.wire.cbor import decode, encode

scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40)
    | st.text(max_size=40)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=120)
@given(values)
def test_round_trip_is_exact_and_canonical(value: Any) -> None:
    data = encode(value)
    assert decode(data, canonical=True) == value
    assert encode(decode(data)) == data


@given(st.dictionaries(st.text(max_size=8), st.integers(0, 100), min_size=2, max_size=8))
def test_map_keys_are_sorted_bytewise_by_encoding(d: dict[str, int]) -> None:
    data = encode(d)
    decoded_keys = list(cbor2.loads(data).keys())
    assert decoded_keys == sorted(d, key=lambda k: cbor2.dumps(k))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x18\x05", r"^CBOR is not in canonical form \(RFC 8949 §4.2\); re-encode it canonically$"),  # 5 in 2 bytes
        (b"\xa2\x61b\x01\x61a\x02", r"^CBOR is not in canonical form"),  # keys out of order
        (b"\x5a\x00\x00\x00\x01x", r"^CBOR is not in canonical form"),  # long length form
    ],
)
def test_non_canonical_input_is_rejected_when_canonical_is_required(data: bytes, message: str) -> None:
    decode(data)  # fine without the requirement
    with pytest.raises(DecodeError, match=message):
        decode(data, canonical=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"^empty input: expected one CBOR item$"),
        (b"\x01\x02", r"^1 trailing bytes after the CBOR item$"),
        (b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", r"^floats are not allowed \(use fixed-point integers\)$"),
        (b"\xc1\x01", r"^type .* is not allowed in p2pmkt CBOR$"),  # tag 1 (epoch time)
        (b"\xa1\x01\x02", r"^malformed CBOR: .*map key"),
        (b"\x9f\x01\xff", r"^malformed CBOR: "),  # indefinite-length array
        (b"\xa2\x61a\x01\x61a\x02", r"^malformed CBOR: "),  # duplicate key
        (b"\xf7", r"^type .* is not allowed in p2pmkt CBOR$"),  # undefined
        (b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff", None),  # 2**64-1 is allowed
        (b"\x3b\xff\xff\xff\xff\xff\xff\xff\xff", r"^integer -18446744073709551616 is outside the 64-bit range$"),
        (b"\x5b\x00\x00\x00\x10\x00\x00\x00\x00", r"^malformed CBOR: "),  # claims 64 GiB
    ],
)
def test_hostile_input_yields_decode_error(data: bytes, message: str | None) -> None:
    if message is None:
        decode(data)
        return
    with pytest.raises(DecodeError, match=message):
        decode(data)


def test_size_and_depth_bounds() -> None:
    with pytest.raises(DecodeError, match=r"^CBOR item is 11 bytes; the limit here is 10$"):
        decode(encode(b"x" * 10), max_size=10)
    deep = b"\x81" * 40 + b"\x00"
    with pytest.raises(DecodeError):
        decode(deep, max_depth=32)
    decode(b"\x81" * 5 + b"\x00", max_depth=8)


def test_non_bytes_input_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match=r"^expected bytes to decode, got str$"):
        decode("a1")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [1.5, {1: 2}, 2**64, -(2**63) - 1, object(), {"a": [1, 2.0]}])
def test_encoding_values_outside_the_subset_is_a_local_type_error(bad: Any) -> None:
    with pytest.raises(TypeError):
        encode(bad)


@settings(max_examples=150, deadline=None)
@given(values, st.data())
def test_mutations_never_crash(value: Any, data: st.DataObject) -> None:
    raw = bytearray(encode(value))
    if data.draw(st.booleans()) and len(raw) > 1:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 3))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    try:
        decode(bytes(raw), canonical=True, max_size=4096)
    except DecodeError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(blob: bytes) -> None:
    try:
        decode(blob, canonical=True)
    except DecodeError:
        pass
