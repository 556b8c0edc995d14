"""LMDB-specific behaviour: error mapping, shared environment, on-disk layout."""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from p2pmkt.chain.state import Receipt, WriteBatch, next_state_root
from p2pmkt.errors import StorageError, StorageFull
from p2pmkt.storage import LmdbStore, schema
from p2pmkt.testing.conformance import batch_of, commit, init, next_block, tx
from p2pmkt.types import Hash32

MIB = 1 << 20


def test_map_full_at_the_ceiling_raises_storage_full_with_advice_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    with LmdbStore.open(path, map_size=2 * MIB, max_map_size=2 * MIB) as store:
        init(store)
        _, head = commit(store, {"accounts": {b"a" * 20: b"1"}}, txs=[tx(0)])
        big = {"visits": {i.to_bytes(8, "big"): b"v" * 1000 for i in range(4000)}}
        block = next_block(store, [tx(1)])
        receipts = [Receipt(block.txs[0].txid, "ok")]
        batch = batch_of(store, big)
        with pytest.raises(StorageFull, match=(
            rf"^LMDB map of {path} is full at its ceiling of 2MiB while committing block 2; "
            r"nothing of this write was stored\. Raise the ceiling \(node config \[storage\] "
            r"max_map_size, or `p2pmkt node run --max-map-size 4MiB`\) and restart: the node "
            r"resumes from its last committed block\.$"
        )) as info:
            store.commit_block(block, batch, receipts, next_state_root(head.state_root, batch))
        assert isinstance(info.value.__cause__, lmdb.MapFullError)
        assert info.value.reason == "storage_full"
        assert store.head() == head and store.block_at(2) is None
        assert list(store.scan("visits")) == []
    with LmdbStore.open(path, map_size=2 * MIB, max_map_size=64 * MIB) as store:
        assert store.head() == head, "the failed block left no trace on disk"
        batch = batch_of(store, big)
        store.commit_block(block, batch, receipts, next_state_root(head.state_root, batch))
        assert len(list(store.scan("visits"))) == 4000
        assert store.sizer.grown >= 1


def test_open_refuses_a_file_that_is_not_lmdb(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.mkdir()
    (path / "data.mdb").write_bytes(b"not an lmdb file" * 512)
    with pytest.raises(StorageError, match=rf"^cannot open LMDB store at {path}: ") as info:
        LmdbStore.open(path)
    assert isinstance(info.value.__cause__, lmdb.Error)


def test_open_refuses_a_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(StorageError, match=rf"^cannot create store directory {path}: "):
        LmdbStore.open(path)


def test_open_refuses_another_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "s"
    LmdbStore.open(path).close()
    env = lmdb.open(str(path), max_dbs=schema.MAX_DBS)
    try:
        with env.begin(write=True) as txn:
            meta = env.open_db(schema.DB_META, txn=txn)
            txn.put(schema.META_SCHEMA, schema.encode_int(99), db=meta)
    finally:
        env.close()
    with pytest.raises(StorageError, match=(
        rf"^store at {path} has schema version 99, this build reads {schema.SCHEMA_VERSION}; "
        r"use a matching p2pmkt or a fresh directory$"
    )) as info:
        LmdbStore.open(path)
    assert info.value.reason == "schema_version"


def test_corrupt_head_record_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with LmdbStore.open(path) as store:
        init(store)
    env = lmdb.open(str(path), max_dbs=schema.MAX_DBS)
    try:
        with env.begin(write=True) as txn:
            txn.put(schema.META_HEAD, b"\xff\x00", db=env.open_db(schema.DB_META, txn=txn))
    finally:
        env.close()
    with pytest.raises(StorageError, match=r"^corrupt store: head does not decode"):
        LmdbStore.open(path)


def test_raft_log_shares_the_environment_and_its_subdbs_survive(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with LmdbStore.open(path) as store:
        init(store)
        env = store.env
        dbs = [env.open_db(name) for name in schema.RAFT_DBS]
        with env.begin(write=True) as txn:
            for db in dbs:
                txn.put(b"k", b"raft", db=db)
        commit(store, {"accounts": {b"a" * 20: b"1"}})
    with LmdbStore.open(path) as store:
        env = store.env
        with env.begin() as txn:
            assert [txn.get(b"k", db=env.open_db(n, txn=txn)) for n in schema.RAFT_DBS] == [
                b"raft"
            ] * 3
        head = store.head()
        assert head is not None and head.height == 1


def test_layout_is_one_subdb_per_table_with_height_keys(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with LmdbStore.open(path) as store:
        init(store)
        block, _ = commit(store, {"visits": {b"m\x00\x01": b"v"}}, txs=[tx(0)])
    env = lmdb.open(str(path), max_dbs=schema.MAX_DBS, readonly=True)
    try:
        with env.begin() as txn:
            names = {k for k, _ in txn.cursor()}
            assert set(schema.STORE_DBS) <= names
            db = env.open_db(schema.state_db_name("visits"), txn=txn, create=False)
            assert txn.get(b"m\x00\x01", db=db) == b"v"
            blocks = env.open_db(schema.DB_BLOCKS, txn=txn, create=False)
            assert txn.get((1).to_bytes(8, "big"), db=blocks) == block.encode()
            hashes = env.open_db(schema.DB_BLOCK_HASH, txn=txn, create=False)
            assert txn.get(bytes(block.hash), db=hashes) == (1).to_bytes(8, "big")
    finally:
        env.close()


def test_writes_mixing_overwrites_inserts_and_appends_land_exactly(tmp_path: Path) -> None:
    # Exercises the split between cursor puts and MDB_APPEND in one table.
    with LmdbStore.open(tmp_path / "s") as store:
        init(store, {"visits": {b"b": b"1", b"d": b"1"}})
        commit(store, {"visits": {b"a": b"2", b"c": b"2", b"d": b"2", b"e": b"2", b"f": b"2"}})
        commit(store, {"visits": {b"f": None, b"g": b"3", b"0": b"3"}})
        assert list(store.scan("visits")) == [
            (b"0", b"3"), (b"a", b"2"), (b"b", b"1"), (b"c", b"2"), (b"d", b"2"),
            (b"e", b"2"), (b"g", b"3"),
        ]


def test_genesis_without_sync_is_readable_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with LmdbStore.open(path, sync=False) as store:
        head = store.init_genesis(
            WriteBatch(store), Hash32(b"\x05" * 32), state_root=Hash32(b"\x06" * 32), time=7
        )
    with LmdbStore.open(path) as store:
        assert store.head() == head and store.genesis_hash() == b"\x05" * 32
