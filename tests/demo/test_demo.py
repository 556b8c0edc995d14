"""The demo workload: determinism, realistic streams, the response model, and convergence."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from p2pmkt.agent import ReportView, decide, load_rules, note_fired
from p2pmkt.demo import (
    DEMO_MERCHANTS,
    PROFILES,
    TARGETS,
    DemoWorld,
    conversion_fp,
    expected_conversion,
    rules_toml,
    simulate_loop,
    starting_info,
)
from p2pmkt.market.model import Keyword, MarketingInfo, Visit
from p2pmkt.node.workload import calibrated_scale

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
MINUTE = 60_000


def with_campaign(info: MarketingInfo, **changes: object) -> MarketingInfo:
    return dataclasses.replace(info, campaigns=(dataclasses.replace(info.campaigns[0], **changes),))


def test_visits_are_a_pure_function_of_seed_and_inputs() -> None:
    info = starting_info("acme")
    a = DemoWorld(1).visits("acme", info, T0, 5 * MINUTE)
    world = DemoWorld(1)
    world.visits("globex", None, T0, MINUTE)  # another call first changes nothing
    assert world.visits("acme", info, T0, 5 * MINUTE) == a
    assert DemoWorld(2).visits("acme", info, T0, 5 * MINUTE) != a


def test_session_rows_are_valid_visits_in_wire_form_in_time_order() -> None:
    world, info = DemoWorld(6, scale=3), starting_info("acme")
    rows = world.session_rows("acme", info, T0, MINUTE)
    assert len(rows) > 100
    assert all(Visit.from_wire(list(r)).to_wire() == list(r) for r in rows)
    assert [r[2] for r in rows] == sorted(r[2] for r in rows) and rows[0][2] >= T0
    assert world.session_rows("acme", info, T0, MINUTE) == rows  # a function of its inputs


@pytest.mark.parametrize("hour", [3, 9, 15, 21])
def test_calibrated_scale_offers_the_rate_asked_at_any_hour(hour: int) -> None:
    # The world's traffic swings by a third over the day; a stream asked for a rate must
    # offer it whenever it starts (a scale calibrated at one fixed hour once offered half).
    start = T0 - T0 % (24 * 3_600_000) + hour * 3_600_000
    merchants = sorted(DEMO_MERCHANTS)
    world = DemoWorld(7, scale=calibrated_scale(merchants, 2000, at_ms=start))
    offered = sum(len(world.session_rows(m, starting_info(m), start, MINUTE)) for m in merchants) / 60
    assert 1900 < offered < 2100, offered


def test_visits_are_valid_sorted_and_inside_the_window() -> None:
    visits = DemoWorld(3, scale=5).visits("acme", starting_info("acme"), T0, 10 * MINUTE)
    assert len(visits) > 1000
    assert [v.time for v in visits] == sorted(v.time for v in visits)
    assert all(T0 <= v.time < T0 + 10 * MINUTE for v in visits)
    assert all(Visit.from_wire(v.to_wire()) == v for v in visits)
    methods = Counter(v.method for v in visits)
    assert set(methods) == {"browser", "desktop", "app"}
    ops = Counter(v.op for v in visits)
    assert ops["view"] > ops["click"] > ops["cart"] > ops["order"] > 0
    assert ops["search"] > 0 and ops["login"] > 0
    assert all(v.amount > 0 for v in visits if v.op == "order")
    assert all(v.amount == 0 for v in visits if v.op != "order")
    assert sum(1 for v in visits if v.account) > 0


def test_channel_shapes_access_methods() -> None:
    info = with_campaign(starting_info("initech"), channels=("app-store",))
    visits = DemoWorld(4, scale=5).visits("initech", info, T0, 10 * MINUTE)
    assert Counter(v.method for v in visits).most_common(1)[0][0] == "app"


def test_response_model_levers() -> None:
    acme = PROFILES["acme"]
    base = starting_info("acme")
    conv = expected_conversion(acme, base)
    assert conv < TARGETS["acme"].target.threshold / 10**TARGETS["acme"].target.scale  # acme starts below its target
    assert expected_conversion(acme, with_campaign(base, max_bid=80)) > conv  # better placement
    assert expected_conversion(acme, with_campaign(base, channels=("social",))) > conv
    good = (*base.campaigns[0].keywords, Keyword("running shoes", "phrase"))
    assert expected_conversion(acme, with_campaign(base, keywords=good)) > conv
    # A budget cap bounds paid traffic: fewer visits under a tiny budget.
    world = DemoWorld(5, scale=5)
    rich = world.visits("acme", base, T0, 10 * MINUTE)
    poor = world.visits("acme", with_campaign(base, daily_budget=1000), T0, 10 * MINUTE)
    assert len(poor) < 0.6 * len(rich)
    assert conversion_fp([]) == 0


def test_demo_rules_load_against_the_catalog() -> None:
    for merchant in DEMO_MERCHANTS:
        rules = load_rules(rules_toml(merchant), catalog={"conversion"}, merchant=merchant)
        assert rules.merchant == merchant and rules.rules


def test_expected_loop_moves_acme_to_target_step_by_step() -> None:
    """Noise-free: the model's expected conversion under the rules, round by round."""
    profile, target = PROFILES["acme"], TARGETS["acme"].target
    rules = load_rules(rules_toml("acme"))
    info, last, path = starting_info("acme"), {}, []
    for n in range(10):
        value = int(expected_conversion(profile, info) * 10**4)
        path.append(value)
        report = ReportView("acme", "conversion", (("conversion", value),), 4,
                            target.missed_by(value, 4), f"r{n}", n, n * MINUTE, target)
        update = decide(rules, report, info, last, n * MINUTE)
        if update is None:
            break
        last = note_fired(last, update, n * MINUTE)
        info = MarketingInfo("acme", info.version + 1, update.campaigns, b"", 0, 0, f"r{n}")
    assert path[0] < 200 <= path[-1]
    assert 3 <= len(path) <= 8  # visibly several steps, and bounded
    assert path == sorted(path)  # every step helps


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sampled_loop_brings_acme_on_target_within_bounded_rounds(seed: int) -> None:
    # Sampled visits: at scale 10 a window's conversion was noisy enough that ~15 % of seeds
    # missed the bounds below; at scale 30, 20 seeds of 20 passed.
    world = DemoWorld(seed, scale=30)
    rounds, final = simulate_loop(
        world, "acme", starting_info("acme"), load_rules(rules_toml("acme")),
        TARGETS["acme"].target, rounds=10, window_ms=10 * MINUTE, start_ms=T0,
    )
    values = [r.value for r in rounds]
    assert values[0] < 200  # below target at the start
    first_on = next(i for i, v in enumerate(values) if v >= 200)
    assert first_on <= 7
    after = values[first_on:]
    assert sum(v >= 200 for v in after) >= 0.6 * len(after)  # it stays there, noise aside
    assert expected_conversion(PROFILES["acme"], final) >= 0.02
    assert final.version > 1 and final.cause.startswith("acme/")
    assert rounds[0].fired == ("conversion-far-below", "conversion-below-target")


def test_globex_on_target_is_left_alone_and_initech_recovers() -> None:
    world = DemoWorld(11, scale=10)
    rounds, final = simulate_loop(
        world, "globex", starting_info("globex"), load_rules(rules_toml("globex")),
        TARGETS["globex"].target, rounds=4, window_ms=10 * MINUTE, start_ms=T0,
    )
    assert all(not r.missed and not r.fired for r in rounds) and final.version == 1
    rounds, final = simulate_loop(
        world, "initech", starting_info("initech"), load_rules(rules_toml("initech")),
        TARGETS["initech"].target, rounds=6, window_ms=10 * MINUTE, start_ms=T0,
    )
    assert rounds[0].missed and "app-store" in final.campaigns[0].channels
    assert not rounds[-1].missed
