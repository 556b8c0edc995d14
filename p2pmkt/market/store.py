"""Key layouts and typed access to the market tables of chain state.

Theory of operation
-------------------
The market domain keeps everything in the tables of :data:`p2pmkt.chain.state.TABLES`. This
module is the one place that knows their key and value layouts; handlers and queries (RPC,
console) go through it. Keys sort the way queries read them: per merchant, then in append
order, with sequence numbers as 8-byte big-endian so byte order is numeric order.

==============  ====================================================  =====================================
table           key                                                   value
==============  ====================================================  =====================================
``merchants``   merchant                                              CBOR ``{"visits": int}`` (next seq)
``visits``      merchant ‖ 0x00 ‖ seq (u64 BE)                        visit record (below)
``contracts``   sha256(code)                                          wasm bytes
``indicators``  merchant ‖ 0x00 ‖ name                                CBOR ``{"spec", "next_n",
                                                                      "from_seq", "last_time",
                                                                      "active"}``
``reports``     merchant ‖ 0x00 ‖ indicator ‖ 0x00 ‖ n (u64 BE)       CBOR :meth:`Report.to_wire`
``market``      merchant                                              CBOR :meth:`MarketingInfo.to_wire`
``market_hist`` merchant ‖ 0x00 ‖ version (u64 BE)                    CBOR :meth:`MarketingInfo.to_wire`
``rules``       merchant                                              the rules document, raw bytes
==============  ====================================================  =====================================

Visit record (64 bytes): the 48-byte record of :func:`p2pmkt.chain.contract_api.pack_visit`
(what contracts read, so evaluating a window is one ``b"".join`` of slices) followed by the
visit's origin, ``height`` (u64 BE) ‖ ``tx index`` (u32 BE) ‖ ``visit index in the tx`` (u32 BE),
which points at the full visit (IP, account and item text) in the block store. The text fields
are not repeated in state: the ledger holds them once, and the record stays small for the
50,000 visits/s target of issue 6.

Merchant ids never contain 0x00 (see :func:`p2pmkt.chain.genesis.valid_merchant_id`), and
indicator names never do either, so the separators are unambiguous.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from p2pmkt.chain.contract_api import VISIT_RECORD_SIZE
from p2pmkt.chain.state import StateReader, WriteBatch
from p2pmkt.market.model import IndicatorSpec, MarketingInfo, Report
from p2pmkt.wire.cbor import decode, decode_text_uint_map, encode, encode_text_uint_map

VISIT_ORIGIN = struct.Struct(">QII")
VISIT_VALUE_SIZE = VISIT_RECORD_SIZE + VISIT_ORIGIN.size
_U64 = struct.Struct(">Q")


def merchant_prefix(merchant: str) -> bytes:
    return merchant.encode() + b"\x00"


def visit_key(merchant: str, seq: int) -> bytes:
    return merchant_prefix(merchant) + _U64.pack(seq)


def visit_count(state: StateReader, merchant: str) -> int | None:
    """Visits stored for ``merchant`` (= the next seq), or None for an unknown merchant."""
    raw = state.get("merchants", merchant.encode())
    return None if raw is None else decode_text_uint_map(raw, "visits")


def set_visit_count(batch: WriteBatch, merchant: str, count: int) -> None:
    batch.put("merchants", merchant.encode(), encode_text_uint_map("visits", count))


def packed_window(state: StateReader, merchant: str, start: int, end: int) -> bytes:
    """The packed contract records of visits ``[start, end)`` of ``merchant``, concatenated."""
    size = VISIT_RECORD_SIZE
    return b"".join(
        value[:size]
        for _, value in state.scan("visits", visit_key(merchant, start), visit_key(merchant, end))
    )


def window_records(state: StateReader, merchant: str, start: int, end: int) -> list[bytes]:
    """The packed contract records of visits ``[start, end)`` of ``merchant``, one per visit.

    What report evaluation hands the contract runtime: it copies them into the contract's
    memory itself, without first joining them into one 4.8 MB object (issue 3).
    """
    size = VISIT_RECORD_SIZE
    return [
        value[:size]
        for _, value in state.scan("visits", visit_key(merchant, start), visit_key(merchant, end))
    ]


def visit_origins(state: StateReader, merchant: str, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(seq, height, tx index, visit index)`` of visits ``[start, end)``: where each came from."""
    for key, value in state.scan("visits", visit_key(merchant, start), visit_key(merchant, end)):
        height, tx_index, visit_index = VISIT_ORIGIN.unpack_from(value, VISIT_RECORD_SIZE)
        yield _U64.unpack_from(key, len(key) - 8)[0], height, tx_index, visit_index


