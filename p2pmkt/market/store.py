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
``visits``      merchant ‖ 0x00 ‖ last seq (u64 BE)                   visit chunk (below)
``contracts``   sha256(code)                                          wasm bytes
``indicators``  merchant ‖ 0x00 ‖ name                                CBOR ``{"spec", "next_n",
                                                                      "from_seq", "last_time",
                                                                      "active"}``
``reports``     merchant ‖ 0x00 ‖ indicator ‖ 0x00 ‖ n (u64 BE)       CBOR :meth:`Report.to_wire`
``market``      merchant                                              CBOR :meth:`MarketingInfo.to_wire`
``market_hist`` merchant ‖ 0x00 ‖ version (u64 BE)                    CBOR :meth:`MarketingInfo.to_wire`
``rules``       merchant                                              the rules document, raw bytes
==============  ====================================================  =====================================

Visit chunk: the visits of one merchant that one transaction appended, as one value::

    first seq (u64 BE) ‖ height (u64 BE) ‖ tx index (u32 BE) ‖ first visit index (u32 BE)
    ‖ the 48-byte :func:`p2pmkt.chain.contract_api.pack_visit` records, in seq order

keyed by the seq of its **last** visit, so that the chunks a window ``[start, end)`` touches
are one forward range scan from ``merchant ‖ 0x00 ‖ start``: the first key at or after it is
the chunk holding ``start``; the scan stops at the chunk holding ``end - 1``; the two end
chunks are sliced. The records are what contracts read (a window is slices of chunk values,
with no per-visit work); the header says where the visits came from: block ``height``,
transaction ``tx index`` and, inside it, the index of the chunk's first visit. The ``k``-th
record of a chunk is the ``k``-th visit *of this merchant* in that transaction (a transaction
may interleave merchants), so the full visit (IP, account and item text) is found in the
block store by walking the transaction's visits from the first visit index. The texts are not
repeated in state: the ledger holds them once, and state grows by 48 bytes a visit plus one
key and header per transaction and merchant (issue 6: 50,000 visits/s).

Merchant ids never contain 0x00 (see :func:`p2pmkt.chain.genesis.valid_merchant_id`), and
indicator names never do either, so the separators are unambiguous.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from p2pmkt.chain.contract_api import VISIT_RECORD_SIZE
from p2pmkt.chain.state import StateReader, WriteBatch
from p2pmkt.market.model import IndicatorSpec, MarketingInfo, Report
from p2pmkt.wire.cbor import decode, decode_text_uint_map, encode, encode_text_uint_map

CHUNK_HEADER = struct.Struct(">QQII")
"""First seq, height, tx index, first visit index: the head of a stored visit chunk."""
CHUNK_HEADER_SIZE = CHUNK_HEADER.size
_U64 = struct.Struct(">Q")
_RECORD = struct.Struct(f"{VISIT_RECORD_SIZE}s")


def merchant_prefix(merchant: str) -> bytes:
    return merchant.encode() + b"\x00"


def chunk_key(merchant: str, last_seq: int) -> bytes:
    """Key of the visit chunk of ``merchant`` whose last visit has seq ``last_seq``."""
    return merchant_prefix(merchant) + _U64.pack(last_seq)


@dataclass(frozen=True, slots=True)
class VisitChunk:
    """One stored visit chunk, decoded (see the module docstring).

    Attributes:
        first_seq: seq of its first visit; it holds ``count`` visits from there.
        height, tx_index: the transaction that appended them.
        first_index: index, in that transaction, of the chunk's first visit.
        records: the concatenated 48-byte contract records.
    """

    first_seq: int
    height: int
    tx_index: int
    first_index: int
    records: bytes

    @property
    def count(self) -> int:
        return len(self.records) // VISIT_RECORD_SIZE


def window_chunks(state: StateReader, merchant: str, start: int, end: int) -> list[bytes]:
    """The packed contract records of visits ``[start, end)`` of ``merchant``, in chunks.

    Each item is a whole number of 48-byte records (a slice of one stored chunk); joined, they
    are the window. One range scan and no per-visit work.
    """
    size, head = VISIT_RECORD_SIZE, CHUNK_HEADER_SIZE
    out = []
    for _, value in _chunk_rows(state, merchant, start, end):
        first = _U64.unpack_from(value)[0]
        lo = head + size * (max(start, first) - first)
        out.append(value[lo : head + size * (end - first)])  # a slice stops at the value's end
    return out


