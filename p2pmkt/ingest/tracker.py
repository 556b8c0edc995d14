"""The bookkeeping of one ingest run: lines read, transactions sent, committed or refused.

Theory of operation
-------------------
``p2pmkt visits ingest`` (and any script built the same way) reads lines, turns them into
visits, batches them and sends each batch as one signed transaction. :class:`IngestTracker`
holds what an operator needs to know about that run and nothing else; the I/O shell tells it
what happened and asks it for the summary line and the outcome (the shell maps outcomes to
exit codes). It does no I/O and reads no clock.

A terminal's transactions are taken in nonce order, and the shell sends its batches in input
order, so **what is committed is always a prefix of the input**: every visit up to some line,
none after it. A transaction the chain rejects inside its block does not use up its nonce, so
the terminal's later transactions cannot commit after it; they are not committed either, and
the nodes drop those still pending when they apply that block, so re-ingesting from the
rejected line commits nothing twice (``Mempool.drop_past``). The
tracker therefore keeps the sent transactions in a queue, and the shell reports outcomes from
the front: :meth:`IngestTracker.committed` (the first ``n`` are in blocks) and
:meth:`IngestTracker.rejected_in_block` (the first one was rejected). A refusal at submission
(:meth:`IngestTracker.refused_at_submission`) is about the batch being sent, which is not in
the queue.

A refusal names the input lines: the node's message counts visits within the transaction
(``visit.pack: visit 2: merchant 'initech' is not on this chain``), and the batch carries the
input line of each of its visits, so ``visit 2`` becomes the line it was read from
(:func:`refused_line`).

Outcomes (the CLI's exit codes in parentheses, docs/INGEST.md):

* ``"ok"`` (0): the input was read to its end and every visit read was committed, with no bad
  lines or with bad lines skipped as asked, as long as at least one visit was committed
  (or there were no bad lines at all);
* ``"bad_input"`` (1): stopped at a bad line (``--on-error stop``), at a bad CSV header, or
  every visit-bearing line was bad (nothing committed, at least one bad line);
* ``"refused"`` (3): the node refused a transaction, at submission or in its block;
* ``"interrupted"`` (130): the user stopped it (Ctrl-C).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from p2pmkt.ingest.lines import BadLine
from p2pmkt.ingest.records import BadHeader

_VISIT_INDEX = re.compile(r"\bvisit (\d+):")


def refused_line(message: str, lines: tuple[int, ...]) -> int | None:
    """The input line a node's refusal message is about, or None when it names no visit.

    Args:
        message: the node's message, e.g. ``"visit.pack: visit 2: merchant 'x' is not …"``
            (visits counted from 0 within the transaction).
        lines: the input line of each visit of that transaction, in order.
    """
    m = _VISIT_INDEX.search(message)
    if m is None:
        return None
    index = int(m.group(1))
    return lines[index] if index < len(lines) else None


def line_span(lines: tuple[int, ...] | list[int]) -> str:
    """``"line 7"`` or ``"lines 7–2,004"`` (first to last; visits of a batch come in order)."""
    if not lines:
        return "no lines"
    first, last = min(lines), max(lines)
    return f"line {first:,}" if first == last else f"lines {first:,}–{last:,}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class Sent:
    """One transaction the node took (pooled), waiting to be seen in a block.

    Attributes:
        txid: its id.
        lines: the input line of each of its visits, in order.
    """

    txid: bytes
    lines: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    """The node refused one of the run's transactions.

    Attributes:
        reason: the node's reason slug (``unknown_merchant``, ``missing_role``, …).
        message: the node's message.
        lines: the input lines of the refused transaction's visits.
        line: the line the message names (it names ``visit K``), else None.
        in_block: rejected inside a block (True) or refused at submission (False).
        later: input lines of the transactions sent after it, which are not committed
            either (a rejected transaction does not use up its nonce).
    """

    reason: str
    message: str
    lines: tuple[int, ...]
    line: int | None
    in_block: bool
    later: tuple[int, ...] = ()

    def describe(self, source: str = "-", *, csv: bool = False) -> list[str]:
        """The report, one message per element, without the input's name; ``source`` (the
        input's path, ``-`` for standard input) only appears in the advice to resume, which
        keeps a CSV input's header line (``csv``)."""
        where = "in its block" if self.in_block else "at submission"
        head = f"line {self.line:,}" if self.line is not None else line_span(self.lines)
        out = [f"{head}: refused by the node {where} ({self.reason}): {self.message}"]
        lost = f"the transaction of {line_span(self.lines)} was not committed"
        if self.later:
            lost += f", nor were those sent after it ({line_span(self.later)})"
        first = min(self.lines)
        # A refusal of the signer (role, membership) is no fault of the input.
        key = self.reason in KEY_REASONS
        fix = "use a key that holds the terminal role" if key else "fix the input"
        if first <= 1 + csv:
            lost += f"; nothing of the input is on the chain: {fix if key else 'fix it'} and ingest it again"
        else:
            rest = (f"(head -n 1 {source}; tail -n +{first} {source})" if csv
                    else f"tail -n +{first} {source}")
            how = f" (e.g. `{rest} | p2pmkt visits ingest - …`)" if source != "-" else ""
            lost += (f"; nothing from line {first:,} on is on the chain: {fix} and "
                     f"ingest it again from line {first:,}{how}")
        out.append(lost)
        return out


