"""Unsigned-varint length framing as a sans-I/O buffer.

Every stream protocol of p2pmkt (RPC, Raft, sync) carries frames: an unsigned LEB128 varint
(the multiformats ``unsigned-varint``: at most 9 bytes, minimal encoding) holding the payload
length, then the payload. :class:`FrameBuffer` takes bytes as they arrive and hands out whole
frames; it does no I/O, so the same code runs under trio, in tests and in fuzzers.

A length above ``max_frame`` is rejected as soon as its prefix is read, before any payload is
buffered, so a hostile peer cannot make us allocate.
"""

from __future__ import annotations

from p2pmkt.errors import FramingError

MAX_VARINT_BYTES = 9
DEFAULT_MAX_FRAME = 4 * 1024 * 1024


def encode_uvarint(n: int) -> bytes:
    """Encode a non-negative integer as a minimal unsigned LEB128 varint."""
    if n < 0 or n >= 1 << 63:
        raise ValueError(f"varint out of range: {n}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame(payload: bytes) -> bytes:
    """Return ``payload`` with its varint length prefix."""
    return encode_uvarint(len(payload)) + payload


class FrameBuffer:
    """Accumulates bytes and yields complete frames.

    Usage::

        buf = FrameBuffer(max_frame=1 << 20)
        for payload in buf.feed(chunk):
            handle(payload)

    After a :class:`FramingError` the buffer is poisoned: the stream is out of sync and the
    caller must close it.
    """

    __slots__ = ("_broken", "_buf", "_need", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need: int | None = None  # payload length once the prefix is parsed
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return every frame now complete, in order.

        Raises:
            FramingError: a malformed or non-minimal varint, or a length above ``max_frame``.
        """
        if self._broken:
            raise FramingError("stream already failed framing; close it")
        self._buf += data
        frames: list[bytes] = []
        while True:
            if self._need is None:
                parsed = self._parse_prefix()
                if parsed is None:
                    return frames
                self._need = parsed
            if len(self._buf) < self._need:
                return frames
            frames.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._need = None

    def _parse_prefix(self) -> int | None:
        value = 0
        for i, byte in enumerate(self._buf[:MAX_VARINT_BYTES]):
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i > 0 and byte == 0:
                    self._broken = True
                    raise FramingError("length prefix is not minimally encoded")
                del self._buf[: i + 1]
                if value > self.max_frame:
                    self._broken = True
                    raise FramingError(
                        f"frame of {value} bytes exceeds the limit of {self.max_frame} bytes"
                    )
                return value
        if len(self._buf) >= MAX_VARINT_BYTES:
            self._broken = True
            raise FramingError(f"length prefix longer than {MAX_VARINT_BYTES} bytes")
        return None