def packed_window(state: StateReader, merchant: str, start: int, end: int) -> bytes:
    """The packed contract records of visits ``[start, end)`` of ``merchant``, concatenated."""
    return b"".join(window_chunks(state, merchant, start, end))


def visit_count(state: StateReader, merchant: str) -> int | None:
    """Visits stored for ``merchant`` (= the next seq), or None for an unknown merchant."""
    raw = state.get("merchants", merchant.encode())
    return None if raw is None else decode_text_uint_map(raw, "visits")


def set_visit_count(batch: WriteBatch, merchant: str, count: int) -> None:
    batch.put("merchants", merchant.encode(), encode_text_uint_map("visits", count))


def window_records(state: StateReader, merchant: str, start: int, end: int) -> list[bytes]:
    """The packed contract records of visits ``[start, end)`` of ``merchant``, one per visit.

    What report evaluation hands the contract runtime today: it copies them into the
    contract's memory itself, without first joining them into one 4.8 MB object (issue 3).
    Split from :func:`window_chunks` in C (``iter_unpack``); once the runtime takes chunks
    of whole records, :func:`window_chunks` is the cheaper input.
    """
    out: list[bytes] = []
    for chunk in window_chunks(state, merchant, start, end):
        out.extend(map(itemgetter(0), _RECORD.iter_unpack(chunk)))
    return out


