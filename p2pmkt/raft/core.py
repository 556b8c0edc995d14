"""RaftCore: a pure, deterministic Raft state machine (etcd-io/raft's RawNode shape).

Theory of operation
-------------------
The core does no I/O, reads no clock and draws randomness only from the ``random.Random`` it is
given. Inputs go in through four calls; outputs come out in one batch:

* ``tick()``: one logical clock tick (the driver calls it every ``tick_interval``).
* ``step(msg)``: a message from a peer (already decoded by ``messages.decode_message``).
* ``propose(data)`` / ``propose_conf_change(cc)`` / ``transfer_leader(to)`` /
  ``read_index(ctx)``: local requests.
* ``ready()`` returns a :class:`Ready` with everything to do; ``advance(rd)`` says it is done.

The driver contract (THE ordering rule; ``p2pmkt.node.raft_driver`` follows it)::

    rd = core.ready()
    1. PERSIST  rd.hard_state, rd.entries and rd.snapshot in ONE durable write transaction,
                synced if rd.must_sync (a vote or a log entry must survive a crash before
                anyone hears about it: this is what makes "persisted before acknowledging"
                true; a granted vote that is forgotten lets a node vote twice in a term).
    2. SEND     rd.messages, only after step 1 returned. Best effort: loss is fine.
    3. APPLY    rd.snapshot (restore) then rd.committed_entries, in order, to the state
                machine; act on rd.read_states and rd.soft_state.
    4. ADVANCE  core.advance(rd); only then call ready() again.

Between ready() and advance() the driver may still call tick/step/propose; what they produce
appears in the next Ready.

Roles and rules (Raft paper §5, thesis §9.6 for pre-vote, §6.2/§9.7 for check-quorum):

* Followers campaign after a randomized election timeout in
  ``[election_tick, 2 * election_tick)`` ticks without hearing from a leader.
* With pre-vote, a node first asks "would you vote for me at term+1?" without changing
  anyone's term, so a partitioned node that rejoins cannot depose a healthy leader.
* With check-quorum, a leader that has not heard from a majority within an election timeout
  steps down, and followers that heard from a leader recently ignore vote requests (the lease)
  unless the request is a leadership transfer.
* A leader only commits by counting replicas for entries of its own term (§5.4.2); it
  appends an empty entry on election so that it can.
* Membership changes are single-server changes applied at commit time (see confchange.py);
  ``advance()`` applies committed conf-change entries to the core's own configuration. A
  leader accepts one only after committing an entry of its own term and applying every
  earlier change, and nobody campaigns while a committed change is unapplied.
* Leadership transfer (thesis §3.10) and ReadIndex (thesis §6.4) are built on the same
  messages: MsgTimeoutNow, and heartbeats carrying a request context.

Remote input never raises out of ``step()``: a message that violates the protocol is dropped
and counted in ``statistics().dropped``. Local misuse (proposing on a follower) raises
:class:`ProposalDropped`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2pmkt.errors import DecodeError
from p2pmkt.raft import quorum
from p2pmkt.raft.confchange import apply_conf_change, check_conf_change
from p2pmkt.raft.log import LogReader, LogViolation, RaftLog
from p2pmkt.raft.messages import (
    ConfChange,
    Entry,
    EntryKind,
    HardState,
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
    decode_conf_change,
    encode_conf_change,
)
from p2pmkt.raft.progress import Progress, ProgressState
from p2pmkt.raft.ready import (
    PeerStatus,
    ProposalDropped,
    RaftCoreConfig,
    ReadState,
    Ready,
    SoftState,
    StateRole,
    Status,
    committed_normal_entries,
    validate_core_config,
)
from p2pmkt.types import LogIndex, NodeId, Term

if TYPE_CHECKING:
    from random import Random  # injected; the core never touches the global generator


_ReadReq = tuple[int, NodeId, set[NodeId]]  # (index, requester, acks)


LEADER_LOST_STRIDE = 3
"""Ticks between the campaigns of successive followers after :meth:`RaftCore.leader_lost`."""


class RaftCore:
    """One Raft peer. Not thread-safe; owned by one driver task.

    Args:
        config: see RaftCoreConfig.
        storage: durable state, as persisted by the driver so far.
        rng: the only source of randomness (election timeouts).
    """

    def __init__(self, config: RaftCoreConfig, storage: LogReader, rng: Random) -> None:
        validate_core_config(config)
        self.cfg = config
        self.id = config.id
        self.rng = rng
        self.log = RaftLog(storage)
        hs, cs = storage.initial_state()
        self.term = hs.term
        self.vote = hs.vote
        self.conf = cs
        self.role = StateRole.FOLLOWER
        self.leader: NodeId | None = None
        self.prs: dict[NodeId, Progress] = {}
        self.votes: dict[NodeId, bool] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self._pending_reads: dict[bytes, _ReadReq] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.lead_transferee: NodeId | None = None
        self.pending_conf_index = 0
        self.dropped = 0
        # A commit-only hard state change is written unsynced and may be lost in a crash, but
        # whatever the application applied was committed: never fall below it.
        commit = max(hs.commit, config.applied)
        if commit:
            self.log.commit_to(min(commit, self.log.last_index()))
        if config.applied:
            self.log.applied_to(min(config.applied, self.log.committed))
        # Membership changes applied before the restart but after the snapshot live only as
        # log entries: replay them into our view of the configuration (not to the app).
        snap_index = self.log.first_index() - 1
        if self.log.applied > snap_index:
            for e in self.log.slice(snap_index + 1, self.log.applied + 1):
                if e.kind is EntryKind.CONF_CHANGE:
                    self._apply_conf_entry(e)
        self.become_follower(self.term, None)
        self._prev_soft = SoftState(None, StateRole.FOLLOWER)
        self._prev_hard = HardState(self.term, self.vote, LogIndex(self.log.committed))

    # ---- public: inputs --------------------------------------------------------------------

    def tick(self) -> None:
        """Advance the logical clock by one tick."""
        if self.role is StateRole.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now (tests, or an operator forcing one). Honours pre-vote."""
        self._hup(transfer=False)

    def leader_lost(self) -> None:
        """The transport saw the leader's connection close (its process died).

        A follower stops trusting its lease and campaigns after 1 + LEADER_LOST_STRIDE × (its
        rank among the other voters) more ticks instead of a whole randomized election timeout, so a crashed
        leader is replaced in a few ticks.
        Liveness only: a wrong report costs at most a pre-vote round, because followers
        that still hear from a live leader keep their lease and refuse it. A silent leader
        (a host gone without closing its connections) is still found by the timeout."""
        lost = self.leader
        if self.role is StateRole.LEADER or lost is None:
            return
        self.leader = None
        self.election_elapsed = max(self.election_elapsed, self.cfg.election_tick)
        # Every follower hears of the loss at about the same moment; random delays would
        # collide (split votes cost a whole timeout). Staggering by rank among the remaining
        # voters gives each its own tick: the first to campaign usually wins, and the others
        # reset their timers when they grant it their vote.
        # The stride must exceed a pre-vote + vote round (two round trips and a synced
        # write), or the next in rank campaigns meanwhile and the votes split (seen on a
        # loaded testnet with a 1-tick stride: a whole timeout lost).
        others = sorted(v for v in self.conf.voters if v != lost)
        rank = others.index(self.id) if self.id in others else len(others)
        self.randomized_election_timeout = self.election_elapsed + 1 + LEADER_LOST_STRIDE * rank

    def step(self, m: Message) -> None:
        """Feed one message from a peer. Never raises for bad remote input: it drops it."""
        if m.to != self.id or m.frm == self.id:
            self.dropped += 1
            return
        try:
            self._step(m)
        except (LogViolation, DecodeError):
            self.dropped += 1

    def propose(self, data: bytes) -> LogIndex:
        """Append ``data`` (one block) to the log as a normal entry; leader only.

        Returns the index it will have if committed. Raises ProposalDropped otherwise.
        """
        self._check_can_propose()
        return self._append_and_broadcast(EntryKind.NORMAL, data)

    def propose_conf_change(self, cc: ConfChange) -> LogIndex:
        """Propose a membership change; leader only, one at a time.

        Raises ProposalDropped if not leader, if an earlier change is not applied yet, or if
        ``cc`` does not make sense for the current membership.
        """
        self._check_can_propose()
        if not self._committed_in_term():
            # Ongaro's fix for single-server changes (raft-dev, 2015): a new leader first
            # commits an entry of its own term, so no earlier, unknown change can be pending.
            raise ProposalDropped("the leader has not committed an entry in its term yet")
        if self.pending_conf_index > self.log.applied:
            raise ProposalDropped(
                f"a membership change at index {self.pending_conf_index} is not applied yet"
            )
        why = check_conf_change(self.conf, cc)
        if why is not None:
            raise ProposalDropped(f"membership change refused: {why}")
        idx = self._append_and_broadcast(EntryKind.CONF_CHANGE, encode_conf_change(cc))
        self.pending_conf_index = idx
        return idx

    def transfer_leader(self, to: NodeId) -> None:
        """Hand leadership to voter ``to`` (thesis §3.10). Proposals are refused meanwhile;
        the attempt is abandoned after an election timeout."""
        if self.role is not StateRole.LEADER:
            raise ProposalDropped(f"{self.id} is not the leader")
        if to == self.id or to not in self.conf.voters:
            raise ProposalDropped(f"cannot transfer leadership to {to}: not another voter")
        self.lead_transferee = to
        self.election_elapsed = 0
        if self.prs[to].match == self.log.last_index():
            self._send(MsgTimeoutNow(self.id, to, self.term))
        else:
            self._send_append(to)

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; answered by a ReadState with the same
        ``context`` in a later Ready. ``context`` must be unique among pending requests."""
        if self.role is StateRole.LEADER:
            if not self._committed_in_term():
                raise ProposalDropped("the leader has not committed an entry in its term yet")
            self._leader_read(context, self.id)
        elif self.leader is not None:
            self._send(MsgReadIndex(self.id, self.leader, self.term, context))
        else:
            raise ProposalDropped("no leader is known")

    def report_unreachable(self, peer: NodeId) -> None:
        """The transport could not reach ``peer``: stop pipelining to it and probe instead."""
        pr = self.prs.get(peer)
        if self.role is StateRole.LEADER and pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    # ---- public: outputs -------------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self._soft() != self._prev_soft
            or self._hard() != self._prev_hard
            or self.log.unstable.entries
            or self.log.unstable.snapshot is not None
            or self.msgs
            or self.read_states
            or self.log.has_next_committed()
        )

    def ready(self) -> Ready:
        """Collect the next batch of work. Messages and read states move to the caller.
        Call advance(rd) before calling ready() again."""
        soft, hard = self._soft(), self._hard()
        entries = tuple(self.log.unstable_entries())
        msgs, self.msgs = tuple(self.msgs), []
        reads, self.read_states = tuple(self.read_states), []
        return Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            entries=entries,
            snapshot=self.log.unstable.snapshot,
            committed_entries=tuple(self.log.next_committed(self.cfg.max_committed_size_per_ready)),
            messages=msgs,
            read_states=reads,
            must_sync=bool(entries)
            or self.log.unstable.snapshot is not None
            or (hard.term, hard.vote) != (self._prev_hard.term, self._prev_hard.vote),
        )

    def advance(self, rd: Ready) -> None:
        """The driver has done everything ``rd`` asked (persisted, sent, applied)."""
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            self.log.stable_snap_to(rd.snapshot.meta.index)
            if rd.snapshot.meta.index > self.log.applied:
                self.log.applied = rd.snapshot.meta.index
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
        for e in rd.committed_entries:
            if e.index <= self.log.applied:
                continue  # already covered by a snapshot restored in this Ready
            self.log.applied_to(e.index)
            if e.kind is EntryKind.CONF_CHANGE:
                self._apply_conf_entry(e)

    def statistics(self) -> Status:
        prs = {n: PeerStatus(p.match, p.next, p.state, p.is_learner) for n, p in self.prs.items()}
        return Status(
            self.id,
            self.term,
            self.vote,
            self.role,
            self.leader,
            LogIndex(self.log.committed),
            LogIndex(self.log.applied),
            LogIndex(self.log.last_index()),
            self.conf,
            prs,
            self.dropped,
        )

    # ---- role transitions ------------------------------------------------------------------

    def _reset(self, term: Term) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.leader = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_tick + self.rng.randrange(
            self.cfg.election_tick
        )
        self.lead_transferee = None
        self.votes = {}
        self._pending_reads = {}
        self.pending_conf_index = 0
        last = self.log.last_index()
        self.prs = {}
        for n in (*self.conf.voters, *self.conf.learners):
            self.prs[n] = Progress(next=last + 1, is_learner=n in self.conf.learners)
        if self.id in self.prs:
            self.prs[self.id].match = last

    def become_follower(self, term: Term, leader: NodeId | None) -> None:
        self._reset(term)
        self.role = StateRole.FOLLOWER
        self.leader = leader

    def _become_pre_candidate(self) -> None:
        # Pre-vote changes neither term nor vote: nothing here needs persisting.
        self.role = StateRole.PRE_CANDIDATE
        self.votes = {}
        self.leader = None

    def _become_candidate(self) -> None:
        self._reset(Term(self.term + 1))
        self.vote = self.id
        self.role = StateRole.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = StateRole.LEADER
        self.leader = self.id
        for pr in self.prs.values():
            pr.recent_active = True
        # Any entry in our log may be an unapplied conf change: block new ones until all is
        # applied. Then append an empty entry of our term so earlier ones can commit (§5.4.2).
        self.pending_conf_index = self.log.last_index()
        self._append_entry(EntryKind.NORMAL, b"")

    # ---- ticking ---------------------------------------------------------------------------

    def _promotable(self) -> bool:
        return self.id in self.conf.voters and self.log.unstable.snapshot is None

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self._promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        for n, pr in self.prs.items():
            if n != self.id and pr.state is ProgressState.SNAPSHOT:
                pr.snapshot_ticks += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._check_quorum_active():
                self.become_follower(self.term, None)
                return
            self.lead_transferee = None  # a transfer that took this long has failed
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat(b"")

    def _check_quorum_active(self) -> bool:
        active = {self.id}
        for n, pr in self.prs.items():
            if pr.recent_active:
                active.add(n)
            if n != self.id:
                pr.recent_active = False
        return quorum.has_quorum(self.conf.voters, active)

    # ---- elections -------------------------------------------------------------------------

    def _hup(self, *, transfer: bool) -> None:
        if self.role is StateRole.LEADER or not self._promotable():
            return
        # A committed, unapplied membership change could change who may vote: wait for it.
        if any(e.kind is EntryKind.CONF_CHANGE for e in self.log.next_committed(None)):
            return
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _campaign(self, *, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            vote_term = Term(self.term + 1)
        else:
            self._become_candidate()
            vote_term = self.term
        self.votes[self.id] = True
        if quorum.vote_result(self.conf.voters, self.votes) is quorum.VoteResult.WON:
            if pre:
                self._campaign(pre=False, transfer=False)
            else:
                self._become_leader()
            return
        li, lt = LogIndex(self.log.last_index()), Term(self.log.last_term())
        for n in self.conf.voters:
            if n == self.id:
                continue
            if pre:
                self._send(MsgPreVote(self.id, n, vote_term, li, lt))
            else:
                self._send(MsgVote(self.id, n, vote_term, li, lt, transfer))

    def _handle_vote_request(self, m: MsgPreVote | MsgVote) -> None:
        pre = isinstance(m, MsgPreVote)
        can_vote = (
            self.vote == m.frm
            or (self.vote is None and self.leader is None)
            or (pre and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.last_index, m.last_term):
            # A pre-vote grant answers at the asked term so the asker can count it.
            if pre:
                self._send(MsgPreVoteResp(self.id, m.frm, m.term, False))
            else:
                self.election_elapsed = 0
                self.vote = m.frm
                self._send(MsgVoteResp(self.id, m.frm, m.term, False))
        elif pre:
            self._send(MsgPreVoteResp(self.id, m.frm, self.term, True))
        else:
            self._send(MsgVoteResp(self.id, m.frm, self.term, True))

    # ---- the step function -----------------------------------------------------------------

    def _step(self, m: Message) -> None:
        if m.term > self.term:
            if isinstance(m, MsgPreVote | MsgVote):
                force = isinstance(m, MsgVote) and m.transfer
                in_lease = (
                    self.cfg.check_quorum
                    and self.leader is not None
                    and self.election_elapsed < self.cfg.election_tick
                )
                if in_lease and not force:
                    return  # we heard from a live leader recently: ignore the disruption
            if isinstance(m, MsgPreVote):
                pass  # never change term on a pre-vote
            elif isinstance(m, MsgPreVoteResp) and not m.reject:
                pass  # a grant for our pre-campaign at term+1; counted below
            elif isinstance(m, MsgApp | MsgHeartbeat | MsgSnap):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, None)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and isinstance(
                m, MsgApp | MsgHeartbeat
            ):
                # A stale leader (e.g. behind a partition) learns our term and steps down;
                # without this, pre-vote/check-quorum can leave it unable to rejoin.
                self._send(MsgAppResp(self.id, m.frm, self.term, LogIndex(0)))
            elif isinstance(m, MsgPreVote):
                self._send(MsgPreVoteResp(self.id, m.frm, self.term, True))
            return

        if isinstance(m, MsgPreVote | MsgVote):
            self._handle_vote_request(m)
        elif self.role is StateRole.LEADER:
            self._step_leader(m)
        elif self.role is StateRole.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _step_leader(self, m: Message) -> None:
        pr = self.prs.get(m.frm)
        if isinstance(m, MsgReadIndex):
            if pr is not None and self._committed_in_term():
                self._leader_read(m.context, m.frm)
            return
        if isinstance(m, MsgApp | MsgHeartbeat | MsgSnap):
            self.dropped += 1  # a second leader in our term: impossible for honest peers
            return
        if pr is None:
            return
        if isinstance(m, MsgAppResp):
            self._handle_append_resp(m, pr)
        elif isinstance(m, MsgHeartbeatResp):
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state is ProgressState.SNAPSHOT and pr.snapshot_ticks >= self.cfg.election_tick:
                pr.become_probe()  # the snapshot was probably lost; try again
            elif pr.state is ProgressState.REPLICATE and pr.is_paused(self.cfg.max_inflight):
                # The follower is alive but the window is full: some MsgApps were probably
                # lost. Free one slot so the next append goes out and surfaces the gap.
                pr.inflights.popleft()
            if pr.match < self.log.last_index():
                self._send_append(m.frm)
            if m.context:
                self._ack_read(m.context, m.frm)

    def _handle_append_resp(self, m: MsgAppResp, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            hint: int = m.hint_index
            if m.hint_term > 0:
                hint = self.log.find_conflict_by_term(m.hint_index, m.hint_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm)
            return
        if m.index > self.log.last_index():
            self.dropped += 1  # acknowledges entries we never had
            return
        old_paused = pr.is_paused(self.cfg.max_inflight)
        if pr.maybe_update(m.index):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
            elif pr.state is ProgressState.REPLICATE:
                pr.free_le(m.index)
            if self._maybe_commit():
                self._bcast_append()
            elif old_paused:
                self._send_append(m.frm)
            while self._send_append(m.frm, send_if_empty=False):
                pass
            if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                self._send(MsgTimeoutNow(self.id, m.frm, self.term))
        elif pr.state is ProgressState.SNAPSHOT and m.index >= pr.pending_snapshot:
            pr.become_probe()  # snapshot applied but match was already at its index

    def _step_candidate(self, m: Message) -> None:
        if isinstance(m, MsgApp | MsgHeartbeat | MsgSnap):
            # Someone won this term (or a pre-candidate sees a live leader): follow them.
            self.become_follower(m.term, m.frm)
            self._step_follower(m)
            return
        pre = self.role is StateRole.PRE_CANDIDATE
        if (pre and isinstance(m, MsgPreVoteResp)) or (not pre and isinstance(m, MsgVoteResp)):
            if m.frm not in self.conf.voters:
                return
            self.votes.setdefault(m.frm, not m.reject)
            result = quorum.vote_result(self.conf.voters, self.votes)
            if result is quorum.VoteResult.WON:
                if pre:
                    self._campaign(pre=False, transfer=False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif result is quorum.VoteResult.LOST:
                self.become_follower(self.term, None)

    def _step_follower(self, m: Message) -> None:
        if isinstance(m, MsgApp):
            self.election_elapsed = 0
            self.leader = m.frm
            self._handle_append(m)
        elif isinstance(m, MsgHeartbeat):
            self.election_elapsed = 0
            self.leader = m.frm
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self._send(MsgHeartbeatResp(self.id, m.frm, self.term, m.context))
        elif isinstance(m, MsgSnap):
            self.election_elapsed = 0
            self.leader = m.frm
            self._handle_snapshot(m)
        elif isinstance(m, MsgTimeoutNow):
            self._hup(transfer=True)
        elif isinstance(m, MsgReadIndexResp):
            self.read_states.append(ReadState(m.index, m.context))

    # ---- follower side of replication ------------------------------------------------------

    def _handle_append(self, m: MsgApp) -> None:
        for e in m.entries:
            if e.term > m.term:
                raise LogViolation("MsgApp carries an entry from a future term")
        if m.prev_index < self.log.committed:
            self._send(MsgAppResp(self.id, m.frm, self.term, LogIndex(self.log.committed)))
            return
        last_new = self.log.maybe_append(m.prev_index, m.prev_term, m.commit, m.entries)
        if last_new is not None:
            self._send(MsgAppResp(self.id, m.frm, self.term, LogIndex(last_new)))
            return
        # Reject with a hint: the last index at or below prev_index whose term is <= the
        # leader's prev_term, so the leader can skip a whole conflicting term at once.
        hint = self.log.find_conflict_by_term(min(m.prev_index, self.log.last_index()), m.prev_term)
        self._send(
            MsgAppResp(
                self.id,
                m.frm,
                self.term,
                m.prev_index,
                reject=True,
                hint_index=LogIndex(hint),
                hint_term=Term(self.log.term(hint) or 0),
            )
        )

    def _handle_snapshot(self, m: MsgSnap) -> None:
        s = m.snapshot
        if s.meta.index <= self.log.committed:
            self._send(MsgAppResp(self.id, m.frm, self.term, LogIndex(self.log.committed)))
            return
        if self.log.match_term(s.meta.index, s.meta.term):
            # We already have the entries it covers: just fast-forward the commit index.
            self.log.commit_to(s.meta.index)
        else:
            self.log.restore(s)
            self.conf = s.meta.conf_state
            last = self.log.last_index()
            self.prs = {
                n: Progress(next=last + 1) for n in (*self.conf.voters, *self.conf.learners)
            }
        self._send(MsgAppResp(self.id, m.frm, self.term, LogIndex(self.log.last_index())))

    # ---- leader side of replication --------------------------------------------------------

    def _check_can_propose(self) -> None:
        if self.role is not StateRole.LEADER:
            raise ProposalDropped(f"{self.id} is not the leader (leader: {self.leader})")
        if self.lead_transferee is not None:
            raise ProposalDropped(f"leadership is being transferred to {self.lead_transferee}")

    def _append_entry(self, kind: EntryKind, data: bytes) -> LogIndex:
        idx = self.log.last_index() + 1
        self.log.append([Entry(self.term, LogIndex(idx), kind, data)])
        if self.id in self.prs:
            self.prs[self.id].maybe_update(idx)
        self._maybe_commit()
        return LogIndex(idx)

    def _append_and_broadcast(self, kind: EntryKind, data: bytes) -> LogIndex:
        idx = self._append_entry(kind, data)
        self._bcast_append()
        return idx

    def _maybe_commit(self) -> bool:
        match = {n: p.match for n, p in self.prs.items()}
        return self.log.maybe_commit(quorum.committed_index(self.conf.voters, match), self.term)

    def _committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _bcast_append(self) -> None:
        for n in self.prs:
            if n != self.id:
                self._send_append(n)

    def _send_append(self, to: NodeId, *, send_if_empty: bool = True) -> bool:
        """Send ``to`` what it is missing (entries or a snapshot). Returns True if sent."""
        pr = self.prs[to]
        if pr.is_paused(self.cfg.max_inflight):
            return False
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        ents: list[Entry] | None = None
        if prev_term is not None:
            try:
                ents = self.log.entries_from(pr.next, self.cfg.max_size_per_msg)
            except LookupError:
                ents = None
        if prev_term is None or ents is None:
            snap = self.log.snapshot()
            if snap.is_empty:
                return False  # nothing to send yet; retried on the next heartbeat answer
            self._send(MsgSnap(self.id, to, self.term, snap))
            pr.become_snapshot(snap.meta.index)
            return True
        if not ents and not send_if_empty:
            return False
        self._send(
            MsgApp(
                self.id,
                to,
                self.term,
                LogIndex(prev),
                Term(prev_term),
                tuple(ents),
                LogIndex(self.log.committed),
            )
        )
        pr.sent_entries(ents[-1].index if ents else prev, len(ents))
        return True

    def _bcast_heartbeat(self, context: bytes) -> None:
        for n, pr in self.prs.items():
            if n != self.id:
                commit = min(pr.match, self.log.committed)
                self._send(MsgHeartbeat(self.id, n, self.term, LogIndex(commit), context))

    # ---- ReadIndex (thesis §6.4) -----------------------------------------------------------

    def _leader_read(self, context: bytes, requester: NodeId) -> None:
        idx = self.log.committed
        if quorum.has_quorum(self.conf.voters, {self.id}):
            self._release_read(idx, requester, context)
            return
        self._pending_reads[context] = (idx, requester, {self.id})
        self._bcast_heartbeat(context)

    def _ack_read(self, context: bytes, frm: NodeId) -> None:
        req = self._pending_reads.get(context)
        if req is None:
            return
        req[2].add(frm)
        if not quorum.has_quorum(self.conf.voters, req[2]):
            return
        # A quorum confirmed we were leader when this request arrived; so it did for every
        # earlier request too (insertion order).
        for ctx in list(self._pending_reads):
            idx, requester, _ = self._pending_reads.pop(ctx)
            self._release_read(idx, requester, ctx)
            if ctx == context:
                break

    def _release_read(self, idx: int, requester: NodeId, context: bytes) -> None:
        if requester == self.id:
            self.read_states.append(ReadState(LogIndex(idx), context))
        else:
            self._send(MsgReadIndexResp(self.id, requester, self.term, LogIndex(idx), context))

    # ---- membership ------------------------------------------------------------------------

    def _apply_conf_entry(self, e: Entry) -> None:
        try:
            cc = decode_conf_change(e.data)
        except DecodeError:
            return  # skipped identically on every node
        new = apply_conf_change(self.conf, cc)
        if new is None:
            return
        self.conf = new
        members = {*new.voters, *new.learners}
        for n in list(self.prs):
            if n not in members:
                del self.prs[n]
        for n in members:
            pr = self.prs.get(n)
            if pr is None:
                pr = Progress(next=self.log.last_index() + 1, recent_active=True)
                self.prs[n] = pr
            pr.is_learner = n in new.learners
        if self.role is not StateRole.LEADER:
            return
        if self.id not in new.voters:
            self.become_follower(self.term, None)  # removed (or demoted): step down (§4.2.2)
            return
        if self.lead_transferee is not None and self.lead_transferee not in new.voters:
            self.lead_transferee = None
        # Fewer voters may mean a smaller majority: the commit index can move right now.
        self._maybe_commit()
        self._bcast_append()

    # ---- plumbing --------------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        self.msgs.append(m)

    def _soft(self) -> SoftState:
        return SoftState(self.leader, self.role)

    def _hard(self) -> HardState:
        return HardState(self.term, self.vote, LogIndex(self.log.committed))


__all__ = [
    "PeerStatus",
    "ProposalDropped",
    "RaftCore",
    "RaftCoreConfig",
    "ReadState",
    "Ready",
    "SoftState",
    "StateRole",
    "Status",
    "committed_normal_entries",
    "validate_core_config",
]
