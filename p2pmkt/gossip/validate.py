"""Gossip message validation: bytes in, a verdict out.

Theory of operation
-------------------
GossipSub forwards a message only after every local topic validator accepts it, so these
checks decide what spreads through the mesh. They are pure: the trio glue in
:mod:`p2pmkt.net.pubsub` calls them with ``now=trio.current_time()`` and turns the verdict into
py-libp2p's boolean (py-libp2p 0.8.1 has no separate "ignore"; both IGNORE and REJECT mean
"do not deliver, do not forward").

Verdicts follow libp2p's three-way vocabulary:

* ``ACCEPT``       deliver to the node and forward;
* ``IGNORE``       harmless but useless (a duplicate, or a message this node cannot judge):
                   drop silently, no blame;
* ``Reject(r)``    the sender broke the rules (malformed, wrong chain, bad signature,
                   oversized): drop, and the glue counts ``r`` against the forwarder.

Checks are stateless apart from a :class:`~p2pmkt.gossip.seen.SeenCache` of ids: decode, size,
chain id and signatures. Whether a transaction fits the sender's role, nonce and the mempool
is state-dependent and is the node's decision after delivery.

This module must not know about py-libp2p, peers or clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from p2pmkt.chain.block import (
    MAX_SIGNED_HEADER_BYTES,
    SignedHeader,
    decode_signed_header,
    verify_block_signature,
)
from p2pmkt.chain.tx import MAX_TX_BYTES, SignedTransaction, decode_tx, verify_tx
from p2pmkt.errors import RemoteError
from p2pmkt.gossip.bundle import DEFAULT_MAX_BUNDLE_BYTES, DEFAULT_MAX_BUNDLE_TXS, decode_bundle
from p2pmkt.gossip.seen import SeenCache


@dataclass(frozen=True, slots=True)
class Accept:
    """Deliver and forward."""


@dataclass(frozen=True, slots=True)
class Ignore:
    """Drop without blame (duplicate or not judgeable here)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    """Drop and blame the forwarder; ``reason`` is a stable slug for metrics and logs."""

    reason: str
    message: str = ""


Verdict = Accept | Ignore | Reject
ACCEPT = Accept()
DUPLICATE = Ignore("duplicate")


@dataclass(frozen=True, slots=True)
class BundleCheck:
    """Outcome of :meth:`TxBundleValidator.check`; ``txs`` are the not-yet-seen ones."""

    verdict: Verdict
    txs: tuple[SignedTransaction, ...] = ()


@dataclass(frozen=True, slots=True)
class HeadCheck:
    """Outcome of :meth:`HeadValidator.check`; ``head`` is set only on ACCEPT."""

    verdict: Verdict
    head: SignedHeader | None = None


class TxBundleValidator:
    """Validates transaction bundles for one chain.

    A bundle is rejected whole if any transaction in it is malformed, for another chain, or
    badly signed: honest nodes only bundle transactions they checked. A bundle whose every
    transaction was seen within the cache's ttl is ignored (not forwarded again).
    """

    def __init__(
        self,
        chain_id: str,
        *,
        max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
        max_bundle_txs: int = DEFAULT_MAX_BUNDLE_TXS,
        max_tx_bytes: int = MAX_TX_BYTES,
        seen: SeenCache | None = None,
        decode: Callable[..., SignedTransaction] = decode_tx,
    ) -> None:
        """``decode(data, max_size=...)`` decodes one transaction like
        :func:`~p2pmkt.chain.tx.decode_tx` (a node passes its
        :class:`~p2pmkt.chain.tx.DecodedTxCache`'s ``decode``, so a transaction that arrives
        again, or later inside a block, is decoded once)."""
        self.chain_id = chain_id
        self.decode = decode
        self.max_bundle_bytes = max_bundle_bytes
        self.max_bundle_txs = max_bundle_txs
        self.max_tx_bytes = max_tx_bytes
        self.seen = seen if seen is not None else SeenCache()

    def check(self, data: bytes, now: float) -> BundleCheck:
        """Judge one gossip message; remember the txids of an accepted bundle."""
        if len(data) > self.max_bundle_bytes:
            return BundleCheck(Reject("oversized", f"bundle of {len(data)} bytes"))
        try:
            raw = decode_bundle(
                data, max_bytes=self.max_bundle_bytes, max_txs=self.max_bundle_txs
            )
            txs = [self.decode(t, max_size=self.max_tx_bytes) for t in raw]
        except RemoteError as exc:
            return BundleCheck(Reject(exc.reason, exc.message))
        fresh = [t for t in txs if not self.seen.seen(t.txid, now)]
        if not fresh:
            return BundleCheck(DUPLICATE)
        for stx in fresh:
            try:
                verify_tx(stx, self.chain_id)
            except RemoteError as exc:
                return BundleCheck(Reject(exc.reason, exc.message))
        for stx in fresh:
            self.seen.add(stx.txid, now)
        return BundleCheck(ACCEPT, tuple(fresh))


class HeadValidator:
    """Validates announced blocks (signed headers, :class:`~p2pmkt.chain.block.SignedHeader`)
    for one chain.

    ``proposers`` (optional) returns the addresses allowed to propose; when given, a header
    signed by anyone else is rejected. Announcements are deduplicated by block hash.
    """

    def __init__(
        self,
        chain_id: str,
        *,
        proposers: Callable[[], Collection[bytes]] | None = None,
        seen: SeenCache | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.proposers = proposers
        self.seen = seen if seen is not None else SeenCache(ttl=600.0, max_entries=10_000)

    def check(self, data: bytes, now: float) -> HeadCheck:
        """Judge one gossip message; remember the hash of an accepted block."""
        if len(data) > MAX_SIGNED_HEADER_BYTES:
            return HeadCheck(Reject("oversized", f"signed header of {len(data)} bytes"))
        try:
            head = decode_signed_header(data)
        except RemoteError as exc:
            return HeadCheck(Reject(exc.reason, exc.message))
        if self.seen.seen(head.hash, now):
            return HeadCheck(DUPLICATE)
        if head.header.chain != self.chain_id:
            return HeadCheck(Reject("wrong_chain", f"block for chain {head.header.chain!r}"))
        try:
            proposer = verify_block_signature(head)
        except RemoteError as exc:
            return HeadCheck(Reject(exc.reason, exc.message))
        if self.proposers is not None and proposer not in self.proposers():
            return HeadCheck(Reject("not_validator", f"proposer 0x{proposer.hex()}"))
        self.seen.add(head.hash, now)
        return HeadCheck(ACCEPT, head)
