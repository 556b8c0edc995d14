"""Transaction handlers of the marketing domain, and the table of every kind the chain knows.

Theory of operation
-------------------
A handler gets a :class:`~p2pmkt.market.kinds.TxContext` and the payload its kind's ``parse``
produced. It checks the sender's role and merchant scope first (its kind's ``permit``, one of
the ``permit_*`` functions below, over :mod:`p2pmkt.chain.roles`), then any state
preconditions, then writes through ``ctx.batch``. Handlers raise typed errors
(:class:`PermissionDenied`, :class:`InvalidTransaction`, :class:`ContractRejected`) *before or
after* writing: the caller applies each transaction in its own overlay and drops it on error, so
a handler never has to undo anything.

Rules every handler keeps:

* deterministic: inputs are the payload, the sender, state, block height and block time;
* bounded: work is linear in the payload (which the chain's size limits bound) plus a few
  point reads; the one scan (member names on ``member.add``) is over the small members table;
* ``visit.batch`` and ``visit.pack`` are the hot path (issue 6 targets 50,000 visits/s):
  ``visit.batch`` checks its wire arrays in one pass and packs one ``struct`` per visit;
  ``visit.pack`` (:mod:`p2pmkt.market.packed`) does its per-visit work in C loops. Both
  write one state value per merchant and transaction (a chunk of records), one counter and
  one event per merchant: nothing per visit but the 48 bytes of its record.

:data:`KINDS` maps each kind name to its :class:`~p2pmkt.market.kinds.KindSpec`; it is the
single source the chain's block application, the mempool and gossip validation consult.
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from p2pmkt.chain._slots import slot_builder
from p2pmkt.chain.contract_api import (
    ACCESS_METHOD_CODES,
    OPERATION_CODES,
    VISIT_RECORD_SIZE,
    text_id,
    text_ids,
)
from p2pmkt.chain.genesis import ChainParams
from p2pmkt.chain.roles import (
    GOVERNANCE_KINDS,
    GovernanceOp,
    apply_governance,
    member_of,
    parse_governance,
    require_platform,
    require_role,
    short_address,
)
from p2pmkt.chain.state import StateReader
from p2pmkt.errors import ContractRejected, InvalidTransaction, LocalError, PermissionDenied
from p2pmkt.market.events import (
    ContractDeployed,
    IndicatorConfigured,
    IndicatorRemoved,
    MarketingUpdated,
    RulesPublished,
    VisitsAppended,
)
from p2pmkt.market.kinds import (
    Deploy,
    KindSpec,
    MarketUpdate,
    PublishRules,
    RemoveIndicator,
    TxContext,
    VisitBatch,
    parse_configure,
    parse_deploy,
    parse_market_update,
    parse_remove,
    parse_rules,
    parse_visit_batch,
)
from p2pmkt.market.model import IndicatorSpec, MarketingInfo, parse_report_id
from p2pmkt.market.packed import VisitPack, parse_visit_pack
from p2pmkt.market.store import (
    CHUNK_HEADER,
    IndicatorState,
    chunk_key,
    get_indicator,
    get_marketing,
    get_report,
    put_indicator,
    put_marketing,
    set_visit_count,
    visit_count,
)
from p2pmkt.types import Address, Hash32

# --- Who may send each kind (KindSpec.permit) ---------------------------------------------------


def permit_terminal(state: StateReader, sender: Address, _parsed: object) -> None:
    """Visits: the sender must hold ``terminal``."""
    record = member_of(state, sender)
    if record is None or "terminal" not in record.roles:  # require_role's test, inlined
        require_role(state, sender, "terminal")


def permit_deploy(state: StateReader, sender: Address, _parsed: object) -> None:
    """Contract code: any merchant-ops member, or platform (the shared catalog)."""
    record = member_of(state, sender)
    if record is None or not (
        "platform" in record.roles or any(r.startswith("merchant-ops:") for r in record.roles)
    ):
        raise PermissionDenied(
            f"{short_address(sender)} may not deploy contracts: that needs a merchant-ops "
            "role (or platform)",
            reason="missing_role",
        )


def permit_merchant_ops(state: StateReader, sender: Address, parsed: Any) -> None:
    """Indicators: merchant-ops of the payload's merchant."""
    require_role(state, sender, "merchant-ops", parsed.merchant)


