"""p2pmkt.ingest: turning terminal input into visits (issue 6 item 1). Pure: no I/O, no clock.

* :mod:`~p2pmkt.ingest.lines`: :class:`Line`, :class:`BadLine`, :class:`LineTailer`
  (``--follow``: bytes in, complete lines out).
* :mod:`~p2pmkt.ingest.records`: JSON lines and CSV parsers.
* :mod:`~p2pmkt.ingest.combined`: Apache/NGINX "combined" access logs, with the mapping rules
  (user agent → access method, host/path → merchant, request → operation) in its docstring
  and in docs/INGEST.md.
* :mod:`~p2pmkt.ingest.formats`: :func:`make_parser`, :func:`detect_format`,
  :func:`parse_lines` (skip-and-report or stop).
* :mod:`~p2pmkt.ingest.batcher`: :class:`Batcher`, visits → transaction-sized batches by
  count, size and time.
* :mod:`~p2pmkt.ingest.tracker`: :class:`IngestTracker`, what a run read, sent, committed and
  had refused (input line numbers), its summary line and outcome.
"""

from p2pmkt.ingest.batcher import Batch, Batcher, BatcherConfig, estimate_visit_bytes
from p2pmkt.ingest.combined import (
    CombinedConfig,
    CombinedParser,
    CombinedStatistics,
    classify_agent,
    parse_log_time,
    parse_merchant_map,
)
from p2pmkt.ingest.formats import (
    FORMATS,
    ErrorPolicy,
    ParseOutcome,
    Parser,
    detect_format,
    make_parser,
    parse_lines,
)
from p2pmkt.ingest.lines import BadLine, Line, LineTailer, split_text
from p2pmkt.ingest.records import BadHeader, CsvParser, JsonLinesParser, parse_time_ms
from p2pmkt.ingest.tracker import IngestTracker, Refusal, Sent, line_span, refused_line

__all__ = [
    "FORMATS",
    "BadHeader",
    "BadLine",
    "Batch",
    "Batcher",
    "BatcherConfig",
    "CombinedConfig",
    "CombinedParser",
    "CombinedStatistics",
    "CsvParser",
    "ErrorPolicy",
    "IngestTracker",
    "JsonLinesParser",
    "Line",
    "LineTailer",
    "ParseOutcome",
    "Parser",
    "Refusal",
    "Sent",
    "classify_agent",
    "detect_format",
    "estimate_visit_bytes",
    "line_span",
    "make_parser",
    "parse_lines",
    "parse_log_time",
    "parse_merchant_map",
    "parse_time_ms",
    "refused_line",
    "split_text",
]
