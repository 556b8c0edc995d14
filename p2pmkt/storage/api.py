"""What the rest of the node may ask of storage: value types and Protocols.

Theory of operation
-------------------
The applier turns a block into a :class:`~p2pmkt.chain.state.WriteBatch`, receipts and a state
root, reading committed state through :class:`CommittedState` (a
:class:`~p2pmkt.chain.state.StateReader`). It then hands all of that to
:meth:`BlockStore.commit_block`, which makes the block, its indexes, every write of the batch
and the new head durable **together**: after a crash the store holds either the whole block or
none of it (SPEC "Storage"; issue 2 item 6).

Two implementations pass the same conformance suite
(:func:`p2pmkt.testing.conformance.check_store`): :class:`~p2pmkt.storage.lmdb.LmdbStore` on
disk and :class:`~p2pmkt.storage.memory.MemoryStore`, its in-memory twin for node tests.

Rules every implementation keeps
--------------------------------
* Blocks are appended: ``commit_block`` takes exactly height ``head.height + 1`` whose parent is
  the head's hash (from height 2 on; height 1's parent is fixed by chain rules, not here).
* The store commits whatever the batch says. It does not interpret state tables, so chain
  rules (including the state machine's own head keys in the ``meta`` state table) stay in
  :mod:`p2pmkt.chain`; the store only adds its block and transaction indexes and its head.
* The transaction index keeps the *best* outcome of a txid: once a transaction is recorded
  ``"ok"``, a later inclusion of the same bytes (a replay, rejected by nonce) does not
  overwrite it; a rejection is replaced by a later rejection or success.
* ``get``/``scan`` on the store read the state at the head; they see a new block only after
  its ``commit_block`` returned. ``snapshot()`` pins one state for as long as it is open.
* Misuse (out-of-order block, second genesis, use after close) raises
  :class:`~p2pmkt.errors.StorageError`; a full disk map raises
  :class:`~p2pmkt.errors.StorageFull`. Nothing else escapes.
* Implementations are not thread-safe: one owner calls them, one call at a time (the node's
  applier decides whether a call runs in a worker thread). A snapshot may be handed to another
  thread, but also used by one thread at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from p2pmkt.chain.block import Block
from p2pmkt.chain.state import Receipt, StateReader, WriteBatch
from p2pmkt.types import Hash32, Height


@dataclass(frozen=True, slots=True)
class Head:
    """The last committed block: height 0 is genesis (``hash`` is then the genesis hash).

    ``state_root`` is the root *after* this block, i.e. the ``state`` field the next block's
    header must carry; ``time`` is the block time in ms (for genesis, what the caller passed).
    """

    height: Height
    hash: Hash32
    time: int
    state_root: Hash32


@dataclass(frozen=True, slots=True)
class TxRecord:
    """Where a transaction was included and what became of it (``tx.get`` answers with it).

    ``status`` is ``"ok"`` or ``"rejected"``; ``reason``/``message`` come from the receipt.
    """

    txid: Hash32
    height: Height
    index: int
    status: str
    reason: str
    message: str


class StateSnapshot(StateReader, Protocol):
    """A :class:`StateReader` pinned to one committed state until :meth:`close`.

    Use it as a context manager. While it is open LMDB cannot reuse the pages it sees, so keep
    it short (a query, an export), not for the life of the node.
    """

    def close(self) -> None:
        """Release the snapshot; idempotent. Reading afterwards raises StorageError."""
        ...

    def __enter__(self) -> StateSnapshot: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class CommittedState(StateReader, Protocol):
    """Committed chain state: ``get``/``scan`` read the head state; ``snapshot`` pins one."""

    def snapshot(self) -> StateSnapshot:
        """A reader of the state as of now, unaffected by later commits."""
        ...


class BlockStore(Protocol):
    """Blocks, their hash and transaction indexes, and the head, committed atomically."""

    def head(self) -> Head | None:
        """The last committed block, or None before :meth:`init_genesis`."""
        ...

    def genesis_hash(self) -> Hash32 | None:
        """The genesis hash passed to :meth:`init_genesis`, or None before it.

        A restarting node compares it with its genesis file and refuses to mix chains.
        """
        ...

    def init_genesis(
        self,
        batch: WriteBatch,
        genesis_hash: Hash32,
        *,
        state_root: Hash32,
        time: int,
    ) -> Head:
        """Commit the genesis state as height 0, in one write transaction.

        Args:
            batch: the genesis writes (``chain.apply.genesis_batch``).
            genesis_hash: becomes the hash of height 0.
            state_root: the state root after genesis, as the state machine computed it
                (``genesis_batch`` records it under ``meta/state_root``). Required: the store
                does not know the chain's rule for it and must not guess.
            time: block time of height 0, normally the genesis file's ``genesis_time``.

        Raises:
            StorageError: the store already has a genesis.
        """
        ...

    def commit_block(
        self,
        block: Block,
        batch: WriteBatch,
        receipts: Sequence[Receipt],
        state_root: Hash32,
    ) -> Head:
        """Durably commit ``block`` with its state writes, receipts and post-state root.

        Everything lands in one write transaction: either all of it survives a crash or none.

        Raises:
            StorageError: no genesis yet, ``block`` does not extend the head, or the receipts
                do not match its transactions one to one, in order.
            StorageFull: the LMDB map is full; nothing was written.
        """
        ...

    def block_at(self, height: int) -> Block | None:
        """The committed block at ``height`` (None for 0, negative or above the head)."""
        ...

    def block_bytes_at(self, height: int) -> bytes | None:
        """Wire bytes of the block at ``height`` without decoding them (serving peers)."""
        ...

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        """The committed block whose header hashes to ``block_hash``, or None."""
        ...

    def blocks_range(self, lo: int, hi: int) -> list[Block]:
        """Committed blocks with ``lo <= height < hi``, ascending (clamped to what exists)."""
        ...

    def tx_status(self, txid: bytes) -> TxRecord | None:
        """The index entry of a transaction included in a committed block, or None."""
        ...


class Store(BlockStore, CommittedState, Protocol):
    """A whole node store: blocks and committed state. Close it when done."""

    def close(self) -> None:
        """Release every resource; idempotent. Any later call raises StorageError."""
        ...

    def __enter__(self) -> Store: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

