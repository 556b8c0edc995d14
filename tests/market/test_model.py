"""Model values: wire round trips and packing consistency with the contract ABI."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pmkt.chain.contract_api import ACCESS_METHOD_CODES, OPERATION_CODES
from p2pmkt.contracts.abi import OUTPUT_NAME
from p2pmkt.errors import InvalidTransaction
from p2pmkt.market.model import (
    ACCESS_METHODS,
    OPERATIONS,
    Campaign,
    IndicatorSpec,
    ReportingCondition,
    Target,
    Visit,
    parse_report_id,
    report_id,
    value_name_ok,
)

visits = st.builds(
    Visit,
    ip=st.text(min_size=1, max_size=64),
    account=st.text(max_size=256),
    time=st.integers(0, 2**53),
    merchant=st.text(min_size=1, max_size=64),
    method=st.sampled_from(ACCESS_METHODS),
    op=st.sampled_from(OPERATIONS),
    item=st.text(max_size=256),
    amount=st.integers(0, 10**15),
)


@given(visits)
def test_visit_round_trip(v: Visit) -> None:
    assert Visit.from_wire(v.to_wire()) == v


def test_codes_match_the_contract_abi() -> None:
    assert tuple(ACCESS_METHOD_CODES) == ACCESS_METHODS
    assert tuple(OPERATION_CODES) == OPERATIONS
    assert list(ACCESS_METHOD_CODES.values()) == list(range(len(ACCESS_METHODS)))


@given(st.integers(0, 100), st.integers(1, 10**6), st.integers(-(10**9), 10**9), st.integers(0, 18),
       st.sampled_from(["at_least", "at_most"]))
def test_indicator_spec_round_trip(n: int, t: int, threshold: int, scale: int, direction: str) -> None:
    spec = IndicatorSpec("acme", "conv", b"\x01" * 32, (("a", 1), ("b", -2)), ReportingCondition(n, t),
                         Target("conv", threshold, scale, direction))
    assert IndicatorSpec.from_wire(spec.to_wire()) == spec


@given(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True),
       st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True), st.integers(0, 2**63 - 1))
def test_report_id_round_trip(merchant: str, indicator: str, n: int) -> None:
    assert parse_report_id(report_id(merchant, indicator, n)) == (merchant, indicator, n)


CAMPAIGN = {"name": "spring", "keywords": [{"text": "trail boots", "match": "exact"}], "max_bid": 40,
            "channels": ["search"], "daily_budget": 5000, "active": True}


def test_a_campaign_with_a_misspelt_field_is_refused_naming_it() -> None:
    # "budget" for "daily_budget": dropped silently before, so the merchant believed it set.
    wrong = {**CAMPAIGN, "budget": 9000}
    with pytest.raises(InvalidTransaction) as exc:
        Campaign.from_wire(wrong)
    assert exc.value.message == (
        "campaign 'spring' has unknown field ['budget']; its fields are exactly "
        "['active', 'channels', 'daily_budget', 'keywords', 'max_bid', 'name']")
    assert Campaign.from_wire(CAMPAIGN).to_wire() == CAMPAIGN


def test_a_keyword_with_an_extra_field_is_refused_naming_it() -> None:
    wrong = {**CAMPAIGN, "keywords": [{"text": "trail boots", "match": "exact", "bid": 50, "cpc": 3}]}
    with pytest.raises(InvalidTransaction) as exc:
        Campaign.from_wire(wrong)
    assert exc.value.message == (
        "keyword 'trail boots' has unknown fields ['bid', 'cpc']; its fields are exactly ['match', 'text']")


@pytest.mark.parametrize("value", ["conversion-rate", "average_order_value_browser", "Conv", ""])
def test_a_target_on_a_value_no_contract_can_write_is_refused(value: str) -> None:
    # Contracts write 1-24 chars of [a-z0-9_.] (CONTRACTS.md); any other target never matches.
    with pytest.raises(InvalidTransaction, match=r"must be 1-24 chars of a-z 0-9 _ \. \(the names a contract can write"):
        Target.from_wire({"value": value, "threshold": 1, "scale": 0, "direction": "at_least"})


@given(st.text(alphabet="abcz09_.-A ", max_size=26))
def test_target_value_names_are_exactly_the_contract_output_names(name: str) -> None:
    assert value_name_ok(name) == (OUTPUT_NAME.fullmatch(name.encode()) is not None)
