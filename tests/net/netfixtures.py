"""Fixtures for real-libp2p tests: an in-process fake node and client-side nets (shared by
tests/net and tests/client through their conftest files)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

sys.path.insert(0, str(Path(__file__).parent))

from fakenode import FakeNode, run_fake_node

from p2pmkt.net import Net, NetConfig, RpcLimits, open_net

MEMBERS = ["n0", "n1", "n2", "n3", "n4", "member"]


@pytest.fixture
async def node(nursery: trio.Nursery) -> tuple[Net, FakeNode]:
    """One leader node in this process, with low RPC limits for the limit tests."""
    # A slow refill keeps test_rate_limit meaningful on a loaded machine: of 100 requests
    # sent at once, 40 pass on the burst and even 4 s of serving refill only 40 more.
    limits = RpcLimits(rate=10, burst=40, max_streams_per_peer=3, max_frame=64 * 1024)
    result: tuple[Net, FakeNode] = await nursery.start(partial(
        run_fake_node, "n0", port=0, bootstrap=[], members=MEMBERS, leader=True,
        block_ms=50, rpc_limits=limits))
    return result


@pytest.fixture
async def dialer() -> AsyncIterator[Net]:
    """A client-side host (no listener, no gossip)."""
    async with open_net(config=NetConfig(listen=(), gossip=None, discovery=False)) as net:
        yield net
