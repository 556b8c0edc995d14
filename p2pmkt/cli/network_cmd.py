"""Commands that set up a real, multi-machine network: ``p2pmkt genesis new|show`` and
``p2pmkt node init``.

A consortium launches a network in three steps, each one a command here:

1. One operator collects every member's public key (``p2pmkt key show``) and writes the
   genesis file with ``genesis new``; it prints the genesis hash.
2. Every operator checks the file with ``genesis show`` and compares the hash out of band:
   nodes whose genesis differs refuse each other, so a mismatch found now saves a confusing
   start.
3. Every operator makes a self-contained node directory (config, key, genesis copy, rules)
   with ``node init`` and starts it with ``p2pmkt node run --config DIR/config.toml``.

What this module owns: turning flags into a genesis object and a node config. What it does not
own: the rules themselves. Genesis is validated by :func:`p2pmkt.chain.genesis.genesis_from_json`
and configs by :func:`p2pmkt.config.config_from_dict`, so a file these commands write is
exactly one that ``node run`` accepts, and a mistake fails here, before anything is written.
Heavy modules are imported inside the handlers (``p2pmkt --help`` must answer at once).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2pmkt.errors import ConfigError

if TYPE_CHECKING:
    from p2pmkt.chain.genesis import Genesis, Member
    from p2pmkt.crypto import PrivateKey

DEFAULT_LISTEN = "/ip4/0.0.0.0/tcp/7100"
DEFAULT_METRICS = "127.0.0.1:9100"
PLACEHOLDER_HOST = "<this machine's IP>"
CONFIG_NAME = "config.toml"
KEY_NAME = "node.key"
GENESIS_NAME = "genesis.json"


def register(sub: Any, cmd: Any, node_sub: Any, target: Any) -> None:
    """Add ``genesis new|show`` to the top-level ``sub`` and ``init`` and ``status`` to
    ``node_sub`` (the ``p2pmkt node`` actions); ``cmd`` and ``target`` are
    :func:`p2pmkt.cli.commands._cmd` and ``_target`` (the options choosing a node)."""
    g = cmd(sub, "genesis", "Write or inspect the genesis file of a multi-machine network.",
            "p2pmkt genesis show genesis.json")
    gsub = g.add_subparsers(dest="genesis_command", metavar="ACTION", required=True)

    new = cmd(gsub, "new", "Write a genesis file from the members' public keys and roles, and "
                           "print its hash for the operators to compare.",
              "p2pmkt genesis new genesis.json --chain-id acme-net "
              "--member platform platform.json platform "
              "--member acme acme.json merchant-ops:acme,merchant-tech:acme "
              "--validator platform --validator acme")
    new.add_argument("file", type=Path, help="genesis file to write")
    new.add_argument("--chain-id", required=True, metavar="ID",
                     help="network name: 1-64 letters, digits, '.', '_' or '-'")
    new.add_argument(
        "--member", nargs=3, action="append", required=True, metavar=("NAME", "PUBKEY", "ROLES"),
        help="a member (repeat for each): its name; its public key as 66 hex digits, a JSON file "
             "from `p2pmkt key show KEY > FILE`, or a key file; comma-separated roles from "
             "platform, terminal, merchant-ops:<merchant>, merchant-tech:<merchant> "
             "(\"\" for none)")
    new.add_argument("--validator", action="append", default=[], metavar="NAME",
                     help="a member that validates (repeat; default: every member)")
    new.add_argument("--genesis-time", type=int, metavar="MS",
                     help="ms since the epoch; block times start after it (default: now)")
    new.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a chain parameter, e.g. block_interval_ms=200 (repeat)")
    new.add_argument("--force", action="store_true", help="replace an existing FILE")
    new.set_defaults(func=_genesis_new)

    show = cmd(gsub, "show", "Validate a genesis file and print its hash, members and parameters.",
               "p2pmkt genesis show genesis.json --json")
    show.add_argument("file", type=Path)
    show.add_argument("--json", action="store_true", help="one JSON object (for scripts)")
    show.set_defaults(func=_genesis_show)

    init = cmd(node_sub, "init", "Write a self-contained node directory (config, key, genesis) "
                                 "for one machine of a network.",
               "p2pmkt node init node1 --genesis genesis.json --name node1 --key node1.key "
               "--announce /ip4/203.0.113.7/tcp/7100 "
               "--bootstrap /ip4/203.0.113.8/tcp/7100/p2p/16Uiu2…")
    init.add_argument("dir", type=Path, help="node directory to write (created if missing)")
    init.add_argument("--genesis", type=Path, required=True, metavar="FILE",
                      help="the network's genesis file (copied into DIR)")
    init.add_argument("--name", required=True, help="this node's name (in its logs and metrics)")
    init.add_argument("--key", type=Path, metavar="KEYFILE",
                      help="the node's key file, copied to DIR/node.key (default: keep DIR/node.key "
                           "if there is one, else a new random key)")
    init.add_argument("--listen", action="append", default=[], metavar="MADDR",
                      help=f"multiaddr to listen on (repeat; default: {DEFAULT_LISTEN})")
    init.add_argument("--announce", action="append", default=[], metavar="MADDR",
                      help="multiaddr peers should dial instead of the listen ones, e.g. the "
                           "public address behind NAT (repeat)")
    init.add_argument("--bootstrap", action="append", default=[], metavar="MADDR",
                      help="another node's multiaddr ending in /p2p/<peer id> (repeat)")
    init.add_argument("--metrics", default=DEFAULT_METRICS, metavar="HOST:PORT",
                      help="Prometheus endpoint; \"\" turns it off (default: %(default)s)")
    init.add_argument("--rules", type=Path, metavar="RULES.toml",
                      help="mapping-rules file for a merchant-tech node's agent (copied into DIR)")
    init.add_argument("--force", action="store_true", help="replace an existing DIR/config.toml")
    init.set_defaults(func=_node_init)

    status = cmd(node_sub, "status", "A running node's view of the network: chain, height, leader, "
                                     "connected members, its own roles, mempool.",
                 "p2pmkt node status --connect /ip4/198.51.100.10/tcp/7100/p2p/16Uiu2…")
    target(status)
    status.add_argument("--json", action="store_true", help="node.info as one JSON object (for scripts)")
    status.set_defaults(func=_node_status)


# --- genesis new ---------------------------------------------------------------------------


def _genesis_new(args: argparse.Namespace) -> int:
    import time

    from p2pmkt.chain.genesis import genesis_from_json
    from p2pmkt.cli.key_sources import read_pubkey

    path: Path = args.file
    if path.exists() and not args.force:
        raise ConfigError(f"{path} already exists; pass --force to replace it")
    members = [
        {"name": name, "pubkey": read_pubkey(source, f"--member {name}").hex(),
         "roles": _roles(roles)}
        for name, source, roles in args.member
    ]
    all_validate = not args.validator
    obj = {
        "chain_id": args.chain_id,
        "genesis_time": (args.genesis_time if args.genesis_time is not None
                         else int(time.time() * 1000)),
        "members": members,
        "validators": [m["name"] for m in members] if all_validate else args.validator,
        "params": _params(args.param),
    }
    genesis = genesis_from_json(obj, "genesis")  # every rule lives there
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        genesis.save(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    print(f"wrote {path}")
    print(f"  chain id      {genesis.chain_id}")
    print(f"  members       {', '.join(m.name for m in genesis.members)}")
    note = " (every member: no --validator given)" if all_validate else ""
    print(f"  validators    {', '.join(genesis.validators)}{note}")
    print(f"  genesis hash  {genesis.hash.hex()}")
    print("Compare this hash with every other operator before starting: nodes with a different "
          "genesis refuse each other.")
    print(f"Next, on each machine: p2pmkt node init DIR --genesis {path} --name NAME --key KEYFILE")
    return 0


def _roles(text: str) -> list[str]:
    """``"platform, merchant-ops:acme"`` → ``["platform", "merchant-ops:acme"]``; ``""`` → ``[]``.
    Each role is checked by :func:`genesis_from_json`."""
    return [r.strip() for r in text.split(",") if r.strip()]


def _params(items: list[str]) -> dict[str, Any]:
    """``--param KEY=VALUE`` flags as a genesis ``params`` object. Values that are not
    integers are kept as text so that :class:`ChainParams` names the key in its refusal.

    Raises:
        ConfigError: a flag without ``=``, or a key given twice.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"--param takes KEY=VALUE (like block_interval_ms=200), got {item!r}")
        if key in params:
            raise ConfigError(f"--param {key} is given twice")
        try:
            params[key] = int(value)
        except ValueError:
            params[key] = value
    return params


