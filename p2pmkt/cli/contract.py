"""``p2pmkt contract``: the SDK for merchants' indicator contracts (issue 3, docs/CONTRACTS.md).

``new NAME``   scaffold an AssemblyScript indicator project in ./NAME
``build``      npm install (first time) and compile it to build/NAME.wasm, then check it
``run``        evaluate a .wasm locally over a JSON-lines file of visits, with params
``deploy``     build and sign the ``contract.deploy`` transaction for a .wasm

Imports stay inside the command functions (wasmtime alone costs ~40 ms) so that
``p2pmkt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VISIT_FIELDS = ("ip", "account", "time", "merchant", "method", "op", "item", "amount")
DEFAULT_FUEL = 200_000_000
DEFAULT_MEMORY = 64 * 1024 * 1024

DESCRIPTION = """\
Write, build, try and deploy merchants' indicator contracts (docs/CONTRACTS.md).

  new NAME   scaffold an AssemblyScript indicator project in ./NAME
  build      npm install (first time) and compile it to build/NAME.wasm, then check it
  run        evaluate a .wasm locally over a JSON-lines file of visits, with params
  deploy     build and sign the contract.deploy transaction for a .wasm (and submit it)"""


def add_parser(subparsers: Any) -> None:
    """Register ``contract new|build|run|deploy`` on an argparse sub-parsers object."""
    fmt = argparse.RawDescriptionHelpFormatter
    contract = subparsers.add_parser(
        "contract", help="Write, build, try and deploy indicator contracts.", description=DESCRIPTION,
        formatter_class=fmt,
        epilog="example:\n  p2pmkt contract new big_orders && p2pmkt contract build big_orders",
    )
    sub = contract.add_subparsers(dest="contract_command", metavar="ACTION", required=True)

    new = sub.add_parser("new", help="Scaffold an AssemblyScript indicator project.",
                         epilog="example: p2pmkt contract new big_orders", formatter_class=fmt)
    new.add_argument("name", help="project and indicator name: [a-z][a-z0-9_-]*")
    new.add_argument("--dir", type=Path, default=None, help="where to create it (default: ./NAME)")
    new.set_defaults(func=_new)

    build = sub.add_parser("build", help="Compile the project in DIR to build/NAME.wasm.",
                           epilog="example: p2pmkt contract build big_orders", formatter_class=fmt)
    build.add_argument("dir", type=Path, nargs="?", default=Path("."))
    build.set_defaults(func=_build)

    run = sub.add_parser(
        "run", help="Evaluate a contract locally over visits (JSON lines).", formatter_class=fmt,
        epilog="example: p2pmkt contract run build/big_orders.wasm --visits visits.jsonl "
        "--param min_amount=5000",
    )
    run.add_argument("wasm", type=Path)
    run.add_argument("--visits", type=Path, required=True,
                     help="one visit per line: {ip, account, time, merchant, method, op, item, amount}")
    run.add_argument("--param", action="append", dest="params", default=[], metavar="NAME=INT",
                     help="a contract parameter, a 64-bit integer (repeatable, as `indicator configure` takes it)")
    run.add_argument("--params", nargs="*", dest="params", metavar="K=V",
                     help="several parameters at once (the older spelling)")
    run.add_argument("--fuel", type=int, default=DEFAULT_FUEL, help="fuel budget (default: %(default)s)")
    run.add_argument("--memory", type=int, default=DEFAULT_MEMORY, help="memory limit in bytes (default: %(default)s)")
    run.set_defaults(func=_run)

    deploy = sub.add_parser(
        "deploy", help="Sign a contract.deploy transaction for a .wasm (and submit it).",
        formatter_class=fmt,
        epilog="examples:\n  p2pmkt contract deploy build/big_orders.wasm --key ops.key --connect /ip4/127.0.0.1/tcp/7100/p2p/16Uiu2…\n"
               "  p2pmkt contract deploy build/big_orders.wasm --key ops.key --chain p2pmkt-dev --nonce 3 --out deploy.tx   (offline)",
    )
    deploy.add_argument("wasm", type=Path, help="the .wasm file, or builtin:NAME for a built-in indicator (e.g. builtin:conversion_rate)")
    deploy.add_argument("--key", type=Path, help="merchant-ops key file (default with --node: that testnet node's own key)")
    where = deploy.add_mutually_exclusive_group()
    where.add_argument("--connect", metavar="MULTIADDR", help="submit to this node and wait for the block (chain id and nonce are asked of it)")
    where.add_argument("--node", metavar="NAME", help="submit to this node of the local testnet in --dir (like --connect)")
    deploy.add_argument("--dir", type=Path, default=Path("testnet/run"), help="testnet directory for --node (default: testnet/run)")
    deploy.add_argument("--chain", help="chain id (offline signing; asked of the node with --connect)")
    deploy.add_argument("--nonce", type=int, help="the key's next nonce (offline signing; asked of the node with --connect)")
    deploy.add_argument("--out", type=Path, default=None, help="write the signed transaction here instead of submitting it")
    deploy.set_defaults(func=_deploy)


def _new(args: argparse.Namespace) -> int:
    from p2pmkt.contracts.builtin import BUILTIN_DIR
    from p2pmkt.errors import ConfigError

    name: str = args.name
    if not _NAME.match(name):
        raise ConfigError(f"contract name {name!r} must match {_NAME.pattern}")
    target: Path = args.dir or Path(name)
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} exists and is not empty; choose another --dir")
    template = Path(__file__).resolve().parents[1] / "contracts" / "sdk_template"
    (target / "assembly").mkdir(parents=True, exist_ok=True)
    for rel in ("package.json", "README.md", "assembly/index.ts"):
        text = (template / rel).read_text().replace("NAME", name)
        (target / rel).write_text(text)
    shutil.copyfile(BUILTIN_DIR / "assembly" / "sdk.ts", target / "assembly" / "sdk.ts")
    (target / "visits.jsonl").write_text("".join(json.dumps(v) + "\n" for v in _sample_visits()))
    print(f"created {target}/ (next: p2pmkt contract build {target})")
    return 0


def _sample_visits() -> list[dict[str, Any]]:
    base = 1_700_000_000_000
    rows = [
        ("10.0.0.1", "", "browser", "view", "sku1", 0),
        ("10.0.0.1", "", "browser", "cart", "sku1", 0),
        ("10.0.0.2", "alice", "app", "view", "sku2", 0),
        ("10.0.0.2", "alice", "app", "order", "sku2", 12900),
        ("10.0.0.3", "bob", "desktop", "order", "sku1", 4500),
        ("10.0.0.4", "", "browser", "search", "", 0),
    ]
    return [
        {"ip": ip, "account": acct, "time": base + i * 60_000, "merchant": "acme",
         "method": method, "op": op, "item": item, "amount": amount}
        for i, (ip, acct, method, op, item, amount) in enumerate(rows)
    ]


def value_names_on_samples(code: bytes, params: dict[str, int]) -> list[str] | str:
    """The value names ``code`` writes over the scaffold's sample visits (real wasmtime),
    or the runtime's error slug when it fails there."""
    import hashlib

    from p2pmkt.contracts import WasmRuntime
    from p2pmkt.market.model import Visit

    visits = [Visit.from_wire([v[f] for f in _VISIT_FIELDS]) for v in _sample_visits()]
    result = WasmRuntime().evaluate(code, hashlib.sha256(code).digest(), visits, params,
                                    fuel=DEFAULT_FUEL, memory_bytes=DEFAULT_MEMORY)
    return [name for name, _ in result.values] if result.ok else result.error


