"""The Raft log as the core sees it: durable entries (read through LogReader) + unstable tail.

Theory of operation
-------------------
The core never writes to disk. It reads what is durable through the :class:`LogReader`
Protocol (implemented by ``p2pmkt.storage.raftlog``) and keeps what is *not yet* durable in
:class:`_Unstable`: entries appended since the last ``advance()`` and a snapshot received from
the leader. ``ready()`` hands the unstable part to the driver; once it is persisted the driver
calls ``advance()`` which moves it to "stable" here (``stable_to``).

Index space (etcd-io/raft's shape)::

    storage: [snapshot.index] first_index ........ last_index
    unstable:                          offset ........ offset+len-1   (may overlap storage:
                                                                       it overwrites it)

Invariants:

* ``applied <= committed <= last_index()``; ``committed`` never decreases.
* An index ``<= committed`` is never truncated (Log Matching + Leader Completeness make that
  true for honest peers; a leader that tries is dropped by the core, see ``LogViolation``).
* ``term(first_index() - 1)`` is always known: it is the snapshot's term (the "dummy" entry).
"""

from __future__ import annotations

from typing import Protocol

from p2pmkt.errors import RemoteError
from p2pmkt.raft.messages import ConfState, Entry, HardState, Snapshot

ENTRY_OVERHEAD = 24
"""Bytes we charge per entry on top of its data when batching by size."""


class LogViolation(RemoteError):
    """A peer asked for something Raft forbids (e.g. truncating a committed entry)."""

    reason = "raft_log_violation"


class LogReader(Protocol):
    """What the core reads from durable storage. Implementations must be consistent with
    everything the driver has persisted before the call.

    Indices are ints. ``entries`` covers ``[lo, hi)``, all of it inside
    ``[first_index(), last_index()]``, and returns at least one entry when ``lo < hi`` even if
    that entry exceeds ``max_size``.
    """

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def term(self, index: int) -> int | None:
        """Term at ``index``; None when compacted or beyond the last index. The snapshot's
        own index answers the snapshot's term."""
        ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]: ...

    def snapshot(self) -> Snapshot: ...


class _Unstable:
    """Entries and a snapshot not yet handed to, or not yet confirmed by, the driver."""

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.entries: list[Entry] = []
        self.snapshot: Snapshot | None = None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.meta.index == i:
                return self.snapshot.meta.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replace everything unstable; the stored entries from `after` on get overwritten
            # when these are persisted (the store truncates on write).
            self.offset = after
            self.entries = list(ents)
        else:
            self.entries = self.entries[: after - self.offset] + list(ents)


class RaftLog:
    """The log: storage + unstable tail + commit/apply cursors."""

    def __init__(self, storage: LogReader) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = _Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1

    # ---- indices and terms -----------------------------------------------------------------

    def first_index(self) -> int:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        last = self.unstable.maybe_last_index()
        return last if last is not None else self.storage.last_index()

    def term(self, i: int) -> int | None:
        """Term at ``i``; None if compacted away or beyond the end."""
        if i < self.first_index() - 1 or i > self.last_index():
            return None
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        return self.storage.term(i)

    def last_term(self) -> int:
        t = self.term(self.last_index())
        assert t is not None, "the last index always has a term"
        return t

    def match_term(self, i: int, t: int) -> bool:
        return self.term(i) == t

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§5.4.1 election restriction: is a log ending at (last_index, last_term) at least as
        up to date as ours?"""
        lt = self.last_term()
        return last_term > lt or (last_term == lt and last_index >= self.last_index())

    # ---- reading entries -------------------------------------------------------------------

    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries ``[lo, hi)``. Raises LookupError if ``lo`` is compacted away."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise LookupError(f"index {lo} is compacted (first index {self.first_index()})")
        hi = min(hi, self.last_index() + 1)
        out: list[Entry] = []
        off = self.unstable.offset
        if lo < off:
            out = self.storage.entries(lo, min(hi, off), max_size)
            if len(out) < min(hi, off) - lo:
                return out  # size limit hit inside storage
        if hi > off:
            u = self.unstable.entries[max(lo, off) - off : hi - off]
            out.extend(u)
        return _limit_size(out, max_size)

    def entries_from(self, lo: int, max_size: int | None) -> list[Entry]:
        return self.slice(lo, self.last_index() + 1, max_size)

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def has_next_committed(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed(self, max_size: int | None) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed < lo:
            return []
        return self.slice(lo, self.committed + 1, max_size)

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    # ---- mutation --------------------------------------------------------------------------

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        """Index of the first entry whose term differs from ours (or that we lack); 0 if all
        match."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest ``i <= index`` with ``term(i) <= term`` (or the first unknown index - 1).

        Used with rejection hints so a leader skips a whole divergent term at a time.
        """
        i = min(index, self.last_index())
        while i > 0:
            t = self.term(i)
            if t is None or t <= term:
                return i
            i -= 1
        return 0

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        if ents[0].index - 1 < self.committed:
            raise LogViolation(
                f"append at {ents[0].index} would truncate committed index {self.committed}"
            )
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def maybe_append(
        self, prev_index: int, prev_term: int, committed: int, ents: tuple[Entry, ...]
    ) -> int | None:
        """AppendEntries receiver rules 2-5 (Figure 2). Returns the last new index, or None
        when (prev_index, prev_term) does not match our log."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            if ci <= self.committed:
                raise LogViolation(f"entry {ci} conflicts with a committed entry")
            self.append(list(ents[ci - prev_index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, i: int) -> None:
        if i > self.committed:
            if i > self.last_index():
                raise LogViolation(f"commit {i} is beyond the last index {self.last_index()}")
            self.committed = i

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Commit ``max_index`` only if it is from the current term (§5.4.2)."""
        if max_index > self.committed and self.term(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i > self.applied:
            assert i <= self.committed, f"applied {i} beyond committed {self.committed}"
            self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        """The driver persisted entries up to (i, t)."""
        u = self.unstable
        if u.maybe_term(i) == t and i >= u.offset:
            u.entries = u.entries[i + 1 - u.offset :]
            u.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.unstable.snapshot is not None and self.unstable.snapshot.meta.index == i:
            self.unstable.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        """Replace the whole log with ``snap`` (follower receiving InstallSnapshot)."""
        self.committed = snap.meta.index
        self.unstable.offset = snap.meta.index + 1
        self.unstable.entries = []
        self.unstable.snapshot = snap


def entry_size(e: Entry) -> int:
    return len(e.data) + ENTRY_OVERHEAD


def _limit_size(ents: list[Entry], max_size: int | None) -> list[Entry]:
    if max_size is None or not ents:
        return ents
    total = 0
    for n, e in enumerate(ents):
        total += entry_size(e)
        if total > max_size and n > 0:
            return ents[:n]
    return ents


__all__ = ["ENTRY_OVERHEAD", "LogReader", "LogViolation", "RaftLog", "entry_size"]
