"""The node side of ``/p2pmkt/rpc/1.0.0``: the :class:`NodeApi` contract and a dispatcher.

Theory of operation
-------------------
The node implements :class:`NodeApi` (plain async methods, no transport knowledge). One
:class:`RpcServerSession` exists per client stream; the stream glue
(:mod:`p2pmkt.net.rpc_stream`) feeds it each request frame and performs the
:data:`Action` it returns: write a reply, possibly close the stream, or start/stop an event
pump for a subscription. The session never does I/O itself and imports no trio, so it is
tested with plain ``trio.run``-free coroutine driving.

Error mapping (a node raising p2pmkt errors from :class:`NodeApi` methods):

=====================================  ==========================
exception                              code
=====================================  ==========================
``NonceError``                         BAD_NONCE
``PermissionDenied``                   PERMISSION_DENIED
``InvalidSignature``                   BAD_SIGNATURE
``InvalidTransaction``, ``DecodeError`` INVALID_TX
``ContractRejected``                   INVALID_TX
``Busy`` (``MempoolFull``)             BUSY
``ParamsError``, other ``RemoteError`` INVALID_PARAMS
anything else                          INTERNAL_ERROR (details stay in the node's log)
=====================================  ==========================

Every error answer carries ``data.reason``: the exception's stable reason slug.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from p2pmkt.errors import (
    Busy,
    ContractRejected,
    DecodeError,
    InvalidSignature,
    InvalidTransaction,
    NonceError,
    P2pmktError,
    PermissionDenied,
    RemoteError,
)
from p2pmkt.rpc.methods import EVENT_KINDS, METHODS, ParamsError, check_params, check_result
from p2pmkt.rpc.protocol import (
    DEFAULT_MAX_FRAME,
    ErrorAnswer,
    ErrorCode,
    encode_error,
    encode_result,
    parse_request,
)

log = logging.getLogger(__name__)

TxState = Literal["pending", "committed", "rejected"]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    chain: str
    peer_id: str
    address: str | None
    version: str
    roles: tuple[str, ...]
    height: int
    leader: str | None
    peers: tuple[str, ...]
    mempool: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "chain": self.chain, "peer_id": self.peer_id, "address": self.address,
            "version": self.version, "roles": list(self.roles), "height": self.height,
            "leader": self.leader, "peers": list(self.peers), "mempool": self.mempool,
        }

    @classmethod
    def from_wire(cls, v: dict[str, Any]) -> NodeInfo:
        """Raises DecodeError on a malformed answer, naming the field."""
        check_result(METHODS["node.info"], v)
        return cls(
            v["chain"], v["peer_id"], v["address"], v["version"], tuple(v["roles"]),
            v["height"], v["leader"], tuple(v["peers"]), v.get("mempool", 0),
        )


@dataclass(frozen=True, slots=True)
class Head:
    height: int
    hash: bytes
    time: int

    def to_wire(self) -> dict[str, Any]:
        return {"height": self.height, "hash": self.hash, "time": self.time}

    @classmethod
    def from_wire(cls, v: dict[str, Any]) -> Head:
        """Raises DecodeError on a malformed answer, naming the field."""
        check_result(METHODS["chain.head"], v)
        return cls(v["height"], v["hash"], v["time"])


@dataclass(frozen=True, slots=True)
class BlockRecord:
    height: int
    hash: bytes
    block: bytes
    """``Block.encode()`` bytes."""
    applied_at: int | None = None
    """When the answering node applied it, ms on its own clock (None if it does not know)."""

    def to_wire(self, *, body: bool = True) -> dict[str, Any]:
        """The ``chain.block`` answer; ``body=False`` leaves the block's bytes out."""
        out: dict[str, Any] = {"height": self.height, "hash": self.hash}
        if body:
            out["block"] = self.block
        if self.applied_at is not None:
            out["applied_at"] = self.applied_at
        return out


@dataclass(frozen=True, slots=True)
class TxStatus:
    txid: bytes
    status: TxState
    height: int | None = None
    reason: str = ""
    message: str = ""

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"txid": self.txid, "status": self.status}
        if self.height is not None:
            out["height"] = self.height
        if self.status == "rejected":
            out["reason"] = self.reason
            out["message"] = self.message
        return out

    @classmethod
    def from_wire(cls, v: dict[str, Any]) -> TxStatus:
        """Raises DecodeError on a malformed answer, naming the field."""
        check_result(METHODS["tx.get"], v)
        status = v["status"]
        if status not in ("pending", "committed", "rejected"):
            raise DecodeError(f"tx.get: unknown transaction status {status!r}")
        return cls(v["txid"], status, v.get("height"), v.get("reason", ""), v.get("message", ""))


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """What a node pushes to subscribers: ``kind`` in ``EVENT_KINDS``, ``data`` a CBOR map.

    ``merchant`` (for report/market events) lets subscriptions filter; it is not sent.
    """

    kind: str
    data: dict[str, Any]
    merchant: str | None = None