def permit_merchant_tech(state: StateReader, sender: Address, parsed: Any) -> None:
    """Marketing information and rules: merchant-tech of the payload's merchant."""
    require_role(state, sender, "merchant-tech", parsed.merchant)


def permit_platform(state: StateReader, sender: Address, _parsed: object) -> None:
    """Governance: platform."""
    require_platform(state, sender)


# --- Handlers -------------------------------------------------------------------------------


def apply_visit_batch(ctx: TxContext, p: VisitBatch) -> None:
    """Append each visit to its merchant's sequence (terminal role; any merchant on chain).

    The visits of each merchant become one stored chunk (:mod:`p2pmkt.market.store`): their
    48-byte :func:`~p2pmkt.chain.contract_api.pack_visit` records, one ``struct`` call per
    visit, behind one header saying where they came from. One state write per merchant and
    transaction, not one per visit.

    Raises:
        PermissionDenied: the sender is not a terminal.
        InvalidTransaction: a visit names a merchant unknown to the chain
            (reason ``unknown_merchant``).
    """
    batch = ctx.batch
    permit_terminal(batch, ctx.sender, p)
    groups: dict[str, list[bytes]] = {}
    firsts: dict[str, tuple[int, int]] = {}  # merchant -> (first seq, index of its first visit)
    store = not ctx.dry_run
    pack = _RECORD.pack
    methods, operations = ACCESS_METHOD_CODES, OPERATION_CODES
    for i, (ip, account, time, merchant, method, op, item, amount) in enumerate(p.visits):
        mine = groups.get(merchant)
        if mine is None:
            seq = visit_count(batch, merchant)
            if seq is None:
                raise InvalidTransaction(
                    f"visit.batch: visit {i}: merchant {merchant!r:.70} is not on this chain "
                    "(no member holds a role for it); ask the platform to add it",
                    reason="unknown_merchant",
                )
            firsts[merchant] = (seq, i)
            mine = groups[merchant] = []
        mine.append(pack(
            time, amount, text_id(b"a", account), text_id(b"i", ip), text_id(b"t", item),
            methods[method], operations[op],
        ) if store else b"")
    for merchant, mine in groups.items():
        first, index = firsts[merchant]
        _append_chunk(ctx, merchant, first, index, len(mine), mine if store else None)


def apply_visit_pack(ctx: TxContext, p: VisitPack) -> None:
    """:func:`apply_visit_batch` for a ``visit.pack``: the same checks, state and events.

    Work per *visit* is C loops only (``map`` over the columns, one stable ``sorted``): text
    ids are computed once per distinct text, the records are built by one ``map`` of a
    ``struct`` pack and grouped by merchant by a stable sort of their positions.

    Raises:
        PermissionDenied: the sender is not a terminal.
        InvalidTransaction: a visit names a merchant unknown to the chain
            (reason ``unknown_merchant``), naming the first such visit as visit.batch does.
    """
    batch = ctx.batch
    permit_terminal(batch, ctx.sender, p)
    strings, merchants = p.strings, p.merchants
    firsts: dict[int, int] = {}
    for k in dict.fromkeys(merchants):  # distinct merchants, in order of first visit
        seq = visit_count(batch, strings[k])
        if seq is None:
            raise InvalidTransaction(
                f"visit.pack: visit {merchants.index(k)}: merchant {strings[k]!r:.70} is not on "
                "this chain (no member holds a role for it); ask the platform to add it",
                reason="unknown_merchant",
            )
        firsts[k] = seq
    store = not ctx.dry_run
    records: list[bytes] = []
    if store:
        get = strings.__getitem__
        accounts = dict(zip(a := set(p.accounts), text_ids(b"a", map(get, a)), strict=True))
        ips = dict(zip(a := set(p.ips), text_ids(b"i", map(get, a)), strict=True))
        items = dict(zip(a := set(p.items), text_ids(b"t", map(get, a)), strict=True))
        records = list(map(
            _RECORD.pack, p.times, p.amounts, map(accounts.__getitem__, p.accounts),
            map(ips.__getitem__, p.ips), map(items.__getitem__, p.items), p.methods, p.ops,
        ))
    if len(firsts) == 1:
        ((k, first),) = firsts.items()
        _append_chunk(ctx, strings[k], first, 0, len(merchants), records if store else None)
        return
    # Group by merchant: a stable sort of the positions by merchant index keeps each
    # merchant's visits in transaction (= seq) order; merchant k's run starts where the
    # runs of the smaller indexes end.
    order = sorted(range(len(merchants)), key=merchants.__getitem__)
    grouped = list(map(records.__getitem__, order)) if store else []
    counts = Counter(merchants)
    spans: dict[int, tuple[int, int]] = {}
    lo = 0
    for k in sorted(firsts):
        spans[k] = (lo, lo + counts[k])
        lo = spans[k][1]
    for k, first in firsts.items():  # in order of first visit, as visit.batch
        lo, hi = spans[k]
        _append_chunk(ctx, strings[k], first, order[lo], hi - lo, grouped[lo:hi] if store else None)


