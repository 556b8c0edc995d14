"""Fault-injection scenarios on a live local testnet and the invariants checked after each.

Theory of operation
-------------------
A scenario runs steady transaction load (:mod:`tools.chaos.load`) against a
:class:`~tools.chaos.cluster.Cluster` while it injects faults, one at a time:

* ``kill``: SIGKILL a random node, let the rest commit, restart it;
* ``kill-leader``: the same for the current leader;
* ``pause``: SIGSTOP a minority node (one of four) and SIGCONT it later. This is the
  partition fallback: the node is cut from everyone for the pause (network namespaces work on
  this machine as root, but ``testnet init`` binds every node to 127.0.0.1, so a veth set-up
  would need per-node addresses; see the report of issue 8). Checked: the paused node's head
  does not move while isolated, the majority keeps committing, and when it returns (a deposed
  leader, if it was one) nothing it proposes conflicts with the majority's chain;
* ``clock-jump``: the leader's block-time clock jumps forward (:data:`CLOCK_JUMP_MS`) and then
  backward (the same amount behind true time) through the test-only hook of
  ``p2pmkt.node.clock``, each for a few blocks under load. Checked: the chain keeps committing,
  the forward jump did reach block times (else the hook is dead), and block times stay
  strictly increasing (checked at the end for every run, see below);
* ``slow-leader``: the leader's outgoing Raft messages wait 200 ms and 30 % of them are lost
  (:data:`SLOW_LEADER`), through the test-only hook of ``p2pmkt.net.faults``, the stand-in
  for ``tc netem`` (this machine's kernel has no ``sch_netem``), for a few blocks under load.
  Checked: the chain keeps committing (the leader may be voted out meanwhile);
* ``lossy-net``: the same for every node, milder (:data:`LOSSY_NET`: 50 ms, 10 %);
* ``map-full``: the node the caller gave a small LMDB map (:meth:`Cluster.set_storage`, before
  it starts) fills it under load, grows it to its ceiling and must then stop cleanly: exit
  status 2 and the ``StorageFull`` advice in its log, not a crash. The rest keep committing;
  restarted with ``--max-map-size`` raised it resumes from its last committed block and
  catches up (the final checks then hold it to identical hashes at every height).

After the faults the load drains (every submitted transaction commits, with a deadline) and
:func:`check_invariants` verifies, over RPC only:

1. no height ever had two blocks: every ``height → hash`` any node reported during the run
   (the tracker records them all) agrees, and all nodes agree at every height at the end;
2. every transaction acknowledged as committed to a client (the tracker saw it in a block a
   node reported) is in the final chain, at the height it was acknowledged at, on every node;
3. all nodes reach the same head; since each header carries its parent's state root
   (``Header.state``), equal block hashes at every height imply equal state roots below the
   head;
4. block times are strictly increasing along the final chain (whatever the clocks did).
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from .cluster import Cluster, block_hashes, block_txids, submitter_key, wait_leader
from .load import Sender, Tracker, presign, run_sender, run_tracker, summary_errors

FAULTS = ("kill", "kill-leader", "pause")
NETNS_FAULTS = ("cut", "cut-leader")
NODE_FAULTS = ("clock-jump", "map-full", "slow-leader", "lossy-net")
"""In-node faults; ``map-full`` needs a node given a small map before the cluster starts."""

SLOW_LEADER: dict[str, Any] = {"delay_ms": 200, "loss": 0.3}
"""The ``slow-leader`` fault: the leader's outgoing Raft messages (appends, heartbeats, votes)."""

LOSSY_NET: dict[str, Any] = {"delay_ms": 50, "loss": 0.1}
"""The ``lossy-net`` fault: every node's outgoing Raft messages."""

_T = TypeVar("_T")

CLOCK_JUMP_MS = 3_600_000
"""How far the ``clock-jump`` fault moves the leader's clock: one hour ahead, then behind."""

MAP_FULL_RESTART_ARGS = ("--max-map-size", "1GiB")
"""How the ``map-full`` victim is restarted: the CLI option an operator would use."""