KEY_REASONS = frozenset({"not_member", "missing_role", "wrong_merchant", "bad_signature"})
"""Refusal reasons that are about the signing key, not the visits."""


class IngestTracker:
    """What one ingest run has done so far; see the module docstring.

    Attributes:
        lines: input lines read.
        skipped: lines that are not visits (blank, CSV header, static assets, …).
        bad: bad lines met (reported and skipped, or the one that stopped the run).
        committed_visits: visits seen in blocks.
        committed_txs: transactions seen in blocks.
        refusal: the node's refusal that ended the run, if any.
        stopped_by: the bad line that ended the run (``--on-error stop`` or a bad header).
        interrupted: the user stopped the run.
        unsent: visits read but never sent (the run ended before their batch went out).
    """

    __slots__ = ("_inflight", "bad", "committed_txs", "committed_visits", "interrupted",
                 "lines", "refusal", "skipped", "stopped_by", "unsent")

    def __init__(self) -> None:
        self.lines = 0
        self.skipped = 0
        self.bad = 0
        self.committed_visits = 0
        self.committed_txs = 0
        self.refusal: Refusal | None = None
        self.stopped_by: BadLine | None = None
        self.interrupted = False
        self.unsent = 0
        self._inflight: deque[Sent] = deque()

    # --- what the shell reports -----------------------------------------------------------

    def bad_line(self, error: BadLine, *, stop: bool) -> bool:
        """Count a bad line; return True when the run must stop here (``stop`` asked for it,
        or the error is a :class:`~p2pmkt.ingest.records.BadHeader`)."""
        self.bad += 1
        if stop or isinstance(error, BadHeader):
            self.stopped_by = error
            return True
        return False

    def sent(self, txid: bytes, lines: tuple[int, ...]) -> None:
        """The node took a transaction holding the visits of ``lines``."""
        self._inflight.append(Sent(txid, lines))

    @property
    def inflight(self) -> tuple[Sent, ...]:
        """Transactions taken by the node and not yet seen in a block, oldest first."""
        return tuple(self._inflight)

    def committed(self, n: int) -> None:
        """The ``n`` oldest in-flight transactions are committed."""
        for _ in range(min(n, len(self._inflight))):
            done = self._inflight.popleft()
            self.committed_txs += 1
            self.committed_visits += len(done.lines)

    def rejected_in_block(self, reason: str, message: str) -> Refusal:
        """The oldest in-flight transaction was rejected inside its block; the ones after it
        cannot commit (module docstring) and leave the queue too. It replaces a refusal at
        submission already recorded: that batch came after it, and is one more not
        committed because of it."""
        refused = self._inflight.popleft()
        later = tuple(n for s in self._inflight for n in s.lines)
        if self.refusal is not None:
            later += self.refusal.lines + self.refusal.later
        self._inflight.clear()
        self.refusal = Refusal(reason, message, refused.lines,
                               refused_line(message, refused.lines), True, later)
        return self.refusal

    def refused_at_submission(self, reason: str, message: str, lines: tuple[int, ...]) -> Refusal:
        """The node refused, at submission, the transaction of the visits of ``lines``."""
        self.refusal = Refusal(reason, message, lines, refused_line(message, lines), False)
        return self.refusal

    # --- what the shell asks --------------------------------------------------------------

    @property
    def pending_visits(self) -> int:
        """Visits in transactions taken by the node and not yet seen in a block."""
        return sum(len(s.lines) for s in self._inflight)

    def outcome(self) -> str:
        """``"ok"``, ``"bad_input"``, ``"refused"`` or ``"interrupted"`` (module docstring)."""
        if self.refusal is not None:
            return "refused"
        if self.interrupted:
            return "interrupted"
        if self.stopped_by is not None:
            return "bad_input"
        if self.bad and not self.committed_visits and not self.pending_visits:
            return "bad_input"
        return "ok"

    def summary(self) -> str:
        """One line: lines read, visits committed, not visits, bad, and why it stopped."""
        text = (f"{_plural(self.lines, 'line')} read: {_plural(self.committed_visits, 'visit')} "
                f"committed in {_plural(self.committed_txs, 'transaction')}, "
                f"{self.skipped:,} skipped (not visits), {self.bad:,} bad")
        if self.pending_visits:
            text += (f"; {_plural(self.pending_visits, 'visit')} in "
                     f"{_plural(len(self._inflight), 'transaction')} sent, not yet seen "
                     "committed (the node keeps them)")
        lost = self.unsent + (len(self.refusal.lines) + len(self.refusal.later)
                              if self.refusal is not None else 0)
        if lost:
            text += f"; {_plural(lost, 'visit')} read but not committed"
        if self.refusal is not None:
            line = self.refusal.line
            text += (f" — stopped: the node refused line {line:,}" if line is not None
                     else f" — stopped: the node refused {line_span(self.refusal.lines)}")
        elif self.interrupted:
            text += " — interrupted"
        elif isinstance(self.stopped_by, BadHeader):
            text += f" — stopped: line {self.stopped_by.line_no:,} is not a usable CSV header"
        elif self.stopped_by is not None:
            text += f" — stopped at the first bad line (line {self.stopped_by.line_no:,})"
        elif self.outcome() == "bad_input":
            text += " — nothing ingested: every line that was not skipped was bad"
        return text
