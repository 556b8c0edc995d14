"""Events the marketing state machine emits while a block applies.

They ride on :class:`p2pmkt.chain.apply.BlockResult` (``events``) for the RPC event stream,
the console and the node's agents (the merchant-tech agent watches :class:`ReportWritten`
with ``missed``). Events are derived data: the state tables are the record; an event is
only emitted for a transaction that succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmkt.market.model import MarketingInfo, Report
from p2pmkt.types import Address, Hash32


@dataclass(frozen=True, slots=True)
class VisitsAppended:
    """``count`` visits of ``merchant`` were stored as seqs ``[first_seq, first_seq + count)``."""

    merchant: str
    first_seq: int
    count: int


@dataclass(frozen=True, slots=True)
class ContractDeployed:
    code_hash: Hash32
    size: int
    by: Address
    new: bool


@dataclass(frozen=True, slots=True)
class IndicatorConfigured:
    merchant: str
    name: str
    code_hash: bytes
    by: Address


@dataclass(frozen=True, slots=True)
class IndicatorRemoved:
    merchant: str
    name: str
    by: Address


@dataclass(frozen=True, slots=True)
class MarketingUpdated:
    info: MarketingInfo


@dataclass(frozen=True, slots=True)
class RulesPublished:
    merchant: str
    size: int
    by: Address


@dataclass(frozen=True, slots=True)
class ReportWritten:
    report: Report
    fuel_used: int = 0
    """Fuel the evaluation consumed (for metrics; not part of the stored report)."""


__all__ = [
    "ContractDeployed",
    "IndicatorConfigured",
    "IndicatorRemoved",
    "MarketingUpdated",
    "ReportWritten",
    "RulesPublished",
    "VisitsAppended",
]
