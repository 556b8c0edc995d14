"""Whole-network benchmarks of issue 8 on a local 4-node testnet (separate node processes).

Each benchmark starts its own testnet (free ports, temporary directory), measures, stops every
process it started (also on Ctrl-C, SIGTERM or an exception), prints a table and, as the
last line of stdout, one JSON object with all figures. Each also measures the machine's bound
it should be compared with, in the same run.

    throughput  signed txs committed/s, clients submitting over the wire protocol (several
                concurrent senders, one connection each, spread over all nodes): one
                transaction per request, then up to 16 per ``tx.submit_batch``; also
                visits/s with larger batches. Bounds: secp256k1 recover+compare/s on one
                core; the network's apply bound (cores / (4 nodes x one node's cost to
                decode, verify, apply and commit a transaction of the load), with the best
                rate's fraction of it; and the same over the machine's raw pipeline (issue 2's
                bound); see ``bound_network_apply``. Each load also reports what it cost:
                the nodes' CPU per committed transaction (from /proc), the clients', how
                many cores were busy, and the rate the nodes' cost allows on these cores
                (``node_cpu_bound_tx_per_s``); see ``cpu_figures``.
    latency     commit latency p50/p99 (submit → a node reports the block) at about half the
                throughput measured in the same run, over the whole run and at steady state
                (without the first 2 s, while the clients connect); then the same for
                clients batching up to 16 per request, at half of their own maximum.
                Bound: raw py-libp2p stream round trip.
    failover    SIGKILL the leader under load, time until the next block is committed
                (by the survivors), over --trials trials; the killed node is restarted.
    catchup     stop one node, commit --blocks blocks, restart it: blocks/s until its head
                reaches the others'.
    memory      VmRSS of every node after --seconds of steady load (100 tx/s), then after a
                heavy visit load (2,000-visit packs as fast as taken; heap and mapped files apart).
    coldstart   process start → serving RPC (per node); `up` (start) → first block.

Run: ``.venv/bin/python tools/bench/network.py [all|throughput|…] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.chaos.cluster import (  # noqa: E402
    Cluster,
    guard_signals,
    pct,
    submitter_key,
    wait_height,
    wait_leader,
)
from tools.chaos.load import (  # noqa: E402
    Sender,
    Tracker,
    latencies,
    presign,
    run_sender,
    run_tracker,
    summary_errors,
)

# --- machine bounds ----------------------------------------------------------------------


def bound_recover(seconds: float = 1.0) -> float:
    """coincurve recover + format + compare per second on one core."""
    import hashlib

    import coincurve

    key = coincurve.PrivateKey()
    digest = hashlib.sha256(b"x" * 190).digest()
    sig = key.sign_recoverable(digest, hasher=None)
    pub = key.public_key.format()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            assert coincurve.PublicKey.from_signature_and_message(sig, digest, hasher=None).format() == pub
        n += 200
    return n / (time.perf_counter() - t0)


async def bound_stream_rtt(addr_of_node: str, rounds: int = 300) -> float:
    """Median RPC round trip (``chain.head``) on one stream to an idle node, in seconds.

    This is the p2pmkt RPC over py-libp2p (Noise + Yamux) on loopback; the raw-stream figure
    is ``tools/bench/net.py``'s.
    """
    from p2pmkt.client import open_client

    out = []
    async with open_client(addr_of_node) as c:
        for _ in range(rounds):
            t = time.perf_counter()
            await c.head()
            out.append(time.perf_counter() - t)
    return pct(out, 0.5)


def bound_network_apply(nodes: int = 4, txs: int = 4000, block_txs: int = 1000) -> dict[str, float]:
    """The most signed txs/s ``nodes`` nodes sharing this machine's cores could commit if each
    did nothing but what every node must do with every transaction of a block: decode it,
    recover its signature, apply it and commit it durably (this package's code, one core,
    fresh LMDB; the throughput load's transactions: one-visit ``visit.pack``, 32 senders).
    No admission, gossip, Raft, RPC or client work is counted, so a network of this code can
    only come below it: ``cores / (nodes * seconds per transaction)`` (``bound_tx_per_s``).

    Beside it, the same arithmetic over the machine's own per-transaction pipeline, issue 2's
    bound (``tools/bench/apply.py``'s ``MachineBound``: raw cbor2 decode, sha256, coincurve
    recover + compare, two reads and three writes in LMDB, a durable commit per block):
    ``machine_bound_tx_per_s``, what any implementation on these libraries could reach."""
    import tempfile

    import p2pmkt.chain.contract_api as contract_api
    import p2pmkt.chain.tx as tx_module
    from p2pmkt.chain.apply import genesis_batch
    from p2pmkt.chain.block import build_block
    from p2pmkt.chain.tx import make_tx
    from p2pmkt.crypto.keys import PrivateKey
    from p2pmkt.market.packed import pack_visits
    from p2pmkt.storage import LmdbStore
    from p2pmkt.types import ZERO_HASH, Hash32
    from tools.bench.apply import CHAIN, GENESIS_TIME, MERCHANTS, make_genesis, timed_block
    from tools.chaos.cluster import visit

    senders = [PrivateKey.from_seed(f"bound/{i}") for i in range(32)]
    validator = PrivateKey.from_seed("bound/validator")
    genesis = make_genesis(senders, validator, block_txs)
    signed = [make_tx(senders[i % 32], CHAIN, i // 32, "visit.pack",
                      pack_visits([visit(i, f"m{i % MERCHANTS}")])) for i in range(txs)]
    # A node has verified none of these signatures, nor hashed most of these texts (the load's
    # accounts are all distinct): forget what this process remembers of earlier calls.
    tx_module._VERIFIED.clear()
    contract_api._TEXT_IDS.clear()
    spent = 0.0
    with tempfile.TemporaryDirectory() as tmp, LmdbStore.open(Path(tmp) / "s") as store:
        gbatch = genesis_batch(genesis)
        root = gbatch.get("meta", b"state_root")
        assert root is not None
        head = store.init_genesis(gbatch, genesis.hash, state_root=Hash32(root), time=genesis.genesis_time)
        parent, pre_root = ZERO_HASH, head.state_root
        for b in range(txs // block_txs):
            raw = build_block(validator, chain=CHAIN, height=b + 1, parent=parent, state=pre_root,
                              time=GENESIS_TIME + 100 * (b + 1),
                              txs=signed[b * block_txs:(b + 1) * block_txs]).encode()
            block, result, (t0, _, _, t3) = timed_block(store, raw, genesis)
            if any(r.status != "ok" for r in result.receipts):
                raise SystemExit("bench bug: the bound's block rejected a transaction")
            spent += t3 - t0
            parent, pre_root = block.hash, result.state_root
    per_tx = spent / (txs // block_txs * block_txs)
    cores = os.cpu_count() or 1
    # The machine's own pipeline (issue 2's bound: raw cbor2, sha256, coincurve and lmdb, none
    # of this package's code), sampled right after, on the same terms.
    from tools.bench.apply import MachineBound

    with tempfile.TemporaryDirectory() as tmp:
        machine = MachineBound(tmp, block_txs)
        try:
            rate = statistics.median(machine.sample() for _ in range(5))
        finally:
            machine.close()
    return {"apply_us_per_tx_1core": round(per_tx * 1e6, 1), "nodes": nodes, "cores": cores,
            "bound_tx_per_s": round(cores / (nodes * per_tx)),
            "machine_pipeline_us_per_tx_1core": round(1e6 / rate, 1),
            "machine_bound_tx_per_s": round(cores * rate / nodes)}


# --- load runs ---------------------------------------------------------------------------


async def next_nonces(cluster: Cluster, keys: list[Any]) -> dict[bytes, int]:
    """Each key's next nonce (committed state of node1), so runs can follow one another."""
    from p2pmkt.client import open_client

    out = {}
    async with open_client(cluster.addr(cluster.names[0])) as c:
        for k in keys:
            acct = await c.call("account.get", {"address": bytes(k.address)})
            out[bytes(k.address)] = int(acct["nonce"])
    return out


async def offered_load(cluster: Cluster, *, senders: int, per_key: int, visits_per_tx: int = 1,
                       rate: float | None = None, seconds: float = 20.0, window: int = 48,
                       to_leader: bool = False, batch: int = 1, first_key: int = 0) -> dict[str, Any]:
    """Submit ``senders × per_key`` pre-signed txs; figures over the busy window.

    Senders are spread over all nodes (followers gossip what they get to the leader), or with
    ``to_leader`` all submit to the current leader (the others are fallbacks).
    """
    keys = [submitter_key(first_key + i) for i in range(senders)]
    nonces = await next_nonces(cluster, keys)
    t = time.perf_counter()
    batches = presign(keys, cluster.net.chain_id, per_key, visits_per_tx=visits_per_tx,
                      start_nonce=nonces)
    sign_s = time.perf_counter() - t
    tracker = Tracker()
    names = cluster.names
    if to_leader:
        lead = await wait_leader(cluster, timeout=30)
        names = [lead] + [n for n in names if n != lead]
    ss = [Sender(txs, window=window, rate=None if rate is None else rate / senders, batch=batch)
          for txs in batches]
    h0 = int(await wait_height(cluster.addr(names[0]), 0))
    tracker.height = h0
    cpu0 = {n: cluster.cpu_seconds(n) for n in cluster.names}
    own0 = time.process_time()
    t_start = time.monotonic()
    async with trio.open_nursery() as nursery:
        # The tracker (a client following committed blocks, fetching each) reads from a
        # follower when the load goes to the leader, as a watching client would not pick the
        # busiest node; its acknowledgements then come a Raft round later, never earlier.
        watch = names[1:] + names[:1] if to_leader else names
        nursery.start_soon(run_tracker, cluster, tracker, lambda: watch)
        async with trio.open_nursery() as inner:
            for i, s in enumerate(ss):
                rot = names if to_leader else names[i % len(names):] + names[:i % len(names)]
                inner.start_soon(run_sender, cluster, s, tracker, lambda rot=rot: rot)
            inner.cancel_scope.deadline = trio.current_time() + seconds
        nursery.cancel_scope.cancel()
    t_end = time.monotonic()
    node_cpu = sum(cluster.cpu_seconds(n) - cpu0[n] for n in cluster.names)
    own_cpu = time.process_time() - own0
    ours = {t.txid for b in batches for t in b}
    times = sorted(tracker.committed[t][1] for t in ours if t in tracker.committed)
    n = len(times)
    # Busy window: from the first to the last commit of our transactions.
    span = (times[-1] - t_start) if times else float("nan")
    tps = n / span if times else 0.0
    lat = latencies(ss, tracker)
    # Steady state: without the first 2 s of submissions, when 32 clients' connections
    # (Noise handshakes) and the first blocks compete for the nodes' CPU (the cycle bench
    # skips its first 2 s likewise).
    first = min((t for s in ss for t in s.submitted.values()), default=0.0)
    steady = latencies(ss, tracker, since=first + 2.0)
    return {
        "senders": senders, "txs_offered": senders * per_key, "txs_committed": n,
        "visits_per_tx": visits_per_tx, "span_s": round(span, 3), "tx_per_s": round(tps, 1),
        "visits_per_s": round(tps * visits_per_tx, 1), "wall_s": round(t_end - t_start, 2),
        "latency_p50_ms": round(pct(lat, 0.5) * 1000, 1), "latency_p99_ms": round(pct(lat, 0.99) * 1000, 1),
        "steady_latency_p50_ms": round(pct(steady, 0.5) * 1000, 1),
        "steady_latency_p99_ms": round(pct(steady, 0.99) * 1000, 1),
        "offered_rate": rate, "to_leader": to_leader, "presign_s": round(sign_s, 2), "errors": summary_errors(ss),
        "blocks": len(tracker.blocks), "batch": batch, "window": window,
        **cpu_figures(node_cpu, own_cpu, n, t_end - t_start),
    }


def cpu_figures(node_cpu: float, own_cpu: float, committed: int, wall: float) -> dict[str, Any]:
    """What the run cost in CPU, per committed transaction: the 4 nodes' processes together,
    and this process (the clients and the tracker); and the most the nodes could commit at that
    cost with every core to themselves (``cores / node CPU per transaction``), the ceiling of
    this code at this load however the clients behave."""
    cores = os.cpu_count() or 1
    per_tx = node_cpu / committed if committed else float("nan")
    return {
        "node_cpu_us_per_tx": round(per_tx * 1e6, 1),
        "client_cpu_us_per_tx": round(own_cpu / committed * 1e6, 1) if committed else None,
        "cores_busy": round((node_cpu + own_cpu) / wall, 2) if wall > 0 else None,
        "node_cpu_bound_tx_per_s": round(cores / per_tx) if committed else None,
    }


async def bench_throughput(quick: bool, window: int = 48) -> dict[str, Any]:
    """``window``: transactions each sender may have submitted and not yet seen committed.
    With 32 senders the network holds at most 32 x ``window``, so below the CPU's limit the
    rate is about that over the commit latency (Little's law); a larger window trades
    latency for rate until the cores are busy (session 9: 48 → 160 took batching clients
    from 83 % to 93 % of the 2 cores and 1,051 to 1,247 tx/s)."""
    senders = 32
    with Cluster(submitters=senders, rules=False) as cl:
        cl.start()
        await wait_leader(cl, timeout=60)
        per_key = 150 if quick else 600
        tx = await offered_load(cl, senders=senders, per_key=per_key, seconds=60 if quick else 120,
                                window=window)
        tx_leader = await offered_load(cl, senders=senders, per_key=per_key, seconds=60 if quick else 120,
                                       to_leader=True, window=window)
        # Clients that send what they have in one tx.submit_batch (a terminal, the ingester)
        # instead of one request per transaction: same senders, windows and nodes.
        tx_batched = await offered_load(cl, senders=senders, per_key=2 * per_key,
                                        seconds=60 if quick else 120, batch=16, window=window)
        # Blocks must stay under the RPC frame limit (4 MiB) for the tracker's chain.block:
        # 8 senders x 3 in flight x 2,000 packed visits (~107 kB per tx with the load's
        # distinct texts) ≈ 2.6 MB per block at most. Two in flight per sender left the
        # network idle between blocks.
        vis = await offered_load(cl, senders=8, per_key=15 if quick else 60, visits_per_tx=2000,
                                 seconds=90, window=3, to_leader=True)
        lat_rtt = await bound_stream_rtt(cl.addr(cl.names[0]))
    rec = bound_recover()
    bound = bound_network_apply()
    best = max(tx["tx_per_s"], tx_leader["tx_per_s"], tx_batched["tx_per_s"])
    return {"tx": tx, "tx_to_leader": tx_leader, "tx_batched_clients": tx_batched, "visit_batches": vis, "bound_recover_per_s_1core": round(rec),
            "bound_rpc_rtt_ms": round(lat_rtt * 1000, 3), "bound_network_apply": bound,
            "best_tx_per_s_of_bound": round(best / bound["bound_tx_per_s"], 3)}


async def bench_latency(quick: bool, max_tps: float | None) -> dict[str, Any]:
    senders = 32
    with Cluster(submitters=senders, rules=False) as cl:
        cl.start()
        await wait_leader(cl, timeout=60)
        if max_tps is None:
            probe = await offered_load(cl, senders=senders, per_key=100 if quick else 300, seconds=60)
            max_tps = probe["tx_per_s"]
        rate = max(50.0, max_tps / 2)
        secs = 10 if quick else 20
        per_key = max(1, int(rate * secs / senders))
        res = await offered_load(cl, senders=senders, per_key=per_key, rate=rate, seconds=secs + 30)
        res_leader = await offered_load(cl, senders=senders, per_key=per_key, rate=rate, seconds=secs + 30,
                                        to_leader=True)
        # The same with clients that send up to 16 transactions per tx.submit_batch: their
        # maximum is higher, so half of it is a higher load. At that half load 8 busy clients
        # (terminal services, each ~60 tx/s) fill batches within their 50 ms linger; 32
        # clients of ~15 tx/s would send batches of one, i.e. not be batching clients.
        probe_b = await offered_load(cl, senders=senders, per_key=200 if quick else 600, seconds=60,
                                     batch=16)
        rate_b = max(50.0, probe_b["tx_per_s"] / 2)
        per_key_b = max(1, int(rate_b * secs / 8))
        res_b = await offered_load(cl, senders=8, per_key=per_key_b, rate=rate_b,
                                   seconds=secs + 30, batch=16)
        rtt = await bound_stream_rtt(cl.addr(cl.names[0]))
    return {"max_tx_per_s": max_tps, "half_load": res, "half_load_to_leader": res_leader,
            "max_tx_per_s_batched_clients": probe_b["tx_per_s"], "half_load_batched_clients": res_b,
            "bound_rpc_rtt_ms": round(rtt * 1000, 3)}


async def bench_failover(trials: int) -> dict[str, Any]:
    from p2pmkt.client import open_client

    senders = 8
    out: list[float] = []
    elections: list[float] = []
    stuck: str | None = None
    tails: dict[str, str] = {}
    slow: dict[str, dict[str, str]] = {}
    with Cluster(submitters=senders, rules=False) as cl:
        cl.start()
        leader = await wait_leader(cl, timeout=60)
        keys = [submitter_key(i) for i in range(senders)]
        # Load for the whole run: 20 tx/s per sender, ~15 s per trial (a restart, an election
        # and the wait for blocks). Running out of load once looked like a stalled network.
        batches = presign(keys, cl.net.chain_id, 20 * 15 * (trials + 2))
        tracker = Tracker()
        alive = list(cl.names)
        ss = [Sender(txs, rate=20) for txs in batches]

        def live() -> list[str]:
            return [n for n in cl.names if n in alive]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_tracker, cl, tracker, live)
            for s in ss:
                nursery.start_soon(run_sender, cl, s, tracker, live)
            for _ in range(trials):
                try:
                    leader = await wait_leader(cl, timeout=60)
                except trio.TooSlowError as exc:
                    stuck = str(exc)
                    tails = {n: cl.log_tail(n, 6) for n in cl.names}
                    break
                h = tracker.height
                with trio.move_on_after(20) as flow:
                    while tracker.height <= h:  # load flows: a block after the last one
                        await tracker.changed.wait()
                if flow.cancelled_caught:
                    stuck = f"no block for 20 s before trial {len(out) + 1} (height {h}, leader {leader})"
                    tails = {n: cl.log_tail(n, 6) for n in cl.names}
                    break
                alive.remove(leader)
                survivor = live()[0]
                async with open_client(cl.addr(survivor)) as c:
                    base = int((await c.head()).height)
                    t_kill = time.monotonic()
                    cl.kill(leader)
                    with trio.move_on_after(30) as wait:
                        while int((await c.head()).height) <= base:  # noqa: ASYNC110 - remote
                            await trio.sleep(0.005)  # polling the survivor's head, with a deadline
                    if wait.cancelled_caught:
                        stuck = f"no block 30 s after killing leader {leader} (trial {len(out) + 1})"
                        tails = {n: cl.log_tail(n, 6) for n in cl.names}
                        break
                    out.append(time.monotonic() - t_kill)
                    if out[-1] > 1.0:  # keep what the nodes logged around a slow failover
                        slow[f"trial {len(out)} ({round(out[-1] * 1000)} ms, killed {leader})"] = {
                            n: cl.log_tail(n, 12) for n in cl.names}
                new = await wait_leader(cl, live(), timeout=30, connected=False, exclude=leader)
                elections.append(time.monotonic() - t_kill)
                assert new != leader
                cl.start([leader])
                alive.append(leader)
            nursery.cancel_scope.cancel()
    return {"trials": len(out), "kill_to_next_block_p50_ms": round(pct(out, 0.5) * 1000, 1),
            "kill_to_next_block_p99_ms": round(pct(out, 0.99) * 1000, 1),
            "kill_to_next_block_max_ms": round(max(out, default=float("nan")) * 1000, 1),
            "samples_ms": [round(x * 1000) for x in out],
            "kill_to_new_leader_seen_ms": [round(x * 1000) for x in elections],
            "election_timeout_ms": 50 * 10, "conflicts": len(tracker.conflicts),
            "stopped_early": stuck, "log_tails": tails if stuck else {},
            "slow_trials_logs": slow}


