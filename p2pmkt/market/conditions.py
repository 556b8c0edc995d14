"""Is an indicator's report due? A pure function of chain data and block time (SPEC flow 3).

Every validator evaluates this at the end of every block with the same inputs (visit counters
from state, the block's time), so every validator writes the same reports. The local clock
never enters: a node that is slow, or replays history a year later, decides identically.

Rules:

* ``every_visits = N > 0``: due once at least N visits of the merchant arrived since the
  window start. A block that brings 5,000 visits with N = 100 yields **one** report over all
  of them (at most one report per indicator per block), not fifty.
* ``every_ms = T > 0``: due once at least T ms of block time passed since the last report
  (or configuration), **and** at least one visit arrived: a report over an empty window says
  nothing, and an idle merchant should not fill the chain with empty reports.
* Both set: due when either holds; the visit trigger is named first when both hold.
"""

from __future__ import annotations

from p2pmkt.market.model import ReportingCondition

TRIGGER_VISITS = "visits"
TRIGGER_TIME = "time"


def is_due(condition: ReportingCondition, *, visits_since: int, last_time: int, now: int) -> str | None:
    """Return ``"visits"`` or ``"time"`` when a report is due, else None.

    Args:
        condition: the indicator's reporting condition.
        visits_since: visits of the merchant not yet covered by a report of this indicator.
        last_time: block time (ms) of the last report or of configuration.
        now: block time (ms) of the block being applied.
    """
    if visits_since <= 0:
        return None
    if condition.every_visits and visits_since >= condition.every_visits:
        return TRIGGER_VISITS
    if condition.every_ms and now - last_time >= condition.every_ms:
        return TRIGGER_TIME
    return None
