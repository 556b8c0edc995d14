"""A deterministic in-process Raft cluster and a randomized fault simulation.

Theory of operation
-------------------
:class:`Cluster` wires several :class:`p2pmkt.raft.RaftCore` to :class:`MemoryRaftLogStore`
and a simulated network. It follows the driver ordering rule of ``p2pmkt.raft.core`` in
:meth:`Cluster.process_ready` (persist, send, apply, advance), so what it finds is what the
real driver would do. Nothing here reads a clock or the global ``random``: every choice comes
from a seeded ``random.Random``, so a seed replays exactly.

Two ways to drive it:

* by hand, for table-driven tests: ``tick``, ``process_ready``, ``deliver``, ``stabilize``,
  ``isolate``/``cut``/``heal``/``drop``, ``crash``/``restart``;
* :func:`run_simulation` (and ``tools/raft_soak.py``): random ticks, proposals, message loss,
  duplication, delay and reordering, partitions, crash-restarts (which lose every bit of state
  not persisted by a completed save: the core's unstable tail and unsent messages), snapshots
  with compaction, and membership changes; :class:`InvariantChecker` runs after every step.

The application state machine here is a hash chain over applied entries; its snapshot is that
hash. That makes "no two nodes apply different data at the same index" checkable even across
snapshot restores.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from p2pmkt.raft import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryKind,
    HardState,
    Message,
    ProposalDropped,
    RaftCore,
    RaftCoreConfig,
    Snapshot,
    StateRole,
    bootstrap_log,
)
from p2pmkt.storage.raftlog import MemoryRaftLogStore
from p2pmkt.types import NodeId


class SimFailure(AssertionError):
    """An invariant broke. The message names the seed and how to replay it."""


def _chain(state: bytes, e: Entry) -> bytes:
    return hashlib.sha256(state + e.index.to_bytes(8, "big") + e.data).digest()


@dataclass(slots=True)
class SimNode:
    """One node: durable parts (store, app) survive crash(); ``core`` does not."""

    id: NodeId
    store: _CrashableStore
    core: RaftCore | None
    app_state: bytes = b"\x00" * 32
    app_index: int = 0
    applied_data: list[bytes] = field(default_factory=list)
    """Data of applied non-empty normal entries, in order (blocks, for tests)."""
    read_states: dict[bytes, int] = field(default_factory=dict)
    """ReadIndex answers seen in Readies: context -> index."""

    @property
    def up(self) -> bool:
        return self.core is not None

    @property
    def c(self) -> RaftCore:
        assert self.core is not None, f"node {self.id} is down"
        return self.core


class _CrashableStore(MemoryRaftLogStore):
    """MemoryRaftLogStore whose unsynced hard state is lost in a crash (like an LMDB
    environment opened without sync: a commit-only update may not survive)."""

    def __init__(self) -> None:
        super().__init__()
        self.synced_hard = self.hard

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        super().save(hard_state, entries, snapshot, sync=sync)
        if sync:
            self.synced_hard = self.hard

    def crash(self) -> None:
        self.hard = self.synced_hard


class Cluster:
    """A set of nodes and a network between them. Node ids are given as strings."""

    def __init__(
        self,
        voters: Iterable[str],
        *,
        learners: Iterable[str] = (),
        spares: Iterable[str] = (),
        seed: int = 0,
        pre_vote: bool = True,
        check_quorum: bool = True,
        election_tick: int = 10,
        heartbeat_tick: int = 1,
        max_inflight: int = 64,
        max_size_per_msg: int = 1 << 20,
    ) -> None:
        self.seed = seed
        self.knobs = dict(
            pre_vote=pre_vote,
            check_quorum=check_quorum,
            election_tick=election_tick,
            heartbeat_tick=heartbeat_tick,
            max_inflight=max_inflight,
            max_size_per_msg=max_size_per_msg,
        )
        self.nodes: dict[NodeId, SimNode] = {}
        self.pending: list[Message] = []
        """Messages sent and not yet delivered (the wire), in send order."""
        self.cuts: set[tuple[NodeId, NodeId]] = set()
        self.drop_filter: set[str] = set()
        """Message class names to drop entirely (e.g. {"MsgApp"})."""
        self.checker = InvariantChecker(seed)
        self.check_every_message = True
        """False: deliveries check Election Safety only; call check() yourself per step."""
        vs = [NodeId(v) for v in voters]
        ls = [NodeId(v) for v in learners]
        hs, ents = bootstrap_log(vs, ls)
        for n in [*vs, *ls, *(NodeId(s) for s in spares)]:
            store = _CrashableStore()
            if n in vs or n in ls:
                store.save(hs, ents)
            self.nodes[n] = SimNode(n, store, None)
            self._boot(self.nodes[n])

    # ---- lifecycle -------------------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        snap = node.store.snapshot()
        if snap.meta.index > node.app_index:
            # Crashed between persisting a received snapshot and restoring the app from it.
            node.app_state, node.app_index = snap.data, snap.meta.index
        cfg = RaftCoreConfig(id=node.id, applied=node.app_index, **self.knobs)  # type: ignore[arg-type]
        rng = random.Random(f"{self.seed}/{node.id}/{node.store.saves}")
        node.core = RaftCore(cfg, node.store, rng)

    def crash(self, n: str) -> None:
        """Lose everything not yet persisted (or persisted but not synced)."""
        node = self.nodes[NodeId(n)]
        node.core = None
        node.store.crash()

    def restart(self, n: str) -> None:
        node = self.nodes[NodeId(n)]
        if node.core is None:
            self._boot(node)

    # ---- the network -----------------------------------------------------------------------

    def cut(self, a: str, b: str) -> None:
        self.cuts |= {(NodeId(a), NodeId(b)), (NodeId(b), NodeId(a))}

    def isolate(self, n: str) -> None:
        for other in self.nodes:
            if other != n:
                self.cut(n, other)

    def partition(self, *groups: Iterable[str]) -> None:
        gs = [set(g) for g in groups]
        for i, g in enumerate(gs):
            for h in gs[i + 1 :]:
                for a in g:
                    for b in h:
                        self.cut(a, b)

    def heal(self) -> None:
        self.cuts.clear()
        self.drop_filter.clear()

    def drop(self, *kinds: str) -> None:
        self.drop_filter |= set(kinds)

    def can_deliver(self, m: Message) -> bool:
        node = self.nodes.get(m.to)
        return (
            node is not None
            and node.up
            and (m.frm, m.to) not in self.cuts
            and type(m).__name__ not in self.drop_filter
        )

    def deliver_msg(self, m: Message) -> bool:
        if not self.can_deliver(m):
            return False
        self.nodes[m.to].c.step(m)
        if self.check_every_message:
            self.check()
        else:
            self.checker.check_leader(self.nodes[m.to])
        return True

    def deliver(self, to: str | None = None) -> list[Message]:
        """Deliver pending messages (to one node, or all) in send order; returns them."""
        keep, out = [], []
        for m in self.pending:
            if to is None or m.to == to:
                out.append(m)
            else:
                keep.append(m)
        self.pending = keep
        for m in out:
            self.deliver_msg(m)
        return out

    # ---- driving ---------------------------------------------------------------------------

    def tick(self, n: str, times: int = 1) -> None:
        for _ in range(times):
            self.nodes[NodeId(n)].c.tick()
            self.check()

    def process_ready(self, n: str, *, crash_after_persist: bool = False) -> list[Message]:
        """One turn of the driver loop for node ``n``; returns the messages it sent.

        With ``crash_after_persist`` the node dies between steps 1 and 2 of the ordering rule.
        """
        node = self.nodes[NodeId(n)]
        core = node.c
        if not core.has_ready():
            return []
        rd = core.ready()
        node.store.save(rd.hard_state, rd.entries, rd.snapshot, sync=rd.must_sync)  # 1 persist
        if crash_after_persist:
            self.crash(n)
            return []
        self.pending.extend(rd.messages)  # 2 send
        if rd.snapshot is not None and rd.snapshot.meta.index > node.app_index:  # 3 apply
            node.app_state, node.app_index = rd.snapshot.data, rd.snapshot.meta.index
            self.checker.on_apply_state(node, node.app_index, node.app_state)
        for e in rd.committed_entries:
            if e.index <= node.app_index:
                continue
            assert e.index == node.app_index + 1, f"{n} applies {e.index} after {node.app_index}"
            node.app_state, node.app_index = _chain(node.app_state, e), e.index
            if e.kind is EntryKind.NORMAL and e.data:
                node.applied_data.append(e.data)
            self.checker.on_apply_state(node, e.index, node.app_state)
        for r in rd.read_states:
            node.read_states[r.context] = r.index
            self.checker.on_read_state(r.context, r.index)
        core.advance(rd)  # 4 advance
        if self.check_every_message:
            self.check()
        return list(rd.messages)

    def stabilize(self, max_rounds: int = 1000) -> None:
        """Process every Ready and deliver every message until nothing moves."""
        for _ in range(max_rounds):
            moved = False
            for n, node in self.nodes.items():
                if node.up and node.c.has_ready():
                    self.process_ready(n)
                    moved = True
            if self.pending:
                self.deliver()
                moved = True
            if not moved:
                return
        raise SimFailure(f"seed {self.seed}: cluster did not stabilize in {max_rounds} rounds")

    def tick_all(self, times: int = 1) -> None:
        """Tick every live node once per round and stabilize after each round."""
        for _ in range(times):
            for n, node in self.nodes.items():
                if node.up:
                    self.tick(n)
            self.stabilize()

    def elect_any(self, max_rounds: int = 100) -> NodeId:
        """Tick everyone until some node leads (the natural way, via timeouts)."""
        for _ in range(max_rounds):
            self.tick_all()
            lead = self.leader()
            if lead is not None and all(
                nd.c.leader == lead
                for nd in self.nodes.values()
                if nd.up and nd.id in nd.c.conf.voters
            ):
                return lead
        raise SimFailure(f"seed {self.seed}: no leader after {max_rounds} rounds")

    def campaign(self, n: str) -> None:
        self.nodes[NodeId(n)].c.campaign()
        self.check()

    def elect(self, n: str) -> None:
        """Make ``n`` leader by campaigning and stabilizing; raises if it does not win."""
        self.campaign(n)
        self.stabilize()
        if self.nodes[NodeId(n)].c.role is not StateRole.LEADER:
            raise SimFailure(f"{n} failed to become leader")

    def leader(self) -> NodeId | None:
        """The up leader with the highest term, if any."""
        best: SimNode | None = None
        for node in self.nodes.values():
            is_leader = node.up and node.c.role is StateRole.LEADER
            if is_leader and (best is None or node.c.term > best.c.term):
                best = node
        return best.id if best else None

    def snapshot(self, n: str, *, keep: int = 0) -> None:
        """Node ``n`` snapshots its applied state and compacts the log to ``keep`` entries
        before it."""
        node = self.nodes[NodeId(n)]
        if node.app_index <= node.store.snapshot().meta.index:
            return
        node.store.create_snapshot(node.app_index, node.c.conf, node.app_state)
        node.store.compact(max(node.store.first_index() - 1, node.app_index - keep))

    def check(self) -> None:
        self.checker.check(self)


class InvariantChecker:
    """Checks the Raft safety properties over the whole cluster (Figure 3 of the paper)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.leaders: dict[int, NodeId] = {}
        self.entries: dict[tuple[int, int], tuple[bytes, int | None]] = {}
        self.committed: dict[int, tuple[int, int]] = {}  # index -> (entry term, seen at term)
        self.applied: dict[int, bytes] = {}
        self.max_committed = 0
        self._seen: dict[NodeId, object] = {}
        self.read_floor: dict[bytes, int] = {}
        self.replay = f"python tools/raft_soak.py --seed {seed} -v"

    def fail(self, what: str) -> None:
        raise SimFailure(f"seed {self.seed}: {what}\nreplay with: {self.replay}")

    def on_apply_state(self, node: SimNode, index: int, state: bytes) -> None:
        # State Machine Safety: same index => same state (a hash of everything applied).
        prev = self.applied.setdefault(index, state)
        if prev != state:
            self.fail(f"state machine safety: {node.id} applied different data at {index}")

    def on_read_request(self, ctx: bytes, cluster: Cluster) -> None:
        # Linearizability of ReadIndex: the answer must cover every entry committed anywhere
        # before the request was made.
        self.read_floor[ctx] = max(
            (n.c.log.committed for n in cluster.nodes.values() if n.up), default=0
        )

    def on_read_state(self, ctx: bytes, index: int) -> None:
        floor = self.read_floor.pop(ctx, None)
        if floor is not None and index < floor:
            self.fail(f"read index: {ctx!r} answered {index} < commit {floor} at request time")

    def check(self, cluster: Cluster) -> None:
        for node in cluster.nodes.values():
            if not node.up:
                continue
            c = node.c
            # Election Safety: at most one leader per term.
            if c.role is StateRole.LEADER:
                other = self.leaders.setdefault(c.term, c.id)
                if other != c.id:
                    self.fail(f"election safety: {other} and {c.id} both lead term {c.term}")
            log = c.log
            first, last = log.first_index(), log.last_index()
            key = (last, log.last_term(), log.committed, c.role, c.term, first)
            if self._seen.get(c.id) == key:
                continue  # nothing changed on this node since the last check
            self._seen[c.id] = key
            # Log Matching: (index, term) identifies the entry and its predecessor's term.
            lo = max(first, last - 8)  # new entries appear at the tail; older ones were seen
            for i in range(lo, last + 1):
                e = log.slice(i, i + 1)[0]
                prev_t = log.term(i - 1)
                rec = self.entries.setdefault((i, e.term), (e.data, prev_t))
                if rec[0] != e.data or (
                    rec[1] is not None and prev_t is not None and rec[1] != prev_t
                ):
                    self.fail(f"log matching: {c.id} has a different entry at ({i}, {e.term})")
            # Committed entries never change, and stay in every later leader's log.
            for i in range(max(first, log.committed - 8), log.committed + 1):
                t = log.term(i)
                if t is None:
                    continue
                seen = self.committed.setdefault(i, (t, c.term))
                self.max_committed = max(self.max_committed, i)
                if seen[0] != t:
                    self.fail(f"committed entry {i} changed term {seen[0]} -> {t} on {c.id}")
            if c.role is StateRole.LEADER:
                # Leader Completeness. Log matching makes the newest committed entry that was
                # committed before this term stand for all earlier ones.
                for i in range(self.max_committed, max(0, self.max_committed - 16), -1):
                    crec = self.committed.get(i)
                    if crec is None or crec[1] >= c.term:
                        continue
                    if i > last or (i >= first - 1 and log.term(i) != crec[0]):
                        self.fail(f"leader completeness: leader {c.id} lacks committed {i}")
                    break

    def check_leader(self, node: SimNode) -> None:
        """The cheap part of check(): Election Safety for one node (after every message)."""
        c = node.core
        if c is not None and c.role is StateRole.LEADER:
            other = self.leaders.setdefault(c.term, c.id)
            if other != c.id:
                self.fail(f"election safety: {other} and {c.id} both lead term {c.term}")


