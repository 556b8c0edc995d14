"""The node's answers to the client wire protocol: :class:`ChainApi` implements ``NodeApi``.

Reads come from committed state (one LMDB snapshot per call) and the mempool; writes go
through :meth:`ChainService.submit`. :class:`EventHub` fans applied blocks out to
``events.subscribe`` streams: each subscriber has a bounded buffer, and one that falls behind
is dropped (its iterator ends; the client is told and may resubscribe) so a slow client can
never stall block application.

Paging: ``market.history`` items carry ``seq`` = the version; ``market.reports`` items carry
``seq`` = ``height << 16 | ordinal`` (reports of one block in evaluation order), so
``before=seq`` pages backwards without gaps or repeats.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from p2pmkt import __version__
from p2pmkt.chain.block import stored_block_hash
from p2pmkt.chain.roles import merchant_known
from p2pmkt.chain.tx import SignedTransaction
from p2pmkt.crypto.keys import parse_address
from p2pmkt.errors import Busy
from p2pmkt.market.events import MarketingUpdated, ReportWritten, VisitsAppended
from p2pmkt.market.model import MarketingInfo, parse_report_id
from p2pmkt.market.store import (
    get_marketing,
    get_report,
    marketing_newest_first,
    reports_newest_first,
)
from p2pmkt.node.chain import Applied, ChainService
from p2pmkt.rpc.server import BlockRecord, Head, NodeEvent, NodeInfo, TxStatus

MAX_SUBSCRIBERS = 256
SUBSCRIBER_BUFFER = 1024


def block_event(applied: Applied) -> NodeEvent:
    r = applied.result
    return NodeEvent("block", {
        "height": applied.head.height,
        "hash": r.block.hash,
        "time": r.block.header.time,
        "txs": len(r.receipts),
        "rejected": sum(1 for x in r.receipts if x.status != "ok"),
        "visits": sum(e.count for e in r.events if isinstance(e, VisitsAppended)),
        "state_root": r.state_root,
    })


def events_of(applied: Applied) -> list[NodeEvent]:
    """The RPC events one applied block produces, in order: block, then reports and updates."""
    out = [block_event(applied)]
    for e in applied.result.events:
        if isinstance(e, ReportWritten):
            out.append(NodeEvent("report", e.report.to_wire(), e.report.merchant))
        elif isinstance(e, MarketingUpdated):
            out.append(NodeEvent("market", e.info.to_wire(), e.info.merchant))
    return out


class EventHub:
    """Bounded fan-out of node events to subscribers (never blocks the publisher)."""

    def __init__(self, *, max_subscribers: int = MAX_SUBSCRIBERS, buffer: int = SUBSCRIBER_BUFFER) -> None:
        self._subs: dict[int, tuple[trio.MemorySendChannel[NodeEvent], frozenset[str], str | None]] = {}
        self._next = 0
        self.max_subscribers = max_subscribers
        self.buffer = buffer

    def publish(self, events: list[NodeEvent]) -> None:
        for sid, (send, kinds, merchant) in list(self._subs.items()):
            for ev in events:
                if ev.kind not in kinds or (merchant is not None and ev.merchant not in (None, merchant)):
                    continue
                try:
                    send.send_nowait(ev)
                except trio.WouldBlock:
                    send.close()  # fell behind: end its feed rather than stall the node
                    del self._subs[sid]
                    break
                except trio.ClosedResourceError:
                    del self._subs[sid]
                    break

    @asynccontextmanager
    async def subscribe(self, kinds: frozenset[str], merchant: str | None) -> AsyncIterator[AsyncIterator[NodeEvent]]:
        if len(self._subs) >= self.max_subscribers:
            raise Busy(f"this node already serves {self.max_subscribers} event feeds; retry later")
        send, recv = trio.open_memory_channel[NodeEvent](self.buffer)
        sid = self._next
        self._next += 1
        self._subs[sid] = (send, kinds, merchant)
        try:
            async with recv:
                yield _drain(recv)
        finally:
            self._subs.pop(sid, None)
            send.close()


async def _drain(recv: trio.MemoryReceiveChannel[NodeEvent]) -> AsyncIterator[NodeEvent]:
    async for ev in recv:
        yield ev


class ChainApi:
    """``NodeApi`` over a ChainService (see :class:`p2pmkt.rpc.server.NodeApi`)."""

    def __init__(
        self,
        chain: ChainService,
        hub: EventHub,
        *,
        peer_id: str,
        address: str | None,
        network: Callable[[], tuple[str | None, tuple[str, ...]]] = lambda: (None, ()),
        on_submit: Callable[[SignedTransaction], Any] | None = None,
    ) -> None:
        self.chain = chain
        self.hub = hub
        self.peer_id = peer_id
        self.address = address
        self._address_bytes = None if address is None else bytes(parse_address(address))
        self.network = network
        self.on_submit = on_submit

    async def node_info(self) -> NodeInfo:
        leader, peers = self.network()
        return NodeInfo(
            chain=self.chain.genesis.chain_id, peer_id=self.peer_id, address=self.address,
            version=__version__, roles=self.roles(), height=self.chain.head().height,
            leader=leader, peers=peers, mempool=len(self.chain.mempool),
        )

    def roles(self) -> tuple[str, ...]:
        """The node key's roles in committed state: membership changes by transaction, so a
        node added or granted a role after genesis has it here from that block on."""
        from p2pmkt.chain.roles import member_of

        if self._address_bytes is None:
            return ()
        with self.chain.store.snapshot() as snap:
            member = member_of(snap, self._address_bytes)
        return member.roles if member is not None else ()

    async def head(self) -> Head:
        h = self.chain.head()
        return Head(h.height, h.hash, h.time)

    async def block(self, *, height: int | None = None, hash: bytes | None = None) -> BlockRecord | None:
        store = self.chain.store
        if hash is not None:
            b = store.block_by_hash(hash)
            if b is None:
                return None
            height = b.height
        if height is None:
            return None
        raw = store.block_bytes_at(height)
        if raw is None:
            return None
        # The hash from the header alone: decoding every transaction of a stored block to
        # answer with its bytes cost followers ~5 % of their CPU under a block-following client.
        return BlockRecord(height, stored_block_hash(raw), raw, self.chain.applied_at.get(height))

    async def submit_tx(self, data: bytes, *, relay: bool = True) -> bytes:
        stx = self.chain.submit(data)
        if relay and self.on_submit is not None:
            self.on_submit(stx)
        return stx.txid

    async def account(self, address: bytes) -> dict[str, Any]:
        """Next nonce (committed, and counting pooled transactions), roles and validator status
        of an account."""
        from p2pmkt.chain.apply import account_nonce
        from p2pmkt.chain.roles import member_of, validator_set

        with self.chain.store.snapshot() as snap:
            committed = account_nonce(snap, address)
            member = member_of(snap, address)
            status = validator_set(snap).status(address)  # type: ignore[arg-type]
        return {
            "address": address,
            "nonce": committed,
            "pending_nonce": self.chain.mempool.pending_nonce(address, committed),  # type: ignore[arg-type]
            "member": member is not None,
            "roles": list(member.roles) if member is not None else [],
            "validator": status,
        }

    async def market_indicator(self, merchant: str, name: str) -> dict[str, Any] | None:
        from p2pmkt.market.store import get_indicator

        with self.chain.store.snapshot() as snap:
            ind = get_indicator(snap, merchant, name)
        return None if ind is None or not ind.active else ind.spec.to_wire()

    async def chain_params(self) -> dict[str, int]:
        return self.chain.genesis.params.to_json()

    async def market_indicators(self, merchant: str) -> list[dict[str, Any]] | None:
        from p2pmkt.market.store import active_indicators

        with self.chain.store.snapshot() as snap:
            if not merchant_known(snap, merchant):
                return None
            return [spec.to_wire() for spec in active_indicators(snap, merchant)]

    async def tx_status(self, txid: bytes) -> TxStatus | None:
        rec = self.chain.store.tx_status(txid)
        if rec is not None:
            if rec.status == "ok":
                return TxStatus(txid, "committed", rec.height)
            return TxStatus(txid, "rejected", rec.height, rec.reason, rec.message)
        if txid in self.chain.mempool:
            return TxStatus(txid, "pending")
        return None

    async def market_info(self, merchant: str) -> dict[str, Any] | None:
        with self.chain.store.snapshot() as snap:
            info = get_marketing(snap, merchant)
            return None if info is None else _info_answer(snap, info)

    async def market_history(
        self, merchant: str, *, limit: int, before: int | None
    ) -> list[dict[str, Any]] | None:
        with self.chain.store.snapshot() as snap:
            if not merchant_known(snap, merchant):
                return None
            return [{"seq": info.version, **_info_answer(snap, info)}
                    for info in marketing_newest_first(snap, merchant, limit=limit, before=before)]

    async def market_reports(
        self, merchant: str, *, limit: int, before: int | None
    ) -> list[dict[str, Any]] | None:
        with self.chain.store.snapshot() as snap:
            if not merchant_known(snap, merchant):
                return None
            page = reports_newest_first(snap, merchant, limit=limit, before=before)
        return [{"seq": seq, **r.to_wire()} for seq, r in page]

    def subscribe_events(self, kinds: frozenset[str], merchant: str | None) -> Any:
        return self.hub.subscribe(kinds, merchant)


def _info_answer(snap: Any, info: MarketingInfo) -> dict[str, Any]:
    """A marketing version as ``market.info``/``market.history`` answer it: the stored map
    plus ``cause_height``, the height of the block holding the cause report (null for a
    manual update). Conditions are evaluated at the end of every block, so that block also
    holds the visit that made the report due: the start of the update cycle."""
    cause_height = None
    if info.cause:
        report = get_report(snap, *parse_report_id(info.cause))
        cause_height = None if report is None else report.height
    return {**info.to_wire(), "cause_height": cause_height}
