"""Membership changes: how a ConfChange turns one ConfState into the next.

Theory of operation
-------------------
We use single-server changes (thesis §4.1): each change adds or removes one voter (or adds or
promotes one learner), so any majority of the old voters overlaps any majority of the new.
Safety needs two more rules, both enforced by the core, not here:

* at most one change is in flight: the leader refuses a new one while an earlier one is
  unapplied (``pending_conf_index > applied``), and a new leader treats its whole log as
  possibly holding one (it sets ``pending_conf_index = last_index`` on election);
* a change takes effect when its entry is *applied* (committed), on every node alike.

Because every node applies the same committed entries in the same order, an invalid change
(adding a voter twice, removing the last voter, ...) must be skipped identically everywhere:
:func:`apply_conf_change` returns None for it rather than raising.
"""

from __future__ import annotations

from collections.abc import Sequence

from p2pmkt.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    encode_conf_change,
)
from p2pmkt.types import LogIndex, NodeId, Term


def check_conf_change(cs: ConfState, cc: ConfChange) -> str | None:
    """Why ``cc`` cannot apply to ``cs``, or None if it can."""
    voters, learners, n = set(cs.voters), set(cs.learners), cc.node_id
    match cc.type:
        case ConfChangeType.ADD_VOTER:
            if n in voters:
                return f"{n} is already a voter"
        case ConfChangeType.PROMOTE_LEARNER:
            if n not in learners:
                return f"{n} is not a learner"
        case ConfChangeType.ADD_LEARNER:
            if n in voters:
                return f"{n} is a voter; demoting a voter is not supported"
            if n in learners:
                return f"{n} is already a learner"
        case ConfChangeType.REMOVE_VOTER:
            if n not in voters and n not in learners:
                return f"{n} is not a member"
            if voters == {n}:
                return f"removing {n} would leave no voters"
    return None


def apply_conf_change(cs: ConfState, cc: ConfChange) -> ConfState | None:
    """The membership after ``cc``, or None if ``cc`` is invalid for ``cs`` (skip it)."""
    if check_conf_change(cs, cc) is not None:
        return None
    voters, learners, n = set(cs.voters), set(cs.learners), cc.node_id
    if cc.type in (ConfChangeType.ADD_VOTER, ConfChangeType.PROMOTE_LEARNER):
        learners.discard(n)
        voters.add(n)
    elif cc.type is ConfChangeType.ADD_LEARNER:
        learners.add(n)
    else:
        voters.discard(n)
        learners.discard(n)
    return ConfState(tuple(sorted(voters)), tuple(sorted(learners)))


def bootstrap_log(
    voters: Sequence[NodeId], learners: Sequence[NodeId] = ()
) -> tuple[HardState, list[Entry]]:
    """The identical starting log of every founding member of a new cluster.

    The initial membership is written as committed CONF_CHANGE entries at term 1 (as etcd's
    Bootstrap does), not as local configuration: a node that joins later then learns the full
    membership history from the log or a snapshot, like everything else.
    """
    ccs = [ConfChange(ConfChangeType.ADD_VOTER, v) for v in voters]
    ccs += [ConfChange(ConfChangeType.ADD_LEARNER, n) for n in learners]
    ents = [
        Entry(Term(1), LogIndex(i + 1), EntryKind.CONF_CHANGE, encode_conf_change(cc))
        for i, cc in enumerate(ccs)
    ]
    return HardState(Term(1), None, LogIndex(len(ents))), ents


__all__ = ["apply_conf_change", "bootstrap_log", "check_conf_change"]