@dataclass(frozen=True, slots=True)
class IndicatorState:
    """An indicator's configuration plus its reporting progress.

    Attributes:
        spec: the configuration.
        next_n: sequence number of the next report.
        from_seq: first visit seq the next report covers.
        last_time: block time of the last report (or of first configuration).
        active: False once removed. The record stays so that configuring the name again
            continues the report numbering instead of overwriting old reports (which
            marketing updates may cite as their cause).
    """

    spec: IndicatorSpec
    next_n: int
    from_seq: int
    last_time: int
    active: bool = True

    def to_wire(self) -> dict[str, Any]:
        return {"spec": self.spec.to_wire(), "next_n": self.next_n, "from_seq": self.from_seq,
                "last_time": self.last_time, "active": self.active}

    @classmethod
    def from_bytes(cls, raw: bytes) -> IndicatorState:
        obj = decode(raw)
        return cls(IndicatorSpec.from_wire(obj["spec"]), obj["next_n"], obj["from_seq"],
                   obj["last_time"], obj["active"])


def indicator_key(merchant: str, name: str) -> bytes:
    return merchant_prefix(merchant) + name.encode()


def get_indicator(state: StateReader, merchant: str, name: str) -> IndicatorState | None:
    raw = state.get("indicators", indicator_key(merchant, name))
    return None if raw is None else IndicatorState.from_bytes(raw)


def put_indicator(batch: WriteBatch, ind: IndicatorState) -> None:
    batch.put("indicators", indicator_key(ind.spec.merchant, ind.spec.name), encode(ind.to_wire()))


def all_indicators(state: StateReader) -> Iterator[IndicatorState]:
    """Every configured indicator, in (merchant, name) byte order: the evaluation order."""
    for _, raw in state.scan("indicators"):
        yield IndicatorState.from_bytes(raw)


def report_key(merchant: str, indicator: str, n: int) -> bytes:
    return merchant_prefix(merchant) + indicator.encode() + b"\x00" + _U64.pack(n)


def get_report(state: StateReader, merchant: str, indicator: str, n: int) -> Report | None:
    raw = state.get("reports", report_key(merchant, indicator, n))
    return None if raw is None else Report.from_wire(decode(raw))


def put_report(batch: WriteBatch, report: Report) -> None:
    batch.put("reports", report_key(report.merchant, report.indicator, report.n), encode(report.to_wire()))


def get_marketing(state: StateReader, merchant: str) -> MarketingInfo | None:
    """Current marketing information of ``merchant``; None before its first update."""
    raw = state.get("market", merchant.encode())
    return None if raw is None else MarketingInfo.from_wire(decode(raw))


def get_marketing_version(state: StateReader, merchant: str, version: int) -> MarketingInfo | None:
    raw = state.get("market_hist", merchant_prefix(merchant) + _U64.pack(version))
    return None if raw is None else MarketingInfo.from_wire(decode(raw))


def put_marketing(batch: WriteBatch, info: MarketingInfo) -> None:
    """Write ``info`` as the current version and into the history."""
    raw = encode(info.to_wire())
    batch.put("market", info.merchant.encode(), raw)
    batch.put("market_hist", merchant_prefix(info.merchant) + _U64.pack(info.version), raw)
