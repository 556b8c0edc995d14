"""p2pmkt.market: the SPEC's domain: visits, indicators, reports, marketing information.

Pure: transaction handlers (:mod:`~p2pmkt.market.apply`), schemas (:mod:`~p2pmkt.market.kinds`),
reporting conditions (:mod:`~p2pmkt.market.conditions`), end-of-block reports
(:mod:`~p2pmkt.market.reports`) and the table layouts (:mod:`~p2pmkt.market.store`).
"""

from p2pmkt.market.apply import KINDS
from p2pmkt.market.conditions import is_due
from p2pmkt.market.events import (
    ContractDeployed,
    IndicatorConfigured,
    IndicatorRemoved,
    MarketingUpdated,
    ReportWritten,
    RulesPublished,
    VisitsAppended,
)
from p2pmkt.market.kinds import KindSpec, TxContext
from p2pmkt.market.model import (
    ACCESS_METHODS,
    CHANNELS,
    DIRECTIONS,
    MATCH_TYPES,
    OPERATIONS,
    Campaign,
    IndicatorSpec,
    Keyword,
    MarketingInfo,
    Report,
    ReportingCondition,
    Target,
    Visit,
    parse_report_id,
    report_id,
)
from p2pmkt.market.packed import VisitPack, pack_visits
from p2pmkt.market.reports import end_block
from p2pmkt.market.store import (
    IndicatorState,
    VisitChunk,
    all_indicators,
    get_indicator,
    get_marketing,
    get_marketing_version,
    get_report,
    packed_window,
    read_chunks,
    visit_count,
    visit_origins,
)

__all__ = [
    "ACCESS_METHODS",
    "CHANNELS",
    "DIRECTIONS",
    "KINDS",
    "MATCH_TYPES",
    "OPERATIONS",
    "Campaign",
    "ContractDeployed",
    "IndicatorConfigured",
    "IndicatorRemoved",
    "IndicatorSpec",
    "IndicatorState",
    "Keyword",
    "KindSpec",
    "MarketingInfo",
    "MarketingUpdated",
    "Report",
    "ReportWritten",
    "ReportingCondition",
    "RulesPublished",
    "Target",
    "TxContext",
    "Visit",
    "VisitChunk",
    "VisitPack",
    "VisitsAppended",
    "all_indicators",
    "end_block",
    "get_indicator",
    "get_marketing",
    "get_marketing_version",
    "get_report",
    "is_due",
    "pack_visits",
    "packed_window",
    "parse_report_id",
    "read_chunks",
    "report_id",
    "visit_count",
    "visit_origins",
]
