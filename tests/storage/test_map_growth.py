"""A full LMDB map grows up to its ceiling; at the ceiling nothing is half-written (real LMDB).

The node's side of the story (a node that fills its map stops with exit status 2 and, restarted
with a higher ceiling, catches up) is the chaos scenario ``map-full`` (tests/chaos).
"""

from __future__ import annotations

import threading
from pathlib import Path

import lmdb
import pytest

from p2pmkt.chain.state import Receipt, next_state_root
from p2pmkt.config import (
    DEFAULT_MAP_SIZE,
    DEFAULT_MAX_MAP_SIZE,
    MIN_MAP_SIZE,
    StorageConfig,
    check_storage,
    config_from_dict,
    parse_size,
)
from p2pmkt.errors import ConfigError, StorageError, StorageFull
from p2pmkt.raft import Entry, EntryKind, HardState
from p2pmkt.storage import LmdbStore
from p2pmkt.storage.mapsize import MapLimits, resolve_limits, sizer_for
from p2pmkt.storage.raftlog import LmdbRaftLogStore
from p2pmkt.testing.conformance import batch_of, commit, init, next_block, tx
from p2pmkt.types import LogIndex, Term

MIB = 1 << 20


def _big(n: int, start: int = 0) -> dict[str, dict[bytes, bytes | None]]:
    return {"visits": {i.to_bytes(8, "big"): b"v" * 1000 for i in range(start, start + n)}}


def _commit_big(store: LmdbStore, n: int, start: int = 0, nonce: int = 1) -> None:
    block = next_block(store, [tx(nonce)])
    batch = batch_of(store, _big(n, start))
    head = store.head()
    assert head is not None
    store.commit_block(block, batch, [Receipt(block.txs[0].txid, "ok")],
                       next_state_root(head.state_root, batch))


def _fingerprint(store: LmdbStore) -> tuple[object, ...]:
    head = store.head()
    assert head is not None
    return (head, [b.hash for b in store.blocks_range(1, head.height + 1)],
            list(store.scan("visits")), list(store.scan("accounts")))


