"""Writer process for the crash-safety test: commits deterministic blocks until killed.

Run as ``python crash_writer.py STORE_DIR``. It opens the LMDB store, writes genesis if the
store is empty, then commits block after block, forever. Around each commit it prints one
line to stdout and flushes, so the test can follow progress and pick its moment to SIGKILL::

    G 0        genesis committed
    B <h>      about to commit height h (the kill may land inside the write transaction)
    C <h>      height h committed

Everything a block writes is a function of its height alone (:func:`writes_at`, :func:`txs_at`),
so the test recomputes the exact expected state of any height without trusting the store.
"""

from __future__ import annotations

import hashlib
import sys
from functools import cache

from p2pmkt.chain.block import build_block
from p2pmkt.chain.state import MemoryState, Receipt, WriteBatch, next_state_root
from p2pmkt.chain.tx import SignedTransaction, make_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.storage import LmdbStore
from p2pmkt.types import ZERO_HASH, Hash32

CHAIN = "crash-test"
GENESIS_HASH = Hash32(hashlib.sha256(b"crash-test genesis").digest())
GENESIS_TIME = 1_764_028_800_000
MAP_SIZE = 256 << 20
PROPOSER = PrivateKey.from_seed("crash/proposer")
SENDER = PrivateKey.from_seed("crash/sender")

Writes = dict[str, dict[bytes, bytes | None]]


def _value(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def genesis_writes() -> Writes:
    return {"meta": {b"genesis": GENESIS_HASH}, "accounts": {b"acct%03d" % i: b"0" for i in range(100)}}


def _visit_key(height: int, i: int) -> bytes:
    return b"m%d\x00" % (height % 3) + (height * 1000 + i).to_bytes(8, "big")


def writes_at(height: int) -> Writes:
    """The state writes of block ``height`` (≥ 1): overwrites, appends and deletes."""
    accounts: dict[bytes, bytes | None] = {
        b"acct%03d" % ((height * 7 + i) % 100): _value("a", height, i) for i in range(20)
    }
    visits: dict[bytes, bytes | None] = {
        _visit_key(height, i): _value("v", height, i) * 2 for i in range(250)
    }
    if height > 5:
        for i in range(0, 250, 2):
            visits[_visit_key(height - 5, i)] = None
    return {
        "accounts": accounts,
        "visits": visits,
        "merchants": {b"m%d" % (height % 3): _value("m", height)},
        "meta": {b"head_height": height.to_bytes(8, "big")},
    }


def batch_of(base: MemoryState | LmdbStore, writes: Writes) -> WriteBatch:
    batch = WriteBatch(base)
    for table, entries in writes.items():
        for key, value in entries.items():
            if value is None:
                batch.delete(table, key)
            else:
                batch.put(table, key, value)
    return batch


def genesis_root(batch: WriteBatch) -> Hash32:
    """Root after genesis (the store takes it from the caller, as from the state machine)."""
    return next_state_root(GENESIS_HASH, batch)


@cache
def txs_at(height: int) -> tuple[SignedTransaction, SignedTransaction]:
    """Two transactions per block: the first is recorded ok, the second rejected."""
    return (
        make_tx(SENDER, CHAIN, 2 * height, "crash.note", {"h": height}),
        make_tx(SENDER, CHAIN, 2 * height + 1, "crash.note", {"h": height, "dup": True}),
    )


def receipts_at(height: int) -> list[Receipt]:
    ok, bad = txs_at(height)
    return [Receipt(ok.txid, "ok"), Receipt(bad.txid, "rejected", "bad_nonce", f"at {height}")]


def main(path: str) -> None:
    store = LmdbStore.open(path, map_size=MAP_SIZE)
    head = store.head()
    if head is None:
        genesis = batch_of(store, genesis_writes())
        head = store.init_genesis(
            genesis, GENESIS_HASH, state_root=genesis_root(genesis), time=GENESIS_TIME
        )
        print("G 0", flush=True)
    while True:
        height = head.height + 1
        batch = batch_of(store, writes_at(height))
        block = build_block(
            PROPOSER, chain=CHAIN, height=height,
            parent=head.hash if head.height else ZERO_HASH, state=head.state_root,
            time=GENESIS_TIME + 100 * height, txs=txs_at(height),
        )
        root = next_state_root(head.state_root, batch)
        print(f"B {height}", flush=True)
        head = store.commit_block(block, batch, receipts_at(height), root)
        print(f"C {height}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
