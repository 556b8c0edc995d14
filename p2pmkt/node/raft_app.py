"""The chain as Raft's replicated state machine: one Raft entry is one block.

Theory of operation
-------------------
:class:`ChainApp` implements :class:`p2pmkt.node.raft_driver.RaftApplication`. Committed
entries arrive in log order; each normal entry holds one encoded block:

* height <= head: a duplicate or a stale block of a deposed leader — skipped (every node skips
  the same entries, since every node applies the same log from the same genesis);
* height == head + 1: applied through :meth:`ChainService.apply_committed`, which itself skips a
  block that fails its checks (wrong parent, bad signature, proposer not a validator);
* after restoring a Raft snapshot taken at chain height ``floor`` this node lacks blocks up to
  ``floor``; :meth:`wants` names them and the catch-up task fetches them from peers over
  ``/p2pmkt/sync/1.0.0`` (peers serve committed blocks only). Log entries arriving meanwhile
  are kept **in log order** and, once the head reaches ``floor``, go through exactly the rules
  above, as they did on every up-to-date node at that point of the log. Entries for heights
  ``<= floor`` are re-proposals of blocks committed before the snapshot and are ignored: the
  real block of that height comes from peers. (Keeping "the last entry per height" instead
  once let a stale re-proposal win and forked a catching-up node; tests/node pin this.)

A Raft snapshot is just ``{"height", "hash"}`` of the chain head: chain state is rebuilt from
blocks, never shipped whole. ``last_applied`` is persisted after each applied batch, in its own
small write, at most once a second; reporting a lower index after a crash is harmless because
re-applied entries are skipped by height.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from p2pmkt.chain.block import Block, decode_block
from p2pmkt.errors import P2pmktError, StorageError
from p2pmkt.node.chain import Applied, ChainService
from p2pmkt.node.logs import kv
from p2pmkt.raft import Entry, EntryKind, Snapshot
from p2pmkt.types import NodeId, Term
from p2pmkt.wire.cbor import decode, encode

log = logging.getLogger("p2pmkt.raft_app")

_U64 = struct.Struct(">Q")
_APPLIED_KEY = b"raft_applied"
MAX_BUFFERED = 10_000
APPLIED_PERSIST_EVERY = 1.0  # seconds


class ChainApp:
    def __init__(
        self,
        chain: ChainService,
        *,
        on_applied: Callable[[Applied], Any],
        on_leader: Callable[[NodeId | None, Term], Any] = lambda leader, term: None,
    ) -> None:
        self.chain = chain
        self.on_applied = on_applied
        self.on_leader = on_leader
        env = chain.store.env
        self._env = env
        self._db = env.open_db(b"node_meta")
        with env.begin(db=self._db) as txn:
            raw = txn.get(_APPLIED_KEY)
        self._applied = _U64.unpack(bytes(raw))[0] if raw is not None else 0
        self._persisted_at = -APPLIED_PERSIST_EVERY
        self._pending: deque[Block] = deque()  # decoded block entries, in log order
        self.floor = 0  # chain height of the last restored snapshot
        self.target_height = 0  # catch-up goal (snapshot floor or a head announced by gossip)
        self.leader: NodeId | None = None
        self.term = 0

    # --- RaftApplication ----------------------------------------------------------------

    def last_applied(self) -> int:
        return self._applied

    def apply(self, entries: Sequence[Entry]) -> None:
        for e in entries:
            if e.kind == EntryKind.NORMAL and e.data:
                self._block(e.data)
            self._applied = e.index
        # At most once per APPLIED_PERSIST_EVERY: each write is a synced LMDB commit on the
        # hot path, and reporting a lower index after a crash is harmless (see above).
        now = time.monotonic()
        if now - self._persisted_at >= APPLIED_PERSIST_EVERY:
            self._persisted_at = now
            # Through the store's map sizer: a full map grows (or stops the node cleanly).
            self.chain.store.sizer.write(
                "recording the applied Raft index",
                lambda txn: txn.put(_APPLIED_KEY, _U64.pack(self._applied), db=self._db))

    def snapshot(self) -> bytes:
        head = self.chain.head()
        return encode({"height": head.height, "hash": bytes(head.hash)})

    def restore(self, snapshot: Snapshot) -> None:
        if snapshot.data:
            try:
                obj = decode(snapshot.data)
                self.floor = max(self.floor, int(obj["height"]))
                self.target_height = max(self.target_height, self.floor)
                self._pending.clear()  # entries before the snapshot are covered by it
            except (P2pmktError, KeyError, TypeError, ValueError):
                log.error(kv("bad_raft_snapshot", index=snapshot.meta.index))
        self._applied = snapshot.meta.index
        log.info(kv("raft_snapshot_restored", index=snapshot.meta.index, height=self.target_height,
                    have=self.chain.head().height))

    def leader_changed(self, leader: NodeId | None, term: Term) -> None:
        if leader != self.leader:
            log.info(kv("raft_leader", leader=leader, term=int(term)))
        self.leader, self.term = leader, int(term)
        self.chain.metrics.raft_term.set(int(term))
        self.on_leader(leader, term)

    # --- blocks -------------------------------------------------------------------------

    def _block(self, data: bytes) -> None:
        try:
            block = decode_block(data, max_size=self.chain.genesis.params.max_block_bytes,
                                 known=self.chain.tx_cache.get)
        except P2pmktError as exc:
            self.chain.metrics.reject(exc.reason, "raft")
            log.warning(kv("raft_entry_skipped", reason=exc.reason, message=str(exc)))
            return
        height = block.height
        if height <= self.floor:
            return  # a re-proposal of a height committed before the snapshot
        if self._pending or self.chain.head().height < self.floor:
            if len(self._pending) < MAX_BUFFERED:
                self._pending.append(block)
            else:  # too far behind to buffer: the rest comes from peers by height
                self.target_height = max(self.target_height, height)
            self._drain()
            return
        if not self._step(block):
            self._pending.append(block)  # wait, in log order, for the gap to fill

    def _step(self, block: Block) -> bool:
        """The rule every node applies to the next block entry; False if it leaves a gap."""
        head, height = self.chain.head().height, block.height
        if height <= head:
            return True  # duplicate or stale: skipped identically everywhere
        if height > head + 1:
            self.target_height = max(self.target_height, height - 1)
            return False
        self._apply(block)
        return True

    def _drain(self) -> int:
        """Run pending entries through :meth:`_step` once the head has reached the floor."""
        done = 0
        while self._pending and self.chain.head().height >= self.floor:
            before = self.chain.head().height
            if not self._step(self._pending[0]):
                break
            self._pending.popleft()
            done += self.chain.head().height - before
        return done

    def _apply(self, block: Block) -> None:
        applied = self.chain.apply_committed(block)
        if applied is not None:
            self.on_applied(applied)

    def wants(self) -> tuple[int, int] | None:
        """Heights ``(start, end)`` this node must fetch from peers, or None when caught up."""
        head = self.chain.head().height
        end = max(self.target_height, self.floor)
        if self._pending and head >= self.floor:
            end = max(end, self._pending[0].height - 1)
        return (head + 1, end) if end > head else None

    def offer(self, blocks: Sequence[Any]) -> int:
        """Apply fetched committed blocks (decoded, ascending) that extend the head, then the
        pending log entries. Returns how many blocks were applied."""
        done = 0
        for block in blocks:
            if block.height != self.chain.head().height + 1:
                continue
            try:
                applied = self.chain.apply(block)
            except StorageError:
                raise  # our disk, not the peer's block: stop rather than spin (map full)
            except P2pmktError as exc:
                log.warning(kv("sync_block_rejected", height=block.height, reason=exc.reason))
                break
            self.on_applied(applied)
            done += 1
        return done + self._drain()
