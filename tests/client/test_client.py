"""The public client API against a real in-process node: async and blocking forms."""

from __future__ import annotations

import pytest
import trio
from fakenode import CHAIN, FakeNode, dev_key

import p2pmkt.client as client_api
from p2pmkt.client import Client, DialFailed, ErrorCode, RpcError, make_tx, open_client
from p2pmkt.net import Net


def test_public_surface() -> None:
    assert sorted(client_api.__all__) == sorted(
        ["Client", "DialFailed", "ErrorCode", "Event", "Head", "NetworkError", "NodeInfo",
         "ProtocolRefused", "RpcError", "SignedTransaction", "StreamClosed", "SyncClient",
         "Transaction", "TxStatus", "connect", "make_tx", "open_client"])


async def test_round_trips_and_events(node: tuple[Net, FakeNode]) -> None:
    net, _fake = node
    key = dev_key("dave")
    with trio.fail_after(15):
        async with open_client(net.addrs()[0]) as c:
            assert (await c.info()).peer_id == net.peer_id == c.node_peer_id
            assert await c.tx(b"\x00" * 32) is None
            assert await c.block(99) is None
            assert await c.market_info("nobody") is None
            assert [v["seq"] for v in await c.market_history("acme", limit=1)] == [2]
            async with c.subscribe(["block"]) as events:
                stx = make_tx(key, CHAIN, 0, "visit.batch", {"x": 1})
                txid = await c.submit_tx(stx)
                ev = await events.receive()
                assert ev.kind == "block" and ev.data["height"] >= 1
            st = await c.wait_tx_committed(txid, timeout=10)
            assert st.status == "committed" and st.height is not None
            block = await c.block(st.height)
            assert block is not None and txid in [t.txid for t in block.txs]
            try:
                await c.submit_tx(make_tx(key, "wrong-chain", 1, "k", {}))
            except RpcError as exc:
                assert exc.code == ErrorCode.INVALID_TX and exc.error_reason == "wrong_chain"
            else:
                raise AssertionError("a transaction for another chain was accepted")
            heights: list[int] = []

            async def one() -> None:
                heights.append((await c.head()).height)

            async with trio.open_nursery() as n:  # concurrent calls pipeline on one stream
                for _ in range(20):
                    n.start_soon(one)
            assert len(heights) == 20 and min(heights) >= 1


async def test_an_exception_raised_inside_open_client_reaches_the_caller_as_itself(
    node: tuple[Net, FakeNode],
) -> None:
    # Closing the stream once raised Cancelled in the client's cancelled nursery, which
    # replaced the caller's exception and was then absorbed: a timeout inside vanished. And
    # what got out came wrapped in two levels of the client's nursery exception groups.
    net, _fake = node
    with pytest.raises(trio.TooSlowError):
        async with open_client(net.addrs()[0]) as c:
            await c.head()
            with trio.fail_after(0.05):
                await trio.sleep_forever()
    with pytest.raises(KeyError, match="mine"):
        async with open_client(net.addrs()[0]) as c:
            await c.head()
            raise KeyError("mine")


async def test_an_unreachable_node_raises_dial_failed(node: tuple[Net, FakeNode]) -> None:
    net, _fake = node
    dead = net.addrs()[0].replace(f"/tcp/{net.addrs()[0].split('/tcp/')[1].split('/')[0]}/", "/tcp/1/")
    with trio.fail_after(20), pytest.raises(DialFailed):
        async with open_client(dead):
            raise AssertionError("connected to a closed port")


async def test_sync_wrapper(node: tuple[Net, FakeNode]) -> None:
    net, _fake = node
    addr = net.addrs()[0]

    def script() -> tuple[int, str]:
        with Client.sync(addr) as c:
            stx = make_tx(dev_key("erin"), CHAIN, 0, "visit.batch", {})
            txid = c.submit_tx(stx)
            st = c.wait_tx_committed(txid, timeout=10)
            return c.head().height, st.status

    with trio.fail_after(20):
        height, status = await trio.to_thread.run_sync(script)
    assert height >= 1 and status == "committed"
