"""Transaction load over the wire protocol, with commit tracking that survives node faults.

Theory of operation
-------------------
* Transactions are **pre-signed** (:func:`presign`) so the clients' signing does not compete
  with the nodes for CPU while a measurement runs. Each is a ``visit.pack`` (or, with
  ``packed=False``, a ``visit.batch``) signed by a ``terminal`` member (one visit by default:
  the smallest useful transaction).
* One **sender task per key** submits its transactions in nonce order over a client connection
  to one node, pipelining up to ``window`` uncommitted ones (the mempool queues at most 64
  ahead of the committed nonce). When its node dies it reconnects to another and re-submits
  everything not yet seen committed: re-submission is idempotent (same signed bytes, same
  txid; ``nonce_used`` means an earlier copy committed).
* One **tracker task** follows ``block`` events of one node, fetches each new block by height
  and records, per txid, the height and monotonic time at which a node told us it committed:
  that is the acknowledgement the chaos checks hold the network to. It also records every
  ``height → hash`` any node ever reported, so two different blocks at one height are caught
  even if they happen between final checks. If its node dies it moves to another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pmkt.chain.tx import SignedTransaction, make_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.market.packed import pack_visits

from .cluster import Cluster, visit


def presign(
    keys: Sequence[PrivateKey], chain_id: str, per_key: int, *, visits_per_tx: int = 1,
    start_nonce: dict[bytes, int] | None = None, merchants: Sequence[str] = ("acme", "globex"),
    packed: bool = True,
) -> list[list[SignedTransaction]]:
    """``per_key`` signed visit transactions per key, in nonce order from ``start_nonce``.

    ``packed``: ``visit.pack`` payloads (what the terminal and the ingester send); False for
    the ``visit.batch`` array form.
    """
    out = []
    seq = 0
    for key in keys:
        n0 = (start_nonce or {}).get(bytes(key.address), 0)
        txs = []
        for n in range(n0, n0 + per_key):
            vs = [visit(seq + j, merchants[(seq + j) % len(merchants)]) for j in range(visits_per_tx)]
            seq += visits_per_tx
            if packed:
                txs.append(make_tx(key, chain_id, n, "visit.pack", pack_visits(vs)))
            else:
                txs.append(make_tx(key, chain_id, n, "visit.batch", {"visits": vs}))
        out.append(txs)
    return out


@dataclass
class Tracker:
    """Commit acknowledgements and every block hash seen, per height."""

    committed: dict[bytes, tuple[int, float]] = field(default_factory=dict)
    hashes: dict[int, bytes] = field(default_factory=dict)
    conflicts: list[tuple[int, bytes, bytes, str]] = field(default_factory=list)
    blocks: list[tuple[float, int, int]] = field(default_factory=list)  # (t, height, txs)
    height: int = 0
    changed: trio.Event = field(default_factory=trio.Event)

    def note_block(self, height: int, bhash: bytes, txids: list[bytes], now: float, source: str) -> None:
        old = self.hashes.get(height)
        if old is not None and old != bhash:
            self.conflicts.append((height, old, bhash, source))
            return
        if old is not None:
            return
        self.hashes[height] = bhash
        for t in txids:
            self.committed.setdefault(t, (height, now))
        self.blocks.append((now, height, len(txids)))
        self.height = max(self.height, height)
        self.changed.set()
        self.changed = trio.Event()


async def run_tracker(cluster: Cluster, tracker: Tracker, prefer: Callable[[], list[str]]) -> None:
    """Follow committed blocks (see module docstring) until cancelled."""
    from p2pmkt.chain.block import decode_block
    from p2pmkt.client import open_client

    while True:
        for name in prefer():
            try:
                async with open_client(cluster.addr(name)) as c, c.subscribe(["block"]) as events:
                    while name in prefer():  # leave a node the scenario took out
                        with trio.fail_after(5):  # a frozen node never answers
                            head = int((await c.head()).height)
                        for h in range(tracker.height + 1, head + 1):
                            with trio.fail_after(5):
                                res = await c.call("chain.block", {"height": h})
                            blk = decode_block(res["block"], max_size=1 << 30)
                            tracker.note_block(h, bytes(blk.hash), [bytes(t.txid) for t in blk.txs],
                                               time.monotonic(), name)
                        # Also compare the hash the node reports at the head with what others said.
                        with trio.move_on_after(1.0):
                            await events.receive()
            except trio.EndOfChannel:
                continue
            except Exception as exc:
                if isinstance(exc, trio.Cancelled):
                    raise
                continue
        await trio.sleep(0.1)  # every node is down or refusing: retry soon


@dataclass
class Sender:
    """Submits one key's transactions in nonce order (see module docstring)."""

    txs: list[SignedTransaction]
    window: int = 48
    rate: float | None = None  # transactions per second, None = as fast as the window allows
    batch: int = 1  # transactions per request: > 1 sends them with tx.submit_batch
    linger: float = 0.05  # paced batching: wait at most this long for a batch to fill (s)
    submitted: dict[bytes, float] = field(default_factory=dict)  # txid → first submit time
    errors: dict[str, int] = field(default_factory=dict)
    done: int = 0  # index of the first tx not yet seen committed
    high: int = 0  # one past the highest index submitted so far

    def stop_offering(self) -> None:
        """Submit nothing new: only what was already submitted still has to commit."""
        del self.txs[max(self.high, self.done):]

    def advance(self, tracker: Tracker) -> None:
        while self.done < len(self.txs) and self.txs[self.done].txid in tracker.committed:
            self.done += 1


