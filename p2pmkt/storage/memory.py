"""The in-memory twin of :class:`~p2pmkt.storage.lmdb.LmdbStore`, for node and chain tests.

Theory of operation
-------------------
Same API, same rules (:mod:`p2pmkt.storage.api`), same conformance suite, no disk. State is a
mapping ``table → dict`` that is **copy-on-write per commit**: a commit builds new dicts for
the tables it touches and swaps them in, so a :class:`MemorySnapshot` (which keeps the old
dicts) is isolated from later commits exactly as an LMDB read transaction is. Blocks are kept
as wire bytes and decoded on read, so callers get the same fresh objects LMDB gives them and a
block that does not round-trip fails here too.

Precondition checks are shared with LMDB (:mod:`p2pmkt.storage._common`), and a commit either
applies in full or raises before changing anything. Copying a touched table costs O(table
size) per block: fine for tests, which is all this is for.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from types import TracebackType

from p2pmkt.chain.block import Block, decode_block
from p2pmkt.chain.state import TABLES, Receipt, WriteBatch
from p2pmkt.errors import StorageError
from p2pmkt.storage._common import (
    check_batch_keys,
    commit_head,
    genesis_head,
    height_bounds,
    tx_outcomes,
)
from p2pmkt.storage.api import Head, StateSnapshot, TxRecord
from p2pmkt.types import Hash32

_Tables = dict[str, dict[bytes, bytes]]


class MemorySnapshot:
    """A :class:`StateSnapshot` over the table dicts of one commit (never mutated later)."""

    __slots__ = ("_sorted", "_tables")

    def __init__(self, tables: _Tables) -> None:
        self._tables: _Tables | None = tables
        self._sorted: dict[str, list[bytes]] = {}

    def get(self, table: str, key: bytes) -> bytes | None:
        return self._table(table).get(key)

    def scan(
        self, table: str, start: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        data = self._table(table)
        keys = self._sorted.get(table)
        if keys is None:
            keys = self._sorted[table] = sorted(data)
        return self._scan(table, data, keys, start, end)

    def _scan(
        self, table: str, data: dict[bytes, bytes], keys: list[bytes], start: bytes, end: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        i = bisect.bisect_left(keys, start)
        stop = len(keys) if end is None else bisect.bisect_left(keys, end)
        while i < stop:
            self._table(table)  # a closed snapshot fails mid-iteration, as with LMDB
            key = keys[i]
            yield key, data[key]
            i += 1

    def close(self) -> None:
        self._tables = None
        self._sorted = {}

    def __enter__(self) -> MemorySnapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _table(self, table: str) -> dict[bytes, bytes]:
        if self._tables is None:
            raise StorageError("state snapshot is closed; take a new one", reason="closed")
        try:
            return self._tables[table]
        except KeyError:
            raise KeyError(f"unknown state table {table!r}") from None


class MemoryStore:
    """A :class:`~p2pmkt.storage.api.Store` held in memory; lost when the object goes."""

    def __init__(self) -> None:
        self._tables: _Tables = {t: {} for t in TABLES}
        self._blocks: list[bytes] = []  # index i holds height i + 1
        self._by_hash: dict[bytes, int] = {}
        self._txs: dict[bytes, TxRecord] = {}
        self._genesis_hash: Hash32 | None = None
        self._head: Head | None = None
        self._head_snap: MemorySnapshot | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        self._head_snap = None

    def __enter__(self) -> MemoryStore:
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
        self._apply_state(batch)
        self._genesis_hash = genesis_hash
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
        # Everything that can fail is above this line: the rest cannot leave half a block.
        self._blocks.append(block.encode())
        self._by_hash[bytes(block.hash)] = block.height
        for txid, (index, receipt) in tx_outcomes(receipts).items():
            old = self._txs.get(txid)
            if old is not None and old.status == "ok" and receipt.status != "ok":
                continue
            self._txs[txid] = TxRecord(
                txid=Hash32(txid), height=block.height, index=index, status=receipt.status,
                reason=receipt.reason, message=receipt.message,
            )
        self._apply_state(batch)
        self._set_head(head)
        return head

    def _apply_state(self, batch: WriteBatch) -> None:
        tables = dict(self._tables)
        for table, writes in batch.writes().items():
            target = dict(tables[table])  # copy-on-write: open snapshots keep the old dict
            for key, value in writes.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
            tables[table] = target
        self._tables = tables

    def _set_head(self, head: Head) -> None:
        self._head = head
        self._head_snap = None

    # -- reads -----------------------------------------------------------------------------

    def head(self) -> Head | None:
        self._check_open()
        return self._head

    def genesis_hash(self) -> Hash32 | None:
        self._check_open()
        return self._genesis_hash

    def snapshot(self) -> StateSnapshot:
        self._check_open()
        return MemorySnapshot(self._tables)

    def get(self, table: str, key: bytes) -> bytes | None:
        return self._snap().get(table, key)

    def scan(
        self, table: str, start: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        return self._snap().scan(table, start, end)

    def block_bytes_at(self, height: int) -> bytes | None:
        if height not in height_bounds(height, height + 1, self.head()):
            return None
        return self._blocks[height - 1]

    def block_at(self, height: int) -> Block | None:
        raw = self.block_bytes_at(height)
        return None if raw is None else decode_block(raw)

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        self._check_open()
        height = self._by_hash.get(bytes(block_hash))
        return None if height is None else self.block_at(height)

    def blocks_range(self, lo: int, hi: int) -> list[Block]:
        return [decode_block(self._blocks[h - 1]) for h in height_bounds(lo, hi, self.head())]

    def tx_status(self, txid: bytes) -> TxRecord | None:
        self._check_open()
        return self._txs.get(bytes(txid))

    def _snap(self) -> MemorySnapshot:
        self._check_open()
        if self._head_snap is None:
            self._head_snap = MemorySnapshot(self._tables)
        return self._head_snap

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("memory store is closed", reason="closed")

