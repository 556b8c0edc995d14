"""Soak the Raft core in the randomized fault simulation (p2pmkt.testing.sim).

    python tools/raft_soak.py --seeds 10000          # seeds 0..9999, 3 and 5 nodes alternating
    python tools/raft_soak.py --seed 1234 -v         # replay one seed with an event log

Exit status 1 if any seed breaks an invariant; each failure prints how to replay it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2pmkt.testing.sim import SimConfig, SimFailure, run_simulation


def config_for(seed: int, steps: int) -> SimConfig:
    """Seeds alternate between 3- and 5-node clusters (the test suite uses the same rule)."""
    return SimConfig(nodes=5 if seed % 2 else 3, steps=steps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seed", type=int, help="run this one seed")
    p.add_argument("--seeds", type=int, default=1000, help="run seeds [start, start+N)")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--steps", type=int, default=200, help="chaotic steps per seed")
    p.add_argument("-v", "--verbose", action="store_true", help="print the event log")
    a = p.parse_args(argv)
    seeds = [a.seed] if a.seed is not None else list(range(a.start, a.start + a.seeds))
    t0 = time.perf_counter()
    failed = 0
    for s in seeds:
        try:
            run_simulation(s, config_for(s, a.steps), verbose=a.verbose)
        except SimFailure as exc:
            failed += 1
            print(f"FAIL {exc}", flush=True)
    dt = time.perf_counter() - t0
    print(f"{len(seeds)} seeds, {failed} failed, {dt:.1f}s ({1000 * dt / len(seeds):.1f} ms/seed)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
