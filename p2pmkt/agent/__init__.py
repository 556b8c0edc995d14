"""p2pmkt.agent: the merchant-tech agent's pure parts (SPEC flow 4, issue 6 items 3 and 5).

* :mod:`~p2pmkt.agent.rules`: the TOML mapping-rules format (docs/RULES.md) and
  :func:`load_rules`, which refuses mistakes naming the line at fault.
* :mod:`~p2pmkt.agent.decide`: :func:`decide`, report + current marketing information →
  :class:`ProposedUpdate` or None, with cooldowns in block time.
* :mod:`~p2pmkt.agent.cooldown`: :func:`replay_cooldowns`, the cooldown record rebuilt from
  the merchant's update history on chain (so that a restart forgets nothing).
* :mod:`~p2pmkt.agent.cycle`: update-cycle p50/p99 in block time and wall time.

No clock, no I/O beyond :func:`load_rules` reading a path it is handed; the node's trio loop
(``p2pmkt.node``) feeds committed reports in and submits what comes out.
"""

from p2pmkt.agent.cooldown import PastUpdate, fired_in, replay_cooldowns
from p2pmkt.agent.cycle import (
    CycleRecord,
    CycleStats,
    cycle_stats,
    format_cycle_stats,
    percentile,
)
from p2pmkt.agent.decide import (
    ProposedUpdate,
    ReportView,
    applies,
    decide,
    note_fired,
    select_value,
)
from p2pmkt.agent.rules import (
    FORMAT_VERSION,
    WHEN,
    Action,
    AddChannel,
    AddKeywords,
    ChangeBid,
    ChangeBudget,
    Condition,
    RemoveChannel,
    RemoveKeywords,
    Rule,
    RulesError,
    RuleSet,
    SetBudget,
    SwitchChannel,
    choose_merchant,
    load_rules,
    unconfigured,
)
from p2pmkt.market.model import DIRECTIONS, Target

__all__ = [
    "DIRECTIONS",
    "FORMAT_VERSION",
    "WHEN",
    "Action",
    "AddChannel",
    "AddKeywords",
    "ChangeBid",
    "ChangeBudget",
    "Condition",
    "CycleRecord",
    "CycleStats",
    "PastUpdate",
    "ProposedUpdate",
    "RemoveChannel",
    "RemoveKeywords",
    "ReportView",
    "Rule",
    "RuleSet",
    "RulesError",
    "SetBudget",
    "SwitchChannel",
    "Target",
    "applies",
    "choose_merchant",
    "cycle_stats",
    "decide",
    "fired_in",
    "format_cycle_stats",
    "load_rules",
    "note_fired",
    "percentile",
    "replay_cooldowns",
    "select_value",
    "unconfigured",
]