@dataclass(frozen=True, slots=True)
class SimConfig:
    nodes: int = 3
    steps: int = 200
    drop: float = 0.05
    dup: float = 0.03
    max_delay: int = 3
    partition: float = 0.02
    crash: float = 0.01
    propose: float = 0.3
    snapshot: float = 0.02
    conf_change: float = 0.02
    transfer: float = 0.01
    read_index: float = 0.05
    leader_lost: float = 0.03
    """Chance per step that a random node is told its leader's connection closed (true
    after a crash, a false alarm otherwise): a liveness hint that must never break safety."""
    settle_steps: int = 150


def run_simulation(seed: int, cfg: SimConfig = SimConfig(), *, verbose: bool = False) -> Cluster:
    """Run one randomized simulation; raises SimFailure (naming the seed) on a violation.

    After ``cfg.steps`` chaotic steps, faults stop and the cluster must elect a leader and
    commit a final proposal on every live voter within ``cfg.settle_steps`` (liveness).
    """
    rng = random.Random(seed)
    ids = [str(i + 1) for i in range(cfg.nodes)]
    spare = str(cfg.nodes + 1)
    cl = Cluster(ids, spares=[spare], seed=seed, election_tick=10, max_inflight=8)
    cl.check_every_message = False
    cl.checker.replay = f"python tools/raft_soak.py --seed {seed} --steps {cfg.steps} -v"
    in_flight: list[tuple[int, int, Message]] = []
    seq = 0
    now = 0
    down_until: dict[str, int] = {}
    partition_until = -1
    proposals = 0

    def log(msg: str) -> None:
        if verbose:
            print(f"[{now:4}] {msg}")

    def step(chaos: bool) -> None:
        nonlocal seq, partition_until, proposals
        for n in [*ids, spare]:
            node = cl.nodes[NodeId(n)]
            if not node.up:
                if now >= down_until.get(n, 0):
                    cl.restart(n)
                    log(f"restart {n}")
                continue
            node.c.tick()
            if chaos and rng.random() < 0.1:
                continue  # a slow disk: this node's Ready waits a step
            crash_mid = chaos and rng.random() < cfg.crash / 4
            sent = cl.process_ready(n, crash_after_persist=crash_mid)
            if crash_mid:
                down_until[n] = now + rng.randrange(1, 30)
                log(f"crash {n} after persist")
            cl.pending.clear()
            for m in sent:
                if chaos and rng.random() < cfg.drop:
                    continue
                copies = 2 if chaos and rng.random() < cfg.dup else 1
                for _ in range(copies):
                    delay = rng.randrange(cfg.max_delay + 1) if chaos else 0
                    in_flight.append((now + delay, seq, m))
                    seq += 1
        if chaos and rng.random() < cfg.crash:
            victim = rng.choice(ids)
            if cl.nodes[NodeId(victim)].up:
                cl.crash(victim)
                down_until[victim] = now + rng.randrange(1, 40)
                log(f"crash {victim}")
        if chaos and partition_until < now and rng.random() < cfg.partition:
            members = [*ids, spare]
            rng.shuffle(members)
            k = rng.randrange(1, len(members))
            cl.heal()
            cl.partition(members[:k], members[k:])
            partition_until = now + rng.randrange(5, 60)
            log(f"partition {members[:k]} | {members[k:]}")
        elif partition_until == now or not chaos:
            cl.heal()
        lead = cl.leader()
        if lead is not None and rng.random() < cfg.propose:
            try:
                cl.nodes[lead].c.propose(f"block-{seed}-{proposals}".encode())
                proposals += 1
            except ProposalDropped:
                pass
        if chaos and lead is not None and rng.random() < cfg.conf_change:
            _random_conf_change(cl, lead, spare, rng, log)
        if chaos and lead is not None and rng.random() < cfg.transfer:
            lc = cl.nodes[lead].c
            others = [v for v in lc.conf.voters if v != lead]
            if others:
                to = rng.choice(others)
                try:
                    lc.transfer_leader(to)
                    log(f"transfer {lead} -> {to}")
                except ProposalDropped:
                    pass
        if rng.random() < cfg.read_index:
            reader = cl.nodes[NodeId(rng.choice(ids))]
            if reader.up:
                ctx = f"{reader.id}/{now}".encode()
                try:
                    reader.c.read_index(ctx)
                    cl.checker.on_read_request(ctx, cl)
                except ProposalDropped:
                    pass
        if chaos and rng.random() < cfg.leader_lost:
            told = cl.nodes[NodeId(rng.choice(ids))]
            if told.up:
                told.c.leader_lost()
                log(f"leader_lost told to {told.id}")
        if chaos and rng.random() < cfg.snapshot:
            n = rng.choice([*ids, spare])
            if cl.nodes[NodeId(n)].up:
                cl.snapshot(n, keep=rng.randrange(0, 5))
        # Deliver what is due; equal due times go in random order (reordering).
        due = [x for x in in_flight if x[0] <= now]
        in_flight[:] = [x for x in in_flight if x[0] > now]
        rng.shuffle(due)
        for _, _, m in due:
            cl.deliver_msg(m)
        cl.check()

    for _ in range(cfg.steps):
        step(chaos=True)
        now += 1
    # Settle: everyone back, no faults; there must be a leader that commits a new proposal.
    for n in down_until:
        cl.restart(n)
    cl.heal()
    target = None
    for _ in range(cfg.settle_steps):
        step(chaos=False)
        now += 1
        lead = cl.leader()
        if lead is not None and target is None:
            try:
                target = cl.nodes[lead].c.propose(b"final")
            except ProposalDropped:
                pass
        if target is not None:
            voters = cl.nodes[lead].c.conf.voters if lead else ()
            if voters and all(cl.nodes[v].up and cl.nodes[v].app_index >= target for v in voters):
                return cl
    cl.checker.fail(f"liveness: no commit of a final proposal within {cfg.settle_steps} steps")
    return cl


def _random_conf_change(
    cl: Cluster, lead: NodeId, spare: str, rng: random.Random, log: object
) -> None:
    c = cl.nodes[lead].c
    cs = c.conf
    options: list[ConfChange] = []
    sp = NodeId(spare)
    if sp not in cs.voters and sp not in cs.learners:
        options.append(ConfChange(ConfChangeType.ADD_LEARNER, sp))
    if sp in cs.learners:
        options.append(ConfChange(ConfChangeType.PROMOTE_LEARNER, sp))
    if len(cs.voters) > 3:
        options.append(ConfChange(ConfChangeType.REMOVE_VOTER, rng.choice(cs.voters)))
    if not options:
        return
    cc = rng.choice(options)
    try:
        c.propose_conf_change(cc)
        if callable(log):
            log(f"conf change {cc.type.name} {cc.node_id} on {lead}")
    except ProposalDropped:
        pass


__all__ = ["Cluster", "InvariantChecker", "SimConfig", "SimFailure", "SimNode", "run_simulation"]
