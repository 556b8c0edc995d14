"""reports_newest_first and marketing_newest_first: what ``market.reports`` and
``market.history`` answer, page by page, without reading the merchant's whole history (a
live view asks for the newest report every second)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.chain.state import MemoryState, StateReader, WriteBatch
from p2pmkt.market.model import IndicatorSpec, MarketingInfo, Report, ReportingCondition
from p2pmkt.market.store import (
    IndicatorState,
    marketing_newest_first,
    merchant_prefix,
    put_indicator,
    put_marketing,
    put_report,
    reports_newest_first,
)
from p2pmkt.storage import LmdbStore
from p2pmkt.testing.conformance import commit, init
from p2pmkt.wire.cbor import decode


def _report(merchant: str, indicator: str, n: int, height: int) -> Report:
    return Report(merchant, indicator, n, n, n + 1, height, height, (("v", n),), 0, b"\1" * 32,
                  True, "", height, height * 1000, False, "visits")


def _writes(merchant: str, heights: dict[str, list[int]], removed: frozenset[str] = frozenset(),
            state: Any = None) -> WriteBatch:
    """Each indicator's reports at the given (non-decreasing) heights, n = 0, 1, …"""
    batch = WriteBatch(state if state is not None else MemoryState())
    for name, hs in heights.items():
        spec = IndicatorSpec(merchant, name, b"\2" * 32, (), ReportingCondition(10, 0), None)
        put_indicator(batch, IndicatorState(spec, len(hs), 0, 0, active=name not in removed))
        for n, h in enumerate(hs):
            put_report(batch, _report(merchant, name, n, h))
    return batch


def _naive(state: Any, merchant: str, limit: int, before: int | None) -> list[tuple[int, Report]]:
    """The reference: read every report, order them all (what the node did before)."""
    prefix = merchant_prefix(merchant)
    reports = [Report.from_wire(decode(raw)) for _, raw in state.scan("reports", prefix, prefix[:-1] + b"\x01")]
    reports.sort(key=lambda r: (r.height, r.indicator, r.n))
    seqs, ordinal, last = [], 0, -1
    for r in reports:
        ordinal = ordinal + 1 if r.height == last else 0
        last = r.height
        seqs.append(r.height << 16 | ordinal)
    ordered = sorted(zip(seqs, reports, strict=True), key=lambda x: x[0], reverse=True)
    return [(s, r) for s, r in ordered if before is None or s < before][:max(limit, 0)]


heights = st.lists(st.integers(0, 6), max_size=12).map(lambda steps: [sum(steps[:i + 1]) + 1 for i in range(len(steps))])
histories = st.dictionaries(st.sampled_from(["conv", "aov", "views", "a", "z-last"]), heights, max_size=4)


@settings(max_examples=300)
@given(histories, st.integers(0, 30), st.one_of(st.none(), st.integers(0, 80 << 16)), st.data())
def test_a_page_is_what_ordering_every_report_gives(
    history: dict[str, list[int]], limit: int, before: int | None, data: st.DataObject,
) -> None:
    removed = frozenset(data.draw(st.sets(st.sampled_from(sorted(history) or ["none"]))))
    state = MemoryState()
    state.commit(_writes("acme", history, removed))
    state.commit(_writes("other", {"conv": [1, 2, 3]}))  # another merchant's reports stay out
    assert reports_newest_first(state, "acme", limit=limit, before=before) == _naive(state, "acme", limit, before)


@given(histories, st.integers(1, 7))
def test_paging_by_the_last_seq_visits_every_report_once_in_order(history: dict[str, list[int]], size: int) -> None:
    state = MemoryState()
    state.commit(_writes("acme", history))
    seen: list[tuple[int, Report]] = []
    before = None
    while page := reports_newest_first(state, "acme", limit=size, before=before):
        seen += page
        before = page[-1][0]
    assert seen == _naive(state, "acme", 10**6, None)
    assert len(seen) == sum(map(len, history.values()))


class _Counting:
    """A StateReader that counts the values it hands out."""

    def __init__(self, inner: StateReader) -> None:
        self.inner, self.reads = inner, 0

    def get(self, table: str, key: bytes) -> bytes | None:
        self.reads += 1
        return self.inner.get(table, key)

    def scan(self, table: str, start: bytes = b"", end: bytes | None = None) -> Any:
        for item in self.inner.scan(table, start, end):
            self.reads += 1
            yield item


def test_the_newest_report_of_a_long_history_is_read_without_the_history(tmp_path: Path) -> None:
    # Real LMDB; three indicators with 8,000 reports each, several per block.
    history = {name: [1 + n // 3 for n in range(8000)] for name in ("aov", "conv", "views")}
    with LmdbStore.open(tmp_path / "s") as store:
        init(store)
        commit(store, _writes("acme", history, state=store).writes())  # type: ignore[arg-type]
        with store.snapshot() as snap:
            counting = _Counting(snap)
            newest = reports_newest_first(counting, "acme", limit=1)
            assert [(seq, r.indicator, r.n) for seq, r in newest] == [(2667 << 16 | 5, "views", 7999)]
            # the indicators, then each one's reports of the newest block and the one before them
            assert counting.reads <= 3 + 3 * 3, counting.reads
            counting.reads = 0
            page = reports_newest_first(counting, "acme", limit=10, before=1000 << 16)
            assert page == _naive(snap, "acme", 10, 1000 << 16)
            assert counting.reads <= 3 + 3 * (14 + 1 + 10), counting.reads  # + a bisection each


@given(st.integers(0, 40), st.integers(0, 12), st.one_of(st.none(), st.integers(0, 45)))
def test_a_history_page_reads_only_its_versions(versions: int, limit: int, before: int | None) -> None:
    state = MemoryState()
    batch = WriteBatch(state)
    for v in range(1, versions + 1):
        put_marketing(batch, MarketingInfo("acme", v, (), b"\7" * 20, v * 1000, v, ""))
    put_marketing(batch, MarketingInfo("acmex", 1, (), b"\7" * 20, 1, 1, ""))  # a neighbour's
    state.commit(batch)
    counting = _Counting(state)
    page = marketing_newest_first(counting, "acme", limit=limit, before=before)
    top = versions if before is None else min(versions, before - 1)
    assert [i.version for i in page] == list(range(top, 0, -1))[:limit]
    assert counting.reads <= 1 + limit
