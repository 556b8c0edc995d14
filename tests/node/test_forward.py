"""Forwarding to the leader (``p2pmkt.node.node._forward_to_leader``): what a follower gossips.

A follower hands the transactions its clients submit to the leader and gossips only what the
leader did not pool: refused ones, and whole batches whose call failed. A new leader is sent
the follower's pool first (the old leader may have died with them uncommitted); a node that
becomes leader gossips what still waited to be forwarded. The rpc, driver and membership are
fakes here; the multi-process path (a leader frozen with transactions in flight) is in
``tests/chaos``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from p2pmkt.errors import Busy
from p2pmkt.node import node as node_mod


class FakeRpc:
    """Pools every transaction whose bytes do not start with b"bad"."""

    def __init__(self, peer: str, calls: Calls, fail: bool = False) -> None:
        self.peer, self.calls, self.fail = peer, calls, fail

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert method == "tx.submit_batch" and params["relay"] is False
        self.calls.append((self.peer, list(params["txs"])))
        if self.fail:
            raise trio.BrokenResourceError("stream closed")
        return {"results": [
            {"code": 4, "reason": "bad", "message": "no"} if t.startswith(b"bad") else {"txid": b"i" * 32}
            for t in params["txs"]
        ]}


class FakeDriver:
    def __init__(self, leader: str | None, term: int = 1, *, is_leader: bool = False) -> None:
        self.leader, self.term, self.is_leader = leader, term, is_leader
        self._changed = trio.Event()

    async def wait_leader_change(self) -> None:
        await self._changed.wait()

    def change(self, leader: str | None, term: int, *, is_leader: bool = False) -> None:
        self.leader, self.term, self.is_leader = leader, term, is_leader
        self._changed.set()
        self._changed = trio.Event()


class Members:
    def peer_of(self, leader: str) -> str:
        return f"peer-{leader}"


class Pooled:
    def __init__(self, *data: bytes) -> None:
        self.data = data

    def encode(self) -> bytes:
        return self.data[0]


async def settled() -> None:
    """Return once the forwarder waits again (for a transaction, a leader change or a retry)."""
    with trio.fail_after(5):
        await trio.testing.wait_all_tasks_blocked()


class Calls(list[tuple[str, list[bytes]]]):
    """Every forwarding call as (peer, transactions); calls to peers in ``failing`` break."""

    failing: set[str]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    out = Calls()
    out.failing = set()

    @asynccontextmanager
    async def open_rpc_stream(net: Any, peer: str) -> AsyncIterator[FakeRpc]:
        yield FakeRpc(peer, out, fail=peer in out.failing)

    import p2pmkt.net.rpc_stream as rpc_stream
    monkeypatch.setattr(rpc_stream, "open_rpc_stream", open_rpc_stream)
    return out


async def test_only_what_the_leader_refuses_is_gossiped(calls: Calls) -> None:
    send, recv = trio.open_memory_channel[bytes](100)
    gossiped: list[bytes] = []
    driver = FakeDriver("A")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node_mod._forward_to_leader, None, driver, Members(), recv,
                           gossiped.append, list)
        for t in (b"good1", b"bad1", b"good2"):
            send.send_nowait(t)
        await settled()
        assert sum(len(b) for _, b in calls) == 3, "all three forwarded"
        nursery.cancel_scope.cancel()
    assert [t for _, batch in calls for t in batch] == [b"good1", b"bad1", b"good2"]
    assert {p for p, _ in calls} == {"peer-A"}
    assert gossiped == [b"bad1"]


async def test_a_batch_whose_call_fails_is_gossiped_whole(calls: Calls) -> None:
    calls.failing.add("peer-A")
    send, recv = trio.open_memory_channel[bytes](100)
    gossiped: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node_mod._forward_to_leader, None, FakeDriver("A"), Members(), recv,
                           gossiped.append, list)
        send.send_nowait(b"good1")
        await settled()
        assert gossiped == [b"good1"], "the failed batch gossiped"
        nursery.cancel_scope.cancel()


async def test_a_new_leader_gets_the_pool_first_and_a_reconnect_does_not_resend_it(
    calls: Calls,
) -> None:
    send, recv = trio.open_memory_channel[bytes](100)
    pool = [Pooled(b"p1"), Pooled(b"p2")]
    driver = FakeDriver("A", term=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node_mod._forward_to_leader, None, driver, Members(), recv,
                           [].append, lambda: pool)
        await settled()
        assert len(calls) == 1, "the pool sent to A"
        assert calls[0] == ("peer-A", [b"p1", b"p2"])
        send.send_nowait(b"t1")
        await settled()
        assert len(calls) == 2, "t1 forwarded"
        assert calls[1] == ("peer-A", [b"t1"])
        driver.change("B", term=2)
        await settled()
        assert len(calls) == 3, "the pool sent to B"
        assert calls[2] == ("peer-B", [b"p1", b"p2"])
        driver.change("B", term=3)  # same leader, new term: it may have restarted poolless
        await settled()
        assert len(calls) == 4, "the pool sent again"
        assert calls[3] == ("peer-B", [b"p1", b"p2"])
        nursery.cancel_scope.cancel()


async def test_a_node_that_becomes_leader_gossips_what_waited_to_be_forwarded(
    calls: Calls,
) -> None:
    send, recv = trio.open_memory_channel[bytes](100)
    gossiped: list[bytes] = []
    driver = FakeDriver(None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node_mod._forward_to_leader, None, driver, Members(), recv,
                           gossiped.append, list)
        send.send_nowait(b"w1")
        send.send_nowait(b"w2")
        await trio.testing.wait_all_tasks_blocked()
        assert gossiped == [] and calls == []  # no leader yet: they wait
        driver.change("me", term=2, is_leader=True)
        await settled()
        assert gossiped == [b"w1", b"w2"], "the waiting ones gossiped"
        nursery.cancel_scope.cancel()
    assert calls == []


async def test_a_refused_batch_is_gossiped() -> None:
    class Refusing:
        async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
            raise Busy("rate limited")

    send, recv = trio.open_memory_channel[bytes](10)
    gossiped: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node_mod._forward, Refusing(), recv, gossiped.append)
        send.send_nowait(b"x")
        await settled()
        assert gossiped == [b"x"], "gossiped"
        nursery.cancel_scope.cancel()


async def test_a_dial_to_a_frozen_leader_is_abandoned_when_the_leader_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A frozen leader never answers the stream's protocol negotiation: the forwarder must not
    wait for it past the next leader change."""
    calls = Calls()

    @asynccontextmanager
    async def open_rpc_stream(net: Any, peer: str) -> AsyncIterator[FakeRpc]:
        if peer == "peer-A":
            await trio.sleep_forever()  # frozen
        yield FakeRpc(peer, calls)

    import p2pmkt.net.rpc_stream as rpc_stream
    monkeypatch.setattr(rpc_stream, "open_rpc_stream", open_rpc_stream)
    send, recv = trio.open_memory_channel[bytes](10)
    driver = FakeDriver("A")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node_mod._forward_to_leader, None, driver, Members(), recv,
                           [].append, lambda: [Pooled(b"p1")])
        send.send_nowait(b"t1")
        await settled()
        assert calls == []
        driver.change("B", term=2)
        await settled()
        assert calls == [("peer-B", [b"p1"]), ("peer-B", [b"t1"])]
        nursery.cancel_scope.cancel()
