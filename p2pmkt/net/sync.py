"""Block sync on ``/p2pmkt/sync/1.0.0``: a lagging node fetches committed blocks by height.

Theory of operation
-------------------
One request per stream, then a stream of answers, then the server closes::

    request   {"from": uint, "to": uint}         inclusive heights, to - from < MAX_RANGE;
              (+ "genesis": bstr)                the asker's genesis hash, when it has one
    answers   {"block": bstr}  …                 Block.encode() bytes, heights from..to in
                                                 order; fewer if the server has fewer
              {"end": true, "head": uint}        the server's committed height
    or        {"error": tstr}                    bad request; nothing else follows

A server with a genesis hash answers a request that names another with ``{"error": …}``
(both hashes): a node must never catch up from a chain that started elsewhere, even one run
by the same members (see :mod:`p2pmkt.net.raft_transport`). A request with ``to < from``
asks only for the head. The server reads blocks through a
:class:`BlockProvider` (the node's block store), stops early after ``MAX_RESPONSE_BYTES``, and
serves members only. The client (:func:`fetch_blocks`) decodes each block and checks that
heights are consecutive from ``from``; it does **not** check signatures or parent links —
the node validates fetched blocks exactly as it validates committed blocks.

Snapshots (state transfer for nodes too far behind) are not served here yet.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import trio

from p2pmkt.chain.block import MAX_BLOCK_BYTES, Block, decode_block
from p2pmkt.errors import DecodeError, RemoteError
from p2pmkt.net._trio import TaskStatus
from p2pmkt.net.errors import StreamClosed
from p2pmkt.net.stream import FramedStream
from p2pmkt.wire.cbor import decode, encode

if TYPE_CHECKING:
    from p2pmkt.net.host import Net

log = logging.getLogger(__name__)

SYNC_PROTOCOL = "/p2pmkt/sync/1.0.0"
MAX_RANGE = 512
FETCH_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_REQUEST_FRAME = 1024


class BlockProvider(Protocol):
    """Read access to committed blocks, implemented by the node."""

    async def head_height(self) -> int: ...

    async def blocks(self, start: int, end: int) -> Sequence[bytes]:
        """Wire bytes of committed blocks ``start..end`` (inclusive), in order; a prefix
        of that range if the node has fewer."""
        ...


class _SyncServer:
    def __init__(self, provider: BlockProvider, genesis: bytes = b"") -> None:
        self.provider = provider
        self.genesis = genesis

    async def serve(self, fs: FramedStream) -> None:
        with trio.fail_after(10.0):
            payload = await fs.read_frame()
        if payload is None:
            return
        try:
            req = decode(payload, max_size=_REQUEST_FRAME)
            start, end = _parse_request(req)
        except DecodeError as exc:
            await fs.write_frame(encode({"error": str(exc)}))
            return
        theirs = req.get("genesis", b"")
        if self.genesis and theirs and theirs != self.genesis:
            await fs.write_frame(encode({"error": (
                f"this node's genesis hash is {self.genesis.hex()[:16]}…, the request's "
                f"{theirs.hex()[:16]}…: another chain")}))
            return
        sent = 0
        if end >= start:
            for raw in await self.provider.blocks(start, end):
                await fs.write_frame(encode({"block": raw}))
                sent += len(raw)
                if sent >= MAX_RESPONSE_BYTES:
                    break
        await fs.write_frame(encode({"end": True, "head": await self.provider.head_height()}))


def _parse_request(req: Any) -> tuple[int, int]:
    if not isinstance(req, dict) or not {"from", "to"} <= set(req) <= {"from", "to", "genesis"}:
        raise DecodeError('sync request must be {"from": uint, "to": uint} (and "genesis": bytes)')
    if type(req.get("genesis", b"")) is not bytes:
        raise DecodeError("sync request's genesis must be bytes")
    start, end = req["from"], req["to"]
    if type(start) is not int or type(end) is not int or start < 0 or end < 0:
        raise DecodeError("sync heights must be unsigned integers")
    if end >= start and end - start >= MAX_RANGE:
        raise DecodeError(f"at most {MAX_RANGE} blocks per sync request")
    return start, end


async def run_sync_server(
    net: Net,
    provider: BlockProvider,
    *,
    members_only: bool = True,
    genesis: bytes = b"",
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve block ranges from ``provider`` until cancelled; with ``genesis`` (this node's
    genesis hash), only to askers that name the same one or none."""
    server = _SyncServer(provider, genesis)
    net.handle(SYNC_PROTOCOL, server.serve, members_only=members_only,
               max_frame=_REQUEST_FRAME, frame_timeout=10.0)
    task_status.started()
    await trio.sleep_forever()


async def fetch_blocks(
    net: Net, peer_id: str, start: int, end: int, *, max_block_bytes: int = MAX_BLOCK_BYTES,
    genesis: bytes = b"",
) -> tuple[list[Block], int]:
    """Fetch committed blocks ``start..end`` (inclusive, at most MAX_RANGE) from ``peer_id``.

    Gives up after FETCH_TIMEOUT seconds. Returns the blocks received (a prefix of the range, possibly empty) and the peer's head
    height.

    Raises:
        StreamClosed / ProtocolRefused: the peer is unreachable or refused.
        RemoteError: the peer sent something malformed or out of order, or refused (e.g. its
            genesis is not ``genesis``).
    """
    if end >= start and end - start >= MAX_RANGE:
        raise ValueError(f"at most {MAX_RANGE} blocks per request")
    fs = await net.open_stream(peer_id, SYNC_PROTOCOL, max_frame=max_block_bytes + 64)
    blocks: list[Block] = []
    try:
        with trio.fail_after(FETCH_TIMEOUT):
            request: dict[str, Any] = {"from": start, "to": end}
            if genesis:
                request["genesis"] = genesis  # a server of another chain refuses
            await fs.write_frame(encode(request))
            while True:
                payload = await fs.read_frame()
                if payload is None:
                    raise StreamClosed("sync peer closed before the end frame")
                msg = decode(payload, max_size=max_block_bytes + 64, walk=False)
                if not isinstance(msg, dict):
                    raise DecodeError("sync answer must be a map")
                if "block" in msg and isinstance(msg["block"], bytes):
                    block = decode_block(msg["block"], max_size=max_block_bytes)
                    if block.height != start + len(blocks):
                        raise RemoteError(
                            f"sync peer sent height {block.height}, expected {start + len(blocks)}",
                            reason="sync_out_of_order",
                        )
                    blocks.append(block)
                elif msg.get("end") is True and type(msg.get("head")) is int:
                    return blocks, msg["head"]
                elif isinstance(msg.get("error"), str):
                    raise RemoteError(f"sync peer refused: {msg['error']}", reason="sync_refused")
                else:
                    raise DecodeError("unexpected sync answer")
    except trio.TooSlowError as exc:
        raise StreamClosed(f"sync from {peer_id} took longer than {FETCH_TIMEOUT} s") from exc
    finally:
        await fs.close()
