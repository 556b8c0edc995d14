"""The leader's view of each follower's log.

Theory of operation
-------------------
A leader keeps one :class:`Progress` per peer (voters and learners alike). ``match`` is the
highest index known to be replicated there; ``next`` is the next index to send. A progress is
in one of three states, as in etcd-io/raft's tracker:

* ``PROBE``: we do not know where the follower's log diverges. Send one MsgApp, then pause
  until it answers (or a heartbeat answer arrives). Rejections walk ``next`` backwards.
* ``REPLICATE``: the follower is in step. Send optimistically (``next`` jumps past what was
  sent) with up to ``max_inflight`` MsgApps outstanding: this is the pipelining.
* ``SNAPSHOT``: the entries it needs are compacted away; a snapshot is in flight. Nothing else
  is sent until it is acknowledged or the attempt times out (messages may be lost).

Invariant: ``match < next`` always.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass(slots=True)
class Progress:
    match: int = 0
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    is_learner: bool = False
    probe_sent: bool = False
    """In PROBE: an append went out and we wait for its answer before sending another."""
    pending_snapshot: int = 0
    snapshot_ticks: int = 0
    """Ticks since the snapshot was sent; past a timeout we assume it was lost."""
    recent_active: bool = False
    """Heard from this peer since the last check-quorum round."""
    inflights: deque[int] = field(default_factory=deque)
    """Last index of each MsgApp in flight (REPLICATE only), oldest first."""

    def become_probe(self) -> None:
        # Coming back from a snapshot, resume right after it; otherwise just after match.
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = index

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_ticks = 0
        self.inflights.clear()

    def maybe_update(self, n: int) -> bool:
        """Record an acknowledgement up to ``n``. Returns True if ``match`` advanced."""
        updated = n > self.match
        if updated:
            self.match = n
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, hint: int) -> bool:
        """Handle a rejection of the append at ``rejected``; ``hint`` is where to retry from.

        Returns False for a stale rejection (one that says nothing new).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # stale: that index is known to match
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # stale: not the probe we are waiting for
        self.next = max(min(rejected, hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def sent_entries(self, last: int, count: int) -> None:
        """Account for a MsgApp carrying ``count`` entries ending at ``last``."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next = last + 1
                self.inflights.append(last)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def free_le(self, index: int) -> None:
        while self.inflights and self.inflights[0] <= index:
            self.inflights.popleft()

    def is_paused(self, max_inflight: int) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflights) >= max_inflight
        return True


__all__ = ["Progress", "ProgressState"]
