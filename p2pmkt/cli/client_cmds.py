"""Client-side commands: console, visits ingest, market queries and updates, demo.

Each talks to one node over the wire protocol, chosen with ``--connect MULTIADDR`` or
``--node NAME`` (a node of the local testnet in ``--dir``). Transactions are signed with
``--key FILE``, or with the node's own key when ``--node`` names a testnet node.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from p2pmkt.errors import ConfigError, InvalidTransaction


def register(sub: Any, cmd: Any, target: Any) -> None:
    c = cmd(sub, "console", "Attach a Python REPL to a running node (like geth attach).",
            "p2pmkt console --node node1")
    target(c)
    c.add_argument("--exec", dest="exec_file", type=Path, metavar="FILE",
                   help="run FILE in the console's namespace and exit (scripting)")
    c.add_argument("--no-history", action="store_true", help="do not read or write ~/.p2pmkt_console_history")
    c.set_defaults(func=_console)

    v = cmd(sub, "visits", "Visit data (terminal role).", "p2pmkt visits ingest access.log --node node4")
    vsub = v.add_subparsers(dest="visits_command", metavar="ACTION", required=True)
    ing = cmd(vsub, "ingest", "Batch visits from a file (or - for stdin) into signed visit.pack transactions.",
              "p2pmkt visits ingest ../shared/data/apache-combined-2015-05.log --format combined --merchant acme --node node4")
    from p2pmkt.cli.ingest_cmd import add_arguments  # its options, exit codes and key advice

    add_arguments(ing)
    target(ing)
    ing.set_defaults(func=_ingest)

    m = cmd(sub, "market", "Marketing information: read, update manually, measure the update cycle.",
            "p2pmkt market info acme --node node1")
    msub = m.add_subparsers(dest="market_command", metavar="ACTION", required=True)
    for name, helptext in (("info", "A merchant's current marketing information."),
                           ("history", "Past versions of a merchant's marketing information."),
                           ("reports", "Indicator reports of a merchant.")):
        p = cmd(msub, name, helptext, f"p2pmkt market {name} acme --node node1")
        p.add_argument("merchant")
        if name != "info":
            p.add_argument("--limit", type=int, default=10)
        target(p)
        p.set_defaults(func=_market_query, query=name)
    up = cmd(msub, "update", "Submit a manual update: the full campaigns list as JSON (merchant-tech role).",
             "p2pmkt market update acme --campaigns campaigns.json --node node2")
    up.add_argument("merchant")
    up.add_argument("--campaigns", type=Path, required=True, help="JSON file: a list of campaigns (docs/PROTOCOL.md §Market data)")
    up.add_argument("--cause", default="", help="report id that caused the update, e.g. acme/conversion/3")
    target(up)
    up.set_defaults(func=_market_update)
    cy = cmd(msub, "cycle", "Update-cycle figures: from the visit that made a report due to the update it caused. "
             "The chain evaluates reporting conditions at the end of every block, so that visit is in the "
             "report's own block; block time comes from the chain, wall time from the asked node's clock "
             "when it applied the two blocks (known for blocks applied since it last started).",
             "p2pmkt market cycle acme --node node1")
    cy.add_argument("merchant", nargs="+", help="merchant ids")
    cy.add_argument("--limit", type=int, default=500, help="updates to look at per merchant (default: 500)")
    target(cy)
    cy.set_defaults(func=_market_cycle)
    from p2pmkt.cli import governance_cmd  # p2pmkt member ...: governance (platform role)
    governance_cmd.register(sub, cmd, target)


def resolve(args: argparse.Namespace, *, need_key: bool = False) -> tuple[str, Any]:
    """The multiaddr and signing key the command's target options name."""
    from p2pmkt.crypto.keyfile import load_key

    key = load_key(args.key) if getattr(args, "key", None) else None
    if getattr(args, "connect", None):
        addr = args.connect
    else:
        from p2pmkt.cli.testnet import load_testnet

        net = load_testnet(args.dir)
        name = args.node or net.nodes[0].name
        entry = net.node(name)
        addr = entry.multiaddr
        if key is None:
            key = load_key(entry.dir / "node.key")
    if need_key and key is None:
        raise ConfigError("this command signs a transaction: pass --key FILE (or --node NAME)")
    return addr, key


def _connect(args: argparse.Namespace, *, need_key: bool = False) -> tuple[Any, Any]:
    from p2pmkt.client import connect

    addr, key = resolve(args, need_key=need_key)
    return connect(addr, key), key


def _console(args: argparse.Namespace) -> int:
    from p2pmkt.cli.console import BANNER, HISTORY_FILE, Console, interact, make_namespace
    from p2pmkt.cli.console_client import ConsoleClient

    script = None
    if args.exec_file:
        try:
            script = args.exec_file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read {args.exec_file}: {exc.strerror}") from exc
    addr, key = resolve(args)
    client = ConsoleClient.connect(addr)
    try:
        ns = make_namespace(client, key)
        if script is not None:
            ok = Console(ns).run_script(script, str(args.exec_file))
            return 0 if ok else 1
        info = client.info()
        banner = BANNER.format(target=addr, chain=info["chain"], height=info["height"],
                               roles=", ".join(info["roles"]) or "none")
        interact(ns, banner, history=None if args.no_history else HISTORY_FILE)
    finally:
        client.close()
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from p2pmkt.cli.ingest_cmd import run_ingest

    return run_ingest(args)


def _market_query(args: argparse.Namespace) -> int:
    from p2pmkt.cli.console import readable
    from p2pmkt.rpc.protocol import ErrorCode, RpcError

    client, _ = _connect(args)
    with client:
        if args.query == "info":
            result: Any = client.market_info(args.merchant)
            if result is None:
                print(f"merchant {args.merchant!r} has no marketing information yet", file=sys.stderr)
                return 1
        try:
            if args.query == "history":
                result = client.market_history(args.merchant, limit=args.limit)
            elif args.query == "reports":
                result = client.reports(args.merchant, limit=args.limit)
        except RpcError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
            print(exc.rpc_message, file=sys.stderr)  # an unknown merchant: a typo, usually
            return 1
    json.dump(readable(result), sys.stdout, indent=2, default=str)
    print()
    return 0


def _market_update(args: argparse.Namespace) -> int:
    from p2pmkt.cli.console_client import ConsoleClient
    from p2pmkt.market.model import Campaign

    try:
        campaigns = json.loads(args.campaigns.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read campaigns from {args.campaigns}: {exc}") from exc
    if not isinstance(campaigns, list):
        raise ConfigError(f"{args.campaigns}: must hold a JSON list of campaigns, got {type(campaigns).__name__}")
    parsed = []
    for i, c in enumerate(campaigns):
        try:
            parsed.append(Campaign.from_wire(c).to_wire())
        except InvalidTransaction as exc:  # refused here, before anything is signed or sent
            raise ConfigError(f"{args.campaigns}: campaign {i + 1}: {exc.message}") from exc
    addr, key = resolve(args, need_key=True)
    client = ConsoleClient.connect(addr)
    try:
        current = client.market_info(args.merchant)
        base = int(current["version"]) if current else 0
        status = client.send(key, "market.update", {
            "merchant": args.merchant, "base_version": base, "campaigns": parsed, "cause": args.cause,
        })
    finally:
        client.close()
    from p2pmkt.cli.console import readable

    print(json.dumps(readable(status)))
    return 0 if status.get("status") == "committed" else 1


def _market_cycle(args: argparse.Namespace) -> int:
    from p2pmkt.cli.cycle_cmd import run_cycle

    return run_cycle(args)
