"""A blocking wrapper over :class:`~p2pmkt.client.client.Client` for scripts and the console.

A worker thread runs ``trio.run`` with one open client; each method call is sent to it with
``trio.from_thread.run`` and blocks the caller until the answer comes. Close it (or use it as
a context manager) to stop the thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import trio

from p2pmkt.chain.block import Block
from p2pmkt.chain.tx import SignedTransaction
from p2pmkt.client.client import Client, open_client
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.rpc.methods import EVENT_KINDS
from p2pmkt.rpc.protocol import Event
from p2pmkt.rpc.server import Head, NodeInfo, TxStatus

T = TypeVar("T")


class SyncClient:
    """Blocking client. Create with :func:`connect` (or ``Client.sync``)."""

    def __init__(self, addr: str, key: PrivateKey | None = None, *, connect_timeout: float = 10.0) -> None:
        self._addr = addr
        self._key = key
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._client: Client | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=self._thread_main, name="p2pmkt-client", daemon=True)
        self._thread.start()
        if not self._ready.wait(connect_timeout):
            raise TimeoutError(f"could not connect to {addr} within {connect_timeout} s")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with open_client(self._addr, self._key) as client:
            self._client = client
            self._ready.set()
            await self._stop.wait()

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._token is None or self._client is None or not self._thread.is_alive():
            raise RuntimeError("client is closed")
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("client is closed")
        return self._client

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self._run(self.client.call, method, params)

    def info(self) -> NodeInfo:
        return self._run(self.client.info)

    def head(self) -> Head:
        return self._run(self.client.head)

    def block(self, height: int | None = None, *, hash: bytes | None = None) -> Block | None:
        async def go() -> Block | None:
            return await self.client.block(height, hash=hash)
        return self._run(go)

    def submit_tx(self, stx: SignedTransaction | bytes) -> bytes:
        return self._run(self.client.submit_tx, stx)

    def submit_visits(self, key: PrivateKey, visits: Iterable[Any], *, per_tx: int = 2000,
                      patience: float = math.inf) -> list[bytes]:
        """See :meth:`Client.submit_visits`."""
        async def go() -> list[bytes]:
            return await self.client.submit_visits(key, visits, per_tx=per_tx, patience=patience)
        return self._run(go)

    def tx(self, txid: bytes) -> TxStatus | None:
        return self._run(self.client.tx, txid)

    def wait_tx_committed(self, txid: bytes, timeout: float = 30.0) -> TxStatus:
        return self._run(self.client.wait_tx_committed, txid, timeout)

    def market_info(self, merchant: str) -> dict[str, Any] | None:
        return self._run(self.client.market_info, merchant)

    def market_history(self, merchant: str, *, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        async def go() -> list[dict[str, Any]]:
            return await self.client.market_history(merchant, limit=limit, before=before)
        return self._run(go)

    def reports(self, merchant: str, *, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        async def go() -> list[dict[str, Any]]:
            return await self.client.reports(merchant, limit=limit, before=before)
        return self._run(go)

    def next_events(
        self, count: int, kinds: Iterable[str] = EVENT_KINDS, *, timeout: float = 30.0
    ) -> list[Event]:
        """Subscribe, collect ``count`` events (or as many as arrive within ``timeout``)."""
        kinds = list(kinds)

        async def go() -> list[Event]:
            out: list[Event] = []
            with trio.move_on_after(timeout):
                async with self.client.subscribe(kinds) as events:
                    async for ev in events:
                        out.append(ev)
                        if len(out) >= count:
                            break
            return out
        return self._run(go)

    def close(self) -> None:
        """Disconnect and stop the worker thread (idempotent)."""
        if self._token is not None and self._stop is not None and self._thread.is_alive():
            try:
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(10)
        self._client = None

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(addr: str, key: PrivateKey | None = None, *, connect_timeout: float = 10.0) -> SyncClient:
    """Blocking connect; see :class:`SyncClient`."""
    return SyncClient(addr, key, connect_timeout=connect_timeout)