async def bench_catchup(blocks: int, budget: float) -> dict[str, Any]:
    """Blocks are made fast with a 20 ms block interval and a sender keeping 2 txs in flight.

    (A 5 ms interval makes the leader re-propose at an unchanged height after 250 ms without a
    commit, which exposed the catch-up fork reported in issue 8.)
    """
    from p2pmkt.client import open_client

    with Cluster(submitters=1, rules=False, params={"block_interval_ms": 20}) as cl:
        cl.start()
        leader = await wait_leader(cl, timeout=60)
        victim = next(n for n in cl.names if n != leader)
        others = [n for n in cl.names if n != victim]
        cl.kill(victim)
        async with open_client(cl.addr(leader)) as c:
            base = int((await c.head()).height)
        tracker = Tracker(height=base)
        # Two in flight, so a block may hold two of them: sign enough for `blocks` blocks.
        s = Sender(presign([submitter_key(0)], cl.net.chain_id, 2 * blocks)[0], window=2)
        t0 = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_tracker, cl, tracker, lambda: others)
            nursery.start_soon(run_sender, cl, s, tracker, lambda: [leader])
            with trio.move_on_after(budget):
                while tracker.height - base < blocks and s.done < len(s.txs):
                    await tracker.changed.wait()
            nursery.cancel_scope.cancel()
        make_s = time.monotonic() - t0
        async with open_client(cl.addr(leader)) as c:
            target = int((await c.head()).height)
        t_restart = cl.start([victim])
        h = h0 = -1
        t_h0 = t_restart
        with trio.move_on_after(120) as scope:
            while True:
                try:
                    async with open_client(cl.addr(victim)) as v:
                        h0 = int((await v.head()).height)
                        t_h0 = time.monotonic()
                        while (h := int((await v.head()).height)) < target:  # noqa: ASYNC110 - remote
                            await trio.sleep(0.02)  # polling the rejoining node's head
                        break
                except Exception as exc:
                    if isinstance(exc, trio.Cancelled):
                        raise
                    await trio.sleep(0.05)  # not serving yet
        if scope.cancelled_caught:
            return {"error": f"{victim} stuck at height {h} of {target} 120 s after restart",
                    "log_tail": cl.log_tail(victim, 5)}
        done = time.monotonic()
    return {"blocks_missed": target - base, "make_s": round(make_s, 1),
            "make_blocks_per_s": round((target - base) / make_s, 1),
            "rejoin_height_when_serving": h0, "target": target, "reached": h,
            "catchup_s_from_restart": round(done - t_restart, 2),
            "catchup_s_from_serving": round(done - t_h0, 2),
            "blocks_per_s_from_restart": round((target - base) / (done - t_restart), 1),
            "blocks_per_s_after_serving": round((target - h0) / max(done - t_h0, 1e-9), 1)}


