"""A node keeps accepting connections however many it has accepted before (real py-libp2p
hosts): an inbound connection holds one of the swarm's inbound slots only while it is open.

py-libp2p 0.8.1 held each slot until the host stopped, so a node refused every connection
after its 300th (see ``p2pmkt.net.host._free_inbound_slot_on_close``). The cap is lowered to 2
here so the test needs a handful of connections, not 301.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from p2pmkt.net import Net, NetConfig, open_net
from p2pmkt.net.errors import DialFailed

CLIENT = NetConfig(listen=(), gossip=None, discovery=False)


@asynccontextmanager
async def server_capped_at(inbound: int) -> AsyncIterator[tuple[Net, Any]]:
    """A listening host whose swarm takes at most ``inbound`` inbound connections at once;
    yields it and its swarm."""
    async with open_net(config=NetConfig(gossip=None, discovery=False)) as server:
        swarm = server._host.get_network()
        swarm._inbound_limiter = trio.CapacityLimiter(inbound)
        yield server, swarm


async def test_connections_beyond_the_inbound_cap_are_accepted_one_after_another() -> None:
    async with server_capped_at(2) as (server, swarm):
        addr = server.addrs()[0]
        with trio.fail_after(30):
            for _ in range(6):  # three times the cap, each closed before the next
                async with open_net(config=CLIENT) as client:
                    assert await client.connect(addr) == server.peer_id
                    assert client.is_connected(server.peer_id)
            # Every slot comes back once the server has seen its connections close.
            while swarm._inbound_limiter.borrowed_tokens:  # noqa: ASYNC110 - library state
                await trio.sleep(0.01)  # polling the server's view, with the deadline above


async def test_the_cap_still_bounds_connections_open_at_once() -> None:
    async with server_capped_at(1) as (server, _swarm):
        addr = server.addrs()[0]
        with trio.fail_after(30):
            async with open_net(config=CLIENT) as first, open_net(config=CLIENT) as second:
                await first.connect(addr)
                try:
                    await second.connect(addr)
                except DialFailed:
                    pass
                else:  # the dialer may finish its side of the upgrade before the server drops it
                    while second.is_connected(server.peer_id):  # noqa: ASYNC110 - remote state
                        await trio.sleep(0.01)  # polling, with the deadline above
                assert first.is_connected(server.peer_id)