@dataclass
class Report:
    faults: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    acked: int = 0
    final_height: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each phase: leader, faults, drain, checks."""
    block_times: list[int] = field(default_factory=list)
    """Header time of every block of the final chain, heights 1.. (for clock checks)."""

    def ok(self) -> bool:
        return not self.violations


async def _head(cluster: Cluster, name: str) -> int | None:
    from p2pmkt.client import open_client

    try:
        with trio.fail_after(2):
            async with open_client(cluster.addr(name)) as c:
                return int((await c.head()).height)
    except Exception as exc:
        if isinstance(exc, trio.Cancelled):
            raise
        return None


async def _wait_blocks(tracker: Tracker, count: int, limit: float) -> bool:
    """Wait until ``count`` more blocks are seen (False if not within ``limit`` seconds)."""
    goal = tracker.height + count
    with trio.move_on_after(limit):
        while tracker.height < goal:
            await tracker.changed.wait()
        return True
    return False


def _raft_fault_logged(cluster: Cluster, names: list[str]) -> bool:
    """Whether each of ``names`` logged that it took a Raft fault (the hook was read: a fault
    that never reached the nodes would pass every check vacuously)."""
    return all("fault_raft value=RaftFault(delay=" in cluster.log_tail(n, 2000) for n in names)


async def _wait_exit(cluster: Cluster, name: str, limit: float) -> int | None:
    """Poll until ``name``'s process has exited; its exit status (None if not within ``limit``)."""
    with trio.move_on_after(limit):
        while True:
            code = cluster.exit_status(name)
            if code is not None:
                return code
            await trio.sleep(0.1)  # polling a child process, with a deadline
    return None


async def _wait_head(cluster: Cluster, name: str, height: int, limit: float) -> bool:
    """Poll until ``name`` reports a head of at least ``height`` (False if not within ``limit``)."""
    with trio.move_on_after(limit):
        while True:
            if (await _head(cluster, name) or 0) >= height:
                return True
            await trio.sleep(0.1)  # polling a remote head, with a deadline
    return False


async def inject(cluster: Cluster, kind: str, tracker: Tracker, alive: list[str], rng: random.Random,
                 *, hold_blocks: int = 3) -> dict[str, Any]:
    """One fault of ``kind``; returns what happened. The cluster is whole again on return."""
    # The map-full victim may have stopped already: the others must agree without it.
    others = [n for n in cluster.names if not (kind == "map-full" and n == cluster.small_map)]
    leader = await wait_leader(cluster, others, timeout=60, connected=kind != "map-full")
    victim = leader if kind == "kill-leader" else rng.choice(cluster.names)
    record: dict[str, Any] = {"fault": kind, "node": victim, "was_leader": victim == leader,
                              "height_before": tracker.height}
    t0 = time.monotonic()
    if kind in ("kill", "kill-leader"):
        alive.remove(victim)
        cluster.kill(victim)
        record["majority_progressed"] = await _wait_blocks(tracker, hold_blocks, 30)
        cluster.start([victim])
        alive.append(victim)
    elif kind == "pause":
        before = await _head(cluster, victim)
        alive.remove(victim)
        cluster.pause(victim)
        record["majority_progressed"] = await _wait_blocks(tracker, hold_blocks, 30)
        # The frozen minority cannot move; what matters is what it does when it comes back.
        record["minority_height_while_isolated"] = before
        cluster.resume(victim)
        alive.append(victim)
    elif kind in ("cut", "cut-leader"):
        if kind == "cut-leader":
            victim = leader
            record.update(node=victim, was_leader=True)
        alive.remove(victim)
        cluster.cut(victim)
        before = await _head(cluster, victim)
        record["majority_progressed"] = await _wait_blocks(tracker, hold_blocks, 30)
        during = await _head(cluster, victim)
        record["minority_heads"] = (before, during)
        record["minority_committed"] = (during or 0) - (before or 0)
        cluster.heal(victim)
        alive.append(victim)
    elif kind == "clock-jump":
        victim = leader
        record.update(node=victim, was_leader=True)
        start_ms = int(time.time() * 1000)
        cluster.set_clock_offset(victim, CLOCK_JUMP_MS)
        ahead = await _wait_blocks(tracker, hold_blocks, 30)
        record["forward_from_height"] = record["height_before"]
        cluster.set_clock_offset(victim, -CLOCK_JUMP_MS)
        record["backward_from_height"] = tracker.height
        behind = await _wait_blocks(tracker, hold_blocks, 30)
        cluster.set_clock_offset(victim, 0)
        record["majority_progressed"] = ahead and behind
        record["jump_started_ms"] = start_ms
    elif kind == "slow-leader":
        victim = leader
        record.update(node=victim, was_leader=True, **SLOW_LEADER)
        cluster.set_raft_fault(victim, **SLOW_LEADER)
        record["majority_progressed"] = await _wait_blocks(tracker, hold_blocks, 30)
        record["in_force"] = _raft_fault_logged(cluster, [victim])
        cluster.set_raft_fault(victim)
    elif kind == "lossy-net":
        record.update(node="all", was_leader=True, **LOSSY_NET)
        for name in alive:
            cluster.set_raft_fault(name, **LOSSY_NET)
        record["majority_progressed"] = await _wait_blocks(tracker, hold_blocks, 30)
        record["in_force"] = _raft_fault_logged(cluster, alive)
        for name in cluster.names:
            cluster.set_raft_fault(name)
    elif kind == "map-full":
        victim = cluster.small_map or ""
        if not victim:
            raise ValueError("map-full needs a node given a small map: Cluster.set_storage before start")
        record.update(node=victim, was_leader=victim == leader)
        record["exit_status"] = await _wait_exit(cluster, victim, 60)
        alive.remove(victim)
        record["height_at_stop"] = tracker.height
        text = cluster.log_tail(victim, 400)
        record["grew"] = "lmdb_map_grown" in text
        record["clean_stop"] = record["exit_status"] == 2 and "is full at its ceiling" in text
        if not record["clean_stop"]:
            record["log_tail"] = cluster.log_tail(victim, 15)
        record["majority_progressed"] = await _wait_blocks(tracker, hold_blocks, 30)
        cluster.start([victim], args=MAP_FULL_RESTART_ARGS)
        alive.append(victim)
        goal = tracker.height
        record["caught_up"] = await _wait_head(cluster, victim, goal, 60)
    else:
        raise ValueError(f"unknown fault {kind!r}; known: {FAULTS + NETNS_FAULTS + NODE_FAULTS}")
    await wait_leader(cluster, timeout=60, connected=False)
    t_back = time.monotonic()
    try:
        await wait_leader(cluster, timeout=30, connected=True)
        record["reconnected_s"] = round(time.monotonic() - t_back, 2)
    except trio.TooSlowError as exc:
        record["reconnected_s"] = None  # reported, not an invariant: see Report.warnings
        record["not_reconnected"] = str(exc)
    record["seconds"] = round(time.monotonic() - t0, 2)
    return record


