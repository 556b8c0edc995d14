"""Raft messages between validators on ``/p2pmkt/raft/1.0.0``.

Theory of operation
-------------------
Raft tolerates lost, duplicated and reordered messages, but its driver must never block on a
slow or dead peer. So :meth:`RaftTransport.send` only enqueues: each destination has a bounded
queue and a writer task that keeps one long-lived outbound stream to that peer and writes one
frame (varint length + the opaque message bytes from ``p2pmkt.raft.messages``) per message.
When the queue is full, the peer is unknown or not connected, or the stream breaks, messages
are dropped and counted; the next message opens a fresh stream. Connections themselves are
kept up by :mod:`p2pmkt.net.discovery`.

Inbound streams are accepted from chain members only (others are reset) and every frame
becomes ``(NodeId of the sender, bytes)`` on :attr:`RaftTransport.incoming`; if the driver
falls behind by ``queue_size`` messages, further ones are dropped.

Addresses: a NodeId is the validator's address ``0x…``; the peer id follows from the member's
public key (:class:`~p2pmkt.net.members.Members`), so no directory is exchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from p2pmkt.net.errors import NetworkError
from p2pmkt.net.members import Members
from p2pmkt.net.stream import FramedStream
from p2pmkt.types import NodeId

if TYPE_CHECKING:
    from p2pmkt.net.host import Net

log = logging.getLogger(__name__)

RAFT_PROTOCOL = "/p2pmkt/raft/1.0.0"
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RaftTransportStatistics:
    sent: int
    received: int
    dropped_send: int
    dropped_receive: int


class RaftTransport:
    """Best-effort message passing between members. Create with :func:`open_raft_transport`."""

    def __init__(
        self, net: Net, members: Members, nursery: trio.Nursery, *, queue_size: int,
        max_message: int,
    ) -> None:
        self._net = net
        self._members = members
        self._nursery = nursery
        self._queue_size = queue_size
        self._max_message = max_message
        self._queues: dict[str, trio.MemorySendChannel[bytes]] = {}
        self._in_send, self.incoming = trio.open_memory_channel[tuple[NodeId, bytes]](queue_size)
        self._sent = self._received = self._dropped_send = self._dropped_receive = 0

    def statistics(self) -> RaftTransportStatistics:
        return RaftTransportStatistics(
            self._sent, self._received, self._dropped_send, self._dropped_receive
        )

    async def send(self, to: NodeId, data: bytes) -> None:
        """Queue ``data`` for ``to``; never blocks for long and never raises for an
        unreachable or unknown peer (the message is dropped)."""
        self.send_nowait(to, data)

    def send_nowait(self, to: NodeId, data: bytes) -> None:
        """Synchronous form of :meth:`send`."""
        peer = self._members.peer_of(to)
        if peer is None or peer == self._net.peer_id or len(data) > self._max_message:
            self._dropped_send += 1
            return
        queue = self._queues.get(peer)
        if queue is None:
            queue, recv = trio.open_memory_channel[bytes](self._queue_size)
            self._queues[peer] = queue
            self._nursery.start_soon(self._writer, peer, recv)
        try:
            queue.send_nowait(data)
        except trio.WouldBlock:
            self._dropped_send += 1

    async def _writer(self, peer: str, queue: trio.MemoryReceiveChannel[bytes]) -> None:
        stream: FramedStream | None = None
        try:
            async for data in queue:
                if stream is None:
                    if not self._net.is_connected(peer):
                        self._dropped_send += 1
                        continue
                    try:
                        stream = await self._net.open_stream(
                            peer, RAFT_PROTOCOL, max_frame=self._max_message
                        )
                    except NetworkError as exc:
                        log.debug("raft stream to %s failed: %s", peer, exc)
                        self._dropped_send += 1
                        continue
                try:
                    await stream.write_frame(data)
                    self._sent += 1
                except NetworkError:
                    self._dropped_send += 1
                    await stream.reset()
                    stream = None
        finally:
            if stream is not None:
                await stream.close()

    async def _serve(self, fs: FramedStream) -> None:
        node = self._members.node_of(fs.peer_id)
        if node is None:  # membership changed after the handler's check
            await fs.reset()
            return
        while True:
            payload = await fs.read_frame()
            if payload is None:
                return
            try:
                self._in_send.send_nowait((node, payload))
                self._received += 1
            except trio.WouldBlock:
                self._dropped_receive += 1


@asynccontextmanager
async def open_raft_transport(
    net: Net,
    members: Members | None = None,
    *,
    queue_size: int = 1024,
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> AsyncIterator[RaftTransport]:
    """Serve ``/p2pmkt/raft/1.0.0`` and yield the transport; writers stop on exit.

    ``members`` defaults to ``net.members`` (one of the two must be given).
    """
    members = members if members is not None else net.members
    if members is None:
        raise ValueError("the Raft transport needs the member set (address ↔ peer id)")
    async with trio.open_nursery() as nursery:
        transport = RaftTransport(
            net, members, nursery, queue_size=queue_size, max_message=max_message
        )
        net.handle(RAFT_PROTOCOL, transport._serve, members_only=True,
                   max_frame=max_message, frame_timeout=30.0)
        try:
            yield transport
        finally:
            nursery.cancel_scope.cancel()
