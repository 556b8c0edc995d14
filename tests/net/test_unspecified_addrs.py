"""Nodes that listen on every interface (``/ip4/0.0.0.0``) are handed out at an address others
can dial: the IP their connection came from, or the ``announce`` addresses they configure.

Before, a node handed out ``/ip4/0.0.0.0/tcp/P`` as is; on a real network that address means
the dialler's own machine, so two nodes bootstrapped from the same peer never connected to
each other (the multi-process test below, nodes in separate network namespaces).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import trio

from p2pmkt.errors import ConfigError
from p2pmkt.net import NetConfig, open_net
from p2pmkt.net.discovery import resolve_addrs

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tools.chaos: the multi-process cluster

# --- the pure rule ----------------------------------------------------------------------------


def test_an_unspecified_host_becomes_the_observed_ip_of_its_family() -> None:
    addrs = ["/ip4/0.0.0.0/tcp/7100", "/ip6/::/tcp/7100", "/ip4/10.0.0.5/tcp/7100"]
    assert resolve_addrs(addrs, "192.0.2.7") == ["/ip4/192.0.2.7/tcp/7100", "/ip4/10.0.0.5/tcp/7100"]
    assert resolve_addrs(addrs, "2001:db8::7") == ["/ip6/2001:db8::7/tcp/7100", "/ip4/10.0.0.5/tcp/7100"]


def test_without_an_observed_ip_unspecified_hosts_are_dropped_and_the_rest_kept() -> None:
    assert resolve_addrs(["/ip4/0.0.0.0/tcp/1", "/dns4/n1.example/tcp/2"], None) == ["/dns4/n1.example/tcp/2"]
    assert resolve_addrs(["/ip4/0.0.0.0/tcp/1"], None) == []


def test_resolving_removes_duplicates_and_keeps_order() -> None:
    addrs = ["/ip4/0.0.0.0/tcp/7", "/ip4/192.0.2.7/tcp/7", "/ip4/10.0.0.1/tcp/7"]
    assert resolve_addrs(addrs, "192.0.2.7") == ["/ip4/192.0.2.7/tcp/7", "/ip4/10.0.0.1/tcp/7"]


# --- the config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "addr", "says"),
    [
        ("announce", "/ip4/0.0.0.0/tcp/7100", "names no host"),
        ("bootstrap", "/ip4/0.0.0.0/tcp/7100/p2p/16Uiu2HAmBY2fo5E5EdDzrZeubfQRkunrWLChof6GUJo8UociGrht", "names no host"),
        ("bootstrap", "/ip4/10.0.0.1/tcp/7100", "must end in /p2p/"),
        ("announce", "/ip4/10.0.0.1/tcp/7100/p2p/16Uiu2HAmBY2fo5E5EdDzrZeubfQRkunrWLChof6GUJo8UociGrht", "must not carry /p2p/"),
        ("listen", "/ip4/10.0.0.1/udp/7100", "with a TCP port"),
        ("listen", "/ip4/300.0.0.1/tcp/7100", "is not a multiaddr"),
    ],
)
def test_config_rejects_addresses_others_cannot_dial(tmp_path, key: str, addr: str, says: str) -> None:
    from p2pmkt.config import config_from_dict

    obj = {"name": "n", "data_dir": "d", "key_file": "k", "genesis": "g", "listen": ["/ip4/0.0.0.0/tcp/7100"]}
    obj[key] = [addr]
    with pytest.raises(ConfigError, match=re.escape(says)) as err:
        config_from_dict(obj, tmp_path)
    assert key in str(err.value)


def test_config_takes_a_listen_on_every_interface_and_an_announce_address(tmp_path) -> None:
    from p2pmkt.config import config_from_dict

    cfg = config_from_dict({"name": "n", "data_dir": "d", "key_file": "k", "genesis": "g",
                            "listen": ["/ip4/0.0.0.0/tcp/7100"],
                            "announce": ["/ip4/203.0.113.7/tcp/7100", "/dns4/n1.example/tcp/7100"]}, tmp_path)
    assert cfg.listen == ("/ip4/0.0.0.0/tcp/7100",)
    assert cfg.announce == ("/ip4/203.0.113.7/tcp/7100", "/dns4/n1.example/tcp/7100")


# --- real hosts in one process ----------------------------------------------------------------


async def _wait_known(net, peer_id: str, want: list[str]) -> None:
    with trio.fail_after(20):
        while net.discovery.known.get(peer_id) != want:  # noqa: ASYNC110 - remote state
            await trio.sleep(0.05)


async def test_a_peer_listening_on_every_interface_is_known_at_the_ip_it_came_from() -> None:
    """Both directions of an exchange: the asker's own addresses (the server learns them) and
    the answerer's own entry (the asker learns them), each 0.0.0.0 read as the connection's IP."""
    fast = {"gossip": None, "reconnect_interval": 0.2, "pex_interval": 0.2}
    async with open_net(config=NetConfig(listen=("/ip4/0.0.0.0/tcp/0",), **fast)) as hub:
        hub_port = hub.addrs()[0].split("/tcp/")[1].split("/")[0]
        boot = f"/ip4/127.0.0.1/tcp/{hub_port}/p2p/{hub.peer_id}"
        config = NetConfig(listen=("/ip4/0.0.0.0/tcp/0",), bootstrap=(boot,), **fast)
        async with open_net(config=config) as a, open_net(config=config) as b:
            port_a = a.addrs()[0].split("/tcp/")[1].split("/")[0]
            port_b = b.addrs()[0].split("/tcp/")[1].split("/")[0]
            await _wait_known(hub, a.peer_id, [f"/ip4/127.0.0.1/tcp/{port_a}"])
            # b learns a from the hub's answer: the hub's resolved entry, never 0.0.0.0
            await _wait_known(b, a.peer_id, [f"/ip4/127.0.0.1/tcp/{port_a}"])
            await _wait_known(a, b.peer_id, [f"/ip4/127.0.0.1/tcp/{port_b}"])
            # the hub's own entry (it listens on 0.0.0.0 too), read from its answer
            await _wait_known(a, hub.peer_id, [f"/ip4/127.0.0.1/tcp/{hub_port}"])
            with trio.fail_after(20):
                while not a.is_connected(b.peer_id):  # noqa: ASYNC110 - remote state
                    await trio.sleep(0.05)


async def test_announce_addresses_are_what_peers_learn() -> None:
    fast = {"gossip": None, "reconnect_interval": 0.2, "pex_interval": 0.2}
    async with open_net(config=NetConfig(listen=("/ip4/127.0.0.1/tcp/0",), **fast)) as hub:
        boot = hub.addrs()[0]
        # Announce an address of which only the host part differs from the listen one, plus
        # a name: peers must learn exactly these (a NAT's public address, a DNS name).
        announce = ("/ip4/127.0.0.2/tcp/7999", "/dns4/node.example/tcp/7999")
        config = NetConfig(listen=("/ip4/0.0.0.0/tcp/0",), announce=announce, bootstrap=(boot,), **fast)
        async with open_net(config=config) as a:
            await _wait_known(hub, a.peer_id, list(announce))


async def test_a_dns_address_is_resolved_before_dialling() -> None:
    """py-libp2p 0.8.1 cannot dial /dns4 (it wants an IP): Net.connect resolves it first."""
    from p2pmkt.net.errors import DialFailed
    from p2pmkt.net.host import resolve_dns

    assert await resolve_dns("/dns4/localhost/tcp/7100/p2p/X") == "/ip4/127.0.0.1/tcp/7100/p2p/X"
    assert await resolve_dns("/ip4/10.0.0.1/tcp/7100") == "/ip4/10.0.0.1/tcp/7100"
    with pytest.raises(DialFailed, match=r"cannot resolve 'no-such-host\.invalid'"):
        await resolve_dns("/dns4/no-such-host.invalid/tcp/7100")


async def test_a_node_announced_by_dns_name_is_found_and_dialled() -> None:
    """A node announces only a name (/dns4/localhost/…): a peer that learns it by peer
    exchange from a third node connects to it through that name."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fast = {"gossip": None, "reconnect_interval": 0.2, "pex_interval": 0.2}
    async with open_net(config=NetConfig(listen=("/ip4/127.0.0.1/tcp/0",), **fast)) as hub:
        boot = (hub.addrs()[0],)
        named = NetConfig(listen=(f"/ip4/127.0.0.1/tcp/{port}",), announce=(f"/dns4/localhost/tcp/{port}",),
                          bootstrap=boot, **fast)
        async with open_net(config=named) as a:
            await _wait_known(hub, a.peer_id, [f"/dns4/localhost/tcp/{port}"])
            # b listens nowhere, so a cannot dial it: the connection is b's dial of the name.
            async with open_net(config=NetConfig(listen=(), bootstrap=boot, **fast)) as b:
                await _wait_known(b, a.peer_id, [f"/dns4/localhost/tcp/{port}"])
                with trio.fail_after(20):
                    while not b.is_connected(a.peer_id):  # noqa: ASYNC110 - remote state
                        await trio.sleep(0.05)


