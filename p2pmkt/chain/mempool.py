"""The mempool: a bounded, ordered pool of transactions waiting for a block.

Theory of operation
-------------------
The pool holds transactions that passed admission (the node calls
:func:`p2pmkt.chain.apply.validate_tx_for_state` first, with ``max_nonce_gap``) and hands them
to the block builder in an order that applies cleanly:

* **Per sender, nonce order.** Each sender has a *base* (its account nonce, as last told) and
  a run of pending nonces. Only a contiguous run from the base is *ready*; a tx behind a gap
  waits. How far past the run's end a nonce may be is bounded (``max_nonce_gap``), so one
  sender cannot park unbounded futures; the run itself is bounded only by the pool (and a
  sender's share of it, below). Bounded from the base instead, as it was, a sender could have
  no more than 65 transactions waiting: a terminal submitting small batches faster than blocks
  took them was refused ``nonce_ahead`` with no gap at all.
* **Across senders, arrival order.** :meth:`Mempool.select` merges the senders' ready runs
  by the arrival number of each run's next tx (a heap), so a busy terminal cannot starve the
  platform, and selection is deterministic for a given history of calls.
* **Bounded.** At most ``mempool_max_txs`` transactions and ``mempool_max_bytes`` bytes
  (genesis :class:`ChainParams`), and one sender at most a quarter of the transactions (so one
  busy terminal cannot keep everyone else out). A full pool, or a sender at its share, raises
  :class:`MempoolFull` (back-pressure: the client retries after the next block); nothing
  admitted is ever dropped silently. Duplicates (same txid) are reported, not re-added.
* **Eviction.** After a block, :meth:`Mempool.on_block` removes its transactions and every
  pending tx whose nonce the sender's account has passed (replaced or stale); for a sender
  the block rejected a transaction of, :meth:`drop_past` removes every pending tx past its
  account nonce and refuses later ones until the sender re-signs that nonce (they could
  only commit behind a re-signed gap, duplicating what the sender re-sends). :meth:`expire`
  drops *parked* transactions (behind a missing nonce) older than ``ttl`` (``now`` is passed
  in; the pool has no clock), with the same sender's later nonces. Ready ones are never
  expired: they apply as soon as blocks are made again, and their senders were told they
  were taken.

The pool never reads state: the caller passes account nonces in. It does no I/O and is not
thread-safe (the node owns it from one trio task).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter

from p2pmkt.chain.genesis import ChainParams
from p2pmkt.chain.tx import SignedTransaction
from p2pmkt.errors import InvalidTransaction, MempoolFull, NonceError
from p2pmkt.types import Address, Hash32

__all__ = ["Mempool", "MempoolStatistics"]

DEFAULT_MAX_NONCE_GAP = 64
DEFAULT_TTL = 600.0


@dataclass(frozen=True, slots=True)
class MempoolStatistics:
    """Introspection snapshot (see :meth:`Mempool.statistics`)."""

    txs: int
    bytes: int
    senders: int
    ready: int
    max_txs: int
    max_bytes: int


@dataclass(slots=True)
class _Entry:
    stx: SignedTransaction
    size: int
    arrival: int
    added: float


@dataclass(slots=True)
class _Sender:
    base: int  # the account nonce as last told: the next nonce that can apply
    next: int  # the end of the ready run: the first nonce from ``base`` not pending
    pending: dict[int, _Entry] = field(default_factory=dict)

    def advance(self) -> None:
        """Re-establish ``next`` after ``base`` rose or a nonce joined the run's end."""
        n = max(self.next, self.base)
        while n in self.pending:
            n += 1
        self.next = n


