"""``p2pmkt indicator configure|remove|show``: a merchant's indicators (merchant-ops role).

An indicator names deployed contract code (``p2pmkt contract deploy``, or a built-in), the
parameters it runs with, its reporting condition (every N visits of the merchant, every T ms
of block time, or both: whichever comes first) and the target its reports are judged against
(docs/CONTRACTS.md, step 6). Configuring one again replaces it. Payloads are checked locally
with the chain's own parser before anything is signed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from p2pmkt.errors import ConfigError, InvalidTransaction

TARGET = re.compile(r"^\s*([^<>=]+?)\s*(>=|<=)\s*([0-9]+(?:\.[0-9]+)?)\s*$")
"""VALUE>=X or VALUE<=X; the value's name is checked by the chain's own rule (one message)."""


def register(sub: Any, cmd: Any, target: Any) -> None:
    ind = cmd(sub, "indicator", "A merchant's indicators: contract, params, reporting condition, target "
              "(merchant-ops role).",
              "p2pmkt indicator configure acme conversion --code builtin:conversion_rate "
              "--every-visits 2000 --target 'conversion_rate>=0.02' --node node2")
    isub = ind.add_subparsers(dest="indicator_command", metavar="ACTION", required=True)

    conf = cmd(isub, "configure", "Configure (or replace) an indicator of a merchant.",
               "p2pmkt indicator configure acme big-orders --code big_orders/build/big_orders.wasm "
               "--param min_amount=5000 --every-visits 1000 --every-ms 60000 "
               "--target 'big_order_share>=0.2' --key ops.key --connect /ip4/…/p2p/16Uiu2…")
    conf.add_argument("merchant")
    conf.add_argument("name", help="indicator name: 1-64 chars of a-z 0-9 _ . -")
    conf.add_argument("--code", required=True, metavar="CODE",
                      help="the deployed code: its sha256 in hex, the .wasm file deployed, or "
                           "builtin:NAME (e.g. builtin:conversion_rate; deploy it first with "
                           "`p2pmkt contract deploy builtin:NAME` unless someone has)")
    conf.add_argument("--param", action="append", default=[], metavar="NAME=INT",
                      help="a contract parameter, a 64-bit integer (repeatable)")
    conf.add_argument("--every-visits", type=int, default=0, metavar="N",
                      help="report after every N visits of the merchant (0: off)")
    conf.add_argument("--every-ms", type=int, default=0, metavar="MS",
                      help="report every MS ms of block time (0: off); at least one of the two")
    conf.add_argument("--target", metavar="VALUE>=X|VALUE<=X",
                      help="the target a report is judged against, e.g. 'conversion_rate>=0.02' "
                           "(X is a decimal; without --target reports are never 'missed')")
    conf.add_argument("--skip-target-check", action="store_true",
                      help="do not refuse a --target whose value the contract does not write over "
                           "sample visits (for a contract that writes it only for some windows)")
    conf.add_argument("--scale", type=int, default=None,
                      help="decimal places of the target's fixed-point threshold (default: the "
                           "digits X needs, at least 4)")
    target(conf)
    conf.set_defaults(func=_configure)

    for action, help_text, example, func in (
        ("remove", "Stop an indicator (its past reports stay on chain).",
         "p2pmkt indicator remove acme big-orders --node node2", _remove),
        ("show", "Print an indicator's configuration (exit 1 if it has none).",
         "p2pmkt indicator show acme conversion --node node1", _show),
    ):
        p = cmd(isub, action, help_text, example)
        p.add_argument("merchant")
        p.add_argument("name")
        target(p)
        p.set_defaults(func=func)


def code_hash(text: str) -> bytes:
    """The 32-byte code hash ``--code`` names.

    Raises:
        ConfigError: neither 64 hex digits, ``builtin:NAME`` of a built-in, nor a readable file.
    """
    import hashlib

    if text.startswith("builtin:"):
        from p2pmkt.contracts.builtin import builtin_hash

        try:
            return builtin_hash(text.removeprefix("builtin:"))
        except KeyError as exc:
            raise ConfigError(f"--code: {exc.args[0]}") from exc
    if re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text.removeprefix("0x"))
    try:
        return hashlib.sha256(Path(text).read_bytes()).digest()
    except OSError as exc:
        raise ConfigError(f"--code {text}: not a code hash (64 hex digits), builtin:NAME or a readable "
                          f".wasm file ({exc.strerror})") from exc


def parse_target(text: str, scale: int | None) -> dict[str, Any]:
    """``'conversion_rate>=0.02'`` → the target map of ``indicator.configure``.

    Raises:
        ConfigError: not ``VALUE>=X`` or ``VALUE<=X``, or X needs more decimals than ``scale``.
    """
    m = TARGET.match(text)
    if m is None:
        raise ConfigError(f"--target {text!r}: write VALUE>=X or VALUE<=X, e.g. 'conversion_rate>=0.02'")
    value, op, number = m.groups()
    try:
        x = Decimal(number)
    except InvalidOperation as exc:  # the pattern admits only plain decimals; kept for safety
        raise ConfigError(f"--target {text!r}: {number} is not a decimal number") from exc
    needed = max(0, -int(x.as_tuple().exponent))
    if scale is None:
        scale = max(4, needed)
    elif needed > scale:
        raise ConfigError(f"--target {text!r}: {number} needs {needed} decimal places; --scale is {scale}")
    return {"value": value, "threshold": int(x.scaleb(scale)), "scale": scale,
            "direction": "at_least" if op == ">=" else "at_most"}


def configure_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The checked ``indicator.configure`` payload of ``args``.

    Raises:
        ConfigError: a bad option; the chain's own check of the payload names what is wrong.
    """
    from p2pmkt.market.model import IndicatorSpec

    params: dict[str, int] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        try:
            params[name.strip()] = int(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(f"--param {item!r}: write NAME=INTEGER, e.g. min_amount=5000")
    payload = {
        "merchant": args.merchant, "name": args.name, "code": code_hash(args.code), "params": params,
        "condition": {"every_visits": args.every_visits, "every_ms": args.every_ms},
        "target": None if args.target is None else parse_target(args.target, args.scale),
    }
    try:
        IndicatorSpec.from_wire(payload)
    except InvalidTransaction as exc:
        # The chain's words are the payload's; say them in this command's options.
        message = str(exc)
        for field, option in (("every_visits", "--every-visits"), ("every_ms", "--every-ms")):
            message = message.replace(field, option)
        raise ConfigError(message) from exc
    if payload["target"] is not None and not getattr(args, "skip_target_check", False):
        _check_target_value(args.code, params, payload["target"]["value"])
    return payload


def _check_target_value(code_arg: str, params: dict[str, int], value: str) -> None:
    """Refuse a target naming a value the contract does not write: the chain judges a report
    without the target's value as not missed, so such an indicator would never move the
    agent. The contract runs over sample visits; a bare code hash cannot be run here.

    Raises:
        ConfigError: the contract ran and wrote other values.
    """
    from p2pmkt.cli.contract import value_names_on_samples

    if code_arg.startswith("builtin:"):
        from p2pmkt.contracts.builtin import builtin_code

        code = builtin_code(code_arg.removeprefix("builtin:"))
    elif re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", code_arg):
        return
    else:
        code = Path(code_arg).read_bytes()
    names = value_names_on_samples(code, params)
    if isinstance(names, str) or value in names:
        return  # a contract failing on sample visits is for `contract run` to explain
    raise ConfigError(
        f"--target names the value {value!r}, but this contract writes {names} (run over sample "
        "visits): its reports would never be judged missed. Name one of those, or pass "
        f"--skip-target-check if the contract writes {value!r} only for some windows")


def _send(args: argparse.Namespace, kind: str, payload: dict[str, Any]) -> int:
    from p2pmkt.cli.client_cmds import resolve
    from p2pmkt.cli.console import readable
    from p2pmkt.cli.console_client import ConsoleClient

    addr, key = resolve(args, need_key=True)
    client = ConsoleClient.connect(addr)
    try:
        status = client.send(key, kind, payload)
    finally:
        client.close()
    print(json.dumps(readable(status)))
    return 0 if status.get("status") == "committed" else 1


def _configure(args: argparse.Namespace) -> int:
    return _send(args, "indicator.configure", configure_payload(args))


def _remove(args: argparse.Namespace) -> int:
    return _send(args, "indicator.remove", {"merchant": args.merchant, "name": args.name})


def _show(args: argparse.Namespace) -> int:
    from p2pmkt.cli.client_cmds import resolve
    from p2pmkt.cli.console import readable
    from p2pmkt.client import connect

    addr, _ = resolve(args)
    with connect(addr) as client:
        spec = client.call("market.indicator", {"merchant": args.merchant, "name": args.name})["indicator"]
    if spec is None:
        print(f"merchant {args.merchant!r} has no indicator {args.name!r}", file=sys.stderr)
        return 1
    print(json.dumps(readable(spec), indent=2, default=str))
    return 0
