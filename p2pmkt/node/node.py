"""A full node: ``async def run_node(config, *, task_status)`` — one nursery owns everything.

Composition (each a task in the node's nursery; structured concurrency only)::

    open_net (libp2p host, GossipSub, discovery)   open_raft_transport (/p2pmkt/raft/1.0.0)
      │                                              │
      ├─ run_rpc_server   ← ChainApi (NodeApi)       ├─ run_raft_driver ── ChainApp (one entry = one block)
      ├─ run_sync_server  ← ChainBlocks              ├─ run_block_producer (leader: mempool → block → propose)
      ├─ forward: submitted txs → the leader         └─ catch-up: blocks missing after a snapshot ← fetch_blocks
      │           (the leader's own: → one follower)
      ├─ gossip out: what was refused or could not be forwarded → bundles
      ├─ gossip in:  bundles → mempool
      ├─ heads: the leader announces each committed block's signed header; a head far
      │         beyond ours (any beyond, outside Raft) sets the catch-up target
      ├─ gauges: peers, leadership and height refreshed every second
      └─ agent (merchant-tech with [agent] rules): reports → rules → signed market.update

Validators are the genesis validators; the Raft membership starts from them (a bootstrap log
written once, identically on every founding node). Peers outside the chain's membership may
use the RPC protocol (clients) but never the Raft or sync protocols.

The node holds ``DATA/node.lock`` while it runs: one process per data directory.

Shutdown: SIGINT/SIGTERM cancel the nursery; LMDB is closed last.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from p2pmkt.agent import RulesError, RuleSet, choose_merchant, load_rules
from p2pmkt.chain.block import signed_header
from p2pmkt.chain.genesis import load_genesis, parse_role
from p2pmkt.chain.tx import SignedTransaction
from p2pmkt.config import Limits, NodeConfig
from p2pmkt.crypto.keyfile import load_key
from p2pmkt.crypto.keys import PrivateKey, address_hex
from p2pmkt.errors import Busy, ConfigError, LocalError, P2pmktError
from p2pmkt.market.events import ReportWritten
from p2pmkt.market.model import Report
from p2pmkt.node import clock
from p2pmkt.node.api import ChainApi, EventHub, events_of
from p2pmkt.node.chain import Applied, ChainService
from p2pmkt.node.logs import kv, setup_logging
from p2pmkt.node.metrics import NodeMetrics

if TYPE_CHECKING:
    from p2pmkt.net.rpc_stream import RpcLimits

log = logging.getLogger("p2pmkt.node")

CATCH_UP_GAP = 5
"""Blocks a node may trail an announced head by before it fetches from peers."""

BUNDLE_WAIT = 0.2
"""Seconds a gossip bundle of transactions may wait to fill before it is published."""


class ChainBlocks:
    """``BlockProvider`` for block sync, over the chain store."""

    def __init__(self, chain: ChainService) -> None:
        self.chain = chain

    async def head_height(self) -> int:
        return int(self.chain.head().height)

    async def blocks(self, start: int, end: int) -> Sequence[bytes]:
        out = []
        for h in range(max(start, 1), end + 1):
            raw = self.chain.store.block_bytes_at(h)
            if raw is None:
                break
            out.append(raw)
        return out



async def run_node(config: NodeConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run a node until cancelled. ``task_status.started(info)`` once it serves RPC, with
    ``info = {"peer_id", "addrs", "address"}``.

    Raises:
        ConfigError: among others, the data directory is another node process's, or the
            listen or metrics address cannot be bound (the node stops rather than run on
            unreachable).
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with data_dir_lock(config.data_dir):  # before anything listens or opens the store
        await _run_node(config, task_status=task_status)


async def _run_node(config: NodeConfig, *, task_status: Any) -> None:
    from p2pmkt.contracts import RuntimeConfig, WasmRuntime
    from p2pmkt.net import (
        Members,
        NetConfig,
        fetch_blocks,
        open_net,
        open_raft_transport,
        run_rpc_server,
        run_sync_server,
    )
    from p2pmkt.net.sync import MAX_RANGE
    from p2pmkt.node.raft_app import ChainApp
    from p2pmkt.node.raft_driver import (
        DriverConfig,
        RaftDriver,
        run_block_producer,
    )
    from p2pmkt.raft import bootstrap_log
    from p2pmkt.storage.raftlog import LmdbRaftLogStore
    from p2pmkt.types import NodeId

    key = load_key(config.key_file)
    genesis = load_genesis(config.genesis)
    address = address_hex(key.address)
    # The agent's rules are read and checked before anything runs: a mistake stops the node
    # here, naming the file and line, not after it has started serving.
    rules = load_rules(config.agent.rules) if config.agent.rules is not None else None
    metrics = NodeMetrics(config.name)
    if config.metrics:
        try:
            port = metrics.serve(config.metrics)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {config.metrics}: {exc.strerror or exc} (another process "
                "holds the port? change metrics in config.toml, or pass --metrics)") from exc
        log.info(kv("metrics", listen=f"{config.metrics.rpartition(':')[0]}:{port}"))
    runtime = WasmRuntime(RuntimeConfig(
        max_code_bytes=genesis.params.contract_max_code_bytes, cache_dir=config.data_dir / "wasm-cache"))
    chain = ChainService.open(config.data_dir, genesis, runtime=runtime, metrics=metrics,
                              map_size=config.storage.map_size,
                              max_map_size=config.storage.max_map_size)
    hub = EventHub()
    outbox_send, outbox_recv = trio.open_memory_channel[bytes](100_000)
    forward_send, forward_recv = trio.open_memory_channel[bytes](100_000)
    reports_send, reports_recv = trio.open_memory_channel[Report](1024)
    heads_send, heads_recv = trio.open_memory_channel[bytes](256)
    leading = [False]

    validators = [NodeId(address_hex(genesis.member(n).address)) for n in genesis.validators]
    is_validator = NodeId(address) in validators
    members = Members(m.pubkey for m in genesis.members)
    # Addresses whose block announcements gossip accepts: the voters (kept current by
    # _reconcile_membership). Anyone else's "head" would only send this node fetching blocks
    # that do not exist.
    voters: set[bytes] = {bytes(genesis.member(n).address) for n in genesis.validators}
    net_config = NetConfig(
        chain_id=genesis.chain_id, listen=config.listen, announce=config.announce,
        bootstrap=config.bootstrap,
        mdns=config.mdns, reconnect_interval=0.5, pex_interval=1.0,
        clients_per_ip=config.limits.clients_per_ip,
    )

    def on_applied(applied: Applied) -> None:
        hub.publish(events_of(applied))
        if leading[0]:
            # The leader announces committed blocks by their signed headers: observers and
            # lagging nodes learn the head from it (and fetch what they lack by sync).
            try:
                heads_send.send_nowait(signed_header(applied.result.block).encode())
            except trio.WouldBlock:
                pass
        for ev in applied.result.events:
            if isinstance(ev, ReportWritten):
                try:
                    reports_send.send_nowait(ev.report)
                except trio.WouldBlock:
                    log.warning(kv("agent_behind", report=ev.report.indicator))

    def gossip(data: bytes) -> None:
        try:
            outbox_send.send_nowait(data)
        except trio.WouldBlock:
            log.warning("gossip outbox full; a transaction stays local until its block")

    def on_submit(stx: SignedTransaction) -> None:
        """A transaction a client gave this node (pooled here already), or one due again.

        It is handed over (:func:`_forward_submitted`) to one other validator, so that it
        lives in a second pool: a follower hands it to the leader, which puts it in a block;
        the leader hands it to one follower, which sends it to the next leader should this one
        fail first. Only what is refused, or cannot be handed over, is gossiped to every node.
        Gossiping every transaction made every other node check and pool it before its block,
        which brings it anyway, and a leader's gossip (each message forwarded on by every
        follower) tripled the block cycle under a visit load on the leader and cost it 10–20 %
        of its visits/s (BENCHMARKS.md). It stays in this node's pool until its block.
        """
        data = stx.encode()
        try:
            forward_send.send_nowait(data)
        except trio.WouldBlock:
            gossip(data)  # forwarding is far behind: gossip carries it instead

    unwatch_gc = metrics.watch_gc()
    try:
        if rules is not None:
            # Which merchant the agent acts for, by the key's roles so far (refuses a file
            # that names none when the key is merchant-tech for several).
            choose_merchant(rules, _tech_scopes(chain, key.address))
        async with (
            # tx_cache: each transaction is decoded once, for gossip, RPC and Raft blocks alike.
            open_net(key, net_config, members=members, tx_cache=chain.tx_cache,
                     on_gossip_reject=lambda reason: metrics.reject(reason, "gossip"),
                     on_inbound_refused=lambda ip: metrics.reject("too_many_connections", "inbound"),
                     head_proposers=lambda: voters) as net,
            open_raft_transport(
                net, genesis=bytes(genesis.hash),
                on_refused=lambda peer: metrics.reject("genesis_mismatch", "raft")) as raft_t,
        ):
            def on_leader(leader: Any, term: Any) -> None:
                leading[0] = leader == NodeId(address)

            app = ChainApp(chain, on_applied=on_applied, on_leader=on_leader)
            raft_store = LmdbRaftLogStore(chain.store.env)
            if raft_store.last_index() == 0 and is_validator:
                hs, ents = bootstrap_log(validators)
                raft_store.save(hs, ents)
            driver = RaftDriver.create(
                NodeId(address), raft_store, raft_t, raft_t.incoming, app,
                config=DriverConfig(tick_interval=config.raft.tick_ms / 1000),
                election_tick=config.raft.election_ticks, heartbeat_tick=config.raft.heartbeat_ticks,
            )

            if not net.addrs():
                # py-libp2p logs the socket error and runs on, reachable by no one: a
                # supervisor would never restart it. Stop instead.
                raise ConfigError(
                    f"cannot listen on {', '.join(config.listen)} (see the error above: the port "
                    "in use by another process, or an address not of this machine); change "
                    "listen in config.toml")

            def network() -> tuple[str | None, tuple[str, ...]]:
                peers = tuple(p for p in net.connected_peers() if members.is_member(p))
                metrics.peers.set(len(peers))
                metrics.raft_leader.set(1 if driver.is_leader else 0)
                return (driver.leader, peers)

            def backup() -> str | None:
                """The follower that also pools what this node's clients submit while it
                leads: the first connected voter after this node in address order, wrapping
                round (None if none is connected)."""
                up = sorted(
                    n for n in map(address_hex, voters) if n != address
                    and (p := members.peer_of(NodeId(n))) is not None and net.is_connected(p))
                return next((n for n in up if n > address), up[0] if up else None)

            api = ChainApi(chain, hub, peer_id=net.peer_id, address=address,
                           network=network, on_submit=on_submit)

            def build() -> bytes | None:
                block = chain.build_block(key, clock.block_time_ms(time.time()))
                return None if block is None else block.encode()

            async with trio.open_nursery() as nursery:
                await nursery.start(lambda task_status: driver.run(task_status=task_status))
                await nursery.start(
                    lambda task_status: run_block_producer(
                        driver, build, interval=genesis.params.block_interval_ms / 1000,
                        task_status=task_status))
                await nursery.start(run_rpc_server, net, api, rpc_limits(config.limits))
                await nursery.start(partial(run_sync_server, genesis=bytes(genesis.hash)),
                                    net, ChainBlocks(chain))
                nursery.start_soon(_gossip_out, net, outbox_recv)
                nursery.start_soon(_gossip_in, net, chain)
                nursery.start_soon(_reannounce, chain, on_submit)
                nursery.start_soon(_forward_submitted, net, driver, members, forward_recv,
                                   gossip, chain.mempool.in_arrival_order, backup)
                nursery.start_soon(_heads_out, net, heads_recv)
                def in_raft() -> bool:
                    conf = driver.statistics().status.conf_state
                    return NodeId(address) in conf.voters or NodeId(address) in conf.learners

                nursery.start_soon(_heads_in, net, app, in_raft)
                nursery.start_soon(_catch_up, net, app, members,
                                   partial(fetch_blocks, genesis=bytes(genesis.hash)), MAX_RANGE,
                                   lambda: driver.leader is None)
                nursery.start_soon(_reconcile_membership, driver, chain, members, voters)
                nursery.start_soon(_watch_leader_connection, net, driver, members,
                                   config.raft.tick_ms / 1000)
                nursery.start_soon(_refresh_gauges, network, chain)
                if rules is not None:
                    nursery.start_soon(_run_agent, config, chain, api, key, reports_recv, rules)
                log.info(kv("node_started", name=config.name, address=address, peer_id=net.peer_id,
                            addrs=",".join(net.addrs()),
                            advertised=",".join(net.discovery.own_addrs()), height=chain.head().height,
                            validator=_validator_status(chain, key.address)))
                task_status.started({"peer_id": net.peer_id, "addrs": net.addrs(), "address": address})
                # Everything allocated so far (modules, libp2p, wasmtime, genesis) lives as long
                # as the process: move it out of the collector's sight, so that full
                # collections scan only what the node allocates while running (their pauses
                # stop the event loop; see p2pmkt_gc_pause_seconds).
                gc.collect()
                gc.freeze()
    finally:
        unwatch_gc()
        chain.close()


def _validator_status(chain: ChainService, address: bytes) -> str:
    """``voter``, ``learner`` or ``none``, as the chain's state at this node's head has it (a
    node restarted with an empty store reads the genesis's until it has caught up)."""
    from p2pmkt.chain.roles import validator_set

    with chain.store.snapshot() as snap:
        vs = validator_set(snap)
    return "voter" if address in vs.voters else "learner" if address in vs.learners else "none"


GAUGE_REFRESH = 1.0
"""Seconds between refreshes of the gauges nothing else updates (peers, leadership, height)."""


async def _refresh_gauges(network: Callable[[], Any], chain: ChainService) -> None:
    """Keep the health gauges current for a scraper: ``network()`` sets peers and leadership
    (before, only a ``node.info`` call did, so a curl check read stale values), and the
    height is set from the head (a restarted node read 0 until its next block)."""
    while True:
        network()
        chain.metrics.height.set(chain.head().height)
        await trio.sleep(GAUGE_REFRESH)


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``DATA/node.lock`` (an exclusive ``flock``, with this process's pid in it) while
    the node runs.

    LMDB lets several processes open one store, and libp2p listens with SO_REUSEPORT: a second
    ``node run`` on the same directory started, shared the port, and resumed from a stale
    height while the first lost its leader again and again.

    Raises:
        ConfigError: another process holds the directory.
    """
    import fcntl

    fd = os.open(data_dir / "node.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ConfigError(
                f"{data_dir} is in use by another node process (pid {holder}): stop it first, or "
                "give this node its own data directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


async def _gossip_out(net: Any, outbox: trio.MemoryReceiveChannel[bytes]) -> None:
    """Publish transactions in bundles, at most about five per second.

    GossipSub costs milliseconds of CPU per message on every node (notes/py-libp2p.md), so
    one message per transaction saturated the 2-core testnet at ~100 tx/s. Gossip is the
    fallback (see :func:`_forward_submitted`): what the leader or a backup refused or could
    not be reached for, and the stale-transaction sweep's, so waiting up to ``BUNDLE_WAIT`` to
    fill a bundle costs no commit latency in the common case.
    """
    if net.gossip is None:
        return
    async for first in outbox:
        batch = [first]
        with trio.move_on_after(BUNDLE_WAIT):
            while len(batch) < 1000:
                batch.append(await outbox.receive())
        try:
            await net.gossip.publish_txs(batch)
        except Exception as exc:  # a publish failure must not stop the node
            log.warning(kv("gossip_publish_failed", error=repr(exc)))


async def _gossip_in(net: Any, chain: ChainService) -> None:
    if net.gossip is None:
        return
    async for bundle in net.gossip.tx_bundles:
        for stx in bundle.txs:
            try:
                chain.admit(stx, where="gossip")
            except Busy:
                break  # full: the rest of this bundle waits for its origin's next block
            except P2pmktError:
                continue  # counted in metrics by reason; usually already committed
        await trio.lowlevel.checkpoint()


async def _forward_submitted(net: Any, driver: Any, members: Any,
                             txs: trio.MemoryReceiveChannel[bytes], gossip: Callable[[bytes], None],
                             pooled: Callable[[], Sequence[SignedTransaction]],
                             backup: Callable[[], str | None]) -> None:
    """Hand the transactions submitted here to a second validator over its RPC protocol: to
    the leader, or while this node leads, to ``backup()`` (a follower, or None).

    Gossip reaches every node but, with four busy nodes on two cores, the hop to the leader
    took seconds under load (BENCHMARKS.md); a direct ``tx.submit_batch`` takes milliseconds.
    What is not taken (refused, or the call failed) is gossiped instead. A new leader is first
    sent this node's whole pool: the transactions the previous leader took but did not commit
    live on only in the pools of the nodes they were submitted to (and, for the leader's own
    clients', its backup's). Everything toward one peer, dialling included, stops when the
    leader changes (a frozen leader answers nothing, not even the stream's protocol
    negotiation).
    """
    from p2pmkt.net.rpc_stream import open_rpc_stream

    # The pool as it stood when (leader, term) was first seen, left to hand over; a leader
    # that restarted in a new term has no pool, hence the term.
    resend_for: tuple[str, int] | None = None
    resend: list[bytes] = []
    while True:
        leader, term = driver.leader, driver.term
        # A backup is sent only what arrives from now on: a new leader's pool puts its older
        # transactions in the next blocks, and handing it all over would only delay those.
        first: list[bytes] = []
        if driver.is_leader:
            target = backup()
            if target is None:
                # Leading with no follower at hand: gossip what waits, so that the other
                # pools hold it should this node fail, and look for a backup again soon.
                while True:
                    try:
                        gossip(txs.receive_nowait())
                    except trio.WouldBlock:
                        break
                with trio.move_on_after(BACKUP_RETRY):
                    await driver.wait_leader_change()
                continue
        else:
            target = leader
            if (leader, term) != resend_for:
                resend_for, resend = (leader, term), [stx.encode() for stx in pooled()]
            first = resend
        peer = members.peer_of(target) if target else None
        if peer is None:
            with trio.move_on_after(BACKUP_RETRY):
                await driver.wait_leader_change()
            continue
        try:
            async with trio.open_nursery() as nursery:

                async def until_leader_changes() -> None:
                    await driver.wait_leader_change()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(until_leader_changes)
                async with open_rpc_stream(net, peer) as rpc:
                    await _forward(rpc, txs, gossip, first)
        except Exception as exc:  # peer gone or stream refused: retry after a pause
            log.debug(kv("forward_failed", to=target, error=repr(exc)))
            await trio.sleep(0.2)  # back-off before re-dialling


BACKUP_RETRY = 1.0
"""Seconds between two looks for a peer to forward to when there is none (no leader, or a
leader with no follower connected)."""


FORWARD_BATCH = 512
"""Transactions one forwarding call carries at most."""
FORWARD_BATCH_BYTES = 2 * 1024 * 1024
"""Wire bytes one forwarding call carries at most (but one transaction), well inside the RPC
frame limit (4 MiB by default): bounded by count alone, a backlog of 2,000-visit packs (~107
kB each) could make a batch of tens of MB, which the receiver refuses whole (and which would
then all be gossiped)."""
FORWARD_CALL_TIMEOUT = 10.0
"""Seconds a forwarding call may take before its batch is gossiped and the stream redialled."""


async def _forward(rpc: Any, txs: trio.MemoryReceiveChannel[bytes], gossip: Callable[[bytes], None],
                   first: list[bytes] | None = None) -> None:
    """Forward ``first`` (emptied as its batches are handed over, so a caller that retries
    sends only the rest), then in batches whatever queued while the previous calls were in
    flight, each as one ``tx.submit_batch`` (one round trip and one
    frame instead of one per transaction, which was most of the leader's CPU under load).
    ``relay=False``: the receiver pools them and passes them on no further; this node gossips
    each transaction the receiver did not pool, and a whole batch whose call failed or was
    cancelled. Runs until cancelled or the stream breaks."""
    in_flight = trio.Semaphore(4)  # batches pipelined on the one stream

    async def one(batch: list[bytes]) -> None:
        try:
            # Bounded: a frozen backup (a leader's peer, not the leader) is never given up
            # by a leader change; its calls would hang, with every later batch behind them.
            with trio.fail_after(FORWARD_CALL_TIMEOUT):
                result = await rpc.call("tx.submit_batch", {"txs": batch, "relay": False})
        except BaseException as exc:
            # Refused as a whole, the stream broke (peer gone?), no answer in time, or this
            # task was cancelled: gossip carries the batch instead.
            for data in batch:
                gossip(data)
            if isinstance(exc, P2pmktError):
                return
            raise
        finally:
            in_flight.release()
        for data, verdict in zip(batch, result.get("results", ()), strict=False):
            if "txid" not in verdict:
                gossip(data)

    carry: list[bytes] = []  # taken from the channel but over the last batch's byte bound
    try:
        async with trio.open_nursery() as nursery:
            while first:
                await in_flight.acquire()
                n = _batch_length(first)
                nursery.start_soon(one, first[:n])
                del first[:n]
            while True:
                await in_flight.acquire()
                try:
                    batch = [carry.pop() if carry else await txs.receive()]
                except trio.EndOfChannel:
                    return
                size = len(batch[0])
                while len(batch) < FORWARD_BATCH:
                    try:
                        data = txs.receive_nowait()
                    except trio.WouldBlock:
                        break
                    if size + len(data) > FORWARD_BATCH_BYTES:
                        carry.append(data)
                        break
                    batch.append(data)
                    size += len(data)
                nursery.start_soon(one, batch)
    finally:
        for data in carry:  # cancelled holding it: gossip, as a cancelled batch is
            gossip(data)


def _batch_length(txs: Sequence[bytes]) -> int:
    """How many of ``txs``, from the first, make one forwarding batch (at least one)."""
    size = 0
    for n, data in enumerate(txs[:FORWARD_BATCH]):
        size += len(data)
        if size > FORWARD_BATCH_BYTES and n:
            return n
    return min(len(txs), FORWARD_BATCH)


async def _watch_leader_connection(net: Any, driver: Any, members: Any, period: float) -> None:
    """Tell Raft when the leader's connection closes.

    A killed or crashed leader process closes its sockets at once; Raft then elects a new
    leader within a few ticks instead of waiting a whole election timeout (issue 8:
    failover). A host that vanishes silently is still found by the timeout."""
    while True:
        await trio.sleep(period)  # polling period: one Raft tick
        leader = driver.leader
        if leader is None or driver.is_leader:
            continue
        peer = members.peer_of(leader)
        if peer is not None and not net.is_connected(peer):
            log.info(kv("leader_connection_lost", leader=leader))
            driver.leader_lost()


STALE_AFTER = 10.0
"""Seconds a transaction waits in the pool before it is passed on again."""


async def _reannounce(chain: ChainService, announce: Any) -> None:
    """Hand over again transactions that sat in the pool too long (a lost bundle, or a
    leader that dropped what it took, must not stall their sender's later nonces behind
    them); what the receiver refuses is gossiped. Transactions parked behind a nonce that
    never came are dropped after the pool's ttl (they hold pool space and the sender's share)."""
    while True:
        await trio.sleep(2.0)  # period of the stale-transaction sweep
        chain.expire_parked()
        for stx in chain.stale_pending(older_than=STALE_AFTER, limit=500):
            announce(stx)


async def _heads_out(net: Any, heads: trio.MemoryReceiveChannel[bytes]) -> None:
    if net.gossip is None:
        return
    async for data in heads:
        try:
            await net.gossip.publish_head(data)
        except Exception as exc:  # a publish failure must not stop the node
            log.warning(kv("gossip_head_publish_failed", error=repr(exc)))


async def _heads_in(net: Any, app: Any, in_raft: Callable[[], bool]) -> None:
    """Committed blocks announced by the leader: a head beyond ours starts catch-up."""
    if net.gossip is None:
        return
    async for head in net.gossip.heads:
        # A Raft member a block or two behind is just busy applying what Raft delivered;
        # only a real gap (a missed snapshot, a long pause) is worth fetching from peers. A
        # member that is no validator gets blocks only this way: every head counts (it
        # stayed up to CATCH_UP_GAP blocks behind, and at height 0 until the chain was
        # that long).
        gap = CATCH_UP_GAP if in_raft() else 0
        if head.height > app.chain.head().height + gap:
            app.target_height = max(app.target_height, head.height)


PROBE_INTERVAL = 2.0
"""Seconds between asking member peers for blocks beyond our head while no leader is known."""


async def _catch_up(net: Any, app: Any, members: Any, fetch_blocks: Any, max_range: int,
                    leaderless: Callable[[], bool] = lambda: False) -> None:
    """Fetch blocks this node lacks (after a Raft snapshot, or a head announced beyond ours)
    from member peers. While no leader is known it also asks them every ``PROBE_INTERVAL``:
    a node restarted with an empty store knows only the genesis membership, so it refuses
    a leader added later (and its heads) until it has the blocks that made it a member."""
    last_probe = -PROBE_INTERVAL
    while True:
        await trio.sleep(0.2)  # polling period of the catch-up check, not a readiness wait
        want = app.wants()
        if want is None:
            if not leaderless() or trio.current_time() - last_probe < PROBE_INTERVAL:
                continue
            last_probe = trio.current_time()
            head = app.chain.head().height
            want = (head + 1, head + max_range)  # whatever a peer holds beyond our head
        start, end = want
        for peer in net.connected_peers():
            if not members.is_member(peer):
                continue
            try:
                with trio.move_on_after(5):
                    blocks, _head = await fetch_blocks(net, peer, start, min(end, start + max_range - 1))
                    if blocks and app.offer(blocks):
                        log.info(kv("caught_up", to=app.chain.head().height, peer=peer))
                        break
            except LocalError:
                raise  # this node's own failure (its store full at the ceiling): stop, say why
            except Exception as exc:
                log.debug(kv("catch_up_failed", peer=peer, error=repr(exc)))


async def _reconcile_membership(driver: Any, chain: ChainService, members: Any,
                                voters: set[bytes]) -> None:
    """Keep the allowlist, ``voters`` and Raft's configuration in line with the chain's
    membership."""
    from p2pmkt.chain.roles import member_of, validator_set
    from p2pmkt.node.membership import next_conf_change
    from p2pmkt.raft import ProposalDropped

    seen_height = -1
    while True:
        await trio.sleep(0.5)  # polling period: membership changes are rare
        head = chain.head().height
        if head == seen_height and not driver.is_leader:
            continue
        seen_height = head
        with chain.store.snapshot() as snap:
            vs = validator_set(snap)
            pubkeys = [m.pubkey for addr, _ in snap.scan("members") if (m := member_of(snap, addr))]
        if pubkeys:
            members.update(pubkeys)
        if vs.voters:
            voters.clear()
            voters.update(bytes(a) for a in vs.voters)
        if not driver.is_leader:
            continue
        cc = next_conf_change(driver.statistics().status.conf_state, vs.voters, vs.learners)
        if cc is None:
            continue
        try:
            idx = driver.propose_conf_change(cc)
            log.info(kv("conf_change_proposed", type=cc.type.name, node=cc.node_id, index=idx))
            with trio.move_on_after(10):
                await driver.wait_applied(idx)
        except ProposalDropped:
            continue  # one change at a time, or no longer leader: try again next round


def rpc_limits(limits: Limits) -> RpcLimits:
    """The RPC server's limits from the config's ``[limits]`` (until session 9 only the frame
    size was passed on, and the rate and stream settings were silently ignored)."""
    from p2pmkt.net.rpc_stream import RpcLimits  # libp2p: loaded only by a node that runs

    rate = float(limits.rpc_requests_per_second)
    return RpcLimits(max_frame=limits.rpc_max_frame, rate=rate, burst=2 * rate,
                     max_streams_per_peer=limits.rpc_streams_per_peer)


AGENT_ROLE_POLL = 1.0
"""Seconds between looks at committed state while the agent waits for its merchant-tech role."""


def _tech_scopes(chain: ChainService, address: bytes) -> list[str]:
    """Merchants the key at ``address`` is merchant-tech for, in committed state."""
    from p2pmkt.chain.roles import member_of

    with chain.store.snapshot() as snap:
        member = member_of(snap, address)
    roles = member.roles if member is not None else ()
    return [s for r, s in map(parse_role, roles) if r == "merchant-tech"]


async def _run_agent(config: NodeConfig, chain: ChainService, api: ChainApi, key: PrivateKey,
                     reports: trio.MemoryReceiveChannel[Report], rules: RuleSet) -> None:
    """Run the mapping-rules agent once the node's key holds merchant-tech for the rules'
    merchant in committed state (:func:`p2pmkt.agent.choose_merchant`): at start, or when a
    platform key grants the role later (``member add``/``grant``: a role is chain state, not
    the genesis file's). One agent, for one merchant. Reports committed while it waits are
    not its to act on, and are drained so that the channel does not fill."""
    from prometheus_client import Gauge

    from p2pmkt.node.workload import LocalSubmitter, MerchantAgent, run_agent

    said = ""
    while True:
        scopes = [s for r, s in map(parse_role, api.roles()) if r == "merchant-tech"]
        try:
            merchant = choose_merchant(rules, scopes)
            why = ("the node's key holds no merchant-tech role yet" if not scopes else
                   f"the node's key is merchant-tech for {','.join(scopes)}, not {rules.merchant} "
                   "(the rules' merchant)")
            why += "; the agent starts when the role is granted"
        except RulesError as exc:  # roles granted while it waited made the file ambiguous
            merchant, why = None, f"{exc}; then restart the node"
        if merchant is not None:
            break
        if why != said:
            log.warning(kv("agent_waiting", why=why))
            said = why
        with trio.move_on_after(AGENT_ROLE_POLL):
            async for _ in reports:
                pass
            await trio.sleep_forever()  # the channel closed: still wait out the interval
    agent = MerchantAgent(merchant, rules)
    log.info(kv("agent_started", merchant=merchant, rules=str(config.agent.rules)))
    unconfigured = Gauge("p2pmkt_agent_rules_unconfigured",
                         "Rules of the node's agent whose indicator its merchant has not configured "
                         "on chain (each is logged as agent_rule_unconfigured with its file:line)",
                         registry=chain.metrics.registry)
    # Through the node's RPC path, so the agent's updates are forwarded and gossiped too.
    submitter = LocalSubmitter(chain, send=lambda stx: api.submit_tx(stx.encode()))
    await run_agent(agent, reports, submitter, key, on_unconfigured=unconfigured.set)


def run_node_main(config: NodeConfig) -> int:
    """Entry point of ``p2pmkt node run`` (the CLI loads the config and applies its flags):
    runs until SIGINT/SIGTERM; exit code 0 on a clean stop, 2 on a p2pmkt error (e.g. the
    LMDB map at its ceiling), with the reason printed."""
    setup_logging(config.log_level)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(run_node, config)
                async for sig in signals:
                    log.info(kv("node_stopping", signal=signal.Signals(sig).name))
                    break
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except P2pmktError as exc:
        print(f"error ({exc.reason}): {exc}", file=sys.stderr)
        return 2
    return 0