def _append_chunk(
    ctx: TxContext, merchant: str, first: int, index: int, count: int, records: list[bytes] | None
) -> None:
    """Append ``count`` visits of ``merchant`` from this transaction: its counter, its event
    and, unless ``records`` is None (a dry run), the stored chunk of their records."""
    if records is not None:
        ctx.batch.table_writes("visits")[chunk_key(merchant, first + count - 1)] = (
            CHUNK_HEADER.pack(first, ctx.height, ctx.tx_index, index) + b"".join(records)
        )
    set_visit_count(ctx.batch, merchant, first + count)
    ctx.events.append(_new_visits_appended(merchant, first, count))


_new_visits_appended = slot_builder(VisitsAppended)  # one per transaction and merchant
_RECORD = struct.Struct("<qqQQQBB6x")  # pack_visit's record (tests/market pins the equality)
assert _RECORD.size == VISIT_RECORD_SIZE


def apply_deploy(ctx: TxContext, p: Deploy) -> None:
    """Store contract code under its sha256 after the runtime accepted it.

    Any merchant-ops member may deploy (code is shared and content-addressed; only
    ``indicator.configure`` is merchant-scoped), and so may the platform, which keeps the
    shared indicator catalog (SPEC roles). Deploying code that is already stored is a no-op.

    Raises:
        PermissionDenied: the sender holds neither merchant-ops nor platform.
        ContractRejected: code over ``contract_max_code_bytes`` (reason ``code_too_large``)
            or refused by ``runtime.check_code``.
        LocalError: no runtime while applying a block (this node is misconfigured; it must
            stop rather than diverge).
    """
    permit_deploy(ctx.batch, ctx.sender, p)
    limit = ctx.genesis.params.contract_max_code_bytes
    if len(p.code) > limit:
        raise ContractRejected(
            f"contract code is {len(p.code)} bytes; this chain accepts at most {limit}",
            reason="code_too_large",
        )
    code_hash = Hash32(hashlib.sha256(p.code).digest())
    new = ctx.batch.get("contracts", code_hash) is None
    if new:
        if ctx.runtime is not None:
            ctx.runtime.check_code(p.code)
        elif not ctx.dry_run:
            raise LocalError("applying contract.deploy needs a ContractRuntime; none was given")
        ctx.batch.put("contracts", code_hash, p.code)
    ctx.events.append(ContractDeployed(code_hash, len(p.code), ctx.sender, new))


def apply_configure(ctx: TxContext, spec: IndicatorSpec) -> None:
    """Create or replace an indicator of the merchant (merchant-ops of that merchant).

    A new indicator's first window starts at the merchant's current visit count: it reports
    on visits from its configuration on. Reconfiguring an active indicator keeps its window
    position; configuring a removed one again starts a fresh window (visits while it was
    removed are not reported) but continues its report numbering, so report ids stay unique.

    Raises:
        PermissionDenied: not merchant-ops of ``spec.merchant``.
        InvalidTransaction: the code hash is not deployed (reason ``unknown_code``).
    """
    batch = ctx.batch
    permit_merchant_ops(batch, ctx.sender, spec)
    if batch.get("contracts", spec.code_hash) is None:
        raise InvalidTransaction(
            f"indicator.configure: no contract with code hash {spec.code_hash.hex()} is "
            "deployed; deploy it with contract.deploy first",
            reason="unknown_code",
        )
    old = get_indicator(batch, spec.merchant, spec.name)
    if old is not None and old.active:
        state = replace(old, spec=spec)
    else:
        start = visit_count(batch, spec.merchant) or 0
        state = IndicatorState(spec, 0 if old is None else old.next_n, start, ctx.time)
    put_indicator(batch, state)
    ctx.events.append(IndicatorConfigured(spec.merchant, spec.name, spec.code_hash, ctx.sender))


