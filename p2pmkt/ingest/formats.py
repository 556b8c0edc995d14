"""Choosing a parser, and running one over lines with the user's error policy.

Theory of operation
-------------------
Every parser has the same shape (:class:`Parser`): ``parse(line) -> Visit | None``, where
``None`` means "nothing to ingest here" (a blank line, the CSV header, a skipped static
asset) and :class:`~p2pmkt.ingest.lines.BadLine` means "this line is wrong".

:func:`parse_lines` applies the policy issue 6 asks for: with ``on_error="skip"`` a bad line
is recorded and ingestion goes on; with ``on_error="stop"`` ingestion stops at the first bad
line. Either way the visits parsed before the error are *returned*, not thrown away with an
exception, so the caller can submit them: nothing already accepted is lost. A
:class:`~p2pmkt.ingest.records.BadHeader` (a CSV header that cannot be used) stops the run
whatever the policy: no line after it could be read.

:func:`detect_format` guesses the format from the first non-blank line for ``--format auto``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from p2pmkt.errors import ConfigError
from p2pmkt.ingest.combined import CombinedConfig, CombinedParser, looks_like_access_log
from p2pmkt.ingest.lines import BadLine, Line
from p2pmkt.ingest.records import BadHeader, CsvParser, JsonLinesParser
from p2pmkt.market.model import Visit

FORMATS = ("jsonl", "csv", "combined")
ErrorPolicy = Literal["skip", "stop"]


class Parser(Protocol):
    """What every input format provides."""

    def parse(self, line: Line) -> Visit | None:
        """Return the visit on ``line``, or None when there is nothing to ingest.

        Raises:
            BadLine: the line is wrong; the message names it.
        """
        ...


def make_parser(
    fmt: str, *, merchant: str = "", combined: CombinedConfig | None = None
) -> Parser:
    """Return a fresh parser for ``fmt`` (parsers may hold state, e.g. the CSV header).

    Args:
        fmt: one of :data:`FORMATS`.
        merchant: default merchant for records or log lines without one.
        combined: the access-log mapping; its ``merchant`` is replaced by ``merchant`` when
            that is given.

    Raises:
        ConfigError: unknown format, or a bad combined config.
    """
    if fmt == "jsonl":
        return JsonLinesParser(default_merchant=merchant)
    if fmt == "csv":
        return CsvParser(default_merchant=merchant)
    if fmt == "combined":
        config = combined or CombinedConfig()
        if merchant:
            config = replace(config, merchant=merchant)
        return CombinedParser(config)
    raise ConfigError(f"unknown input format {fmt!r}; use one of {list(FORMATS)}")


def detect_format(first_line: str) -> str:
    """Guess the format of an input from its first non-blank line.

    ``{`` or ``[`` → ``jsonl``; a line the access-log pattern matches → ``combined``;
    otherwise ``csv`` (its header will be checked when parsed).
    """
    text = first_line.strip()
    if text.startswith(("{", "[")):
        return "jsonl"
    if looks_like_access_log(text):
        return "combined"
    return "csv"


@dataclass(frozen=True, slots=True)
class ParseOutcome:
    """What :func:`parse_lines` produced.

    Attributes:
        visits: every visit parsed, in input order.
        errors: the bad lines met (at most one with ``on_error="stop"``).
        lines: lines consumed (when stopped, up to and including the bad one).
        stopped: True when ``on_error="stop"`` or a bad header ended the run early.
    """

    visits: tuple[Visit, ...]
    errors: tuple[BadLine, ...]
    lines: int
    stopped: bool


def parse_lines(
    parser: Parser, lines: Iterable[Line], *, on_error: ErrorPolicy = "skip"
) -> ParseOutcome:
    """Run ``parser`` over ``lines`` with the given error policy (see the module docstring)."""
    if on_error not in ("skip", "stop"):
        raise ConfigError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
    visits: list[Visit] = []
    errors: list[BadLine] = []
    count = 0
    for line in lines:
        count += 1
        try:
            visit = parser.parse(line)
        except BadLine as exc:
            errors.append(exc)
            if on_error == "stop" or isinstance(exc, BadHeader):
                return ParseOutcome(tuple(visits), tuple(errors), count, True)
            continue
        if visit is not None:
            visits.append(visit)
    return ParseOutcome(tuple(visits), tuple(errors), count, False)
