"""The client wire protocol ``/p2pmkt/rpc/1.0.0``: messages, error codes, id matching.

Theory of operation
-------------------
A client opens one libp2p stream and both sides exchange *frames*: an unsigned-varint length
prefix and one canonical CBOR map (:mod:`p2pmkt.wire.framing`). Three message forms exist::

    request  (client → node)  {"id": uint, "method": tstr, "params": map}
    answer   (node → client)  {"id": uint, "result": any}
                              {"id": uint / null, "error": {"code": int, "message": tstr,
                                                            ? "data": map}}
    event    (node → client)  {"event": tstr, "sub": uint, "data": map}

* Requests may be pipelined. The node answers requests of one stream **in the order they
  arrived**; ids are the client's to choose (any uint below 2**63, unique among its
  outstanding requests) and are echoed back unchanged.
* An error answer whose request id could not be read (bad CBOR, not a map, no id) carries
  ``"id": null``. After such an answer, and after a framing error, the node closes the stream.
* Events belong to a subscription made with ``events.subscribe`` and are interleaved with
  answers on the same stream; they never carry ``"id"``.

This module is pure: it builds and parses frames' *payloads* (framing is
:mod:`p2pmkt.wire.framing`), matches answers to requests (:class:`ClientSession`) and rate
limits (:class:`TokenBucket`, time is an input). Method names and parameter schemas live in
:mod:`p2pmkt.rpc.methods`; the dispatcher that calls a node in :mod:`p2pmkt.rpc.server`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeGuard

from p2pmkt.errors import DecodeError, RemoteError
from p2pmkt.wire.cbor import decode, encode

MAX_ID = 2**63 - 1
DEFAULT_MAX_FRAME = 4 * 1024 * 1024
"""Largest frame (payload bytes) either side accepts unless configured otherwise."""


class ErrorCode(IntEnum):
    """Every error code an answer may carry (docs/PROTOCOL.md §Errors)."""

    PARSE_ERROR = -32700
    """The frame is not one CBOR map (the id is then `null`); the stream is closed."""
    INVALID_REQUEST = -32600
    """A map, but not `{"id": uint, "method": tstr, "params": map}`."""
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    """A parameter is missing, unknown, or of the wrong type or range."""
    INTERNAL_ERROR = -32603
    INVALID_TX = -32001
    """The transaction is malformed, for another chain, of an unknown kind, or too large."""
    BAD_SIGNATURE = -32002
    BAD_NONCE = -32003
    """Replayed or skipped nonce (`data.reason` is `bad_nonce`)."""
    PERMISSION_DENIED = -32004
    """The signer lacks the role or merchant scope for this transaction."""
    NOT_FOUND = -32005
    BUSY = -32006
    """Back-pressure (e.g. mempool full): retry later."""
    RATE_LIMITED = -32007
    """Too many requests from this peer; slow down and retry."""
    TOO_MANY_STREAMS = -32008
    """Too many open RPC streams from this peer; the new stream is closed after this answer."""
    FRAME_TOO_LARGE = -32009
    """A length prefix above the node's frame limit; the stream is closed after this answer."""


class RpcError(RemoteError):
    """An error answer, as seen by a client; ``code`` is an :class:`ErrorCode` value."""

    reason = "rpc_error"

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.rpc_message = message
        self.data = data or {}
        if self.error_reason:
            # The node's own slug (e.g. "missing_role") is what users and scripts act on.
            self.reason = self.error_reason

    @property
    def error_reason(self) -> str:
        """The node's reason slug (``data.reason``), or "" if it sent none."""
        value = self.data.get("reason", "")
        return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Result:
    id: int
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    id: int | None
    code: int
    message: str
    data: dict[str, Any] | None = None

    def to_exception(self) -> RpcError:
        return RpcError(self.code, self.message, self.data)


@dataclass(frozen=True, slots=True)
class Event:
    """A pushed notification of subscription ``sub``; ``kind`` is e.g. ``"block"``."""

    kind: str
    sub: int
    data: dict[str, Any]


Answer = Result | ErrorAnswer
ServerMessage = Result | ErrorAnswer | Event


# ---------------------------------------------------------------- encoding


def encode_request(req: Request) -> bytes:
    return encode({"id": req.id, "method": req.method, "params": req.params})


def encode_result(req_id: int, result: Any) -> bytes:
    """Raises TypeError if ``result`` is outside canonical CBOR (a bug in the node)."""
    return encode({"id": req_id, "result": result})


def encode_error(
    req_id: int | None, code: int, message: str, data: dict[str, Any] | None = None
) -> bytes:
    err: dict[str, Any] = {"code": int(code), "message": message}
    if data:
        err["data"] = data
    return encode({"id": req_id, "error": err})


def encode_event(event: Event) -> bytes:
    return encode({"event": event.kind, "sub": event.sub, "data": event.data})


