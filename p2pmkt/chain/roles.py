"""Membership, roles, merchant scopes and the validator set, as chain state.

Theory of operation
-------------------
Who may do what is chain state, not configuration: genesis writes the first members (see
:func:`p2pmkt.chain.apply.genesis_batch`), and the platform changes them later with governance
transactions whose handlers live here (``role.grant``, ``role.revoke``, ``member.add``,
``member.remove``, ``validator.set``). Every node reads the same tables, so every node reaches
the same permission decision.

State layout (owned by this module; no other module reads these keys directly):

* ``members``: address (20 bytes) → canonical CBOR
  ``{"name": str, "pubkey": bytes(33), "roles": [str, ...]}`` with roles sorted and unique.
  A role is ``platform``, ``terminal``, ``merchant-ops:<m>`` or ``merchant-tech:<m>``.
* ``meta`` / ``b"validators"`` → canonical CBOR ``{"voters": [addr, ...], "learners": [...]}``,
  each list sorted bytewise. Raft reads its configuration from here (one change per
  transaction, so one change per block entry at most per tx: the joint-consensus question
  stays with Raft's conf-change rules).
* ``merchants``: merchant id (UTF-8) → counters. A merchant is *known* to the chain once some
  member has held a role scoped to it; this module creates the entry (``{"visits": 0}``) and
  :mod:`p2pmkt.market` owns its contents afterwards.

Invariants kept by the handlers (each violation is a rejected transaction, never a broken
chain): at least one member holds ``platform`` (governance cannot lock itself out); at least
one voter exists; a validator is a member; member names and keys are unique.

This module knows nothing of the market domain beyond the role names of SPEC.md.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from p2pmkt.chain.genesis import parse_role
from p2pmkt.chain.state import StateReader, WriteBatch
from p2pmkt.crypto.keys import address_of, is_public_key
from p2pmkt.errors import InvalidTransaction, PermissionDenied
from p2pmkt.types import Address
from p2pmkt.wire.cbor import decode, encode

__all__ = [
    "GOVERNANCE_KINDS",
    "MemberRecord",
    "MembershipChanged",
    "ValidatorSet",
    "apply_governance",
    "ensure_merchant",
    "member_of",
    "merchant_known",
    "parse_governance",
    "require_platform",
    "require_role",
    "short_address",
    "validator_set",
    "write_member",
    "write_validator_set",
]

VALIDATORS_KEY = b"validators"
VALIDATOR_STATUSES = ("none", "learner", "voter")
GOVERNANCE_KINDS = ("role.grant", "role.revoke", "member.add", "member.remove", "validator.set")
MAX_ROLES = 64
MAX_NAME = 64


def short_address(address: bytes) -> str:
    """``0x`` + the first 8 hex digits + ``…``: enough to tell members apart in messages."""
    return "0x" + address[:4].hex() + "…"


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One member as stored in the ``members`` table."""

    address: Address
    name: str
    pubkey: bytes
    roles: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "pubkey": self.pubkey, "roles": list(self.roles)}

    def holds(self, role: str, merchant: str = "") -> bool:
        return (f"{role}:{merchant}" if merchant else role) in self.roles


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """Raft configuration as recorded in state: voters and non-voting learners."""

    voters: tuple[Address, ...]
    learners: tuple[Address, ...]

    def status(self, address: bytes) -> str:
        if address in self.voters:
            return "voter"
        if address in self.learners:
            return "learner"
        return "none"


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """Event: a member, its roles or the validator set changed (Raft and RPC watch these)."""

    kind: str
    member: Address
    detail: str


# --- Reading ---------------------------------------------------------------------------------


def member_of(state: StateReader, address: bytes) -> MemberRecord | None:
    """The member with ``address``, or None when it is not a member."""
    raw = state.get("members", bytes(address))
    if raw is None:
        return None
    return _member_record(bytes(address), raw)


@functools.lru_cache(maxsize=4096)
def _member_record(address: bytes, raw: bytes) -> MemberRecord:
    # Memoised on the stored bytes (so never stale): every transaction's role check reads its
    # sender's record, and decoding it each time cost ~35 us per transaction.
    obj = decode(raw)
    return MemberRecord(Address(address), obj["name"], obj["pubkey"], tuple(obj["roles"]))


def validator_set(state: StateReader) -> ValidatorSet:
    """The validator set recorded in state (empty before genesis is written)."""
    raw = state.get("meta", VALIDATORS_KEY)
    if raw is None:
        return ValidatorSet((), ())
    obj = decode(raw)
    return ValidatorSet(
        tuple(Address(a) for a in obj["voters"]), tuple(Address(a) for a in obj["learners"])
    )


def merchant_known(state: StateReader, merchant: str) -> bool:
    return state.get("merchants", merchant.encode()) is not None


# --- Writing (used by genesis and the handlers below) ----------------------------------------


