"""Several fake-node processes on 127.0.0.1 (real py-libp2p, real TCP, one process each).

Started once per module: four nodes, all bootstrapped from n0 only. Peer exchange must make
every node find every other; transactions submitted anywhere must reach every node by gossip
and end up in blocks everywhere; a restarted node must be reconnected and catch up by block
sync; floods of invalid or non-member gossip must not disturb the others.
"""

# Polling other processes over RPC inside trio.fail_after: no local event exists.
# ruff: noqa: ASYNC110

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from fakenode import CHAIN, dev_key

from p2pmkt.chain.tx import make_tx
from p2pmkt.client import Client, open_client
from p2pmkt.gossip import encode_bundle
from p2pmkt.net import Members, NetConfig, open_net, open_raft_transport, peer_id_of
from p2pmkt.types import NodeId

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
NAMES = ["n0", "n1", "n2", "n3"]
MEMBER_NAMES = [*NAMES, "member"]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    def __init__(self) -> None:
        self.ports = {n: free_port() for n in NAMES}
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.addr = {
            n: f"/ip4/127.0.0.1/tcp/{self.ports[n]}/p2p/{peer_id_of(dev_key(n).public_key.compressed)}"
            for n in NAMES
        }

    def start(self, names: list[str]) -> None:
        for n in names:
            args = [PYTHON, str(HERE / "fakenode.py"), "--name", n, "--port", str(self.ports[n]),
                    "--members", ",".join(MEMBER_NAMES), "--block-ms", "100"]
            if n == "n0":
                args.append("--leader")
            else:
                args += ["--bootstrap", self.addr["n0"]]
            env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]))
            self.procs[n] = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env,
                                             cwd=HERE.parents[1])
        for n in names:
            proc = self.procs[n]
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, f"{n} did not start within 30 s"
            info = json.loads(proc.stdout.readline())
            assert info["addrs"][0] == self.addr[n]

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stdout is not None
        proc.stdout.close()

    def stop_all(self) -> None:
        for n in list(self.procs):
            self.stop(n)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.start(NAMES)
        yield c
    finally:
        c.stop_all()


async def wait_for_peers(client: Client, count: int) -> None:
    while len((await client.info()).peers) < count:
        await trio.sleep(0.1)


async def test_discovery_from_one_bootstrap_address(cluster: Cluster) -> None:
    with trio.fail_after(20):
        for n in NAMES:
            async with open_client(cluster.addr[n]) as c:
                await wait_for_peers(c, len(NAMES) - 1)
                assert set((await c.info()).peers) == {
                    peer_id_of(dev_key(m).public_key.compressed) for m in NAMES if m != n}


async def test_gossip_reaches_all_and_blocks_commit(cluster: Cluster) -> None:
    key = dev_key("alice")
    stxs = [make_tx(key, CHAIN, i, "visit.batch", {"i": i}) for i in range(30)]
    async with open_client(cluster.addr["n1"]) as c1, open_client(cluster.addr["n3"]) as c3:
        with trio.fail_after(20):
            await wait_for_peers(c1, 3)
            for i, stx in enumerate(stxs):
                await (c1 if i % 2 else c3).submit_tx(stx)
            for stx in stxs:
                st = await c1.wait_tx_committed(stx.txid, timeout=15)
                assert st.status == "committed"
    heads = []
    with trio.fail_after(15):
        for n in NAMES:
            async with open_client(cluster.addr[n]) as c:
                for stx in stxs:
                    while (st2 := await c.tx(stx.txid)) is None or st2.status != "committed":
                        await trio.sleep(0.05)
                heads.append(await c.block((await c.tx(stxs[-1].txid)).height))  # type: ignore[union-attr]
    assert len({b.hash for b in heads if b is not None}) == 1


async def test_raft_messages_cross_processes(cluster: Cluster) -> None:
    members = Members(dev_key(n).public_key.compressed for n in MEMBER_NAMES)
    cfg = NetConfig(chain_id=CHAIN, listen=(), gossip=None, discovery=False)
    async with open_net(dev_key("member"), cfg, members=members) as net, \
            open_raft_transport(net) as raft:
        with trio.fail_after(10):
            for n in NAMES[1:]:
                await net.connect(cluster.addr[n])
                node = NodeId("0x" + dev_key(n).address.hex())
                await raft.send(node, f"ping:{n}".encode())
                assert await raft.incoming.receive() == (node, f"pong:{n}".encode())


async def test_invalid_and_outsider_gossip_floods(cluster: Cluster) -> None:
    members = Members(dev_key(n).public_key.compressed for n in MEMBER_NAMES)
    good = make_tx(dev_key("bob"), CHAIN, 0, "visit.batch", {"ok": 1})
    outsider_tx = make_tx(dev_key("bob"), CHAIN, 1, "visit.batch", {"outsider": 1})
    cfg = NetConfig(chain_id=CHAIN, listen=("/ip4/127.0.0.1/tcp/0",), discovery=False)
    async with open_net(dev_key("outsider"), cfg) as outsider:
        assert outsider.gossip is not None
        peers = [await outsider.connect(cluster.addr[n]) for n in NAMES]
        with trio.fail_after(10):
            while not set(peers) <= outsider.gossip.tx_topic_peers():
                await trio.sleep(0.05)
            await outsider.gossip.publish_txs([outsider_tx.encode()])
    async with open_net(dev_key("member"), cfg, members=members) as member:
        gossip = member.gossip
        assert gossip is not None
        n2 = await member.connect(cluster.addr["n2"])
        async with open_client(cluster.addr["n0"]) as c0:
            with trio.fail_after(20):
                # Published before n2's subscription reached us, the messages would go nowhere.
                while n2 not in gossip.tx_topic_peers():
                    await trio.sleep(0.05)
                # garbage of every kind, published raw (our own validator lets our messages out)
                wrong_chain = make_tx(dev_key("bob"), "other-chain", 0, "k", {}).encode()
                floods = [b"\xff" * 50, encode_bundle([b"\x00"]), encode_bundle([wrong_chain])]
                for i in range(150):
                    await gossip._publish(gossip.tx_topic, floods[i % 3] + bytes([i]) * (i % 2))
                await gossip.publish_txs([good.encode()])
                st = await c0.wait_tx_committed(good.txid, timeout=15)
                assert st.status == "committed"
                assert await c0.tx(outsider_tx.txid) is None
                assert len((await c0.info()).peers) >= 3


async def test_restarted_node_reconnects_and_catches_up(cluster: Cluster) -> None:
    cluster.stop("n3")
    stx = make_tx(dev_key("carol"), CHAIN, 0, "visit.batch", {"while": "down"})
    async with open_client(cluster.addr["n0"]) as c0:
        await c0.submit_tx(stx)
        st = await c0.wait_tx_committed(stx.txid, timeout=15)
        assert st.status == "committed" and st.height is not None
        await trio.to_thread.run_sync(cluster.start, ["n3"])
        with trio.fail_after(20):
            async with open_client(cluster.addr["n3"]) as c3:
                await wait_for_peers(c3, 3)
                while (await c3.head()).height < st.height:
                    await trio.sleep(0.1)
                assert (await c3.tx(stx.txid)) == st
            while len((await c0.info()).peers) < 3:
                await trio.sleep(0.1)