def _build(args: argparse.Namespace) -> int:
    from p2pmkt.errors import ConfigError

    directory: Path = args.dir
    package = directory / "package.json"
    if not package.exists():
        raise ConfigError(f"{package} not found: run `p2pmkt contract new NAME` first")
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError("npm is not on PATH: install Node.js 20+ to build contracts")
    if not (directory / "node_modules" / "assemblyscript").exists():
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=directory, check=True)
    subprocess.run([npm, "run", "--silent", "build"], cwd=directory, check=True)
    built = sorted((directory / "build").glob("*.wasm"))
    for path in built:
        _check(path)
    return 0 if built else 1


def _check(path: Path) -> None:
    import hashlib

    from p2pmkt.contracts import WasmRuntime

    code = path.read_bytes()
    WasmRuntime().check_code(code)  # raises ContractRejected with the reason
    print(f"{path}: {len(code)} bytes, code hash {hashlib.sha256(code).hexdigest()} (deployable)")


def _parse_params(items: list[str]) -> dict[str, int]:
    from p2pmkt.errors import ConfigError

    params: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            params[key] = int(value)
        except ValueError:
            raise ConfigError(f"--params {item!r}: expected NAME=INTEGER") from None
        if not sep:
            raise ConfigError(f"--params {item!r}: expected NAME=INTEGER")
    return params


