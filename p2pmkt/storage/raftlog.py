"""Durable Raft log and hard state: LMDB implementation and its in-memory twin.

Theory of operation
-------------------
A :class:`RaftLogStore` is the write side of the ``p2pmkt.raft.log.LogReader`` Protocol the
core reads through. The driver calls :meth:`RaftLogStore.save` once per Ready with the hard
state, new entries and a received snapshot; the store writes all three in ONE write
transaction and syncs it before returning (when asked to), so that a crash leaves either all of
them or none. That is the "persist" step of the ordering rule in ``p2pmkt.raft.core``.

Layout (LMDB named sub-databases, created in the environment the caller opened)::

    raft_log    8-byte big-endian index -> CBOR [term, kind, data]
    raft_state  b"hard"  -> CBOR [term, vote, commit]
                b"trunc" -> CBOR [index, term]   the log starts after this (compaction point)
    raft_snap   b"meta"  -> CBOR [index, term, [voters, learners]]
                b"data"  -> raw snapshot bytes

Invariants: entries are contiguous from ``trunc.index + 1`` to ``last_index``; the snapshot's
index is ``>= trunc.index``; writing an entry at index ``i`` deletes every entry ``>= i``
first (a follower overwriting a conflicting suffix).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from typing import Any, Protocol

import lmdb

from p2pmkt.errors import StorageError
from p2pmkt.raft.log import LogReader, entry_size
from p2pmkt.raft.messages import (
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMeta,
    entry_from_obj,
    entry_to_obj,
    hard_state_from_obj,
    hard_state_to_obj,
    snapshot_from_obj,
    snapshot_to_obj,
)
from p2pmkt.storage.mapsize import MapSizer, sizer_for
from p2pmkt.types import LogIndex, Term
from p2pmkt.wire import cbor

_KEY = struct.Struct(">Q")


class RaftLogStore(LogReader, Protocol):
    """Durable Raft state. Reads (LogReader) see everything saved so far."""

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        """Persist one Ready atomically: snapshot first (replacing the log), then entries
        (truncating any conflicting suffix), then the hard state. Raises StorageError."""
        ...

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record the application's state as of applied ``index``. Raises StorageError if
        ``index`` is not in the log or older than the current snapshot."""
        ...

    def compact(self, index: int) -> None:
        """Drop entries up to ``index`` (which must be ``<=`` the snapshot index)."""
        ...


class MemoryRaftLogStore:
    """In-memory twin of :class:`LmdbRaftLogStore` for tests and the simulator.

    ``ents[0]`` is a dummy holding the compaction point (index, term), as in etcd's
    MemoryStorage.
    """

    def __init__(self) -> None:
        self.hard = HardState()
        self.snap = Snapshot()
        self.ents: list[Entry] = [Entry(Term(0), LogIndex(0))]
        self.saves = 0

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard, self.snap.meta.conf_state

    def first_index(self) -> int:
        return self.ents[0].index + 1

    def last_index(self) -> int:
        return self.ents[0].index + len(self.ents) - 1

    def term(self, index: int) -> int | None:
        off = self.ents[0].index
        if index < off or index > self.last_index():
            return None
        return self.ents[index - off].term

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        off = self.ents[0].index
        if lo <= off or hi > self.last_index() + 1:
            raise StorageError(f"entries [{lo}, {hi}) are outside the stored log")
        return _limit(self.ents[lo - off : hi - off], max_size)

    def snapshot(self) -> Snapshot:
        return self.snap

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        _check_contiguous(entries)
        self.saves += 1
        if snapshot is not None and snapshot.meta.index > self.ents[0].index:
            self.snap = snapshot
            self.ents = [Entry(snapshot.meta.term, snapshot.meta.index)]
        if entries:
            first: int = entries[0].index
            off = self.ents[0].index
            if first <= off:
                entries = [e for e in entries if e.index > off]
                first = off + 1
            if entries:
                if first > self.last_index() + 1:
                    raise StorageError(
                        f"gap in the log: appending {first} after {self.last_index()}"
                    )
                del self.ents[first - off :]
                self.ents.extend(entries)
        if hard_state is not None:
            self.hard = hard_state

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        if index <= self.snap.meta.index:
            raise StorageError(f"snapshot at {index} is not newer than {self.snap.meta.index}")
        t = self.term(index)
        if t is None:
            raise StorageError(f"cannot snapshot at {index}: not in the log")
        self.snap = Snapshot(SnapshotMeta(LogIndex(index), Term(t), conf_state), data)
        return self.snap

    def compact(self, index: int) -> None:
        off = self.ents[0].index
        if index <= off:
            return
        if index > self.snap.meta.index:
            raise StorageError(f"cannot compact to {index}: beyond the snapshot")
        t = self.term(index)
        assert t is not None
        self.ents = [Entry(Term(t), LogIndex(index)), *self.ents[index - off + 1 :]]