class Mempool:
    """Bounded pending-transaction pool; see the module docstring for the rules."""

    def __init__(
        self,
        params: ChainParams,
        *,
        max_nonce_gap: int = DEFAULT_MAX_NONCE_GAP,
        ttl: float = DEFAULT_TTL,
        max_bytes: int | None = None,
    ) -> None:
        """``max_bytes``: a node's own, lower cap on the pool's wire bytes (the chain's
        ``mempool_max_bytes`` still applies when it is lower)."""
        self.max_txs = params.mempool_max_txs
        self.max_bytes = params.mempool_max_bytes if max_bytes is None else min(max_bytes, params.mempool_max_bytes)
        self.max_tx_bytes = params.max_tx_bytes
        self.max_nonce_gap = max_nonce_gap
        self.max_per_sender = max(max_nonce_gap + 1, self.max_txs // 4)
        self.ttl = ttl
        self._senders: dict[Address, _Sender] = {}
        self._by_id: dict[Hash32, _Entry] = {}
        self._bytes = 0
        self._arrivals = 0
        # Senders whose sequence a block cut (drop_past): the account nonce it stopped at, and
        # why, until the sender re-signs that nonce or its account moves past it.
        self._cut: dict[Address, tuple[int, str]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, txid: object) -> bool:
        return txid in self._by_id

    def get(self, txid: bytes) -> SignedTransaction | None:
        """The pooled transaction with ``txid``, or None."""
        entry = self._by_id.get(txid)  # type: ignore[call-overload]
        return None if entry is None else entry.stx

    def add(self, stx: SignedTransaction, *, account_nonce: int, now: float) -> bool:
        """Queue ``stx``; return False if the same transaction is already queued.

        Args:
            stx: an admitted transaction.
            account_nonce: the sender's current account nonce in committed state.
            now: the caller's clock (seconds); only used for :meth:`expire`.

        Raises:
            NonceError: the nonce is used (``nonce_used``), too far ahead (``nonce_ahead``),
                another transaction with it is already queued (``nonce_pending``), or it
                follows a nonce a block rejected and the sender has not re-signed that one yet
                (``behind_rejected``, see :meth:`drop_past`).
            InvalidTransaction: larger than the chain's ``max_tx_bytes``.
            MempoolFull: the pool is at its transaction or byte limit; retry later.
        """
        if stx.txid in self._by_id:
            return False
        sender, nonce = stx.tx.sender, stx.tx.nonce
        size = len(stx.body) + len(stx.sig)
        if size > self.max_tx_bytes:
            raise InvalidTransaction(
                f"transaction is {size} bytes; this chain accepts at most {self.max_tx_bytes}",
                reason="tx_too_large",
            )
        cut = self._cut.get(sender)
        if cut is not None:
            if account_nonce != cut[0]:
                del self._cut[sender]  # the account moved on: the gap was filled
            elif nonce > cut[0]:
                raise NonceError(
                    f"nonce {nonce} follows nonce {cut[0]}, which {cut[1]}; nothing of this "
                    f"sender from nonce {cut[0]} on is pooled or will commit: sign again from "
                    f"nonce {cut[0]}", reason="behind_rejected")
        slot = self._senders.get(sender)
        base = max(account_nonce, slot.base if slot else account_nonce)
        if nonce < base:
            raise NonceError(f"nonce {nonce} already used; next is {base}", reason="nonce_used")
        nxt = max(slot.next, base) if slot else base
        if nonce > nxt + self.max_nonce_gap:
            raise NonceError(
                f"nonce {nonce} is ahead; next is {nxt} and at most {self.max_nonce_gap} "
                "may wait ahead of it",
                reason="nonce_ahead",
            )
        if slot is not None and nonce in slot.pending:
            raise NonceError(
                f"another transaction with nonce {nonce} from this sender is already pending",
                reason="nonce_pending",
            )
        if len(self._by_id) >= self.max_txs or self._bytes + size > self.max_bytes:
            raise MempoolFull(
                f"mempool is full ({len(self._by_id)} transactions, {self._bytes} bytes; limits "
                f"{self.max_txs} and {self.max_bytes}); retry after the next block"
            )
        if slot is not None and len(slot.pending) >= self.max_per_sender:
            raise MempoolFull(
                f"this sender has {len(slot.pending)} transactions waiting, its share of the "
                f"mempool ({self.max_per_sender}); retry after the next block"
            )
        if slot is None:
            slot = self._senders[sender] = _Sender(base, base)
        slot.base = base
        self._arrivals += 1
        entry = _Entry(stx, size, self._arrivals, now)
        slot.pending[nonce] = entry
        if nonce == slot.next or slot.next < base:
            slot.advance()
        self._by_id[stx.txid] = entry
        self._bytes += size
        if cut is not None and nonce == cut[0]:
            self._cut.pop(sender, None)  # the sender's re-signature of the gap: its sequence resumes
        return True

    def select(self, max_txs: int, max_bytes: int) -> list[SignedTransaction]:
        """Ready transactions for the next block, at most ``max_txs`` and ``max_bytes``.

        Nothing is removed: the pool forgets transactions in :meth:`on_block` once they are
        committed. A sender's run stops at the first tx that does not fit, so its later
        nonces never overtake it.
        """
        heap: list[tuple[int, Address, int]] = []
        for address, slot in self._senders.items():
            first = slot.pending.get(slot.base)
            if first is not None:
                heap.append((first.arrival, address, slot.base))
        heapq.heapify(heap)
        out: list[SignedTransaction] = []
        used = 0
        while heap and len(out) < max_txs:
            _, address, nonce = heapq.heappop(heap)
            slot = self._senders[address]
            entry = slot.pending[nonce]
            if used + entry.size > max_bytes:
                continue
            out.append(entry.stx)
            used += entry.size
            nxt = slot.pending.get(nonce + 1)
            if nxt is not None:
                heapq.heappush(heap, (nxt.arrival, address, nonce + 1))
        return out

    def on_block(self, txs: Iterable[SignedTransaction], nonce_of: Callable[[Address], int]) -> int:
        """Forget ``txs`` (a committed block's) and every pending nonce their senders passed.

        Args:
            txs: the transactions of the committed block (accepted or rejected alike).
            nonce_of: the account nonce after the block, read from committed state.

        Returns:
            How many transactions left the pool.
        """
        before = len(self._by_id)
        senders = {stx.tx.sender for stx in txs}
        holes: dict[Address, int] = {}  # lowest nonce dropped per sender
        for stx in txs:
            entry = self._by_id.get(stx.txid)
            if entry is not None:
                sender, nonce = stx.tx.sender, stx.tx.nonce
                self._drop(sender, nonce)
                holes[sender] = min(nonce, holes.get(sender, nonce))
        for address in senders:
            slot = self._senders.get(address)
            if slot is None:
                continue
            slot.base = nonce_of(address)
            for nonce in [n for n in slot.pending if n < slot.base]:
                self._drop(address, nonce)
            # A dropped nonce the account has not passed cuts the run there.
            hole = holes.get(address)
            if hole is not None and hole >= slot.base:
                slot.next = min(slot.next, hole)
            slot.advance()
            self._forget_if_empty(address)
        return before - len(self._by_id)

    def drop_past(self, address: Address, account_nonce: int, why: str = "a block rejected") -> int:
        """Drop ``address``'s pending transactions past ``account_nonce``, and refuse its
        later ones (``behind_rejected``) until it re-signs that nonce; returns how many left.

        For a sender a committed block rejected a transaction of at its account nonce (call
        it after :meth:`on_block`; ``why`` completes "nonce N, which …" in the refusal): its
        nonce did not advance, so its transactions past it could only ever commit behind one
        the sender has not signed yet, and a client re-signing from the account nonce (as
        PROTOCOL.md says to) would then commit its own work twice. Every node applies the
        same block and drops the same ones, so "nothing from the rejected one on is on the
        chain" stays true; and the ones still on their way (sent before the sender could
        know) are refused as they arrive, with the nonce to sign again from. A transaction
        at the account nonce is the sender's re-signature of the gap: kept if pending, taken
        if new, and from then on the sender's transactions are taken as before (also once
        its account moves past that nonce). At most ``max_txs`` senders are remembered so
        (the oldest forgotten first)."""
        self._cut.pop(address, None)
        self._cut[address] = (account_nonce, why)
        if len(self._cut) > self.max_txs:
            del self._cut[next(iter(self._cut))]
        slot = self._senders.get(address)
        if slot is None:
            return 0
        past = [n for n in slot.pending if n > account_nonce]
        for nonce in past:
            self._drop(address, nonce)
        slot.base = account_nonce
        slot.next = account_nonce
        slot.advance()
        self._forget_if_empty(address)
        return len(past)

    def expire(self, now: float) -> int:
        """Drop parked transactions (behind a missing nonce) queued more than ``ttl`` seconds
        before ``now``, and the same sender's later nonces. Returns how many left."""
        before = len(self._by_id)
        cutoff = now - self.ttl
        for address in list(self._senders):
            slot = self._senders[address]
            stale = [n for n, e in slot.pending.items() if n > slot.next and e.added <= cutoff]
            if stale:
                first = min(stale)
                for nonce in [n for n in slot.pending if n >= first]:
                    self._drop(address, nonce)
            self._forget_if_empty(address)
        return before - len(self._by_id)

    def pending_nonce(self, address: Address, account_nonce: int) -> int:
        """The next nonce ``address`` should use, counting its ready run in the pool."""
        slot = self._senders.get(address)
        if slot is None:
            return account_nonce
        if account_nonce <= slot.base:
            return slot.next
        nonce = account_nonce  # fresher than the pool's base: the run may start further on
        while nonce in slot.pending:
            nonce += 1
        return nonce

    def in_arrival_order(self) -> list[SignedTransaction]:
        """Every pooled transaction, the earliest arrival first."""
        return [e.stx for e in sorted(self._by_id.values(), key=attrgetter("arrival"))]

    def statistics(self) -> MempoolStatistics:
        ready = 0
        for slot in self._senders.values():
            n = slot.base
            while n in slot.pending:
                ready += 1
                n += 1
        return MempoolStatistics(
            len(self._by_id), self._bytes, len(self._senders), ready, self.max_txs, self.max_bytes
        )

    def _drop(self, address: Address, nonce: int) -> None:
        slot = self._senders[address]
        entry = slot.pending.pop(nonce)
        del self._by_id[entry.stx.txid]
        self._bytes -= entry.size

    def _forget_if_empty(self, address: Address) -> None:
        slot = self._senders.get(address)
        if slot is not None and not slot.pending:
            del self._senders[address]