def visit_origins(state: StateReader, merchant: str, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(seq, height, tx index, nth)`` of visits ``[start, end)``: where each came from.

    ``nth``: the visit is the ``nth`` (from 0) visit of ``merchant`` in that transaction.
    """
    for key, value in _chunk_rows(state, merchant, start, end):
        first, height, tx_index, _first_index = CHUNK_HEADER.unpack_from(value)
        last = _U64.unpack_from(key, len(key) - 8)[0]
        for seq in range(max(start, first), min(end, last + 1)):
            yield seq, height, tx_index, seq - first


def read_chunks(state: StateReader, merchant: str, start: int, end: int) -> Iterator[VisitChunk]:
    """The stored chunks holding visits ``[start, end)`` of ``merchant``, whole and decoded."""
    for _, value in _chunk_rows(state, merchant, start, end):
        first, height, tx_index, first_index = CHUNK_HEADER.unpack_from(value)
        yield VisitChunk(first, height, tx_index, first_index, value[CHUNK_HEADER_SIZE:])


def _chunk_rows(state: StateReader, merchant: str, start: int, end: int) -> Iterator[tuple[bytes, bytes]]:
    if end <= start:
        return
    for key, value in state.scan("visits", chunk_key(merchant, start), merchant.encode() + b"\x01"):
        yield key, value
        if _U64.unpack_from(key, len(key) - 8)[0] >= end - 1:
            return


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


def active_indicators(state: StateReader, merchant: str) -> list[IndicatorSpec]:
    """The merchant's configured (not removed) indicators, sorted by name."""
    prefix = merchant_prefix(merchant)  # merchant ‖ 0x00: ends before merchant ‖ 0x01
    states = (IndicatorState.from_bytes(raw) for _, raw in state.scan("indicators", prefix, prefix[:-1] + b"\x01"))
    return [s.spec for s in states if s.active]


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


REPORT_ORDINAL_BITS = 16
"""A report's paging ``seq`` is ``height << 16 | ordinal`` (its place among the merchant's
reports of that block, by indicator name then ``n``)."""


def reports_newest_first(
    state: StateReader, merchant: str, *, limit: int, before: int | None = None
) -> list[tuple[int, Report]]:
    """At most ``limit`` of ``merchant``'s reports with ``seq < before`` (all if None), as
    ``(seq, report)``, newest first: what ``market.reports`` answers.

    Reads O(indicators × (log reports + limit)) values, never the whole history: a
    live view asks for the newest report every second, and a merchant whose indicator reports
    every 2,000 visits at 50,000 visits/s writes two million reports a day. Each indicator's
    reports are keyed by ``n``, and their heights never decrease with ``n``; so each
    indicator is read backwards from the last report at or below ``before``'s height (found
    by bisection), and the indicators are merged by height. Removed indicators keep their
    reports (updates cite them) and are included.
    """
    if limit <= 0:
        return []
    prefix = merchant_prefix(merchant)
    below = None if before is None else before >> REPORT_ORDINAL_BITS  # first height to read
    cursors: list[_ReportCursor] = []
    for _, raw in state.scan("indicators", prefix, prefix[:-1] + b"\x01"):
        ind = IndicatorState.from_bytes(raw)
        cur = _ReportCursor(state, merchant, ind.spec.name, ind.next_n, below)
        if cur.head is not None:
            cursors.append(cur)
    out: list[tuple[int, Report]] = []
    while cursors and len(out) < limit:
        height = max(c.head.height for c in cursors if c.head is not None)
        block: list[Report] = []  # every report of this block, from every indicator
        for c in cursors:
            while c.head is not None and c.head.height == height:
                block.append(c.head)
                c.step()
        cursors = [c for c in cursors if c.head is not None]
        block.sort(key=lambda r: (r.indicator, r.n))
        for ordinal in reversed(range(len(block))):
            seq = height << REPORT_ORDINAL_BITS | ordinal
            if (before is None or seq < before) and len(out) < limit:
                out.append((seq, block[ordinal]))
    return out


class _ReportCursor:
    """One indicator's reports read backwards by ``n``; ``head`` is the next to take (None
    when done). Starts at the last report whose height is at most ``max_height``."""

    def __init__(self, state: StateReader, merchant: str, indicator: str, count: int,
                 max_height: int | None) -> None:
        self._state, self._merchant, self._indicator = state, merchant, indicator
        self._n = count - 1
        if max_height is not None:  # bisect: the last n with height <= max_height, or -1
            lo, hi = 0, count - 1
            self._n = -1
            while lo <= hi:
                mid = (lo + hi) // 2
                rep = self._get(mid)
                if rep is not None and rep.height <= max_height:
                    self._n, lo = mid, mid + 1
                else:
                    hi = mid - 1
        self.head = self._get(self._n)

    def _get(self, n: int) -> Report | None:
        return None if n < 0 else get_report(self._state, self._merchant, self._indicator, n)

    def step(self) -> None:
        self._n -= 1
        self.head = self._get(self._n)


def get_marketing(state: StateReader, merchant: str) -> MarketingInfo | None:
    """Current marketing information of ``merchant``; None before its first update."""
    raw = state.get("market", merchant.encode())
    return None if raw is None else MarketingInfo.from_wire(decode(raw))


def get_marketing_version(state: StateReader, merchant: str, version: int) -> MarketingInfo | None:
    raw = state.get("market_hist", merchant_prefix(merchant) + _U64.pack(version))
    return None if raw is None else MarketingInfo.from_wire(decode(raw))


def marketing_newest_first(
    state: StateReader, merchant: str, *, limit: int, before: int | None = None
) -> list[MarketingInfo]:
    """At most ``limit`` of ``merchant``'s marketing versions below ``before`` (all if None),
    newest first: what ``market.history`` answers. Versions run 1, 2, … without gaps, so
    this reads ``limit`` values, whatever the length of the history."""
    current = get_marketing(state, merchant)
    top = 0 if current is None else current.version
    if before is not None:
        top = min(top, before - 1)
    out = []
    for version in range(top, max(top - limit, 0), -1):
        info = get_marketing_version(state, merchant, version)
        if info is not None:
            out.append(info)
    return out


def put_marketing(batch: WriteBatch, info: MarketingInfo) -> None:
    """Write ``info`` as the current version and into the history."""
    raw = encode(info.to_wire())
    batch.put("market", info.merchant.encode(), raw)
    batch.put("market_hist", merchant_prefix(info.merchant) + _U64.pack(info.version), raw)
