"""Tests named after the rules of the Raft paper (Ongaro & Ousterhout 2014) and thesis.

Each test drives a deterministic p2pmkt.testing.sim.Cluster by hand; every delivery and Ready
also runs the cluster-wide invariant checker.
"""

from __future__ import annotations

import pytest

from p2pmkt.raft import (
    ConfChange,
    ConfChangeType,
    Entry,
    MsgApp,
    MsgAppResp,
    MsgVote,
    MsgVoteResp,
    ProposalDropped,
    StateRole,
)
from p2pmkt.testing.sim import Cluster
from p2pmkt.types import LogIndex, NodeId, Term


def three(**kw: object) -> Cluster:
    cl = Cluster(["1", "2", "3"], **kw)  # type: ignore[arg-type]
    cl.stabilize()  # apply the bootstrap membership entries
    return cl


def role(cl: Cluster, n: str) -> StateRole:
    return cl.nodes[NodeId(n)].c.role


def tick_election(cl: Cluster, n: str) -> None:
    cl.tick(n, cl.nodes[NodeId(n)].c.randomized_election_timeout)


def test_5_2_follower_times_out_and_becomes_leader_with_majority() -> None:
    cl = three()
    tick_election(cl, "1")
    assert role(cl, "1") is StateRole.PRE_CANDIDATE
    cl.stabilize()
    assert role(cl, "1") is StateRole.LEADER
    assert cl.nodes[NodeId("2")].c.leader == "1"


def test_5_2_election_safety_votes_at_most_once_per_term() -> None:
    cl = three(pre_vote=False)
    core = cl.nodes[NodeId("3")].c
    core.step(MsgVote(NodeId("1"), NodeId("3"), Term(2), LogIndex(3), Term(1)))
    core.step(MsgVote(NodeId("2"), NodeId("3"), Term(2), LogIndex(3), Term(1)))
    resps = [m for m in core.ready().messages if isinstance(m, MsgVoteResp)]
    assert [(m.to, m.reject) for m in resps] == [("1", False), ("2", True)]


def test_5_2_candidate_returns_to_follower_when_another_leader_appends() -> None:
    cl = three(pre_vote=False)
    cl.campaign("1")
    cl.campaign("2")
    assert role(cl, "2") is StateRole.CANDIDATE
    cl.stabilize()
    leaders = [n for n in "123" if role(cl, n) is StateRole.LEADER]
    assert len(leaders) == 1
    assert all(cl.nodes[NodeId(n)].c.leader == leaders[0] for n in "123")


def test_5_1_higher_term_converts_to_follower() -> None:
    cl = three()
    cl.elect("1")
    leader = cl.nodes[NodeId("1")].c
    leader.step(MsgAppResp(NodeId("2"), NodeId("1"), Term(leader.term + 5), LogIndex(0)))
    assert leader.role is StateRole.FOLLOWER and leader.term == Term(leader.term)


def test_5_1_stale_term_requests_are_rejected() -> None:
    cl = three()
    cl.elect("1")
    f = cl.nodes[NodeId("2")].c
    f.step(MsgApp(NodeId("3"), NodeId("2"), Term(1), LogIndex(3), Term(1), (), LogIndex(3)))
    out = f.ready().messages
    assert out == (MsgAppResp(NodeId("2"), NodeId("3"), f.term, LogIndex(0)),)


def test_5_4_1_election_restriction_denies_vote_to_stale_log() -> None:
    cl = three(pre_vote=False)
    cl.elect("1")
    cl.isolate("3")
    cl.nodes[NodeId("1")].c.propose(b"x")
    cl.stabilize()
    cl.heal()
    cl.nodes[NodeId("1")].c.step  # noqa: B018 (documenting: 1 and 2 have x, 3 does not)
    cl.campaign("3")
    cl.stabilize()
    assert role(cl, "3") is not StateRole.LEADER


def test_5_3_log_matching_rejects_on_prev_mismatch_and_leader_backs_up() -> None:
    cl = three()
    cl.elect("1")
    cl.isolate("3")
    for i in range(5):
        cl.nodes[NodeId("1")].c.propose(f"b{i}".encode())
    cl.stabilize()
    cl.heal()
    cl.nodes[NodeId("1")].c.propose(b"last")
    cl.stabilize()
    logs = {n: cl.nodes[NodeId(n)].applied_data for n in "123"}
    assert logs["1"] == logs["2"] == logs["3"] == [b"b0", b"b1", b"b2", b"b3", b"b4", b"last"]


