"""Raft benchmarks: commit throughput and leader fail-over time.

    python tools/bench/raft.py [--blocks 2000] [--size 1024] [--runs 3]

1. Throughput: a 3-node in-process cluster (RaftDriver + MemoryTransport + real LMDB with
   fsync in a temp dir); the leader proposes ``--blocks`` blocks of ``--size`` bytes keeping up
   to ``--window`` in flight; we report blocks committed (applied on every node) per second.
2. Fail-over: same cluster with real timeouts (tick 100 ms, election timeout 10-20 ticks);
   kill the leader, and time until a new leader commits a fresh block.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import lmdb
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from p2pmkt.node.memory_transport import MemoryNetwork
from p2pmkt.node.raft_driver import DriverConfig, RaftDriver
from p2pmkt.raft import Entry, Snapshot, bootstrap_log
from p2pmkt.storage.raftlog import LmdbRaftLogStore
from p2pmkt.types import NodeId, Term

IDS = [NodeId(f"0x{i:040x}") for i in (1, 2, 3)]


class _App:
    def __init__(self) -> None:
        self.applied = 0
        self.blocks = 0

    def last_applied(self) -> int:
        return self.applied

    def apply(self, entries: Sequence[Entry]) -> None:
        self.blocks += sum(1 for e in entries if e.data)
        self.applied = entries[-1].index

    def snapshot(self) -> bytes:
        return self.blocks.to_bytes(8, "big")

    def restore(self, snapshot: Snapshot) -> None:
        self.blocks = int.from_bytes(snapshot.data, "big")
        self.applied = snapshot.meta.index

    def leader_changed(self, leader: NodeId | None, term: Term) -> None:
        pass


class _Cluster:
    def __init__(self, tmp: Path, tick: float, in_thread: bool) -> None:
        self.net = MemoryNetwork(buffer=100_000)
        self.envs = [lmdb.open(str(tmp / n), max_dbs=8, map_size=1 << 30) for n in IDS]
        hs, ents = bootstrap_log(IDS)
        self.drivers: dict[NodeId, RaftDriver] = {}
        cfg = DriverConfig(tick_interval=tick, snapshot_every=5000, persist_in_thread=in_thread)
        for i, (n, env) in enumerate(zip(IDS, self.envs)):
            store = LmdbRaftLogStore(env)
            store.save(hs, ents)
            t = self.net.endpoint(n)
            self.drivers[n] = RaftDriver.create(
                n, store, t, t.incoming, _App(), config=cfg, rng=random.Random(i)
            )
        self.scopes = {n: trio.CancelScope() for n in IDS}

    async def start(self, nursery: trio.Nursery) -> None:
        for n, d in self.drivers.items():
            await nursery.start(self._run, d, self.scopes[n])

    @staticmethod
    async def _run(d: RaftDriver, scope: trio.CancelScope, *, task_status: object) -> None:
        with scope:
            await d.run(task_status=task_status)  # type: ignore[arg-type]

    async def leader(self, among: list[NodeId]) -> RaftDriver:
        while True:
            for n in among:
                if self.drivers[n].is_leader:
                    return self.drivers[n]
            async with trio.open_nursery() as nursery:
                for n in among:
                    nursery.start_soon(self._wake_on_change, self.drivers[n], nursery.cancel_scope)

    @staticmethod
    async def _wake_on_change(d: RaftDriver, scope: trio.CancelScope) -> None:
        await d.wait_leader_change()
        scope.cancel()

    def close(self) -> None:
        for e in self.envs:
            e.close()


async def bench_throughput(blocks: int, size: int, window: int, in_thread: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cl = _Cluster(Path(tmp), tick=0.05, in_thread=in_thread)
        async with trio.open_nursery() as nursery:
            await cl.start(nursery)
            lead = await cl.leader(IDS)
            payload = random.Random(0).randbytes(size)
            t0 = time.perf_counter()
            last = 0
            for i in range(blocks):
                if i >= window:
                    await lead.wait_applied(last - window + 1)
                last = lead.propose(payload)
            for d in cl.drivers.values():
                await d.wait_applied(last)
            dt = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
        cl.close()
    return blocks / dt


async def bench_failover() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cl = _Cluster(Path(tmp), tick=0.1, in_thread=False)
        async with trio.open_nursery() as nursery:
            await cl.start(nursery)
            lead = await cl.leader(IDS)
            await lead.wait_applied(lead.propose(b"warm-up"))
            await trio.sleep(0.5)  # steady state: heartbeats flowing (a benchmark, not a test)
            t0 = time.perf_counter()
            dead = lead.core.id
            cl.scopes[dead].cancel()
            cl.net.set_down(dead)
            rest = [n for n in IDS if n != dead]
            new = await cl.leader(rest)
            await new.wait_applied(new.propose(b"after fail-over"))
            dt = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
        cl.close()
    return dt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--blocks", type=int, default=2000)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    for in_thread in (False, True):
        rates = [
            trio.run(bench_throughput, a.blocks, a.size, a.window, in_thread) for _ in range(a.runs)
        ]
        where = "fsync in worker thread" if in_thread else "fsync on trio thread"
        print(
            f"throughput ({where}): median {statistics.median(rates):,.0f} blocks/s "
            f"of {a.size} B (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )
    times = [trio.run(bench_failover) for _ in range(a.runs)]
    print(
        f"fail-over (tick 100 ms, election timeout 1-2 s): median {statistics.median(times):.2f} s "
        f"from killing the leader to the next commit (runs: {', '.join(f'{t:.2f}' for t in times)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
