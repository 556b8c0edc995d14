"""The trio Ready loop around a pure RaftCore: tick, persist, send, apply, advance.

Theory of operation
-------------------
:class:`RaftDriver` owns one :class:`p2pmkt.raft.RaftCore` and runs three tasks in one
nursery: a ticker (``trio.sleep(tick_interval)`` then ``core.tick()``), a receiver (decode
bytes from the transport, ``core.step``), and the Ready loop, which follows the ordering rule
written in ``p2pmkt.raft.core``'s docstring exactly: persist the Ready through the
:class:`p2pmkt.storage.raftlog.RaftLogStore` (one synced LMDB write transaction), then send
its messages, then apply its snapshot and committed entries to the :class:`RaftApplication`,
then ``core.advance``. Every input wakes the loop through an event; there is no polling.

Everything runs on the trio thread, so the core needs no locks. Local requests
(``propose`` etc.) are plain sync calls into the core followed by a wake-up.

Snapshots: every ``snapshot_every`` applied entries the driver asks the application for its
state, stores it as the Raft snapshot and compacts the log, keeping ``snapshot_keep`` entries
so that briefly lagging followers catch up from the log rather than by snapshot.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import trio

from p2pmkt.errors import DecodeError
from p2pmkt.raft import (
    ConfChange,
    Entry,
    ProposalDropped,
    RaftCore,
    RaftCoreConfig,
    Ready,
    Snapshot,
    StateRole,
    Status,
    decode_message,
    encode_message,
)
from p2pmkt.storage.raftlog import RaftLogStore
from p2pmkt.types import LogIndex, NodeId, Term

if TYPE_CHECKING:
    # trio re-exports TaskStatus implicitly, which mypy --strict does not accept.
    from trio._core._run import TaskStatus


class RaftTransport(Protocol):
    """Best-effort datagrams between validators (libp2p in production, memory in tests).

    Incoming traffic is a ``trio.MemoryReceiveChannel[tuple[NodeId, bytes]]`` handed to the
    driver separately; the sender id must be authenticated by the transport.
    """

    async def send(self, to: NodeId, data: bytes) -> None:
        """Send ``data`` to ``to``; never raises for an unreachable or unknown peer."""
        ...


class RaftApplication(Protocol):
    """The replicated state machine (the chain). Called on the trio thread; must not block
    for long (push heavy work to a thread inside ``apply``)."""

    def last_applied(self) -> int:
        """Index of the last entry applied durably (0 for a fresh node)."""
        ...

    def apply(self, entries: Sequence[Entry]) -> None:
        """Apply committed entries, in order, each exactly once. This includes leader no-op
        entries (empty data) and CONF_CHANGE entries, so the application can record
        ``entries[-1].index`` as its last applied index in the same write as the blocks."""
        ...

    def snapshot(self) -> bytes:
        """Serialized state as of ``last_applied()``."""
        ...

    def restore(self, snapshot: Snapshot) -> None:
        """Replace all state with ``snapshot.data`` (state as of ``snapshot.meta.index``)."""
        ...

    def leader_changed(self, leader: NodeId | None, term: Term) -> None:
        """Leadership changed (``leader`` is None while unknown). Start or stop producing
        blocks here (only the leader proposes)."""
        ...


@dataclass(frozen=True, slots=True)
class DriverConfig:
    tick_interval: float = 0.1
    snapshot_every: int = 1000
    snapshot_keep: int = 100
    persist_in_thread: bool = False
    """Run the LMDB commit (fsync) in a worker thread; the loop waits for it either way."""


@dataclass(frozen=True, slots=True)
class DriverStatistics:
    status: Status
    ready_loops: int
    messages_sent: int
    decode_errors: int
    spoofed: int


class RaftDriver:
    """Drives one RaftCore. Create with :meth:`create`, run with :func:`run_raft_driver`."""

    def __init__(
        self,
        core: RaftCore,
        store: RaftLogStore,
        transport: RaftTransport,
        incoming: trio.MemoryReceiveChannel[tuple[NodeId, bytes]],
        app: RaftApplication,
        config: DriverConfig,
    ) -> None:
        self.core = core
        self.store = store
        self.transport = transport
        self.incoming = incoming
        self.app = app
        self.config = config
        self._wake = trio.Event()
        self._applied_changed = trio.Event()
        self._leader_changed = trio.Event()
        self._reads: dict[bytes, tuple[trio.Event, list[int]]] = {}
        self._read_ids = itertools.count()
        self._ready_loops = 0
        self._sent = 0
        self._decode_errors = 0
        self._spoofed = 0

    @classmethod
    def create(
        cls,
        node_id: NodeId,
        store: RaftLogStore,
        transport: RaftTransport,
        incoming: trio.MemoryReceiveChannel[tuple[NodeId, bytes]],
        app: RaftApplication,
        *,
        config: DriverConfig | None = None,
        election_tick: int = 10,
        heartbeat_tick: int = 1,
        rng: random.Random | None = None,
    ) -> RaftDriver:
        """Build the core from durable state and the application's applied index.

        If the store holds a snapshot newer than the application's state (we crashed after
        persisting a received snapshot but before restoring it), the application is restored
        from it first.
        """
        applied = app.last_applied()
        snap = store.snapshot()
        if snap.meta.index > applied:
            app.restore(snap)
            applied = snap.meta.index
        cfg = RaftCoreConfig(
            id=node_id, election_tick=election_tick, heartbeat_tick=heartbeat_tick, applied=applied
        )
        core = RaftCore(cfg, store, rng or random.Random())
        return cls(core, store, transport, incoming, app, config or DriverConfig())

    # ---- local requests --------------------------------------------------------------------

    def propose(self, data: bytes) -> LogIndex:
        """Propose one block (leader only). Raises ProposalDropped."""
        idx = self.core.propose(data)
        self._wake.set()
        return idx

    def propose_conf_change(self, cc: ConfChange) -> LogIndex:
        """Propose a membership change (leader only, one at a time). Raises ProposalDropped."""
        idx = self.core.propose_conf_change(cc)
        self._wake.set()
        return idx

    def leader_lost(self) -> None:
        """The leader's connection closed: elect a new one within a few ticks
        (see :meth:`RaftCore.leader_lost`)."""
        self.core.leader_lost()
        self._wake.set()

    def transfer_leader(self, to: NodeId) -> None:
        self.core.transfer_leader(to)
        self._wake.set()

    @property
    def leader(self) -> NodeId | None:
        return self.core.leader

    @property
    def term(self) -> int:
        return self.core.term

    @property
    def is_leader(self) -> bool:
        return self.core.role is StateRole.LEADER

    async def wait_leader_change(self) -> None:
        """Return at the next change of leader or role seen by this node."""
        await self._leader_changed.wait()

    async def wait_applied(self, index: int) -> None:
        """Return once entries up to ``index`` are applied here."""
        while self.core.log.applied < index:
            await self._applied_changed.wait()

    async def read_index(self) -> LogIndex:
        """A linearizable read point: returns once it is applied locally, so reading the
        application's state right after is linearizable. Raises ProposalDropped if there
        is no leader or leadership changes meanwhile (retry). A request lost on the way to
        the leader is not retried: callers bound the wait (``trio.move_on_after``)."""
        ctx = f"{self.core.id}/{next(self._read_ids)}".encode()
        ev = trio.Event()
        self._reads[ctx] = (ev, [])
        try:
            self.core.read_index(ctx)
            self._wake.set()
            await ev.wait()
            result = self._reads[ctx][1]
        finally:
            self._reads.pop(ctx, None)
        if not result:
            raise ProposalDropped("leadership changed before the read was confirmed")
        await self.wait_applied(result[0])
        return LogIndex(result[0])

    def statistics(self) -> DriverStatistics:
        return DriverStatistics(
            self.core.statistics(),
            self._ready_loops,
            self._sent,
            self._decode_errors,
            self._spoofed,
        )

    # ---- the loops -------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ticker)
            nursery.start_soon(self._receiver)
            self._wake.set()  # a restarted node may have committed entries to apply
            task_status.started()
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while self.core.has_ready():
                    await self._handle_ready(self.core.ready())

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(self.config.tick_interval)
            self.core.tick()
            self._wake.set()

    async def _receiver(self) -> None:
        async for frm, data in self.incoming:
            try:
                msg = decode_message(data)
            except DecodeError:
                self._decode_errors += 1
                continue
            if msg.frm != frm:
                self._spoofed += 1  # the transport authenticated `frm`; the payload lies
                continue
            self.core.step(msg)
            self._wake.set()

    async def _handle_ready(self, rd: Ready) -> None:
        self._ready_loops += 1
        # 1. persist (hard state + entries + snapshot in one synced write transaction)
        if rd.hard_state is not None or rd.entries or rd.snapshot is not None:
            if self.config.persist_in_thread:
                await trio.to_thread.run_sync(self._persist, rd)
            else:
                self._persist(rd)
        # 2. send, only now that everything the messages promise is durable
        for m in rd.messages:
            await self.transport.send(m.to, encode_message(m))
            self._sent += 1
        # 3. apply
        if rd.snapshot is not None and rd.snapshot.meta.index > self.core.log.applied:
            self.app.restore(rd.snapshot)
        if rd.committed_entries:
            snap_index = rd.snapshot.meta.index if rd.snapshot is not None else 0
            ents = [e for e in rd.committed_entries if e.index > snap_index]
            if ents:
                self.app.apply(ents)
        for rs in rd.read_states:
            waiter = self._reads.get(rs.context)
            if waiter is not None:
                waiter[1].append(rs.index)
                waiter[0].set()
        if rd.soft_state is not None:
            if rd.soft_state.role is not StateRole.LEADER and rd.soft_state.leader is None:
                self._fail_reads()
            self.app.leader_changed(rd.soft_state.leader, self.core.term)
            self._leader_changed.set()
            self._leader_changed = trio.Event()
        # 4. advance
        self.core.advance(rd)
        if rd.committed_entries or rd.snapshot is not None:
            self._applied_changed.set()
            self._applied_changed = trio.Event()
            self._maybe_snapshot()

    def _persist(self, rd: Ready) -> None:
        self.store.save(rd.hard_state, rd.entries, rd.snapshot, sync=rd.must_sync)

    def _maybe_snapshot(self) -> None:
        applied = self.core.log.applied
        if applied - self.store.snapshot().meta.index < self.config.snapshot_every:
            return
        self.store.create_snapshot(applied, self.core.conf, self.app.snapshot())
        keep_from = applied - self.config.snapshot_keep
        if keep_from >= self.store.first_index():
            self.store.compact(keep_from)

    def _fail_reads(self) -> None:
        for ev, _ in self._reads.values():
            ev.set()


async def run_block_producer(
    driver: RaftDriver,
    build_block: Callable[[], bytes | None],
    *,
    interval: float,
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """While ``driver`` leads, propose ``build_block()`` at most every ``interval`` seconds.

    ``build_block`` returns the encoded block (built on the application's current head from
    its mempool, within its size limit) or None when there is nothing to propose (no empty
    blocks unless the application wants them: p2pmkt's do when a report falls due by block
    time). The next block is built only once the
    previous one is applied, so each proposal extends the head it was built on. A block from
    a deposed leader may still commit after a newer one; the application must then skip it
    (its parent is not the head), which every node does identically.

    The interval is waited after each block is applied, not counted from its proposal: the
    pause gathers the next block's transactions. (Counting from the proposal, tried in
    session 8, built blocks back to back under load; they were smaller, every node paid
    the per-block costs more often, and commit latency at half load rose; BENCHMARKS.md.)
    """
    task_status.started()
    fresh = True  # just became leader: propose at once (failover time), then pace
    while True:
        if not driver.is_leader:
            fresh = True
            await driver.wait_leader_change()
            continue
        if not fresh:
            with trio.move_on_after(interval):
                await driver.wait_leader_change()  # paces blocks; wakes early if deposed
                continue
        fresh = False
        data = build_block()
        if data is None:
            continue
        try:
            idx = driver.propose(data)
        except ProposalDropped:
            continue  # lost leadership (or a transfer started) in between
        with trio.move_on_after(interval * 50):  # don't wait forever on a stuck commit
            await driver.wait_applied(idx)


async def run_raft_driver(
    driver: RaftDriver, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Service entry point: run ``driver`` until cancelled."""
    await driver.run(task_status=task_status)


__all__ = [
    "DriverConfig",
    "DriverStatistics",
    "RaftApplication",
    "RaftDriver",
    "RaftTransport",
    "run_block_producer",
    "run_raft_driver",
]
