"""Update-cycle statistics: p50/p99 from "visit made the condition true" to "update committed".

Theory of operation
-------------------
The SPEC's headline figure is the **update cycle**: from the block holding the visit that
makes a reporting condition true to the block holding the resulting marketing update (issue 6
item 5). Every automatic update records the heights of its report and of that trigger visit;
the node turns those into :class:`CycleRecord` values (block times from the headers, wall
times where the local node observed them) and ``p2pmkt market cycle`` prints
:func:`cycle_stats`.

Two clocks are reported and never mixed:

* **block time** (ms, from block headers): what every node agrees on; the cycle is
  ``update_time - trigger_time``;
* **wall time** (seconds on one observer's clock, e.g. when the observing node applied the
  trigger block and the update block): what a user feels, and includes commit latency that
  block time hides. Records without both wall times are left out of the wall figures.

Percentiles use the nearest-rank method on the sorted sample (the value at rank
``ceil(p/100 * n)``): an actual observation, no interpolation, deterministic; with fewer
than 100 records p99 is the maximum. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from p2pmkt.errors import LocalError


@dataclass(frozen=True, slots=True)
class CycleRecord:
    """One automatic update and the chain facts that bound its cycle.

    Attributes:
        merchant: merchant id.
        trigger_height: block holding the visit that made the reporting condition true.
        trigger_time: that block's time, ms.
        report_height: block holding the report.
        report_time: that block's time, ms.
        update_height: block holding the marketing update.
        update_time: that block's time, ms.
        trigger_wall: observer's wall time (s) when the trigger block was applied, if known.
        update_wall: observer's wall time (s) when the update block was applied, if known.
    """

    merchant: str
    trigger_height: int
    trigger_time: int
    report_height: int
    report_time: int
    update_height: int
    update_time: int
    trigger_wall: float | None = None
    update_wall: float | None = None

    def check(self) -> None:
        """Raises LocalError when the heights or times run backwards."""
        if not self.trigger_height <= self.report_height <= self.update_height:
            raise LocalError(
                f"cycle record of {self.merchant!r}: heights must not decrease "
                f"({self.trigger_height}, {self.report_height}, {self.update_height})"
            )
        if not self.trigger_time <= self.report_time <= self.update_time:
            raise LocalError(f"cycle record of {self.merchant!r}: block times must not decrease")


@dataclass(frozen=True, slots=True)
class CycleStats:
    """Summary of a set of update cycles (ms unless named otherwise; None without data).

    Attributes:
        count: records summarised.
        block_p50, block_p99, block_max: update cycle in block time.
        report_p50, report_p99: trigger → report part, block time.
        blocks_p50, blocks_p99: update cycle in blocks (height difference).
        wall_count: records with both wall times.
        wall_p50, wall_p99, wall_max: update cycle in the observer's wall time.
    """

    count: int
    block_p50: int | None
    block_p99: int | None
    block_max: int | None
    report_p50: int | None
    report_p99: int | None
    blocks_p50: int | None
    blocks_p99: int | None
    wall_count: int
    wall_p50: float | None
    wall_p99: float | None
    wall_max: float | None


def percentile(sorted_values: Sequence[float], p: int) -> float:
    """Nearest-rank ``p``-th percentile (1 <= p <= 100) of an ascending, non-empty sample."""
    if not sorted_values:
        raise LocalError("percentile of an empty sample")
    if not 1 <= p <= 100:
        raise LocalError(f"percentile must be in [1, 100], got {p}")
    rank = -(-p * len(sorted_values) // 100)  # ceil without floats
    return sorted_values[rank - 1]


def cycle_stats(records: Iterable[CycleRecord]) -> CycleStats:
    """Summarise ``records``; see the module docstring for the method.

    Raises:
        LocalError: a record whose heights or block times run backwards.
    """
    items = list(records)
    for record in items:
        record.check()
    block = sorted(r.update_time - r.trigger_time for r in items)
    report = sorted(r.report_time - r.trigger_time for r in items)
    blocks = sorted(r.update_height - r.trigger_height for r in items)
    wall = sorted(
        (r.update_wall - r.trigger_wall) * 1000.0
        for r in items
        if r.update_wall is not None and r.trigger_wall is not None
    )

    def pick(values: list[int], p: int) -> int | None:
        return int(percentile(values, p)) if values else None

    def pick_wall(p: int) -> float | None:
        return percentile(wall, p) if wall else None

    return CycleStats(
        count=len(items),
        block_p50=pick(block, 50),
        block_p99=pick(block, 99),
        block_max=block[-1] if block else None,
        report_p50=pick(report, 50),
        report_p99=pick(report, 99),
        blocks_p50=pick(blocks, 50),
        blocks_p99=pick(blocks, 99),
        wall_count=len(wall),
        wall_p50=pick_wall(50),
        wall_p99=pick_wall(99),
        wall_max=wall[-1] if wall else None,
    )


def format_cycle_stats(stats: CycleStats) -> str:
    """Render :class:`CycleStats` as the few lines ``p2pmkt market cycle`` prints."""
    if stats.count == 0:
        return "no automatic updates yet"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f} ms"

    lines = [
        f"updates: {stats.count}",
        f"block time: p50 {ms(stats.block_p50)}  p99 {ms(stats.block_p99)}  max {ms(stats.block_max)}"
        f"  (trigger->report p50 {ms(stats.report_p50)})",
        f"blocks:     p50 {stats.blocks_p50}  p99 {stats.blocks_p99}",
    ]
    if stats.wall_count:
        lines.append(
            f"wall time:  p50 {ms(stats.wall_p50)}  p99 {ms(stats.wall_p99)}  max {ms(stats.wall_max)}"
            f"  ({stats.wall_count} observed)"
        )
    unseen = stats.count - stats.wall_count
    if unseen:
        # The observer keeps its apply times in memory: say so rather than drop the line.
        lines.append(
            f"wall time:  not observed for {unseen} update(s) whose blocks the node applied before it "
            "last started (ask a node that has been up since, or wait for new updates)"
        )
    return "\n".join(lines)
