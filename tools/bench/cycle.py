"""Issue 6 benchmark: update cycle p50/p99 and visits committed per second, 4-node testnet.

Starts a 4-node testnet (free ports, temporary directory) whose merchant nodes run the
merchant-tech agent with the demo rules (``testnet init`` writes them), configures the demo
merchants' indicator and marketing information (``setup_demo`` over the client, signed with the
merchant nodes' keys), then streams the demo world's visits through the terminal node
(``run_visit_stream``) at ``--visits-per-second`` for ``--seconds``, from ``--terminals``
terminals (the terminal node's key and extra ``terminal`` members', one connection each: one
terminal submits one transaction at a time, and its round trip caps it near 40,000 visits/s).
Meanwhile it follows ``report`` and ``market`` events on node1.

Figures:

* update cycle, block time: update block time − report block time, for every update whose
  ``cause`` is a report (what ``p2pmkt market cycle`` prints; the report's block is the
  block whose visit made the condition true, since conditions are evaluated at the end of
  every block);
* update cycle, wall time: when node1 pushed the update event − when it pushed the report
  event (both seen by the same client);
* visits committed per second over the stream (sum of ``visits`` of block events);
* bound: the same ``visit.pack`` parse + apply path in one process (no network, no Raft):
  :func:`p2pmkt.chain.apply.apply_block` on a dev chain, visits/s on one core (the terminal
  sends ``visit.pack`` transactions, built by :func:`p2pmkt.market.pack_visits`).

Run: ``.venv/bin/python tools/bench/cycle.py [--seconds 60] [--visits-per-second 5000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.chaos.cluster import Cluster, guard_signals, pct, submitter_key, wait_leader  # noqa: E402


def bound_visits_apply(visits: int = 20_000, per_tx: int = 2000) -> float:
    """visit.pack decode + validate + apply + state root in one process, visits/s."""
    from p2pmkt.chain.apply import apply_block, genesis_batch, read_head
    from p2pmkt.chain.block import build_block
    from p2pmkt.chain.dev import dev_genesis, dev_key
    from p2pmkt.chain.tx import decode_tx, make_tx
    from p2pmkt.market.packed import pack_visits
    from p2pmkt.storage.memory import MemoryStore
    from tools.chaos.cluster import visit

    g = dev_genesis()
    store = MemoryStore()
    batch = genesis_batch(g)
    store.init_genesis(batch, g.hash, state_root=read_head(batch).state_root, time=g.genesis_time)
    term = dev_key("terminal")
    txs = [make_tx(term, g.chain_id, i, "visit.pack",
                   pack_visits([visit(i * per_tx + j) for j in range(per_tx)]))
           for i in range(visits // per_tx)]
    wire = [t.encode() for t in txs]
    with store.snapshot() as snap:
        head = read_head(snap)
    t0 = time.perf_counter()
    decoded = [decode_tx(w, max_size=g.params.max_tx_bytes) for w in wire]
    block = build_block(dev_key("validator"), chain=g.chain_id, height=head.height + 1, parent=head.hash,
                        state=head.state_root, time=head.time + 1, txs=decoded)
    with store.snapshot() as snap:
        res = apply_block(snap, block, genesis=g, runtime=None)
    elapsed = time.perf_counter() - t0
    assert all(r.status == "ok" for r in res.receipts), res.receipts[:1]
    return visits / elapsed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from p2pmkt.chain.genesis import parse_role
    from p2pmkt.cli.watch import RemoteSubmitter
    from p2pmkt.client import open_client
    from p2pmkt.demo import DEMO_MERCHANTS
    from p2pmkt.market.model import parse_report_id
    from p2pmkt.node.workload import DemoMerchant, run_visit_stream, setup_demo

    out: dict[str, Any] = {}
    with Cluster(rules=True, submitters=args.terminals - 1) as cl:
        cl.start()
        leader = await wait_leader(cl, timeout=60)
        merchants: dict[str, str] = {}
        terminal = None
        for e in cl.net.nodes:
            for role, scope in map(parse_role, e.roles):
                if role == "merchant-ops" and scope in DEMO_MERCHANTS:
                    merchants[scope] = e.name
                if role == "terminal":
                    terminal = e.name
        assert terminal is not None and merchants
        for m, name in merchants.items():
            async with open_client(cl.addr(name)) as c:
                key = cl.key(name)
                await setup_demo(RemoteSubmitter(c, cl.net.chain_id), [DemoMerchant(m, key, key)],
                                 every_visits=args.every_visits, every_ms=args.every_ms)
        reports_seen: dict[str, float] = {}
        cycles_wall: list[float] = []
        cycles_block: list[int] = []
        reports = {"missed": 0, "ok": 0}
        blocks: list[tuple[float, int, int]] = []
        sent = [0]

        async def follow() -> None:
            async with open_client(cl.addr(cl.names[0])) as c, \
                    c.subscribe(["block", "report", "market"]) as events:
                async for ev in events:
                    now = time.monotonic()
                    d = ev.data
                    if ev.kind == "block":
                        blocks.append((now, int(d.get("visits", 0)), int(d["time"])))
                    elif ev.kind == "report":
                        rid = f"{d['merchant']}/{d['indicator']}/{d['n']}"
                        reports_seen[rid] = now
                        reports["missed" if d.get("missed") else "ok"] += 1
                        reports_seen[rid + "#time"] = float(d["time"])
                    elif ev.kind == "market" and d.get("cause"):
                        parse_report_id(d["cause"])
                        t_rep = reports_seen.get(d["cause"])
                        if t_rep is not None:
                            cycles_wall.append(now - t_rep)
                            cycles_block.append(int(d["time"]) - int(reports_seen[d["cause"] + "#time"]))

        async def stream() -> None:
            # The terminal node's key and the extra terminal members', one connection each,
            # all to the terminal node.
            keys = [cl.key(terminal)] + [submitter_key(i) for i in range(args.terminals - 1)]
            async with contextlib.AsyncExitStack() as stack:
                subs = [(RemoteSubmitter(await stack.enter_async_context(open_client(cl.addr(terminal))),
                                         cl.net.chain_id), key) for key in keys]
                await run_visit_stream(subs, sorted(merchants),
                                       visits_per_second=args.visits_per_second, max_per_tx=2000,
                                       counter=lambda n: sent.__setitem__(0, sent[0] + n))

        t0 = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            nursery.start_soon(stream)
            await trio.sleep(args.seconds)  # the measurement window itself
            nursery.cancel_scope.cancel()
        span = time.monotonic() - t0
        window = [b for b in blocks if b[0] >= t0 + 2]  # skip the first 2 s (set-up tail)
        vis = sum(b[1] for b in window)
        wspan = (window[-1][0] - window[0][0]) if len(window) > 1 else float("nan")
        out = {
            "seconds": round(span, 1), "offered_visits_per_s": args.visits_per_second,
            "visits_submitted": sent[0], "visits_committed": sum(b[1] for b in blocks),
            "visits_committed_per_s": round(vis / wspan, 1) if wspan == wspan else 0.0,
            "blocks": len(blocks), "reports": reports, "updates": len(cycles_wall),
            "cycle_block_ms_p50": pct(cycles_block, 0.5), "cycle_block_ms_p99": pct(cycles_block, 0.99),
            "cycle_wall_ms_p50": round(pct(cycles_wall, 0.5) * 1000, 1),
            "cycle_wall_ms_p99": round(pct(cycles_wall, 0.99) * 1000, 1),
            "condition": {"every_visits": args.every_visits, "every_ms": args.every_ms},
            # Where the load lands matters: a terminal node that is a follower admits each pack
            # and forwards it, and the leader admits it again (BENCHMARKS.md, issue 6).
            "terminals": args.terminals, "terminal_node": terminal,
            "leader": [leader, await wait_leader(cl, timeout=30)],  # at the start, at the end
        }
    out["bound_visits_apply_per_s_1core"] = round(bound_visits_apply())
    out["load_avg"] = os.getloadavg()
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--visits-per-second", type=int, default=5000)
    ap.add_argument("--every-visits", type=int, default=2000, help="reporting condition (default 2000)")
    ap.add_argument("--terminals", type=int, default=2,
                    help="terminals streaming the visits, one connection and key each (default 2)")
    ap.add_argument("--every-ms", type=int, default=5000, help="reporting condition (default 5000)")
    args = ap.parse_args()
    guard_signals()
    res = trio.run(run, args)
    for k, v in res.items():
        print(f"  {k:<32} {v}")
    print(json.dumps(res))
