"""ChainService: a node's synchronous chain core — store, mempool, block building and applying.

Theory of operation
-------------------
Everything a node does to its chain goes through one ChainService, called from the node's
trio tasks (one at a time: trio is single-threaded, and no method awaits):

* ``submit`` (RPC) and ``admit`` (gossip) check a transaction against committed state with the
  same rules block application uses, then pool it. Rejections raise the typed error and are
  counted by reason in metrics. A transaction whose nonce is ahead of its sender's account
  (queued behind pending ones) gets the stateless checks and its sender's role at the door,
  not the rest of its handler, which may depend on what those pending transactions do; its
  block gives the final verdict.
* ``build_block`` (the leader, or the dev chain) takes pooled transactions in nonce order and
  signs a block on top of the head. It builds nothing when the pool is empty.
* ``apply`` applies a committed block on a snapshot of committed state and commits the block,
  its receipts and its writes in one LMDB write transaction, then prunes the pool. A block that
  does not extend the head raises :class:`InvalidBlock` *before* anything is written; the Raft
  applier skips such a block, identically on every node (issue 4: a deposed leader's block).

The block time of a new block is the proposer's clock, forced to exceed the parent's: chain
logic only ever sees block time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pmkt.chain.apply import (
    BlockResult,
    Head,
    account_nonce,
    apply_block,
    genesis_batch,
    read_head,
    validate_tx_for_state,
    validate_tx_queued,
)
from p2pmkt.chain.block import Block, build_block, decode_block, verify_block_signature
from p2pmkt.chain.contract_api import ContractRuntime
from p2pmkt.chain.genesis import Genesis
from p2pmkt.chain.mempool import Mempool
from p2pmkt.chain.tx import DecodedTxCache, SignedTransaction
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.errors import ConfigError, InvalidBlock, P2pmktError
from p2pmkt.market.events import MarketingUpdated, ReportWritten, VisitsAppended
from p2pmkt.market.reports import any_report_due
from p2pmkt.node.logs import kv
from p2pmkt.node.metrics import NodeMetrics
from p2pmkt.storage.lmdb import LmdbStore
from p2pmkt.types import Address

log = logging.getLogger("p2pmkt.chain")

MEMPOOL_MAX_BYTES = 32 << 20
"""A node pools at most this many wire bytes, even if the chain's ``mempool_max_bytes`` allows
more (the default allows 256 MiB): pooled transactions are held decoded, ~5x their wire size
for visit packs, so 32 MiB is ~160 MB of memory and ~600k visits (seconds of the heaviest
load). A full pool answers ``busy``; clients retry after the next block."""

TX_CACHE_BYTES = 32 << 20
"""Memory for recently decoded transactions (bounded: issue 8's memory target); about 6 MiB
of their wire bytes, a few seconds of the heaviest visit load, from admission to their block."""

APPLIED_AT_KEPT = 20_000
"""How many of the latest heights a node remembers applying (wall clock; ~3 MB): an hour or
more of blocks, for ``chain.block``'s ``applied_at``."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What one applied block changed, for the node's listeners (RPC events, agents, views)."""

    result: BlockResult
    head: Head
    seconds: float


class ChainService:
    def __init__(
        self,
        store: LmdbStore,
        genesis: Genesis,
        *,
        runtime: ContractRuntime | None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.store = store
        self.genesis = genesis
        self.runtime = runtime
        self.metrics = metrics or NodeMetrics()
        self.mempool = Mempool(genesis.params, max_bytes=MEMPOOL_MAX_BYTES)
        self.tx_cache = DecodedTxCache(max_bytes=TX_CACHE_BYTES)
        """Transactions decoded from identical bytes before (RPC, gossip, then the block)."""
        self._arrival: dict[bytes, float] = {}  # txid → monotonic arrival, for commit latency
        self.applied_at: dict[int, int] = {}
        """height → when this node applied it (ms, wall clock), for the latest heights."""
        self._announced: dict[bytes, float] = {}  # txid → last re-announcement by gossip

    @classmethod
    def open(
        cls,
        data_dir: Path,
        genesis: Genesis,
        *,
        runtime: ContractRuntime | None,
        metrics: NodeMetrics | None = None,
        sync: bool = True,
        map_size: int | None = None,
        max_map_size: int | None = None,
    ) -> ChainService:
        """Open (or create at genesis) the chain store under ``data_dir``.

        Raises:
            ConfigError: the store holds another chain (different genesis hash).
            StorageError: LMDB could not be opened.
        """
        kwargs: dict[str, Any] = {"sync": sync}
        if map_size is not None:
            kwargs["map_size"] = map_size
        if max_map_size is not None:
            kwargs["max_map_size"] = max_map_size
        store = LmdbStore.open(data_dir / "chain", **kwargs)
        try:
            have = store.genesis_hash()
            if have is None:
                batch = genesis_batch(genesis)
                store.init_genesis(
                    batch,
                    genesis.hash,
                    state_root=read_head(batch).state_root,
                    time=genesis.genesis_time,
                )
            elif have != genesis.hash:
                raise ConfigError(
                    f"{data_dir} holds a chain with genesis {have.hex()[:16]}…, but the genesis "
                    f"file has {genesis.hash.hex()[:16]}…; use the right genesis or wipe the data dir"
                )
        except BaseException:
            store.close()
            raise
        return cls(store, genesis, runtime=runtime, metrics=metrics)

    def close(self) -> None:
        self.store.close()

    # --- reading ------------------------------------------------------------------------

    def head(self) -> Head:
        """The head as the state machine records it (height 0: genesis, zero hash)."""
        with self.store.snapshot() as snap:
            return read_head(snap)

    # --- transactions -------------------------------------------------------------------

    def submit(self, data: bytes, *, where: str = "rpc") -> SignedTransaction:
        """Decode, check and pool a transaction's wire bytes; returns it.

        Raises:
            DecodeError, InvalidTransaction, InvalidSignature, NonceError, PermissionDenied,
            UnknownKind, MempoolFull: the transaction is not taken (counted in metrics).
        """
        try:
            stx = self.tx_cache.decode(data, max_size=self.genesis.params.max_tx_bytes)
        except P2pmktError as exc:
            self.metrics.reject(exc.reason, where)
            raise
        self.admit(stx, where=where)
        return stx

    def admit(self, stx: SignedTransaction, *, where: str = "gossip") -> bool:
        """Check ``stx`` against committed state and pool it; False if already pooled."""
        if stx.txid in self.mempool:
            return False
        try:
            with self.store.snapshot() as snap:
                nonce = account_nonce(snap, stx.tx.sender)
                if stx.tx.nonce == nonce:
                    validate_tx_for_state(snap, stx, self.genesis, runtime=self.runtime)
                else:
                    # Queued behind the sender's pending transactions: its handler checks would
                    # see state those have not changed yet (a configure right after its
                    # deploy), so only the stateless ones and the sender's role run now; the
                    # block decides the rest.
                    validate_tx_queued(snap, stx, self.genesis)
            added = self.mempool.add(stx, account_nonce=nonce, now=time.monotonic())
        except P2pmktError as exc:
            self.metrics.reject(exc.reason, where)
            raise
        if added:
            self._arrival[stx.txid] = time.monotonic()
            self.metrics.mempool.set(len(self.mempool))
        return added

    def stale_pending(self, older_than: float, limit: int) -> list[SignedTransaction]:
        """Pooled transactions last announced more than ``older_than`` seconds ago.

        Gossip is best effort: a transaction whose bundle never reached the leader would wait
        here forever, and hold back every later nonce of its sender. The node re-announces
        these (receivers drop what they already hold); each is then due again only after
        another ``older_than``.
        """
        now = time.monotonic()
        due = sorted(
            (self._announced.get(txid, t), txid) for txid, t in self._arrival.items()
            if self._announced.get(txid, t) < now - older_than
        )
        out = []
        for _, txid in due[:limit]:
            stx = self.mempool.get(txid)
            if stx is None:
                self._announced.pop(txid, None)
                continue
            out.append(stx)
            self._announced[txid] = now
        return out

    def expire_parked(self, now: float | None = None) -> int:
        """Drop pooled transactions that have waited the pool's ``ttl`` behind a missing nonce
        (see :meth:`Mempool.expire`); counted as rejections (``expired``) and logged.
        Returns how many left the pool."""
        gone = self.mempool.expire(time.monotonic() if now is None else now)
        if gone:
            self.metrics.rejected.labels(reason="expired", where="mempool").inc(gone)
            self.metrics.mempool.set(len(self.mempool))
            log.warning(kv("mempool_expired", txs=gone, ttl_s=self.mempool.ttl,
                           why="parked behind a nonce that never arrived"))
        return gone

    def pending_nonce(self, address: bytes) -> int:
        """Next nonce for ``address`` counting pooled transactions (what a client should use)."""
        with self.store.snapshot() as snap:
            base = account_nonce(snap, address)
        return self.mempool.pending_nonce(Address(address), base)

    # --- blocks -------------------------------------------------------------------------

    def build_block(
        self, key: PrivateKey, now_ms: int, *, parent: Head | None = None
    ) -> Block | None:
        """Sign a block of pooled transactions on top of ``parent`` (default: the head).

        Returns None when the pool has nothing to include, unless an indicator's report is due
        by block time (``every_ms``, over visits that arrived): then the block is empty. A
        chain makes blocks only for transactions, so without it a time-triggered report
        waited for the next transaction, however late.
        """
        params = self.genesis.params
        txs = self.mempool.select(params.max_block_txs, params.max_block_bytes)
        base = parent or self.head()
        block_time = max(now_ms, base.time + 1)
        if not txs:
            with self.store.snapshot() as snap:
                if not any_report_due(snap, block_time):
                    return None
        return build_block(
            key,
            chain=self.genesis.chain_id,
            height=base.height + 1,
            parent=base.hash,
            state=base.state_root,
            time=block_time,
            txs=txs,
        )

    def apply(self, block: Block) -> Applied:
        """Apply and durably commit ``block``.

        Raises:
            InvalidBlock: it does not extend the head or fails its checks; nothing changed.
            StorageError, StorageFull: the commit failed; nothing changed.
        """
        started = time.perf_counter()
        verify_block_signature(block)
        with self.store.snapshot() as snap:
            result = apply_block(snap, block, genesis=self.genesis, runtime=self.runtime)
        self.store.commit_block(block, result.batch, result.receipts, result.state_root)
        head = read_head(result.batch)
        self._evict(block, result)
        self._note_applied(block.height)
        elapsed = time.perf_counter() - started
        self._observe(result, head, elapsed)
        return Applied(result=result, head=head, seconds=elapsed)

    def apply_bytes(self, data: bytes) -> Applied | None:
        """Decode and apply a committed Raft entry; a block malformed or invalid here is
        skipped (None). Every node skips the same blocks: validity depends only on the block
        and the chain."""
        try:
            block = decode_block(data, max_size=self.genesis.params.max_block_bytes,
                                 known=self.tx_cache.get)
        except P2pmktError as exc:
            self.metrics.reject(exc.reason, "block")
            log.warning(kv("block_skipped", reason=exc.reason, message=str(exc)))
            return None
        return self.apply_committed(block)

    def apply_committed(self, block: Block) -> Applied | None:
        """:meth:`apply` for a block Raft committed: one that is invalid here is skipped (None)."""
        try:
            return self.apply(block)
        except InvalidBlock as exc:
            self.metrics.reject(exc.reason, "block")
            log.info(kv("block_skipped", reason=exc.reason, message=str(exc)))
            return None

    def _note_applied(self, height: int) -> None:
        """Remember when this node applied ``height`` (wall clock, ms): node-local, never chain
        state; what ``chain.block``'s ``applied_at`` answers, for wall-time cycle figures."""
        self.applied_at[height] = int(time.time() * 1000)
        if len(self.applied_at) > APPLIED_AT_KEPT:
            del self.applied_at[next(iter(self.applied_at))]  # the oldest: heights only grow

    def _nonce_of(self, address: Address) -> int:
        return account_nonce(self.store, address)

    def _evict(self, block: Block, result: BlockResult) -> None:
        """Tell the pool what ``block`` committed: its transactions leave, and so do the
        pending ones of a sender it rejected one of at (or past) that sender's account nonce,
        whose later ones are then refused until it re-signs that nonce
        (:meth:`Mempool.drop_past`; counted as ``behind_rejected`` and logged)."""
        self.mempool.on_block(block.txs, self._nonce_of)
        broken: dict[Address, tuple[int, str]] = {}
        for stx, receipt in zip(block.txs, result.receipts):
            if receipt.status == "rejected" and stx.tx.sender not in broken:
                nonce = self._nonce_of(stx.tx.sender)
                if stx.tx.nonce >= nonce:
                    # The receipt's own message stays with tx.get: quoted here, its "visit K"
                    # would read as naming a visit of the refused transaction.
                    broken[stx.tx.sender] = (nonce, f"block {block.height} rejected ({receipt.reason}; "
                                                    f"tx.get {bytes(stx.txid).hex()} says why)")
        for address, (nonce, why) in broken.items():
            gone = self.mempool.drop_past(address, nonce, why)
            if gone:
                self.metrics.rejected.labels(reason="behind_rejected", where="mempool").inc(gone)
                log.warning(kv("mempool_dropped_behind_rejected", sender=address.hex(), txs=gone,
                               nonce=nonce, height=block.height,
                               why="a transaction of this sender was rejected in the block; "
                                   "re-sign from account.get nonce"))
        if broken:
            self.metrics.mempool.set(len(self.mempool))

    def _observe(self, result: BlockResult, head: Head, elapsed: float) -> None:
        m = self.metrics
        m.height.set(head.height)
        m.blocks.inc()
        m.apply_seconds.observe(elapsed)
        now = time.monotonic()
        for receipt in result.receipts:
            m.txs.labels(status=receipt.status).inc()
            if receipt.status != "ok":
                m.reject(receipt.reason or "rejected", "block")
            self._announced.pop(receipt.txid, None)
            arrived = self._arrival.pop(receipt.txid, None)
            if arrived is not None:
                m.commit_latency.observe(now - arrived)
        if len(self._arrival) > 4 * self.mempool.max_txs:
            self._arrival = {t: a for t, a in self._arrival.items() if t in self.mempool}
        m.mempool.set(len(self.mempool))
        for event in result.events:
            if isinstance(event, VisitsAppended):
                m.visits.inc(event.count)
            elif isinstance(event, ReportWritten):
                r = event.report
                m.reports.labels(ok=str(r.ok).lower()).inc()
                m.contract_fuel.inc(event.fuel_used)
                if not r.ok:
                    # The chain records it (market.reports); the merchant's engineers and the
                    # operators read logs: say which indicator failed, and why.
                    log.warning(kv("report_failed", report=r.id, height=r.height, error=r.error,
                                   code=r.code_hash.hex()[:16], fuel=event.fuel_used))
            elif isinstance(event, MarketingUpdated):
                m.updates.inc()


__all__ = ["Applied", "ChainService"]
