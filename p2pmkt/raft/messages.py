"""Raft value types and messages, and their wire encoding.

Theory of operation
-------------------
Everything the Raft core exchanges with the outside world is a frozen dataclass defined here:
log :class:`Entry` values, the persisted :class:`HardState`, membership (:class:`ConfState`,
:class:`ConfChange`), :class:`Snapshot` and the peer-to-peer messages (``Msg*``).

Messages travel as canonical CBOR arrays ``[tag, from, to, term, *fields]`` (tags are stable
small integers; never reuse one). :func:`decode_message` is the trust boundary: hostile peers
send bytes, so it validates every field's type and range and raises
:class:`p2pmkt.errors.DecodeError` on anything else, never another exception type. Semantic
checks (is the sender a member, is the term sane) are the core's job, not this module's.

Entry data is opaque bytes to Raft: the application puts one encoded block per normal entry.
A conf-change entry carries an encoded :class:`ConfChange` (see :func:`encode_conf_change`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from p2pmkt.errors import DecodeError
from p2pmkt.types import LogIndex, NodeId, Term
from p2pmkt.wire import cbor

MAX_MESSAGE_SIZE = 64 * 1024 * 1024
"""Upper bound on one encoded Raft message (a snapshot may be large)."""

_MAX_U64 = 2**64 - 1
_T0 = Term(0)
_I0 = LogIndex(0)
_MAX_ID_LEN = 256


class EntryKind(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class ConfChangeType(enum.IntEnum):
    ADD_VOTER = 0
    REMOVE_VOTER = 1
    ADD_LEARNER = 2
    PROMOTE_LEARNER = 3
    """Turn an existing learner into a voter (same effect as ADD_VOTER on a learner)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``data`` is opaque to Raft (a block, or an encoded ConfChange)."""

    term: Term
    index: LogIndex
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before any message that depends on it is sent."""

    term: Term = _T0
    vote: NodeId | None = None
    commit: LogIndex = _I0


@dataclass(frozen=True, slots=True)
class ConfState:
    """Cluster membership. Voters and learners are disjoint, each sorted."""

    voters: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change (single-server change; one in flight at a time)."""

    type: ConfChangeType
    node_id: NodeId


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: LogIndex = _I0
    term: Term = _T0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Application state as of ``meta.index`` plus the membership at that point."""

    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    @property
    def is_empty(self) -> bool:
        return self.meta.index == 0


EMPTY_SNAPSHOT = Snapshot()


# --------------------------------------------------------------------------------------------
# Messages. Every message carries the sender, the recipient and the sender's term.


@dataclass(frozen=True, slots=True)
class MsgPreVote:
    """Ask "would you vote for me at ``term``?" without anyone changing term (thesis §9.6)."""

    frm: NodeId
    to: NodeId
    term: Term
    last_index: LogIndex
    last_term: Term


@dataclass(frozen=True, slots=True)
class MsgPreVoteResp:
    frm: NodeId
    to: NodeId
    term: Term
    reject: bool


@dataclass(frozen=True, slots=True)
class MsgVote:
    """RequestVote. ``transfer`` marks a leadership transfer, which overrides leader leases."""

    frm: NodeId
    to: NodeId
    term: Term
    last_index: LogIndex
    last_term: Term
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class MsgVoteResp:
    frm: NodeId
    to: NodeId
    term: Term
    reject: bool


@dataclass(frozen=True, slots=True)
class MsgApp:
    """AppendEntries: ``entries`` follow (``prev_index``, ``prev_term``)."""

    frm: NodeId
    to: NodeId
    term: Term
    prev_index: LogIndex
    prev_term: Term
    entries: tuple[Entry, ...]
    commit: LogIndex


@dataclass(frozen=True, slots=True)
class MsgAppResp:
    """Answer to MsgApp/MsgSnap. On reject, ``hint_index``/``hint_term`` help the leader skip."""

    frm: NodeId
    to: NodeId
    term: Term
    index: LogIndex
    reject: bool = False
    hint_index: LogIndex = _I0
    hint_term: Term = _T0


@dataclass(frozen=True, slots=True)
class MsgHeartbeat:
    """Leader liveness; ``context`` non-empty when it doubles as a ReadIndex quorum check."""

    frm: NodeId
    to: NodeId
    term: Term
    commit: LogIndex
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class MsgHeartbeatResp:
    frm: NodeId
    to: NodeId
    term: Term
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class MsgSnap:
    frm: NodeId
    to: NodeId
    term: Term
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class MsgTimeoutNow:
    """Leadership transfer: "campaign now, skipping pre-vote"."""

    frm: NodeId
    to: NodeId
    term: Term


@dataclass(frozen=True, slots=True)
class MsgReadIndex:
    """A follower forwards a ReadIndex request to the leader."""

    frm: NodeId
    to: NodeId
    term: Term
    context: bytes


@dataclass(frozen=True, slots=True)
class MsgReadIndexResp:
    frm: NodeId
    to: NodeId
    term: Term
    index: LogIndex
    context: bytes


