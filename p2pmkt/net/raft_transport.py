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

**Same chain, not just same members.** The first frame of every stream is a hello naming the
sender's genesis (:func:`hello`); a receiver whose genesis differs resets the stream and
takes nothing from it. Membership alone would let a node whose genesis file differs in a
parameter (same chain id, same keys: an operator's stale copy) vote and acknowledge
entries, then apply the blocks by other rules.

**Test-only faults.** Under :data:`p2pmkt.net.faults.RAFT_FAULT_ENV` each outgoing message
may be lost, and waits the configured latency before it is written (the chaos tests' stand-in
for ``tc netem``); unset, the send path is unchanged.

Addresses: a NodeId is the validator's address ``0x…``; the peer id follows from the member's
public key (:class:`~p2pmkt.net.members.Members`), so no directory is exchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from p2pmkt.net.errors import NetworkError
from p2pmkt.net.faults import drops, raft_fault
from p2pmkt.net.members import Members
from p2pmkt.net.stream import FramedStream
from p2pmkt.types import NodeId

if TYPE_CHECKING:
    from p2pmkt.net.host import Net

log = logging.getLogger(__name__)

RAFT_PROTOCOL = "/p2pmkt/raft/1.0.0"
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
_HELLO = b"p2pmkt raft hello, genesis "
REFUSAL_LOG_EVERY = 60.0
"""Seconds between two log lines about the same peer's refused streams (it retries each tick)."""


def hello(genesis: bytes) -> bytes:
    """The first frame of a Raft stream from a node whose genesis hash is ``genesis``."""
    return _HELLO + genesis


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
        max_message: int, genesis: bytes = b"", on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._net = net
        self._members = members
        self._hello = hello(genesis)
        self._on_refused = on_refused or (lambda peer: None)
        self._refusal_logged: dict[str, float] = {}  # peer → when its refusal was last logged
        self._nursery = nursery
        self._queue_size = queue_size
        self._max_message = max_message
        # Each message with the time it may be written: 0, or later under the test-only
        # latency fault (p2pmkt.net.faults).
        self._queues: dict[str, trio.MemorySendChannel[tuple[float, bytes]]] = {}
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
        fault = raft_fault()
        if drops(fault.loss):
            self._dropped_send += 1
            return
        due = trio.current_time() + fault.delay if fault.delay else 0.0
        queue = self._queues.get(peer)
        if queue is None:
            queue, recv = trio.open_memory_channel[tuple[float, bytes]](self._queue_size)
            self._queues[peer] = queue
            self._nursery.start_soon(self._writer, peer, recv)
        try:
            queue.send_nowait((due, data))
        except trio.WouldBlock:
            self._dropped_send += 1

    async def _writer(self, peer: str, queue: trio.MemoryReceiveChannel[tuple[float, bytes]]) -> None:
        stream: FramedStream | None = None
        try:
            async for due, data in queue:
                if due:
                    await trio.sleep_until(due)  # the test-only latency fault
                if stream is None:
                    if not self._net.is_connected(peer):
                        self._dropped_send += 1
                        continue
                    try:
                        stream = await self._net.open_stream(
                            peer, RAFT_PROTOCOL, max_frame=self._max_message
                        )
                        await stream.write_frame(self._hello)
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
        first = await fs.read_frame()
        if first != self._hello:
            self._refuse(fs.peer_id, first)
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


    def _refuse(self, peer: str, first: bytes | None) -> None:
        self._on_refused(peer)
        now = trio.current_time()
        if now - self._refusal_logged.get(peer, -REFUSAL_LOG_EVERY) < REFUSAL_LOG_EVERY:
            return
        self._refusal_logged[peer] = now
        if first is not None and first.startswith(_HELLO):
            theirs = first[len(_HELLO):].hex()[:16] or "none"
            why = (f"its genesis hash is {theirs}…, ours {self._hello[len(_HELLO):].hex()[:16]}…: "
                   "the same members with another genesis file; compare `p2pmkt genesis show`")
        else:
            why = "its stream did not open with a genesis hello (another p2pmkt version?)"
        log.error("refused Raft messages from member %s: %s", peer, why)


@asynccontextmanager
async def open_raft_transport(
    net: Net,
    members: Members | None = None,
    *,
    queue_size: int = 1024,
    max_message: int = DEFAULT_MAX_MESSAGE,
    genesis: bytes = b"",
    on_refused: Callable[[str], None] | None = None,
) -> AsyncIterator[RaftTransport]:
    """Serve ``/p2pmkt/raft/1.0.0`` and yield the transport; writers stop on exit.

    ``members`` defaults to ``net.members`` (one of the two must be given). ``genesis`` is
    this node's genesis hash: streams from a member whose hello names another are refused
    (``on_refused`` gets its peer id each time).
    """
    members = members if members is not None else net.members
    if members is None:
        raise ValueError("the Raft transport needs the member set (address ↔ peer id)")
    async with trio.open_nursery() as nursery:
        transport = RaftTransport(
            net, members, nursery, queue_size=queue_size, max_message=max_message,
            genesis=genesis, on_refused=on_refused,
        )
        net.handle(RAFT_PROTOCOL, transport._serve, members_only=True,
                   max_frame=max_message, frame_timeout=30.0)
        try:
            yield transport
        finally:
            nursery.cancel_scope.cancel()
