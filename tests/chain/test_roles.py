"""Roles, membership and the validator set: governance transactions and their invariants."""

from __future__ import annotations

import re

import pytest

from p2pmkt.chain.roles import member_of, require_role, validator_set
from p2pmkt.errors import PermissionDenied
from p2pmkt.testing.builders import LocalChain, assert_changed_nothing, visit
from p2pmkt.testing.keys import dev_address, dev_key, outsider_key


@pytest.fixture
def chain() -> LocalChain:
    return LocalChain()


def _who(name: str) -> str:
    return "0x" + dev_address(name)[:4].hex() + "…"


def test_genesis_members_hold_their_roles(chain: LocalChain) -> None:
    record = member_of(chain.state, dev_address("acme-ops"))
    assert record is not None and record.roles == ("merchant-ops:acme",)
    assert validator_set(chain.state).voters == (dev_address("validator"),)
    assert chain.state.get("merchants", b"acme") is not None
    assert chain.state.get("merchants", b"globex") is not None


def test_scope_error_names_the_merchants_the_sender_does_hold(chain: LocalChain) -> None:
    with pytest.raises(PermissionDenied, match=rf"^{_who('acme-ops')} holds merchant-ops for 'acme', not for 'globex'$") as info:
        require_role(chain.state, dev_address("acme-ops"), "merchant-ops", "globex")
    assert info.value.reason == "wrong_merchant"


def test_missing_role_error_lists_the_roles_held(chain: LocalChain) -> None:
    with pytest.raises(PermissionDenied, match=rf"^{_who('terminal')} \(terminal\) does not hold the platform role; its roles are terminal$"):
        require_role(chain.state, dev_address("terminal"), "platform")
    with pytest.raises(PermissionDenied, match=r"does not hold merchant-tech for 'acme'; its roles are merchant-ops:acme$"):
        require_role(chain.state, dev_address("acme-ops"), "merchant-tech", "acme")


def test_platform_grants_a_role_that_then_works(chain: LocalChain) -> None:
    payload = {"member": dev_address("acme-ops"), "role": "terminal"}
    assert chain.run("platform", "role.grant", payload).status == "ok"
    assert chain.run("acme-ops", "visit.batch", {"visits": [visit()]}).status == "ok"
    assert chain.run("platform", "role.revoke", payload).status == "ok"
    receipt = chain.run("acme-ops", "visit.batch", {"visits": [visit()]})
    assert receipt.reason == "missing_role"


def test_granting_a_merchant_role_makes_the_merchant_known(chain: LocalChain) -> None:
    assert chain.run("terminal", "visit.batch", {"visits": [visit("initech")]}).reason == "unknown_merchant"
    chain.run("platform", "role.grant", {"member": dev_address("acme-tech"), "role": "merchant-tech:initech"})
    assert chain.run("terminal", "visit.batch", {"visits": [visit("initech")]}).status == "ok"


@pytest.mark.parametrize("signer", ["acme-ops", "terminal", "validator-outsider"])
def test_only_platform_governs(chain: LocalChain, signer: str) -> None:
    key = outsider_key() if signer == "validator-outsider" else dev_key(signer)
    result = chain.block([chain.tx(key, "role.grant", {"member": key.address, "role": "platform"})])
    assert result.receipts[0].reason in {"missing_role", "not_member"}
    assert_changed_nothing(result)