def write_member(batch: WriteBatch, record: MemberRecord) -> None:
    """Store ``record`` and make every merchant its roles name known to the chain."""
    roles = tuple(sorted(set(record.roles)))
    batch.put("members", bytes(record.address), encode({**record.to_wire(), "roles": list(roles)}))
    for role in roles:
        _, merchant = parse_role(role)
        if merchant:
            ensure_merchant(batch, merchant)


def ensure_merchant(batch: WriteBatch, merchant: str) -> None:
    if batch.get("merchants", merchant.encode()) is None:
        batch.put("merchants", merchant.encode(), encode({"visits": 0}))


def write_validator_set(batch: WriteBatch, vs: ValidatorSet) -> None:
    batch.put(
        "meta",
        VALIDATORS_KEY,
        encode({"voters": sorted(bytes(a) for a in vs.voters),
                "learners": sorted(bytes(a) for a in vs.learners)}),
    )


# --- Permission checks -----------------------------------------------------------------------


def require_role(state: StateReader, sender: bytes, role: str, merchant: str = "") -> MemberRecord:
    """Return the sender's record if it holds ``role`` (scoped to ``merchant`` if given).

    Raises:
        PermissionDenied: not a member, lacks the role, or holds it for other merchants
            only; the message names what the sender does hold.
    """
    record = member_of(state, sender)
    if record is not None and record.holds(role, merchant):
        return record
    who = short_address(sender)
    if record is None:
        raise PermissionDenied(f"{who} is not a member of this chain", reason="not_member")
    if record.holds(role, merchant):
        return record
    if merchant:
        others = sorted(r.partition(":")[2] for r in record.roles if r.startswith(role + ":"))
        if others:
            scopes = ", ".join(repr(m) for m in others)
            raise PermissionDenied(
                f"{who} holds {role} for {scopes}, not for {merchant!r}", reason="wrong_merchant"
            )
        raise PermissionDenied(
            f"{who} ({record.name}) does not hold {role} for {merchant!r}; "
            f"its roles are {_roles_text(record.roles)}",
            reason="missing_role",
        )
    raise PermissionDenied(
        f"{who} ({record.name}) does not hold the {role} role; its roles are "
        f"{_roles_text(record.roles)}",
        reason="missing_role",
    )


def require_platform(state: StateReader, sender: bytes) -> MemberRecord:
    return require_role(state, sender, "platform")


def _roles_text(roles: Sequence[str]) -> str:
    return ", ".join(roles) if roles else "(none)"


# --- Governance transactions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GovernanceOp:
    """A parsed governance payload (see :func:`parse_governance` for the wire forms)."""

    kind: str
    member: Address
    role: str = ""
    name: str = ""
    pubkey: bytes = b""
    roles: tuple[str, ...] = ()
    status: str = ""


