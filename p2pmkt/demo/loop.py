"""The marketing loop without a chain: world → indicator → decide() → new information → world.

Theory of operation
-------------------
On a network the loop runs through blocks: terminal nodes log the world's visits, the
platform's report evaluates the conversion indicator, the merchant-tech agent calls
:func:`p2pmkt.agent.decide` and commits the update, and the world reacts to the new
marketing information. :func:`simulate_loop` runs the same steps as plain function calls, one
*round* per reporting window, so that tests (and ``p2pmkt demo --offline``, if the CLI wants
it) can show that the demo converges and how fast, in milliseconds of CPU.

The indicator here is :func:`conversion_fp`: orders / visits as a fixed-point integer, the
definition of the built-in conversion-rate contract (issue 3). Block time is simulated as
the end of each window; report ids are ``"<merchant>/<indicator>/<round>"`` like the chain's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from p2pmkt.agent.decide import ReportView, decide, note_fired
from p2pmkt.agent.rules import RuleSet
from p2pmkt.demo.world import DemoWorld
from p2pmkt.market.model import MarketingInfo, Target, Visit


def conversion_fp(visits: Sequence[Visit], scale: int = 4) -> int:
    """Orders / visits as a fixed-point integer at ``scale`` (floored); 0 for no visits."""
    if not visits:
        return 0
    orders = sum(1 for v in visits if v.op == "order")
    factor: int = 10**scale
    return orders * factor // len(visits)


@dataclass(frozen=True, slots=True)
class LoopRound:
    """What happened in one reporting window.

    Attributes:
        round: 0-based round number.
        start_ms: window start (block time).
        visits: visits in the window.
        value: the conversion value reported (fixed point).
        missed: whether it missed the target.
        info_version: version of the marketing information the window ran under.
        fired: rules that fired on this round's report.
        changes: the changes they made.
    """

    round: int
    start_ms: int
    visits: int
    value: int
    missed: bool
    info_version: int
    fired: tuple[str, ...]
    changes: tuple[str, ...]


def simulate_loop(
    world: DemoWorld,
    merchant: str,
    info: MarketingInfo,
    rules: RuleSet,
    target: Target,
    *,
    rounds: int,
    window_ms: int,
    start_ms: int = 0,
    indicator: str = "conversion",
    scale: int = 4,
) -> tuple[list[LoopRound], MarketingInfo]:
    """Run ``rounds`` reporting windows of the loop; return them and the final information.

    Each round: the world produces the window's visits under the current information, the
    indicator is computed and judged against ``target``, :func:`decide` runs at the window's
    end (block time), and an update (if any) becomes the next version, caused by the report.
    """
    last: dict[str, int] = {}
    out: list[LoopRound] = []
    t = start_ms
    for n in range(rounds):
        visits = world.visits(merchant, info, t, window_ms)
        value = conversion_fp(visits, scale)
        block_time = t + window_ms
        report = ReportView(
            merchant=merchant,
            indicator=indicator,
            values=((target.value, value),),
            scale=scale,
            missed=target.missed_by(value, scale),
            report_id=f"{merchant}/{indicator}/{n}",
            height=n + 1,
            time=block_time,
            target=target,
        )
        update = decide(rules, report, info, last, block_time)
        out.append(LoopRound(n, t, len(visits), value, report.missed, info.version,
                             update.fired if update else (), update.changes if update else ()))
        if update is not None:
            last = note_fired(last, update, block_time)
            info = MarketingInfo(merchant, info.version + 1, update.campaigns, info.author,
                                 block_time, n + 1, report.report_id)
        t = block_time
    return out, info
