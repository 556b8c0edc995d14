"""The vocabulary of RaftCore's interface: its config, its Ready batches and its status.

Kept apart from ``core.py`` so the state machine file holds only the state machine. The
ordering rule for consuming a :class:`Ready` is in ``p2pmkt.raft.core``'s module docstring.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from p2pmkt.errors import Busy, ConfigError
from p2pmkt.raft.messages import ConfState, Entry, EntryKind, HardState, Message, Snapshot
from p2pmkt.raft.progress import ProgressState
from p2pmkt.types import LogIndex, NodeId, Term


class StateRole(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class ProposalDropped(Busy):
    """The request cannot be taken now (not the leader, transfer in progress, a membership
    change pending, ...). The message says why; retry later or on the leader."""

    reason = "proposal_dropped"


@dataclass(frozen=True, slots=True)
class RaftCoreConfig:
    """Knobs of one core. Validate with :func:`validate_core_config`."""

    id: NodeId
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int = 1 << 20
    max_inflight: int = 64
    max_committed_size_per_ready: int = 16 << 20
    pre_vote: bool = True
    check_quorum: bool = True
    applied: int = 0
    """Last index the application has applied (durably) before this start."""


def validate_core_config(cfg: RaftCoreConfig) -> None:
    """Raises ConfigError naming the bad field."""
    if not cfg.id:
        raise ConfigError("raft: id must be a non-empty node id")
    if cfg.heartbeat_tick <= 0:
        raise ConfigError("raft: heartbeat_tick must be > 0")
    if cfg.election_tick <= cfg.heartbeat_tick:
        raise ConfigError("raft: election_tick must be greater than heartbeat_tick")
    if cfg.max_inflight <= 0 or cfg.max_size_per_msg <= 0:
        raise ConfigError("raft: max_inflight and max_size_per_msg must be > 0")
    if cfg.applied < 0:
        raise ConfigError("raft: applied must be >= 0")


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth telling the application about (leadership changes)."""

    leader: NodeId | None
    role: StateRole


@dataclass(frozen=True, slots=True)
class ReadState:
    """Linearizable read: once ``index`` is applied locally, a read for ``context`` is safe."""

    index: LogIndex
    context: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the driver; see the ordering rule in the module docstring."""

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False


@dataclass(frozen=True, slots=True)
class PeerStatus:
    match: int
    next: int
    state: ProgressState
    is_learner: bool


@dataclass(frozen=True, slots=True)
class Status:
    """A frozen snapshot of the core for introspection and tests."""

    id: NodeId
    term: Term
    vote: NodeId | None
    role: StateRole
    leader: NodeId | None
    commit: LogIndex
    applied: LogIndex
    last_index: LogIndex
    conf_state: ConfState
    progress: dict[NodeId, PeerStatus] = field(default_factory=dict)
    dropped: int = 0


def committed_normal_entries(entries: Sequence[Entry]) -> list[Entry]:
    """The application-visible entries: normal entries with data (drops leader no-ops)."""
    return [e for e in entries if e.kind is EntryKind.NORMAL and e.data]


__all__ = [
    "PeerStatus",
    "ProposalDropped",
    "RaftCoreConfig",
    "ReadState",
    "Ready",
    "SoftState",
    "StateRole",
    "Status",
    "committed_normal_entries",
    "validate_core_config",
]
