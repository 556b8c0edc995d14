"""Hostile input on every protocol, against a real in-process py-libp2p node.

Each case must get an error answer or a clean close, and the node must keep serving others
(checked with a fresh client after each case).
"""

from __future__ import annotations

import trio
from fakenode import CHAIN, FakeNode, dev_key

from p2pmkt.client import ErrorCode, open_client
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.net import Members, Net, NetConfig, NetworkError, open_net, open_raft_transport
from p2pmkt.net.discovery import PEX_PROTOCOL
from p2pmkt.net.raft_transport import RAFT_PROTOCOL
from p2pmkt.net.rpc_stream import RPC_PROTOCOL
from p2pmkt.net.stream import FramedStream
from p2pmkt.net.sync import SYNC_PROTOCOL
from p2pmkt.types import NodeId
from p2pmkt.wire.cbor import decode, encode
from p2pmkt.wire.framing import encode_uvarint, frame

NodeFixture = tuple[Net, FakeNode]


async def rpc_stream(dialer: Net, node: Net, protocol: str = RPC_PROTOCOL) -> FramedStream:
    peer = await dialer.connect(node.addrs()[0])
    return await dialer.open_stream(peer, protocol)


async def read_answer(fs: FramedStream) -> dict[str, object]:
    with trio.fail_after(5):
        payload = await fs.read_frame()
    assert payload is not None
    value: dict[str, object] = decode(payload)
    return value


async def assert_closed(fs: FramedStream) -> None:
    with trio.fail_after(5):
        try:
            assert await fs.read_frame() is None
        except NetworkError:
            pass


async def still_serving(node: Net) -> None:
    with trio.fail_after(10):
        async with open_client(node.addrs()[0]) as c:
            assert (await c.info()).chain == CHAIN


async def test_oversized_length_prefix(node: NodeFixture, dialer: Net) -> None:
    fs = await rpc_stream(dialer, node[0])
    await fs.write_raw(encode_uvarint(100 * 1024 * 1024))
    ans = await read_answer(fs)
    assert ans["id"] is None
    assert ans["error"] == {"code": ErrorCode.FRAME_TOO_LARGE,
                            "message": "frame of 104857600 bytes exceeds the limit of 65536 bytes",
                            "data": {"reason": "framing"}}
    await assert_closed(fs)
    await still_serving(node[0])


async def test_overlong_and_non_minimal_varint(node: NodeFixture, dialer: Net) -> None:
    for raw in (b"\xff" * 10, b"\x80\x00"):
        fs = await rpc_stream(dialer, node[0])
        await fs.write_raw(raw)
        ans = await read_answer(fs)
        assert ans["id"] is None
        assert isinstance(ans["error"], dict) and ans["error"]["code"] == ErrorCode.PARSE_ERROR
        await assert_closed(fs)
    await still_serving(node[0])


async def test_truncated_frame_then_eof(node: NodeFixture, dialer: Net) -> None:
    fs = await rpc_stream(dialer, node[0])
    await fs.write_raw(encode_uvarint(100) + b"x" * 10)
    await fs.close()
    await assert_closed(fs)
    await still_serving(node[0])


async def test_bad_cbor_and_non_map(node: NodeFixture, dialer: Net) -> None:
    for payload in (b"\xff\xfe\xfd", encode([1, 2, 3])):
        fs = await rpc_stream(dialer, node[0])
        await fs.write_frame(payload)
        ans = await read_answer(fs)
        assert ans["id"] is None
        assert isinstance(ans["error"], dict) and ans["error"]["code"] == ErrorCode.PARSE_ERROR
        await assert_closed(fs)
    await still_serving(node[0])


async def test_unknown_method_and_wrong_params_keep_stream(node: NodeFixture, dialer: Net) -> None:
    fs = await rpc_stream(dialer, node[0])
    await fs.write_frame(encode({"id": 1, "method": "wallet.drain", "params": {}}))
    ans = await read_answer(fs)
    assert ans["id"] == 1 and isinstance(ans["error"], dict)
    assert ans["error"]["code"] == ErrorCode.METHOD_NOT_FOUND
    await fs.write_frame(encode({"id": 2, "method": "chain.block", "params": {"height": "one"}}))
    ans = await read_answer(fs)
    assert ans["id"] == 2 and isinstance(ans["error"], dict)
    assert ans["error"]["code"] == ErrorCode.INVALID_PARAMS
    await fs.write_frame(encode({"id": 3, "method": "tx.submit", "params": {"tx": b"\x01\x02"}}))
    ans = await read_answer(fs)
    assert isinstance(ans["error"], dict) and ans["error"]["code"] == ErrorCode.INVALID_TX
    await fs.write_frame(encode({"id": 4, "method": "chain.head", "params": {}}))
    ans = await read_answer(fs)
    assert ans["id"] == 4 and isinstance(ans["result"], dict) and "height" in ans["result"]