def test_5_3_leader_overwrites_conflicting_uncommitted_entries() -> None:
    cl = three(check_quorum=False)  # no leases: 2 may campaign while 3 still hears of 1
    cl.elect("1")
    cl.isolate("1")
    cl.nodes[NodeId("1")].c.propose(b"lost")  # never reaches a majority
    cl.stabilize()
    cl.elect("2")
    cl.nodes[NodeId("2")].c.propose(b"kept")
    cl.stabilize()
    cl.heal()
    cl.stabilize()
    cl.nodes[NodeId("2")].c.propose(b"more")
    cl.tick_all(3)  # a heartbeat answer unpauses the probe to 1, which then backs up
    for n in "123":
        assert cl.nodes[NodeId(n)].applied_data == [b"kept", b"more"]


def test_5_4_2_leader_commits_previous_term_entries_only_via_current_term_entry() -> None:
    # Figure 8: an old-term entry on a majority is not committed by counting alone.
    cl = three(pre_vote=False, check_quorum=False)
    cl.elect("1")
    cl.drop("MsgAppResp")
    idx = cl.nodes[NodeId("1")].c.propose(b"old")
    cl.stabilize()  # 1, 2 and 3 store it but 1 never hears so
    cl.heal()
    c1 = cl.nodes[NodeId("1")].c
    assert c1.log.committed < idx
    cl.crash("1")
    cl.elect("2")
    c2 = cl.nodes[NodeId("2")].c
    # Commit happens together with 2's own no-op entry of its new term, never before it.
    assert c2.log.committed >= idx and c2.log.term(c2.log.committed) == c2.term


def test_5_4_leader_completeness_committed_entry_survives_leader_crash() -> None:
    cl = three()
    cl.elect("1")
    cl.nodes[NodeId("1")].c.propose(b"block")
    cl.stabilize()
    cl.crash("1")
    new = cl.elect_any()
    assert new in ("2", "3")
    assert cl.nodes[new].applied_data == [b"block"]  # type: ignore[index]


def test_restart_resumes_term_vote_and_log_from_storage() -> None:
    cl = three()
    cl.elect("1")
    cl.nodes[NodeId("1")].c.propose(b"b")
    cl.stabilize()
    before = cl.nodes[NodeId("2")].c.statistics()
    cl.crash("2")
    cl.restart("2")
    after = cl.nodes[NodeId("2")].c.statistics()
    assert (after.term, after.vote, after.last_index, after.commit) == (
        before.term,
        before.vote,
        before.last_index,
        before.commit,
    )
    assert after.conf_state == before.conf_state


def test_9_6_prevote_keeps_a_rejoining_partitioned_node_from_disrupting() -> None:
    cl = three()
    cl.elect("1")
    term = cl.nodes[NodeId("1")].c.term
    cl.isolate("3")
    for _ in range(5):
        tick_election(cl, "3")
        cl.stabilize()
    assert cl.nodes[NodeId("3")].c.term == term  # pre-vote never bumps the term
    cl.heal()
    tick_election(cl, "3")
    cl.stabilize()
    assert role(cl, "1") is StateRole.LEADER and cl.nodes[NodeId("1")].c.term == term


def test_6_2_check_quorum_leader_steps_down_without_majority() -> None:
    cl = three()
    cl.elect("1")
    cl.isolate("1")
    cl.tick("1", 2 * cl.nodes[NodeId("1")].c.cfg.election_tick)
    assert role(cl, "1") is StateRole.FOLLOWER


def test_6_2_lease_followers_ignore_votes_while_leader_is_alive() -> None:
    cl = three(pre_vote=False)
    cl.elect("1")
    term = cl.nodes[NodeId("1")].c.term
    cl.campaign("3")  # without pre-vote, 3 bumps its term...
    cl.stabilize()
    assert role(cl, "1") is StateRole.LEADER  # ...but 2 is in lease and ignores it
    assert cl.nodes[NodeId("2")].c.term == term


def test_7_lagging_follower_catches_up_by_snapshot() -> None:
    cl = three()
    cl.elect("1")
    cl.isolate("3")
    for i in range(10):
        cl.nodes[NodeId("1")].c.propose(f"b{i}".encode())
    cl.stabilize()
    cl.snapshot("1")
    assert cl.nodes[NodeId("1")].store.first_index() > cl.nodes[NodeId("3")].c.log.last_index()
    cl.heal()
    cl.nodes[NodeId("1")].c.propose(b"after")
    for _ in range(3):
        cl.tick("1")
        cl.stabilize()
    n3 = cl.nodes[NodeId("3")]
    assert n3.app_index == cl.nodes[NodeId("1")].app_index
    assert n3.app_state == cl.nodes[NodeId("1")].app_state