def _load_visits(path: Path) -> list[Any]:
    from p2pmkt.errors import ConfigError, InvalidTransaction
    from p2pmkt.market.model import Visit

    visits = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if isinstance(obj, dict):  # the readable form; the wire form is an array
                obj = [obj.get(f, "" if f in ("account", "item") else 0 if f == "amount" else None)
                       for f in _VISIT_FIELDS]
            visits.append(Visit.from_wire(obj))
        except (json.JSONDecodeError, InvalidTransaction) as exc:
            raise ConfigError(f"{path}:{lineno}: {exc}") from None
    return visits


def _run(args: argparse.Namespace) -> int:
    import hashlib

    from p2pmkt.contracts import WasmRuntime

    code = args.wasm.read_bytes()
    visits = _load_visits(args.visits)
    runtime = WasmRuntime()
    runtime.check_code(code)
    result = runtime.evaluate(
        code, hashlib.sha256(code).digest(), visits, _parse_params(args.params),
        fuel=args.fuel, memory_bytes=args.memory,
    )
    out: dict[str, Any] = {
        "ok": result.ok, "visits": len(visits), "fuel_used": result.fuel_used, "scale": result.scale,
        "values": dict(result.values),
        "decimal": {k: _decimal(v, result.scale) for k, v in result.values},
    }
    if not result.ok:
        out["error"] = result.error
    print(json.dumps(out, indent=2))
    return 0 if result.ok else 1


def _decimal(value: int, scale: int) -> str:
    """``value / 10**scale`` as exact decimal text (no floats)."""
    if scale == 0:
        return str(value)
    sign, digits = ("-" if value < 0 else ""), str(abs(value)).rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


def _deploy(args: argparse.Namespace) -> int:
    import hashlib

    from p2pmkt.chain.tx import make_tx
    from p2pmkt.crypto.keyfile import load_key
    from p2pmkt.errors import ConfigError

    if str(args.wasm).startswith("builtin:"):  # a built-in indicator's committed module
        from p2pmkt.contracts.builtin import builtin_code

        try:
            code = builtin_code(str(args.wasm).removeprefix("builtin:"))
        except KeyError as exc:
            raise ConfigError(exc.args[0]) from exc
    else:
        code = args.wasm.read_bytes()
        _check(args.wasm)
    if args.node:  # a testnet node: its address, and its own key unless --key names another
        from p2pmkt.cli.client_cmds import resolve

        args.connect, key = resolve(args, need_key=True)
    elif args.key is None:
        raise ConfigError("contract deploy signs a transaction: pass --key FILE (or --node NAME)")
    else:
        key = load_key(args.key)
    code_hash = hashlib.sha256(code).hexdigest()
    chain, nonce = args.chain, args.nonce
    if args.connect:
        from p2pmkt.cli.console_client import ConsoleClient

        client = ConsoleClient.connect(args.connect)
        try:
            if args.out is None:  # submit and wait for the block
                st = client.send(key, "contract.deploy", {"code": code})
                where = f" at height {st['height']}" if "height" in st else ""
                why = f" ({st.get('reason')}: {st.get('message')})" if st["status"] == "rejected" else ""
                print(f"contract.deploy {st['txid'].hex()}: {st['status']}{where}{why}; code hash {code_hash}")
                return 0 if st["status"] == "committed" else 1  # rejected in its block (main.py)
            chain = chain or client.info()["chain"]
            nonce = nonce if nonce is not None else client.next_nonce(key.address)
        finally:
            client.close()
    if chain is None or nonce is None:
        raise ConfigError("offline signing needs --chain and --nonce (or use --connect MULTIADDR)")
    stx = make_tx(key, chain, nonce, "contract.deploy", {"code": code})
    wire = stx.encode()
    if args.out is not None:
        args.out.write_bytes(wire)
        print(f"wrote signed contract.deploy {stx.txid.hex()} ({len(wire)} bytes) to {args.out}")
    else:
        sys.stdout.write(wire.hex() + "\n")
    return 0