def test_a_block_larger_than_the_map_grows_it_and_commits_whole(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with LmdbStore.open(path, map_size=MIB, max_map_size=64 * MIB) as store:
        init(store)
        commit(store, {"accounts": {b"a" * 20: b"1"}}, txs=[tx(0)])
        assert store.get("accounts", b"a" * 20) == b"1"  # a head snapshot is cached now
        _commit_big(store, 4000)  # ~4 MB of values into a 1 MiB map
        assert store.sizer.grown >= 2 and store.sizer.size > 4 * MIB
        # The head snapshot was invalidated by the growth and is taken again.
        assert store.get("accounts", b"a" * 20) == b"1"
        assert len(list(store.scan("visits"))) == 4000
        grown_to = store.sizer.size
        before = _fingerprint(store)
    # A grown map reopens at the size it grew to, even with a smaller configured map_size.
    with LmdbStore.open(path, map_size=MIB, max_map_size=64 * MIB) as store:
        assert store.sizer.size == grown_to
        assert _fingerprint(store) == before


def test_at_the_ceiling_the_block_is_not_half_written_and_a_higher_ceiling_resumes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    with LmdbStore.open(path, map_size=MIB, max_map_size=2 * MIB) as store:
        init(store)
        commit(store, {"accounts": {b"a" * 20: b"1"}}, txs=[tx(0)])
        before = _fingerprint(store)
        with pytest.raises(StorageFull, match=r"full at its ceiling of 2MiB while committing block 2; "
                                              r"nothing of this write was stored") as info:
            _commit_big(store, 4000)
        assert isinstance(info.value.__cause__, lmdb.MapFullError)
        assert store.sizer.grown == 1 and store.sizer.size == 2 * MIB
        assert _fingerprint(store) == before  # this process sees no trace ...
    with LmdbStore.open(path, map_size=MIB, max_map_size=2 * MIB) as store:
        assert _fingerprint(store) == before  # ... nor does a reopened store
        with pytest.raises(StorageFull):
            _commit_big(store, 4000)
    with LmdbStore.open(path, map_size=MIB, max_map_size=16 * MIB) as store:
        _commit_big(store, 4000)
        head = store.head()
        assert head is not None and head.height == 2
        assert len(list(store.scan("visits"))) == 4000


def test_a_snapshot_held_across_a_growth_fails_cleanly(tmp_path: Path) -> None:
    with LmdbStore.open(tmp_path / "s", map_size=MIB, max_map_size=64 * MIB) as store:
        init(store)
        commit(store, {"accounts": {b"a" * 20: b"1"}}, txs=[tx(0)])
        snap = store.snapshot()
        running = store.scan("accounts")
        _commit_big(store, 4000)
        assert store.sizer.grown >= 1
        with pytest.raises(StorageError):
            snap.get("accounts", b"a" * 20)
        with pytest.raises(StorageError):
            list(running)
        snap.close()  # closing an invalidated snapshot is fine
        with store.snapshot() as fresh:
            assert fresh.get("accounts", b"a" * 20) == b"1"


def test_no_growth_off_the_opening_thread(tmp_path: Path) -> None:
    with LmdbStore.open(tmp_path / "s", map_size=MIB, max_map_size=64 * MIB) as store:
        init(store)
        errors: list[BaseException] = []

        def other() -> None:
            try:
                _commit_big(store, 4000)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(errors) == 1 and isinstance(errors[0], StorageFull), errors
        assert "cannot grow from this thread" in str(errors[0])
        head = store.head()
        assert head is not None and head.height == 0
        _commit_big(store, 4000)  # on the opening thread it grows


def _entries(first: int, n: int, size: int) -> list[Entry]:
    return [Entry(Term(1), LogIndex(i), EntryKind.NORMAL, bytes([i % 251]) * size)
            for i in range(first, first + n)]


def test_the_raft_log_in_the_store_environment_grows_and_stops_at_the_ceiling(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    with LmdbStore.open(path, map_size=MIB, max_map_size=4 * MIB) as store:
        init(store)
        log = LmdbRaftLogStore(store.env)
        log.save(HardState(Term(1), None, LogIndex(0)), _entries(1, 10, 1000))
        log.save(None, _entries(11, 200, 10_000))  # 2 MB: grows the shared map
        assert store.sizer.grown >= 1 and log.last_index() == 210
        with pytest.raises(StorageFull, match=r"ceiling of 4MiB while saving the raft log"):
            log.save(HardState(Term(2), None, LogIndex(5)), _entries(211, 400, 10_000))
        assert log.last_index() == 210 and log.initial_state()[0].term == 1
        assert [e.index for e in log.entries(205, 211)] == list(range(205, 211))
    with LmdbStore.open(path, map_size=MIB, max_map_size=64 * MIB) as store:
        log = LmdbRaftLogStore(store.env)
        assert log.last_index() == 210 and log.initial_state()[0].term == 1
        log.save(HardState(Term(2), None, LogIndex(5)), _entries(211, 400, 10_000))
        assert log.last_index() == 610 and log.entries(610, 611)[0].data == bytes([610 % 251]) * 10_000


def test_an_environment_not_opened_by_a_store_never_grows(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "e"), max_dbs=8, map_size=MIB)
    try:
        assert sizer_for(env).ceiling == MIB
        log = LmdbRaftLogStore(env)
        with pytest.raises(StorageFull, match=r"ceiling of 1MiB while saving the raft log"):
            log.save(None, _entries(1, 200, 10_000))
        assert log.last_index() == 0
    finally:
        env.close()


def test_explicit_limits_win_over_the_built_in_defaults() -> None:
    assert resolve_limits(None, None) == MapLimits(DEFAULT_MAP_SIZE, DEFAULT_MAX_MAP_SIZE)
    assert resolve_limits(MIB, None) == MapLimits(MIB, DEFAULT_MAX_MAP_SIZE)
    assert resolve_limits(MIB, 2 * MIB) == MapLimits(MIB, 2 * MIB)
    assert resolve_limits(8 * MIB, MIB) == MapLimits(8 * MIB, 8 * MIB)  # ceiling >= size


def test_stores_open_with_the_limits_they_are_given(tmp_path: Path) -> None:
    with LmdbStore.open(tmp_path / "given", map_size=MIB, max_map_size=2 * MIB) as store:
        assert (store.sizer.size, store.sizer.ceiling) == (MIB, 2 * MIB)
    with LmdbStore.open(tmp_path / "default") as store:
        assert (store.sizer.size, store.sizer.ceiling) == (DEFAULT_MAP_SIZE, DEFAULT_MAX_MAP_SIZE)


def test_storage_config_sizes() -> None:
    assert parse_size("512MiB", "x") == 512 * MIB
    assert parse_size("4 GiB", "x") == 4 << 30
    assert parse_size(65536, "x") == 65536 and parse_size("64k", "x") == 65536
    for bad in ("", "0", "-1", "1.5GiB", "4GB?", 0, True, 1.5, None, "GiB"):
        with pytest.raises(ConfigError, match=r"^x must be a positive size"):
            parse_size(bad, "x")
    base = {"name": "n", "data_dir": "d", "key_file": "k", "genesis": "g"}
    cfg = config_from_dict({**base, "storage": {"map_size": "1MiB", "max_map_size": "8MiB"}},
                           Path("/tmp"))
    assert cfg.storage == StorageConfig(MIB, 8 * MIB)
    assert config_from_dict(base, Path("/tmp")).storage == StorageConfig()
    with pytest.raises(ConfigError, match=r"max_map_size \(1048576\) must not be below"):
        config_from_dict({**base, "storage": {"map_size": "2MiB", "max_map_size": "1MiB"}},
                         Path("/tmp"))
    with pytest.raises(ConfigError, match=r"unknown keys \['size'\]"):
        config_from_dict({**base, "storage": {"size": 1}}, Path("/tmp"))
    with pytest.raises(ConfigError, match="must be at least"):
        check_storage(StorageConfig(MIN_MAP_SIZE - 1, MIB))