async def test_rate_limit(node: NodeFixture, dialer: Net) -> None:
    fs = await rpc_stream(dialer, node[0])
    req = frame(encode({"id": 9, "method": "chain.head", "params": {}}))
    await fs.write_raw(req * 100)  # burst is 40
    codes = []
    for _ in range(100):
        ans = await read_answer(fs)
        codes.append(ans["error"]["code"] if isinstance(ans.get("error"), dict) else 0)
    assert codes.count(ErrorCode.RATE_LIMITED) >= 20
    assert codes[:40] == [0] * 40


async def test_too_many_streams(node: NodeFixture, dialer: Net) -> None:
    streams = [await rpc_stream(dialer, node[0]) for _ in range(3)]
    for i, fs in enumerate(streams):  # make sure all three are being served
        await fs.write_frame(encode({"id": i, "method": "chain.head", "params": {}}))
        assert "result" in await read_answer(fs)
    extra = await rpc_stream(dialer, node[0])
    ans = await read_answer(extra)
    assert isinstance(ans["error"], dict) and ans["error"]["code"] == ErrorCode.TOO_MANY_STREAMS
    await assert_closed(extra)
    await still_serving(node[0])


async def test_sync_hostile(node: NodeFixture, dialer: Net) -> None:
    # the dialer is not a member: sync is members-only
    fs = await rpc_stream(dialer, node[0], SYNC_PROTOCOL)
    try:
        await fs.write_frame(encode({"from": 1, "to": 2}))
    except NetworkError:
        pass  # already reset by the node
    await assert_closed(fs)
    async with open_net(dev_key("member"), NetConfig(listen=(), gossip=None, discovery=False)) as member:
        for bad in (b"\xff", encode({"from": 0, "to": 10_000}), encode({"from": "a", "to": 1})):
            fs = await rpc_stream(member, node[0], SYNC_PROTOCOL)
            await fs.write_frame(bad)
            ans = await read_answer(fs)
            assert isinstance(ans.get("error"), str)
        fs = await rpc_stream(member, node[0], SYNC_PROTOCOL)
        await fs.write_raw(encode_uvarint(1 << 20))
        await assert_closed(fs)
    await still_serving(node[0])


async def test_pex_hostile(node: NodeFixture, dialer: Net) -> None:
    async with open_net(dev_key("member"), NetConfig(listen=(), gossip=None, discovery=False)) as member:
        fs = await rpc_stream(member, node[0], PEX_PROTOCOL)
        await fs.write_frame(b"\xff\x00")
        await assert_closed(fs)
        fs = await rpc_stream(member, node[0], PEX_PROTOCOL)
        await fs.write_frame(encode({"addrs": ["not a multiaddr"] * 3}))
        ans = await read_answer(fs)
        peers = ans["peers"]
        assert isinstance(peers, list) and peers[0]["id"] == node[0].peer_id
    await still_serving(node[0])


async def test_raft_outsider_refused_member_answered(node: NodeFixture) -> None:
    net, _fake = node
    outsider_key = PrivateKey.from_seed("outsider")
    cfg = NetConfig(listen=(), gossip=None, discovery=False)
    async with open_net(outsider_key, cfg) as outsider:
        fs = await rpc_stream(outsider, net, RAFT_PROTOCOL)
        try:
            await fs.write_frame(b"ping:1")
        except NetworkError:
            pass  # already reset by the node
        await assert_closed(fs)
    members = Members([dev_key("n0").public_key.compressed, dev_key("member").public_key.compressed])
    async with open_net(dev_key("member"), cfg, members=members) as member, \
            open_raft_transport(member) as raft:
        await member.connect(net.addrs()[0])
        n0 = NodeId("0x" + dev_key("n0").address.hex())
        with trio.fail_after(10):
            await raft.send(n0, b"ping:42")
            sender, data = await raft.incoming.receive()
        assert (sender, data) == (n0, b"pong:42")
        await raft.send(NodeId("0x" + "00" * 20), b"to nobody")  # unknown: dropped, no error
        assert raft.statistics().dropped_send == 1
