"""In-memory twin of the Raft transport, for tests, the simulator-on-trio and benchmarks.

Theory of operation
-------------------
A :class:`MemoryNetwork` hands out one :class:`MemoryTransport` per node. ``send`` puts
``(from, data)`` into the recipient's bounded trio memory channel without waiting: a full
buffer, an unknown peer, a cut link or a "down" node silently drops the message, which is
exactly the best-effort contract of ``RaftTransport.send``. Faults are controlled from the
network: ``cut``/``isolate``/``heal`` and ``set_down``.
"""

from __future__ import annotations

import trio

from p2pmkt.types import NodeId


class MemoryTransport:
    """One node's end. ``incoming`` yields ``(sender, data)``."""

    def __init__(self, network: MemoryNetwork, node_id: NodeId) -> None:
        self.network = network
        self.node_id = node_id
        send, recv = trio.open_memory_channel[tuple[NodeId, bytes]](network.buffer)
        self._inbox = send
        self.incoming: trio.MemoryReceiveChannel[tuple[NodeId, bytes]] = recv
        self.dropped = 0

    async def send(self, to: NodeId, data: bytes) -> None:
        """Best effort: never blocks on the peer and never raises for an unreachable one."""
        await trio.lowlevel.checkpoint()
        net = self.network
        peer = net.endpoints.get(to)
        if peer is None or not net.can_reach(self.node_id, to):
            self.dropped += 1
            return
        try:
            peer._inbox.send_nowait((self.node_id, data))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self.dropped += 1


class MemoryNetwork:
    """A set of in-memory transports with controllable partitions."""

    def __init__(self, *, buffer: int = 10_000) -> None:
        self.buffer = buffer
        self.endpoints: dict[NodeId, MemoryTransport] = {}
        self.cuts: set[tuple[NodeId, NodeId]] = set()
        self.down: set[NodeId] = set()

    def endpoint(self, node_id: NodeId) -> MemoryTransport:
        """A fresh transport for ``node_id`` (replacing any earlier one: a restart)."""
        t = MemoryTransport(self, node_id)
        self.endpoints[node_id] = t
        return t

    def can_reach(self, a: NodeId, b: NodeId) -> bool:
        return a not in self.down and b not in self.down and (a, b) not in self.cuts

    def cut(self, a: NodeId, b: NodeId) -> None:
        self.cuts |= {(a, b), (b, a)}

    def isolate(self, n: NodeId) -> None:
        for other in self.endpoints:
            if other != n:
                self.cut(n, other)

    def set_down(self, n: NodeId, down: bool = True) -> None:
        (self.down.add if down else self.down.discard)(n)

    def heal(self) -> None:
        self.cuts.clear()
        self.down.clear()


__all__ = ["MemoryNetwork", "MemoryTransport"]