Message: TypeAlias = (
    MsgPreVote
    | MsgPreVoteResp
    | MsgVote
    | MsgVoteResp
    | MsgApp
    | MsgAppResp
    | MsgHeartbeat
    | MsgHeartbeatResp
    | MsgSnap
    | MsgTimeoutNow
    | MsgReadIndex
    | MsgReadIndexResp
)


# --------------------------------------------------------------------------------------------
# Encoding: plain lists of CBOR-subset values.


def entry_to_obj(e: Entry) -> list[Any]:
    return [e.term, e.index, int(e.kind), e.data]


def entry_from_obj(obj: Any) -> Entry:
    f = _fields(obj, 4, "entry")
    return Entry(Term(_u64(f[0])), LogIndex(_u64(f[1])), _enum(EntryKind, f[2]), _bytes(f[3]))


def conf_state_to_obj(cs: ConfState) -> list[Any]:
    return [list(cs.voters), list(cs.learners)]


def conf_state_from_obj(obj: Any) -> ConfState:
    f = _fields(obj, 2, "conf state")
    voters = tuple(_node_id(v) for v in _list(f[0]))
    learners = tuple(_node_id(v) for v in _list(f[1]))
    if len(set(voters)) != len(voters) or len(set(learners)) != len(learners):
        raise DecodeError("conf state lists a node twice")
    if set(voters) & set(learners):
        raise DecodeError("conf state lists a node as both voter and learner")
    return ConfState(tuple(sorted(voters)), tuple(sorted(learners)))


def snapshot_to_obj(s: Snapshot) -> list[Any]:
    return [s.meta.index, s.meta.term, conf_state_to_obj(s.meta.conf_state), s.data]


def snapshot_from_obj(obj: Any) -> Snapshot:
    f = _fields(obj, 4, "snapshot")
    meta = SnapshotMeta(LogIndex(_u64(f[0])), Term(_u64(f[1])), conf_state_from_obj(f[2]))
    return Snapshot(meta, _bytes(f[3]))


def hard_state_to_obj(hs: HardState) -> list[Any]:
    return [hs.term, hs.vote, hs.commit]


def hard_state_from_obj(obj: Any) -> HardState:
    f = _fields(obj, 3, "hard state")
    vote = None if f[1] is None else _node_id(f[1])
    return HardState(Term(_u64(f[0])), vote, LogIndex(_u64(f[2])))


def encode_conf_change(cc: ConfChange) -> bytes:
    """Encode ``cc`` as the data of a CONF_CHANGE entry."""
    return cbor.encode([int(cc.type), cc.node_id])


def decode_conf_change(data: bytes) -> ConfChange:
    """Decode a CONF_CHANGE entry's data. Raises DecodeError if malformed."""
    f = _fields(cbor.decode(data, max_size=4096), 2, "conf change")
    return ConfChange(_enum(ConfChangeType, f[0]), _node_id(f[1]))


_TAGS: dict[type, int] = {
    MsgPreVote: 1,
    MsgPreVoteResp: 2,
    MsgVote: 3,
    MsgVoteResp: 4,
    MsgApp: 5,
    MsgAppResp: 6,
    MsgHeartbeat: 7,
    MsgHeartbeatResp: 8,
    MsgSnap: 9,
    MsgTimeoutNow: 10,
    MsgReadIndex: 11,
    MsgReadIndexResp: 12,
}


def _body(msg: Message) -> list[Any]:
    """The message-specific fields, after ``[tag, from, to, term]``."""
    match msg:
        case MsgPreVote() | MsgVote():
            body: list[Any] = [msg.last_index, msg.last_term]
            if isinstance(msg, MsgVote):
                body.append(msg.transfer)
            return body
        case MsgPreVoteResp() | MsgVoteResp():
            return [msg.reject]
        case MsgApp():
            return [
                msg.prev_index,
                msg.prev_term,
                [entry_to_obj(e) for e in msg.entries],
                msg.commit,
            ]
        case MsgAppResp():
            return [msg.index, msg.reject, msg.hint_index, msg.hint_term]
        case MsgHeartbeat():
            return [msg.commit, msg.context]
        case MsgHeartbeatResp():
            return [msg.context]
        case MsgSnap():
            return [snapshot_to_obj(msg.snapshot)]
        case MsgTimeoutNow():
            return []
        case MsgReadIndex():
            return [msg.context]
        case MsgReadIndexResp():
            return [msg.index, msg.context]


def encode_message(msg: Message) -> bytes:
    """Encode ``msg`` as canonical CBOR. Raises TypeError on a local bug (bad field type)."""
    return cbor.encode([_TAGS[type(msg)], msg.frm, msg.to, msg.term, *_body(msg)])


