"""etcd-style interaction transcripts for the Raft core (tests/raft/testdata/*.txt).

Theory of operation
-------------------
A transcript is a sequence of blocks in the "datadriven" format::

    # comments start with '#'
    command arg arg key=value
    ----
    expected output (no blank lines inside)

:func:`run_transcript` executes each command against a :class:`p2pmkt.testing.sim.Cluster`
and collects what it printed. The test compares that with the file; with ``--rewrite`` the
file is regenerated instead (review the diff before committing!). Output is fully
deterministic: the cluster is seeded and node ids are short strings.

Commands (node ids are plain strings such as ``1``):

=========================================  ==================================================
``add-nodes voters=1,2,3 [learners=..]``   new cluster (``spares=4`` adds empty nodes;
``  [spares=..] [pre-vote=false]``          ``check-quorum=false`` disables leases)
``[check-quorum=false] [seed=N]``
``campaign ID`` / ``tick-election ID``     start an election now / after a full timeout
``tick-heartbeat ID`` / ``tick ID N``      tick once / N times
``stabilize``                              process Readies and deliver until quiet (logged)
``process-ready ID`` / ``deliver-msgs``    one step of the above (``deliver-msgs ID``)
``propose ID DATA``                        propose a block on ID
``propose-conf-change ID OP NODE``         OP: add-voter remove add-learner promote
``transfer-leadership ID TO``              leadership transfer
``read-index ID CTX``                      ReadIndex request
``isolate ID`` / ``cut A B`` / ``heal``    partitions
``drop KIND...``                           drop message kinds (until heal)
``crash ID`` / ``restart ID``              lose volatile state / reload from storage
``snapshot ID [keep=N]``                   snapshot applied state and compact the log
``status ID`` / ``raft-log ID``            print state / the log
=========================================  ==================================================
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from p2pmkt.errors import P2pmktError
from p2pmkt.raft import (
    ConfChange,
    ConfChangeType,
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
    Ready,
    decode_conf_change,
)
from p2pmkt.testing.sim import Cluster
from p2pmkt.types import NodeId


@dataclass(slots=True)
class Block:
    line: int
    command: str
    expected: list[str]
    comments: list[str]


def parse(text: str) -> list[Block]:
    """Split a transcript into blocks. Raises ValueError on a missing ``----``."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i, comments = 0, []
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("#"):
            comments.append(line)
            i += 1
            continue
        start, cmd = i + 1, line
        i += 1
        if i >= len(lines) or lines[i] != "----":
            raise ValueError(f"line {start}: expected '----' after the command")
        i += 1
        out = []
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        blocks.append(Block(start, cmd, out, comments))
        comments = []
    return blocks


def render(blocks: list[Block], outputs: list[list[str]]) -> str:
    parts: list[str] = []
    for b, out in zip(blocks, outputs):
        parts.extend(b.comments)
        parts.extend([b.command, "----", *(out or ["ok"]), ""])
    return "\n".join(parts).rstrip("\n") + "\n"


def fmt_entry(e: Entry) -> str:
    if e.kind is EntryKind.CONF_CHANGE:
        try:
            cc = decode_conf_change(e.data)
            return f"{e.term}/{e.index} EntryConfChange {cc.type.name.lower()} {cc.node_id}"
        except P2pmktError:
            return f"{e.term}/{e.index} EntryConfChange <bad>"
    return f"{e.term}/{e.index} EntryNormal {e.data.decode(errors='replace')!r}"


def fmt_msg(m: Message) -> str:
    head = f"{m.frm}->{m.to} {type(m).__name__} Term:{m.term}"
    match m:
        case MsgPreVote() | MsgVote():
            extra = " transfer" if isinstance(m, MsgVote) and m.transfer else ""
            return f"{head} Log:{m.last_term}/{m.last_index}{extra}"
        case MsgPreVoteResp() | MsgVoteResp():
            return f"{head} {'Rejected' if m.reject else 'Granted'}"
        case MsgApp():
            ents = ", ".join(fmt_entry(e) for e in m.entries)
            return f"{head} Log:{m.prev_term}/{m.prev_index} Commit:{m.commit}" + (
                f" Entries:[{ents}]" if ents else ""
            )
        case MsgAppResp():
            if m.reject:
                return f"{head} Rejected {m.index} (Hint: {m.hint_term}/{m.hint_index})"
            return f"{head} Index:{m.index}"
        case MsgHeartbeat():
            return f"{head} Commit:{m.commit}" + (f" ctx:{m.context.decode()}" if m.context else "")
        case MsgHeartbeatResp():
            return head + (f" ctx:{m.context.decode()}" if m.context else "")
        case MsgSnap():
            meta = m.snapshot.meta
            return f"{head} Snapshot:{meta.term}/{meta.index} voters={','.join(meta.conf_state.voters)}"
        case MsgTimeoutNow():
            return head
        case MsgReadIndex():
            return f"{head} ctx:{m.context.decode()}"
        case MsgReadIndexResp():
            return f"{head} Index:{m.index} ctx:{m.context.decode()}"


