"""``p2pmkt member``: the platform's governance transactions, from the command line.

What this module owns: turning an operator's words (a name, a public key, an address, a role)
into the payloads of the governance kinds ``member.add``, ``member.remove``, ``role.grant``,
``role.revoke`` and ``validator.set`` (wire forms in :mod:`p2pmkt.market.kinds`), checking
them before anything is sent, and printing the outcome; plus the read-only ``member show``
(``account.get``). Every write action must be signed by a member holding the **platform**
role: a node refuses any other signer at submission (``PERMISSION_DENIED``, naming the role).

What it does not own:

* the rules. A payload is checked by :func:`p2pmkt.chain.roles.parse_governance`, the chain's
  own stateless check, so what this module refuses every node would refuse too, and what it
  sends can fail only on chain state (not a member, role already held, the last platform
  member or voter, removing a validator);
* choosing the node and the key, signing and waiting for the block: that is
  :func:`p2pmkt.cli.client_cmds.resolve` and :class:`~p2pmkt.cli.console_client.ConsoleClient`,
  as for every client command.

Exit codes (:mod:`p2pmkt.cli.main`): 0 committed; 1 rejected inside its block; 2 a mistake
found here, before anything is sent; 3 refused by the node at submission (e.g. the signer
lacks the platform role); 4 node unreachable or no block in time.

Heavy modules are imported inside the handlers (``p2pmkt --help`` must answer at once).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from p2pmkt.cli.client_cmds import _connect
from p2pmkt.cli.key_sources import KEY_SOURCES, read_address, read_pubkey
from p2pmkt.errors import ConfigError

HELP = ("Chain membership and roles (platform role): add or remove members, grant or revoke "
        "roles, set validators.")
ROLES_HELP = "platform, terminal, merchant-ops:<merchant> or merchant-tech:<merchant>"
ADDRESS_HELP = ("the member's account address, 0x + 40 hex digits as `p2pmkt key show` prints "
                "it; or its key file, or a JSON file from `p2pmkt key show KEY > FILE`")
EXAMPLE_ADDRESS = "0x5c4f2b1e9a7d3c8b6e0f1a2b3c4d5e6f7a8b9c0d"


def register(sub: Any, cmd: Any, target: Any) -> None:
    """Add ``p2pmkt member`` and its actions to ``sub``; ``cmd`` and ``target`` are
    :func:`p2pmkt.cli.commands._cmd` and ``_target`` (the options choosing node and key)."""
    m = cmd(sub, "member", HELP, "p2pmkt member add carol carol.json --role terminal --node node1")
    msub = m.add_subparsers(dest="member_command", metavar="ACTION", required=True)

    add = cmd(msub, "add", "Add a member (member.add): its name, public key and roles.",
              "p2pmkt member add carol carol.json --role merchant-ops:carol --role merchant-tech:carol --node node1")
    add.add_argument("name", help="the member's name: 1-64 characters, unique on the chain")
    add.add_argument("pubkey", metavar="PUBKEY",
                     help="its public key: 66 hex digits (`p2pmkt key show` prints them under "
                          f"\"pubkey\"), or {KEY_SOURCES}")
    add.add_argument("--role", action="append", default=[], metavar="ROLE",
                     help=f"a role to hold from the start (repeat, or separate with commas): {ROLES_HELP}")
    target(add)
    add.set_defaults(func=_add)

    def by_address(action: str, help_text: str, example_args: str, func: Any) -> Any:
        """An action on one member, named by ADDRESS, with the target options."""
        p = cmd(msub, action, help_text,
                f"p2pmkt member {action} {EXAMPLE_ADDRESS}{example_args} --node node1")
        p.add_argument("address", metavar="ADDRESS", help=ADDRESS_HELP)
        target(p)
        p.set_defaults(func=func)
        return p

    by_address("remove", "Remove a member (member.remove); a validator must first be set to "
                         "'none' with `p2pmkt member validator`.", "", _remove)
    for action, kind, text in (("grant", "role.grant", "Grant a member a role"),
                               ("revoke", "role.revoke", "Revoke a role from a member")):
        p = by_address(action, f"{text} ({kind}).", " merchant-ops:acme", _role)
        p.add_argument("role", metavar="ROLE", help=ROLES_HELP)
        p.set_defaults(kind=kind)
    val = by_address("validator", "Set a member's part in consensus (validator.set): a learner "
                                  "replicates blocks without voting; promote it to voter once it "
                                  "has caught up; none takes it out.", " learner", _validator)
    val.add_argument("status", metavar="STATUS", choices=("voter", "learner", "none"),
                     help="voter (votes in Raft), learner (replicates without voting) or none")
    by_address("show", "Whether an address is a member, its roles and nonce (account.get; "
                       "read-only: needs no role). Exit 1 if it is not a member (the same JSON "
                       "is printed).", "", _show)


# --- Handlers --------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    from p2pmkt.crypto import address_hex, address_of

    pubkey = read_pubkey(args.pubkey, "PUBKEY")
    roles = [r.strip() for item in args.role for r in item.split(",") if r.strip()]
    payload = {"name": args.name, "pubkey": pubkey, "roles": roles}
    return _submit(args, "member.add", payload, f"{args.name} {address_hex(address_of(pubkey))}")


def _remove(args: argparse.Namespace) -> int:
    from p2pmkt.crypto import address_hex

    member = read_address(args.address)
    return _submit(args, "member.remove", {"member": member}, address_hex(member))


def _role(args: argparse.Namespace) -> int:
    from p2pmkt.crypto import address_hex

    member = read_address(args.address)
    return _submit(args, args.kind, {"member": member, "role": args.role},
                   f"{args.role} {address_hex(member)}")


def _validator(args: argparse.Namespace) -> int:
    from p2pmkt.crypto import address_hex

    member = read_address(args.address)
    return _submit(args, "validator.set", {"member": member, "status": args.status},
                   f"{address_hex(member)} {args.status}")


def _show(args: argparse.Namespace) -> int:
    from p2pmkt.cli.console import readable

    address = read_address(args.address)
    client, _ = _connect(args)
    with client:
        account = client.call("account.get", {"address": address})
    json.dump(readable(account), sys.stdout, indent=2)
    print()
    if not account.get("member"):
        print(f"{args.address} is not a member of this chain", file=sys.stderr)
        return 1
    return 0


def _submit(args: argparse.Namespace, kind: str, payload: dict[str, Any], subject: str) -> int:
    """Check ``payload`` as the chain will, sign it with the target's key, submit it, wait for
    its block and print the outcome; the exit code is 0 when committed, 1 when rejected.

    Raises:
        ConfigError: the payload breaks a stateless rule of ``kind`` (nothing is sent), or
            no key to sign with.
        RemoteError: the node refused the transaction at submission (permission, nonce, …).
    """
    from p2pmkt.chain.roles import parse_governance
    from p2pmkt.errors import InvalidTransaction

    try:
        parse_governance(kind, payload)
    except InvalidTransaction as exc:
        raise ConfigError(f"{exc}; nothing was sent") from exc
    from p2pmkt.cli.console_client import ConsoleClient  # trio and libp2p: only to send
    from p2pmkt.cli.main import EXIT_FAILED, EXIT_OK

    client, key = _connect(args, need_key=True)
    with client:
        status = ConsoleClient(client).send(key, kind, payload)
    what = f"{kind} {subject}"
    if status["status"] == "committed":
        print(f"{what}: committed at height {status['height']} (txid {status['txid'].hex()})")
        return EXIT_OK
    print(f"{what}: rejected at height {status.get('height')} ({status.get('reason')}): "
          f"{status.get('message')}", file=sys.stderr)
    return EXIT_FAILED