async def _read_node(
    cluster: Cluster, name: str, report: Report,
    read: Callable[[str], Awaitable[dict[int, _T]]], *, limit: float = 30.0,
) -> dict[int, _T]:
    """``read(name's address)``, retried while the node cannot be reached, for ``limit`` s.

    A node that stays unreachable is a violation that says why (its process's exit status
    and the tail of its log), not an exception: the other checks still run (on an empty
    result for that node).
    """
    from p2pmkt.net.errors import NetworkError

    last: Exception | None = None
    with trio.move_on_after(limit):
        while True:
            try:
                return await read(cluster.addr(name))
            except NetworkError as exc:
                last = exc
                await trio.sleep(0.5)  # the node is not serving (yet): retried, with the deadline
    status = cluster.exit_status(name)
    state = "running" if status is None else f"exited with status {status}"
    report.violations.append(f"{name} unreachable for the final checks ({state}): {last}\n"
                             f"{cluster.log_tail(name, 20)}")
    return {}


async def check_invariants(cluster: Cluster, tracker: Tracker, report: Report, *, settle: float = 60) -> None:
    """See the module docstring; appends to ``report.violations``."""
    # All nodes reach one head (no load is running now).
    heads: dict[str, int | None] = {}
    with trio.move_on_after(settle):
        while True:
            heads = {n: await _head(cluster, n) for n in cluster.names}
            vals = set(heads.values())
            if None not in vals and len(vals) == 1 and max(vals) >= tracker.height:  # type: ignore[type-var]
                break
            await trio.sleep(0.1)  # polling remote heads, with a deadline
    vals = set(heads.values())
    if None in vals or len(vals) != 1:
        report.violations.append(f"nodes did not converge on one head within {settle} s: {heads}")
        top = min(v for v in vals if v is not None) if any(v is not None for v in vals) else 0
    else:
        top = int(next(iter(vals)))
    report.final_height = top
    for h, old, new, src in tracker.conflicts:
        report.violations.append(f"two blocks at height {h}: {old.hex()[:16]} and {new.hex()[:16]} (from {src})")
    per_node = {}
    for n in cluster.names:
        per_node[n] = await _read_node(cluster, n, report, lambda addr: block_hashes(addr, 1, top))
    ref = per_node[cluster.names[0]]
    for n, hs in per_node.items():
        diff = [h for h in range(1, top + 1) if hs.get(h) != ref.get(h)]
        if diff:
            report.violations.append(f"{n} differs from {cluster.names[0]} at heights {diff[:10]}")
    for h, bh in tracker.hashes.items():
        if h <= top and ref.get(h) != bh:
            report.violations.append(f"height {h}: acknowledged hash {bh.hex()[:16]} is not in the final chain")
    # Acknowledged transactions are in the final chain at the height they were acknowledged at.
    txs = await _read_node(cluster, cluster.names[0], report, lambda addr: block_txids(addr, 1, top))
    where = {t: h for h, (_bh, ids, _t) in txs.items() for t in ids}
    times = [txs[h][2] for h in range(1, top + 1) if h in txs]
    report.block_times = times
    backwards = [h + 2 for h, (a, b) in enumerate(itertools.pairwise(times)) if b <= a]
    if backwards:
        report.violations.append(f"block time does not increase at heights {backwards[:10]}")
    lost = [(t, h) for t, (h, _) in tracker.committed.items() if where.get(t) != h]
    report.acked = len(tracker.committed)
    if lost:
        report.violations.append(f"{len(lost)} acknowledged transactions not in the final chain where "
                                 f"acknowledged, e.g. {lost[0][0].hex()[:16]} at {lost[0][1]}")