def apply_remove(ctx: TxContext, p: RemoveIndicator) -> None:
    """Stop an indicator (merchant-ops of that merchant); its reports stay on chain.

    Raises:
        PermissionDenied: not merchant-ops of the merchant.
        InvalidTransaction: no such active indicator (reason ``unknown_indicator``).
    """
    permit_merchant_ops(ctx.batch, ctx.sender, p)
    old = get_indicator(ctx.batch, p.merchant, p.name)
    if old is None or not old.active:
        raise InvalidTransaction(
            f"indicator.remove: merchant {p.merchant!r} has no active indicator {p.name!r}",
            reason="unknown_indicator",
        )
    put_indicator(ctx.batch, replace(old, active=False))
    ctx.events.append(IndicatorRemoved(p.merchant, p.name, ctx.sender))


def apply_market_update(ctx: TxContext, p: MarketUpdate) -> None:
    """Write a new version of the merchant's marketing information (merchant-tech).

    Optimistic concurrency: ``base_version`` must be the current version (0 before the first
    update), so two agents cannot silently overwrite each other. ``cause``, when set, must be
    an existing report of the same merchant.

    Raises:
        PermissionDenied: not merchant-tech of the merchant.
        InvalidTransaction: reasons ``stale_version``, ``bad_cause``, ``unknown_cause``.
    """
    batch = ctx.batch
    permit_merchant_tech(batch, ctx.sender, p)
    current = get_marketing(batch, p.merchant)
    version = 0 if current is None else current.version
    if p.base_version != version:
        raise InvalidTransaction(
            f"market.update: marketing info of {p.merchant!r} is at version {version}, but the "
            f"update is based on version {p.base_version}; read the current version and resubmit",
            reason="stale_version",
        )
    if p.cause:
        merchant, indicator, n = parse_report_id(p.cause)
        if merchant != p.merchant:
            raise InvalidTransaction(
                f"market.update: cause {p.cause!r} is a report of {merchant!r}, not of {p.merchant!r}",
                reason="bad_cause",
            )
        if get_report(batch, merchant, indicator, n) is None:
            raise InvalidTransaction(
                f"market.update: cause {p.cause!r} names no report on chain", reason="unknown_cause"
            )
    info = MarketingInfo(
        merchant=p.merchant,
        version=version + 1,
        campaigns=p.campaigns,
        author=bytes(ctx.sender),
        time=ctx.time,
        height=ctx.height,
        cause=p.cause,
    )
    put_marketing(batch, info)
    ctx.events.append(MarketingUpdated(info))


def apply_rules(ctx: TxContext, p: PublishRules) -> None:
    """Store the merchant's mapping rules document so it is auditable (merchant-tech).

    Raises:
        PermissionDenied: not merchant-tech of the merchant.
    """
    permit_merchant_tech(ctx.batch, ctx.sender, p)
    ctx.batch.put("rules", p.merchant.encode(), p.rules)
    ctx.events.append(RulesPublished(p.merchant, len(p.rules), ctx.sender))


def _governance(kind: str) -> KindSpec:
    def parse(payload: dict[str, Any], params: ChainParams) -> GovernanceOp:
        return parse_governance(kind, payload)

    def apply(ctx: TxContext, op: GovernanceOp) -> None:
        ctx.events.append(apply_governance(ctx.batch, ctx.sender, op))

    return KindSpec(kind, parse, apply, permit_platform)


KINDS: Mapping[str, KindSpec] = {
    **{kind: _governance(kind) for kind in GOVERNANCE_KINDS},
    "visit.batch": KindSpec("visit.batch", parse_visit_batch, apply_visit_batch, permit_terminal),
    "visit.pack": KindSpec("visit.pack", parse_visit_pack, apply_visit_pack, permit_terminal),
    "contract.deploy": KindSpec("contract.deploy", parse_deploy, apply_deploy, permit_deploy),
    "indicator.configure": KindSpec("indicator.configure", parse_configure, apply_configure,
                                    permit_merchant_ops),
    "indicator.remove": KindSpec("indicator.remove", parse_remove, apply_remove, permit_merchant_ops),
    "market.update": KindSpec("market.update", parse_market_update, apply_market_update,
                              permit_merchant_tech),
    "rules.publish": KindSpec("rules.publish", parse_rules, apply_rules, permit_merchant_tech),
}
"""Every transaction kind of the chain, by name (see :mod:`p2pmkt.market.kinds` for schemas)."""
