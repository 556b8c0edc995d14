"""GossipSub wiring: tuned py-libp2p GossipSub plus our pure validators.

Theory of operation
-------------------
Two topics per chain (:mod:`p2pmkt.gossip.topics`): transaction bundles, and committed blocks
announced by their signed headers (the transactions travel by Raft and block sync).
Settings follow notes/py-libp2p.md §2: heartbeat 1 s (default 120 s), spam limit off (the
default silently drops over 10 msg/s per forwarder), adaptive gossip off, eclipse protection
off (all loopback peers share one IP), StrictSign, and ``/meshsub/1.1.0`` first (about twice
the throughput of 1.2 here, which adds IDONTWANT traffic for every message).

Each topic gets a synchronous py-libp2p validator that

1. drops messages whose origin or forwarder is not a chain member (when an allowlist is set),
2. calls the pure validator (:class:`~p2pmkt.gossip.validate.TxBundleValidator` /
   :class:`~p2pmkt.gossip.validate.HeadValidator`) with ``now=trio.current_time()``,
3. keeps the decoded result for the delivery step, so nothing is decoded or verified twice.

py-libp2p runs validators on our own publishes too; those are accepted without checks (we
only publish what we validated). Our own messages are not delivered back to us.

Publishing applies backpressure: py-libp2p drops RPCs silently once a peer's outbound queue
holds 32, so :meth:`Gossip.publish_txs` waits until every queue is below
``GossipConfig.queue_high_water`` first.

Delivery: :attr:`Gossip.tx_bundles` and :attr:`Gossip.heads` are bounded trio channels that
the node reads. If the node falls behind, deliveries are dropped and counted (gossip is
best-effort; Raft and block sync are the reliable paths).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID as MESHSUB_10
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11 as MESHSUB_11
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub

from p2pmkt.chain.block import SignedHeader, decode_signed_header
from p2pmkt.chain.tx import MAX_TX_BYTES, DecodedTxCache, SignedTransaction, decode_tx
from p2pmkt.errors import RemoteError
from p2pmkt.gossip.bundle import decode_bundle, encode_bundle
from p2pmkt.gossip.topics import head_topic, tx_topic
from p2pmkt.gossip.validate import (
    Accept,
    HeadValidator,
    Reject,
    TxBundleValidator,
)
from p2pmkt.net._trio import TaskStatus
from p2pmkt.net.members import Members

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """GossipSub knobs. Defaults suit a few to a few dozen nodes on one LAN or host."""

    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    heartbeat_interval: int = 1
    max_bundle_bytes: int = 1024 * 1024
    max_bundle_txs: int = 1000
    max_tx_bytes: int = MAX_TX_BYTES
    queue_high_water: int = 24
    delivery_buffer: int = 1024
    do_px: bool = True


@dataclass(frozen=True, slots=True)
class TxBundle:
    """Transactions delivered by gossip; ``origin`` is the publishing peer's id."""

    origin: str
    txs: tuple[SignedTransaction, ...]


@dataclass(frozen=True, slots=True)
class GossipStatistics:
    published: int
    delivered_bundles: int
    delivered_heads: int
    rejected: dict[str, int]
    dropped_slow_consumer: int


def make_pubsub(host: Any, config: GossipConfig) -> tuple[Any, Any]:
    """Build (Pubsub, GossipSub) for ``host``; start both services before ``host.run()``."""
    router = GossipSub(
        protocols=[MESHSUB_11, MESHSUB_10],
        degree=config.degree,
        degree_low=config.degree_low,
        degree_high=config.degree_high,
        heartbeat_initial_delay=0.1,
        heartbeat_interval=config.heartbeat_interval,
        spam_protection_enabled=False,
        adaptive_gossip_enabled=False,
        eclipse_protection_enabled=False,
        do_px=config.do_px,
    )
    pubsub = Pubsub(
        host,
        router,
        strict_signing=True,
        max_inbound_rpc_size=config.max_bundle_bytes + 64 * 1024,
    )
    return pubsub, router