async def bench_memory(seconds: float) -> dict[str, Any]:
    senders = 8
    with Cluster(submitters=2 * senders, rules=False) as cl:
        cl.start()
        await wait_leader(cl, timeout=60)
        idle = {n: cl.rss_kib(n) for n in cl.names}
        res = await offered_load(cl, senders=senders, per_key=int(100 * seconds / senders), rate=100,
                                 seconds=seconds)
        loaded = {n: cl.rss_kib(n) for n in cl.names}
        # Then the heaviest load: 2,000-visit packs as fast as the network takes them. Heap
        # (RssAnon) and mapped files (RssFile: libraries, and the LMDB pages the visits touched,
        # which the kernel can drop) are reported apart.
        # Keys of their own: the first load's last transactions may still be pooled.
        vis = await offered_load(cl, senders=senders, per_key=40, visits_per_tx=2000, seconds=60,
                                 window=3, to_leader=True, first_key=senders)
        heavy = {n: (cl.rss_kib(n), cl.rss_kib(n, "RssAnon"), cl.rss_kib(n, "RssFile")) for n in cl.names}
    return {"rss_idle_mib": {n: round(v / 1024, 1) for n, v in idle.items()},
            "rss_after_load_mib": {n: round(v / 1024, 1) for n, v in loaded.items()},
            "load": {k: res[k] for k in ("tx_per_s", "txs_committed", "span_s")},
            "after_visit_load_mib": {n: {"rss": round(a / 1024, 1), "anon": round(b / 1024, 1),
                                         "file": round(c / 1024, 1)} for n, (a, b, c) in heavy.items()},
            "visit_load": {k: vis[k] for k in ("visits_per_s", "txs_committed", "span_s")}}


