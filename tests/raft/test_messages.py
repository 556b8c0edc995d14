"""Wire encoding of Raft messages: round trips, and hostile bytes only ever raise DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.errors import DecodeError
from p2pmkt.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
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
    decode_conf_change,
    decode_message,
    encode_conf_change,
    encode_message,
)
from p2pmkt.types import LogIndex, NodeId, Term
from p2pmkt.wire import cbor

A, B = NodeId("0xaa"), NodeId("0xbb")
T, IX = Term(7), LogIndex(42)
ENTRIES = (
    Entry(T, LogIndex(43), EntryKind.NORMAL, b"block"),
    Entry(
        T,
        LogIndex(44),
        EntryKind.CONF_CHANGE,
        encode_conf_change(ConfChange(ConfChangeType.ADD_VOTER, A)),
    ),
)
SNAP = Snapshot(SnapshotMeta(IX, T, ConfState((A, B), (NodeId("0xcc"),))), b"state")

SAMPLES = [
    MsgPreVote(A, B, T, IX, T),
    MsgPreVoteResp(A, B, T, True),
    MsgVote(A, B, T, IX, T, True),
    MsgVoteResp(A, B, T, False),
    MsgApp(A, B, T, IX, T, ENTRIES, IX),
    MsgApp(A, B, T, IX, T, (), IX),
    MsgAppResp(A, B, T, IX, True, LogIndex(3), Term(2)),
    MsgHeartbeat(A, B, T, IX, b"ctx"),
    MsgHeartbeatResp(A, B, T, b""),
    MsgSnap(A, B, T, SNAP),
    MsgTimeoutNow(A, B, T),
    MsgReadIndex(A, B, T, b"r1"),
    MsgReadIndexResp(A, B, T, IX, b"r1"),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: object) -> None:
    data = encode_message(msg)  # type: ignore[arg-type]
    assert decode_message(data) == msg
    assert cbor.decode(data, canonical=True) is not None  # canonical bytes


def test_conf_change_round_trip() -> None:
    cc = ConfChange(ConfChangeType.PROMOTE_LEARNER, B)
    assert decode_conf_change(encode_conf_change(cc)) == cc


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([99, "a", "b", 1], r"^unknown raft message tag 99$"),
        ([3, "a", "b", 1, 2], r"^raft message has 1 fields after the header, expected 3$"),
        ([3, "", "b", 1, 2, 3, False], r"^node id must be"),
        ([3, "a", "b", -1, 2, 3, False], r"^expected an unsigned 64-bit integer$"),
        ([5, "a", "b", 1, 1, 1, [[1, 5, 0, b""]], 0], r"^MsgApp entries are not contiguous"),
        ([5, "a", "b", 1, 1, 1, [[1, 2, 9, b""]], 0], r"^unknown EntryKind 9$"),
        ({"x": 1}, r"^raft message must be an array"),
    ],
)
def test_malformed_is_decode_error(obj: object, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_message(cbor.encode(obj))


@settings(max_examples=120, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        decode_message(data)
    except DecodeError:
        pass


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.binary(max_size=8),
    st.text(max_size=8),
)
_obj = st.recursive(_leaf, lambda c: st.lists(c, max_size=8), max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 13), _obj)
def test_well_formed_cbor_wrong_shape_only_raises_decode_error(tag: int, body: object) -> None:
    obj = [tag, "a", "b", 1, *(body if isinstance(body, list) else [body])]
    try:
        decode_message(cbor.encode(obj))
    except DecodeError:
        pass


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(SAMPLES), st.integers(0, 10_000), st.integers(0, 255))
def test_bit_flips_only_raise_decode_error(msg: object, pos: int, byte: int) -> None:
    data = bytearray(encode_message(msg))  # type: ignore[arg-type]
    data[pos % len(data)] = byte
    try:
        decode_message(bytes(data))
    except DecodeError:
        pass