def test_4_2_1_learner_catches_up_then_is_promoted() -> None:
    cl = Cluster(["1", "2", "3"], spares=["4"])
    cl.stabilize()
    cl.elect("1")
    c1 = cl.nodes[NodeId("1")].c
    c1.propose(b"b")
    c1.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, NodeId("4")))
    cl.stabilize()
    c1.propose(b"c")
    cl.stabilize()
    n4 = cl.nodes[NodeId("4")]
    assert n4.c.conf.learners == ("4",) and n4.applied_data == [b"b", b"c"]
    c1.propose_conf_change(ConfChange(ConfChangeType.PROMOTE_LEARNER, NodeId("4")))
    cl.stabilize()
    assert c1.conf.voters == ("1", "2", "3", "4") and n4.c.conf.voters == c1.conf.voters


def test_4_1_only_one_membership_change_at_a_time() -> None:
    cl = Cluster(["1", "2", "3"], spares=["4", "5"])
    cl.stabilize()
    cl.elect("1")
    c1 = cl.nodes[NodeId("1")].c
    c1.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, NodeId("4")))
    with pytest.raises(
        ProposalDropped, match=r"^a membership change at index \d+ is not applied yet$"
    ):
        c1.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, NodeId("5")))


def test_4_2_2_removed_leader_steps_down() -> None:
    cl = three()
    cl.elect("1")
    c1 = cl.nodes[NodeId("1")].c
    cl.stabilize()
    with pytest.raises(ProposalDropped, match=r"^membership change refused: 9 is not a member$"):
        c1.propose_conf_change(ConfChange(ConfChangeType.REMOVE_VOTER, NodeId("9")))
    c1.propose_conf_change(ConfChange(ConfChangeType.REMOVE_VOTER, NodeId("1")))
    cl.stabilize()
    assert c1.role is StateRole.FOLLOWER
    assert cl.nodes[NodeId("2")].c.conf.voters == ("2", "3")
    assert cl.elect_any() in ("2", "3")


def test_3_10_leadership_transfer() -> None:
    cl = three()
    cl.elect("1")
    cl.nodes[NodeId("1")].c.transfer_leader(NodeId("3"))
    with pytest.raises(ProposalDropped, match=r"^leadership is being transferred to 3$"):
        cl.nodes[NodeId("1")].c.propose(b"x")
    cl.stabilize()
    assert cl.leader() == "3" and role(cl, "1") is StateRole.FOLLOWER


def test_6_4_read_index_on_leader_and_follower() -> None:
    cl = three()
    cl.elect("1")
    cl.nodes[NodeId("1")].c.propose(b"x")
    cl.stabilize()
    cl.nodes[NodeId("1")].c.read_index(b"L")
    cl.nodes[NodeId("2")].c.read_index(b"F")
    cl.stabilize()
    commit = cl.nodes[NodeId("1")].c.log.committed
    assert cl.nodes[NodeId("1")].read_states == {b"L": commit}
    assert cl.nodes[NodeId("2")].read_states == {b"F": commit}


def test_proposal_on_follower_is_dropped() -> None:
    cl = three()
    cl.elect("1")
    with pytest.raises(ProposalDropped, match=r"^2 is not the leader \(leader: 1\)$"):
        cl.nodes[NodeId("2")].c.propose(b"x")


def test_protocol_violations_are_dropped_and_counted() -> None:
    cl = three()
    cl.elect("1")
    f = cl.nodes[NodeId("2")].c
    term, commit = f.term, f.log.committed
    bad = [
        MsgApp(
            NodeId("1"), NodeId("9"), term, LogIndex(0), Term(0), (), LogIndex(0)
        ),  # misaddressed
        MsgApp(  # entry from a future term
            NodeId("1"),
            NodeId("2"),
            term,
            LogIndex(commit),
            Term(term),
            (Entry(Term(term + 3), LogIndex(commit + 1)),),
            LogIndex(0),
        ),
        MsgApp(  # tries to replace a committed entry: answered, but changes nothing
            NodeId("1"),
            NodeId("2"),
            term,
            LogIndex(commit - 1),
            f.log.term(commit - 1) or Term(0),  # type: ignore[arg-type]
            (Entry(Term(term - 1), LogIndex(commit), data=b"evil"),),
            LogIndex(0),
        ),
    ]
    before = f.log.slice(1, commit + 1)
    for m in bad:
        f.step(m)
    assert f.statistics().dropped == 2
    assert f.log.committed == commit and f.log.slice(1, commit + 1) == before