class Gossip:
    """Our two topics on one py-libp2p Pubsub. Created by :func:`p2pmkt.net.open_net`.

    ``tx_cache`` (optional) is the node's :class:`~p2pmkt.chain.tx.DecodedTxCache`, shared
    with RPC and Raft: bundles decode their transactions through it, so a transaction is
    decoded once per node. Without it, bundles decode afresh.
    """

    def __init__(
        self,
        pubsub: Any,
        chain_id: str,
        config: GossipConfig,
        members: Members | None,
        *,
        tx_cache: DecodedTxCache | None = None,
        on_reject: Callable[[str], None] | None = None,
        proposers: Callable[[], Collection[bytes]] | None = None,
    ) -> None:
        self._ps = pubsub
        self._on_reject = on_reject
        self.config = config
        self.members = members
        self.tx_topic = tx_topic(chain_id)
        self.head_topic = head_topic(chain_id)
        self.tx_validator = TxBundleValidator(
            chain_id,
            max_bundle_bytes=config.max_bundle_bytes,
            max_bundle_txs=config.max_bundle_txs,
            max_tx_bytes=config.max_tx_bytes,
            decode=decode_tx if tx_cache is None else tx_cache.decode,
        )
        self.head_validator = HeadValidator(chain_id, proposers=proposers)
        self._self_id: ID = pubsub.host.get_id()
        self._decoded: OrderedDict[bytes, Any] = OrderedDict()
        self._tx_send, self.tx_bundles = trio.open_memory_channel[TxBundle](config.delivery_buffer)
        self._head_send, self.heads = trio.open_memory_channel[SignedHeader](config.delivery_buffer)
        self._published = 0
        self._delivered_bundles = 0
        self._delivered_heads = 0
        self._dropped = 0
        self.rejected: dict[str, int] = {}
        pubsub.set_topic_validator(self.tx_topic, self._validate_txs, False)
        pubsub.set_topic_validator(self.head_topic, self._validate_head, False)

    def tx_topic_peers(self) -> frozenset[str]:
        """Peers (ids) whose subscription to the transaction topic has reached us. A message
        published before a peer's subscription arrives is not sent to it (py-libp2p has no
        one to send it to); wait for the peer here first where that matters."""
        return frozenset(p.to_base58() for p in self._ps.peer_topics.get(self.tx_topic, ()))

    def statistics(self) -> GossipStatistics:
        return GossipStatistics(
            self._published, self._delivered_bundles, self._delivered_heads,
            dict(self.rejected), self._dropped,
        )

    # ---------------------------------------------------------------- validation

    def _key(self, msg: Any) -> bytes:
        return bytes(msg.from_id) + bytes(msg.seqno)

    def _remember(self, msg: Any, value: Any) -> None:
        self._decoded[self._key(msg)] = value
        while len(self._decoded) > 4 * self.config.delivery_buffer:
            self._decoded.popitem(last=False)

    def _allowed(self, forwarder: ID, msg: Any) -> bool:
        if self.members is None:
            return True
        try:
            origin = ID(msg.from_id).to_base58()
        except Exception:
            return False
        return self.members.is_member(forwarder.to_base58()) and self.members.is_member(origin)

    def _count_reject(self, reason: str) -> bool:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if self._on_reject is not None:
            self._on_reject(reason)
        return False

    def _validate_txs(self, forwarder: ID, msg: Any) -> bool:
        try:
            if forwarder == self._self_id:
                return True
            if not self._allowed(forwarder, msg):
                return self._count_reject("not_member")
            check = self.tx_validator.check(bytes(msg.data), trio.current_time())
            if isinstance(check.verdict, Accept):
                self._remember(msg, check.txs)
                return True
            if isinstance(check.verdict, Reject):
                log.debug("rejected tx bundle from %s: %s", forwarder, check.verdict)
                self._count_reject(check.verdict.reason)
            return False
        except Exception:
            log.exception("tx bundle validator failed")
            return False

    def _validate_head(self, forwarder: ID, msg: Any) -> bool:
        try:
            if forwarder == self._self_id:
                return True
            if not self._allowed(forwarder, msg):
                return self._count_reject("not_member")
            check = self.head_validator.check(bytes(msg.data), trio.current_time())
            if isinstance(check.verdict, Accept):
                self._remember(msg, check.head)
                return True
            if isinstance(check.verdict, Reject):
                self._count_reject(check.verdict.reason)
            return False
        except Exception:
            log.exception("head validator failed")
            return False

    # ---------------------------------------------------------------- publishing

    async def _backpressure(self) -> None:
        queues = self._ps.peer_queues
        # py-libp2p offers no "queue drained" event, so poll (notes/py-libp2p.md §2).
        while max((len(q) for q in queues.values()), default=0) > self.config.queue_high_water:  # noqa: ASYNC110
            await trio.sleep(0.001)

    async def publish_txs(self, txs: Sequence[bytes]) -> int:
        """Gossip signed transactions (wire bytes), split into bundles within the limits.

        Returns the number of bundles published. Waits while peers' queues are full.
        """
        count = 0
        bundle: list[bytes] = []
        size = 0
        limit = self.config.max_bundle_bytes - 16
        for tx in txs:
            if bundle and (size + len(tx) + 8 > limit or len(bundle) >= self.config.max_bundle_txs):
                await self._publish(self.tx_topic, encode_bundle(bundle))
                count += 1
                bundle, size = [], 0
            bundle.append(tx)
            size += len(tx) + 8
        if bundle:
            await self._publish(self.tx_topic, encode_bundle(bundle))
            count += 1
        return count

    async def publish_head(self, head: bytes) -> None:
        """Announce a committed block: its :class:`~p2pmkt.chain.block.SignedHeader` bytes."""
        await self._publish(self.head_topic, head)

    async def _publish(self, topic: str, data: bytes) -> None:
        await self._backpressure()
        await self._ps.publish(topic, data)
        self._published += 1

    # ---------------------------------------------------------------- delivery

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe to both topics and deliver until cancelled."""
        tx_sub = await self._ps.subscribe(self.tx_topic)
        head_sub = await self._ps.subscribe(self.head_topic)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, tx_sub, True)
            nursery.start_soon(self._pump, head_sub, False)
            task_status.started()

    async def _pump(self, sub: Any, is_tx: bool) -> None:
        while True:
            msg = await sub.get()
            if ID(msg.from_id) == self._self_id:
                continue
            value = self._decoded.pop(self._key(msg), None)
            if value is None:  # validated long ago and evicted: validate again
                value = self._recheck(msg, is_tx)
                if value is None:
                    continue
            try:
                if is_tx:
                    self._tx_send.send_nowait(TxBundle(ID(msg.from_id).to_base58(), value))
                    self._delivered_bundles += 1
                else:
                    self._head_send.send_nowait(value)
                    self._delivered_heads += 1
            except trio.WouldBlock:
                self._dropped += 1

    def _recheck(self, msg: Any, is_tx: bool) -> Any:
        # Decode as the validator did (same decoder, look-up and limits): the message passed
        # it already, only its decoded form was evicted.
        data = bytes(msg.data)
        try:
            if is_tx:
                tv = self.tx_validator
                raw = decode_bundle(data, max_bytes=tv.max_bundle_bytes, max_txs=tv.max_bundle_txs)
                return tuple(tv.decode(t, max_size=tv.max_tx_bytes) for t in raw)
            return decode_signed_header(data)
        except RemoteError:
            return None