class NodeApi(Protocol):
    """What the RPC server needs from a node. Implemented by ``p2pmkt.node``.

    All values returned must be canonical-CBOR-encodable (no floats). Methods raise p2pmkt
    errors for bad input (see the module docstring for the code each maps to) and return
    ``None`` where documented for "not found".
    """

    async def node_info(self) -> NodeInfo: ...

    async def head(self) -> Head: ...

    async def block(self, *, height: int | None = None, hash: bytes | None = None) -> BlockRecord | None:
        """Exactly one of ``height``/``hash`` is given. None if no such committed block."""
        ...

    async def submit_tx(self, data: bytes, *, relay: bool = True) -> bytes:
        """Decode, verify, pool and (if ``relay``) gossip a signed transaction; return its txid.

        Resubmitting a pooled transaction returns its txid again; a committed one is refused as
        a replay (BAD_NONCE, nonce_used).
        Raises DecodeError/InvalidTransaction/InvalidSignature/NonceError/PermissionDenied/Busy.
        """
        ...

    async def tx_status(self, txid: bytes) -> TxStatus | None: ...

    async def account(self, address: bytes) -> dict[str, Any]:
        """``{"address", "nonce", "pending_nonce", "member", "roles"}`` of ``address``."""
        ...

    async def chain_params(self) -> dict[str, int]:
        """The chain's consensus parameters (genesis), by name."""
        ...

    async def market_indicator(self, merchant: str, name: str) -> dict[str, Any] | None:
        """The indicator's configuration in wire form, or None when not configured."""
        ...

    async def market_indicators(self, merchant: str) -> list[dict[str, Any]] | None:
        """Every configured indicator of ``merchant`` in wire form, sorted by name; None
        when the chain does not know the merchant (so are the two lists below)."""
        ...

    async def market_info(self, merchant: str) -> dict[str, Any] | None: ...

    async def market_history(
        self, merchant: str, *, limit: int, before: int | None
    ) -> list[dict[str, Any]] | None: ...

    async def market_reports(
        self, merchant: str, *, limit: int, before: int | None
    ) -> list[dict[str, Any]] | None: ...

    def subscribe_events(
        self, kinds: frozenset[str], merchant: str | None
    ) -> AbstractAsyncContextManager[AsyncIterator[NodeEvent]]:
        """Open a feed of events of ``kinds`` (and of ``merchant``'s, if given).

        The node must never block on a slow subscriber: buffer a bounded number of events
        and end the iterator when a subscriber falls behind (the client is told with an
        ``end`` event and may resubscribe). Raise ``Busy`` if no more feeds can be opened.
        """
        ...


# ---------------------------------------------------------------- session


@dataclass(frozen=True, slots=True)
class Reply:
    """Write ``payload``; then close the stream if ``close``. ``cost``: how many requests'
    worth of work it took (a ``tx.submit_batch`` of n transactions costs n), charged to the
    peer's rate budget by the glue."""

    payload: bytes
    close: bool = False
    cost: int = 1


@dataclass(frozen=True, slots=True)
class StartSubscription:
    """Write ``reply``, then pump ``NodeApi.subscribe_events(kinds, merchant)`` as ``sub``."""

    id: int
    reply: bytes
    sub: int
    kinds: frozenset[str]
    merchant: str | None


@dataclass(frozen=True, slots=True)
class StopSubscription:
    """Stop the pump of ``sub`` (if still running), then write ``reply``."""

    reply: bytes
    sub: int


Action = Reply | StartSubscription | StopSubscription


def error_code_for(exc: BaseException) -> ErrorCode:
    """The error code an exception from :class:`NodeApi` is answered with."""
    for cls, code in _ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return ErrorCode.INTERNAL_ERROR


_ERROR_CODES: tuple[tuple[type[BaseException], ErrorCode], ...] = (
    (NonceError, ErrorCode.BAD_NONCE),
    (PermissionDenied, ErrorCode.PERMISSION_DENIED),
    (InvalidSignature, ErrorCode.BAD_SIGNATURE),
    (InvalidTransaction, ErrorCode.INVALID_TX),
    (DecodeError, ErrorCode.INVALID_TX),
    # A contract.deploy whose code is refused is a transaction refused: tx.submit's errors.
    (ContractRejected, ErrorCode.INVALID_TX),
    (Busy, ErrorCode.BUSY),
    (ParamsError, ErrorCode.INVALID_PARAMS),
    (RemoteError, ErrorCode.INVALID_PARAMS),
)


