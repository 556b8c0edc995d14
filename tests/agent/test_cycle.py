"""Update-cycle statistics: nearest-rank percentiles in block and wall time."""

from __future__ import annotations

import pytest

from p2pmkt.agent import CycleRecord, cycle_stats, format_cycle_stats, percentile
from p2pmkt.errors import LocalError


def record(i: int, cycle_ms: int, wall: float | None = None) -> CycleRecord:
    return CycleRecord("acme", 10 * i, 1000 * i, 10 * i + 1, 1000 * i + cycle_ms // 2,
                       10 * i + 3, 1000 * i + cycle_ms,
                       trigger_wall=None if wall is None else 100.0 * i,
                       update_wall=None if wall is None else 100.0 * i + wall)


def test_nearest_rank_percentile() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7], 99) == 7
    assert percentile([1, 2, 3], 99) == 3
    with pytest.raises(LocalError, match=r"^percentile of an empty sample$"):
        percentile([], 50)


def test_cycle_stats_block_and_wall() -> None:
    records = [record(i, 400 + 10 * i, wall=0.5 if i % 2 else None) for i in range(100)]
    stats = cycle_stats(records)
    assert (stats.count, stats.block_p50, stats.block_p99, stats.block_max) == (100, 890, 1380, 1390)
    assert (stats.blocks_p50, stats.blocks_p99) == (3, 3)
    assert stats.report_p50 == 445
    assert stats.wall_count == 50 and stats.wall_p50 == pytest.approx(500.0)
    text = format_cycle_stats(stats)
    assert "block time: p50 890 ms  p99 1,380 ms" in text and "wall time:" in text


def test_empty_and_backwards_records() -> None:
    assert format_cycle_stats(cycle_stats([])) == "no automatic updates yet"
    bad = CycleRecord("acme", 5, 0, 4, 0, 6, 0)
    with pytest.raises(LocalError, match=r"heights must not decrease \(5, 4, 6\)"):
        cycle_stats([bad])


def test_updates_the_observer_did_not_see_applied_are_counted_not_dropped() -> None:
    # A node restarted since: it knows no apply time for the older blocks.
    seen = [record(i, 400, wall=0.5) for i in range(3)]
    unseen = [record(i, 400, wall=None) for i in range(3, 5)]
    text = format_cycle_stats(cycle_stats(seen + unseen))
    assert "(3 observed)" in text
    assert "wall time:  not observed for 2 update(s) whose blocks the node applied before it last started" in text
    text = format_cycle_stats(cycle_stats(unseen))
    assert "observed)" not in text and "not observed for 2 update(s)" in text
