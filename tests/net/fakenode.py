"""A stand-in node for network tests and benchmarks: real networking, fake chain.

It runs :func:`p2pmkt.net.open_net` with gossip, peer exchange, the RPC server, block sync and
the Raft transport, backed by an in-memory chain instead of the real node (which the lead
assembles separately). The leader (``--leader``) cuts a block from its mempool every
``--block-ms`` and announces its signed header by gossip; followers fetch blocks by block
sync, at once when a head beyond theirs is announced. Raft messages ``b"ping:<x>"`` are answered with ``b"pong:<x>"`` so tests can check
the transport across processes.

Run as a program it prints one JSON line ``{"peer_id": …, "addrs": […]}`` when it is ready,
then serves until SIGINT/SIGTERM (clean exit, rc 0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from p2pmkt.chain.block import Block, build_block, signed_header
from p2pmkt.chain.tx import SignedTransaction, decode_tx, verify_tx
from p2pmkt.crypto.keys import PrivateKey, address_hex
from p2pmkt.errors import Busy
from p2pmkt.net import (
    Members,
    Net,
    NetConfig,
    RaftTransport,
    RpcLimits,
    fetch_blocks,
    open_net,
    open_raft_transport,
    run_rpc_server,
    run_sync_server,
)
from p2pmkt.net.sync import MAX_RANGE
from p2pmkt.rpc.server import BlockRecord, Head, NodeEvent, NodeInfo, TxStatus
from p2pmkt.types import ZERO_HASH, Hash32

CHAIN = "p2pmkt-test"
GENESIS_TIME = 1_764_028_800_000


def _debug(text: str) -> None:
    if os.environ.get("FAKENODE_DEBUG"):
        print(f"{time.monotonic():.2f} {text}", file=sys.stderr, flush=True)


def dev_key(name: str) -> PrivateKey:
    return PrivateKey.from_seed(name)


class FakeNode:
    """In-memory chain + NodeApi + BlockProvider over a running :class:`Net`."""

    def __init__(self, net: Net, key: PrivateKey, *, leader: bool, mempool_max: int = 50_000) -> None:
        self.net = net
        self.key = key
        self.leader = leader
        self.chain: list[Block] = []
        self.by_hash: dict[bytes, Block] = {}
        self.pending: dict[bytes, SignedTransaction] = {}
        self.committed: dict[bytes, int] = {}
        self.mempool_max = mempool_max
        self.subscribers: list[tuple[frozenset[str], trio.MemorySendChannel[NodeEvent]]] = []
        self._outbox_send, self._outbox = trio.open_memory_channel[bytes](100_000)
        self._new_block = trio.Event()
        self._behind = trio.Event()  # set when an announced head is beyond ours
        self.market: dict[str, list[dict[str, Any]]] = {"acme": [{"seq": 1, "bid": 10}, {"seq": 2, "bid": 11}]}

    # ------------------------------------------------------------ chain
    @property
    def height(self) -> int:
        return len(self.chain)

    def apply(self, block: Block) -> bool:
        if block.height != self.height + 1:
            return False
        self.chain.append(block)
        self.by_hash[bytes(block.hash)] = block
        for stx in block.txs:
            self.pending.pop(bytes(stx.txid), None)
            self.committed[bytes(stx.txid)] = block.height
        self._emit(NodeEvent("block", {"height": block.height, "hash": bytes(block.hash),
                                       "txs": len(block.txs)}))
        self._new_block.set()
        self._new_block = trio.Event()
        return True

    def _emit(self, ev: NodeEvent) -> None:
        for kinds, send in list(self.subscribers):
            if ev.kind in kinds:
                try:
                    send.send_nowait(ev)
                except trio.WouldBlock:
                    send.close()  # fell behind: end its feed
                except trio.ClosedResourceError:
                    pass

    def add_pending(self, stx: SignedTransaction) -> bool:
        tid = bytes(stx.txid)
        if tid in self.pending or tid in self.committed:
            return False
        if len(self.pending) >= self.mempool_max:
            raise Busy("mempool is full")
        self.pending[tid] = stx
        return True

    # ------------------------------------------------------------ NodeApi
    async def node_info(self) -> NodeInfo:
        peers = tuple(p for p in self.net.connected_peers() if self.net.allowed(p))
        return NodeInfo(CHAIN, self.net.peer_id, address_hex(self.key.address), "test",
                        ("platform",) if self.leader else (), self.height, None, peers)

    async def head(self) -> Head:
        if not self.chain:
            return Head(0, bytes(ZERO_HASH), GENESIS_TIME)
        b = self.chain[-1]
        return Head(b.height, bytes(b.hash), b.header.time)

    async def block(self, *, height: int | None = None, hash: bytes | None = None) -> BlockRecord | None:
        if height is not None:
            b = self.chain[height - 1] if 1 <= height <= self.height else None
        else:
            b = self.by_hash.get(hash or b"")
        return None if b is None else BlockRecord(b.height, bytes(b.hash), b.encode())

    async def submit_tx(self, data: bytes, *, relay: bool = True) -> bytes:
        stx = decode_tx(data)
        verify_tx(stx, CHAIN)
        if self.add_pending(stx) and relay:
            self._outbox_send.send_nowait(data)
        return bytes(stx.txid)

    async def tx_status(self, txid: bytes) -> TxStatus | None:
        if txid in self.committed:
            return TxStatus(txid, "committed", self.committed[txid])
        if txid in self.pending:
            return TxStatus(txid, "pending")
        return None

    async def market_info(self, merchant: str) -> dict[str, Any] | None:
        versions = self.market.get(merchant)
        return versions[-1] if versions else None

    async def market_history(self, merchant: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
        items = [v for v in reversed(self.market.get(merchant, [])) if before is None or v["seq"] < before]
        return items[:limit]

    async def market_reports(self, merchant: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
        return []

    @asynccontextmanager
    async def subscribe_events(
        self, kinds: frozenset[str], merchant: str | None
    ) -> AsyncIterator[trio.MemoryReceiveChannel[NodeEvent]]:
        send, recv = trio.open_memory_channel[NodeEvent](256)
        entry = (kinds, send)
        self.subscribers.append(entry)
        try:
            yield recv
        finally:
            self.subscribers.remove(entry)
            send.close()

    # ------------------------------------------------------------ BlockProvider
    async def head_height(self) -> int:
        return self.height

    async def blocks(self, start: int, end: int) -> Sequence[bytes]:
        return [b.encode() for b in self.chain[max(start, 1) - 1: end]]

    # ------------------------------------------------------------ loops
    async def run(self, raft: RaftTransport, block_ms: int) -> None:
        async with trio.open_nursery() as n:
            n.start_soon(self._gossip_out)
            n.start_soon(self._gossip_in)
            n.start_soon(self._heads_in)
            n.start_soon(self._catch_up)
            n.start_soon(self._raft_echo, raft)
            if self.leader:
                n.start_soon(self._produce, block_ms)

    async def _gossip_out(self) -> None:
        """Publish submitted transactions in bundles (whatever queued while publishing)."""
        assert self.net.gossip is not None
        async for first in self._outbox:
            batch = [first]
            while len(batch) < 500:
                try:
                    batch.append(self._outbox.receive_nowait())
                except trio.WouldBlock:
                    break
            await self.net.gossip.publish_txs(batch)

    async def _gossip_in(self) -> None:
        assert self.net.gossip is not None
        async for bundle in self.net.gossip.tx_bundles:
            for stx in bundle.txs:
                try:
                    self.add_pending(stx)
                except Busy:
                    break

    async def _heads_in(self) -> None:
        # Announced heads carry no transactions: a head beyond ours starts a fetch at once.
        assert self.net.gossip is not None
        async for head in self.net.gossip.heads:
            if head.height > self.height:
                self._behind.set()

    async def _catch_up(self) -> None:
        while True:
            with trio.move_on_after(0.3):  # also poll: an announcement can be missed
                await self._behind.wait()
            self._behind = trio.Event()
            for peer in self.net.connected_peers():
                if not self.net.allowed(peer):
                    continue
                try:
                    with trio.move_on_after(2) as scope:
                        got, head = await fetch_blocks(self.net, peer, self.height + 1, self.height)
                        while head > self.height:
                            start = self.height + 1
                            got, head = await fetch_blocks(
                                self.net, peer, start, min(head, start + MAX_RANGE - 1))
                            if not got or not all(self.apply(b) for b in got):
                                break
                    if scope.cancelled_caught:
                        _debug(f"catch-up from {peer} timed out")
                except Exception as exc:
                    _debug(f"catch-up from {peer} failed: {exc!r}")
                    continue

    async def _produce(self, block_ms: int) -> None:
        assert self.net.gossip is not None
        while True:
            await trio.sleep(block_ms / 1000)
            if not self.pending:
                continue
            txs = list(self.pending.values())[:2000]
            parent = self.chain[-1].hash if self.chain else ZERO_HASH
            t = (self.chain[-1].header.time if self.chain else GENESIS_TIME) + block_ms
            block = build_block(self.key, chain=CHAIN, height=self.height + 1, parent=Hash32(parent),
                                state=ZERO_HASH, time=t, txs=txs)
            self.apply(block)
            await self.net.gossip.publish_head(signed_header(block).encode())

    async def _raft_echo(self, raft: RaftTransport) -> None:
        async for node, data in raft.incoming:
            if data.startswith(b"ping:"):
                await raft.send(node, b"pong:" + data[5:])


ECHO_PROTOCOL = "/p2pmkt-test/echo/1.0.0"


async def _raw_echo(stream: Any) -> None:
    """Plain py-libp2p echo (no p2pmkt framing): the raw baseline of tools/bench/net.py."""
    try:
        while data := await stream.read(65536):
            await stream.write(data)
    except Exception:
        pass


def members_for(names: Sequence[str]) -> Members:
    return Members(dev_key(n).public_key.compressed for n in names)


async def run_fake_node(
    name: str, *, port: int, bootstrap: Sequence[str], members: Sequence[str], leader: bool,
    block_ms: int = 200, rpc_limits: RpcLimits | None = None,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    key = dev_key(name)
    config = NetConfig(chain_id=CHAIN, listen=(f"/ip4/127.0.0.1/tcp/{port}",),
                       bootstrap=tuple(bootstrap), reconnect_interval=0.5, pex_interval=1.0)
    async with open_net(key, config, members=members_for(members)) as net:
        node = FakeNode(net, key, leader=leader)
        async with open_raft_transport(net) as raft, trio.open_nursery() as n:
            await n.start(run_rpc_server, net, node, rpc_limits)
            await n.start(run_sync_server, net, node)
            n.start_soon(node.run, raft, block_ms)
            net._host.set_stream_handler(ECHO_PROTOCOL, _raw_echo)  # benchmark baseline
            task_status.started((net, node))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bootstrap", action="append", default=[])
    ap.add_argument("--members", default="")
    ap.add_argument("--leader", action="store_true")
    ap.add_argument("--block-ms", type=int, default=200)
    args = ap.parse_args(argv)
    if os.environ.get("FAKENODE_DEBUG"):
        import logging

        logging.basicConfig(level=logging.DEBUG, format=f"{args.name} %(name)s %(message)s")

    async def amain() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as n:
                net, _node = await n.start(lambda task_status: run_fake_node(
                    args.name, port=args.port, bootstrap=args.bootstrap,
                    members=args.members.split(","), leader=args.leader,
                    block_ms=args.block_ms, task_status=task_status))
                print(json.dumps({"peer_id": net.peer_id, "addrs": net.addrs()}), flush=True)
                async for _ in signals:
                    break
                n.cancel_scope.cancel()

    trio.run(amain)


def txid_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
