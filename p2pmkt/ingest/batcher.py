"""Sans-I/O batching of visits into transaction-sized groups, by count, size and time.

Theory of operation
-------------------
A terminal node signs visits in batches (SPEC flow 1): one transaction per visit would drown
the chain in signatures, while waiting too long stretches the update cycle. :class:`Batcher`
holds one *open* batch and closes it when the first of these happens:

* it holds ``max_visits`` visits (reason ``"count"``);
* the next visit would take its estimated wire size past ``max_bytes`` (reason ``"bytes"``;
  the visit then opens the next batch);
* ``max_delay`` seconds have passed since its first visit was added (reason ``"time"``);
* the caller flushes it (reason ``"flush"``: end of input, shutdown).

Time is an input (``now``, seconds on any monotonic clock the caller likes, e.g.
``trio.current_time()``); the batcher never reads a clock. The driver loop is::

    batcher = Batcher(BatcherConfig(...))
    while True:
        deadline = batcher.next_deadline()         # None: nothing pending, wait for input
        visit = await receive(timeout=deadline)    # I/O lives in the caller
        now = trio.current_time()
        batches = batcher.add(visit, now) if visit else batcher.poll(now)
        for batch in batches:
            await submit(batch)                    # back-pressure: await, never drop

Invariants (a hypothesis test checks them):
    * every visit added comes out in exactly one batch, in the order added;
    * no batch is empty, none holds more than ``max_visits``, and none exceeds ``max_bytes``
      unless it is a single visit that alone is larger;
    * the batcher never drops anything: back-pressure is the caller's job (it stops calling
      ``add`` while the mempool is full).
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmkt.errors import ConfigError
from p2pmkt.market.model import Visit

# Worst-case CBOR overhead of one visit: the 8-element array header, a head of at most 3 bytes
# per text (Visit caps texts at 256 characters, i.e. < 65536 UTF-8 bytes) and two integers
# (time, amount) of at most 9 bytes each.
_VISIT_OVERHEAD = 1 + 6 * 3 + 2 * 9


def estimate_visit_bytes(visit: Visit) -> int:
    """An upper bound on the canonical-CBOR size of ``visit.to_wire()``."""
    total = _VISIT_OVERHEAD
    for text in (visit.ip, visit.account, visit.merchant, visit.method, visit.op, visit.item):
        total += len(text) if text.isascii() else len(text.encode("utf-8"))
    return total


@dataclass(frozen=True, slots=True)
class BatcherConfig:
    """Knobs of a :class:`Batcher`.

    Attributes:
        max_visits: most visits in one batch.
        max_bytes: most estimated wire bytes of the visits in one batch (leave room below the
            chain's transaction size limit for the envelope and signature).
        max_delay: seconds a visit may wait in the open batch.
    """

    max_visits: int = 2000
    max_bytes: int = 512 * 1024
    max_delay: float = 0.1


def validate_config(config: BatcherConfig) -> None:
    """Raises ConfigError when a knob is not positive."""
    if config.max_visits < 1:
        raise ConfigError(f"batch max_visits must be at least 1, got {config.max_visits}")
    if config.max_bytes < 1:
        raise ConfigError(f"batch max_bytes must be at least 1, got {config.max_bytes}")
    if not config.max_delay > 0:
        raise ConfigError(f"batch max_delay must be positive seconds, got {config.max_delay}")


@dataclass(frozen=True, slots=True)
class Batch:
    """A closed batch, ready to be signed and submitted.

    Attributes:
        visits: in the order added.
        opened_at: ``now`` when its first visit was added.
        closed_at: ``now`` when it was closed.
        reason: ``"count"``, ``"bytes"``, ``"time"`` or ``"flush"``.
        size: estimated wire bytes of the visits.
        lines: the input line each visit came from (``line`` of :meth:`Batcher.add`), in the
            same order as ``visits``: how a refusal naming "visit 2" of the transaction is
            reported as the line of the file.
    """

    visits: tuple[Visit, ...]
    opened_at: float
    closed_at: float
    reason: str
    size: int
    lines: tuple[int, ...] = ()


class Batcher:
    """Groups visits into :class:`Batch` es; see the module docstring for the rules.

    Raises:
        ConfigError: at construction, for a bad config.
    """

    __slots__ = ("_bytes", "_lines", "_opened_at", "_visits", "config")

    def __init__(self, config: BatcherConfig | None = None) -> None:
        self.config = config or BatcherConfig()
        validate_config(self.config)
        self._visits: list[Visit] = []
        self._lines: list[int] = []
        self._bytes = 0
        self._opened_at = 0.0

    @property
    def pending(self) -> int:
        """Visits in the open batch."""
        return len(self._visits)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` will next close a batch; None while nothing is pending."""
        if not self._visits:
            return None
        return self._opened_at + self.config.max_delay

    def add(self, visit: Visit, now: float, *, line: int = 0) -> list[Batch]:
        """Add one visit; return the batches this closes (zero, one or two), oldest first.

        ``line`` is where the visit came from (its input line number); it comes back in the
        batch's ``lines``. A batch whose deadline passed is closed *before* the visit is
        added, so a late ``add`` never stretches an expired batch.
        """
        out = self.poll(now)
        size = estimate_visit_bytes(visit)
        if self._visits and self._bytes + size > self.config.max_bytes:
            out.append(self._close(now, "bytes"))
        if not self._visits:
            self._opened_at = now
        self._visits.append(visit)
        self._lines.append(line)
        self._bytes += size
        if len(self._visits) >= self.config.max_visits:
            out.append(self._close(now, "count"))
        return out

    def poll(self, now: float) -> list[Batch]:
        """Close the open batch if its deadline has passed; return what was closed."""
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            return [self._close(now, "time")]
        return []

    def flush(self, now: float) -> list[Batch]:
        """Close the open batch whatever its age (end of input, shutdown)."""
        if not self._visits:
            return []
        return [self._close(now, "flush")]

    def _close(self, now: float, reason: str) -> Batch:
        batch = Batch(tuple(self._visits), self._opened_at, now, reason, self._bytes,
                      tuple(self._lines))
        self._visits = []
        self._lines = []
        self._bytes = 0
        return batch
