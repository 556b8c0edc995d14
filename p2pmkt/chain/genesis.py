"""The genesis file: chain id, members with roles and merchant scopes, validators, parameters.

Genesis is JSON so operators can read and edit it (``p2pmkt testnet init`` writes one)::

    {
      "chain_id": "p2pmkt-dev",
      "genesis_time": 1764028800000,          ms since the epoch; block times start after it
      "members": [
        {"name": "platform", "pubkey": "02ab…", "roles": ["platform"]},
        {"name": "acme-ops", "pubkey": "03cd…", "roles": ["merchant-ops:acme"]},
        {"name": "acme-tech", "pubkey": "02ef…", "roles": ["merchant-tech:acme"]},
        {"name": "terminal", "pubkey": "03aa…", "roles": ["terminal"]}
      ],
      "validators": ["platform", "acme-ops", "acme-tech"],   member names
      "params": {"block_interval_ms": 100, …}                see :class:`ChainParams`
    }

A role is ``platform``, ``terminal``, or ``merchant-ops:<merchant>`` / ``merchant-tech:<merchant>``
(the merchant scope follows the colon). :func:`load_genesis` validates everything and says
which entry is wrong. The genesis hash (sha256 of its canonical CBOR form) names the chain's
starting point; nodes with different genesis hashes refuse each other.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from p2pmkt.crypto.keys import address_of, is_public_key
from p2pmkt.errors import ConfigError
from p2pmkt.types import Address, Hash32
from p2pmkt.wire.cbor import encode

GLOBAL_ROLES = ("platform", "terminal")
MERCHANT_ROLES = ("merchant-ops", "merchant-tech")
_MERCHANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CHAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_role(text: str) -> tuple[str, str]:
    """``"merchant-ops:acme"`` → ``("merchant-ops", "acme")``; ``"platform"`` → ``("platform", "")``.

    Raises:
        ValueError: unknown role, missing or malformed merchant scope.
    """
    role, _, merchant = text.partition(":")
    if role in GLOBAL_ROLES:
        if merchant:
            raise ValueError(f"role {role!r} takes no merchant scope (got {text!r})")
        return role, ""
    if role in MERCHANT_ROLES:
        if not _MERCHANT_RE.match(merchant):
            raise ValueError(
                f"role {text!r} needs a merchant id after the colon "
                "(lowercase letters, digits, '-' and '_', at most 63 chars)"
            )
        return role, merchant
    raise ValueError(
        f"unknown role {role!r}; roles are {', '.join(GLOBAL_ROLES + MERCHANT_ROLES)}"
    )


def valid_merchant_id(merchant: str) -> bool:
    return bool(_MERCHANT_RE.match(merchant))


@dataclass(frozen=True, slots=True)
class ChainParams:
    """Consensus parameters. Every node must use the same values: they live in genesis."""

    block_interval_ms: int = 100
    max_block_txs: int = 2000
    max_block_bytes: int = 8 * 1024 * 1024
    max_tx_bytes: int = 512 * 1024
    max_visits_per_tx: int = 5000
    mempool_max_txs: int = 20000
    mempool_max_bytes: int = 256 * 1024 * 1024
    contract_fuel: int = 200_000_000
    contract_memory_bytes: int = 64 * 1024 * 1024
    contract_max_code_bytes: int = 1024 * 1024
    max_report_window: int = 1_000_000

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any, where: str = "params") -> ChainParams:
        if not isinstance(obj, dict):
            raise ConfigError(f"{where} must be an object")
        known = {f.name for f in fields(cls)}
        unknown = set(obj) - known
        if unknown:
            raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(known)}")
        for key, value in obj.items():
            if type(value) is not int or value <= 0:
                raise ConfigError(f"{where}.{key} must be a positive integer, got {value!r}")
        return cls(**obj)


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    pubkey: bytes
    roles: tuple[str, ...]

    @property
    def address(self) -> Address:
        return address_of(self.pubkey)


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    genesis_time: int
    members: tuple[Member, ...]
    validators: tuple[str, ...]
    params: ChainParams = field(default_factory=ChainParams)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time": self.genesis_time,
            "members": [
                {"name": m.name, "pubkey": m.pubkey.hex(), "roles": list(m.roles)}
                for m in self.members
            ],
            "validators": list(self.validators),
            "params": self.params.to_json(),
        }

    @property
    def hash(self) -> Hash32:
        return Hash32(hashlib.sha256(encode(self.to_json())).digest())

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def validator_addresses(self) -> tuple[Address, ...]:
        return tuple(self.member(n).address for n in self.validators)

    def save(self, path: str | Path) -> None:
        """Write the file whole or not at all (a temporary file renamed over ``path``): a
        half-written genesis would be refused at the next start."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)


