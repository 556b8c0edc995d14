"""The p2pmkt client library: talk to a node over ``/p2pmkt/rpc/1.0.0``.

Theory of operation
-------------------
:func:`open_client` starts a small libp2p host of its own (no listener, no gossip, an
ephemeral identity unless a key is given — a client need not be a chain member; Noise still
authenticates both ends and the node's peer id is checked against the ``/p2p/`` part of the
address), dials the node, opens one RPC stream and yields a :class:`Client`. Every method is
one request on that stream; methods may be called from several tasks at once and then
pipeline. Leaving the context closes the stream and the host.

Errors: a node's error answer raises :class:`~p2pmkt.rpc.protocol.RpcError` (``.code`` is an
:class:`~p2pmkt.rpc.protocol.ErrorCode`); a lost connection raises
:class:`~p2pmkt.net.errors.StreamClosed`; a failed dial raises
:class:`~p2pmkt.net.errors.DialFailed`. "Not found" is returned as ``None`` where the method
says so.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from p2pmkt.chain.block import Block, decode_block
from p2pmkt.chain.tx import SignedTransaction
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.crypto.peerid import peer_id_of
from p2pmkt.errors import group_leaves
from p2pmkt.market.model import Visit
from p2pmkt.net.errors import StreamClosed
from p2pmkt.net.host import Net, NetConfig, open_net
from p2pmkt.net.rpc_stream import RpcStreamClient, open_rpc_stream
from p2pmkt.rpc.methods import EVENT_KINDS, MAX_BATCH_TXS
from p2pmkt.rpc.protocol import ErrorCode, Event, RpcError
from p2pmkt.rpc.server import Head, NodeInfo, TxStatus

if TYPE_CHECKING:
    from p2pmkt.client.sync import SyncClient

CLIENT_NET_CONFIG = NetConfig(listen=(), gossip=None, discovery=False, dial_timeout=5.0)


_T = TypeVar("_T")


async def while_busy(call: Callable[[], Awaitable[_T]]) -> _T:
    """``await call()``, again while the node answers ``BUSY`` or ``RATE_LIMITED`` (its
    back-pressure: the pool drains at the next block, the rate limit refills), backing off
    from 20 ms to 0.5 s. Any other error is raised; the caller bounds the wait."""
    delay = 0.02
    while True:
        try:
            return await call()
        except RpcError as exc:
            if exc.code not in (ErrorCode.BUSY, ErrorCode.RATE_LIMITED):
                raise
        await trio.sleep(delay)  # back-pressure, see the docstring
        delay = min(delay * 2, 0.5)


class Client:
    """A connection to one node. Create with :func:`open_client`."""

    def __init__(self, net: Net, rpc: RpcStreamClient) -> None:
        self._net = net
        self._rpc = rpc
        self._chain: str | None = None
        self._nonces: dict[bytes, int] = {}  # submit_visits: next nonce per signing key

    @staticmethod
    def sync(addr: str, key: PrivateKey | None = None, *, connect_timeout: float = 10.0) -> SyncClient:
        """Blocking client in a worker thread (same as :func:`p2pmkt.client.connect`)."""
        from p2pmkt.client.sync import connect

        return connect(addr, key, connect_timeout=connect_timeout)

    @property
    def node_peer_id(self) -> str:
        return self._rpc.peer_id

    @property
    def peer_id(self) -> str:
        """This client's own peer id."""
        return self._net.peer_id

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send any request; return its result (see docs/PROTOCOL.md)."""
        return await self._rpc.call(method, params)

    async def info(self) -> NodeInfo:
        return NodeInfo.from_wire(await self.call("node.info"))

    async def head(self) -> Head:
        return Head.from_wire(await self.call("chain.head"))

    async def block(self, height: int | None = None, *, hash: bytes | None = None) -> Block | None:
        """The committed block at ``height`` or with ``hash`` (give one); None if absent."""
        params: dict[str, Any] = {"height": height} if hash is None else {"hash": hash}
        try:
            result = await self.call("chain.block", params)
        except RpcError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise
        return decode_block(result["block"])

    async def submit_tx(self, stx: SignedTransaction | bytes) -> bytes:
        """Submit a signed transaction (object or wire bytes); return its txid.

        Raises:
            RpcError: INVALID_TX, BAD_SIGNATURE, BAD_NONCE, PERMISSION_DENIED or BUSY.
        """
        data = stx.encode() if isinstance(stx, SignedTransaction) else bytes(stx)
        result = await self.call("tx.submit", {"tx": data})
        txid: bytes = result["txid"]
        return txid

    async def submit_txs(
        self, txs: Sequence[SignedTransaction | bytes], *, relay: bool = True
    ) -> list[bytes | RpcError]:
        """Submit many signed transactions in one round trip (``tx.submit_batch``).

        Returns, in order, each transaction's txid or the :class:`RpcError` it was refused
        with (the same error :meth:`submit_tx` raises). Sends chunks of at most
        ``MAX_BATCH_TXS``.
        """
        out: list[bytes | RpcError] = []
        datas = [t.encode() if isinstance(t, SignedTransaction) else bytes(t) for t in txs]
        for i in range(0, len(datas), MAX_BATCH_TXS):
            result = await self.call("tx.submit_batch",
                                     {"txs": datas[i:i + MAX_BATCH_TXS], "relay": relay})
            for r in result["results"]:
                if "txid" in r:
                    out.append(bytes(r["txid"]))
                else:
                    out.append(RpcError(int(r["code"]), str(r["message"]), {"reason": r["reason"]}))
        return out

    async def submit_visits(
        self, key: PrivateKey, visits: Iterable[Visit | Sequence[Any]], *, per_tx: int = 2000,
        patience: float = math.inf,
    ) -> list[bytes]:
        """Sign ``visits`` into ``visit.pack`` transactions of at most ``per_tx`` visits each
        and submit them in order; return their txids (the terminal role's ingestion, what
        ``p2pmkt visits ingest`` does with each batch it closes).

        ``key`` must hold the ``terminal`` role. Nonces come from the node once
        (``account.get`` → ``pending_nonce``) and are then counted here, so calls may follow
        one another; this client should be the key's only submitter. Back-pressure (``BUSY``:
        the mempool or this key's share of it is full; ``RATE_LIMITED``) is waited out,
        resending the same transaction, for up to ``patience`` seconds: nothing is dropped. A
        nonce the node refuses (another submitter used the key) is asked for again once.

        A refusal's message counts visits from 0 *within the refused transaction* (``visit.pack:
        visit 2: merchant 'x' is not on this chain``); to map it back to your input, call this
        once per batch of at most ``per_tx`` visits, as ``p2pmkt visits ingest`` does
        (:func:`p2pmkt.ingest.refused_line`). Taken is not committed: a transaction queued
        behind this key's pending ones is checked in full only in its block, where it can
        still be rejected (``tx``/``wait_tx_committed`` say so). A rejected one does not use its
        nonce and the nodes then drop this key's later pending ones and refuse its next ones
        (``BAD_NONCE``, reason ``behind_rejected``, raised here): re-send everything from the
        rejected one on, from a new client (this one keeps counting past them).

        Raises:
            ValueError: a visit that ``pack_visits`` refuses (not 8 fields, unknown method/op).
            RpcError: any other refusal; the transactions before it stay submitted.
            trio.TooSlowError: still busy after ``patience`` seconds.
        """
        from p2pmkt.chain.tx import make_tx
        from p2pmkt.market.packed import pack_visits

        if self._chain is None:
            self._chain = (await self.info()).chain
        rows = list(visits)
        txids = []
        for i in range(0, len(rows), per_tx):
            payload = pack_visits(rows[i:i + per_tx])
            for attempt in (1, 2):
                nonce = await self._next_nonce(key)
                stx = make_tx(key, self._chain, nonce, "visit.pack", payload)
                try:
                    txids.append(await self._submit_patiently(stx, patience))
                except RpcError as exc:
                    self._nonces.pop(key.address, None)  # ask the node again next time
                    # A nonce another submitter used is asked for again; one behind a
                    # rejected transaction is not: re-signing that gap with this batch would
                    # skip the batches between (the caller must re-send from the rejected one).
                    if (exc.code == ErrorCode.BAD_NONCE and attempt == 1
                            and exc.error_reason != "behind_rejected"):
                        continue
                    raise
                self._nonces[key.address] = nonce + 1
                break
        return txids

    async def _next_nonce(self, key: PrivateKey) -> int:
        nonce = self._nonces.get(key.address)
        if nonce is None:
            acct = await self.call("account.get", {"address": bytes(key.address)})
            nonce = self._nonces[key.address] = int(acct["pending_nonce"])
        return nonce

    async def _submit_patiently(self, stx: SignedTransaction, patience: float) -> bytes:
        with trio.fail_after(patience):
            return await while_busy(lambda: self.submit_tx(stx))

    async def tx(self, txid: bytes) -> TxStatus | None:
        """Status of a transaction; None if the node does not know it."""
        try:
            return TxStatus.from_wire(await self.call("tx.get", {"txid": txid}))
        except RpcError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise

    async def wait_tx_committed(self, txid: bytes, timeout: float = 30.0) -> TxStatus:  # noqa: ASYNC109
        """Wait until the transaction is in a block; return its final status.

        The status is ``committed`` or ``rejected`` (rejected *inside* a block: the block
        recorded why). Checks after every new block, so it costs one request per block.

        Raises:
            trio.TooSlowError: not in a block within ``timeout`` seconds.
        """
        with trio.fail_after(timeout):
            async with self.subscribe(["block"]) as events:
                while True:
                    status = await self.tx(txid)
                    if status is not None and status.status != "pending":
                        return status
                    await events.receive()

    async def market_info(self, merchant: str) -> dict[str, Any] | None:
        """A merchant's current marketing information, or None."""
        try:
            result = await self.call("market.info", {"merchant": merchant})
        except RpcError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise
        info: dict[str, Any] = result["info"]
        return info

    async def market_history(
        self, merchant: str, *, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        """Marketing versions, newest first; pass the last item's ``seq`` as ``before``.

        Raises:
            RpcError: NOT_FOUND when the chain does not know ``merchant`` (a known merchant
                without any answers ``[]``); so does :meth:`reports`.
        """
        return await self._page("market.history", merchant, limit, before)

    async def reports(
        self, merchant: str, *, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        """Indicator reports, newest first; pass the last item's ``seq`` as ``before``."""
        return await self._page("market.reports", merchant, limit, before)

    async def _page(
        self, method: str, merchant: str, limit: int, before: int | None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"merchant": merchant, "limit": limit}
        if before is not None:
            params["before"] = before
        items: list[dict[str, Any]] = (await self.call(method, params))["items"]
        return items

    @asynccontextmanager
    async def subscribe(
        self, kinds: Iterable[str] = EVENT_KINDS, *, merchant: str | None = None
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Event]]:
        """Receive pushed events while the context is open::

            async with client.subscribe(["block"]) as events:
                async for ev in events:
                    print(ev.kind, ev.data)

        The channel ends (``EndOfChannel``; ``async for`` stops) if the node ends the
        subscription, e.g. because this client fell behind.
        """
        params: dict[str, Any] = {"kinds": list(kinds)}
        if merchant is not None:
            params["merchant"] = merchant
        sub: int = (await self.call("events.subscribe", params))["sub"]
        channel = self._rpc.subscription(sub)
        try:
            yield channel
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                try:
                    await self.call("events.unsubscribe", {"sub": sub})
                except Exception:
                    pass


@asynccontextmanager
async def open_client(addr: str, key: PrivateKey | None = None) -> AsyncIterator[Client]:
    """Connect to the node at ``addr`` (a multiaddr ending in ``/p2p/<peer id>``).

    Args:
        addr: e.g. ``/ip4/127.0.0.1/tcp/7001/p2p/16Uiu2HAm…``.
        key: the client's libp2p identity; None makes an ephemeral one.

    Raises:
        DialFailed: the node is unreachable or is not the peer named in ``addr``.
        ProtocolRefused / StreamClosed: the node does not serve the RPC protocol.

    These, and what the body of ``async with`` raises, reach the caller as themselves, not
    wrapped in the exception groups of the client's internal nurseries (``except
    trio.TooSlowError`` around a ``wait_tx_committed`` works); only several errors at once
    stay a group.
    """
    if key is not None and addr.rstrip("/").endswith("/p2p/" + peer_id_of(key.public_key.compressed)):
        # The node's own key (an operator signing with a node's node.key through that very
        # node): a connection from its own peer id confuses the node's peer book, so the
        # connection gets an ephemeral identity; the key still signs.
        key = None
    try:
        async with open_net(key, CLIENT_NET_CONFIG) as net, AsyncExitStack() as stack:
            peer = await net.connect(addr)
            try:
                rpc = await stack.enter_async_context(open_rpc_stream(net, peer))
            except StreamClosed as exc:
                # The one common cause, said where the user reads it: py-libp2p only reports
                # "Failed to create stream".
                raise StreamClosed(
                    f"{exc}. The node accepted the connection but no stream could be opened on "
                    "it: a node closes a client's connection at once when the client's IP "
                    "address already holds as many as its [limits] clients_per_ip allows (share "
                    "one connection among your tasks, or ask the operator to raise it)") from exc
            yield Client(net, rpc)
    except BaseExceptionGroup as group:
        leaves = group_leaves(group)
        if len(leaves) != 1:
            raise
        raise leaves[0] from leaves[0].__cause__  # the very exception, its cause kept
