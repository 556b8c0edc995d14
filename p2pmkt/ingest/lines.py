"""Lines of an input file: the :class:`Line` value, the :class:`BadLine` error, and the tailer.

Theory of operation
-------------------
Ingestion (issue 6 item 1) reads a file or a pipe and turns every line into at most one
:class:`~p2pmkt.market.model.Visit`. Everything that cares about *where* a line came from
works with :class:`Line` (number + text), so that an error can always say "line 1234".

:class:`LineTailer` is the sans-I/O half of ``p2pmkt visits ingest --follow``: the CLI reads
whatever bytes the file has grown by and feeds them in; the tailer hands back the lines that
are now complete and keeps the partial last line until its newline arrives. It splits on
bytes before decoding, so a UTF-8 character cut across two reads is reassembled intact.

Rules:
    * Line numbers start at 1 and count every newline-terminated line, blank ones included,
      so they match ``sed -n Np`` and editors.
    * ``\\n`` ends a line; a ``\\r`` right before it is dropped (CRLF files).
    * A line longer than ``max_line_bytes`` is not buffered: the tailer keeps only the first
      ``max_line_bytes`` bytes, discards the rest up to the newline and emits the line with
      ``truncated=True``; parsers refuse such lines with :class:`BadLine`. A hostile or broken
      writer therefore cannot make the ingester allocate without bound.
    * Bytes that are not UTF-8 are decoded with replacement characters; the parser decides
      whether the result is acceptable.

This module does no I/O and keeps no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmkt.errors import RemoteError

DEFAULT_MAX_LINE_BYTES = 64 * 1024
"""Longest line the tailer buffers; real access-log lines are far below 8 KiB."""


@dataclass(frozen=True, slots=True)
class Line:
    """One line of input.

    Attributes:
        no: 1-based line number in the input.
        text: the line without its line terminator.
        truncated: the line was longer than the tailer's limit and ``text`` holds only its
            beginning; parsers must refuse it.
    """

    no: int
    text: str
    truncated: bool = False


class BadLine(RemoteError):
    """A line of input cannot be turned into a visit.

    The ingester either skips the line and reports it or stops, as the user chose; either way
    the message names the line, so ``str(err)`` reads ``"line 12: <what is wrong>"``.

    Attributes:
        line_no: 1-based number of the offending line.
        detail: what is wrong, without the line prefix.
    """

    reason = "bad_line"

    def __init__(self, line_no: int, detail: str) -> None:
        super().__init__(f"line {line_no}: {detail}")
        self.line_no = line_no
        self.detail = detail


def split_text(text: str, *, first_no: int = 1) -> list[Line]:
    """Split a whole text into :class:`Line` values (a convenience for non-follow ingests).

    A final line without a newline is included; an empty text gives no lines.
    """
    if not text:
        return []
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [
        Line(first_no + i, p[:-1] if p.endswith("\r") else p) for i, p in enumerate(parts)
    ]


class LineTailer:
    """Turns arbitrary chunks of bytes into complete, numbered lines.

    Usage (the CLI's ``--follow`` loop)::

        tailer = LineTailer()
        while True:
            chunk = read_new_bytes()          # I/O lives in the caller
            for line in tailer.feed(chunk):
                handle(line)
        for line in tailer.close():           # at EOF when not following
            handle(line)

    Args:
        max_line_bytes: longest line buffered; see the module rules for longer ones.
        first_no: number given to the first line (resume after a restart).
    """

    __slots__ = ("_buf", "_dropping", "_next_no", "max_line_bytes")

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, first_no: int = 1) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        # True while skipping the tail of an overlong line up to its newline.
        self._dropping = False
        self._next_no = first_no

    @property
    def next_line_no(self) -> int:
        """Number the next completed line will get."""
        return self._next_no

    @property
    def pending_bytes(self) -> int:
        """Bytes of the partial last line held back until its newline arrives."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Line]:
        """Add ``data``; return every line it completes, in order."""
        out: list[Line] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            piece = data[start:] if nl < 0 else data[start:nl]
            self._take(piece)
            if nl < 0:
                return out
            out.append(self._emit())
            start = nl + 1

    def close(self) -> list[Line]:
        """Return the final line if the input ended without a newline, and reset."""
        if not self._buf and not self._dropping:
            return []
        return [self._emit()]

    def reset(self, *, first_no: int = 1) -> None:
        """Forget the partial line and restart numbering (the followed file was rotated)."""
        self._buf.clear()
        self._dropping = False
        self._next_no = first_no

    def _take(self, piece: bytes) -> None:
        room = self.max_line_bytes - len(self._buf)
        if len(piece) > room:
            self._buf += piece[: max(room, 0)]
            self._dropping = True
        else:
            self._buf += piece

    def _emit(self) -> Line:
        raw = bytes(self._buf)
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        line = Line(self._next_no, raw.decode("utf-8", errors="replace"), self._dropping)
        self._buf.clear()
        self._dropping = False
        self._next_no += 1
        return line