# --- genesis show --------------------------------------------------------------------------


def _genesis_show(args: argparse.Namespace) -> int:
    from p2pmkt.chain.genesis import load_genesis

    genesis = load_genesis(args.file)
    summary = _summary(genesis)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 200))
    console.print(f"genesis file  {args.file}", highlight=False)
    console.print(f"chain id      {summary['chain_id']}", highlight=False)
    console.print(f"genesis hash  {summary['hash']}", highlight=False)
    console.print(f"genesis time  {summary['genesis_time']} ({summary['genesis_time_utc']})",
                  highlight=False)
    members = Table(title="members")
    # Operators copy addresses and peer ids into configs and chats: never elide them (a
    # narrow terminal folds them; a pipe or file gets whole lines).
    for col in ("name", "address", "peer id", "roles", "validator"):
        members.add_column(col, overflow="fold")
    for m in summary["members"]:
        members.add_row(m["name"], m["address"], m["peer_id"], ", ".join(m["roles"]) or "-",
                        "yes" if m["validator"] else "no")
    console.print(members)
    params = Table(title="params")
    params.add_column("param")
    params.add_column("value", justify="right")
    for key, value in summary["params"].items():
        params.add_row(key, str(value))
    console.print(params)
    return 0


def _summary(genesis: Genesis) -> dict[str, Any]:
    """Everything ``genesis show`` prints, as one JSON-ready object."""
    from datetime import UTC, datetime

    from p2pmkt.crypto import address_hex
    from p2pmkt.crypto.peerid import peer_id_of

    when = datetime.fromtimestamp(genesis.genesis_time / 1000, tz=UTC)
    return {
        "chain_id": genesis.chain_id,
        "hash": genesis.hash.hex(),
        "genesis_time": genesis.genesis_time,
        "genesis_time_utc": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "members": [
            {
                "name": m.name,
                "pubkey": m.pubkey.hex(),
                "address": address_hex(m.address),
                "peer_id": peer_id_of(m.pubkey),
                "roles": list(m.roles),
                "validator": m.name in genesis.validators,
            }
            for m in genesis.members
        ],
        "validators": list(genesis.validators),
        "params": genesis.params.to_json(),
    }


