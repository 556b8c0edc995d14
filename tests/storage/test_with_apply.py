"""The store under the real state machine: genesis_batch, apply_block, commit, reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pmkt.chain.apply import apply_block, genesis_batch, read_head
from p2pmkt.chain.block import build_block
from p2pmkt.chain.dev import DEV_GENESIS_TIME, dev_genesis, dev_key
from p2pmkt.chain.tx import make_tx
from p2pmkt.storage import LmdbStore, MemoryStore, Store
from p2pmkt.types import ZERO_HASH, Hash32


def _visit(nonce: int) -> list[object]:
    return ["10.0.0.1", "alice", DEV_GENESIS_TIME + nonce, "acme", "app", "click", "sku1", 0]


def _apply_blocks(store: Store, count: int) -> None:
    genesis = dev_genesis()
    head = store.head()
    assert head is not None
    state_head = read_head(store)
    for _ in range(count):
        height = state_head.height + 1
        txs = [make_tx(dev_key("terminal"), genesis.chain_id, height - 1, "visit.batch",
                       {"visits": [_visit(height)]})]
        block = build_block(
            dev_key("validator"), chain=genesis.chain_id, height=height, parent=state_head.hash,
            state=state_head.state_root, time=state_head.time + 100, txs=txs,
        )
        result = apply_block(store, block, genesis=genesis, runtime=None)
        assert [r.status for r in result.receipts] == ["ok"], result.receipts
        store.commit_block(block, result.batch, result.receipts, result.state_root)
        state_head = read_head(store)


@pytest.mark.parametrize("backend", ["memory", "lmdb"])
def test_applied_blocks_commit_and_heads_agree(backend: str, tmp_path: Path) -> None:
    genesis = dev_genesis()
    store: Store = MemoryStore() if backend == "memory" else LmdbStore.open(tmp_path / "s")
    try:
        batch = genesis_batch(genesis)
        root = batch.get("meta", b"state_root")
        assert root is not None
        store.init_genesis(batch, genesis.hash, state_root=Hash32(root), time=genesis.genesis_time)
        _apply_blocks(store, 3)
        if isinstance(store, LmdbStore):
            store.close()
            store = LmdbStore.open(tmp_path / "s")
        _apply_blocks(store, 1)  # resumes on top of what was committed before the reopen
        head, state_head = store.head(), read_head(store)
        assert head is not None and head.height == state_head.height == 4
        assert (head.hash, head.time, head.state_root) == (
            state_head.hash, state_head.time, state_head.state_root
        ), "the store's head and the state machine's head agree"
        block = store.block_at(4)
        assert block is not None and block.hash == head.hash
        first = store.block_at(1)
        assert first is not None and first.header.parent == ZERO_HASH
        rec = store.tx_status(block.txs[0].txid)
        assert rec is not None and (rec.height, rec.status) == (4, "ok")
    finally:
        store.close()
