"""decide(): conditions, cooldowns in block time, and each action's arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pmkt.agent import ReportView, Target, decide, load_rules, note_fired
from p2pmkt.errors import LocalError
from p2pmkt.market.model import Campaign, Keyword, MarketingInfo

SPRING = Campaign("spring", (Keyword("shoes"),), max_bid=100, channels=("search", "display"), daily_budget=20000)
AUTUMN = Campaign("autumn", (), max_bid=50, channels=("search",), daily_budget=5000, active=False)
INFO = MarketingInfo("acme", 3, (SPRING, AUTUMN), b"\x01" * 20, 1000, 7)


def report(value: int = 150, *, missed: bool = True, target: Target | None = None, **kw: object) -> ReportView:
    fields: dict[str, object] = {
        "merchant": "acme", "indicator": "conversion", "values": (("conversion", value),),
        "scale": 4, "missed": missed, "report_id": "r-9", "height": 40, "time": 500_000,
        "target": target if target is not None else Target("conversion", 200, 4, "at_least"),
    }
    fields.update(kw)
    return ReportView(**fields)  # type: ignore[arg-type]


def rules(body: str, head: str = 'indicator = "conversion"\n'):  # type: ignore[no-untyped-def]
    return load_rules("[[rule]]\nname = \"r\"\n" + head + body)


RAISE = rules('cooldown_ms = 60000\nactions = [{ raise_bid_pct = 10, max_bid = 115 }, { add_keywords = ["trail"] }]\n')


def test_missed_report_raises_bid_and_adds_keyword() -> None:
    update = decide(RAISE, report(), INFO, {}, 500_000)
    assert update is not None
    spring, autumn = update.campaigns
    assert spring.max_bid == 110
    assert spring.keywords == (Keyword("shoes"), Keyword("trail"))
    assert autumn == AUTUMN  # inactive campaigns are left alone unless named
    assert (update.fired, update.cause, update.base_version, update.merchant) == (("r",), "r-9", 3, "acme")
    assert update.changes == ("spring: max_bid 100 -> 110 (r)", "spring: add keywords ['trail'] (r)")


def test_met_report_does_not_fire() -> None:
    assert decide(RAISE, report(250, missed=False), INFO, {}, 500_000) is None


def test_failed_or_foreign_reports_never_fire() -> None:
    assert decide(RAISE, report(ok=False), INFO, {}, 500_000) is None
    assert decide(RAISE, report(indicator="aov"), INFO, {}, 500_000) is None
    scoped = load_rules('merchant = "globex"\n[[rule]]\nindicator = "conversion"\nactions = [{ add_channel = "email" }]\n')
    assert decide(scoped, report(), INFO, {}, 500_000) is None
    with pytest.raises(LocalError, match=r"^marketing info of 'acme' given for a report of 'x'$"):
        decide(RAISE, report(merchant="x"), INFO, {}, 500_000)


def test_cooldown_counts_block_time() -> None:
    last = {"r": 450_000}
    assert decide(RAISE, report(), INFO, last, 509_999) is None
    assert decide(RAISE, report(), INFO, last, 510_000) is not None


def test_note_fired_stamps_block_time() -> None:
    update = decide(RAISE, report(), INFO, {"other": 1}, 500_000)
    assert update is not None
    assert note_fired({"other": 1}, update, 500_000) == {"other": 1, "r": 500_000}


def test_bid_stops_at_its_bound_and_then_nothing_fires() -> None:
    info = INFO
    bids = []
    for _ in range(4):
        update = decide(rules('actions = [{ raise_bid_pct = 10, max_bid = 115 }]\n'), report(), info, {}, 0)
        if update is None:
            break
        info = MarketingInfo("acme", info.version + 1, update.campaigns, b"", 0, 0)
        bids.append(info.campaigns[0].max_bid)
    assert bids == [110, 115]


@pytest.mark.parametrize(
    ("action", "bid", "expected"),
    [
        ("{ raise_bid_pct = 10, max_bid = 1000 }", 5, 6),         # rounds up: always moves
        ("{ raise_bid_pct = 10, max_bid = 50 }", 80, 80),         # never lowers when raising
        ("{ raise_bid_pct = 10, max_bid = 50, min_bid = 20 }", 0, 20),  # from 0 to the floor
        ("{ lower_bid_pct = 10, min_bid = 0 }", 5, 4),            # rounds down
        ("{ lower_bid_pct = 50, min_bid = 30 }", 40, 30),
        ("{ lower_bid_pct = 50, min_bid = 30 }", 20, 20),         # never raises when lowering
    ],
)
def test_bid_arithmetic(action: str, bid: int, expected: int) -> None:
    info = MarketingInfo("acme", 1, (Campaign("c", max_bid=bid),), b"", 0, 0)
    update = decide(rules(f"actions = [{action}]\n"), report(), info, {}, 0)
    got = bid if update is None else update.campaigns[0].max_bid
    assert got == expected


def test_budget_actions() -> None:
    update = decide(rules('actions = [{ lower_budget_pct = 12.5, min_budget = 1000 }]\n'), report(), INFO, {}, 0)
    assert update is not None and update.campaigns[0].daily_budget == 17500
    update = decide(rules("actions = [{ set_budget_cap = 900 }]\n"), report(), INFO, {}, 0)
    assert update is not None and update.campaigns[0].daily_budget == 900


@pytest.mark.parametrize(
    ("action", "channels"),
    [
        ('{ switch_channel = "social" }', ("social",)),
        ('{ switch_channel = "social", from = "display" }', ("search", "social")),
        ('{ switch_channel = "search", from = "display" }', ("search",)),
        ('{ switch_channel = "social", from = "email" }', ("search", "display")),
        ('{ add_channel = "video" }', ("search", "display", "video")),
        ('{ remove_channel = "display" }', ("search",)),
    ],
)
def test_channel_actions(action: str, channels: tuple[str, ...]) -> None:
    update = decide(rules(f"actions = [{action}]\n"), report(), INFO, {}, 0)
    got = INFO.campaigns[0].channels if update is None else update.campaigns[0].channels
    assert got == channels


def test_last_channel_is_never_removed() -> None:
    info = MarketingInfo("acme", 1, (Campaign("c", channels=("search",)),), b"", 0, 0)
    assert decide(rules('actions = [{ remove_channel = "search" }]\n'), report(), info, {}, 0) is None


def test_keywords_add_once_and_remove_by_text() -> None:
    update = decide(rules('actions = [{ add_keywords = ["shoes", "boots"] }, { remove_keywords = ["shoes"] }]\n'),
                    report(), INFO, {}, 0)
    assert update is not None and update.campaigns[0].keywords == (Keyword("boots"),)


def test_named_campaigns_include_inactive_ones() -> None:
    update = decide(rules('campaigns = ["autumn", "nope"]\nactions = [{ add_channel = "email" }]\n'),
                    report(), INFO, {}, 0)
    assert update is not None
    assert update.campaigns == (SPRING, Campaign("autumn", (), 50, ("search", "email"), 5000, False))


@pytest.mark.parametrize(
    ("condition", "value", "fires"),
    [
        ('when = "below_target"', 199, True),
        ('when = "below_target"', 200, False),
        ('when = "above_target"', 201, True),
        ("below = 0.02", 199, True),        # 199 / 10**4 = 0.0199
        ("below = 0.02", 200, False),
        ("above = 0.02", 201, True),
        ('when = "met"', 300, True),
    ],
)
def test_conditions(condition: str, value: int, fires: bool) -> None:
    ruleset = rules(f'{condition}\nactions = [{{ add_channel = "email" }}]\n')
    missed = value < 200
    assert (decide(ruleset, report(value, missed=missed), INFO, {}, 0) is not None) is fires


def test_value_selection() -> None:
    multi = report(values=(("ctr", 500), ("conversion", 100)), target=None)
    by_name = rules('value = "ctr"\nbelow = 0.06\nactions = [{ add_channel = "email" }]\n')
    assert decide(by_name, multi, INFO, {}, 0) is not None
    by_indicator = rules('below = 0.02\nactions = [{ add_channel = "email" }]\n')
    assert decide(by_indicator, multi, INFO, {}, 0) is not None  # "conversion" = 0.01
    absent = rules('value = "aov"\nbelow = 1\nactions = [{ add_channel = "email" }]\n')
    assert decide(absent, multi, INFO, {}, 0) is None


def test_target_direction() -> None:
    # A target at another scale than the report is compared exactly.
    coarse = rules('when = "below_target"\nactions = [{ add_channel = "email" }]\n')
    target = Target("conversion", 2, 2, "at_least")  # 0.02
    assert decide(coarse, report(199, target=target), INFO, {}, 0) is not None
    assert decide(coarse, report(200, target=target), INFO, {}, 0) is None


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=999),
       st.integers(min_value=0, max_value=10**9), st.booleans())
def test_bid_changes_respect_bounds(bid: int, pct: int, bound: int, raising: bool) -> None:
    if raising:
        action = f"{{ raise_bid_pct = {pct}, max_bid = {bound} }}"
    else:
        action = f"{{ lower_bid_pct = {min(pct, 99)}, min_bid = {bound} }}"
    info = MarketingInfo("acme", 1, (Campaign("c", max_bid=bid),), b"", 0, 0)
    update = decide(rules(f"actions = [{action}]\n"), report(), info, {}, 0)
    new = bid if update is None else update.campaigns[0].max_bid
    if raising:
        assert new >= bid and (new <= bound or new == bid)
    else:
        assert new <= bid and (new >= bound or new == bid)


def test_report_view_from_chain_report() -> None:
    from p2pmkt.market.model import Report

    chain_report = Report("acme", "conversion", 5, 0, 10, 0, 9, (("conversion", 150),), 4,
                          b"\x00" * 32, True, "", 40, 500_000, True, "visits")
    target = Target("conversion", 200, 4, "at_least")
    view = ReportView.from_report(chain_report, target)
    assert view == report(150, report_id="acme/conversion/5", height=40, time=500_000)