@dataclass(slots=True)
class RpcServerSession:
    """Per-stream request dispatcher.

    ``handle(payload)`` never raises (except cancellation): every failure becomes an error
    answer. A parse error answer asks the glue to close the stream.
    """

    api: NodeApi
    max_frame: int = DEFAULT_MAX_FRAME
    max_subscriptions: int = 4
    subscriptions: set[int] = field(default_factory=set)
    _next_sub: int = 1

    async def handle(self, payload: bytes) -> Action:
        req = parse_request(payload, max_size=self.max_frame)
        if isinstance(req, ErrorAnswer):
            return Reply(
                encode_error(req.id, req.code, req.message, {"reason": "bad_request"}),
                close=req.id is None,
            )
        spec = METHODS.get(req.method)
        if spec is None:
            return Reply(encode_error(
                req.id, ErrorCode.METHOD_NOT_FOUND, f"unknown method {req.method[:64]!r}",
                {"reason": "unknown_method"},
            ))
        try:
            params = check_params(spec, req.params)
            return await self._call(req.id, req.method, params)
        except P2pmktError as exc:
            code = error_code_for(exc)
            return Reply(encode_error(req.id, code, exc.message, {"reason": exc.reason}))
        except Exception:
            log.exception("rpc method %s failed", req.method)
            return Reply(encode_error(
                req.id, ErrorCode.INTERNAL_ERROR, "internal error; see the node's log",
                {"reason": "internal"},
            ))

    def refuse(self, payload: bytes, code: ErrorCode, message: str, reason: str) -> bytes:
        """Error answer for a request the glue will not run (e.g. rate limited)."""
        req = parse_request(payload, max_size=self.max_frame)
        return encode_error(req.id, code, message, {"reason": reason})

    def end_subscription(self, sub: int) -> None:
        """The glue calls this when a pump ends on its own."""
        self.subscriptions.discard(sub)

    async def _call(self, rid: int, method: str, p: dict[str, Any]) -> Action:
        api = self.api
        if method == "node.info":
            return Reply(encode_result(rid, (await api.node_info()).to_wire()))
        if method == "chain.head":
            return Reply(encode_result(rid, (await api.head()).to_wire()))
        if method == "chain.params":
            return Reply(encode_result(rid, {"params": await api.chain_params()}))
        if method == "chain.block":
            rec = await api.block(height=p["height"], hash=p["hash"])
            if rec is None:
                what = f"height {p['height']}" if p["height"] is not None else f"hash {p['hash'].hex()}"
                return _not_found(rid, f"no committed block at {what}")
            return Reply(encode_result(rid, rec.to_wire(body=p["body"])))
        if method == "tx.submit":
            txid = await api.submit_tx(p["tx"])
            return Reply(encode_result(rid, {"txid": txid}))
        if method == "tx.submit_batch":
            results: list[dict[str, Any]] = []
            for data in p["txs"]:
                try:
                    results.append({"txid": await api.submit_tx(data, relay=p["relay"])})
                except P2pmktError as exc:
                    results.append({"code": int(error_code_for(exc)), "reason": exc.reason,
                                    "message": exc.message})
            return Reply(encode_result(rid, {"results": results}), cost=max(1, len(results)))
        if method == "tx.get":
            st = await api.tx_status(p["txid"])
            if st is None:
                return _not_found(rid, f"transaction {p['txid'].hex()} is not known to this node")
            return Reply(encode_result(rid, st.to_wire()))
        if method == "account.get":
            return Reply(encode_result(rid, await api.account(p["address"])))
        if method == "market.indicator":
            ind = await api.market_indicator(p["merchant"], p["name"])
            return Reply(encode_result(rid, {"indicator": ind}))
        if method == "market.indicators":
            items = await api.market_indicators(p["merchant"])
            if items is None:
                return _unknown_merchant(rid, p["merchant"])
            return Reply(encode_result(rid, {"items": items}))
        if method == "market.info":
            info = await api.market_info(p["merchant"])
            if info is None:
                return _not_found(rid, f"merchant {p['merchant']!r} has no marketing information")
            return Reply(encode_result(rid, {"info": info}))
        if method in ("market.history", "market.reports"):
            fn = api.market_history if method == "market.history" else api.market_reports
            items = await fn(p["merchant"], limit=p["limit"], before=p["before"])
            if items is None:
                return _unknown_merchant(rid, p["merchant"])
            return Reply(encode_result(rid, {"items": items}))
        if method == "events.subscribe":
            kinds = frozenset(p["kinds"]) if p["kinds"] is not None else frozenset(EVENT_KINDS)
            unknown = sorted(kinds - set(EVENT_KINDS))
            if unknown or not kinds:
                raise ParamsError(f"events.subscribe: unknown event kinds {unknown}; "
                                  f"use some of {list(EVENT_KINDS)}")
            if len(self.subscriptions) >= self.max_subscriptions:
                raise Busy(f"at most {self.max_subscriptions} subscriptions per stream")
            sub = self._next_sub
            self._next_sub += 1
            self.subscriptions.add(sub)
            return StartSubscription(
                rid, encode_result(rid, {"sub": sub}), sub, kinds, p["merchant"]
            )
        if method == "events.unsubscribe":
            had = p["sub"] in self.subscriptions
            self.subscriptions.discard(p["sub"])
            return StopSubscription(encode_result(rid, {"ok": had}), p["sub"])
        raise AssertionError(f"method {method} is in METHODS but not dispatched")


def _not_found(rid: int, message: str) -> Reply:
    return Reply(encode_error(rid, ErrorCode.NOT_FOUND, message, {"reason": "not_found"}))


def _unknown_merchant(rid: int, merchant: str) -> Reply:
    # An empty list would read as "none yet" and hide a misspelt merchant id.
    return _not_found(rid, f"merchant {merchant!r} is not known to this chain (no member has "
                           "ever held a merchant-ops: or merchant-tech: role for it)")