async def run_sender(cluster: Cluster, s: Sender, tracker: Tracker, targets: Callable[[], list[str]],
                     *, stall: float = 3.0) -> None:
    """Submit ``s.txs`` until all are committed or cancelled; survives node deaths."""
    from p2pmkt.client import open_client
    from p2pmkt.rpc.protocol import RpcError

    nxt = 0
    t0 = time.monotonic()
    turn = 0
    while s.done < len(s.txs):
        names = targets()
        # The first pass starts at targets()[0] (the leader, when the caller put it first);
        # each later pass, after every node failed or stalled, starts one further on.
        start = turn % max(1, len(names))
        turn += 1
        for name in names[start:] + names[:start]:
            try:
                async with open_client(cluster.addr(name)) as c:
                    nxt = s.done  # (re)submit everything not yet seen committed
                    last_progress = (time.monotonic(), s.done)
                    while s.done < len(s.txs):
                        s.advance(tracker)
                        if s.done != last_progress[1]:
                            last_progress = (time.monotonic(), s.done)
                        elif time.monotonic() - last_progress[0] > stall and nxt > s.done:
                            # Stuck: a transaction got lost with a pool, or this node is cut
                            # off. Resend everything uncommitted through the next node.
                            s.errors["stall"] = s.errors.get("stall", 0) + 1
                            break
                        if nxt >= len(s.txs) or nxt - s.done >= s.window:
                            with trio.move_on_after(0.5):
                                await tracker.changed.wait()
                            continue
                        if s.rate is not None:
                            due = t0 + nxt / s.rate
                            if s.batch > 1:  # a batching client lingers to fill its batch
                                due = min(t0 + (nxt + s.batch - 1) / s.rate, due + s.linger)
                            now = time.monotonic()
                            if due > now:
                                await trio.sleep(due - now)  # pacing the offered load
                        if s.batch > 1:
                            nxt = await _submit_batch(c, s, nxt, tracker, t0)
                            continue
                        stx = s.txs[nxt]
                        try:
                            with trio.fail_after(5):  # a frozen node never answers
                                await c.submit_tx(stx)
                            s.submitted.setdefault(stx.txid, time.monotonic())
                            nxt += 1
                            s.high = max(s.high, nxt)
                        except RpcError as exc:
                            reason = exc.error_reason or f"code{exc.code}"
                            if reason == "nonce_used":
                                s.submitted.setdefault(stx.txid, time.monotonic())
                                nxt += 1  # an earlier copy of this very transaction committed
                                continue
                            s.errors[reason] = s.errors.get(reason, 0) + 1
                            with trio.move_on_after(0.2):
                                await tracker.changed.wait()  # back-pressure: wait for a block
                            if reason in ("nonce_ahead", "nonce_gap"):
                                nxt = s.done
                    if s.done >= len(s.txs):
                        return
            except Exception as exc:
                if isinstance(exc, trio.Cancelled):
                    raise
                s.errors["connection"] = s.errors.get("connection", 0) + 1
                continue
        await trio.sleep(0.1)  # every target is down: retry soon


async def _submit_batch(c: Any, s: Sender, nxt: int, tracker: Tracker, t0: float) -> int:
    """Send the next transactions of ``s`` that fit its window in one ``tx.submit_batch``;
    return the index to continue from (as the one-at-a-time loop judges each answer)."""
    end = min(len(s.txs), s.done + s.window, nxt + s.batch)
    if s.rate is not None:  # paced: only what is due now
        due = int((time.monotonic() - t0) * s.rate) + 1
        end = max(nxt + 1, min(end, due))
    chunk = s.txs[nxt:end]
    with trio.fail_after(5):  # a frozen node never answers
        results = await c.submit_txs(chunk)
    now = time.monotonic()
    for stx, r in zip(chunk, results, strict=True):
        if isinstance(r, bytes) or (r.error_reason or "") == "nonce_used":
            s.submitted.setdefault(stx.txid, now)
            nxt += 1
            continue
        reason = r.error_reason or f"code{r.code}"
        s.errors[reason] = s.errors.get(reason, 0) + 1
        with trio.move_on_after(0.2):
            await tracker.changed.wait()  # back-pressure: wait for a block
        if reason in ("nonce_ahead", "nonce_gap"):
            nxt = s.done
        break
    s.high = max(s.high, nxt)
    return nxt


def latencies(senders: Sequence[Sender], tracker: Tracker, *, since: float = 0.0,
              until: float = float("inf")) -> list[float]:
    out = []
    for s in senders:
        for txid, t in s.submitted.items():
            got = tracker.committed.get(txid)
            if got is not None and since <= t <= until:
                out.append(got[1] - t)
    return out


def summary_errors(senders: Sequence[Sender]) -> dict[str, Any]:
    total: dict[str, int] = {}
    for s in senders:
        for k, v in s.errors.items():
            total[k] = total.get(k, 0) + v
    return total