async def run_scenario(
    cluster: Cluster, *, faults: list[str], senders: int = 4, rate: float = 40.0,
    seed: int = 1, drain: float = 60.0, log: Callable[[str], Any] = print,
) -> Report:
    """Load + ``faults`` in order + drain + invariants. The cluster must be started."""
    rng = random.Random(seed)
    report = Report()
    t0 = time.monotonic()
    await wait_leader(cluster, timeout=60)
    mark = time.monotonic()
    report.phases["leader"] = round(mark - t0, 1)

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        report.phases[name] = round(now - mark, 1)
        mark = now

    keys = [submitter_key(i) for i in range(senders)]
    per_key = int(rate / senders * (30 + 30 * len(faults)))  # more than needed: see stop_offering
    batches = presign(keys, cluster.net.chain_id, per_key)
    tracker = Tracker()
    alive = list(cluster.names)
    # Half the senders use tx.submit_batch (4 per request), so batched submission is held to
    # the same no-loss checks under faults as one-at-a-time submission.
    ss = [Sender(txs, rate=rate / senders, window=32, batch=4 if i % 2 else 1)
          for i, txs in enumerate(batches)]

    def live() -> list[str]:
        names = [n for n in cluster.names if n in alive]
        rng.shuffle(names)
        return names

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_tracker, cluster, tracker, live)
        async with trio.open_nursery() as load:
            for s in ss:
                load.start_soon(run_sender, cluster, s, tracker, live)
            await _wait_blocks(tracker, 2, 30)
            for kind in faults:
                rec = await inject(cluster, kind, tracker, alive, rng)
                log(f"  fault {rec}")
                report.faults.append(rec)
                if rec.get("reconnected_s", 0) is None:
                    report.warnings.append(f"not fully reconnected 30 s after {kind}: {rec['not_reconnected']}")
                if rec.get("minority_committed"):
                    report.violations.append(f"the isolated minority committed blocks: {rec}")
                if not rec.get("majority_progressed", True):
                    report.violations.append(f"the majority committed nothing during {rec}")
                if kind == "map-full" and not (rec["clean_stop"] and rec["caught_up"]):
                    report.violations.append(f"the node with a full map did not stop cleanly "
                                             f"and catch up after its restart: {rec}")
            phase("faults")
            # Drain: stop offering new load; everything already submitted must commit.
            for s in ss:
                s.stop_offering()
            with trio.move_on_after(drain):
                while any(s.done < len(s.txs) for s in ss):
                    await tracker.changed.wait()
            load.cancel_scope.cancel()
        missing = sum(len(s.txs) - s.done for s in ss)
        if missing:
            report.violations.append(f"{missing} submitted transactions never committed within {drain} s of draining")
        nursery.cancel_scope.cancel()
    report.errors = summary_errors(ss)
    phase("drain")
    await check_invariants(cluster, tracker, report)
    phase("checks")
    report.seconds = round(time.monotonic() - t0, 1)
    return report
