"""Membership changes by transaction: reconcile Raft's configuration with the chain's state.

The platform changes the validator set with ``validator.set`` transactions (and the member
set with ``member.add``/``member.remove``); the state machine records the result in state
(``p2pmkt.chain.roles.validator_set``). Raft's own configuration changes only through
committed CONF_CHANGE entries. :func:`next_conf_change` is the pure bridge: given both, it
returns the one single-server change that moves Raft toward the chain's set (promotions and
additions before removals, so the quorum never shrinks below what the chain asks for), or
None when they agree. The leader proposes it; every node applies it from the log. Being
level-triggered, a change lost to a leader crash is simply proposed again by the next leader.
"""

from __future__ import annotations

from p2pmkt.crypto.keys import address_hex
from p2pmkt.raft import ConfChange, ConfChangeType
from p2pmkt.raft.messages import ConfState
from p2pmkt.types import NodeId


def next_conf_change(conf: ConfState, voters: tuple[bytes, ...], learners: tuple[bytes, ...]) -> ConfChange | None:
    """The next single-server change from ``conf`` toward the chain's validator set."""
    want_v = {NodeId(address_hex(a)) for a in voters}
    want_l = {NodeId(address_hex(a)) for a in learners}
    have_v, have_l = set(conf.voters), set(conf.learners)
    for n in sorted(want_v - have_v):
        kind = ConfChangeType.PROMOTE_LEARNER if n in have_l else ConfChangeType.ADD_VOTER
        return ConfChange(kind, n)
    for n in sorted(want_l - have_l - have_v):
        return ConfChange(ConfChangeType.ADD_LEARNER, n)
    for n in sorted((have_v | have_l) - want_v - want_l):
        if n in have_v and len(have_v) <= 1:
            return None  # never remove the last voter
        return ConfChange(ConfChangeType.REMOVE_VOTER, n)
    return None
