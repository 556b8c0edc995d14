"""mDNS discovery (``NetConfig.mdns``): two hosts with no bootstrap address find each other."""

from __future__ import annotations

import pytest
import trio

from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.net import Members, NetConfig, open_net

pytestmark = pytest.mark.slow


async def test_two_hosts_without_bootstrap_find_each_other_by_mdns() -> None:
    ka, kb = PrivateKey.from_seed("mdns-a"), PrivateKey.from_seed("mdns-b")
    members = Members([ka.public_key.compressed, kb.public_key.compressed])
    cfg = NetConfig(chain_id="mdns-test", listen=("/ip4/127.0.0.1/tcp/0",), mdns=True, gossip=None)
    async with open_net(ka, cfg, members=members) as a, open_net(kb, cfg, members=members) as b:
        assert not a.is_connected(b.peer_id)
        with trio.fail_after(30):
            while not (a.is_connected(b.peer_id) and b.is_connected(a.peer_id)):  # noqa: ASYNC110 - remote state
                await trio.sleep(0.1)  # polling the swarm, with a deadline
