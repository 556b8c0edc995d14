"""replay_cooldowns(): the cooldown record rebuilt from the chain's history of updates equals
the record of an agent that never stopped, after any run of reports."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.agent import (
    PastUpdate,
    ReportView,
    Target,
    decide,
    fired_in,
    load_rules,
    note_fired,
    replay_cooldowns,
)
from p2pmkt.market.model import Campaign, MarketingInfo

TARGET = Target("conversion", 200, 4, "at_least")
START = MarketingInfo("acme", 1, (Campaign("spring", (), 100, ("display",), 20000),), b"", 0, 1)
RULES = load_rules("""\
merchant = "acme"

[[rule]]
name = "far-below"
indicator = "conversion"
below = 0.01
cooldown_ms = 30000
actions = [{ switch_channel = "social" }]

[[rule]]
name = "below"
indicator = "conversion"
when = "below_target"
cooldown_ms = 20000
actions = [{ raise_bid_pct = 5, max_bid = 300 }]

[[rule]]
name = "met"
indicator = "conversion"
when = "met"
cooldown_ms = 45000
actions = [{ lower_budget_pct = 5, min_budget = 100 }]
""")


def view(n: int, value: int, time: int) -> ReportView:
    return ReportView("acme", "conversion", (("conversion", value),), 4, TARGET.missed_by(value, 4),
                      f"acme/conversion/{n}", n + 1, time, TARGET)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(1, 25_000)), max_size=30))
def test_the_replayed_record_is_the_live_one_after_every_report(steps: list[tuple[int, int]]) -> None:
    live: dict[str, int] = {}
    info, history, t = START, [], 0
    for n, (value, gap) in enumerate(steps):
        t += gap
        report = view(n, value, t)
        update = decide(RULES, report, info, live, t)
        if update is not None:
            live = note_fired(live, update, t)
            after = MarketingInfo("acme", info.version + 1, update.campaigns, b"", t + 100, n + 2,
                                  report.report_id)
            history.append(PastUpdate(info, after, report))
            info = after
        assert replay_cooldowns(RULES, history) == live
        # Folding in pieces (as the node does, per batch of versions) changes nothing.
        half = len(history) // 2
        assert replay_cooldowns(RULES, history[half:], replay_cooldowns(RULES, history[:half])) == live


def test_an_update_the_rules_no_longer_explain_stamps_every_rule_that_applied() -> None:
    report = view(0, 50, 10_000)  # 0.5 %: far below and below target
    made = decide(RULES, report, START, {}, report.time)
    assert made is not None and made.fired == ("far-below", "below")
    past = PastUpdate(START, MarketingInfo("acme", 2, made.campaigns, b"", 10_100, 2, report.report_id), report)
    assert fired_in(RULES, past, {}) == ("far-below", "below")

    # Since then the bid rule was edited: the replay no longer gives the chain's campaigns, so
    # both rules whose condition held are taken to have fired (never sooner than they would).
    edited = load_rules("""\
merchant = "acme"

[[rule]]
name = "below"
indicator = "conversion"
when = "below_target"
cooldown_ms = 20000
actions = [{ raise_bid_pct = 50, max_bid = 300 }]

[[rule]]
name = "met"
indicator = "conversion"
when = "met"
cooldown_ms = 45000
actions = [{ lower_budget_pct = 5, min_budget = 100 }]
""")
    assert fired_in(edited, past, {}) == ("below",)
    assert replay_cooldowns(edited, [past]) == {"below": 10_000}

    # A manual update that cites a report (nothing the rules would do) cools the rules too.
    manual = PastUpdate(START, MarketingInfo("acme", 2, (), b"", 10_100, 2, report.report_id), report)
    assert replay_cooldowns(RULES, [manual], {"met": 1}) == {"met": 1, "far-below": 10_000, "below": 10_000}
    # ...but not a rule whose condition did not hold, nor for a failed report.
    assert fired_in(RULES, replace(manual, report=replace(report, ok=False)), {}) == ()
    met = view(1, 300, 20_000)
    assert fired_in(RULES, PastUpdate(START, manual.after, met), {}) == ("met",)
