"""Cooldowns as a function of the chain: which rule last fired when, replayed from history.

Theory of operation
-------------------
A rule that fired at block time ``t`` may fire again once ``block_time - t >= cooldown_ms``
(:mod:`p2pmkt.agent.decide`). Kept in the agent's memory, that record was lost on a restart,
and a restarted agent fired rules that the running one would have held back. The chain
already holds what is needed to rebuild it: every version of a merchant's marketing
information records its ``cause`` (the id of the report that caused it, ``""`` for a manual
update) and replaces the version just before it (``base_version`` must be the current
version). So the record is *replayed*, oldest update first:

* for each automatic update (a version with a cause), :func:`decide` runs again on the cause
  report, the version before the update and the record so far, at the report's block time,
  exactly as the agent ran it;
* if the replay yields the very campaigns the chain holds, the rules it says fired are
  stamped at the report's block time;
* if not (the rules file or the indicator's target changed since, or someone else's update
  cited the report), every rule that watches the report's indicator and whose condition held
  is stamped instead: such a rule may then wait longer than it would have, never less.

The node's agent folds the history in before every decision (only the versions it has not
seen yet), so an agent that never stopped and one restarted at any point hold the same record
and make the same decisions. Pure: the caller reads the chain and hands the updates in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from p2pmkt.agent.decide import ReportView, applies, decide
from p2pmkt.agent.rules import RuleSet
from p2pmkt.market.model import MarketingInfo


@dataclass(frozen=True, slots=True)
class PastUpdate:
    """One automatic update on chain, with what :func:`decide` saw when it was made.

    Attributes:
        before: the version it replaced (``after.version - 1``).
        after: the update itself; ``after.cause`` is ``report.report_id``.
        report: the cause report, with its indicator's target as configured now.
    """

    before: MarketingInfo
    after: MarketingInfo
    report: ReportView


def fired_in(ruleset: RuleSet, past: PastUpdate, record: Mapping[str, int]) -> tuple[str, ...]:
    """Names of the rules taken to have fired in ``past`` (see the module docstring)."""
    report = past.report
    if past.before.merchant != report.merchant:
        return ()
    update = decide(ruleset, report, past.before, record, report.time)
    if update is not None and update.campaigns == past.after.campaigns:
        return update.fired
    if ruleset.merchant is not None and report.merchant != ruleset.merchant:
        return ()
    if not report.ok:
        return ()
    return tuple(r.name for r in ruleset.for_indicator(report.indicator) if applies(r, report))


def replay_cooldowns(
    ruleset: RuleSet, history: Iterable[PastUpdate], record: Mapping[str, int] | None = None
) -> dict[str, int]:
    """The cooldown record after ``history`` (oldest first), starting from ``record``.

    Returns a new mapping from rule name to the block time (ms) it last fired.
    """
    out = dict(record or {})
    for past in history:
        for name in fired_in(ruleset, past, out):
            out[name] = past.report.time
    return out
