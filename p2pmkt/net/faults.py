"""Fault hooks for the chaos tests (TEST-ONLY): values a harness changes in a running node.

Theory of operation
-------------------
A hook is a file named by an environment variable. The node re-reads it when its modification
time changes, so a harness (``tools/chaos``) changes a running node's fault by rewriting the
file (atomically: write beside it, then rename); a missing or empty file means no fault.
Without the variable a hook costs one dictionary lookup. Never set these on a real node.

* :data:`RAFT_FAULT_ENV`, read by :func:`raft_fault`: latency and loss of the node's outgoing
  Raft messages (:mod:`p2pmkt.net.raft_transport`), the stand-in for ``tc netem`` on a
  machine without it (this one: "Specified qdisc kind is unknown"). The file holds
  ``delay_ms=D loss=P``: every message waits ``D`` ms after it was sent before it is written
  (the messages behind it wait with it, not after it: a link's latency, not a throttle), and
  each one is dropped with probability ``P``. Raft must tolerate both: lost messages are
  resent by its heartbeats and retries, and a slow link only slows commits.
* ``P2PMKT_FAULT_CLOCK_FILE`` (:mod:`p2pmkt.node.clock`): the block-time clock's offset.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger("p2pmkt.net.faults")

T = TypeVar("T")

RAFT_FAULT_ENV = "P2PMKT_FAULT_RAFT_FILE"
"""Environment variable naming the Raft latency and loss file (test-only fault injection)."""


class FaultFile(Generic[T]):
    """The value of a fault file, parsed by ``parse`` and re-read when the file changes.

    ``parse`` gets the file's stripped text ("" for a missing or empty file) and raises
    ValueError for text it refuses: the previous value then stays, and the error is logged.
    """

    def __init__(self, env: str, parse: Callable[[str], T], default: T, name: str) -> None:
        self.env = env
        self.parse = parse
        self.default = self.value = default
        self.name = name
        self._mtime = -1

    def get(self) -> T:
        path = os.environ.get(self.env)
        if not path:
            return self.default
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            mtime = 0
        if mtime == self._mtime:
            return self.value
        self._mtime = mtime
        try:
            text = ""
            if mtime:
                with open(path) as f:
                    text = f.read().strip()
            value = self.parse(text)
        except (OSError, ValueError) as exc:
            log.error("fault_%s_unreadable path=%s error=%r (the fault stays %r)",
                      self.name, path, exc, self.value)
            return self.value
        if value != self.value:
            log.warning("fault_%s value=%r path=%s (test-only fault injection)", self.name, value, path)
        self.value = value
        return value


@dataclass(frozen=True, slots=True)
class RaftFault:
    """Latency (seconds) and loss (probability) of outgoing Raft messages."""

    delay: float = 0.0
    loss: float = 0.0


def parse_raft_fault(text: str) -> RaftFault:
    """``"delay_ms=150 loss=0.2"`` (either may be left out) → :class:`RaftFault`.

    Raises:
        ValueError: an unknown key, or a value out of range (delay 0–60,000 ms, loss 0–1).
    """
    fields = dict(item.partition("=")[::2] for item in text.split())
    unknown = set(fields) - {"delay_ms", "loss"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; write delay_ms=D loss=P")
    delay_ms, loss = float(fields.get("delay_ms", 0)), float(fields.get("loss", 0))
    if not (0 <= delay_ms <= 60_000 and 0 <= loss <= 1):
        raise ValueError(f"delay_ms must be 0-60000 and loss 0-1, not {delay_ms} and {loss}")
    return RaftFault(delay_ms / 1000, loss)


_raft = FaultFile(RAFT_FAULT_ENV, parse_raft_fault, RaftFault(), "raft")
_drop = random.Random()  # a test-only fault: its losses need not be reproducible


def raft_fault() -> RaftFault:
    """The Raft latency and loss in force now (none unless :data:`RAFT_FAULT_ENV` is set)."""
    return _raft.get()


def drops(loss: float) -> bool:
    """Whether this message is lost, at probability ``loss``."""
    return loss > 0 and _drop.random() < loss
