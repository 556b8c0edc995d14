"""Pipelined RPC requests on one stream, against a real in-process py-libp2p node: answers
come back in request order, and the server coalesces them into few writes (each write costs
a Yamux frame, a Noise encryption and a syscall)."""

from __future__ import annotations

import pytest
import trio
from fakenode import CHAIN, FakeNode, dev_key

from p2pmkt.net import Net
from p2pmkt.net.rpc_stream import RPC_PROTOCOL
from p2pmkt.net.stream import FramedStream
from p2pmkt.wire.cbor import decode, encode
from p2pmkt.wire.framing import frame


async def test_pipelined_answers_come_in_order_and_in_few_writes(
    node: tuple[Net, FakeNode], dialer: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    original = FramedStream.write_frames

    async def counting(self: FramedStream, payloads: list[bytes]) -> None:
        batches.append(len(payloads))
        await original(self, payloads)

    monkeypatch.setattr(FramedStream, "write_frames", counting)
    peer = await dialer.connect(node[0].addrs()[0])
    fs = await dialer.open_stream(peer, RPC_PROTOCOL)
    n = 30  # under the fixture's burst of 40: none is rate limited
    await fs.write_raw(b"".join(
        frame(encode({"id": i, "method": "chain.head", "params": {}})) for i in range(1, n + 1)))
    ids = []
    with trio.fail_after(10):
        for _ in range(n):
            payload = await fs.read_frame()
            assert payload is not None
            answer = decode(payload)
            assert "result" in answer
            ids.append(answer["id"])
    assert ids == list(range(1, n + 1))
    assert sum(batches) == n
    assert len(batches) < n  # coalesced: one write per burst, not per answer


async def test_submit_batch_over_a_real_stream_answers_each_transaction(
    node: tuple[Net, FakeNode], dialer: Net
) -> None:
    from p2pmkt.chain.tx import make_tx
    from p2pmkt.client import RpcError, open_client
    from p2pmkt.rpc.protocol import ErrorCode

    key = dev_key("n1")
    good = [make_tx(key, CHAIN, i, "visit.batch", {"i": i}) for i in range(5)]
    with trio.fail_after(10):
        async with open_client(node[0].addrs()[0]) as c:
            results = await c.submit_txs([good[0], b"\x01not a tx", *good[1:]])
    assert results[0] == good[0].txid and results[2:] == [t.txid for t in good[1:]]
    assert isinstance(results[1], RpcError) and results[1].code == ErrorCode.INVALID_TX
    assert all(t.txid in node[1].pending or t.txid in node[1].committed for t in good)


async def test_a_batch_from_an_anonymous_peer_costs_one_request_per_transaction(
    node: tuple[Net, FakeNode], dialer: Net
) -> None:
    from p2pmkt.chain.tx import make_tx
    from p2pmkt.rpc.protocol import ErrorCode

    # The fixture allows a burst of 40 requests, refilled at 10/s. A batch of 35 spends 35;
    # requests right after it find about 5 tokens left, not 39.
    key = dev_key("n2")
    txs = [make_tx(key, CHAIN, i, "visit.batch", {"i": i}).encode() for i in range(35)]
    peer = await dialer.connect(node[0].addrs()[0])
    fs = await dialer.open_stream(peer, RPC_PROTOCOL)
    await fs.write_frame(encode({"id": 0, "method": "tx.submit_batch", "params": {"txs": txs}}))
    await fs.write_raw(b"".join(
        frame(encode({"id": i, "method": "chain.head", "params": {}})) for i in range(1, 21)))
    codes = []
    with trio.fail_after(10):
        first = decode(await fs.read_frame() or b"")
        assert first["id"] == 0 and len(first["result"]["results"]) == 35
        for _ in range(20):
            answer = decode(await fs.read_frame() or b"")
            codes.append(answer["error"]["code"] if "error" in answer else 0)
    assert codes.count(ErrorCode.RATE_LIMITED) >= 12  # ~5 tokens + refill, not 20 answers


async def test_a_members_batch_counts_as_one_request(node: tuple[Net, FakeNode]) -> None:
    from p2pmkt.chain.tx import make_tx
    from p2pmkt.net import NetConfig, open_net

    key = dev_key("n3")
    txs = [make_tx(key, CHAIN, i, "visit.batch", {"i": i}).encode() for i in range(35)]
    config = NetConfig(chain_id=CHAIN, listen=(), gossip=None, discovery=False)
    async with open_net(dev_key("member"), config) as member:  # "member" is in the allowlist
        peer = await member.connect(node[0].addrs()[0])
        fs = await member.open_stream(peer, RPC_PROTOCOL)
        await fs.write_frame(encode({"id": 0, "method": "tx.submit_batch", "params": {"txs": txs}}))
        await fs.write_raw(b"".join(
            frame(encode({"id": i, "method": "chain.head", "params": {}})) for i in range(1, 21)))
        with trio.fail_after(10):
            answers = [decode(await fs.read_frame() or b"") for _ in range(21)]
    assert len(answers[0]["result"]["results"]) == 35
    assert all("result" in a for a in answers[1:])  # 21 requests of a burst of 40: none refused
