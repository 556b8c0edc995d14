"""Parsers for structured visit records: JSON lines and CSV with a header.

Theory of operation
-------------------
Both formats name the fields of :class:`~p2pmkt.market.model.Visit` directly:

=========  ==========================================================================
field      accepted
=========  ==========================================================================
ip         text, required
account    text, ``""`` (default) when the visitor was not logged in
time       integer milliseconds since the Unix epoch, or an ISO 8601 / RFC 3339 text
           **with** a UTC offset (``2015-05-17T10:05:03Z``, ``...+02:00``); a naive
           time is refused because it would silently depend on the ingesting host
merchant   text; may be omitted when the parser was given a default merchant
method     ``browser`` | ``desktop`` | ``app``, required
op         ``view`` | ``click`` | ``cart`` | ``order`` | ``search`` | ``login`` | ``other``
item       text, ``""`` by default
amount     integer minor currency units (cents), ``0`` by default
=========  ==========================================================================

JSON lines: one object per line with the keys above, or the positional wire form
``[ip, account, time, merchant, method, op, item, amount]``. Unknown keys are refused (a typo
like ``ammount`` must not silently become amount 0). Blank lines are skipped.

CSV: the first non-blank line is the header naming the columns (any order, any subset that
includes the required fields); every later line is one record. Quoted fields work, but a record
must fit on one line (the ingester is line-oriented so that ``--follow`` and line numbers
work). Empty cells take the default. A header that names an unknown column, names one twice or
lacks a required one raises :class:`BadHeader`: without a header no record can be read, so
the ingest stops there whatever its error policy (skipping the header would only make the next
line the header, and every line after it bad), and the parser keeps refusing every later line
with the same error rather than taking one of them for the header.

Every record goes through ``Visit.from_wire`` so the ingester accepts exactly what the chain
accepts; any failure becomes :class:`~p2pmkt.ingest.lines.BadLine` with the line number.
"""

from __future__ import annotations

import csv
import difflib
import json
from datetime import datetime
from typing import Any

from p2pmkt.errors import InvalidTransaction
from p2pmkt.ingest.lines import BadLine, Line
from p2pmkt.market.model import Visit

FIELDS = Visit.FIELDS
_REQUIRED = ("ip", "time", "method", "op")
_DEFAULTS: dict[str, Any] = {"account": "", "item": "", "amount": 0}


def parse_time_ms(value: Any) -> int:
    """Return ``value`` as integer milliseconds since the epoch.

    Args:
        value: an int (already ms), or ISO 8601 text carrying a UTC offset.

    Raises:
        ValueError: anything else, including a time without an offset.
    """
    if isinstance(value, bool):
        raise ValueError("time must be ms since the epoch or an ISO 8601 time")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"time {text!r:.40} is neither ms nor ISO 8601") from None
        if moment.tzinfo is None:
            raise ValueError(f"time {text!r:.40} has no UTC offset; add Z or +hh:mm")
        # timedelta arithmetic is exact in microseconds; floor to ms.
        delta = moment - datetime.fromisoformat("1970-01-01T00:00:00+00:00")
        return (delta.days * 86_400_000 + delta.seconds * 1000) + delta.microseconds // 1000
    raise ValueError("time must be ms since the epoch or an ISO 8601 time")


def _build(fields: dict[str, Any], line_no: int, default_merchant: str) -> Visit:
    """Fill defaults, coerce ``time`` and validate through ``Visit.from_wire``."""
    for name in _REQUIRED:
        if fields.get(name) in (None, ""):
            raise BadLine(line_no, f"missing field {name!r}")
    merchant = fields.get("merchant") or default_merchant
    if not merchant:
        raise BadLine(line_no, "missing field 'merchant' and no default merchant given")
    try:
        time_ms = parse_time_ms(fields["time"])
    except ValueError as exc:
        raise BadLine(line_no, str(exc)) from None
    wire = [
        fields["ip"],
        fields.get("account") or _DEFAULTS["account"],
        time_ms,
        merchant,
        fields["method"],
        fields["op"],
        fields.get("item") or _DEFAULTS["item"],
        fields.get("amount") or _DEFAULTS["amount"],
    ]
    try:
        return Visit.from_wire(wire)
    except InvalidTransaction as exc:
        raise BadLine(line_no, exc.message) from None


class BadHeader(BadLine):
    """The CSV header (the first non-blank line) is unusable, so no record can be read.

    Unlike other :class:`BadLine` errors it ends the ingest whatever the error policy: a
    header is not a data line, and skipping it would make every later line bad.

    Attributes:
        unknown: column names that are not fields of a visit.
        missing: required columns the header lacks.
    """

    reason = "bad_header"

    def __init__(
        self, line_no: int, detail: str, *, unknown: tuple[str, ...] = (),
        missing: tuple[str, ...] = (),
    ) -> None:
        super().__init__(line_no, detail)
        self.unknown = unknown
        self.missing = missing