# --- node init -----------------------------------------------------------------------------


def _node_init(args: argparse.Namespace) -> int:
    from p2pmkt.chain.genesis import load_genesis
    from p2pmkt.crypto import address_hex
    from p2pmkt.crypto.peerid import peer_id_of

    root: Path = args.dir
    if (root / CONFIG_NAME).exists() and not args.force:
        raise ConfigError(f"{root} already holds a node config ({root / CONFIG_NAME}); "
                          "pass --force to replace it")
    genesis = load_genesis(args.genesis)
    key, key_origin = _node_key(root, args.key)
    member = _member_of(genesis, key)
    rules_name = _check_rules(args.rules, member)
    text = _config_text(args, rules_name)
    _validate_config(text, root)  # before writing anything
    _write_node_dir(root, text, genesis_src=args.genesis, key=key if key_origin else None,
                    rules_src=args.rules, rules_name=rules_name)

    peer_id = peer_id_of(key.public_key.compressed)
    rules_note = f", {root / rules_name}" if rules_name else ""
    print(f"wrote {root / CONFIG_NAME}, {root / GENESIS_NAME}{rules_note} and {root / KEY_NAME} "
          f"({key_origin or 'the existing key, kept'})")
    print(f"  address  {address_hex(key.address)}")
    print(f"  peer id  {peer_id}")
    # What genesis says: membership and roles change by transactions since (`member show`).
    if member is None:
        print(f"note: this key is not a member in genesis {genesis.chain_id}: unless a platform key "
              "has added it since (check: `p2pmkt member show ADDRESS --connect ...`), the other "
              "nodes take no part with it until one does (`p2pmkt member add NAME KEY_SHOW.json "
              "--role ...`); its node then catches up from them")
    else:
        validator = "a validator" if member.name in genesis.validators else "not a validator"
        print(f"  member   {member.name} in genesis {genesis.chain_id}: roles {', '.join(member.roles) or 'none'}; "
              f"{validator} (at genesis; `p2pmkt member show ADDRESS` gives the chain's current view)")
    _print_dial_addresses(args.announce or args.listen or [DEFAULT_LISTEN], peer_id,
                          announced=bool(args.announce))
    if not args.bootstrap and len(genesis.validators) > 1:
        print("warning: no bootstrap: this node waits for others to dial it", file=sys.stderr)
    print(f"Start it with: p2pmkt node run --config {root / CONFIG_NAME}")
    return 0