# --- separate machines: nodes in their own network namespaces ---------------------------------


@pytest.mark.slow
async def test_nodes_listening_on_every_interface_all_connect_from_one_bootstrap_peer(tmp_path) -> None:
    """Three node processes, each in its own network namespace (as on three machines), each
    listening on /ip4/0.0.0.0; node1 has no bootstrap, node2 and node3 know only node1. All
    three must connect to each other, so that losing node1 leaves a connected majority that
    elects a leader. (Before: node2 and node3 dialled 0.0.0.0, their own namespace, and never
    met; with node1 gone there was no quorum.)"""
    from tools.chaos.cluster import Cluster, infos, wait_leader
    from tools.chaos.netns import available

    if not available():
        pytest.skip("network namespaces need root and `ip netns`")
    with Cluster(root=tmp_path / "net", n=3, rules=False, netns=True) as cl:
        for i, e in enumerate(cl.net.nodes):
            text = e.config.read_text()
            text = re.sub(r"^listen = .*$", "listen = " + json.dumps([f"/ip4/0.0.0.0/tcp/{e.port}"]),
                          text, flags=re.M)
            if i == 0:
                text = re.sub(r"^bootstrap = .*$", "bootstrap = []", text, flags=re.M)
            e.config.write_text(text)
        cl.start()
        ids = {e.name: e.peer_id for e in cl.net.nodes}
        with trio.fail_after(60):
            while True:
                seen = {n: set((i or {}).get("peers") or ()) for n, i in (await infos(cl)).items()}
                if all(seen[n] == set(ids.values()) - {ids[n]} for n in ids):
                    break
                await trio.sleep(0.2)
        cl.kill("node1")
        leader = await wait_leader(cl, timeout=60, names=["node2", "node3"], exclude="node1")
        assert leader in ("node2", "node3")
