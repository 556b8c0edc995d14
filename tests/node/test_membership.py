"""Validator-set transactions become single-server Raft configuration changes."""

from __future__ import annotations

from p2pmkt.crypto.keys import address_hex
from p2pmkt.node.membership import next_conf_change
from p2pmkt.raft import ConfChangeType
from p2pmkt.raft.messages import ConfState
from p2pmkt.types import NodeId

A, B, C = b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20


def conf(voters: list[bytes], learners: list[bytes] = []) -> ConfState:  # noqa: B006
    return ConfState(tuple(NodeId(address_hex(v)) for v in voters),
                     tuple(NodeId(address_hex(v)) for v in learners))


def test_agreeing_configurations_need_no_change() -> None:
    assert next_conf_change(conf([A, B]), (A, B), ()) is None


def test_a_new_voter_is_added_before_anything_is_removed() -> None:
    cc = next_conf_change(conf([A, B]), (B, C), ())
    assert cc is not None and cc.type is ConfChangeType.ADD_VOTER and cc.node_id == address_hex(C)


def test_a_learner_named_voter_is_promoted() -> None:
    cc = next_conf_change(conf([A], [B]), (A, B), ())
    assert cc is not None and cc.type is ConfChangeType.PROMOTE_LEARNER


def test_a_removed_validator_is_removed_but_never_the_last_voter() -> None:
    cc = next_conf_change(conf([A, B]), (A,), ())
    assert cc is not None and cc.type is ConfChangeType.REMOVE_VOTER and cc.node_id == address_hex(B)
    assert next_conf_change(conf([A]), (), ()) is None


def test_new_learners_are_added_as_learners() -> None:
    cc = next_conf_change(conf([A]), (A,), (C,))
    assert cc is not None and cc.type is ConfChangeType.ADD_LEARNER