def fmt_ready(n: str, rd: Ready) -> list[str]:
    out = [f"> {n} handling Ready"]
    if rd.soft_state is not None:
        out.append(f"  Lead:{rd.soft_state.leader or '-'} State:{rd.soft_state.role.name}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        out.append(f"  HardState Term:{hs.term} Vote:{hs.vote or '-'} Commit:{hs.commit}")
    if rd.snapshot is not None:
        out.append(f"  Snapshot {rd.snapshot.meta.term}/{rd.snapshot.meta.index}")
    if rd.entries:
        out.append("  Entries:")
        out.extend(f"  {fmt_entry(e)}" for e in rd.entries)
    if rd.committed_entries:
        out.append("  CommittedEntries:")
        out.extend(f"  {fmt_entry(e)}" for e in rd.committed_entries)
    if rd.messages:
        out.append("  Messages:")
        out.extend(f"  {fmt_msg(m)}" for m in rd.messages)
    if rd.read_states:
        out.extend(f"  ReadState Index:{r.index} ctx:{r.context.decode()}" for r in rd.read_states)
    return out


_CC_OPS = {
    "add-voter": ConfChangeType.ADD_VOTER,
    "remove": ConfChangeType.REMOVE_VOTER,
    "add-learner": ConfChangeType.ADD_LEARNER,
    "promote": ConfChangeType.PROMOTE_LEARNER,
}


class Interaction:
    """Runs transcript commands; each returns the lines it printed."""

    def __init__(self) -> None:
        self.cl: Cluster | None = None
        self.out: list[str] = []

    @property
    def cluster(self) -> Cluster:
        if self.cl is None:
            raise ValueError("run add-nodes first")
        return self.cl

    def run(self, command: str) -> list[str]:
        self.out = []
        words = shlex.split(command)
        args = [w for w in words[1:] if "=" not in w]
        kw = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        handler: Callable[[list[str], dict[str, str]], None] | None = getattr(
            self, "cmd_" + words[0].replace("-", "_"), None
        )
        if handler is None:
            raise ValueError(f"unknown command {words[0]!r}")
        try:
            handler(args, kw)
        except P2pmktError as exc:
            self.out.append(f"error: {exc}")
        return self.out

    # ---- instrumented stepping -------------------------------------------------------------

    def _process(self, n: str) -> bool:
        cl = self.cluster
        node = cl.nodes[NodeId(n)]
        if not node.up or not node.c.has_ready():
            return False
        core = node.c
        # Peek at the Ready the cluster is about to handle, for the log.
        real_ready = core.ready

        def spy() -> Ready:
            rd = real_ready()
            self.out.extend(fmt_ready(n, rd))
            return rd

        core.ready = spy  # type: ignore[method-assign]
        try:
            cl.process_ready(n)
        finally:
            del core.ready
        return True

    def _deliver(self, to: str | None = None) -> bool:
        cl = self.cluster
        msgs = [m for m in cl.pending if to is None or m.to == to]
        if not msgs:
            return False
        by_to: dict[str, list[Message]] = {}
        for m in msgs:
            by_to.setdefault(m.to, []).append(m)
        cl.pending = [m for m in cl.pending if not (to is None or m.to == to)]
        for n in sorted(by_to):
            self.out.append(f"> {n} receiving messages")
            for m in by_to[n]:
                ok = cl.deliver_msg(m)
                self.out.append(f"  {fmt_msg(m)}" + ("" if ok else " DROPPED"))
        return True

    # ---- commands --------------------------------------------------------------------------

    def cmd_add_nodes(self, args: list[str], kw: dict[str, str]) -> None:
        def ids(key: str) -> list[str]:
            return [x for x in kw.get(key, "").split(",") if x]

        self.cl = Cluster(
            ids("voters"),
            learners=ids("learners"),
            spares=ids("spares"),
            seed=int(kw.get("seed", "0")),
            pre_vote=kw.get("pre-vote", "true") == "true",
            check_quorum=kw.get("check-quorum", "true") == "true",
        )
        for n in self.cl.nodes:
            while self.cl.nodes[n].c.has_ready():  # apply the bootstrap entries quietly
                self.cl.process_ready(n)
        self.out.append(f"voters={','.join(ids('voters'))}")

    def cmd_campaign(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.campaign(args[0])

    def cmd_tick_election(self, args: list[str], kw: dict[str, str]) -> None:
        c = self.cluster.nodes[NodeId(args[0])].c
        self.cluster.tick(args[0], max(c.randomized_election_timeout, c.cfg.election_tick))

    def cmd_tick_heartbeat(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.tick(args[0], self.cluster.nodes[NodeId(args[0])].c.cfg.heartbeat_tick)

    def cmd_tick(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.tick(args[0], int(args[1]))

    def cmd_stabilize(self, args: list[str], kw: dict[str, str]) -> None:
        for _ in range(1000):
            moved = False
            for n in sorted(self.cluster.nodes):
                moved |= self._process(n)
            moved |= self._deliver()
            if not moved:
                return
        raise ValueError("stabilize did not converge")

    def cmd_process_ready(self, args: list[str], kw: dict[str, str]) -> None:
        for n in args:
            self._process(n)

    def cmd_deliver_msgs(self, args: list[str], kw: dict[str, str]) -> None:
        self._deliver(args[0] if args else None)

    def cmd_propose(self, args: list[str], kw: dict[str, str]) -> None:
        idx = self.cluster.nodes[NodeId(args[0])].c.propose(args[1].encode())
        self.out.append(f"index {idx}")

    def cmd_propose_conf_change(self, args: list[str], kw: dict[str, str]) -> None:
        cc = ConfChange(_CC_OPS[args[1]], NodeId(args[2]))
        idx = self.cluster.nodes[NodeId(args[0])].c.propose_conf_change(cc)
        self.out.append(f"index {idx}")

    def cmd_transfer_leadership(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.nodes[NodeId(args[0])].c.transfer_leader(NodeId(args[1]))

    def cmd_read_index(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.nodes[NodeId(args[0])].c.read_index(args[1].encode())

    def cmd_isolate(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.isolate(args[0])

    def cmd_cut(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.cut(args[0], args[1])

    def cmd_heal(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.heal()

    def cmd_drop(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.drop(*args)

    def cmd_crash(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.crash(args[0])
        self.cluster.pending = [m for m in self.cluster.pending if m.to != args[0]]

    def cmd_restart(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.restart(args[0])
        self.cmd_status(args, kw)

    def cmd_snapshot(self, args: list[str], kw: dict[str, str]) -> None:
        self.cluster.snapshot(args[0], keep=int(kw.get("keep", "0")))
        st = self.cluster.nodes[NodeId(args[0])].store
        self.out.append(f"snapshot {st.snapshot().meta.index}, log starts at {st.first_index()}")

    def cmd_status(self, args: list[str], kw: dict[str, str]) -> None:
        s = self.cluster.nodes[NodeId(args[0])].c.statistics()
        self.out.append(
            f"{s.id} {s.role.name} term={s.term} vote={s.vote or '-'} lead={s.leader or '-'} "
            f"commit={s.commit} applied={s.applied} last={s.last_index}"
        )
        self.out.append(
            f"voters={','.join(s.conf_state.voters)} learners={','.join(s.conf_state.learners) or '-'}"
        )
        for n, p in sorted(s.progress.items()):
            if n != s.id and s.role.name == "LEADER":
                self.out.append(f"  {n}: {p.state.name} match={p.match} next={p.next}")

    def cmd_raft_log(self, args: list[str], kw: dict[str, str]) -> None:
        log = self.cluster.nodes[NodeId(args[0])].c.log
        ents = log.slice(log.first_index(), log.last_index() + 1)
        self.out.extend(fmt_entry(e) for e in ents)
        if not ents:
            self.out.append(f"log empty after index {log.first_index() - 1}")


def run_transcript(path: Path) -> tuple[str, str]:
    """Run ``path``; returns (file text, text the run produced)."""
    text = path.read_text()
    blocks = parse(text)
    it = Interaction()
    outputs = [it.run(b.command) for b in blocks]
    return text, render(blocks, outputs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="run (and optionally rewrite) Raft transcripts")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--rewrite", action="store_true")
    a = p.parse_args(argv)
    bad = 0
    for f in a.files:
        want, got = run_transcript(f)
        if want != got:
            if a.rewrite:
                f.write_text(got)
            else:
                bad += 1
                print(f"{f}: output differs (rerun with --rewrite and review the diff)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Interaction", "fmt_entry", "fmt_msg", "fmt_ready", "parse", "render", "run_transcript"]