@pytest.mark.parametrize(
    ("kind", "payload", "reason", "message"),
    [
        ("role.grant", {"member": b"\x01" * 20, "role": "terminal"}, "not_member", r"^0x01010101… is not a member of this chain$"),
        ("role.grant", {"member": "acme-ops", "role": "terminal"}, "bad_payload", r"^role.grant: 'member' must be a 20-byte address$"),
        ("role.grant", {"member": b"\x01" * 20, "role": "admin"}, "bad_role", r"^role.grant: unknown role 'admin'"),
        ("role.grant", {"member": b"\x01" * 20, "role": "merchant-ops:"}, "bad_role", r"^role.grant: role 'merchant-ops:' needs a merchant id"),
        ("role.grant", {"member": b"\x01" * 20}, "bad_payload", r"^role.grant payload must have exactly the fields \['member', 'role'\]"),
        ("role.revoke", {"member": b"\x01" * 20, "role": 7}, "bad_payload", r"^role.revoke: a role must be text$"),
        ("member.add", {"name": "x", "pubkey": b"\x05" * 33, "roles": []}, "bad_payload", r"^member.add: pubkey must be a 33-byte compressed secp256k1 key$"),
        # right shape, but x = 0 is no point of secp256k1: every node's membership loop turned
        # the added key into a peer id and crashed on it
        ("member.add", {"name": "x", "pubkey": b"\x02" + bytes(32), "roles": []}, "bad_payload", r"^member.add: pubkey must be a 33-byte compressed secp256k1 key$"),
        ("member.add", {"name": "", "pubkey": b"\x02" * 33, "roles": []}, "bad_payload", r"^member.add: name must be 1-64 chars$"),
        ("validator.set", {"member": b"\x01" * 20, "status": "king"}, "bad_payload", r"^validator.set: status must be one of"),
    ],
)
def test_hostile_governance_payloads(chain: LocalChain, kind: str, payload: dict[str, object], reason: str, message: str) -> None:
    result = chain.block([chain.tx("platform", kind, payload)])
    receipt = result.receipts[0]
    assert receipt.reason == reason
    assert re.match(message, receipt.message), receipt.message
    assert_changed_nothing(result)


def test_member_add_and_remove(chain: LocalChain) -> None:
    newbie = outsider_key("newbie")
    add = {"name": "newbie", "pubkey": newbie.public_key.compressed, "roles": ["terminal"]}
    assert chain.run("platform", "member.add", add).status == "ok"
    assert chain.run(newbie, "visit.batch", {"visits": [visit()]}).status == "ok"
    again = chain.run("platform", "member.add", add)
    assert (again.reason, again.message) == ("already_member", f"0x{newbie.address[:4].hex()}… is already a member")
    taken = chain.run("platform", "member.add", {**add, "pubkey": outsider_key("x").public_key.compressed})
    assert taken.message == "member name 'newbie' is taken; choose another"
    assert chain.run("platform", "member.remove", {"member": newbie.address}).status == "ok"
    assert chain.run(newbie, "visit.batch", {"visits": [visit()]}).reason == "not_member"


def test_governance_cannot_lock_itself_out(chain: LocalChain) -> None:
    # Two platform members (validator, platform): revoking one is fine, the last one is not.
    assert chain.run("platform", "role.revoke", {"member": dev_address("validator"), "role": "platform"}).status == "ok"
    receipt = chain.run("platform", "role.revoke", {"member": dev_address("platform"), "role": "platform"})
    assert receipt.reason == "last_platform"
    assert receipt.message.endswith("would leave no platform member; grant it to another member first")


def test_validator_set_changes_are_recorded_for_raft(chain: LocalChain) -> None:
    ops = dev_address("acme-ops")
    assert chain.run("platform", "validator.set", {"member": ops, "status": "learner"}).status == "ok"
    assert validator_set(chain.state).learners == (ops,)
    assert chain.run("platform", "validator.set", {"member": ops, "status": "voter"}).status == "ok"
    vs = validator_set(chain.state)
    assert set(vs.voters) == {ops, dev_address("validator")} and vs.learners == ()
    removal = chain.run("platform", "member.remove", {"member": ops})
    assert removal.reason == "is_validator"


def test_the_last_voter_cannot_be_removed(chain: LocalChain) -> None:
    receipt = chain.run("platform", "validator.set", {"member": dev_address("validator"), "status": "none"})
    assert receipt.reason == "last_voter"
    assert validator_set(chain.state).voters == (dev_address("validator"),)


def test_a_new_voter_may_propose_blocks() -> None:
    chain = LocalChain()
    chain.run("platform", "validator.set", {"member": dev_address("platform"), "status": "voter"})
    chain.proposer = dev_key("platform")
    assert chain.block([]).block.header.proposer == dev_address("platform")
