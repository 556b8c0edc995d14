"""``p2pmkt rules check``: check a mapping-rules file (docs/RULES.md) before a node uses it.

Offline it checks what the file alone decides: TOML, keys, conditions, actions and their
bounds, indicator names the chain could accept. With ``--connect`` or ``--node`` it also
checks every rule's indicator against the merchant's indicators configured on that chain (and
a rule's ``value`` against the values that indicator's latest report carries): a rule on an
indicator the merchant has not configured would never fire, so it is refused here with its
line. A node loads the same file at start without this chain check (its indicators may be
configured after it starts) and logs such a rule as ``agent_rule_unconfigured``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from p2pmkt.errors import ConfigError


def register(sub: Any, cmd: Any, target: Any) -> None:
    r = cmd(sub, "rules", "Merchant-tech mapping rules (docs/RULES.md).",
            "p2pmkt rules check acme-rules.toml --node node2")
    rsub = r.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = cmd(rsub, "check", "Check a rules file; with --connect/--node also its indicators against the chain.",
                "p2pmkt rules check acme-rules.toml --connect /ip4/127.0.0.1/tcp/7102/p2p/16Uiu2…")
    check.add_argument("file", type=Path)
    check.add_argument("--merchant", help="whose rules these are, when the file does not say (merchant = ...)")
    target(check)
    check.set_defaults(func=_check)


def chain_catalog(client: Any, merchant: str) -> dict[str, frozenset[str]]:
    """The indicators the merchant has configured on chain, each with the value names of its
    latest report (empty when it has none yet: any value is accepted)."""
    configured = client.call("market.indicators", {"merchant": merchant})["items"]
    values: dict[str, frozenset[str]] = {spec["name"]: frozenset() for spec in configured}
    for report in client.reports(merchant, limit=500):  # newest first
        name = report["indicator"]
        if name in values and not values[name] and report["ok"]:
            values[name] = frozenset(v for v, _ in report["values"])
    return values


def _check(args: argparse.Namespace) -> int:
    from p2pmkt.agent import load_rules

    rules = load_rules(args.file, merchant=args.merchant)
    merchant = rules.merchant or args.merchant
    count = f"{args.file}: {len(rules.rules)} rule(s)" + (f" for {merchant}" if merchant else "")
    if not (args.connect or args.node):
        print(f"{count}: ok (indicators not checked against a chain: add --connect or --node)")
        return 0
    if merchant is None:
        raise ConfigError(f"{args.file} names no merchant: add merchant = \"...\" to it or pass --merchant")
    from p2pmkt.cli.client_cmds import resolve
    from p2pmkt.client import connect
    from p2pmkt.rpc.protocol import ErrorCode, RpcError

    addr, _ = resolve(args)
    with connect(addr) as client:
        try:
            catalog = chain_catalog(client, merchant)
        except RpcError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
            where = "--merchant" if rules.merchant is None else f"{args.file} line {rules.merchant_line}"
            raise ConfigError(f"{where}: {exc.rpc_message}") from exc
    load_rules(args.file, merchant=merchant, catalog=catalog)
    print(f"{count}: ok; every rule's indicator is configured on chain ({', '.join(sorted(catalog))})")
    return 0
