"""Majority arithmetic: who has committed what, and who won an election.

Theory of operation
-------------------
A quorum is any strict majority of the voters. Two facts follow and the core relies on both:

* the *committed index* is the largest index that a majority has in its log; with the voters'
  match indices sorted descending it is the element at position ``n // 2``;
* an election is WON once a majority granted, LOST once a majority can no longer grant, and
  PENDING otherwise.

Learners never count. An empty voter set commits everything (``2**64-1``) and wins every vote,
which is the neutral element when these results are combined (joint consensus would take the
minimum of two majorities; this module keeps that door open but the core uses single-server
membership changes).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from p2pmkt.types import NodeId

_INF = 2**64 - 1


class VoteResult(enum.Enum):
    PENDING = "pending"
    LOST = "lost"
    WON = "won"


def committed_index(voters: Iterable[NodeId], match: Mapping[NodeId, int]) -> int:
    """The largest index acknowledged by a majority of ``voters`` (missing ones count as 0)."""
    idx = sorted((match.get(v, 0) for v in voters), reverse=True)
    if not idx:
        return _INF
    return idx[len(idx) // 2]


def vote_result(voters: Iterable[NodeId], votes: Mapping[NodeId, bool]) -> VoteResult:
    """Tally ``votes`` (True granted, False rejected, absent = not answered yet)."""
    vs = list(voters)
    if not vs:
        return VoteResult.WON
    need = len(vs) // 2 + 1
    granted = sum(1 for v in vs if votes.get(v) is True)
    missing = sum(1 for v in vs if v not in votes)
    if granted >= need:
        return VoteResult.WON
    if granted + missing >= need:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Iterable[NodeId], members: Iterable[NodeId]) -> bool:
    """True when ``members`` includes a majority of ``voters``."""
    vs = set(voters)
    if not vs:
        return True
    return len(vs & set(members)) >= len(vs) // 2 + 1


__all__ = ["VoteResult", "committed_index", "has_quorum", "vote_result"]
