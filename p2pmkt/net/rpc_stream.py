"""``/p2pmkt/rpc/1.0.0`` over libp2p streams: the node's stream handler and the client's dialer.

Theory of operation
-------------------
Server: :func:`run_rpc_server` registers a handler; each stream gets a
:class:`~p2pmkt.rpc.server.RpcServerSession` (pure dispatch) and a loop that reads a frame,
checks the peer's rate budget, awaits the session's :data:`~p2pmkt.rpc.server.Action` and
writes the answer. Requests of one stream are thus answered in order. An
``events.subscribe`` starts a pump task in the stream's nursery that writes the subscribe
answer and then the events; writes are serialised by the stream's write lock. Limits
(:class:`RpcLimits`):

* frame size — a larger length prefix is answered with FRAME_TOO_LARGE (id null), then the
  stream is closed; malformed prefixes and stalls inside a frame close it too;
* request rate — a token bucket per *peer* (shared by its streams); over budget, requests
  get RATE_LIMITED answers and are not run;
* open streams per peer — one more is answered with TOO_MANY_STREAMS and closed.

Client: :class:`RpcStreamClient` owns one stream, a reader task and a
:class:`~p2pmkt.rpc.protocol.ClientSession`. :meth:`RpcStreamClient.call` may be used by many
tasks at once (requests pipeline on the one stream). Events are routed to the subscription's
channel; the channel is created by the reader *before* it hands over the subscribe answer, so
no event is lost between the two.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from p2pmkt.chain.block import MAX_BLOCK_BYTES
from p2pmkt.errors import DecodeError, FramingError, P2pmktError
from p2pmkt.net._trio import TaskStatus
from p2pmkt.net.errors import StreamClosed
from p2pmkt.net.stream import FramedStream
from p2pmkt.rpc.protocol import (
    ClientSession,
    ErrorAnswer,
    ErrorCode,
    Event,
    Result,
    TokenBucket,
    encode_error,
    encode_event,
)
from p2pmkt.rpc.server import (
    NodeApi,
    Reply,
    RpcServerSession,
    StartSubscription,
    StopSubscription,
    error_code_for,
)

if TYPE_CHECKING:
    from p2pmkt.net.host import Net

log = logging.getLogger(__name__)

RPC_PROTOCOL = "/p2pmkt/rpc/1.0.0"


CLOSE_TIMEOUT = 2.0
"""Seconds closing a client's stream may take (a peer that stopped reading cannot hold it)."""

MAX_ANSWER_FRAME = MAX_BLOCK_BYTES + 64 * 1024
"""Largest answer a client reads: ``chain.block`` returns a whole block, and a chain may allow
blocks up to the hard ceiling of :data:`p2pmkt.chain.block.MAX_BLOCK_BYTES`."""


@dataclass(frozen=True, slots=True)
class RpcLimits:
    max_frame: int = 4 * 1024 * 1024
    rate: float = 500.0
    """Requests per second per peer (sustained)."""
    burst: float = 1000.0
    max_streams_per_peer: int = 8
    max_subscriptions_per_stream: int = 4
    frame_timeout: float = 30.0
    event_queue: int = 256