async def bench_coldstart() -> dict[str, Any]:
    from p2pmkt.client import open_client

    with Cluster(submitters=1, rules=False) as cl:
        t0 = cl.start()
        serving: dict[str, float] = {}

        async def one(name: str) -> None:
            with trio.fail_after(60):
                while True:
                    try:
                        async with open_client(cl.addr(name)) as c:
                            await c.head()
                            serving[name] = time.monotonic() - t0
                            return
                    except Exception as exc:
                        if isinstance(exc, trio.Cancelled):
                            raise
                        await trio.sleep(0.02)  # not serving yet

        async with trio.open_nursery() as nursery:
            for n in cl.names:
                nursery.start_soon(one, n)
        leader = await wait_leader(cl, timeout=60, connected=False)
        t_leader = time.monotonic() - t0
        stx = presign([submitter_key(0)], cl.net.chain_id, 1)[0][0]
        async with open_client(cl.addr(leader)) as c:
            await c.submit_tx(stx)
            await c.wait_tx_committed(stx.txid, timeout=30)
        t_block = time.monotonic() - t0
    return {"serving_s": {n: round(v, 2) for n, v in serving.items()},
            "up_to_leader_s": round(t_leader, 2), "up_to_first_block_s": round(t_block, 2)}


def table(results: dict[str, Any]) -> str:
    lines = []

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict) and not all(isinstance(v, (int, float)) for v in obj.values()):
            for k, v in obj.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            lines.append(f"  {prefix:<48} {obj}")

    walk("", results)
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    which = args.bench
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_avg": os.getloadavg(),
                           "cpus": os.cpu_count()}
    benches: list[tuple[str, Any]] = [
        ("coldstart", bench_coldstart),
        ("throughput", lambda: bench_throughput(args.quick, args.window)),
        ("latency", lambda: bench_latency(args.quick, out.get("throughput", {}).get("tx", {}).get("tx_per_s"))),
        ("failover", lambda: bench_failover(args.trials)),
        ("catchup", lambda: bench_catchup(args.blocks, args.budget)),
        ("memory", lambda: bench_memory(args.seconds)),
    ]
    for name, fn in benches:
        if which not in ("all", name):
            continue
        t0 = time.monotonic()
        try:
            out[name] = await fn()
        except Exception as exc:  # one failed benchmark must not lose the others' figures
            out[name] = {"error": repr(exc)}
        out[name]["bench_wall_s"] = round(time.monotonic() - t0, 1)
        print(f"{name}: {json.dumps(out[name])}", flush=True)
    out["load_avg_end"] = os.getloadavg()
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", nargs="?", default="all",
                    choices=["all", "throughput", "latency", "failover", "catchup", "memory", "coldstart"])
    ap.add_argument("--quick", action="store_true", help="smaller runs")
    ap.add_argument("--window", type=int, default=48,
                    help="throughput: transactions each of the 32 senders keeps in flight (default 48)")
    ap.add_argument("--trials", type=int, default=10, help="failover trials (default 10)")
    ap.add_argument("--blocks", type=int, default=10_000, help="catch-up: blocks to miss (default 10000)")
    ap.add_argument("--budget", type=float, default=150.0, help="catch-up: seconds allowed to make them")
    ap.add_argument("--seconds", type=float, default=20.0, help="memory: seconds of load")
    args = ap.parse_args()
    guard_signals()
    res = trio.run(main, args)
    print(table(res))
    print(json.dumps(res))
