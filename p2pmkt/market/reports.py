"""End-of-block evaluation: the chain writes due indicator reports itself (SPEC flow 3).

Theory of operation
-------------------
After the transactions of a block, :func:`end_block` walks every active indicator in
(merchant, name) byte order, asks :func:`p2pmkt.market.conditions.is_due` with the merchant's
visit counter and the block's time, and for each due indicator:

1. takes the window ``[from_seq, min(count, from_seq + max_report_window))`` of the merchant's
   visits: the packed 48-byte records straight from state, in order;
2. runs ``runtime.evaluate`` with the chain's fuel and memory limits;
3. writes a :class:`~p2pmkt.market.model.Report` (ok, or failed with the runtime's error slug),
   with ``missed`` set when the result misses the indicator's target;
4. advances the indicator: next report number, window start, last report time.

No transaction carries a report: every validator computes the same one from the same state
and block time, and the report is part of the state root. That is how "a report that does not
match re-execution is rejected" (SPEC flow 3) holds by construction: a node that computed
different values has a different state root, and the next block's header exposes it.

A window larger than ``max_report_window`` is reported in parts, one per block, oldest first;
every visit is covered by exactly one report of each indicator.

Invariant: a failing contract is a failed report, never an exception; only a missing runtime
(a misconfigured node) raises, because a node that cannot evaluate must stop, not diverge.
"""

from __future__ import annotations

from dataclasses import replace

from p2pmkt.chain.contract_api import ContractRuntime, EvalResult
from p2pmkt.chain.genesis import ChainParams
from p2pmkt.chain.state import StateReader, WriteBatch
from p2pmkt.errors import LocalError
from p2pmkt.market.conditions import is_due
from p2pmkt.market.events import ReportWritten
from p2pmkt.market.model import Report
from p2pmkt.market.store import (
    all_indicators,
    put_indicator,
    put_report,
    visit_count,
    window_chunks,
)


def any_report_due(state: StateReader, time: int) -> bool:
    """Would a block at ``time`` write a report (the same test as :func:`end_block`'s)?"""
    counts: dict[str, int] = {}
    for ind in all_indicators(state):
        if not ind.active:
            continue
        merchant = ind.spec.merchant
        if merchant not in counts:
            counts[merchant] = visit_count(state, merchant) or 0
        if is_due(ind.spec.condition, visits_since=counts[merchant] - ind.from_seq,
                  last_time=ind.last_time, now=time) is not None:
            return True
    return False


def end_block(
    batch: WriteBatch,
    *,
    params: ChainParams,
    runtime: ContractRuntime | None,
    height: int,
    time: int,
) -> list[ReportWritten]:
    """Evaluate every due indicator and write its report into ``batch``.

    Returns:
        One :class:`ReportWritten` per report, in evaluation order.

    Raises:
        LocalError: an indicator is due and ``runtime`` is None.
    """
    events: list[ReportWritten] = []
    counts: dict[str, int] = {}
    for ind in list(all_indicators(batch)):
        if not ind.active:
            continue
        spec = ind.spec
        count = counts.get(spec.merchant)
        if count is None:
            count = counts[spec.merchant] = visit_count(batch, spec.merchant) or 0
        trigger = is_due(
            spec.condition, visits_since=count - ind.from_seq, last_time=ind.last_time, now=time
        )
        if trigger is None:
            continue
        end = min(count, ind.from_seq + params.max_report_window)
        code = batch.get("contracts", spec.code_hash)
        if code is None:  # cannot happen (code is never deleted); keep the chain going anyway
            result = EvalResult(ok=False, values=(), scale=0, fuel_used=0, error="missing_code")
        elif runtime is None:
            raise LocalError(
                f"indicator {spec.merchant}/{spec.name} is due at height {height} but no "
                "ContractRuntime was given to apply_block"
            )
        else:
            result = runtime.evaluate(
                code,
                spec.code_hash,
                window_chunks(batch, spec.merchant, ind.from_seq, end),
                dict(spec.params),
                fuel=params.contract_fuel,
                memory_bytes=params.contract_memory_bytes,
            )
        missed = False
        if result.ok and spec.target is not None:
            value = result.value(spec.target.value)
            missed = value is not None and spec.target.missed_by(value, result.scale)
        report = Report(
            merchant=spec.merchant,
            indicator=spec.name,
            n=ind.next_n,
            from_seq=ind.from_seq,
            to_seq=end,
            from_time=ind.last_time,
            to_time=time,
            values=tuple(result.values) if result.ok else (),
            scale=result.scale if result.ok else 0,
            code_hash=spec.code_hash,
            ok=result.ok,
            error="" if result.ok else result.error,
            height=height,
            time=time,
            missed=missed,
            trigger=trigger,
        )
        put_report(batch, report)
        put_indicator(batch, replace(ind, next_n=ind.next_n + 1, from_seq=end, last_time=time))
        events.append(ReportWritten(report, fuel_used=result.fuel_used))
    return events