class _RpcServer:
    def __init__(self, api: NodeApi, limits: RpcLimits,
                 trusted: Callable[[str], bool] = lambda peer: False) -> None:
        self.api = api
        self.limits = limits
        self.trusted = trusted
        """Peers whose batches count as one request (the chain's members: a follower
        forwarding its clients' transactions to the leader)."""
        self.open_streams: dict[str, int] = {}
        self.buckets: dict[str, TokenBucket] = {}

    async def serve(self, fs: FramedStream) -> None:
        peer = fs.peer_id
        lim = self.limits
        if self.open_streams.get(peer, 0) >= lim.max_streams_per_peer:
            await fs.write_frame(encode_error(
                None, ErrorCode.TOO_MANY_STREAMS,
                f"at most {lim.max_streams_per_peer} open RPC streams per peer",
                {"reason": "too_many_streams"},
            ))
            return
        self.open_streams[peer] = self.open_streams.get(peer, 0) + 1
        if peer not in self.buckets:
            self.buckets[peer] = TokenBucket(lim.rate, lim.burst, trio.current_time())
        try:
            await self._serve_stream(fs, self.buckets[peer])
        finally:
            self.open_streams[peer] -= 1
            if not self.open_streams[peer]:
                del self.open_streams[peer]
                self.buckets.pop(peer, None)

    async def _write(self, fs: FramedStream, payload: bytes) -> None:
        async with fs.write_lock:
            await fs.write_frame(payload)

    async def _serve_stream(self, fs: FramedStream, bucket: TokenBucket) -> None:
        """Answer requests in order. Answers to pipelined requests are coalesced: while the
        next request is already buffered, answers queue and go out in one write (each write
        costs a Yamux frame, a Noise encryption and a syscall)."""
        session = RpcServerSession(
            self.api, max_frame=self.limits.max_frame,
            max_subscriptions=self.limits.max_subscriptions_per_stream,
        )
        pumps: dict[int, trio.CancelScope] = {}
        answers: list[bytes] = []

        async def flush() -> None:
            if answers:
                batch = answers.copy()
                answers.clear()
                async with fs.write_lock:
                    await fs.write_frames(batch)

        async with trio.open_nursery() as nursery:
            try:
                while True:
                    if not fs.frame_ready:
                        await flush()
                    try:
                        payload = await fs.read_frame()
                    except FramingError as exc:
                        code = ErrorCode.FRAME_TOO_LARGE if "exceeds" in exc.message else ErrorCode.PARSE_ERROR
                        answers.append(encode_error(None, code, exc.message, {"reason": "framing"}))
                        break
                    if payload is None:
                        break
                    if not bucket.take(trio.current_time()):
                        answers.append(session.refuse(
                            payload, ErrorCode.RATE_LIMITED,
                            f"more than {self.limits.rate:g} requests per second; slow down",
                            "rate_limited",
                        ))
                        continue
                    action = await session.handle(payload)
                    if isinstance(action, Reply):
                        if action.cost > 1 and not self.trusted(fs.peer_id):
                            # A batch is n requests' worth of work (signature checks): an
                            # anonymous peer pays for each, or a batch would multiply its rate.
                            bucket.charge(trio.current_time(), action.cost - 1)
                        answers.append(action.payload)
                        if action.close:
                            break
                    elif isinstance(action, StartSubscription):
                        await flush()  # the pump writes its own answer: keep the order
                        pumps[action.sub] = await nursery.start(self._pump, fs, session, action)
                    elif isinstance(action, StopSubscription):
                        scope = pumps.pop(action.sub, None)
                        if scope is not None:
                            scope.cancel()
                        answers.append(action.reply)
                await flush()
            finally:
                nursery.cancel_scope.cancel()

    async def _pump(
        self, fs: FramedStream, session: RpcServerSession, start: StartSubscription,
        *, task_status: TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer the subscribe request, then forward events until cancelled or ended."""
        scope = trio.CancelScope()
        started = False
        reason = "closed"
        with scope:
            try:
                async with self.api.subscribe_events(start.kinds, start.merchant) as events:
                    await self._write(fs, start.reply)
                    task_status.started(scope)
                    started = True
                    async for ev in events:
                        await self._write(fs, encode_event(Event(ev.kind, start.sub, ev.data)))
            except StreamClosed:
                raise
            except Exception as exc:
                reason = "failed"
                if not started:
                    session.end_subscription(start.sub)
                    reason_slug = exc.reason if isinstance(exc, P2pmktError) else "internal"
                    await self._write(fs, encode_error(
                        start.id, error_code_for(exc), str(exc) or "cannot subscribe now",
                        {"reason": reason_slug},
                    ))
                    task_status.started(scope)
                    return
                log.debug("subscription %d failed: %r", start.sub, exc)
        session.end_subscription(start.sub)
        if not scope.cancelled_caught:
            await self._write(fs, encode_event(Event("end", start.sub, {"reason": reason})))


async def run_rpc_server(
    net: Net,
    api: NodeApi,
    limits: RpcLimits | None = None,
    *,
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/p2pmkt/rpc/1.0.0`` on ``net`` backed by ``api`` until cancelled.

    Any peer may connect (clients need not be members): what a client may change is decided
    by the signatures on its transactions.
    """
    members = net.members
    server = _RpcServer(api, limits or RpcLimits(),
                        trusted=members.is_member if members is not None else lambda peer: False)
    net.handle(RPC_PROTOCOL, server.serve, max_frame=server.limits.max_frame,
               frame_timeout=server.limits.frame_timeout)
    task_status.started()
    await trio.sleep_forever()


# ---------------------------------------------------------------- client


class _Pending:
    __slots__ = ("answer", "done", "subscribe")

    def __init__(self, subscribe: bool) -> None:
        self.done = trio.Event()
        self.answer: Result | ErrorAnswer | BaseException | None = None
        self.subscribe = subscribe


class RpcStreamClient:
    """One RPC stream to a node. Create with :func:`open_rpc_stream`."""

    def __init__(self, fs: FramedStream, *, event_queue: int = 256) -> None:
        self._fs = fs
        self._session = ClientSession(max_frame=fs.max_frame)
        self._pending: dict[int, _Pending] = {}
        self._subs: dict[int, trio.MemorySendChannel[Event]] = {}
        self._sub_recv: dict[int, trio.MemoryReceiveChannel[Event]] = {}
        self._event_queue = event_queue
        self._closed: BaseException | None = None
        self.dropped_events = 0

    @property
    def peer_id(self) -> str:
        return self._fs.peer_id

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send a request and return its ``result``.

        Raises:
            RpcError: the node answered with an error (``.code`` says which).
            StreamClosed: the stream ended before the answer came.
        """
        if self._closed is not None:
            raise StreamClosed(f"RPC stream is closed: {self._closed}")
        req_id, payload = self._session.request(method, params)
        pending = _Pending(method == "events.subscribe")
        self._pending[req_id] = pending
        try:
            async with self._fs.write_lock:
                await self._fs.write_frame(payload)
            await pending.done.wait()
        finally:
            if not pending.done.is_set():
                self._session.cancel(req_id)
            self._pending.pop(req_id, None)
        answer = pending.answer
        if isinstance(answer, Result):
            return answer.result
        if isinstance(answer, ErrorAnswer):
            raise answer.to_exception()
        raise StreamClosed(f"RPC stream closed before the answer: {answer}")

    def subscription(self, sub: int) -> trio.MemoryReceiveChannel[Event]:
        """The event channel of subscription ``sub`` (after ``events.subscribe`` returned it).

        The channel closes after the node's ``end`` event or when the stream closes.
        """
        return self._sub_recv[sub]

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read the node's frames until the stream ends."""
        task_status.started()
        error: BaseException = StreamClosed("node closed the RPC stream")
        try:
            while True:
                payload = await self._fs.read_frame()
                if payload is None:
                    break
                msg = self._session.receive(payload)
                if isinstance(msg, Event):
                    self._deliver_event(msg)
                    continue
                if msg.id is None:
                    error = msg.to_exception()
                    break
                pending = self._pending.get(msg.id)
                if pending is None:
                    continue
                if pending.subscribe and isinstance(msg, Result) and isinstance(msg.result, dict):
                    sub = msg.result.get("sub")
                    if isinstance(sub, int):
                        send, recv = trio.open_memory_channel[Event](self._event_queue)
                        self._subs[sub], self._sub_recv[sub] = send, recv
                pending.answer = msg
                pending.done.set()
        except (StreamClosed, DecodeError, FramingError) as exc:
            error = exc
        finally:
            self._closed = error
            for pending in self._pending.values():
                if not pending.done.is_set():
                    pending.answer = error
                    pending.done.set()
            for send in self._subs.values():
                send.close()

    def _deliver_event(self, ev: Event) -> None:
        send = self._subs.get(ev.sub)
        if send is None:
            return
        if ev.kind == "end":
            send.close()
            del self._subs[ev.sub]
            return
        try:
            send.send_nowait(ev)
        except trio.WouldBlock:
            self.dropped_events += 1
        except trio.BrokenResourceError:
            del self._subs[ev.sub]

    async def aclose(self) -> None:
        await self._fs.close()


@asynccontextmanager
async def open_rpc_stream(
    net: Net, peer_id: str, *, max_frame: int = MAX_ANSWER_FRAME
) -> AsyncIterator[RpcStreamClient]:
    """Open an RPC stream to ``peer_id`` (dialing if needed) and run its reader.

    Raises:
        StreamClosed / ProtocolRefused: the stream could not be opened.
    """
    fs = await net.open_stream(peer_id, RPC_PROTOCOL, max_frame=max_frame)
    client = RpcStreamClient(fs)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()
            # Shielded: in the scope cancelled just above, the close would raise Cancelled,
            # which would replace the caller's own exception and then be absorbed by this
            # nursery: a TooSlowError raised inside ``async with open_client(...)`` vanished.
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                await fs.close()
