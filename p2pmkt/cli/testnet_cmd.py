"""``p2pmkt testnet …``: argparse glue over :mod:`p2pmkt.cli.testnet`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from p2pmkt.cli.demo_cmd import add_workload_options
from p2pmkt.cli.testnet import DEFAULT_BASE_PORT, DEFAULT_DIR, DEFAULT_METRICS_PORT


def register(sub: Any, cmd: Any) -> None:
    t = cmd(sub, "testnet", "Launch and manage a local multi-node testnet.",
            "p2pmkt testnet init -n 4 && p2pmkt testnet up && p2pmkt testnet status")
    tsub = t.add_subparsers(dest="testnet_command", metavar="ACTION", required=True)

    def with_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"testnet directory (default: {DEFAULT_DIR})")
        return p

    init = with_dir(cmd(tsub, "init", "Write keys, genesis and per-node configs.", "p2pmkt testnet init -n 4"))
    init.add_argument("-n", type=int, default=4, help="number of nodes (default: 4)")
    init.add_argument("--random-keys", action="store_true", help="fresh random keys instead of the documented dev keys")
    init.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT, help="first libp2p TCP port (default: %(default)s)")
    init.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="first metrics port (default: %(default)s)")
    init.add_argument("--force", action="store_true", help="replace an existing testnet in --dir")
    init.set_defaults(func=_init)

    up = with_dir(cmd(tsub, "up", "Start the nodes and wait until a leader is elected and all are connected.",
                      "p2pmkt testnet up --timeout 60"))
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness (default: 60)")
    up.add_argument("--demo", action="store_true",
                    help="then run the demo workload with its live view (like `p2pmkt demo`); "
                         "the nodes keep running when it stops")
    add_workload_options(up)
    up.set_defaults(func=_up)

    st = with_dir(cmd(tsub, "status", "Show each node's address, roles, height and leadership.",
                      "p2pmkt testnet status --json"))
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=_status)

    logs = with_dir(cmd(tsub, "logs", "Print a node's log.", "p2pmkt testnet logs node1 -n 50"))
    logs.add_argument("node")
    logs.add_argument("-n", "--lines", type=int, default=100, help="last N lines (default: 100; 0 = all)")
    logs.set_defaults(func=_logs)

    down = with_dir(cmd(tsub, "down", "Stop every node (state is kept for the next `up`).", "p2pmkt testnet down"))
    down.set_defaults(func=_down)

    restart = with_dir(cmd(tsub, "restart", "Stop and start nodes (all by default), e.g. after editing a "
                           "node's config.toml or rules file, which a node reads when it starts; then "
                           "wait as `up` does.", "p2pmkt testnet restart node2"))
    restart.add_argument("nodes", nargs="*", metavar="NODE", help="node names (default: every node)")
    restart.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness (default: 60)")
    restart.set_defaults(func=_restart)

    reset = with_dir(cmd(tsub, "reset", "Stop the nodes and delete the testnet directory.", "p2pmkt testnet reset"))
    reset.set_defaults(func=_reset)

    demo = with_dir(cmd(tsub, "demo", "Init (if needed), start a 5-node testnet, run the demo workload and show a live status view; Ctrl-C stops everything.",
                        "p2pmkt testnet demo -n 5"))
    demo.add_argument("-n", type=int, default=5,
                      help="number of nodes when initialising (default: 5: the platform, the three demo "
                           "merchants and a terminal)")
    add_workload_options(demo)
    demo.set_defaults(func=_demo)


def _init(args: argparse.Namespace) -> int:
    from p2pmkt.cli.testnet import init_testnet

    rules = _demo_rules()
    net = init_testnet(args.dir, args.n, random_keys=args.random_keys, base_port=args.base_port,
                       metrics_port=args.metrics_port, force=args.force, rules=rules)
    print(f"testnet {net.chain_id} with {len(net.nodes)} nodes in {net.root}")
    for e in net.nodes:
        print(f"  {e.name:<7} {', '.join(e.roles):<45} {e.multiaddr}")
    print("start it with: p2pmkt testnet up" + ("" if args.dir == DEFAULT_DIR else f" --dir {args.dir}"))
    return 0


def _demo_rules() -> dict[str, str]:
    """Each demo merchant's default rules file, for its merchant-tech node's agent."""
    from p2pmkt.demo import DEMO_MERCHANTS, rules_toml
    from p2pmkt.node.workload import DEMO_COOLDOWN_MS

    return {m: rules_toml(m, cooldown_ms=DEMO_COOLDOWN_MS) for m in DEMO_MERCHANTS}


def _up(args: argparse.Namespace) -> int:
    from p2pmkt.cli.testnet import load_testnet, start_nodes
    from p2pmkt.cli.watch import wait_ready

    if args.demo:
        from p2pmkt.cli.watch import run_demo

        return run_demo(args, init=False, stop=False)
    net = load_testnet(args.dir)
    started = start_nodes(net)
    print(f"started {', '.join(started) if started else 'nothing (all running)'}")
    info = wait_ready(net, timeout=args.timeout)
    print(f"ready: leader {info['leader']}, {len(net.nodes)} nodes connected, height {info['height']}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from p2pmkt.cli.testnet import load_testnet, running_pids
    from p2pmkt.cli.watch import collect_status

    net = load_testnet(args.dir)
    rows = collect_status(net, running_pids(net))
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"testnet {net.chain_id} ({net.root})")
    for col in ("node", "state", "roles", "height", "leader", "peers", "multiaddr"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["state"], ", ".join(r["roles"]), str(r.get("height", "-")),
                      "yes" if r.get("is_leader") else "", str(r.get("peers", "-")), r["multiaddr"])
    Console().print(table)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from p2pmkt.cli.testnet import load_testnet

    entry = load_testnet(args.dir).node(args.node)
    try:
        lines = entry.log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        print(f"{entry.name} has no log yet ({entry.log_file})", file=sys.stderr)
        return 1
    for line in lines[-args.lines:] if args.lines else lines:
        print(line)
    return 0


def _down(args: argparse.Namespace) -> int:
    from p2pmkt.cli.testnet import load_testnet, stop_nodes

    stopped = stop_nodes(load_testnet(args.dir))
    print(f"stopped {', '.join(stopped) if stopped else 'nothing (none running)'}")
    return 0


def _restart(args: argparse.Namespace) -> int:
    from p2pmkt.cli.testnet import load_testnet, start_nodes, stop_nodes
    from p2pmkt.cli.watch import wait_ready

    net = load_testnet(args.dir)
    names = [net.node(n).name for n in args.nodes]  # an unknown name is refused before any stop
    stopped = stop_nodes(net, names)
    started = start_nodes(net, names)
    print(f"stopped {', '.join(stopped) if stopped else 'nothing (none running)'}; started {', '.join(started)}")
    info = wait_ready(net, timeout=args.timeout)
    print(f"ready: leader {info['leader']}, {len(net.nodes)} nodes connected, height {info['height']}")
    return 0


def _reset(args: argparse.Namespace) -> int:
    import shutil

    from p2pmkt.cli.testnet import load_testnet, stop_nodes

    if (args.dir / "testnet.json").exists():
        stop_nodes(load_testnet(args.dir))
    shutil.rmtree(args.dir, ignore_errors=True)
    print(f"removed {args.dir}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from p2pmkt.cli.watch import run_demo

    return run_demo(args)
