"""decide(): from one indicator report and the current marketing information to an update.

Theory of operation
-------------------
The merchant-tech agent (SPEC flow 4, issue 6 item 3) watches committed reports of its
merchant. For each one the node maps the chain's report onto a :class:`ReportView` and calls
:func:`decide`, which is pure: the same rules, report, marketing information, cooldown record
and block time always give the same answer, on any node, at any wall time.

For every rule watching the report's indicator, in file order:

1. **Value.** The rule tests one named value of the report: the rule's ``value`` if set;
   else the value the target is about; else the value named like the indicator; else the
   report's only value. If none applies the rule is passed over.
2. **Condition.** ``missed``: the report missed its target (the chain's judgement, carried
   in :attr:`ReportView.missed`); ``met``: it did not. ``below_target``/``above_target``:
   value strictly below/above the target's threshold (needs a target about that value).
   ``below``/``above``: value strictly below/above the rule's literal threshold, compared
   exactly (``value / 10**scale`` against a fraction; no floats anywhere).
3. **Cooldown.** A rule that last fired at block time ``t`` may fire again only when
   ``block_time - t >= cooldown_ms``. Block time, never the wall clock: every replay agrees.
4. **Actions**, in order, on the rule's campaigns (all active ones when it names none; names
   that do not exist are ignored). Bid and budget changes round *away* from the old value
   (up when raising, down when lowering) so a small amount still moves by at least one minor
   unit, and they never cross their bound: raising never lowers a value already above
   ``max_*``, lowering never raises one already below ``min_*``; a raise from 0 lifts to
   ``min_*`` when one is given. Keywords are added once per (text, match) up to the
   campaign limit of 500; removal matches the text exactly, whatever the match type.
   Switching a channel replaces one channel (``from``) or all; a campaign always keeps at
   least one channel, so removing the last one does nothing.

A rule *fires* when its actions changed something. :func:`decide` returns a
:class:`ProposedUpdate` with the new campaigns, the rules that fired and a human-readable
list of changes, or None when nothing changed (no rule applied, all cooling down, or every
value already at its bound). The caller submits the update as a signed transaction whose
cause is the report id. The cooldown record (which rule last fired when) is the caller's
input: the node's agent rebuilds it from the chain (:mod:`p2pmkt.agent.cooldown`), so that
it survives restarts; the chain-less demo loop stamps it with :func:`note_fired`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

from p2pmkt.agent.rules import (
    Action,
    AddChannel,
    AddKeywords,
    ChangeBid,
    ChangeBudget,
    RemoveChannel,
    RemoveKeywords,
    Rule,
    RuleSet,
    SetBudget,
    SwitchChannel,
)
from p2pmkt.errors import LocalError
from p2pmkt.market.model import Campaign, MarketingInfo, Report, Target

MAX_KEYWORDS = 500


@dataclass(frozen=True, slots=True)
class ReportView:
    """What the agent needs of one committed report; the node maps the chain's Report onto it.

    Attributes:
        merchant: merchant id.
        indicator: indicator name.
        values: ``(name, fixed-point int)`` pairs as the contract wrote them.
        scale: values mean ``v / 10**scale``.
        missed: the chain judged that the report missed its target.
        report_id: id recorded as the cause of the update.
        height: height of the block holding the report.
        time: block time of that block, ms.
        target: the indicator's target (``p2pmkt.market.model.Target``: its threshold has
            its own scale; comparisons are exact), when one is configured.
        ok: False for a failed evaluation (trap, out of fuel); such reports never fire rules.
    """

    merchant: str
    indicator: str
    values: tuple[tuple[str, int], ...]
    scale: int
    missed: bool
    report_id: str
    height: int
    time: int
    target: Target | None = None
    ok: bool = True

    @classmethod
    def from_report(cls, report: Report, target: Target | None) -> ReportView:
        """The view of a committed chain report, with its indicator's target (if any)."""
        return cls(report.merchant, report.indicator, report.values, report.scale,
                   report.missed, report.id, report.height, report.time, target, report.ok)

    def value(self, name: str) -> int | None:
        """The fixed-point value named ``name``, or None."""
        for key, val in self.values:
            if key == name:
                return val
        return None


@dataclass(frozen=True, slots=True)
class ProposedUpdate:
    """The update :func:`decide` proposes.

    Attributes:
        merchant: whose marketing information.
        base_version: version of the information the update was computed from (submit it
            so that a concurrent manual update is not silently overwritten).
        campaigns: the complete new campaigns tuple.
        fired: names of the rules whose actions changed something, in file order.
        cause: the report id that caused it.
        changes: one line per change, e.g. ``"spring: max_bid 100 -> 110 (conversion-low)"``.
    """

    merchant: str
    base_version: int
    campaigns: tuple[Campaign, ...]
    fired: tuple[str, ...]
    cause: str
    changes: tuple[str, ...]


def decide(
    ruleset: RuleSet,
    report: ReportView,
    current: MarketingInfo,
    last_action_time_by_rule: Mapping[str, int],
    block_time: int,
) -> ProposedUpdate | None:
    """Apply the rules to one report; see the module docstring for every step.

    Args:
        ruleset: the merchant's rules.
        report: the report that was just committed.
        current: the merchant's marketing information as of that block.
        last_action_time_by_rule: block time (ms) each rule last fired; absent = never.
        block_time: block time (ms) the decision is made at (normally ``report.time``).

    Raises:
        LocalError: ``current`` belongs to another merchant than ``report``.
    """
    if current.merchant != report.merchant:
        raise LocalError(
            f"marketing info of {current.merchant!r} given for a report of {report.merchant!r}"
        )
    if not report.ok or (ruleset.merchant is not None and report.merchant != ruleset.merchant):
        return None
    campaigns = current.campaigns
    fired: list[str] = []
    changes: list[str] = []
    for rule in ruleset.for_indicator(report.indicator):
        if not applies(rule, report):
            continue
        last = last_action_time_by_rule.get(rule.name)
        if last is not None and block_time - last < rule.cooldown_ms:
            continue
        updated, notes = _apply_rule(rule, campaigns)
        if updated != campaigns:
            campaigns = updated
            fired.append(rule.name)
            changes.extend(f"{note} ({rule.name})" for note in notes)
    if not fired:
        return None
    return ProposedUpdate(
        report.merchant, current.version, campaigns, tuple(fired), report.report_id, tuple(changes)
    )


