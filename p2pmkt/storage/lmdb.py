"""The on-disk store: LMDB, one write transaction per block.

Theory of operation
-------------------
:class:`LmdbStore` owns one LMDB environment (a directory; layout in
:mod:`p2pmkt.storage.schema`). :meth:`LmdbStore.commit_block` writes the block, its hash
index, the transaction index, every write of the block's :class:`WriteBatch` and the new head
in **one** write transaction. LMDB is copy-on-write with a two-meta-page commit: until the
commit's final meta-page write is durable, a reopened environment sees the previous commit,
so a crash (``SIGKILL``, power loss with ``sync=True``) resumes at the last committed block
with nothing partial. ``tests/storage/test_crash.py`` kills a writer process at random
moments to hold us to that.

Reads go through read transactions. The store keeps one *head snapshot* (a read transaction)
for ``get``/``scan``/block queries and drops it after every commit, so the next read sees the
new head; an iterator that is still alive keeps its old snapshot until it is garbage (LMDB
read transactions are cheap; a leaked one only delays page reuse). :meth:`LmdbStore.snapshot`
hands out an explicit, independently closable snapshot.

Cost model (machine-limits §4): a durable commit costs about 250 µs of fsync, so one commit
per block, never per transaction; writes are applied per sub-db in sorted key order and keys
past a sub-db's last key go in with ``MDB_APPEND`` (see :mod:`~p2pmkt.storage.schema`).

Map size: every write goes through the environment's :class:`~p2pmkt.storage.mapsize.MapSizer`:
a write that does not fit grows the map (up to ``max_map_size``) and runs again; at the ceiling
it fails with :class:`StorageFull` (nothing of the failed call was written; the message says
what to raise). A growth invalidates every read transaction, so the head snapshot is dropped.

Errors: every ``lmdb.Error`` is mapped here, with ``raise … from exc``: ``MapFullError`` at the
ceiling → :class:`StorageFull`, anything else → :class:`StorageError` naming the operation and
the path.

Must not know: what state tables mean, how blocks are applied, or Raft (the Raft log module
receives :attr:`LmdbStore.env` and opens its own sub-dbs in the same environment).
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import lmdb

from p2pmkt.chain.block import Block, decode_block
from p2pmkt.chain.state import TABLES, Receipt, WriteBatch
from p2pmkt.config import DEFAULT_MAP_SIZE as DEFAULT_MAP_SIZE
from p2pmkt.errors import DecodeError, InvalidBlock, StorageError
from p2pmkt.storage import schema
from p2pmkt.storage._common import (
    check_batch_keys,
    commit_head,
    genesis_head,
    height_bounds,
    tx_outcomes,
)
from p2pmkt.storage.api import Head, StateSnapshot, TxRecord
from p2pmkt.storage.mapsize import MapSizer, open_env, resolve_limits
from p2pmkt.types import Hash32

_first = operator.itemgetter(0)


def _lmdb_error(exc: lmdb.Error, what: str, path: Path) -> StorageError:
    return StorageError(f"LMDB failed while {what} at {path}: {exc}")


class LmdbSnapshot:
    """A :class:`StateSnapshot` over one LMDB read transaction.

    Closing it aborts the transaction; an iterator from :meth:`scan` that is still running
    then fails with :class:`StorageError` on its next step.
    """

    __slots__ = ("_dbs", "_path", "_txn")

    def __init__(self, txn: Any, dbs: dict[str, Any], path: Path) -> None:
        self._txn: Any = txn
        self._dbs = dbs
        self._path = path

    def get(self, table: str, key: bytes) -> bytes | None:
        # Block application reads ~3 keys per transaction through here: the closed check
        # and table lookup of _db() are inlined.
        txn = self._txn
        db = self._dbs.get(table)
        if txn is None or db is None:
            self._db(table)  # raises the closed / unknown-table error
        if not key:
            return None  # LMDB cannot hold an empty key, so nothing is stored there
        try:
            value: bytes | None = txn.get(key, db=db)
        except lmdb.Error as exc:
            raise _lmdb_error(exc, f"reading {table!r}", self._path) from exc
        return value

    def scan(
        self, table: str, start: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        # Not a generator itself: an unknown table or a closed snapshot fails at the call.
        return self._scan(self._db(table), table, start, end)

    def _scan(
        self, db: Any, table: str, start: bytes, end: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        try:
            with self._txn.cursor(db=db) as cur:
                more = cur.set_range(start) if start else cur.first()
                while more:
                    key = cur.key()
                    if end is not None and key >= end:
                        return
                    yield key, cur.value()
                    more = cur.next()
        except lmdb.Error as exc:
            if self._txn is None:  # closed under a running iterator
                raise StorageError(
                    "state snapshot is closed; take a new one", reason="closed"
                ) from exc
            raise _lmdb_error(exc, f"scanning {table!r}", self._path) from exc

    def close(self) -> None:
        if self._txn is not None:
            self._txn.abort()
            self._txn = None

    def __enter__(self) -> LmdbSnapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _db(self, table: str) -> Any:
        if self._txn is None:
            raise StorageError("state snapshot is closed; take a new one", reason="closed")
        try:
            return self._dbs[table]
        except KeyError:
            raise KeyError(f"unknown state table {table!r}") from None

    @property
    def txn(self) -> Any:
        """The read transaction (store-internal: block and index queries share it)."""
        if self._txn is None:
            raise StorageError("state snapshot is closed; take a new one", reason="closed")
        return self._txn


class LmdbStore:
    """Blocks, indexes and chain state in one LMDB environment (a :class:`Store`).

    Open with :meth:`open`; one instance per path per process (LMDB forbids opening an
    environment twice in one process). Not thread-safe: see :mod:`p2pmkt.storage.api`.
    """

    def __init__(self, env: Any, path: Path, sizer: MapSizer, dbs: dict[bytes, Any], head: Head | None) -> None:
        """Use :meth:`open`."""
        self._env: Any = env
        self._path = path
        self._sizer = sizer
        sizer.on_resize(self._drop_head_snapshot)
        self._blocks = dbs[schema.DB_BLOCKS]
        self._block_hash = dbs[schema.DB_BLOCK_HASH]
        self._txs = dbs[schema.DB_TXS]
        self._meta = dbs[schema.DB_META]
        self._state_dbs = {t: dbs[schema.state_db_name(t)] for t in TABLES}
        self._head = head
        self._head_snap: LmdbSnapshot | None = None

    @classmethod
    def open(
        cls, path: str | Path, *, map_size: int | None = None, max_map_size: int | None = None,
        sync: bool = True,
    ) -> LmdbStore:
        """Open (creating if needed) the store in directory ``path`` and resume at its head.

        Args:
            path: directory of the LMDB environment.
            map_size: map to start with, in bytes (a map that grew earlier opens at the size
                it grew to). Default: :data:`DEFAULT_MAP_SIZE`.
            max_map_size: ceiling the map grows to on demand, never below ``map_size``; a
                write that does not fit below it fails with :class:`StorageFull`. Raise it
                (and reopen) then. Default: :data:`p2pmkt.config.DEFAULT_MAX_MAP_SIZE`.
            sync: fsync every commit (default). ``False`` survives process crashes but not
                power loss; for tests and throwaway dev chains only.

        Raises:
            StorageError: the directory cannot be created or holds something that is not a
                p2pmkt store of this schema version.
        """
        p = Path(path)
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create store directory {p}: {exc}") from exc
        limits = resolve_limits(map_size, max_map_size)
        try:
            env, sizer = open_env(p, limits, max_dbs=schema.MAX_DBS, subdir=True,
                                  sync=sync, metasync=sync)
        except lmdb.Error as exc:
            raise StorageError(f"cannot open LMDB store at {p}: {exc}") from exc
        def body(txn: Any) -> tuple[dict[bytes, Any], Head | None]:
            dbs = {name: env.open_db(name, txn=txn, create=True) for name in schema.STORE_DBS}
            meta = dbs[schema.DB_META]
            raw_version = txn.get(schema.META_SCHEMA, db=meta)
            if raw_version is None:
                txn.put(schema.META_SCHEMA, schema.encode_int(schema.SCHEMA_VERSION), db=meta)
            elif (found := schema.decode_int(raw_version, "schema version")) != schema.SCHEMA_VERSION:
                raise StorageError(
                    f"store at {p} has schema version {found}, this build reads "
                    f"{schema.SCHEMA_VERSION}; use a matching p2pmkt or a fresh directory",
                    reason="schema_version",
                )
            raw_head = txn.get(schema.META_HEAD, db=meta)
            return dbs, None if raw_head is None else schema.decode_head(raw_head)

        try:
            dbs, head = sizer.write("opening", body)
        except BaseException:
            env.close()
            raise
        return cls(env, p, sizer, dbs, head)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def env(self) -> Any:
        """The ``lmdb.Environment``, for :mod:`p2pmkt.storage.raftlog` (its own sub-dbs)."""
        self._check_open()
        return self._env

    @property
    def path(self) -> Path:
        return self._path

    @property
    def sizer(self) -> MapSizer:
        """The environment's map sizer (current size, ceiling, growth count)."""
        return self._sizer

    def close(self) -> None:
        if self._env is not None:
            self._drop_head_snapshot()
            self._env.close()
            self._env = None

    def __enter__(self) -> LmdbStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------------

    def init_genesis(
        self,
        batch: WriteBatch,
        genesis_hash: Hash32,
        *,
        state_root: Hash32,
        time: int,
    ) -> Head:
        """See :meth:`p2pmkt.storage.api.BlockStore.init_genesis`."""
        self._check_open()
        head = genesis_head(self._head, genesis_hash, state_root, time)
        check_batch_keys(batch)

        def body(txn: Any) -> None:
            self._write_state(txn, batch)
            txn.put(schema.META_GENESIS_HASH, bytes(genesis_hash), db=self._meta)
            txn.put(schema.META_HEAD, schema.encode_head(head), db=self._meta)

        self._sizer.write("writing genesis", body)
        self._set_head(head)
        return head

    def commit_block(
        self,
        block: Block,
        batch: WriteBatch,
        receipts: Sequence[Receipt],
        state_root: Hash32,
    ) -> Head:
        """See :meth:`p2pmkt.storage.api.BlockStore.commit_block`."""
        self._check_open()
        head = commit_head(self._head, block, receipts, state_root)
        check_batch_keys(batch)
        block_bytes = block.encode()
        outcomes = tx_outcomes(receipts)

        def body(txn: Any) -> None:  # run again, whole, after a map growth
            txn.put(schema.height_key(block.height), block_bytes, db=self._blocks, append=True)
            txn.put(bytes(block.hash), schema.height_key(block.height), db=self._block_hash)
            self._write_tx_index(txn, block.height, outcomes)
            self._write_state(txn, batch)
            txn.put(schema.META_HEAD, schema.encode_head(head), db=self._meta)

        self._sizer.write(f"committing block {block.height}", body)
        self._set_head(head)
        return head

    def _write_tx_index(
        self, txn: Any, height: int, outcomes: dict[bytes, tuple[int, Receipt]]
    ) -> None:
        puts = []
        for txid in sorted(outcomes):
            index, receipt = outcomes[txid]
            if receipt.status != "ok":
                # Rejections never overwrite an earlier success (api.py rules): look first.
                old = txn.get(txid, db=self._txs)
                if old is not None and schema.tx_record_is_ok(old):
                    continue
            value = schema.encode_tx_record(
                height, index, receipt.status, receipt.reason, receipt.message
            )
            puts.append((txid, value))
        with txn.cursor(db=self._txs) as cur:
            cur.putmulti(puts)

    def _write_state(self, txn: Any, batch: WriteBatch) -> None:
        for table, writes in batch.writes().items():
            db = self._state_dbs[table]
            puts: list[tuple[bytes, bytes]] = []
            for key in sorted(writes):
                value = writes[key]
                if value is None:
                    txn.delete(key, db=db)
                else:
                    puts.append((key, value))
            if puts:
                _put_sorted(txn, db, puts)

    def _set_head(self, head: Head) -> None:
        self._head = head
        self._drop_head_snapshot()

    # -- reads -----------------------------------------------------------------------------

    def head(self) -> Head | None:
        self._check_open()
        return self._head

    def snapshot(self) -> StateSnapshot:
        """See :meth:`p2pmkt.storage.api.CommittedState.snapshot`."""
        self._check_open()
        try:
            txn = self._env.begin()
        except lmdb.Error as exc:
            raise _lmdb_error(exc, "starting a read transaction", self._path) from exc
        return LmdbSnapshot(txn, self._state_dbs, self._path)

    def get(self, table: str, key: bytes) -> bytes | None:
        snap = self._head_snap
        return (snap if snap is not None else self._snap()).get(table, key)

    def scan(
        self, table: str, start: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        return self._snap().scan(table, start, end)

    def block_bytes_at(self, height: int) -> bytes | None:
        if height not in height_bounds(height, height + 1, self.head()):
            return None
        return self._read(self._blocks, schema.height_key(height), "reading a block")

    def block_at(self, height: int) -> Block | None:
        raw = self.block_bytes_at(height)
        return None if raw is None else _decode_stored_block(raw, height)

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        if len(block_hash) != 32:
            return None
        raw = self._read(self._block_hash, bytes(block_hash), "reading the block-hash index")
        return None if raw is None else self.block_at(schema.decode_height(raw))

    def blocks_range(self, lo: int, hi: int) -> list[Block]:
        heights = height_bounds(lo, hi, self.head())
        if not heights:
            return []
        out = []
        try:
            with self._snap().txn.cursor(db=self._blocks) as cur:
                more = cur.set_key(schema.height_key(heights.start))
                while more:
                    height = schema.decode_height(cur.key())
                    if height >= heights.stop:
                        break
                    out.append(_decode_stored_block(cur.value(), height))
                    more = cur.next()
        except lmdb.Error as exc:
            raise _lmdb_error(exc, "reading blocks", self._path) from exc
        return out

    def tx_status(self, txid: bytes) -> TxRecord | None:
        if len(txid) != 32:
            return None
        raw = self._read(self._txs, bytes(txid), "reading the transaction index")
        return None if raw is None else schema.decode_tx_record(txid, raw)

    def genesis_hash(self) -> Hash32 | None:
        """Hash recorded by :meth:`init_genesis`, or None before it."""
        raw = self._read(self._meta, schema.META_GENESIS_HASH, "reading meta")
        return None if raw is None else Hash32(raw)

    def _read(self, db: Any, key: bytes, what: str) -> bytes | None:
        try:
            value: bytes | None = self._snap().txn.get(key, db=db)
        except lmdb.Error as exc:
            raise _lmdb_error(exc, what, self._path) from exc
        return value

    def _snap(self) -> LmdbSnapshot:
        snap = self._head_snap
        if snap is None:
            self._check_open()
            snap = self._head_snap = LmdbSnapshot(self._env.begin(), self._state_dbs, self._path)
        return snap

    def _drop_head_snapshot(self) -> None:
        # Not closed: a scan iterator that is still alive may hold it, and it is aborted when
        # the last reference goes (py-lmdb aborts a read transaction on deallocation).
        self._head_snap = None

    def _check_open(self) -> None:
        if self._env is None:
            raise StorageError(f"store at {self._path} is closed", reason="closed")


def _put_sorted(txn: Any, db: Any, puts: list[tuple[bytes, bytes]]) -> None:
    """Write ``puts`` (sorted, unique keys); the tail beyond the current last key appends."""
    with txn.cursor(db=db) as cur:
        split = bisect.bisect_right(puts, cur.key(), key=_first) if cur.last() else 0
        if split:
            cur.putmulti(puts[:split])
        if split < len(puts):
            cur.putmulti(puts[split:], append=True)


def _decode_stored_block(raw: bytes, height: int) -> Block:
    try:
        return decode_block(raw)
    except (DecodeError, InvalidBlock) as exc:
        raise StorageError(f"corrupt store: block {height} does not decode ({exc})") from exc
