"""Prometheus metrics of one node (issue 7: observability).

One :class:`NodeMetrics` per node, on its own ``CollectorRegistry`` so that several nodes in
one process (tests, the dev chain) never collide. ``serve`` exposes it over HTTP with
prometheus_client's own server (a daemon thread it owns; scraping is read-only).

Rejections are counted by ``reason``: the stable slug of the :mod:`p2pmkt.errors` class that
rejected the input (``bad_signature``, ``bad_nonce``, ``permission_denied``, ``decode``, …) and
``where`` it was rejected (``rpc``, ``gossip``, ``block``, ``mempool``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class NodeMetrics:
    def __init__(self, node: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.height = Gauge("p2pmkt_height", "Height of the last applied block", registry=r)
        self.blocks = Counter("p2pmkt_blocks_applied", "Blocks applied", registry=r)
        self.txs = Counter(
            "p2pmkt_txs_applied", "Transactions applied in blocks", ["status"], registry=r
        )
        self.visits = Counter("p2pmkt_visits_committed", "Visits committed in blocks", registry=r)
        self.reports = Counter("p2pmkt_reports", "Indicator reports written", ["ok"], registry=r)
        self.updates = Counter("p2pmkt_market_updates", "Marketing updates committed", registry=r)
        self.rejected = Counter(
            "p2pmkt_rejected",
            "Inputs rejected, by reason and where",
            ["reason", "where"],
            registry=r,
        )
        self.commit_latency = Histogram(
            "p2pmkt_commit_latency_seconds",
            "Time from a transaction entering the mempool to its block being applied",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.apply_seconds = Histogram(
            "p2pmkt_block_apply_seconds",
            "Time to apply and commit one block",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.mempool = Gauge(
            "p2pmkt_mempool_txs", "Transactions waiting in the mempool", registry=r
        )
        self.peers = Gauge("p2pmkt_peers", "Connected peers", registry=r)
        self.raft_term = Gauge("p2pmkt_raft_term", "Current Raft term", registry=r)
        self.raft_leader = Gauge("p2pmkt_raft_is_leader", "1 when this node leads", registry=r)
        self.gc_pause = Histogram(
            "p2pmkt_gc_pause_seconds",
            "Python garbage-collector pauses of the node's process, by generation",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.contract_fuel = Counter(
            "p2pmkt_contract_fuel", "Wasm fuel consumed by indicator contracts", registry=r
        )

    def watch_gc(self) -> Callable[[], None]:
        """Observe every garbage collection's pause in :attr:`gc_pause`; returns the undo.

        A full collection walks every live object; its pause stops the event loop (ticks,
        heartbeats, RPC), so it belongs in the node's latency story."""
        started = [0.0]

        def callback(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                self.gc_pause.labels(generation=str(info["generation"])).observe(
                    time.perf_counter() - started[0])

        gc.callbacks.append(callback)
        return lambda: gc.callbacks.remove(callback)

    def reject(self, reason: str, where: str) -> None:
        self.rejected.labels(reason=reason, where=where).inc()

    def serve(self, listen: str) -> int:
        """Serve ``/metrics`` on ``HOST:PORT`` (port 0 picks one); returns the port."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host or "127.0.0.1", registry=self.registry
        )
        return int(server.server_port)
