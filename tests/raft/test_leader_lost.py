"""``RaftCore.leader_lost``: a follower told that the leader's connection closed.

The node calls it when libp2p drops the leader's connection (a killed process closes its
sockets at once), so failover takes a few ticks instead of a whole election timeout. It is
a liveness hint only; these tests pin both sides: fast election when the leader is really
gone, no disruption when it is alive for the others.
"""

from __future__ import annotations

from p2pmkt.raft import StateRole
from p2pmkt.raft.core import LEADER_LOST_STRIDE
from p2pmkt.testing.sim import Cluster
from p2pmkt.types import NodeId


def four() -> Cluster:
    cl = Cluster(["1", "2", "3", "4"])
    cl.stabilize()
    cl.elect("1")
    return cl


def test_followers_elect_a_new_leader_within_four_ticks_of_losing_the_leader() -> None:
    cl = four()
    cl.crash("1")
    for n in "234":
        cl.nodes[NodeId(n)].c.leader_lost()
    assert all(cl.nodes[NodeId(n)].c.leader is None for n in "234")
    # Election timeout is 10..19 ticks; the hint brings the first campaign down to 1 tick.
    for _ in range(4):
        cl.tick_all()
        if cl.leader() not in (None, "1"):
            break
    lead = cl.leader()
    assert lead in ("2", "3", "4")
    assert cl.nodes[NodeId(lead)].c.term > 1


def test_one_follower_with_a_false_alarm_does_not_disrupt_a_live_leader() -> None:
    cl = four()
    term = cl.nodes[NodeId("1")].c.term
    cl.nodes[NodeId("2")].c.leader_lost()
    cl.tick_all(6)  # heartbeats flow; "2" pre-campaigns and the others, in lease, refuse
    assert cl.leader() == "1"
    assert cl.nodes[NodeId("1")].c.term == term
    assert cl.nodes[NodeId("2")].c.leader == "1"  # the next heartbeat restored it


def test_leader_lost_is_ignored_by_the_leader_and_by_a_node_without_leader() -> None:
    cl = four()
    leader = cl.nodes[NodeId("1")].c
    leader.leader_lost()
    assert leader.role is StateRole.LEADER
    fresh = Cluster(["1", "2", "3"]).nodes[NodeId("2")].c
    before = (fresh.election_elapsed, fresh.randomized_election_timeout)
    fresh.leader_lost()
    assert (fresh.election_elapsed, fresh.randomized_election_timeout) == before


def test_followers_campaign_in_rank_order_a_stride_apart() -> None:
    cl = four()
    cl.crash("1")
    for n in "234":
        cl.nodes[NodeId(n)].c.leader_lost()
    due = sorted(cl.nodes[NodeId(n)].c.randomized_election_timeout - cl.nodes[NodeId(n)].c.election_elapsed
                 for n in "234")
    assert due == [1, 1 + LEADER_LOST_STRIDE, 1 + 2 * LEADER_LOST_STRIDE]
