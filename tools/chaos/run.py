"""Long fault-injection run: ``python tools/chaos/run.py --minutes N [--seed S]``.

Repeats rounds of faults (SIGKILL of a random node, SIGKILL of the leader, SIGSTOP/SIGCONT of
a minority node; with ``--node-faults`` also a full LMDB map, clock jumps and Raft latency and
loss) under steady load on a fresh 4-node testnet per round, checking the
invariants of :mod:`tools.chaos.scenario` after each round. Stops after ``--minutes`` (the
round in progress finishes: add about a minute), prints one line per fault and per round, and
the JSON summary as the last line. Exit status 1 if any invariant was violated.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.chaos.cluster import Cluster, guard_signals  # noqa: E402
from tools.chaos.scenario import FAULTS, NODE_FAULTS, run_scenario  # noqa: E402


async def main(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    end = time.monotonic() + args.minutes * 60
    rounds = []
    while time.monotonic() < end:
        pool = FAULTS + (("clock-jump", "slow-leader", "lossy-net") if args.node_faults else ())
        faults = [rng.choice(pool) for _ in range(args.faults)]
        if args.node_faults:
            faults.insert(0, "map-full")
        seed = rng.randrange(1 << 30)
        print(f"round {len(rounds) + 1}: faults {faults} seed {seed}", flush=True)
        with Cluster(submitters=args.senders, rules=False) as cl:
            if args.node_faults:
                cl.set_storage(rng.choice(cl.names), map_size="256KiB", max_map_size="384KiB")
            cl.start()
            rep = await run_scenario(cl, faults=faults, senders=args.senders, rate=args.rate, seed=seed)
            if not rep.ok():
                for n in cl.names:
                    print(f"--- {n} log tail\n{cl.log_tail(n)}")
        print(f"  ok={rep.ok()} acked={rep.acked} height={rep.final_height} {rep.seconds}s "
              f"violations={rep.violations} client_errors={rep.errors}", flush=True)
        rounds.append({"faults": faults, "seed": seed, "ok": rep.ok(), "acked": rep.acked,
                       "height": rep.final_height, "seconds": rep.seconds, "violations": rep.violations})
    return {"rounds": len(rounds), "ok": all(r["ok"] for r in rounds),
            "faults": sum(len(r["faults"]) for r in rounds),  # type: ignore[arg-type]
            "acked": sum(r["acked"] for r in rounds), "details": rounds}  # type: ignore[misc]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--faults", type=int, default=6, help="faults per round (default 6)")
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--rate", type=float, default=60.0, help="offered tx/s (default 60)")
    ap.add_argument("--node-faults", action="store_true",
                    help=f"also the in-node faults {NODE_FAULTS}: each round starts with a node "
                         "whose small LMDB map fills up; clock jumps, a slow and lossy leader and "
                         "a lossy network (Raft messages) join the random faults")
    args = ap.parse_args()
    guard_signals()
    out = trio.run(main, args)
    print(json.dumps(out))
    sys.exit(0 if out["ok"] else 1)