def _node_key(root: Path, key_file: Path | None) -> tuple[PrivateKey, str]:
    """The node's key and how it got there: ``"copied from F"``, ``"new random key"``, or
    ``""`` when DIR/node.key is kept. A node's key is its identity (address and peer id), so
    re-running ``node init --force`` without ``--key`` keeps it rather than minting a new one.

    Raises:
        KeyFileError: ``key_file`` (or an existing DIR/node.key) is refused by ``load_key``.
    """
    from p2pmkt.crypto import PrivateKey, load_key

    if key_file is not None:
        return load_key(key_file), f"copied from {key_file}"
    if (root / KEY_NAME).exists():
        return load_key(root / KEY_NAME), ""
    return PrivateKey.generate(), "new random key"


def _member_of(genesis: Genesis, key: PrivateKey) -> Member | None:
    for m in genesis.members:
        if m.address == key.address:
            return m
    return None


def _check_rules(rules: Path | None, member: Member | None) -> str | None:
    """Validate ``--rules`` the way ``node run`` will load it; returns the name it gets in DIR
    (its own file name).

    Which indicators exist is chain state, so a well-formed indicator name is not refused
    here: the running node's agent logs each rule whose indicator its merchant has not
    configured, with its file and line (docs/RULES.md).

    Raises:
        ConfigError: unreadable or invalid rules (RulesError names the file and line: also
            a file that names no merchant for a key that is merchant-tech for several, or
            one for a merchant the key is not merchant-tech for while it is for others), or
            a file name that a node directory uses for something else.
    """
    if rules is None:
        return None
    from p2pmkt.agent import RulesError, choose_merchant, load_rules
    from p2pmkt.chain.genesis import parse_role

    scopes = [s for r, s in map(parse_role, member.roles if member else ()) if r == "merchant-tech"]
    ruleset = load_rules(rules)
    choose_merchant(ruleset, scopes)  # one agent, one merchant (node.node._run_agent)
    if ruleset.merchant is not None and scopes and ruleset.merchant not in scopes:
        raise RulesError(ruleset.origin, ruleset.merchant_line,
                         f"file is for merchant {ruleset.merchant!r}, but this key is merchant-tech "
                         f"for {', '.join(map(repr, scopes))} in this genesis")
    if rules.name in (CONFIG_NAME, KEY_NAME, GENESIS_NAME):
        raise ConfigError(f"--rules: rename {rules} (a node directory keeps its own {rules.name})")
    if not scopes:
        print("warning: --rules: this key holds no merchant-tech role in this genesis; the node's "
              "agent waits until a platform key grants one (`p2pmkt member grant`)", file=sys.stderr)
    return rules.name


def _config_text(args: argparse.Namespace, rules_name: str | None) -> str:
    """DIR/config.toml (:func:`p2pmkt.config.config_toml`) for the flags of ``node init``."""
    from p2pmkt.config import config_toml

    return config_toml(name=args.name, key_file=KEY_NAME, genesis=GENESIS_NAME,
                       listen=args.listen or [DEFAULT_LISTEN], announce=args.announce,
                       bootstrap=args.bootstrap, metrics=args.metrics, rules=rules_name)


