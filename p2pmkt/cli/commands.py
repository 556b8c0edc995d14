"""Registration of every sub-command. Handlers import their heavy modules lazily."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RAW = argparse.RawDescriptionHelpFormatter

DEV_ACCOUNT_NAMES = ("validator", "platform", "acme-ops", "acme-tech", "globex-ops", "globex-tech",
                     "terminal")
"""The accounts of ``p2pmkt.chain.dev.DEV_ACCOUNTS`` (a test keeps them equal); named here so
that ``--help`` need not load the crypto library."""


def _cmd(sub: Any, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, epilog=f"example:\n  {example}",
        formatter_class=RAW,
    )
    return parser


def _target(p: argparse.ArgumentParser) -> None:
    """Options that choose which node a client command talks to."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--connect", metavar="MULTIADDR", help="node's full multiaddr, with /p2p/<peer id>")
    g.add_argument("--node", metavar="NAME", help="a node of the local testnet (see --dir)")
    p.add_argument("--dir", type=Path, default=Path("testnet/run"), help="testnet directory (default: testnet/run)")
    p.add_argument("--key", type=Path, help="key file to sign with (default: the node's own key when --node is used)")


def register(sub: Any) -> None:
    # --- key -----------------------------------------------------------------------------
    key = _cmd(sub, "key", "Create or inspect secp256k1 key files.", "p2pmkt key new my.key")
    ksub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    knew = _cmd(ksub, "new", "Write a new random key file (mode 0600).", "p2pmkt key new node.key")
    knew.add_argument("file", type=Path)
    knew.set_defaults(func=_key_new)
    kshow = _cmd(ksub, "show", "Print a key file's address, public key and libp2p peer id.", "p2pmkt key show node.key")
    kshow.add_argument("file", type=Path)
    kshow.set_defaults(func=_key_show)
    kdev = _cmd(ksub, "dev", "Write one of the dev chain's documented keys (PUBLIC: for `p2pmkt dev` only).",
                "p2pmkt key dev terminal terminal.key   # then: p2pmkt visits ingest FILE --connect ADDR --key terminal.key")
    kdev.add_argument("name", metavar="NAME", help=f"a dev account: {', '.join(DEV_ACCOUNT_NAMES)}")
    kdev.add_argument("file", type=Path)
    kdev.set_defaults(func=_key_dev)

    # --- dev -----------------------------------------------------------------------------
    dev = _cmd(sub, "dev", "Run a single-node dev chain in one process (like anvil or geth --dev).",
               "p2pmkt dev --demo")
    dev.add_argument("--dir", type=Path, default=Path(".p2pmkt-dev"), help="data directory (default: .p2pmkt-dev)")
    dev.add_argument("--reset", action="store_true", help="wipe the data directory first")
    dev.add_argument("--demo", action="store_true", help="run the built-in demo workload")
    dev.add_argument("--listen", default="/ip4/127.0.0.1/tcp/7100", help="multiaddr for the wire protocol (default: %(default)s)")
    dev.add_argument("--no-net", action="store_true", help="do not start libp2p (no wire protocol)")
    dev.add_argument("--block-ms", type=int, default=100, help="block interval in ms (default: 100)")
    dev.add_argument("--blocks", type=int, default=0, help="stop after this many blocks (0: run until Ctrl-C)")
    dev.set_defaults(func=_dev)

    # --- node ----------------------------------------------------------------------------
    node = _cmd(sub, "node", "Run one node of a network.", "p2pmkt node run --config testnet/run/node1/config.toml")
    nsub = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    nrun = _cmd(nsub, "run", "Run a node from its config file until SIGINT/SIGTERM.",
                "p2pmkt node run --config node1/config.toml")
    nrun.add_argument("--config", type=Path, required=True)
    nrun.add_argument("--map-size", metavar="SIZE",
                      help="LMDB map to start with, e.g. 4GiB (default: [storage] map_size)")
    nrun.add_argument("--max-map-size", metavar="SIZE",
                      help="ceiling the map grows to; at it the node stops with exit status 2 "
                           "(default: [storage] max_map_size)")
    nrun.set_defaults(func=_node_run)

    # --- genesis new|show, node init: setting up a multi-machine network ----------------
    from p2pmkt.cli import network_cmd

    network_cmd.register(sub, _cmd, nsub, _target)

    # --- testnet -------------------------------------------------------------------------
    from p2pmkt.cli import testnet_cmd

    testnet_cmd.register(sub, _cmd)

    # --- demo ----------------------------------------------------------------------------
    from p2pmkt.cli import demo_cmd

    demo_cmd.register(sub, _cmd)

    # --- client-side commands ------------------------------------------------------------
    from p2pmkt.cli import client_cmds

    client_cmds.register(sub, _cmd, _target)

    # --- indicators (merchant-ops) -------------------------------------------------------
    from p2pmkt.cli import indicator_cmd

    indicator_cmd.register(sub, _cmd, _target)
    from p2pmkt.cli import rules_cmd

    rules_cmd.register(sub, _cmd, _target)

    # --- contracts SDK -------------------------------------------------------------------
    try:
        from p2pmkt.cli import contract
    except ImportError:  # pragma: no cover - the SDK module ships with the package
        return
    contract.add_parser(sub)


def _key_new(args: argparse.Namespace) -> int:
    from p2pmkt.crypto import PrivateKey, address_hex, save_key

    k = PrivateKey.generate()
    save_key(args.file, k)
    print(f"wrote {args.file} (mode 0600); address {address_hex(k.address)}")
    return 0


def _key_show(args: argparse.Namespace) -> int:
    from p2pmkt.crypto import address_hex, load_key
    from p2pmkt.crypto.peerid import peer_id_of

    k = load_key(args.file)
    json.dump(
        {
            "address": address_hex(k.address),
            "pubkey": k.public_key.compressed.hex(),
            "peer_id": peer_id_of(k.public_key.compressed),
        },
        sys.stdout,
        indent=2,
    )
    print()
    return 0


def _key_dev(args: argparse.Namespace) -> int:
    """``p2pmkt key dev NAME FILE``: the documented dev key NAME into a 0600 key file."""
    from p2pmkt.chain.dev import DEV_ACCOUNTS, dev_key
    from p2pmkt.crypto import address_hex, save_key
    from p2pmkt.errors import ConfigError

    roles = dict(DEV_ACCOUNTS).get(args.name)
    if roles is None:
        raise ConfigError(f"no dev account {args.name!r}; the dev chain's accounts are "
                          f"{', '.join(name for name, _ in DEV_ACCOUNTS)}")
    k = dev_key(args.name)
    save_key(args.file, k)
    print(f"warning: dev keys are public (derived from their names): anyone can sign with "
          f"{args.name!r}. Use them only on a `p2pmkt dev` chain, never on a real network.",
          file=sys.stderr)
    print(f"wrote {args.file} (mode 0600): dev account {args.name} ({', '.join(roles)}), "
          f"address {address_hex(k.address)}")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from p2pmkt.node.devchain import run_dev_main

    return run_dev_main(args)


def _node_run(args: argparse.Namespace) -> int:
    import dataclasses

    from p2pmkt.config import check_storage, load_config, parse_size
    from p2pmkt.node.node import run_node_main

    config = load_config(args.config)
    storage = config.storage
    for flag in ("map_size", "max_map_size"):
        if getattr(args, flag) is not None:
            value = parse_size(getattr(args, flag), "--" + flag.replace("_", "-"))
            storage = dataclasses.replace(storage, **{flag: value})
    check_storage(storage)
    return run_node_main(dataclasses.replace(config, storage=storage))
