"""One IP address holds at most ``clients_per_ip`` connections to a node when they are not
members' (real py-libp2p hosts on 127.0.0.1); members are never counted. A peer id costs
nothing, so per-peer limits alone let one machine take every connection slot."""

from __future__ import annotations

from contextlib import AsyncExitStack

import trio

from p2pmkt.crypto import PrivateKey
from p2pmkt.net import NetConfig, open_net
from p2pmkt.net.inbound import ClientConnections
from p2pmkt.net.members import Members

CLIENT = NetConfig(listen=(), gossip=None, discovery=False)


def test_the_count_per_address_admits_up_to_the_limit_and_forgets_closed_ones() -> None:
    c = ClientConnections(per_ip=2)
    assert c.admit("10.0.0.1", member=False) and c.admit("10.0.0.1", member=False)
    assert not c.admit("10.0.0.1", member=False)  # a third at once
    assert c.admit("10.0.0.2", member=False)  # another address has its own count
    assert c.admit("10.0.0.1", member=True)  # members are not counted
    c.release("10.0.0.1", member=False)
    assert c.open_from("10.0.0.1") == 1 and c.admit("10.0.0.1", member=False)
    assert ClientConnections(per_ip=0).admit("10.0.0.1", member=False)  # 0: no limit


ECHO = "/p2pmkt-test/echo/1"


async def _echo(stream) -> None:
    frame = await stream.read_frame()
    if frame is not None:
        await stream.write_frame(frame)


async def _answered(server, clients) -> list[bool]:
    """Which clients' connections carry a round trip to the server (a closed one cannot)."""
    out = []
    for c in clients:
        try:
            with trio.fail_after(5):
                s = await c.open_stream(server.peer_id, ECHO)
                await s.write_frame(b"ping")
                out.append(await s.read_frame() == b"ping")
        except Exception:
            out.append(False)
    return out


async def test_a_connection_beyond_the_limit_of_its_address_is_closed_and_counted() -> None:
    refused: list[str] = []
    config = NetConfig(gossip=None, discovery=False, clients_per_ip=2)
    async with open_net(config=config, on_inbound_refused=refused.append) as server, AsyncExitStack() as stack:
        server.handle(ECHO, _echo)
        clients = [await stack.enter_async_context(open_net(config=CLIENT)) for _ in range(3)]
        for c in clients[:2]:
            await c.connect(server.addrs()[0])
        with trio.fail_after(10):
            try:
                await clients[2].connect(server.addrs()[0])
            except Exception:
                pass  # closed during or right after its handshake: either is a refusal
            while clients[2].is_connected(server.peer_id):  # noqa: ASYNC110 - remote state
                await trio.sleep(0.02)
        assert refused == ["127.0.0.1"]
        assert await _answered(server, clients[:2]) == [True, True]
        # A slot frees when one closes: the next connection from the address is taken.
        await stack.aclose()
    async with open_net(config=config, on_inbound_refused=refused.append) as server:
        server.handle(ECHO, _echo)
        async with open_net(config=CLIENT) as a, open_net(config=CLIENT) as b:
            await a.connect(server.addrs()[0])
            async with open_net(config=CLIENT) as gone:
                await gone.connect(server.addrs()[0])
            with trio.fail_after(10):
                while len(server.connected_peers()) != 1:  # noqa: ASYNC110 - remote state
                    await trio.sleep(0.02)
            await b.connect(server.addrs()[0])
            assert await _answered(server, [a, b]) == [True, True]


async def test_members_are_not_counted() -> None:
    keys = [PrivateKey.generate() for _ in range(3)]
    members = Members([k.public_key.compressed for k in keys])
    config = NetConfig(gossip=None, discovery=False, clients_per_ip=1)
    refused: list[str] = []
    async with open_net(config=config, members=members, on_inbound_refused=refused.append) as server, \
            AsyncExitStack() as stack:
        server.handle(ECHO, _echo)
        nodes = [await stack.enter_async_context(open_net(k, CLIENT)) for k in keys]
        for n in nodes:
            await n.connect(server.addrs()[0])
        assert await _answered(server, nodes) == [True, True, True]
        assert refused == []


def test_a_nodes_limits_come_from_its_config() -> None:
    """[limits] reaches the RPC server and the host (the rate and stream settings used to be
    read from the file and then ignored)."""
    from p2pmkt.config import Limits
    from p2pmkt.node.node import rpc_limits

    got = rpc_limits(Limits(rpc_max_frame=1 << 20, rpc_requests_per_second=50, rpc_streams_per_peer=3))
    assert (got.max_frame, got.rate, got.burst, got.max_streams_per_peer) == (1 << 20, 50.0, 100.0, 3)
    default = rpc_limits(Limits())
    assert (default.rate, default.burst, default.max_streams_per_peer) == (500.0, 1000.0, 8)  # PROTOCOL.md
