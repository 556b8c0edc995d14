"""Majority arithmetic, follower progress tracking and core configuration checks."""

from __future__ import annotations

import random

import pytest

from p2pmkt.errors import ConfigError
from p2pmkt.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    ProgressState,
    ProposalDropped,
    RaftCore,
    RaftCoreConfig,
    apply_conf_change,
)
from p2pmkt.raft.progress import Progress
from p2pmkt.raft.quorum import VoteResult, committed_index, has_quorum, vote_result
from p2pmkt.storage.raftlog import MemoryRaftLogStore
from p2pmkt.testing.sim import Cluster
from p2pmkt.types import NodeId

V = [NodeId(x) for x in "abcde"]


@pytest.mark.parametrize(
    ("matches", "want"),
    [
        ({}, 0),
        ({"a": 5}, 0),
        ({"a": 5, "b": 4, "c": 3}, 3),
        ({"a": 5, "b": 4, "c": 3, "d": 9, "e": 1}, 4),
        ({"a": 9, "b": 9, "c": 9, "d": 0, "e": 0}, 9),
    ],
)
def test_committed_index_is_the_majority_match(matches: dict[str, int], want: int) -> None:
    assert committed_index(V, matches) == want  # type: ignore[arg-type]


def test_committed_index_ignores_non_voters() -> None:
    assert committed_index(V[:3], {"a": 7, "b": 7, "x": 99}) == 7  # type: ignore[dict-item]


def test_vote_result() -> None:
    three = V[:3]
    assert vote_result(three, {"a": True}) is VoteResult.PENDING  # type: ignore[dict-item]
    assert vote_result(three, {"a": True, "b": True}) is VoteResult.WON  # type: ignore[dict-item]
    assert vote_result(three, {"a": True, "b": False, "c": False}) is VoteResult.LOST  # type: ignore[dict-item]
    assert has_quorum(V, {"a", "b", "c"}) and not has_quorum(V, {"a", "b"})  # type: ignore[arg-type]


def test_progress_probe_pauses_until_answered_and_replicate_pipelines() -> None:
    p = Progress(next=5)
    p.sent_entries(6, 2)
    assert p.is_paused(4)
    assert p.maybe_decr_to(4, hint=2)  # rejection of the probe at prev 4
    assert (p.next, p.is_paused(4)) == (3, False)
    assert not p.maybe_decr_to(4, hint=1)  # stale: not the probe we wait for
    assert p.maybe_update(6)
    p.become_replicate()
    for last in (7, 8, 9):
        p.sent_entries(last, 1)
    assert p.next == 10 and not p.is_paused(4)
    p.sent_entries(10, 1)
    assert p.is_paused(4)
    p.free_le(8)
    assert list(p.inflights) == [9, 10] and p.state is ProgressState.REPLICATE


def test_conf_change_rules() -> None:
    cs = ConfState((V[0], V[1]), (V[2],))
    assert apply_conf_change(cs, ConfChange(ConfChangeType.PROMOTE_LEARNER, V[2])) == ConfState(
        (V[0], V[1], V[2]), ()
    )
    assert apply_conf_change(cs, ConfChange(ConfChangeType.ADD_VOTER, V[0])) is None
    assert apply_conf_change(cs, ConfChange(ConfChangeType.ADD_LEARNER, V[0])) is None
    one = ConfState((V[0],), ())
    assert apply_conf_change(one, ConfChange(ConfChangeType.REMOVE_VOTER, V[0])) is None


def test_conf_change_waits_for_an_entry_of_the_leaders_term() -> None:
    cl = Cluster(["1", "2", "3"], spares=["4"])
    cl.stabilize()
    cl.drop("MsgAppResp")  # the new leader's empty entry cannot commit
    cl.elect("1")
    c1 = cl.nodes[NodeId("1")].c
    cc = ConfChange(ConfChangeType.ADD_LEARNER, NodeId("4"))
    with pytest.raises(ProposalDropped, match=r"^the leader has not committed an entry"):
        c1.propose_conf_change(cc)
    cl.heal()
    cl.tick_all(2)
    c1.propose_conf_change(cc)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"id": NodeId("")}, r"^raft: id must be a non-empty node id$"),
        ({"heartbeat_tick": 0}, r"^raft: heartbeat_tick must be > 0$"),
        ({"election_tick": 1}, r"^raft: election_tick must be greater than heartbeat_tick$"),
    ],
)
def test_bad_config_is_refused(kw: dict[str, object], match: str) -> None:
    cfg = {"id": NodeId("a"), **kw}
    with pytest.raises(ConfigError, match=match):
        RaftCore(RaftCoreConfig(**cfg), MemoryRaftLogStore(), random.Random(0))  # type: ignore[arg-type]
