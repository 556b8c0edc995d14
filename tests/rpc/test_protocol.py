"""Pure RPC protocol: parsing, id matching, schemas, rate limiting, the dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from p2pmkt.errors import ContractRejected, DecodeError, InvalidTransaction, MempoolFull, NonceError
from p2pmkt.rpc import (
    METHODS,
    ClientSession,
    ErrorAnswer,
    ErrorCode,
    Event,
    ParamsError,
    Request,
    Result,
    RpcServerSession,
    TokenBucket,
    check_params,
    parse_request,
)
from p2pmkt.rpc.methods import MAX_BATCH_TXS
from p2pmkt.rpc.protocol import encode_error, encode_event, encode_result
from p2pmkt.rpc.server import (
    BlockRecord,
    Head,
    NodeEvent,
    NodeInfo,
    Reply,
    StartSubscription,
    StopSubscription,
    TxStatus,
)
from p2pmkt.wire.cbor import decode, encode


def test_parse_request_ok() -> None:
    req = parse_request(encode({"id": 7, "method": "chain.head", "params": {}}))
    assert req == Request(7, "chain.head", {})


@pytest.mark.parametrize(
    ("payload", "code", "rid"),
    [
        (b"\xff\xff", ErrorCode.PARSE_ERROR, None),
        (encode([1, 2]), ErrorCode.PARSE_ERROR, None),
        (encode({"method": "x"}), ErrorCode.INVALID_REQUEST, None),
        (encode({"id": -1, "method": "x"}), ErrorCode.INVALID_REQUEST, None),
        (encode({"id": 1, "method": 5}), ErrorCode.INVALID_REQUEST, 1),
        (encode({"id": 1, "method": "x", "params": [1]}), ErrorCode.INVALID_REQUEST, 1),
        (encode({"id": 1, "method": "x", "extra": 1}), ErrorCode.INVALID_REQUEST, 1),
    ],
)
def test_parse_request_errors(payload: bytes, code: ErrorCode, rid: int | None) -> None:
    ans = parse_request(payload)
    assert isinstance(ans, ErrorAnswer) and ans.code == code and ans.id == rid


def test_client_session_matches_ids() -> None:
    s = ClientSession()
    rid, payload = s.request("node.info")
    assert decode(payload) == {"id": rid, "method": "node.info", "params": {}}
    assert s.receive(encode_result(rid, {"x": 1})) == Result(rid, {"x": 1})
    with pytest.raises(DecodeError, match=r"^node answered id 1, which is not outstanding$"):
        s.receive(encode_result(rid, 1))
    rid2, _ = s.request("tx.get", {"txid": b"1" * 32})
    err = s.receive(encode_error(rid2, ErrorCode.NOT_FOUND, "nope", {"reason": "not_found"}))
    assert isinstance(err, ErrorAnswer)
    exc = err.to_exception()
    assert exc.code == ErrorCode.NOT_FOUND and exc.error_reason == "not_found"
    assert s.receive(encode_event(Event("block", 1, {"h": 1}))) == Event("block", 1, {"h": 1})
    with pytest.raises(DecodeError):
        s.receive(encode({"id": 5}))


def test_token_bucket() -> None:
    b = TokenBucket(rate=2, burst=2, now=0)
    assert b.take(0) and b.take(0) and not b.take(0)
    assert b.take(0.5) and not b.take(0.5)


def test_check_params() -> None:
    spec = METHODS["market.history"]
    assert check_params(spec, {"merchant": "acme"}) == {"merchant": "acme", "limit": 50, "before": None}
    with pytest.raises(ParamsError, match=r"^market.history: missing parameter 'merchant' \(text\)$"):
        check_params(spec, {})
    with pytest.raises(ParamsError, match=r"^market.history: parameter 'limit' must be uint \(limit 500\)$"):
        check_params(spec, {"merchant": "a", "limit": 501})
    with pytest.raises(ParamsError, match=r"^market.history: unknown parameters \['x'\]$"):
        check_params(spec, {"merchant": "a", "x": 1})
    with pytest.raises(ParamsError, match=r"^chain.block: give exactly one of \['height', 'hash'\]$"):
        check_params(METHODS["chain.block"], {})
    with pytest.raises(ParamsError, match=r"^tx.get: parameter 'txid' must be bytes32$"):
        check_params(METHODS["tx.get"], {"txid": b"short"})
    # An address is exactly 20 bytes (a shorter one was read as some other account's).
    assert check_params(METHODS["account.get"], {"address": b"\1" * 20}) == {"address": b"\1" * 20}
    with pytest.raises(ParamsError, match=r"^account.get: parameter 'address' must be bytes20$"):
        check_params(METHODS["account.get"], {"address": b"\1" * 19})


class StubApi:
    def __init__(self) -> None:
        self.fail: Exception | None = None
        self.relayed: list[bool] = []

    async def node_info(self) -> NodeInfo:
        return NodeInfo("c", "p", None, "v", (), 0, None, ())

    async def head(self) -> Head:
        return Head(3, b"h" * 32, 9)

    async def block(self, *, height: int | None = None, hash: bytes | None = None) -> BlockRecord | None:
        return BlockRecord(1, b"h" * 32, b"blk") if height == 1 else None

    async def submit_tx(self, data: bytes, *, relay: bool = True) -> bytes:
        if self.fail:
            raise self.fail
        if data == b"bad":
            raise InvalidTransaction("not a transaction", reason="malformed")
        self.relayed.append(relay)
        return b"t" * 32

    async def tx_status(self, txid: bytes) -> TxStatus | None:
        return TxStatus(txid, "rejected", 4, "bad_nonce", "nonce 3 expected")

    async def market_info(self, merchant: str) -> dict[str, Any] | None:
        return None

    async def market_history(self, merchant: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
        return [{"seq": 1}]

    async def market_reports(self, merchant: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
        raise RuntimeError("boom")

    @asynccontextmanager
    async def subscribe_events(self, kinds: frozenset[str], merchant: str | None) -> AsyncIterator[AsyncIterator[NodeEvent]]:
        async def gen() -> AsyncIterator[NodeEvent]:
            yield NodeEvent("block", {})
        yield gen()


async def answer(session: RpcServerSession, method: str, params: dict[str, Any], rid: int = 1) -> dict[str, Any]:
    action = await session.handle(encode({"id": rid, "method": method, "params": params}))
    assert isinstance(action, Reply)
    out: dict[str, Any] = decode(action.payload)
    return out


async def test_dispatcher_results_and_errors() -> None:
    api = StubApi()
    s = RpcServerSession(api)
    assert await answer(s, "chain.head", {}) == {"id": 1, "result": {"height": 3, "hash": b"h" * 32, "time": 9}}
    assert (await answer(s, "chain.block", {"height": 1}))["result"]["block"] == b"blk"
    headless = (await answer(s, "chain.block", {"height": 1, "body": False}))["result"]
    assert "block" not in headless and headless["height"] == 1
    assert (await answer(s, "chain.block", {"height": 1, "body": True}))["result"]["block"] == b"blk"
    assert (await answer(s, "chain.block", {"height": 2}))["error"]["code"] == ErrorCode.NOT_FOUND
    assert (await answer(s, "tx.get", {"txid": b"x" * 32}))["result"] == {
        "txid": b"x" * 32, "status": "rejected", "height": 4, "reason": "bad_nonce",
        "message": "nonce 3 expected"}
    assert (await answer(s, "market.info", {"merchant": "a"}))["error"]["code"] == ErrorCode.NOT_FOUND
    assert (await answer(s, "nope", {}))["error"]["code"] == ErrorCode.METHOD_NOT_FOUND
    assert (await answer(s, "tx.get", {"txid": 5}))["error"]["code"] == ErrorCode.INVALID_PARAMS
    internal = (await answer(s, "market.reports", {"merchant": "a"}))["error"]
    assert internal == {"code": ErrorCode.INTERNAL_ERROR, "message": "internal error; see the node's log",
                        "data": {"reason": "internal"}}
    api.fail = NonceError("nonce 2 used")
    assert (await answer(s, "tx.submit", {"tx": b"x"}))["error"] == {
        "code": ErrorCode.BAD_NONCE, "message": "nonce 2 used", "data": {"reason": "bad_nonce"}}
    api.fail = MempoolFull("full")
    assert (await answer(s, "tx.submit", {"tx": b"x"}))["error"]["code"] == ErrorCode.BUSY
    # A contract.deploy whose code is refused is a refused transaction, as tx.submit documents.
    api.fail = ContractRejected("the module imports wasi_snapshot_preview1.fd_write", reason="disallowed_import")
    assert (await answer(s, "tx.submit", {"tx": b"x"}))["error"] == {
        "code": ErrorCode.INVALID_TX, "message": "the module imports wasi_snapshot_preview1.fd_write",
        "data": {"reason": "disallowed_import"}}


async def test_submit_batch_answers_each_transaction_in_order() -> None:
    api = StubApi()
    s = RpcServerSession(api)
    res = (await answer(s, "tx.submit_batch", {"txs": [b"ok", b"bad", b"ok"], "relay": False}))["result"]
    assert res["results"] == [
        {"txid": b"t" * 32},
        {"code": ErrorCode.INVALID_TX, "reason": "malformed", "message": "not a transaction"},
        {"txid": b"t" * 32},
    ]
    assert api.relayed == [False, False]
    await answer(s, "tx.submit_batch", {"txs": [b"ok"]})
    assert api.relayed[-1] is True  # relay defaults to true
    too_many = await answer(s, "tx.submit_batch", {"txs": [b"x"] * (MAX_BATCH_TXS + 1)})
    assert too_many["error"]["code"] == ErrorCode.INVALID_PARAMS
    assert f"at most {MAX_BATCH_TXS} items" in too_many["error"]["message"]


async def test_dispatcher_parse_error_closes() -> None:
    action = await RpcServerSession(StubApi()).handle(b"\xff")
    assert isinstance(action, Reply) and action.close
    assert decode(action.payload)["id"] is None


async def test_dispatcher_subscriptions() -> None:
    s = RpcServerSession(StubApi(), max_subscriptions=1)
    act = await s.handle(encode({"id": 1, "method": "events.subscribe", "params": {"kinds": ["block"]}}))
    assert isinstance(act, StartSubscription) and act.kinds == frozenset({"block"}) and act.sub == 1
    busy = await answer(s, "events.subscribe", {}, rid=2)
    assert busy["error"]["code"] == ErrorCode.BUSY
    bad = await answer(s, "events.subscribe", {"kinds": ["nope"]}, rid=3)
    assert bad["error"]["code"] == ErrorCode.INVALID_PARAMS
    stop = await s.handle(encode({"id": 4, "method": "events.unsubscribe", "params": {"sub": 1}}))
    assert isinstance(stop, StopSubscription) and decode(stop.reply)["result"] == {"ok": True}