class LmdbRaftLogStore:
    """Raft log on LMDB. Takes an already open environment (``max_dbs`` >= 3 of ours).

    Not thread-safe for writers: one driver owns it. Reads use short read transactions.
    Writes go through the environment's :class:`~p2pmkt.storage.mapsize.MapSizer` (the one
    of the :class:`~p2pmkt.storage.lmdb.LmdbStore` that opened ``env``, if any): a full map
    grows up to its ceiling and the write runs again; at the ceiling ``StorageFull``.
    """

    def __init__(self, env: lmdb.Environment, sizer: MapSizer | None = None) -> None:
        self._env = env
        self._sizer = sizer or sizer_for(env)
        try:
            self._log = env.open_db(b"raft_log")
            self._state = env.open_db(b"raft_state")
            self._snapdb = env.open_db(b"raft_snap")
            self._env_syncs = bool(env.flags().get("sync", True))
            with env.begin() as txn:
                self._hard = _load(
                    txn.get(b"hard", db=self._state), hard_state_from_obj, HardState()
                )
                tr = _load(txn.get(b"trunc", db=self._state), _pair, (0, 0))
                self._trunc: tuple[int, int] = tr
                meta = txn.get(b"meta", db=self._snapdb)
                self._snap_meta = (
                    SnapshotMeta()
                    if meta is None
                    else snapshot_from_obj([*cbor.decode(bytes(meta)), b""]).meta
                )
                cur = txn.cursor(db=self._log)
                self._last: int = int(_KEY.unpack(bytes(cur.key()))[0]) if cur.last() else tr[0]
        except lmdb.Error as exc:
            raise _map_error(exc) from exc

    # ---- LogReader -------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard, self._snap_meta.conf_state

    def first_index(self) -> int:
        return self._trunc[0] + 1

    def last_index(self) -> int:
        return self._last

    def term(self, index: int) -> int | None:
        if index == self._trunc[0]:
            return self._trunc[1]
        if index < self._trunc[0] or index > self._last:
            return None
        with self._env.begin() as txn:
            raw = txn.get(_KEY.pack(index), db=self._log)
        if raw is None:
            return None
        t: int = cbor.decode(bytes(raw))[0]
        return t

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        if lo <= self._trunc[0] or hi > self._last + 1:
            raise StorageError(f"entries [{lo}, {hi}) are outside the stored log")
        out: list[Entry] = []
        total = 0
        with self._env.begin() as txn:
            cur = txn.cursor(db=self._log)
            if not cur.set_key(_KEY.pack(lo)):
                raise StorageError(f"entry {lo} is missing from the log")
            for k, v in cur:
                i = _KEY.unpack(bytes(k))[0]
                if i >= hi:
                    break
                e = _entry(i, bytes(v))
                total += entry_size(e)
                if max_size is not None and out and total > max_size:
                    break
                out.append(e)
        return out

    def snapshot(self) -> Snapshot:
        if self._snap_meta.index == 0:
            return Snapshot(self._snap_meta)
        with self._env.begin() as txn:
            data = txn.get(b"data", db=self._snapdb)
        return Snapshot(self._snap_meta, b"" if data is None else bytes(data))

    # ---- writes ----------------------------------------------------------------------------

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        _check_contiguous(entries)
        def body(txn: Any) -> tuple[tuple[int, int], int, SnapshotMeta]:
            # Run again, whole, after a map growth: no side effects outside ``txn``.
            trunc, last, meta = self._trunc, self._last, self._snap_meta
            if snapshot is not None and snapshot.meta.index > trunc[0]:
                txn.drop(self._log, delete=False)  # a snapshot replaces the whole log
                meta = snapshot.meta
                self._put_snapshot(txn, snapshot)
                trunc = (meta.index, meta.term)
                txn.put(b"trunc", cbor.encode(list(trunc)), db=self._state)
                last = meta.index
            ents = [e for e in entries if e.index > trunc[0]]
            if ents:
                first = ents[0].index
                if first > last + 1:
                    raise StorageError(f"gap in the log: appending {first} after {last}")
                if first <= last:
                    cur = txn.cursor(db=self._log)
                    doomed = (
                        list(cur.iternext(values=False))
                        if cur.set_range(_KEY.pack(first))
                        else []
                    )
                    for k in doomed:
                        txn.delete(k, db=self._log)
                for e in ents:
                    txn.put(
                        _KEY.pack(e.index),
                        cbor.encode_unchecked([e.term, int(e.kind), e.data]),
                        db=self._log,
                        append=True,
                    )
                last = ents[-1].index
            if hard_state is not None:
                txn.put(b"hard", cbor.encode(hard_state_to_obj(hard_state)), db=self._state)
            return trunc, last, meta

        trunc, last, meta = self._sizer.write("saving the raft log", body)
        if sync and not self._env_syncs:
            try:
                self._env.sync(True)
            except lmdb.Error as exc:
                raise _map_error(exc) from exc
        self._trunc, self._last, self._snap_meta = trunc, last, meta
        if hard_state is not None:
            self._hard = hard_state

    def _put_snapshot(self, txn: Any, snap: Snapshot) -> None:
        obj = snapshot_to_obj(snap)
        txn.put(b"meta", cbor.encode(obj[:3]), db=self._snapdb)
        txn.put(b"data", snap.data, db=self._snapdb)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        if index <= self._snap_meta.index:
            raise StorageError(f"snapshot at {index} is not newer than {self._snap_meta.index}")
        t = self.term(index)
        if t is None:
            raise StorageError(f"cannot snapshot at {index}: not in the log")
        snap = Snapshot(SnapshotMeta(LogIndex(index), Term(t), conf_state), data)
        self._sizer.write("saving a raft snapshot", lambda txn: self._put_snapshot(txn, snap))
        self._snap_meta = snap.meta
        return snap

    def compact(self, index: int) -> None:
        if index <= self._trunc[0]:
            return
        if index > self._snap_meta.index:
            raise StorageError(f"cannot compact to {index}: beyond the snapshot")
        t = self.term(index)
        assert t is not None
        def body(txn: Any) -> None:
            cur = txn.cursor(db=self._log)
            doomed = []
            if cur.first():
                for k in cur.iternext(values=False):
                    if _KEY.unpack(bytes(k))[0] > index:
                        break
                    doomed.append(bytes(k))
            for k in doomed:
                txn.delete(k, db=self._log)
            txn.put(b"trunc", cbor.encode([index, t]), db=self._state)

        self._sizer.write("compacting the raft log", body)
        self._trunc = (index, t)


def _check_contiguous(entries: Sequence[Entry]) -> None:
    for a, b in itertools.pairwise(entries):
        if b.index != a.index + 1:
            raise StorageError(f"entries to save are not contiguous: {a.index} then {b.index}")


def _entry(index: int, raw: bytes) -> Entry:
    term, kind, data = cbor.decode(raw)
    return entry_from_obj([term, index, kind, data])


def _pair(obj: Any) -> tuple[int, int]:
    return int(obj[0]), int(obj[1])


def _load(raw: Any, fn: Any, default: Any) -> Any:
    return default if raw is None else fn(cbor.decode(bytes(raw)))


def _limit(ents: list[Entry], max_size: int | None) -> list[Entry]:
    if max_size is None:
        return ents
    total = 0
    for n, e in enumerate(ents):
        total += entry_size(e)
        if total > max_size and n > 0:
            return ents[:n]
    return ents


def _map_error(exc: lmdb.Error) -> StorageError:
    return StorageError(f"LMDB failed in the raft log store: {exc}")


__all__ = [
    "LmdbRaftLogStore",
    "MemoryRaftLogStore",
    "RaftLogStore",
    "entry_from_obj",
    "entry_to_obj",
]
