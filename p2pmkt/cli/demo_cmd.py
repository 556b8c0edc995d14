"""``p2pmkt demo``: the demo workload (issue 6 item 4) on a running testnet, or offline.

The demo world (:mod:`p2pmkt.demo`) has several merchants whose visitors come over browser,
desktop and app, go through a funnel (view, cart, order) and convert more or less as the
merchant's bids, keywords and channels suit them. Its merchants start below, on or near
their conversion targets; the merchant-tech agents' rules then move them.

* ``p2pmkt demo`` runs it against the local testnet in ``--dir``, which must be running
  (``p2pmkt testnet up``): it configures each demo merchant whose node is in the testnet
  (indicator, target, starting marketing information, unless already there), streams the
  world's visits through the terminal node and shows the live view. The nodes keep running
  when it stops.
* ``p2pmkt demo --offline`` runs the same loop without a chain
  (:func:`p2pmkt.demo.simulate_loop`): one reporting window per round, the conversion each
  window had, the target, and the rules that fired. It needs nothing running and shows in a
  second what the chain does in a minute.

The same workload runs inside ``p2pmkt testnet demo`` (which starts and stops the testnet,
``make run``), ``p2pmkt testnet up --demo`` and ``p2pmkt dev --demo``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from p2pmkt.cli.testnet import DEFAULT_DIR

OFFLINE_WINDOW_MS = 10 * 60_000
OFFLINE_START_MS = 1_764_000_000_000  # a fixed block time: the offline demo is reproducible
OFFLINE_SCALE = 30.0  # visits per window large enough that a window's conversion is not noise


def add_workload_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs the demo workload against a testnet."""
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--visits-per-second", type=int, default=2000, help="demo visit rate (default: 2000)")
    p.add_argument("--no-live", action="store_true", help="print status lines instead of the live view")


def register(sub: Any, cmd: Any) -> None:
    p = cmd(sub, "demo",
            "Run the demo workload (several merchants, visit streams, automatic marketing updates) "
            "against the running local testnet, or --offline without a chain.",
            "p2pmkt testnet up && p2pmkt demo --duration 60    |    p2pmkt demo --offline")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"testnet directory (default: {DEFAULT_DIR})")
    add_workload_options(p)
    p.add_argument("--offline", action="store_true",
                   help="run the loop without a chain and print each merchant's reporting windows")
    p.add_argument("--rounds", type=int, default=8, help="--offline: reporting windows per merchant (default: 8)")
    p.add_argument("--seed", type=int, default=1, help="--offline: the demo world's seed (default: 1)")
    p.add_argument("--json", action="store_true", help="--offline: machine-readable output")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    if args.offline:
        return _offline(args)
    from p2pmkt.cli.watch import run_demo

    return run_demo(args, init=False, start=False, stop=False)


def offline_rounds(seed: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Each demo merchant's reporting windows of :func:`~p2pmkt.demo.simulate_loop`, as rows."""
    from p2pmkt.agent import load_rules
    from p2pmkt.demo import (
        DEMO_MERCHANTS,
        TARGETS,
        DemoWorld,
        rules_toml,
        simulate_loop,
        starting_info,
    )

    world = DemoWorld(seed, scale=OFFLINE_SCALE)
    out: dict[str, list[dict[str, Any]]] = {}
    for m in DEMO_MERCHANTS:
        target = TARGETS[m]
        done, _ = simulate_loop(world, m, starting_info(m), load_rules(rules_toml(m)), target.target,
                                rounds=rounds, window_ms=OFFLINE_WINDOW_MS, start_ms=OFFLINE_START_MS)
        out[m] = [
            {"round": r.round, "visits": r.visits, "conversion": r.value / 10 ** target.scale,
             "target": target.target.threshold / 10 ** target.scale, "missed": r.missed,
             "version": r.info_version, "fired": list(r.fired), "changes": list(r.changes)}
            for r in done
        ]
    return out


def _offline(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        print("error: --rounds must be at least 1", file=sys.stderr)
        return 2
    rows = offline_rounds(args.seed, args.rounds)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    for m, rounds in rows.items():
        print(f"{m}: conversion per {OFFLINE_WINDOW_MS // 60_000}-minute reporting window, "
              f"target at least {rounds[0]['target']:.2%}")
        for r in rounds:
            status = "MISSED   " if r["missed"] else "on target"
            print(f"  window {r['round']}: {r['visits']:>6,} visits, conversion {r['conversion']:6.2%}  "
                  f"{status}  marketing v{r['version']}"
                  + (f"  rules fired: {', '.join(r['fired'])}" if r["fired"] else ""))
            for change in r["changes"]:
                print(f"      {change}")
        print()
    print("The same rules run on a chain: `p2pmkt testnet demo` (make run) or `p2pmkt dev --demo`.")
    return 0