def decode_message(data: bytes) -> Message:
    """Decode bytes from a peer into a message.

    Raises:
        DecodeError: anything malformed: bad CBOR, unknown tag, wrong arity, wrong field
            types, out-of-range integers, oversized input. Never any other exception.
    """
    obj = cbor.decode(data, max_size=MAX_MESSAGE_SIZE)
    if type(obj) is not list or len(obj) < 4:
        raise DecodeError("raft message must be an array [tag, from, to, term, ...]")
    tag = obj[0]
    if type(tag) is not int:
        raise DecodeError("raft message tag must be an integer")
    frm, to, term, rest = _node_id(obj[1]), _node_id(obj[2]), Term(_u64(obj[3])), obj[4:]
    try:
        match tag:
            case 1 | 3:
                n = 2 if tag == 1 else 3
                _arity(rest, n)
                li, lt = LogIndex(_u64(rest[0])), Term(_u64(rest[1]))
                if tag == 1:
                    return MsgPreVote(frm, to, term, li, lt)
                return MsgVote(frm, to, term, li, lt, _bool(rest[2]))
            case 2 | 4:
                _arity(rest, 1)
                cls = MsgPreVoteResp if tag == 2 else MsgVoteResp
                return cls(frm, to, term, _bool(rest[0]))
            case 5:
                _arity(rest, 4)
                ents = tuple(entry_from_obj(e) for e in _list(rest[2]))
                prev = _u64(rest[0])
                for i, e in enumerate(ents):
                    if e.index != prev + 1 + i:
                        raise DecodeError("MsgApp entries are not contiguous after prev_index")
                return MsgApp(
                    frm,
                    to,
                    term,
                    LogIndex(prev),
                    Term(_u64(rest[1])),
                    ents,
                    LogIndex(_u64(rest[3])),
                )
            case 6:
                _arity(rest, 4)
                return MsgAppResp(
                    frm,
                    to,
                    term,
                    LogIndex(_u64(rest[0])),
                    _bool(rest[1]),
                    LogIndex(_u64(rest[2])),
                    Term(_u64(rest[3])),
                )
            case 7:
                _arity(rest, 2)
                return MsgHeartbeat(frm, to, term, LogIndex(_u64(rest[0])), _bytes(rest[1]))
            case 8:
                _arity(rest, 1)
                return MsgHeartbeatResp(frm, to, term, _bytes(rest[0]))
            case 9:
                _arity(rest, 1)
                return MsgSnap(frm, to, term, snapshot_from_obj(rest[0]))
            case 10:
                _arity(rest, 0)
                return MsgTimeoutNow(frm, to, term)
            case 11:
                _arity(rest, 1)
                return MsgReadIndex(frm, to, term, _bytes(rest[0]))
            case 12:
                _arity(rest, 2)
                return MsgReadIndexResp(frm, to, term, LogIndex(_u64(rest[0])), _bytes(rest[1]))
            case _:
                raise DecodeError(f"unknown raft message tag {tag}")
    except DecodeError:
        raise
    except Exception as exc:  # belt and braces: hostile input must never escape as a crash
        raise DecodeError(f"malformed raft message: {type(exc).__name__}") from exc


# Field validators: each raises DecodeError with a message naming what was wrong.


def _arity(rest: list[Any], n: int) -> None:
    if len(rest) != n:
        raise DecodeError(f"raft message has {len(rest)} fields after the header, expected {n}")


def _fields(obj: Any, n: int, what: str) -> list[Any]:
    if type(obj) is not list or len(obj) != n:
        raise DecodeError(f"{what} must be an array of {n} items")
    return obj


def _list(obj: Any) -> list[Any]:
    if type(obj) is not list:
        raise DecodeError("expected an array")
    return obj


def _u64(v: Any) -> int:
    if type(v) is not int or not 0 <= v <= _MAX_U64:
        raise DecodeError("expected an unsigned 64-bit integer")
    return v


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise DecodeError("expected a boolean")
    return v


def _bytes(v: Any) -> bytes:
    if type(v) is not bytes:
        raise DecodeError("expected a byte string")
    return v


def _node_id(v: Any) -> NodeId:
    if type(v) is not str or not 0 < len(v) <= _MAX_ID_LEN:
        raise DecodeError("node id must be a non-empty text string of at most 256 characters")
    return NodeId(v)


def _enum(cls: type[enum.IntEnum], v: Any) -> Any:
    if type(v) is not int:
        raise DecodeError(f"{cls.__name__} must be an integer")
    try:
        return cls(v)
    except ValueError:
        raise DecodeError(f"unknown {cls.__name__} {v}") from None


__all__ = [
    "EMPTY_SNAPSHOT",
    "MAX_MESSAGE_SIZE",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "EntryKind",
    "HardState",
    "Message",
    "MsgApp",
    "MsgAppResp",
    "MsgHeartbeat",
    "MsgHeartbeatResp",
    "MsgPreVote",
    "MsgPreVoteResp",
    "MsgReadIndex",
    "MsgReadIndexResp",
    "MsgSnap",
    "MsgTimeoutNow",
    "MsgVote",
    "MsgVoteResp",
    "Snapshot",
    "SnapshotMeta",
    "decode_conf_change",
    "decode_message",
    "encode_conf_change",
    "encode_message",
]
