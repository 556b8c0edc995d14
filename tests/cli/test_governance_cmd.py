"""``p2pmkt member add|remove|grant|revoke|validator|show`` as an operator runs them, against
the package's dev chain process (where the dev key ``platform`` holds the platform role)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from p2pmkt.chain.dev import dev_key
from p2pmkt.cli.main import main
from p2pmkt.crypto import PrivateKey, address_hex, save_key
from p2pmkt.crypto.peerid import peer_id_of

from ._procs import free_port, run_cli
from .conftest import DevChain

ACTIONS = ("add", "remove", "grant", "revoke", "validator", "show")


@pytest.fixture(scope="module")
def platform_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "platform.key"
    save_key(path, dev_key("platform"))
    return path


def show(chain: DevChain, address: str) -> dict[str, object]:
    """``member show``'s JSON; its exit status says the same as its ``member``: 0 a member,
    1 not (scripts test membership by the status alone)."""
    done = run_cli("member", "show", address, "--connect", chain.addr)
    account: dict[str, object] = json.loads(done.stdout)
    assert done.returncode == (0 if account["member"] else 1), done.stderr
    assert ("is not a member of this chain" in done.stderr) is (not account["member"]), done.stderr
    return account


@pytest.mark.slow
def test_platform_adds_a_member_changes_its_roles_and_validator_status_and_removes_it(
    dev_chain: DevChain, platform_key: Path, tmp_path: Path
) -> None:
    carol = tmp_path / "carol.key"
    save_key(carol, PrivateKey.generate())
    shown = run_cli("key", "show", carol)
    (tmp_path / "carol.json").write_text(shown.stdout)
    address = json.loads(shown.stdout)["address"]
    as_platform = ("--connect", dev_chain.addr, "--key", platform_key)

    def member(*argv: str | Path) -> str:
        done = run_cli("member", *argv, *as_platform)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = member("add", "carol", tmp_path / "carol.json", "--role", "terminal")
    assert re.fullmatch(rf"member\.add carol {address}: committed at height \d+ \(txid [0-9a-f]{{64}}\)\n", out)
    assert show(dev_chain, address) == {"address": address, "member": True, "roles": ["terminal"],
                                        "nonce": 0, "pending_nonce": 0, "validator": "none"}

    # ADDRESS may also be the member's key file.
    member("grant", carol, "merchant-ops:acme")
    assert show(dev_chain, address)["roles"] == ["merchant-ops:acme", "terminal"]
    member("revoke", address, "merchant-ops:acme")
    assert show(dev_chain, address)["roles"] == ["terminal"]

    out = member("validator", address, "learner")
    assert re.fullmatch(rf"validator\.set {address} learner: committed at height \d+ \(txid \w+\)\n", out)
    assert show(dev_chain, address)["validator"] == "learner"
    # A validator is not removed: the chain says so, and how to.
    refused = run_cli("member", "remove", address, *as_platform)
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.startswith("rejected (is_validator): ") and "(learner)" in refused.stderr

    member("validator", address, "none")
    member("remove", tmp_path / "carol.json")
    assert show(dev_chain, address) == {"address": address, "member": False, "roles": [],
                                        "nonce": 0, "pending_nonce": 0, "validator": "none"}


@pytest.mark.slow
def test_a_key_without_the_platform_role_is_refused(
    dev_chain: DevChain, terminal_key: Path, tmp_path: Path
) -> None:
    newcomer = PrivateKey.generate()
    done = run_cli("member", "add", "mallory", newcomer.public_key.compressed.hex(), "--role", "platform",
                   "--connect", dev_chain.addr, "--key", terminal_key)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert done.stderr.startswith("rejected (missing_role): "), done.stderr
    assert "does not hold the platform role" in done.stderr and "Traceback" not in done.stderr
    assert show(dev_chain, address_hex(newcomer.address))["member"] is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["grant", "{address}", "boss"], "error: role.grant: unknown role 'boss'; roles are "
                                         "platform, terminal, merchant-ops, merchant-tech; nothing was sent"),
        (["add", "dave", "{pubkey}", "--role", "terminal,merchant-tech"],
         "error: member.add: role 'merchant-tech' needs a merchant id after the colon"),
        (["add", "dave", "02abcd"], "error: PUBKEY '02abcd' has 6 hex digits, not 66: "),
        (["remove", "0x1234"], "error: ADDRESS '0x1234' is neither an account address "
                               "(0x followed by 40 hex digits"),
    ],
    ids=["role", "role-scope", "pubkey", "address"],
)
def test_a_local_mistake_exits_2_before_anything_is_sent(
    platform_key: Path, argv: list[str], message: str
) -> None:
    # Nothing listens there: sending anything would exit 4 (unreachable), not 2.
    addr = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{peer_id_of(dev_key('validator').public_key.compressed)}"
    key = dev_key("terminal")
    values = {"address": address_hex(key.address), "pubkey": key.public_key.compressed.hex()}
    done = run_cli("member", *(a.format(**values) for a in argv), "--connect", addr, "--key", platform_key)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("action", ACTIONS)
def test_help_of_each_action_shows_an_example(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["member", action, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"example:\n  p2pmkt member {action} " in out
