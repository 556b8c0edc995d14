"""The marketing loop end to end on a real 4-node network (issue 6 test).

Separate node processes on 127.0.0.1, each with its own LMDB, talking py-libp2p: a merchant
whose conversion falls below target gets an automatic marketing update from the agent in its
merchant-tech node; the history records the report that caused it; every node holds the same
blocks (and so the same state roots, which block headers carry).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pmkt.cli.testnet import Testnet as LocalTestnet
from p2pmkt.cli.testnet import init_testnet, running_pids, start_nodes, stop_nodes
from p2pmkt.cli.watch import RemoteSubmitter, wait_ready
from p2pmkt.client import open_client
from p2pmkt.crypto.keyfile import load_key
from p2pmkt.demo import rules_toml
from p2pmkt.market.model import parse_report_id
from p2pmkt.node.workload import DemoMerchant, setup_demo

pytestmark = pytest.mark.slow


def free_base_port(count: int) -> int:
    """A base port with ``count`` consecutive free TCP ports on 127.0.0.1."""
    for base in range(20000 + (os.getpid() % 200) * 50, 60000, 97):
        socks = []
        try:
            for i in range(count):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


@pytest.fixture
def testnet(tmp_path: Path) -> Iterator[LocalTestnet]:
    base = free_base_port(8)
    net = init_testnet(
        tmp_path / "tn", 4, base_port=base, metrics_port=base + 4,
        rules={"acme": rules_toml("acme", cooldown_ms=0)},
    )
    try:
        start_nodes(net)
        yield net
    finally:
        stop_nodes(net)
        assert running_pids(net) == {}


def _visits(n: int, orders: int, t0: int) -> list[list[object]]:
    return [
        [f"10.1.{i // 250}.{i % 250}", f"u{i}", t0 + i, "acme", "app",
         "order" if i < orders else "view", "acme-trail-1", 12900 if i < orders else 0]
        for i in range(n)
    ]


async def test_low_conversion_leads_to_an_automatic_update_on_every_node(testnet: LocalTestnet) -> None:
    ready = await trio.to_thread.run_sync(lambda: wait_ready(testnet, timeout=90))
    assert ready["leader"] in {e.name for e in testnet.nodes}
    acme, terminal = testnet.node("node2"), testnet.node("node4")
    acme_key, terminal_key = load_key(acme.dir / "node.key"), load_key(terminal.dir / "node.key")

    async with open_client(acme.multiaddr) as c2, open_client(terminal.multiaddr) as c4:
        await setup_demo(RemoteSubmitter(c2, testnet.chain_id), [DemoMerchant("acme", acme_key, acme_key)],
                         every_visits=200, every_ms=0)
        # Wait until the setup is committed (version 1 of acme's marketing information).
        with trio.fail_after(60):
            while (await c2.market_info("acme")) is None:  # noqa: ASYNC110 - remote state
                await trio.sleep(0.1)  # polling a remote condition, with a deadline
        # 1 order in 200 visits: 0.5 % conversion against acme's 2 % target.
        sub = RemoteSubmitter(c4, testnet.chain_id)
        txid = await sub.submit(terminal_key, "visit.batch", {"visits": _visits(200, 1, 1_764_100_000_000)})
        status = await c4.wait_tx_committed(txid, timeout=60)
        assert status.status == "committed"

        with trio.fail_after(60):
            while True:
                history = await c2.market_history("acme", limit=10)
                caused = [h for h in history if h["cause"]]
                if caused:
                    break
                await trio.sleep(0.2)  # polling a remote condition, with a deadline
        update = caused[0]
        merchant, indicator, n = parse_report_id(update["cause"])
        assert (merchant, indicator) == ("acme", "conversion")
        reports = {(r["indicator"], r["n"]): r for r in await c2.reports("acme", limit=50)}
        report = reports[(indicator, n)]
        assert report["missed"] and report["ok"]
        assert dict(tuple(v) for v in report["values"])["conversion_rate"] == 5000  # 0.5 % at scale 6
        assert update["height"] > report["height"]
        assert update["author"] == acme_key.address

    # Every node holds the same chain: identical block hashes (so identical state roots).
    heights, hashes = [], {}
    for e in testnet.nodes:
        async with open_client(e.multiaddr) as c:
            with trio.fail_after(30):
                while (await c.head()).height < update["height"]:  # noqa: ASYNC110 - remote state
                    await trio.sleep(0.1)  # polling a remote condition, with a deadline
            heights.append((await c.head()).height)
            blk = await c.block(update["height"])
            assert blk is not None
            hashes[e.name] = (blk.hash, blk.header.state)
    assert len(set(hashes.values())) == 1, hashes
