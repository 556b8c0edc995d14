"""Framed libp2p streams: varint-length-prefixed payloads over one py-libp2p stream.

:class:`FramedStream` glues the sans-I/O :class:`~p2pmkt.wire.framing.FrameBuffer` to a
py-libp2p stream and maps every py-libp2p stream exception to
:class:`~p2pmkt.net.errors.StreamClosed`, so protocol code above never sees libp2p types.

We read in large chunks (not libp2p's byte-at-a-time varint reader, which also gives up after
100 partial reads) and bound a frame's size before buffering it. A peer that starts a frame
and stalls (slowloris) is cut off after ``frame_timeout`` seconds.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from p2pmkt.net.errors import StreamClosed
from p2pmkt.wire.framing import DEFAULT_MAX_FRAME, FrameBuffer, frame

READ_CHUNK = 64 * 1024


class FramedStream:
    """One libp2p stream carrying frames. Not safe for two concurrent writers without
    :attr:`write_lock` (callers that write from several tasks take it)."""

    def __init__(
        self, stream: Any, *, max_frame: int = DEFAULT_MAX_FRAME, frame_timeout: float = 30.0
    ) -> None:
        self._stream = stream
        self._buf = FrameBuffer(max_frame)
        self._ready: deque[bytes] = deque()
        self.frame_timeout = frame_timeout
        self.write_lock = trio.Lock()
        self.peer_id: str = stream.muxed_conn.peer_id.to_base58()

    @property
    def max_frame(self) -> int:
        return self._buf.max_frame

    def remote_ip(self) -> str | None:
        """The IP address the peer's connection comes from, as this host sees it (None when
        the transport cannot say)."""
        try:
            addr = self._stream.get_remote_address()
        except Exception:  # py-libp2p raises whatever its socket wrapper raised
            return None
        return str(addr[0]) if addr else None

    async def read_frame(self) -> bytes | None:
        """Next frame, or None at a clean end of stream (EOF between frames).

        Raises:
            FramingError: bad or oversized length prefix (the stream is then unusable).
            StreamClosed: reset, EOF inside a frame, or a frame stalled past ``frame_timeout``.
        """
        while not self._ready:
            if self._buf.buffered:
                with trio.move_on_after(self.frame_timeout) as scope:
                    chunk = await self._read()
                if scope.cancelled_caught:
                    raise StreamClosed(f"peer stalled inside a frame for {self.frame_timeout} s")
            else:
                chunk = await self._read()
            if not chunk:
                if self._buf.buffered:
                    raise StreamClosed("stream ended inside a frame (truncated)")
                return None
            self._ready.extend(self._buf.feed(chunk))
        return self._ready.popleft()

    @property
    def frame_ready(self) -> bool:
        """True if :meth:`read_frame` will return without waiting for the peer."""
        return bool(self._ready)

    async def _read(self) -> bytes:
        try:
            data = await self._stream.read(READ_CHUNK)
        except EOFError:
            return b""
        except (trio.Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise StreamClosed(f"stream failed while reading: {type(exc).__name__}: {exc}") from exc
        return bytes(data) if data else b""

    async def write_frame(self, payload: bytes) -> None:
        """Write one frame.

        Raises:
            StreamClosed: the stream was closed or reset.
        """
        await self.write_raw(frame(payload))

    async def write_frames(self, payloads: list[bytes]) -> None:
        """Write several frames in one stream write (one muxer frame, one encryption).

        Raises:
            StreamClosed: the stream was closed or reset.
        """
        await self.write_raw(b"".join(map(frame, payloads)))

    async def write_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests use this to send hostile input)."""
        try:
            await self._stream.write(data)
        except Exception as exc:
            raise StreamClosed(f"stream failed while writing: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close our side gracefully; never raises."""
        try:
            await self._stream.close()
        except Exception:
            pass

    async def reset(self) -> None:
        """Abort the stream in both directions; never raises."""
        try:
            await self._stream.reset()
        except Exception:
            pass
