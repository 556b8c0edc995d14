"""End-of-block reports: conditions, windows, targets, failures, determinism, market updates."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.market.conditions import is_due
from p2pmkt.market.events import MarketingUpdated, ReportWritten
from p2pmkt.market.model import Report, ReportingCondition, Target
from p2pmkt.market.store import get_indicator, get_marketing, get_marketing_version, get_report
from p2pmkt.testing.builders import (
    FAKE_CODE,
    FakeRuntime,
    LocalChain,
    assert_changed_nothing,
    campaign,
    indicator,
    visit,
)
from p2pmkt.testing.keys import dev_address, dev_genesis

CODE_HASH = hashlib.sha256(FAKE_CODE).digest()
AT_LEAST_2PCT = {"value": "conv", "threshold": 200, "scale": 4, "direction": "at_least"}


def make_chain(**params: int) -> LocalChain:
    g = dev_genesis()
    chain = LocalChain(dataclasses.replace(g, params=dataclasses.replace(g.params, **params)),
                       runtime=FakeRuntime())
    chain.deploy()
    return chain


def visits(chain: LocalChain, n: int, *, orders: int = 0, merchant: str = "acme", time: int | None = None) -> list[ReportWritten]:
    batch = [visit(merchant, "order", amount=1000) for _ in range(orders)]
    batch += [visit(merchant) for _ in range(n - orders)]
    result = chain.block([chain.tx("terminal", "visit.batch", {"visits": batch})], time=time)
    assert result.receipts[0].status == "ok"
    return [e for e in result.events if isinstance(e, ReportWritten)]


def configure(chain: LocalChain, **kw: Any) -> None:
    assert chain.run("acme-ops", "indicator.configure", indicator(code=CODE_HASH, **kw)).status == "ok"


def test_report_every_n_visits_covers_the_window_since_the_last() -> None:
    chain = make_chain()
    visits(chain, 3)  # before configuration: not covered
    configure(chain, every_visits=10, params={"scaled": 1}, target=AT_LEAST_2PCT)
    assert visits(chain, 9) == []
    (event,) = visits(chain, 1, orders=1)
    r = event.report
    assert (r.merchant, r.indicator, r.n, r.from_seq, r.to_seq, r.trigger) == ("acme", "conversion", 0, 3, 13, "visits")
    assert r.ok and r.value("visits") == 10 and r.value("orders") == 1
    assert r.value("conv") == 1000 and r.scale == 4  # 10% >= 2%: target met
    assert not r.missed
    assert r.by == "platform"
    assert r.height == chain.head.height and r.time == chain.head.time == r.to_time
    assert get_report(chain.state, "acme", "conversion", 0) == r
    ind = get_indicator(chain.state, "acme", "conversion")
    assert ind is not None and (ind.next_n, ind.from_seq, ind.last_time) == (1, 13, r.time)


def test_a_missed_target_is_flagged() -> None:
    chain = make_chain()
    configure(chain, every_visits=5, target=AT_LEAST_2PCT)
    (event,) = visits(chain, 5)
    assert event.report.value("conv") == 0 and event.report.missed


def test_time_condition_uses_block_time_and_needs_a_visit() -> None:
    chain = make_chain()
    configure(chain, every_visits=0, every_ms=1000)
    t0 = chain.head.time
    assert chain.block([], time=t0 + 5000).events == ()  # due by time, but nothing to report on
    assert visits(chain, 1, time=t0 + 5100)[0].report.trigger == "time"
    assert visits(chain, 1, time=t0 + 5200) == []  # only 100 ms later
    (event,) = visits(chain, 1, time=t0 + 6100)
    assert (event.report.from_seq, event.report.to_seq, event.report.from_time) == (1, 3, t0 + 5100)


def test_window_is_bounded_and_backlog_is_reported_in_order() -> None:
    chain = make_chain(max_report_window=4)
    configure(chain, every_visits=1)
    (event,) = visits(chain, 10)
    assert (event.report.from_seq, event.report.to_seq) == (0, 4)
    (event,) = chain.block([]).events
    assert isinstance(event, ReportWritten)
    assert (event.report.from_seq, event.report.to_seq) == (4, 8)


def test_a_failing_contract_writes_a_failed_report_and_the_chain_goes_on() -> None:
    chain = make_chain()
    trap = FAKE_CODE + b"trap"
    chain.deploy(trap)
    assert chain.run("acme-ops", "indicator.configure", indicator(
        code=hashlib.sha256(trap).digest(), name="broken", every_visits=1)).status == "ok"
    configure(chain, every_visits=1)
    events = visits(chain, 2)
    by_name = {e.report.indicator: e.report for e in events}
    assert [e.report.indicator for e in events] == ["broken", "conversion"]  # (merchant, name) order
    assert not by_name["broken"].ok and by_name["broken"].error == "trap: unreachable"
    assert by_name["broken"].values == () and not by_name["broken"].missed
    assert by_name["conversion"].ok


def test_removed_indicator_stops_and_keeps_its_numbering() -> None:
    chain = make_chain()
    configure(chain, every_visits=1)
    visits(chain, 1)
    chain.run("acme-ops", "indicator.remove", {"merchant": "acme", "name": "conversion"})
    assert visits(chain, 1) == []
    configure(chain, every_visits=1)
    (event,) = visits(chain, 1)
    assert event.report.n == 1
    assert get_report(chain.state, "acme", "conversion", 0) is not None


def test_merchants_are_independent() -> None:
    chain = make_chain()
    configure(chain, every_visits=2)
    assert visits(chain, 5, merchant="globex") == []


def test_same_blocks_same_reports_same_roots() -> None:
    a, b = make_chain(), make_chain()
    for chain in (a, b):
        configure(chain, every_visits=3, target=AT_LEAST_2PCT)
        for i in range(4):
            visits(chain, 2 + i, orders=i % 2, time=chain.head.time + 100)
    assert [r.state_root for r in a.results] == [r.state_root for r in b.results]


# --- market.update -------------------------------------------------------------------------


def _update(chain: LocalChain, signer: str = "acme-tech", **kw: Any) -> Any:
    payload = {"merchant": "acme", "base_version": 0, "campaigns": [campaign()], "cause": ""}
    payload.update(kw)
    return chain.block([chain.tx(signer, "market.update", payload)])


def test_automatic_update_records_its_cause() -> None:
    chain = make_chain()
    configure(chain, every_visits=5, target=AT_LEAST_2PCT)
    (event,) = visits(chain, 5)
    assert event.report.missed
    result = _update(chain, cause=event.report.id, campaigns=[campaign(max_bid=132)])
    (updated,) = [e for e in result.events if isinstance(e, MarketingUpdated)]
    info = get_marketing(chain.state, "acme")
    assert info == updated.info
    assert info is not None
    assert (info.version, info.cause, info.author, info.height, info.time) == (
        1, "acme/conversion/0", dev_address("acme-tech"), chain.head.height, chain.head.time)
    assert info.campaigns[0].max_bid == 132
    assert get_marketing_version(chain.state, "acme", 1) == info


def test_versions_form_a_history() -> None:
    chain = make_chain()
    for version in range(3):
        assert _update(chain, base_version=version, campaigns=[campaign(max_bid=100 + version)]).receipts[0].status == "ok"
    history = [get_marketing_version(chain.state, "acme", v) for v in (1, 2, 3)]
    assert [info.campaigns[0].max_bid for info in history if info is not None] == [100, 101, 102]
    assert get_marketing_version(chain.state, "acme", 4) is None


@pytest.mark.parametrize(
    ("signer", "changes", "reason", "message"),
    [
        ("globex-tech", {}, "wrong_merchant", r"holds merchant-tech for 'globex', not for 'acme'$"),
        ("acme-ops", {}, "missing_role", r"does not hold merchant-tech for 'acme'"),
        ("acme-tech", {"base_version": 3}, "stale_version", r"^market.update: marketing info of 'acme' is at version 0, but the update is based on version 3; read the current version and resubmit$"),
        ("acme-tech", {"cause": "globex/conversion/0"}, "bad_cause", r"^market.update: cause 'globex/conversion/0' is a report of 'globex', not of 'acme'$"),
        ("acme-tech", {"cause": "acme/conversion/9"}, "unknown_cause", r"^market.update: cause 'acme/conversion/9' names no report on chain$"),
        ("acme-tech", {"cause": "yesterday"}, "bad_cause", r"^report id 'yesterday' must look like 'merchant/indicator/n'$"),
        ("acme-tech", {"campaigns": [campaign("a"), campaign("a")]}, "bad_payload", r"^market.update: two campaigns have the same name$"),
        ("acme-tech", {"campaigns": [campaign(channels=["tv"])]}, "bad_payload", r"channel 'tv' is not one of"),
        ("acme-tech", {"campaigns": [campaign(max_bid=-1)]}, "bad_payload", r"max_bid -1 is outside"),
        ("acme-tech", {"campaigns": [{"name": "x"}]}, "bad_payload", r"field 'keywords' must be list"),
        ("acme-tech", {"campaigns": [campaign()] * 101}, "bad_payload", r"'campaigns' must be an array of at most 100 campaigns$"),
        ("acme-tech", {"base_version": -1}, "bad_payload", r"'base_version' must be the version"),
        ("acme-tech", {"merchant": "nobody"}, "wrong_merchant", r"not for 'nobody'$"),
    ],
)
def test_hostile_market_updates(signer: str, changes: dict[str, Any], reason: str, message: str) -> None:
    chain = make_chain()
    result = _update(chain, signer, **changes)
    receipt = result.receipts[0]
    assert receipt.reason == reason, receipt
    assert re.search(message, receipt.message), receipt.message
    assert_changed_nothing(result)
    assert get_marketing(chain.state, "acme") is None


# --- Pure pieces -----------------------------------------------------------------------------


@given(n=st.integers(0, 50), t=st.integers(0, 5000), since=st.integers(-5, 100),
       last=st.integers(0, 10_000), now=st.integers(0, 20_000))
def test_is_due_matches_its_definition(n: int, t: int, since: int, last: int, now: int) -> None:
    if n == 0 and t == 0:
        return
    got = is_due(ReportingCondition(n, t), visits_since=since, last_time=last, now=now)
    by_visits = since > 0 and n > 0 and since >= n
    by_time = since > 0 and t > 0 and now - last >= t
    assert got == ("visits" if by_visits else "time" if by_time else None)


@settings(max_examples=200)
@given(value=st.integers(-(10**12), 10**12), vs=st.integers(0, 8),
       threshold=st.integers(-(10**12), 10**12), ts=st.integers(0, 8),
       direction=st.sampled_from(["at_least", "at_most"]))
def test_target_comparison_is_exact_across_scales(value: int, vs: int, threshold: int, ts: int, direction: str) -> None:
    from fractions import Fraction

    target = Target("conv", threshold, ts, direction)
    v, th = Fraction(value, 10**vs), Fraction(threshold, 10**ts)
    assert target.missed_by(value, vs) == (v < th if direction == "at_least" else v > th)


def test_report_wire_round_trip() -> None:
    r = Report("acme", "conv", 3, 10, 20, 1, 2, (("conv", 5),), 4, b"\x01" * 32, True, "", 9, 2, True, "visits")
    assert Report.from_wire(r.to_wire()) == r
    assert r.id == "acme/conv/3"
