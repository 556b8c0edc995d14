"""Model values: wire round trips and packing consistency with the contract ABI."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from p2pmkt.chain.contract_api import ACCESS_METHOD_CODES, OPERATION_CODES
from p2pmkt.market.model import (
    ACCESS_METHODS,
    OPERATIONS,
    IndicatorSpec,
    ReportingCondition,
    Target,
    Visit,
    parse_report_id,
    report_id,
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
