"""RaftLogStore conformance (memory and LMDB) and LMDB durability across a restart."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest

from p2pmkt.errors import StorageError
from p2pmkt.raft import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    RaftCore,
    RaftCoreConfig,
    Snapshot,
    SnapshotMeta,
    bootstrap_log,
)
from p2pmkt.storage.raftlog import LmdbRaftLogStore, MemoryRaftLogStore, RaftLogStore
from p2pmkt.types import LogIndex, NodeId, Term


def E(i: int, t: int, data: bytes = b"") -> Entry:
    return Entry(Term(t), LogIndex(i), EntryKind.NORMAL, data)


def _open_env(path: Path) -> lmdb.Environment:
    return lmdb.open(str(path), max_dbs=8, map_size=64 << 20)


@pytest.fixture(params=["memory", "lmdb"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], RaftLogStore]]:
    envs: list[lmdb.Environment] = []

    def make() -> RaftLogStore:
        if request.param == "memory":
            return MemoryRaftLogStore()
        env = _open_env(tmp_path / f"db{len(envs)}")
        envs.append(env)
        return LmdbRaftLogStore(env)

    yield make
    for env in envs:
        env.close()


def test_empty_store(make_store: Callable[[], RaftLogStore]) -> None:
    s = make_store()
    assert s.initial_state() == (HardState(), ConfState())
    assert (s.first_index(), s.last_index(), s.term(0), s.term(1)) == (1, 0, 0, None)
    assert s.snapshot().is_empty


def test_append_truncate_and_read(make_store: Callable[[], RaftLogStore]) -> None:
    s = make_store()
    s.save(
        HardState(Term(2), NodeId("a"), LogIndex(1)), [E(1, 1, b"a"), E(2, 1, b"b"), E(3, 2, b"c")]
    )
    assert s.last_index() == 3 and s.term(3) == 2
    s.save(None, [E(2, 3, b"x")])  # a conflicting suffix is replaced
    assert s.last_index() == 2
    assert s.entries(1, 3) == [E(1, 1, b"a"), E(2, 3, b"x")]
    assert s.entries(1, 3, max_size=1) == [E(1, 1, b"a")]  # at least one entry
    assert s.initial_state()[0] == HardState(Term(2), NodeId("a"), LogIndex(1))
    with pytest.raises(StorageError, match=r"^gap in the log: appending 9 after 2$"):
        s.save(None, [E(9, 3)])


def test_snapshot_compact_and_install(make_store: Callable[[], RaftLogStore]) -> None:
    s = make_store()
    s.save(None, [E(i, 1, bytes([i])) for i in range(1, 11)])
    cs = ConfState((NodeId("a"), NodeId("b")), ())
    snap = s.create_snapshot(8, cs, b"state8")
    s.compact(6)
    assert (s.first_index(), s.last_index(), s.term(6), s.term(5)) == (7, 10, 1, None)
    assert s.snapshot() == snap and s.initial_state()[1] == cs
    with pytest.raises(StorageError):
        s.entries(5, 8)
    # A snapshot from the leader replaces the whole log.
    got = Snapshot(SnapshotMeta(LogIndex(20), Term(4), cs), b"state20")
    s.save(HardState(Term(4), None, LogIndex(20)), [], got)
    assert (s.first_index(), s.last_index(), s.term(20)) == (21, 20, 4)
    s.save(None, [E(21, 4)])
    assert s.last_index() == 21 and s.snapshot() == got


def test_lmdb_restart_resumes_term_vote_log_and_snapshot(tmp_path: Path) -> None:
    env = _open_env(tmp_path / "db")
    s = LmdbRaftLogStore(env)
    hs, ents = bootstrap_log([NodeId("a"), NodeId("b"), NodeId("c")])
    s.save(hs, ents)
    s.save(HardState(Term(5), NodeId("b"), LogIndex(4)), [E(4, 5, b"blk")])
    s.create_snapshot(3, ConfState((NodeId("a"), NodeId("b"), NodeId("c"))), b"app")
    s.compact(2)
    env.close()

    env = _open_env(tmp_path / "db")
    s2 = LmdbRaftLogStore(env)
    assert s2.initial_state()[0] == HardState(Term(5), NodeId("b"), LogIndex(4))
    assert (s2.first_index(), s2.last_index()) == (3, 4)
    assert s2.entries(3, 5) == [ents[2], E(4, 5, b"blk")]
    assert s2.snapshot().data == b"app"
    core = RaftCore(RaftCoreConfig(NodeId("a"), applied=3), s2, random.Random(1))
    st = core.statistics()
    assert (st.term, st.vote, st.commit, st.last_index) == (5, "b", 4, 4)
    assert st.conf_state.voters == ("a", "b", "c")
    env.close()


def test_lmdb_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    # One Ready = one transaction: an exception inside save leaves nothing behind.
    env = _open_env(tmp_path / "db")
    s = LmdbRaftLogStore(env)
    s.save(HardState(Term(1)), [E(1, 1)])
    with pytest.raises(StorageError):
        s.save(HardState(Term(9)), [E(5, 9)], None)  # a gap: raised inside the txn, which aborts
    env.close()
    s2 = LmdbRaftLogStore(_open_env(tmp_path / "db"))
    assert s2.initial_state()[0].term == 1 and s2.last_index() == 1