def genesis_from_json(obj: Any, where: str = "genesis") -> Genesis:
    """Validate a parsed genesis object.

    Raises:
        ConfigError: naming the entry at fault and what is expected.
    """
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: must be a JSON object")
    required = {"chain_id", "genesis_time", "members", "validators"}
    missing = required - set(obj)
    if missing:
        raise ConfigError(f"{where}: missing keys {sorted(missing)}")
    unknown = set(obj) - required - {"params"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    chain_id = obj["chain_id"]
    if not isinstance(chain_id, str) or not _CHAIN_RE.match(chain_id):
        raise ConfigError(
            f"{where}: chain_id must be 1-64 letters, digits, '.', '_' or '-', got {chain_id!r}"
        )
    gtime = obj["genesis_time"]
    if type(gtime) is not int or gtime < 0:
        raise ConfigError(f"{where}: genesis_time must be ms since the epoch, got {gtime!r}")
    if not isinstance(obj["members"], list) or not obj["members"]:
        raise ConfigError(f"{where}: members must be a non-empty list")
    members: list[Member] = []
    names: set[str] = set()
    addresses: set[bytes] = set()
    for i, raw in enumerate(obj["members"]):
        at = f"{where}: members[{i}]"
        if not isinstance(raw, dict) or set(raw) - {"name", "pubkey", "roles"}:
            raise ConfigError(f"{at} must be an object with name, pubkey and roles")
        name = raw.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise ConfigError(f"{at}: name must be unique non-empty text, got {name!r}")
        try:
            pubkey = bytes.fromhex(raw.get("pubkey", ""))
        except (TypeError, ValueError):
            pubkey = b""
        if not is_public_key(pubkey):
            # Off the curve too: such a member could never sign anything.
            raise ConfigError(f"{at} ({name}): pubkey must be 66 hex digits of a compressed "
                              "secp256k1 public key (`p2pmkt key show` prints it)")
        roles = raw.get("roles", [])
        if not isinstance(roles, list):
            raise ConfigError(f"{at} ({name}): roles must be a list")
        for r in roles:
            try:
                parse_role(r if isinstance(r, str) else "")
            except ValueError as exc:
                raise ConfigError(f"{at} ({name}): {exc}") from exc
        member = Member(name=name, pubkey=pubkey, roles=tuple(roles))
        if member.address in addresses:
            raise ConfigError(f"{at} ({name}): the same key appears twice")
        names.add(name)
        addresses.add(member.address)
        members.append(member)
    validators = obj["validators"]
    if not isinstance(validators, list) or not validators:
        raise ConfigError(f"{where}: validators must be a non-empty list of member names")
    for v in validators:
        if v not in names:
            raise ConfigError(f"{where}: validator {v!r} is not a member name")
    if len(set(validators)) != len(validators):
        raise ConfigError(f"{where}: validators lists a member twice")
    params = ChainParams.from_json(obj.get("params", {}), f"{where}: params")
    return Genesis(chain_id, gtime, tuple(members), tuple(validators), params)


def load_genesis(path: str | Path) -> Genesis:
    """Read and validate a genesis file.

    Raises:
        ConfigError: missing file, bad JSON (with line and column), or invalid content.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read genesis file {p}: {exc.strerror}") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    return genesis_from_json(obj, str(p))