class JsonLinesParser:
    """Parses JSON lines into visits.

    Args:
        default_merchant: merchant for records without one (``""``: the field is required).
    """

    __slots__ = ("default_merchant",)

    def __init__(self, *, default_merchant: str = "") -> None:
        self.default_merchant = default_merchant

    def parse(self, line: Line) -> Visit | None:
        """Return the visit on ``line``; None for a blank line.

        Raises:
            BadLine: not JSON, wrong shape, unknown key, or a field the chain would refuse.
        """
        if line.truncated:
            raise BadLine(line.no, "line is too long")
        text = line.text.strip()
        if not text:
            return None
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise BadLine(line.no, f"not JSON: {exc}") from None
        if isinstance(obj, list):
            if len(obj) != len(FIELDS):
                raise BadLine(line.no, f"a visit array has {len(FIELDS)} elements {list(FIELDS)}")
            obj = dict(zip(FIELDS, obj))
        if not isinstance(obj, dict):
            raise BadLine(line.no, "a visit is a JSON object or array")
        unknown = sorted(set(obj) - set(FIELDS))
        if unknown:
            raise BadLine(line.no, f"unknown field(s) {unknown}; known: {list(FIELDS)}")
        return _build(obj, line.no, self.default_merchant)


class CsvParser:
    """Parses CSV with a header line into visits (stateful: it remembers the header).

    Args:
        default_merchant: merchant for records without one (``""``: the column is required).
        delimiter: one character, ``,`` by default.
    """

    __slots__ = ("_columns", "_header_error", "default_merchant", "delimiter")

    def __init__(self, *, default_merchant: str = "", delimiter: str = ",") -> None:
        self.default_merchant = default_merchant
        self.delimiter = delimiter
        self._columns: tuple[str, ...] | None = None
        self._header_error: BadHeader | None = None

    @property
    def columns(self) -> tuple[str, ...] | None:
        """The header's columns once read."""
        return self._columns

    def parse(self, line: Line) -> Visit | None:
        """Return the visit on ``line``; None for the header or a blank line.

        Raises:
            BadHeader: the header is unusable (raised again for every later line: a parser
                whose header was refused never reads a record).
            BadLine: a wrong number of cells, or a bad field.
        """
        if self._header_error is not None:
            raise self._header_error
        header = self._columns is None
        if line.truncated:
            if header:
                raise self._refuse(BadHeader(line.no, "CSV header line is too long"))
            raise BadLine(line.no, "line is too long")
        if not line.text.strip():
            return None
        try:
            cells = next(csv.reader([line.text], delimiter=self.delimiter, strict=True))
        except csv.Error as exc:
            if header:
                raise self._refuse(BadHeader(line.no, f"bad CSV header: {exc}")) from None
            raise BadLine(line.no, f"bad CSV: {exc}") from None
        if self._columns is None:
            self._columns = self._header(cells, line.no)
            return None
        if len(cells) != len(self._columns):
            raise BadLine(line.no, f"{len(cells)} cells but the header has {len(self._columns)}")
        fields: dict[str, Any] = {}
        for name, cell in zip(self._columns, cells):
            cell = cell.strip()
            if name == "amount" and cell:
                if not cell.isdigit():
                    raise BadLine(line.no, f"amount {cell!r:.40} is not whole minor units")
                fields[name] = int(cell)
            else:
                fields[name] = cell
        return _build(fields, line.no, self.default_merchant)

    def _refuse(self, error: BadHeader) -> BadHeader:
        self._header_error = error
        return error

    def _header(self, cells: list[str], line_no: int) -> tuple[str, ...]:
        """The columns the header names.

        Raises:
            BadHeader: unknown, repeated or missing required columns, all named at once.
        """
        names = tuple(c.strip().lower() for c in cells)
        unknown = tuple(dict.fromkeys(n for n in names if n not in FIELDS))
        twice = tuple(dict.fromkeys(n for n in names if names.count(n) > 1 and n in FIELDS))
        needed = [*_REQUIRED, *([] if self.default_merchant else ["merchant"])]
        missing = tuple(n for n in needed if n not in names)
        if not (unknown or twice or missing):
            return names
        problems = []
        if unknown:
            shown = ", ".join(_describe_unknown(n) for n in unknown[:_SHOW])
            more = f" and {len(unknown) - _SHOW} more" if len(unknown) > _SHOW else ""
            problems.append(f"unknown column(s) {shown}{more}")
        if twice:
            problems.append(f"column(s) named twice {list(twice)}")
        if missing:
            hint = " (or give a default merchant)" if missing == ("merchant",) else ""
            problems.append(f"missing required column(s) {list(missing)}{hint}")
        raise self._refuse(BadHeader(
            line_no,
            f"bad CSV header: {'; '.join(problems)}. The first line of a CSV file names its "
            f"columns: {', '.join(FIELDS)} (required: {', '.join(needed)})",
            unknown=unknown, missing=missing,
        ))


_SHOW = 5
"""Unknown header columns named in the message (a data line taken for a header has many)."""


def _describe_unknown(name: str) -> str:
    """``'ammount'`` with a suggestion when it looks like a misspelt field."""
    close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.75)
    shown = repr(name if len(name) <= 40 else name[:40] + "…")
    return f"{shown} (did you mean {close[0]!r}?)" if close else shown
