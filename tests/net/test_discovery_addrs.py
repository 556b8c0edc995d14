"""Discovery dials every address a peer lists, not only its first (real py-libp2p hosts)."""

from __future__ import annotations

import socket

import trio

from p2pmkt.net import NetConfig, open_net


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket is closed


async def test_a_peer_whose_first_address_is_dead_is_reached_at_the_next() -> None:
    quiet = NetConfig(listen=("/ip4/127.0.0.1/tcp/0",), gossip=None, discovery=False)
    async with open_net(config=quiet) as target:
        good = target.addrs()[0].split("/p2p/")[0]
        dead = f"/ip4/127.0.0.1/tcp/{_closed_port()}"
        dialer_config = NetConfig(listen=("/ip4/127.0.0.1/tcp/0",), gossip=None, reconnect_interval=0.2)
        async with open_net(config=dialer_config) as dialer:
            dialer.discovery.add(target.peer_id, [dead, good])
            assert dialer.discovery.dial_order(target.peer_id) == [dead, good]
            with trio.fail_after(20):
                while not dialer.is_connected(target.peer_id):  # noqa: ASYNC110 - remote state
                    await trio.sleep(0.05)
            # The address that worked is tried first from now on.
            assert dialer.discovery.dial_order(target.peer_id) == [good, dead]