def _field(payload: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = payload.get(key)
    if type(value) is not kind:
        raise InvalidTransaction(f"{what}: field {key!r} must be {kind.__name__}", reason="bad_payload")
    return value


def _exact_keys(payload: dict[str, Any], keys: Iterable[str], kind: str) -> None:
    want = set(keys)
    if set(payload) != want:
        raise InvalidTransaction(
            f"{kind} payload must have exactly the fields {sorted(want)}, got {sorted(payload)}",
            reason="bad_payload",
        )


def _role_of(text: Any, kind: str) -> str:
    if type(text) is not str:
        raise InvalidTransaction(f"{kind}: a role must be text", reason="bad_payload")
    try:
        parse_role(text)
    except ValueError as exc:
        raise InvalidTransaction(f"{kind}: {exc}", reason="bad_role") from exc
    return text


def _address(value: Any, kind: str) -> Address:
    if type(value) is not bytes or len(value) != 20:
        raise InvalidTransaction(f"{kind}: 'member' must be a 20-byte address", reason="bad_payload")
    return Address(value)


def parse_governance(kind: str, payload: dict[str, Any]) -> GovernanceOp:
    """Validate a governance payload without looking at state.

    Wire forms::

        role.grant / role.revoke  {"member": bstr(20), "role": str}
        member.add                {"name": str, "pubkey": bstr(33), "roles": [str, ...]}
        member.remove             {"member": bstr(20)}
        validator.set             {"member": bstr(20), "status": "voter"|"learner"|"none"}

    Raises:
        InvalidTransaction: wrong fields, types or role names (reason ``bad_payload`` or
            ``bad_role``).
    """
    if kind in ("role.grant", "role.revoke"):
        _exact_keys(payload, ("member", "role"), kind)
        return GovernanceOp(kind, _address(payload["member"], kind), role=_role_of(payload["role"], kind))
    if kind == "member.add":
        _exact_keys(payload, ("name", "pubkey", "roles"), kind)
        name = _field(payload, "name", str, kind)
        if not 0 < len(name) <= MAX_NAME:
            raise InvalidTransaction(f"{kind}: name must be 1-{MAX_NAME} chars", reason="bad_payload")
        pubkey = _field(payload, "pubkey", bytes, kind)
        # On the curve, not only the right shape: every node turns a member's key into its
        # libp2p peer id, and a key that is no point could never sign anyway.
        if not is_public_key(pubkey):
            raise InvalidTransaction(
                f"{kind}: pubkey must be a 33-byte compressed secp256k1 key",
                reason="bad_payload",
            )
        roles = _field(payload, "roles", list, kind)
        if len(roles) > MAX_ROLES:
            raise InvalidTransaction(f"{kind}: at most {MAX_ROLES} roles", reason="bad_payload")
        parsed = tuple(sorted({_role_of(r, kind) for r in roles}))
        return GovernanceOp(kind, address_of(pubkey), name=name, pubkey=pubkey, roles=parsed)
    if kind == "member.remove":
        _exact_keys(payload, ("member",), kind)
        return GovernanceOp(kind, _address(payload["member"], kind))
    if kind == "validator.set":
        _exact_keys(payload, ("member", "status"), kind)
        status = payload["status"]
        if status not in VALIDATOR_STATUSES:
            raise InvalidTransaction(
                f"{kind}: status must be one of {list(VALIDATOR_STATUSES)}", reason="bad_payload"
            )
        return GovernanceOp(kind, _address(payload["member"], kind), status=status)
    raise AssertionError(f"not a governance kind: {kind}")


def _platform_count(state: StateReader) -> int:
    return sum(1 for _, raw in state.scan("members") if "platform" in decode(raw)["roles"])


def apply_governance(batch: WriteBatch, sender: bytes, op: GovernanceOp) -> MembershipChanged:
    """Check the sender is platform, apply ``op`` to ``batch``, return the event.

    Raises:
        PermissionDenied: the sender is not platform.
        InvalidTransaction: the change is impossible or would break an invariant of this
            module (reasons ``not_member``, ``already_member``, ``role_held``,
            ``role_not_held``, ``last_platform``, ``last_voter``, ``is_validator``).
    """
    require_platform(batch, sender)
    target = short_address(op.member)
    if op.kind == "member.add":
        if member_of(batch, op.member) is not None:
            raise InvalidTransaction(f"{target} is already a member", reason="already_member")
        for _, raw in batch.scan("members"):
            if decode(raw)["name"] == op.name:
                raise InvalidTransaction(
                    f"member name {op.name!r} is taken; choose another", reason="already_member"
                )
        write_member(batch, MemberRecord(op.member, op.name, op.pubkey, op.roles))
        return MembershipChanged(op.kind, op.member, op.name)
    record = member_of(batch, op.member)
    if record is None:
        raise InvalidTransaction(f"{target} is not a member of this chain", reason="not_member")
    if op.kind == "role.grant":
        if op.role in record.roles:
            raise InvalidTransaction(f"{target} already holds {op.role}", reason="role_held")
        write_member(batch, MemberRecord(op.member, record.name, record.pubkey, (*record.roles, op.role)))
        return MembershipChanged(op.kind, op.member, op.role)
    if op.kind == "role.revoke":
        if op.role not in record.roles:
            raise InvalidTransaction(f"{target} does not hold {op.role}", reason="role_not_held")
        if op.role == "platform" and _platform_count(batch) <= 1:
            raise InvalidTransaction(
                f"revoking platform from {target} would leave no platform member; grant it to "
                "another member first",
                reason="last_platform",
            )
        roles = tuple(r for r in record.roles if r != op.role)
        write_member(batch, MemberRecord(op.member, record.name, record.pubkey, roles))
        return MembershipChanged(op.kind, op.member, op.role)
    vs = validator_set(batch)
    if op.kind == "member.remove":
        if vs.status(op.member) != "none":
            raise InvalidTransaction(
                f"{target} is a validator ({vs.status(op.member)}); set its status to 'none' "
                "with validator.set first",
                reason="is_validator",
            )
        if "platform" in record.roles and _platform_count(batch) <= 1:
            raise InvalidTransaction(
                f"removing {target} would leave no platform member", reason="last_platform"
            )
        batch.delete("members", bytes(op.member))
        return MembershipChanged(op.kind, op.member, record.name)
    # validator.set
    voters = [a for a in vs.voters if a != op.member]
    learners = [a for a in vs.learners if a != op.member]
    if op.status == "voter":
        voters.append(op.member)
    elif op.status == "learner":
        learners.append(op.member)
    if not voters:
        raise InvalidTransaction(
            f"setting {target} to {op.status!r} would leave no voter", reason="last_voter"
        )
    write_validator_set(batch, ValidatorSet(tuple(voters), tuple(learners)))
    return MembershipChanged(op.kind, op.member, op.status)
