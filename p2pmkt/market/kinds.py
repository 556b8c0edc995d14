"""Transaction kinds of p2pmkt and their payload schemas.

Theory of operation
-------------------
Every transaction names a *kind*; the kind decides who may send it and what its payload
looks like. Handling is split in two steps so that gossip, the mempool and block application
can share the cheap part:

1. ``parse(payload, params)``: stateless schema check → a typed payload (or
   :class:`InvalidTransaction` with reason ``bad_payload`` and a message naming the field).
2. ``apply(ctx, parsed)``: permission and state checks, then writes into ``ctx.batch``
   (a per-transaction overlay: if anything raises, the block discards it whole).

Payload wire forms (all maps with exactly these keys; types as in canonical CBOR):

=======================  =============  ====================================================
kind                     who            payload
=======================  =============  ====================================================
``role.grant``           platform       ``{"member": bstr(20), "role": str}``
``role.revoke``          platform       ``{"member": bstr(20), "role": str}``
``member.add``           platform       ``{"name": str, "pubkey": bstr(33), "roles": [str]}``
``member.remove``        platform       ``{"member": bstr(20)}``
``validator.set``        platform       ``{"member": bstr(20), "status": "voter"|"learner"|"none"}``
``visit.batch``          terminal       ``{"visits": [[ip, account, time, merchant, method, op,
                                        item, amount], ...]}`` (1..max_visits_per_tx)
``visit.pack``           terminal       ``{"strings": [text, ...], "visits": bstr}``: the same
                                        visits, same rules and same effect, as a sorted table
                                        of distinct texts plus 34-byte records
                                        (:mod:`p2pmkt.market.packed`; built by
                                        :func:`~p2pmkt.market.packed.pack_visits`)
``contract.deploy``      merchant-ops   ``{"code": bstr}`` (any merchant-ops, or platform for
                         or platform    the shared catalog); stored under sha256(code)
``indicator.configure``  merchant-ops   :meth:`IndicatorSpec.from_wire` fields
                         of merchant    (``merchant, name, code, params, condition, target``)
``indicator.remove``     merchant-ops   ``{"merchant": str, "name": str}``
``market.update``        merchant-tech  ``{"merchant": str, "base_version": int,
                         of merchant    "campaigns": [Campaign], "cause": str}``
``rules.publish``        merchant-tech  ``{"merchant": str, "rules": bstr}``
=======================  =============  ====================================================

Reports have no kind: the chain writes them itself at the end of a block
(:mod:`p2pmkt.market.reports`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from p2pmkt.chain._slots import slot_builder
from p2pmkt.chain.contract_api import ContractRuntime
from p2pmkt.chain.genesis import ChainParams, Genesis, valid_merchant_id
from p2pmkt.chain.state import StateReader, WriteBatch
from p2pmkt.errors import InvalidTransaction
from p2pmkt.market.model import (
    _I64_MAX,
    ACCESS_METHODS,
    MAX_AMOUNT,
    MAX_TEXT,
    OPERATIONS,
    Campaign,
    IndicatorSpec,
    Visit,
    _name_ok,
)
from p2pmkt.types import Address, Hash32

MAX_CAMPAIGNS = 100
MAX_RULES_BYTES = 64 * 1024
MAX_CAUSE = 200


@dataclass(slots=True)
class TxContext:
    """What a handler may see and touch while one transaction applies.

    Attributes:
        batch: this transaction's overlay; written only by the handler.
        sender: the verified signer.
        genesis: chain parameters and identity.
        height, time: the block being applied (time = block time, the only clock).
        tx_index: position in the block; txid: the transaction id.
        runtime: contract engine (None only where no contract work can happen).
        dry_run: True during mempool admission (:func:`p2pmkt.chain.apply.validate_tx_for_state`):
            handlers may skip work whose only purpose is the final state.
        events: events for the RPC stream, kept only if the transaction succeeds.
    """

    batch: WriteBatch
    sender: Address
    genesis: Genesis
    height: int
    time: int
    tx_index: int
    txid: Hash32
    runtime: ContractRuntime | None
    dry_run: bool = False
    events: list[object] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class KindSpec:
    """A transaction kind: its name, schema check, permission check and handler.

    ``permit(state, sender, parsed)`` is the "who" column of the table above: it raises
    :class:`~p2pmkt.errors.PermissionDenied` unless ``sender`` holds the kind's role (and
    merchant scope) in ``state``. The handler calls it first, so a block decides with it; the
    mempool also calls it alone for a transaction queued behind its sender's pending ones,
    whose other checks must wait for the state those leave (p2pmkt.node.chain).
    """

    name: str
    parse: Callable[[dict[str, Any], ChainParams], Any]
    apply: Callable[[TxContext, Any], None]
    permit: Callable[[StateReader, Address, Any], None]


def bad(kind: str, message: str) -> InvalidTransaction:
    return InvalidTransaction(f"{kind}: {message}", reason="bad_payload")


def exact_keys(kind: str, payload: dict[str, Any], keys: tuple[str, ...]) -> None:
    if set(payload) != set(keys):
        raise bad(kind, f"payload must have exactly the fields {sorted(keys)}, got {sorted(payload)[:10]}")


def merchant_field(kind: str, payload: dict[str, Any]) -> str:
    merchant = payload.get("merchant")
    if type(merchant) is not str or not valid_merchant_id(merchant):
        raise bad(kind, f"'merchant' must be a merchant id, got {merchant!r:.40}")
    return merchant


# --- Parsed payloads -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VisitBatch:
    """A checked ``visit.batch`` payload.

    Attributes:
        visits: the visits in wire form, ``[ip, account, time, merchant, method, op, item,
            amount]``, each one that :meth:`Visit.from_wire` accepts. The handler packs its
            records straight from these arrays: a batch of 2,000 visits builds no
            :class:`Visit` object (issue 6's 50k visits/s leave ~1 us per visit for that).
    """

    visits: Sequence[list[Any]]

    def parsed(self) -> tuple[Visit, ...]:
        """The visits as :class:`Visit` values (for callers off the hot path)."""
        return tuple(map(Visit.from_wire, self.visits))


@dataclass(frozen=True, slots=True)
class Deploy:
    code: bytes


@dataclass(frozen=True, slots=True)
class RemoveIndicator:
    merchant: str
    name: str


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    merchant: str
    base_version: int
    campaigns: tuple[Campaign, ...]
    cause: str


@dataclass(frozen=True, slots=True)
class PublishRules:
    merchant: str
    rules: bytes


def parse_visit_batch(payload: dict[str, Any], params: ChainParams) -> VisitBatch:
    kind = "visit.batch"
    if len(payload) != 1 or "visits" not in payload:  # exact_keys' test without two sets
        exact_keys(kind, payload, ("visits",))
    raw = payload["visits"]
    if type(raw) is not list or not raw:
        raise bad(kind, "'visits' must be a non-empty array of visits")
    if len(raw) > params.max_visits_per_tx:
        raise bad(kind, f"{len(raw)} visits in one transaction; the chain allows {params.max_visits_per_tx}")
    # The hot loop of the chain (issue 6: 50k visits/s): _all_valid accepts exactly what
    # Visit.from_wire accepts, minus oddities only a hand-built payload can hold (subclasses
    # of list or str); anything it does not accept goes through from_wire, which rejects with
    # the message naming the field at fault (or accepts such an oddity as before).
    if not _all_valid(raw):
        try:
            for visit in raw:
                Visit.from_wire(visit)
        except InvalidTransaction as exc:
            index = next(i for i, v in enumerate(raw) if _fails(v))
            raise bad(kind, f"visit {index}: {exc}") from exc
    return _new_visit_batch(raw)


_new_visit_batch = slot_builder(VisitBatch)  # one per transaction; see p2pmkt.chain._slots
_METHODS = frozenset(ACCESS_METHODS)
_OPERATIONS = frozenset(OPERATIONS)
_MAX_TIME = 2**53


def _all_valid(raw: list[Any]) -> bool:
    """True if every visit in ``raw`` is a plain list that :meth:`Visit.from_wire` accepts.

    The same checks as ``from_wire`` (tests/market pins the equivalence), as one expression
    per visit and no object built: ~0.4 us a visit instead of ~1.2 us.
    """
    methods, operations, max_text, max_amount, max_time = (
        _METHODS, _OPERATIONS, MAX_TEXT, MAX_AMOUNT, _MAX_TIME
    )
    for visit in raw:
        if type(visit) is not list or len(visit) != 8:
            return False
        ip, account, time, merchant, method, op, item, amount = visit
        if not (
            type(ip) is str and 0 < len(ip) <= 64
            and type(account) is str and len(account) <= max_text
            and type(time) is int and 0 <= time <= max_time
            and type(merchant) is str and 0 < len(merchant) <= 64
            and type(method) is str and method in methods
            and type(op) is str and op in operations
            and type(item) is str and len(item) <= max_text
            and type(amount) is int and 0 <= amount <= max_amount
        ):
            return False
    return True


def _fails(obj: Any) -> bool:
    try:
        Visit.from_wire(obj)
    except InvalidTransaction:
        return True
    return False


def parse_deploy(payload: dict[str, Any], params: ChainParams) -> Deploy:
    kind = "contract.deploy"
    exact_keys(kind, payload, ("code",))
    code = payload["code"]
    if type(code) is not bytes or not code:
        raise bad(kind, "'code' must be the WebAssembly module bytes")
    return Deploy(code)


def parse_configure(payload: dict[str, Any], params: ChainParams) -> IndicatorSpec:
    kind = "indicator.configure"
    merchant_field(kind, payload)
    try:
        return IndicatorSpec.from_wire(payload)
    except InvalidTransaction as exc:
        raise bad(kind, exc.message) from exc


def parse_remove(payload: dict[str, Any], params: ChainParams) -> RemoveIndicator:
    kind = "indicator.remove"
    exact_keys(kind, payload, ("merchant", "name"))
    merchant = merchant_field(kind, payload)
    name = payload["name"]
    if type(name) is not str or not _name_ok(name):
        raise bad(kind, "'name' must be an indicator name")
    return RemoveIndicator(merchant, name)


def parse_market_update(payload: dict[str, Any], params: ChainParams) -> MarketUpdate:
    kind = "market.update"
    exact_keys(kind, payload, ("merchant", "base_version", "campaigns", "cause"))
    merchant = merchant_field(kind, payload)
    base, campaigns, cause = payload["base_version"], payload["campaigns"], payload["cause"]
    if type(base) is not int or not 0 <= base < _I64_MAX:
        raise bad(kind, "'base_version' must be the version the update starts from (0 for none)")
    if type(campaigns) is not list or len(campaigns) > MAX_CAMPAIGNS:
        raise bad(kind, f"'campaigns' must be an array of at most {MAX_CAMPAIGNS} campaigns")
    if type(cause) is not str or len(cause) > MAX_CAUSE:
        raise bad(kind, "'cause' must be a report id or '' for a manual update")
    try:
        parsed = tuple(Campaign.from_wire(c) for c in campaigns)
    except InvalidTransaction as exc:
        raise bad(kind, exc.message) from exc
    names = [c.name for c in parsed]
    if len(set(names)) != len(names):
        raise bad(kind, "two campaigns have the same name")
    return MarketUpdate(merchant, base, parsed, cause)


def parse_rules(payload: dict[str, Any], params: ChainParams) -> PublishRules:
    kind = "rules.publish"
    exact_keys(kind, payload, ("merchant", "rules"))
    merchant = merchant_field(kind, payload)
    rules = payload["rules"]
    if type(rules) is not bytes or len(rules) > MAX_RULES_BYTES:
        raise bad(kind, f"'rules' must be the rules document as bytes, at most {MAX_RULES_BYTES}")
    return PublishRules(merchant, rules)
