"""Remote input never raises out of RaftCore.step(), whatever a (Byzantine) peer sends.

Hypothesis builds arbitrary well-typed messages (any terms, indices, entries, snapshots) and
feeds them to followers, candidates and leaders; the core must drop or answer, never crash,
and never let its commit index run backwards.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pmkt.raft import (
    ConfState,
    Entry,
    EntryKind,
    Message,
    MsgApp,
    MsgAppResp,
    MsgHeartbeat,
    MsgHeartbeatResp,
    MsgPreVote,
    MsgPreVoteResp,
    MsgReadIndex,
    MsgReadIndexResp,
    MsgSnap,
    MsgTimeoutNow,
    MsgVote,
    MsgVoteResp,
    Snapshot,
    SnapshotMeta,
)
from p2pmkt.testing.sim import Cluster
from p2pmkt.types import LogIndex, NodeId, Term

ids = st.sampled_from([NodeId(x) for x in ("1", "2", "3", "4", "9")])
small = st.integers(0, 12)
terms = small.map(Term)
idx = small.map(LogIndex)


@st.composite
def entries(draw: st.DrawFn) -> tuple[Entry, ...]:
    start = draw(small)
    n = draw(st.integers(0, 4))
    kind = draw(st.sampled_from(list(EntryKind)))
    return tuple(
        Entry(Term(draw(small)), LogIndex(start + 1 + i), kind, draw(st.binary(max_size=4)))
        for i in range(n)
    )


snapshots = st.builds(
    Snapshot,
    st.builds(
        SnapshotMeta,
        idx,
        terms,
        st.builds(ConfState, st.lists(ids, max_size=3, unique=True).map(tuple), st.just(())),
    ),
    st.binary(max_size=4),
)


def _app(f: NodeId, t: NodeId, term: Term, ents: tuple[Entry, ...], commit: LogIndex) -> MsgApp:
    prev = LogIndex(ents[0].index - 1) if ents else commit
    return MsgApp(f, t, term, prev, Term(max(0, term - 1)), ents, commit)


def messages(to: NodeId) -> st.SearchStrategy[Message]:
    t = st.just(to)
    return st.one_of(
        st.builds(MsgPreVote, ids, t, terms, idx, terms),
        st.builds(MsgPreVoteResp, ids, t, terms, st.booleans()),
        st.builds(MsgVote, ids, t, terms, idx, terms, st.booleans()),
        st.builds(MsgVoteResp, ids, t, terms, st.booleans()),
        st.builds(MsgApp, ids, t, terms, idx, terms, entries(), idx),
        st.builds(_app, ids, t, terms, entries(), idx),
        st.builds(MsgAppResp, ids, t, terms, idx, st.booleans(), idx, terms),
        st.builds(MsgHeartbeat, ids, t, terms, idx, st.binary(max_size=2)),
        st.builds(MsgHeartbeatResp, ids, t, terms, st.binary(max_size=2)),
        st.builds(MsgSnap, ids, t, terms, snapshots),
        st.builds(MsgTimeoutNow, ids, t, terms),
        st.builds(MsgReadIndex, ids, t, terms, st.binary(min_size=1, max_size=2)),
        st.builds(MsgReadIndexResp, ids, t, terms, idx, st.binary(max_size=2)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["leader", "follower", "candidate"]), st.data())
def test_step_never_raises_on_hostile_messages(role: str, data: st.DataObject) -> None:
    cl = Cluster(["1", "2", "3"], pre_vote=False)
    cl.stabilize()
    cl.elect("1")
    cl.nodes[NodeId("1")].c.propose(b"x")
    cl.stabilize()
    target = {"leader": "1", "follower": "2", "candidate": "3"}[role]
    if role == "candidate":
        cl.campaign("3")
    core = cl.nodes[NodeId(target)].c
    for m in data.draw(st.lists(messages(NodeId(target)), max_size=12)):
        commit = core.log.committed
        core.step(m)
        assert core.log.committed >= commit
        if core.has_ready():
            rd = core.ready()
            node = cl.nodes[NodeId(target)]
            node.store.save(rd.hard_state, rd.entries, rd.snapshot)
            core.advance(rd)
