"""Rules both store backends enforce identically (so the twins cannot drift apart).

Each function checks a precondition of a write and raises :class:`StorageError` with a message
that names the mismatch; the backends call them before they touch any data.
"""

from __future__ import annotations

from collections.abc import Sequence

from p2pmkt.chain.block import Block
from p2pmkt.chain.state import Receipt, WriteBatch
from p2pmkt.errors import StorageError
from p2pmkt.storage.api import Head
from p2pmkt.types import Hash32, Height

RECEIPT_STATUSES = ("ok", "rejected")

MAX_KEY_BYTES = 511
"""LMDB's compiled-in key size limit; both backends refuse keys outside 1..511 bytes."""


def check_batch_keys(batch: WriteBatch) -> None:
    """Refuse a batch holding a key no backend can store (a handler bug, caught before I/O)."""
    for table, writes in batch.writes().items():
        for key in writes:
            if not 0 < len(key) <= MAX_KEY_BYTES:
                raise StorageError(
                    f"state key of {len(key)} bytes in table {table!r}: keys must be 1 to "
                    f"{MAX_KEY_BYTES} bytes (LMDB's limit)",
                    reason="bad_key",
                )


def genesis_head(head: Head | None, genesis_hash: Hash32, state_root: Hash32, time: int) -> Head:
    """The head that ``init_genesis`` will write, after checking it may."""
    if head is not None:
        raise StorageError(
            f"store already holds a chain (head at height {head.height}); "
            "genesis is written once, into an empty store",
            reason="genesis_exists",
        )
    if len(genesis_hash) != 32:
        raise StorageError(f"genesis hash must be 32 bytes, got {len(genesis_hash)}")
    if len(state_root) != 32:
        raise StorageError(f"state root must be 32 bytes, got {len(state_root)}")
    return Head(height=Height(0), hash=genesis_hash, time=time, state_root=state_root)


def commit_head(
    head: Head | None, block: Block, receipts: Sequence[Receipt], state_root: Hash32
) -> Head:
    """The head after ``block``, after checking that it extends ``head`` and matches receipts."""
    if head is None:
        raise StorageError(
            "store has no genesis yet: call init_genesis before commit_block",
            reason="no_genesis",
        )
    if block.height != head.height + 1:
        raise StorageError(
            f"block {block.height} does not extend the head at height {head.height}; "
            "blocks are committed in order, one height at a time",
            reason="not_next_block",
        )
    if block.height >= 2 and block.header.parent != head.hash:
        raise StorageError(
            f"block {block.height}'s parent 0x{bytes(block.header.parent).hex()} is not the "
            f"head 0x{bytes(head.hash).hex()}",
            reason="not_next_block",
        )
    if len(receipts) != len(block.txs):
        raise StorageError(
            f"block {block.height} has {len(block.txs)} transactions but {len(receipts)} "
            "receipts; pass exactly one receipt per transaction",
            reason="bad_receipts",
        )
    for index, (stx, receipt) in enumerate(zip(block.txs, receipts)):
        if receipt.txid != stx.txid:
            raise StorageError(
                f"receipt {index} of block {block.height} is for another transaction "
                "(receipts must follow the block's transaction order)",
                reason="bad_receipts",
            )
        if receipt.status not in RECEIPT_STATUSES:
            raise StorageError(
                f"receipt {index} of block {block.height} has status {receipt.status!r}; "
                f"expected one of {RECEIPT_STATUSES}",
                reason="bad_receipts",
            )
    if len(state_root) != 32:
        raise StorageError(f"state root must be 32 bytes, got {len(state_root)}")
    return Head(height=block.height, hash=block.hash, time=block.header.time, state_root=state_root)


def height_bounds(lo: int, hi: int, head: Head | None) -> range:
    """Heights ``lo <= h < hi`` that hold a block given ``head``."""
    top = 0 if head is None else head.height
    return range(max(lo, 1), min(hi, top + 1))


def tx_outcomes(receipts: Sequence[Receipt]) -> dict[bytes, tuple[int, Receipt]]:
    """txid → (index in block, receipt) to record for a block's receipts.

    A txid that occurs twice in one block keeps its best outcome: the first success, else
    the last rejection (the tx-index rule of :mod:`p2pmkt.storage.api`).
    """
    out: dict[bytes, tuple[int, Receipt]] = {}
    for index, receipt in enumerate(receipts):
        txid = bytes(receipt.txid)
        prior = out.get(txid)
        if prior is not None and prior[1].status == "ok":
            continue
        out[txid] = (index, receipt)
    return out