def note_fired(
    last_action_time_by_rule: Mapping[str, int], update: ProposedUpdate, block_time: int
) -> dict[str, int]:
    """Return a copy of the cooldown record with ``update.fired`` stamped at ``block_time``."""
    record = dict(last_action_time_by_rule)
    for name in update.fired:
        record[name] = block_time
    return record


def select_value(rule: Rule, report: ReportView) -> tuple[str, int] | None:
    """The ``(name, value)`` a rule tests (step 1 of the module docstring), or None."""
    if rule.value is not None:
        names = [rule.value]
    elif report.target is not None:
        names = [report.target.value]
    else:
        names = [report.indicator]
        if len(report.values) == 1:
            names.append(report.values[0][0])
    for name in names:
        value = report.value(name)
        if value is not None:
            return name, value
    return None


def applies(rule: Rule, report: ReportView) -> bool:
    """Whether ``rule``'s condition holds for ``report`` (step 2; cooldowns not considered)."""
    kind = rule.condition.kind
    if kind == "missed":
        return report.missed
    if kind == "met":
        return not report.missed
    picked = select_value(rule, report)
    if picked is None:
        return False
    name, value = picked
    if kind in ("below_target", "above_target"):
        target = report.target
        if target is None or target.value != name:
            return False
        preset = Fraction(target.threshold, 10**target.scale)
        exact = Fraction(value, 10**report.scale)
        return exact < preset if kind == "below_target" else exact > preset
    literal = rule.condition.threshold
    assert literal is not None  # the loader sets it for below/above
    exact = Fraction(value, 10**report.scale)
    return exact < literal if kind == "below" else exact > literal


def _apply_rule(rule: Rule, campaigns: tuple[Campaign, ...]) -> tuple[tuple[Campaign, ...], list[str]]:
    out: list[Campaign] = []
    notes: list[str] = []
    for campaign in campaigns:
        chosen = campaign.name in rule.campaigns if rule.campaigns else campaign.active
        if chosen:
            for action in rule.actions:
                campaign = _apply_action(action, campaign, notes)
        out.append(campaign)
    return tuple(out), notes


def _scaled(old: int, pct: Fraction, low: int | None, high: int | None) -> int:
    """``old * (1 + pct/100)`` rounded away from ``old`` and kept within [low, high]."""
    exact = old * (1 + pct / 100)
    if pct > 0:
        if high is not None and old >= high:
            return old
        new = math.ceil(exact)
        if low is not None:
            new = max(new, low)
        return new if high is None else min(new, high)
    if low is not None and old <= low:
        return old
    new = math.floor(exact)
    if high is not None:
        new = min(new, high)
    return new if low is None else max(new, low)


def _apply_action(action: Action, c: Campaign, notes: list[str]) -> Campaign:
    new = c
    if isinstance(action, ChangeBid):
        new = replace(c, max_bid=_scaled(c.max_bid, action.pct, action.min_bid, action.max_bid))
        if new.max_bid != c.max_bid:
            notes.append(f"{c.name}: max_bid {c.max_bid} -> {new.max_bid}")
    elif isinstance(action, ChangeBudget | SetBudget):
        budget = (action.amount if isinstance(action, SetBudget) else
                  _scaled(c.daily_budget, action.pct, action.min_budget, action.max_budget))
        new = replace(c, daily_budget=budget)
        if budget != c.daily_budget:
            notes.append(f"{c.name}: daily_budget {c.daily_budget} -> {budget}")
    elif isinstance(action, AddKeywords):
        present = set(c.keywords)
        room = MAX_KEYWORDS - len(c.keywords)
        added = [k for k in action.keywords if k not in present][: max(room, 0)]
        if added:
            new = replace(c, keywords=c.keywords + tuple(added))
            notes.append(f"{c.name}: add keywords {[k.text for k in added]}")
    elif isinstance(action, RemoveKeywords):
        gone = set(action.texts)
        kept = tuple(k for k in c.keywords if k.text not in gone)
        if kept != c.keywords:
            new = replace(c, keywords=kept)
            notes.append(f"{c.name}: remove keywords {sorted({k.text for k in c.keywords} & gone)}")
    elif isinstance(action, SwitchChannel | AddChannel | RemoveChannel):
        channels = _channels(action, c.channels)
        if channels != c.channels:
            new = replace(c, channels=channels)
            notes.append(f"{c.name}: channels {list(c.channels)} -> {list(channels)}")
    return new


def _channels(action: SwitchChannel | AddChannel | RemoveChannel, old: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(action, AddChannel):
        return old if action.channel in old else (*old, action.channel)
    if isinstance(action, RemoveChannel):
        kept = tuple(ch for ch in old if ch != action.channel)
        return kept if kept else old
    if action.from_ is None:
        return (action.to,)
    if action.from_ not in old:
        return old
    # Replace in place, keeping order; drop the old one if the new one is already there.
    swapped = tuple(action.to if ch == action.from_ else ch for ch in old)
    return tuple(dict.fromkeys(swapped))
