"""``p2pmkt market cycle``: the update-cycle figures of SPEC's headline (issue 6 item 5).

For every automatic update (a marketing version whose ``cause`` is a report) the cycle runs
from the block holding the visit that made the report's condition true to the block holding
the update. The chain evaluates reporting conditions at the end of every block, so that
trigger block is the report's own block; block times come from the stored report and
marketing versions. Wall times are the asked node's own: when it applied each of the two
blocks (``chain.block``'s ``applied_at``), for the blocks it applied since it started.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import trio


def run_cycle(args: argparse.Namespace) -> int:
    return trio.run(_cycle, args)


async def _cycle(args: argparse.Namespace) -> int:
    from p2pmkt.agent import CycleRecord, cycle_stats, format_cycle_stats
    from p2pmkt.cli.client_cmds import resolve
    from p2pmkt.client import open_client
    from p2pmkt.market.model import parse_report_id

    addr, _key = resolve(args)
    records: list[CycleRecord] = []
    applied: dict[int, float | None] = {}  # height → when the node applied it: fetched once
    async with open_client(addr) as c:

        async def applied_at(height: int) -> float | None:
            if height not in applied:
                applied[height] = await _applied_at(c, height)
            return applied[height]

        merchants = args.merchant
        for m in merchants:
            if await c.market_info(m) is None:
                print(f"merchant {m!r} has no marketing information (an unknown merchant, or none "
                      "set yet): no update cycle to measure", file=sys.stderr)
                return 1
            history = await c.market_history(m, limit=min(args.limit, 500))
            reports = {(r["indicator"], r["n"]): r for r in await _all_reports(c, m, args.limit * 4)}
            for info in history:
                if not info.get("cause"):
                    continue
                _, indicator, n = parse_report_id(info["cause"])
                r = reports.get((indicator, n))
                if r is None:
                    continue
                records.append(CycleRecord(
                    merchant=m, trigger_height=r["height"], trigger_time=r["time"],
                    report_height=r["height"], report_time=r["time"],
                    update_height=info["height"], update_time=info["time"],
                    trigger_wall=await applied_at(r["height"]),
                    update_wall=await applied_at(info["height"]),
                ))
    stats = cycle_stats(records)
    print(format_cycle_stats(stats))
    return 0


async def _applied_at(c: Any, height: int) -> float | None:
    """When the node applied ``height``, in seconds, if it knows."""
    ms = (await c.call("chain.block", {"height": height, "body": False})).get("applied_at")
    return None if ms is None else ms / 1000.0


async def _all_reports(c: Any, merchant: str, limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    before = None
    while len(out) < limit:
        page = await c.reports(merchant, limit=500, before=before)
        if not page:
            break
        out.extend(page)
        before = page[-1]["seq"]
    return out