def _validate_config(text: str, root: Path) -> None:
    """Raises ConfigError, naming the key at fault, unless ``node run`` would accept ``text``."""
    import tomllib

    from p2pmkt.config import config_from_dict

    try:
        obj = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # a bug here, not the operator's: say so
        raise ConfigError(f"node init wrote invalid TOML (please report): {exc}") from exc
    config_from_dict(obj, root.resolve(), str(root / CONFIG_NAME))


def _write_node_dir(root: Path, text: str, *, genesis_src: Path, key: PrivateKey | None,
                    rules_src: Path | None, rules_name: str | None) -> None:
    """Write the node directory; config.toml last, so that its presence means "complete".

    On failure, removes what this call created (files the user had are left alone, apart from
    those it had already replaced under ``--force``) and re-raises as ConfigError.
    """
    import os
    import shutil

    from p2pmkt.crypto import save_key

    created: list[Path] = []
    made_root = not root.exists()

    def copy(src: Path, dst: Path) -> None:
        if dst.exists() and os.path.samefile(src, dst):
            return
        if not dst.exists():
            created.append(dst)
        shutil.copyfile(src, dst)

    try:
        root.mkdir(parents=True, exist_ok=True)
        copy(genesis_src, root / GENESIS_NAME)
        if key is not None:
            if not (root / KEY_NAME).exists():
                created.append(root / KEY_NAME)
            save_key(root / KEY_NAME, key, overwrite=True)
        if rules_src is not None and rules_name is not None:
            copy(rules_src, root / rules_name)
        if not (root / CONFIG_NAME).exists():
            created.append(root / CONFIG_NAME)
        (root / CONFIG_NAME).write_text(text)  # checked by _validate_config before
    except BaseException as exc:
        for path in created:
            path.unlink(missing_ok=True)
        if made_root:
            shutil.rmtree(root, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write node directory {root}: {exc}") from exc
        raise


def _print_dial_addresses(addrs: list[str], peer_id: str, *, announced: bool) -> None:
    """The full multiaddrs other operators pass to ``--bootstrap``. Unspecified listen hosts
    (0.0.0.0, ::) are shown as a placeholder: only the operator knows the reachable address."""
    from p2pmkt.config import unspecified_family, with_host

    print("Other operators bootstrap from (--bootstrap):")
    placeholder = False
    for addr in addrs:
        if unspecified_family(addr) is not None:
            addr = with_host(addr, PLACEHOLDER_HOST)
            placeholder = True
        print(f"  {addr}/p2p/{peer_id}")
    if placeholder:
        print(f"Replace {PLACEHOLDER_HOST} with the address other machines reach this one at "
              "(or give it with --announce).")
    elif not announced and all(a.startswith(("/ip4/127.", "/ip6/::1/")) for a in addrs):
        print("note: the node listens on loopback only: other machines cannot reach it "
              "(listen on /ip4/0.0.0.0/tcp/PORT, or give --announce)")


# --- node status ---------------------------------------------------------------------------


def _node_status(args: argparse.Namespace) -> int:
    """Print ``node.info`` for an operator: the first check on a running network."""
    from p2pmkt.cli.client_cmds import _connect
    from p2pmkt.cli.console import readable

    client, _ = _connect(args)
    with client:
        info = readable(client.call("node.info"))
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    leader = info.get("leader")
    if leader is None:
        leader_text = "none known (no majority of validators connected yet?)"
    else:
        leader_text = f"{leader}{' (this node)' if leader == info.get('address') else ''}"
    peers = info.get("peers") or []
    print(f"chain    {info['chain']} (p2pmkt {info['version']})")
    print(f"node     {info.get('address') or '-'}  peer {info['peer_id']}")
    print(f"roles    {', '.join(info['roles']) or 'none'}")
    print(f"height   {info['height']}")
    print(f"leader   {leader_text}")
    print(f"peers    {len(peers)} connected member(s)" + "".join(f"\n         {p}" for p in peers))
    print(f"mempool  {info['mempool']} transaction(s)")
    return 0
