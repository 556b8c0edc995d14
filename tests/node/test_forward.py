"""Forwarding submitted transactions (``p2pmkt.node.node._forward_submitted``): what is gossiped.

A follower hands the transactions its clients submit to the leader, the leader hands its own
clients' to one follower (its backup), and each gossips only what was not pooled: refused
ones, and whole batches whose call failed. A new leader is sent the follower's pool first (the
old leader may have died with them uncommitted); a node that becomes leader hands what still
waited to its backup, or gossips it when it has none. The rpc, driver and membership are
fakes here; the multi-process paths (a leader frozen with transactions in flight, a leader
killed with its own clients' transactions pooled) are in ``tests/chaos``.
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


def no_backup() -> None:
    return None


def start_forwarder(
    nursery: trio.Nursery, driver: FakeDriver, recv: trio.MemoryReceiveChannel[bytes],
    gossip: Any, *, pooled: Any = list, backup: Any = no_backup,
) -> None:
    """Run the forwarder under test (fake net and membership) in ``nursery``."""
    nursery.start_soon(node_mod._forward_submitted, None, driver, Members(), recv, gossip, pooled, backup)


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
        start_forwarder(nursery, driver, recv, gossiped.append)
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
        start_forwarder(nursery, FakeDriver("A"), recv, gossiped.append)
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
        start_forwarder(nursery, driver, recv, [].append, pooled=lambda: pool)
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


async def test_a_node_that_becomes_leader_gossips_what_waited_when_it_has_no_backup(
    calls: Calls,
) -> None:
    send, recv = trio.open_memory_channel[bytes](100)
    gossiped: list[bytes] = []
    driver = FakeDriver(None)
    async with trio.open_nursery() as nursery:
        start_forwarder(nursery, driver, recv, gossiped.append)
        send.send_nowait(b"w1")
        send.send_nowait(b"w2")
        await trio.testing.wait_all_tasks_blocked()
        assert gossiped == [] and calls == []  # no leader yet: they wait
        driver.change("me", term=2, is_leader=True)
        await settled()
        assert gossiped == [b"w1", b"w2"], "the waiting ones gossiped"
        nursery.cancel_scope.cancel()
    assert calls == []


async def test_the_leader_hands_its_clients_transactions_to_its_backup_not_its_pool(
    calls: Calls,
) -> None:
    send, recv = trio.open_memory_channel[bytes](100)
    gossiped: list[bytes] = []
    driver = FakeDriver(None)
    async with trio.open_nursery() as nursery:
        start_forwarder(nursery, driver, recv, gossiped.append, pooled=lambda: [Pooled(b"p1")],
                        backup=lambda: "F")
        send.send_nowait(b"w1")
        await trio.testing.wait_all_tasks_blocked()
        driver.change("me", term=2, is_leader=True)
        await settled()
        assert calls == [("peer-F", [b"w1"])], "what waited goes to the backup; the pool does not"
        send.send_nowait(b"t1")
        send.send_nowait(b"bad1")
        await settled()
        assert calls[1:] == [("peer-F", [b"t1", b"bad1"])]
        assert gossiped == [b"bad1"], "only what the backup refused is gossiped"
        # Leadership lost: the same node forwards to the new leader, its pool first.
        driver.change("B", term=3)
        await settled()
        assert calls[2:] == [("peer-B", [b"p1"])]
        nursery.cancel_scope.cancel()


async def test_a_leader_whose_backup_fails_gossips_and_finds_another(
    calls: Calls, autojump_clock: trio.testing.MockClock,
) -> None:
    calls.failing.add("peer-F")
    send, recv = trio.open_memory_channel[bytes](100)
    gossiped: list[bytes] = []
    backup = ["F"]
    async with trio.open_nursery() as nursery:
        start_forwarder(nursery, FakeDriver("me", is_leader=True), recv, gossiped.append,
                        backup=lambda: backup[0])
        send.send_nowait(b"t1")
        await settled()
        assert gossiped == [b"t1"], "the failed batch gossiped"
        backup[0] = "G"  # F is gone; the next look finds G
        await trio.sleep(1)
        send.send_nowait(b"t2")
        await settled()
        assert calls[-1] == ("peer-G", [b"t2"])
        nursery.cancel_scope.cancel()


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
        start_forwarder(nursery, driver, recv, [].append, pooled=lambda: [Pooled(b"p1")])
        send.send_nowait(b"t1")
        await settled()
        assert calls == []
        driver.change("B", term=2)
        await settled()
        assert calls == [("peer-B", [b"p1"]), ("peer-B", [b"t1"])]
        nursery.cancel_scope.cancel()


async def test_batches_are_bounded_by_bytes_and_a_carried_transaction_is_not_lost(
    calls: Calls,
) -> None:
    big = node_mod.FORWARD_BATCH_BYTES // 3 + 1  # three of them overflow one batch
    txs = [bytes([i]) * big for i in range(7)]
    send, recv = trio.open_memory_channel[bytes](100)
    for t in txs:
        send.send_nowait(t)
    gossiped: list[bytes] = []
    async with trio.open_nursery() as nursery:
        start_forwarder(nursery, FakeDriver("A"), recv, gossiped.append)
        await settled()
        nursery.cancel_scope.cancel()
    sent = [batch for _, batch in calls]
    assert [t for batch in sent for t in batch] == txs, "all of them, once, in order"
    assert all(sum(map(len, b)) <= node_mod.FORWARD_BATCH_BYTES for b in sent)
    assert [len(b) for b in sent] == [2, 2, 2, 1]
    assert gossiped == []


def test_a_resent_pool_is_cut_by_bytes_too() -> None:
    big = node_mod.FORWARD_BATCH_BYTES // 2
    assert node_mod._batch_length([b"x" * big] * 5) == 2
    assert node_mod._batch_length([b"x" * (2 * big + 1)] * 3) == 1  # one alone, however large
    assert node_mod._batch_length([b"x"] * 3) == 3
    assert node_mod._batch_length([b"x"] * (node_mod.FORWARD_BATCH + 5)) == node_mod.FORWARD_BATCH


async def test_a_call_that_never_answers_is_given_up_and_its_batch_gossiped(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock,
) -> None:
    """A frozen backup: the leader's forwarding is never cancelled by a leader change."""
    class Hanging:
        async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
            await trio.sleep_forever()
            raise AssertionError

    @asynccontextmanager
    async def open_rpc_stream(net: Any, peer: str) -> AsyncIterator[Hanging]:
        yield Hanging()

    import p2pmkt.net.rpc_stream as rpc_stream
    monkeypatch.setattr(rpc_stream, "open_rpc_stream", open_rpc_stream)
    send, recv = trio.open_memory_channel[bytes](10)
    gossiped: list[bytes] = []
    async with trio.open_nursery() as nursery:
        start_forwarder(nursery, FakeDriver("me", is_leader=True), recv, gossiped.append,
                        backup=lambda: "F")
        send.send_nowait(b"t1")
        await trio.sleep(node_mod.FORWARD_CALL_TIMEOUT + 1)
        assert gossiped == [b"t1"]
        nursery.cancel_scope.cancel()

