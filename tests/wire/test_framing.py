"""Unsigned-varint framing: any chunking yields the same frames; bad prefixes poison the stream."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pmkt.errors import FramingError
from p2pmkt.wire.framing import FrameBuffer, encode_uvarint, frame


@given(st.lists(st.binary(max_size=300), max_size=10), st.lists(st.integers(1, 50), min_size=1))
def test_frames_survive_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    buf = FrameBuffer(max_frame=1000)
    got: list[bytes] = []
    i = 0
    k = 0
    while i < len(stream):
        step = cuts[k % len(cuts)]
        got += buf.feed(stream[i : i + step])
        i += step
        k += 1
    assert got == payloads
    assert buf.buffered == 0


@given(st.integers(0, 2**63 - 1))
def test_uvarint_is_minimal_leb128(n: int) -> None:
    data = encode_uvarint(n)
    assert int.from_bytes(bytes(b & 0x7F for b in reversed(data)), "big") == n or len(data) > 1
    value = sum((b & 0x7F) << (7 * i) for i, b in enumerate(data))
    assert value == n
    assert all(b & 0x80 for b in data[:-1]) and not data[-1] & 0x80
    assert len(data) == max(1, (n.bit_length() + 6) // 7)


def test_uvarint_range() -> None:
    with pytest.raises(ValueError, match=r"^varint out of range: -1$"):
        encode_uvarint(-1)
    with pytest.raises(ValueError):
        encode_uvarint(2**63)


def test_oversized_frame_is_rejected_before_buffering() -> None:
    buf = FrameBuffer(max_frame=10)
    with pytest.raises(FramingError, match=r"^frame of 11 bytes exceeds the limit of 10 bytes$") as info:
        buf.feed(encode_uvarint(11))
    assert info.value.reason == "framing"
    with pytest.raises(FramingError, match=r"^stream already failed framing; close it$"):
        buf.feed(b"\x01x")


def test_non_minimal_prefix_is_rejected() -> None:
    with pytest.raises(FramingError, match=r"^length prefix is not minimally encoded$"):
        FrameBuffer().feed(b"\x81\x00x")


def test_overlong_prefix_is_rejected() -> None:
    with pytest.raises(FramingError, match=r"^length prefix longer than 9 bytes$"):
        FrameBuffer().feed(b"\xff" * 9)


def test_partial_prefix_waits() -> None:
    buf = FrameBuffer()
    assert buf.feed(b"\x80") == []
    assert buf.feed(b"\x01" + b"y" * 128) == [b"y" * 128]


@given(st.binary(max_size=64))
def test_random_bytes_never_crash(blob: bytes) -> None:
    try:
        FrameBuffer(max_frame=1 << 20).feed(blob)
    except FramingError:
        pass