def encode_answer(answer: Answer) -> bytes:
    if isinstance(answer, Result):
        return encode_result(answer.id, answer.result)
    return encode_error(answer.id, answer.code, answer.message, answer.data)


# ---------------------------------------------------------------- parsing


def _valid_id(value: Any) -> TypeGuard[int]:
    return type(value) is int and 0 <= value <= MAX_ID


def parse_request(payload: bytes, *, max_size: int = DEFAULT_MAX_FRAME) -> Request | ErrorAnswer:
    """Parse a client frame. Never raises: a bad frame becomes the error answer to send.

    A PARSE_ERROR answer (id ``null``) means the stream is out of sync or hostile and should
    be closed after sending it; INVALID_REQUEST with a known id leaves the stream usable.
    """
    try:
        value = decode(payload, max_size=max_size)
    except DecodeError as exc:
        return ErrorAnswer(None, ErrorCode.PARSE_ERROR, f"frame is not valid CBOR: {exc}")
    if not isinstance(value, dict):
        return ErrorAnswer(None, ErrorCode.PARSE_ERROR, "frame must hold one CBOR map")
    req_id = value.get("id")
    if not _valid_id(req_id):
        return ErrorAnswer(None, ErrorCode.INVALID_REQUEST, '"id" must be an unsigned integer below 2**63')
    if set(value) - {"id", "method", "params"}:
        extra = sorted(set(value) - {"id", "method", "params"})
        return ErrorAnswer(req_id, ErrorCode.INVALID_REQUEST, f"unknown request fields {extra}")
    method = value.get("method")
    if not isinstance(method, str) or not method:
        return ErrorAnswer(req_id, ErrorCode.INVALID_REQUEST, '"method" must be non-empty text')
    params = value.get("params", {})
    if not isinstance(params, dict):
        return ErrorAnswer(req_id, ErrorCode.INVALID_REQUEST, '"params" must be a map')
    return Request(req_id, method, params)


def parse_server_message(payload: bytes, *, max_size: int = DEFAULT_MAX_FRAME) -> ServerMessage:
    """Parse a node frame (client side).

    Raises:
        DecodeError: not CBOR, or not one of the three forms; the client should close.
    """
    value = decode(payload, max_size=max_size)
    if not isinstance(value, dict):
        raise DecodeError("node sent a frame that is not a CBOR map")
    if "event" in value:
        kind, sub, data = value.get("event"), value.get("sub"), value.get("data")
        if not isinstance(kind, str) or not _valid_id(sub) or not isinstance(data, dict):
            raise DecodeError('event frame must be {"event": text, "sub": uint, "data": map}')
        return Event(kind, sub, data)
    req_id = value.get("id")
    if req_id is not None and not _valid_id(req_id):
        raise DecodeError('answer "id" must be an unsigned integer or null')
    if "result" in value and "error" not in value and req_id is not None:
        return Result(req_id, value["result"])
    err = value.get("error")
    if isinstance(err, dict) and "result" not in value:
        code, message, data = err.get("code"), err.get("message"), err.get("data")
        if type(code) is int and isinstance(message, str) and (data is None or isinstance(data, dict)):
            return ErrorAnswer(req_id, code, message, data)
    raise DecodeError("node sent a frame that is neither an answer nor an event")


# ---------------------------------------------------------------- client state


class ClientSession:
    """Client-side id allocation and answer matching (sans-I/O).

    ``request()`` returns the id and payload to send; ``receive()`` classifies a node frame
    and checks that an answer matches an outstanding request.
    """

    __slots__ = ("_next_id", "_pending", "max_frame")

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._next_id = 1
        self._pending: set[int] = set()
        self.max_frame = max_frame

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        req_id = self._next_id
        self._next_id = 1 if req_id >= MAX_ID else req_id + 1
        payload = encode_request(Request(req_id, method, params or {}))
        self._pending.add(req_id)
        return req_id, payload

    def cancel(self, req_id: int) -> None:
        """Forget ``req_id`` (its answer, if it still comes, is then unexpected)."""
        self._pending.discard(req_id)

    def receive(self, payload: bytes) -> ServerMessage:
        """Classify a frame from the node.

        Raises:
            DecodeError: malformed frame, or an answer to an id that is not outstanding.
        """
        msg = parse_server_message(payload, max_size=self.max_frame)
        if isinstance(msg, Event):
            return msg
        if msg.id is None:
            return msg  # stream-level error; the node closes next
        if msg.id not in self._pending:
            raise DecodeError(f"node answered id {msg.id}, which is not outstanding")
        self._pending.discard(msg.id)
        return msg


class TokenBucket:
    """Rate limiter: ``rate`` tokens per second, at most ``burst`` saved up. Time is input."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if available; return False (spend nothing) otherwise."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def charge(self, now: float, cost: float) -> None:
        """Spend ``cost`` tokens even if that leaves a debt (work already done, e.g. a batch
        of transactions): requests are refused until the debt is paid back at ``rate``."""
        self.take(now, 0.0)  # refill up to now
        self._tokens -= cost
