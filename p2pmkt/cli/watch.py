"""Testnet supervision: readiness, status, the demo workload and its live view (``make run``).

Everything here talks to nodes only over the wire protocol (``p2pmkt.client``), as an
operator's tools would; the supervisor signs the demo's transactions with the testnet's node
keys (the terminal node's key for visits, each merchant node's key for its setup), exactly as
those nodes' back-ends would.
"""

from __future__ import annotations

import argparse
import math
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from p2pmkt.cli.testnet import (
    DEFAULT_DIR,
    Testnet,
    load_testnet,
    running_pids,
    start_nodes,
    stop_nodes,
)
from p2pmkt.errors import ConfigError, P2pmktError
from p2pmkt.node.signals import run_until_signal

POLL = 0.25


async def _info(addr: str, limit: float = 3.0) -> dict[str, Any] | None:
    from p2pmkt.client import open_client

    try:
        with trio.fail_after(limit):
            async with open_client(addr) as c:
                return (await c.info()).to_wire()
    except Exception:  # a node that does not answer, for whatever reason, is "not answering"
        return None


async def _infos(net: Testnet) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}

    async def one(name: str, addr: str) -> None:
        out[name] = await _info(addr)

    async with trio.open_nursery() as nursery:
        for e in net.nodes:
            nursery.start_soon(one, e.name, e.multiaddr)
    return out


def ready_state(net: Testnet, infos: dict[str, dict[str, Any] | None]) -> str | None:
    """None when every node answers, agrees on one leader and sees all the others; else why not."""
    missing = [n for n, i in infos.items() if i is None]
    if missing:
        return f"waiting for {', '.join(sorted(missing))} to answer"
    leaders = {i["leader"] for i in infos.values() if i is not None}
    if len(leaders) != 1 or None in leaders:
        return "waiting for a leader"
    want = len(net.nodes) - 1
    lonely = [n for n, i in infos.items() if i is not None and len(i["peers"]) < want]
    if lonely:
        return f"waiting for {', '.join(sorted(lonely))} to connect to all peers"
    return None


async def wait_ready_async(net: Testnet, *, limit: float = 60.0) -> dict[str, Any]:
    """Wait until the testnet is ready (see :func:`ready_state`); returns a summary.

    Raises:
        P2pmktError: not ready within ``limit`` s (the message says what was missing).
    """
    why = "no answer yet"
    with trio.move_on_after(limit):
        while True:
            exited_before_ready(net)
            infos = await _infos(net)
            why = ready_state(net, infos) or ""
            if not why:
                first = next(i for i in infos.values() if i is not None)
                leader = next(e.name for e in net.nodes if e.address == first["leader"])
                return {"leader": leader, "height": max(i["height"] for i in infos.values() if i)}
            await trio.sleep(POLL)  # polling a remote condition, with a deadline
    raise P2pmktError(f"testnet not ready after {limit:.0f} s: {why}; see `p2pmkt testnet logs NODE`")


def exited_before_ready(net: Testnet, lines: int = 5) -> None:
    """Raise if a node of ``net`` is not running (its process exited, e.g. on a config or
    rules error), with the end of its log: waiting out the timeout would not tell why.

    Raises:
        P2pmktError: reason ``node_exited``.
    """
    running = running_pids(net)
    gone = [e for e in net.nodes if e.name not in running]
    if not gone:
        return
    parts = []
    for e in gone:
        try:
            tail = e.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            tail = ["(no log)"]
        parts.append(f"{e.name} is not running; the end of its log ({e.log_file}):\n"
                     + "\n".join(f"  {line}" for line in tail))
    dir_flag = "" if net.root == DEFAULT_DIR.resolve() else f" --dir {net.root}"
    raise P2pmktError("\n".join(parts) + f"\nthe other nodes still run: `p2pmkt testnet down{dir_flag}` "
                      "stops them", reason="node_exited")


def wait_ready(net: Testnet, *, timeout: float = 60.0) -> dict[str, Any]:
    """Blocking :func:`wait_ready_async`."""
    return trio.run(partial(wait_ready_async, net, limit=timeout))


def collect_status(net: Testnet, pids: dict[str, int]) -> list[dict[str, Any]]:
    """One row per node: name, state, roles, multiaddr, and what the node says of itself."""
    infos = trio.run(_infos, net) if pids else {}
    rows = []
    for e in net.nodes:
        info = infos.get(e.name)
        row: dict[str, Any] = {
            "name": e.name, "state": "running" if e.name in pids else "stopped",
            "pid": pids.get(e.name), "roles": list(e.roles), "multiaddr": e.multiaddr,
            "address": e.address, "metrics": f"http://127.0.0.1:{e.metrics_port}/metrics",
        }
        if info is not None:
            row.update(height=info["height"], leader=info["leader"],
                       is_leader=info["leader"] == e.address, peers=len(info["peers"]))
        elif e.name in pids:
            row["state"] = "not answering"
        rows.append(row)
    return rows


# --- the demo --------------------------------------------------------------------------------


class RemoteSubmitter:
    """A :class:`p2pmkt.node.workload.Submitter` over one client connection."""

    def __init__(self, client: Any, chain_id: str) -> None:
        from p2pmkt.node.workload import NonceBook

        self.client = client
        self.chain_id = chain_id

        async def fetch(address: bytes) -> int:
            acct = await client.call("account.get", {"address": bytes(address)})
            return int(acct["pending_nonce"])

        self.nonces = NonceBook(fetch)

    async def submit(self, key: Any, kind: str, payload: dict[str, Any]) -> bytes:
        """See :class:`~p2pmkt.node.workload.Submitter`: the node's ``BUSY`` and
        ``RATE_LIMITED`` answers are raised as :class:`~p2pmkt.errors.Busy` and ``BAD_NONCE``
        as :class:`~p2pmkt.errors.NonceError` (as the in-process submitter raises them), so
        that callers' back-pressure (:func:`~p2pmkt.node.workload.submit_retrying`) works
        over the wire too; other refusals stay :class:`~p2pmkt.rpc.protocol.RpcError`."""
        from p2pmkt.chain.tx import make_tx
        from p2pmkt.errors import Busy, NonceError
        from p2pmkt.rpc.protocol import ErrorCode, RpcError

        nonce = await self.nonces.take(key.address)
        try:
            return bytes(await self.client.submit_tx(make_tx(key, self.chain_id, nonce, kind, payload)))
        except Exception as exc:
            self.nonces.forget(key.address)
            if isinstance(exc, RpcError) and exc.code in (ErrorCode.BUSY, ErrorCode.RATE_LIMITED):
                raise Busy(exc.rpc_message, reason=exc.reason) from exc
            if isinstance(exc, RpcError) and exc.code == ErrorCode.BAD_NONCE:
                raise NonceError(exc.rpc_message, reason=exc.reason) from exc
            raise

    async def marketing(self, merchant: str) -> Any:
        from p2pmkt.market.model import MarketingInfo

        raw = await self.client.market_info(merchant)
        return None if raw is None else MarketingInfo.from_wire(raw)

    async def indicator(self, merchant: str, name: str) -> Any:
        from p2pmkt.market.model import IndicatorSpec

        raw = (await self.client.call("market.indicator", {"merchant": merchant, "name": name}))["indicator"]
        return None if raw is None else IndicatorSpec.from_wire(raw)


@dataclass
class LiveState:
    nodes: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    merchants: dict[str, dict[str, Any]] = field(default_factory=dict)
    blocks: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=200))
    visits_sent: int = 0
    started: float = field(default_factory=time.monotonic)
    last_height: int = 0
    updates: deque[str] = field(default_factory=lambda: deque(maxlen=6))

    def rate(self, idx: int, window: float = 5.0) -> float:
        now = time.monotonic()
        recent = [b for b in self.blocks if now - b[0] <= window]
        if not recent:
            return 0.0
        return sum(b[idx] for b in recent) / window


def render(net: Testnet, st: LiveState) -> Any:
    from rich.console import Group
    from rich.table import Table

    nodes = Table(title=f"p2pmkt testnet {net.chain_id} — {len(net.nodes)} nodes (Ctrl-C stops everything)",
                  expand=True)
    for col in ("node", "roles", "height", "leader", "peers", "mempool", "tx/s", "visits/s"):
        nodes.add_column(col)
    for e in net.nodes:
        info = st.nodes.get(e.name)
        if info is None:
            nodes.add_row(e.name, ", ".join(e.roles), "-", "", "-", "-", "", "")
            continue
        lead = "★" if info["leader"] == e.address else ""
        # Every node applies every block, so the committed rates are the network's.
        nodes.add_row(e.name, ", ".join(e.roles), str(info["height"]), lead, str(len(info["peers"])),
                      str(info.get("mempool", "-")), f"{st.rate(1):.0f}", f"{st.rate(2):.0f}")
    merchants = Table(title="merchants: latest indicator report vs target, marketing information", expand=True)
    for col in ("merchant", "indicator", "value", "target", "status", "info version", "bid / channels"):
        merchants.add_column(col)
    for m, row in sorted(st.merchants.items()):
        merchants.add_row(m, row.get("indicator", "-"), row.get("value", "-"), row.get("target", "-"),
                          row.get("status", "-"), str(row.get("version", "-")), row.get("plan", "-"))
    up = time.monotonic() - st.started
    footer = Table.grid()
    footer.add_row(f"up {up:5.0f} s   visits submitted {st.visits_sent}   chain height {st.last_height}")
    for line in st.updates:
        footer.add_row(line)
    return Group(nodes, merchants, footer)


def _plan(info: dict[str, Any] | None) -> tuple[int | str, str]:
    if not info:
        return "-", "-"
    camps = info.get("campaigns", [])
    plan = "; ".join(f"{c['name']}: bid {c['max_bid']}, {'/'.join(c['channels'])}" for c in camps[:2])
    return info.get("version", "-"), plan


async def _poll_loop(net: Testnet, st: LiveState, merchants: list[str], targets: dict[str, str]) -> None:
    from p2pmkt.client import open_client

    entry = net.nodes[0]
    async with open_client(entry.multiaddr) as c, trio.open_nursery() as nursery:
        for e in net.nodes:
            nursery.start_soon(_watch_node, e.name, e.multiaddr, st)
        while True:
            for m in merchants:
                reports = await c.reports(m, limit=1)
                info = await c.market_info(m)
                row = st.merchants.setdefault(m, {})
                version, plan = _plan(info)
                row.update(version=version, plan=plan, target=targets.get(m, "-"))
                if reports:
                    r = reports[0]
                    vals = dict(tuple(v) for v in r["values"])
                    if r["ok"] and vals:
                        name, v = next(iter(vals.items()))
                        row.update(indicator=f"{r['indicator']}#{r['n']}", value=f"{name} {_percent(v, r['scale'], r['missed'])}",
                                   status="MISSED" if r["missed"] else "on target")
                    else:
                        row.update(indicator=f"{r['indicator']}#{r['n']}", value=r["error"], status="failed")
            await trio.sleep(0.5)  # refresh period of the view


def _percent(value: int, scale: int, missed: bool) -> str:
    """A fixed-point share as a percentage with two decimals, or three when two would round a
    missed value onto a round target (1.998 % is not "2.00 % MISSED")."""
    text = f"{value / 10 ** scale:.2%}"
    return f"{value / 10 ** scale:.3%}" if missed and text.endswith("0%") else text


async def _watch_node(name: str, addr: str, st: LiveState) -> None:
    """Keep one connection to a node and refresh what it says of itself (reconnect if lost)."""
    from p2pmkt.client import open_client

    while True:
        try:
            async with open_client(addr) as c:
                while True:
                    with trio.fail_after(3):
                        st.nodes[name] = (await c.info()).to_wire()
                    await trio.sleep(0.5)  # refresh period of the view
        except Exception:  # node down or not answering: show it so, try again shortly
            st.nodes[name] = None
            await trio.sleep(1.0)  # back-off before reconnecting


async def _block_feed(net: Testnet, st: LiveState) -> None:
    from p2pmkt.client import open_client

    async with open_client(net.nodes[0].multiaddr) as c, c.subscribe(["block", "market"]) as events:
        async for ev in events:
            if ev.kind == "block":
                st.blocks.append((time.monotonic(), ev.data["txs"], ev.data.get("visits", 0)))
                st.last_height = ev.data["height"]
            elif ev.kind == "market":
                d = ev.data
                st.updates.append(f"block {d['height']}: {d['merchant']} marketing v{d['version']}"
                                  + (f" caused by report {d['cause']}" if d["cause"] else " (manual)"))


async def run_demo_async(net: Testnet, args: argparse.Namespace, *, live: bool) -> None:
    from p2pmkt.chain.genesis import parse_role
    from p2pmkt.client import open_client
    from p2pmkt.crypto.keyfile import load_key
    from p2pmkt.demo import DEMO_MERCHANTS, TARGETS
    from p2pmkt.node.workload import DemoMerchant, run_visit_stream, setup_demo

    merchant_nodes = {}
    terminal = None
    for e in net.nodes:
        for role, scope in map(parse_role, e.roles):
            if role == "merchant-ops" and scope in DEMO_MERCHANTS:
                merchant_nodes[scope] = e
            if role == "terminal" and terminal is None:
                terminal = e
    if terminal is None:
        raise P2pmktError("the testnet has no terminal node to submit visits through")
    targets = {m: f"≥ {TARGETS[m].target.threshold / 10 ** TARGETS[m].scale:.2%}" for m in merchant_nodes}
    st = LiveState()
    async with trio.open_nursery() as nursery:
        for m, e in merchant_nodes.items():
            async with open_client(e.multiaddr) as c:
                key = load_key(e.dir / "node.key")
                await setup_demo(RemoteSubmitter(c, net.chain_id), [DemoMerchant(m, key, key)])

        async def stream() -> None:
            assert terminal is not None
            async with open_client(terminal.multiaddr) as c:
                def count(n: int) -> None:
                    st.visits_sent += n
                await run_visit_stream([(RemoteSubmitter(c, net.chain_id), load_key(terminal.dir / "node.key"))],
                                       sorted(merchant_nodes), visits_per_second=args.visits_per_second,
                                       max_per_tx=2000, counter=count)

        nursery.start_soon(stream)
        nursery.start_soon(_block_feed, net, st)
        nursery.start_soon(_poll_loop, net, st, sorted(merchant_nodes), targets)
        if live:
            from rich.live import Live

            with Live(render(net, st), refresh_per_second=4, screen=False) as view:
                deadline = time.monotonic() + args.duration if args.duration else math.inf
                while time.monotonic() < deadline:
                    view.update(render(net, st))
                    await trio.sleep(0.25)  # redraw period
        else:
            deadline = time.monotonic() + args.duration if args.duration else math.inf
            while time.monotonic() < deadline:
                await trio.sleep(2.0)  # status line period
                print(f"height {st.last_height} visits submitted {st.visits_sent} "
                      f"tx/s {st.rate(1):.0f} visits/s {st.rate(2):.0f} "
                      + " ".join(f"{m}:{r.get('value', '-')}/{r.get('status', '-')}/v{r.get('version', '-')}"
                                 for m, r in sorted(st.merchants.items())), flush=True)
        nursery.cancel_scope.cancel()


def run_demo(args: argparse.Namespace, *, init: bool = True, start: bool = True, stop: bool = True) -> int:
    """Run the demo workload against the testnet in ``args.dir`` until Ctrl-C or ``args.duration``.

    ``p2pmkt testnet demo`` (``make run``) does it all: ``init`` a testnet if there is none,
    ``start`` its nodes, and ``stop`` them at the end. ``p2pmkt testnet up --demo`` starts the
    nodes and leaves them running; ``p2pmkt demo`` needs them running already.

    Raises:
        ConfigError: no testnet (``init`` false), or its nodes are not running (``start``
            false); the message says which command to run.
    """
    import sys

    from p2pmkt.cli.testnet import init_testnet
    from p2pmkt.cli.testnet_cmd import _demo_rules

    if init and not (args.dir / "testnet.json").exists():
        net = init_testnet(args.dir, args.n, rules=_demo_rules())
        print(f"initialised a {args.n}-node testnet in {args.dir}")
    else:
        net = load_testnet(args.dir)
    dir_flag = "" if args.dir == DEFAULT_DIR else f" --dir {args.dir}"
    if not start:
        down = [e.name for e in net.nodes if e.name not in running_pids(net)]
        if down:
            raise ConfigError(f"{', '.join(down)} of the testnet in {args.dir} not running: start it with "
                              f"`p2pmkt testnet up{dir_flag}` (or run `p2pmkt testnet demo{dir_flag}`, "
                              "which starts and stops it)")
    live = not args.no_live and sys.stdout.isatty()
    # SIGTERM (e.g. from a supervisor) stops the demo like Ctrl-C does: it is turned into a
    # SIGINT so that trio delivers the KeyboardInterrupt at a safe point (raising it from the
    # handler itself can tear trio's run loop apart: "guest run got abandoned").
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        if start:
            started = start_nodes(net)
            print(f"started {', '.join(started) or 'nothing (all running)'}; waiting for a leader…", flush=True)

        async def main() -> None:
            ready = await wait_ready_async(net, limit=90)
            print(f"ready: leader {ready['leader']}, height {ready['height']}", flush=True)
            await run_demo_async(net, args, live=live)

        trio.run(run_until_signal, main)
    except BaseException as exc:
        from p2pmkt.cli.main import unwrap_group

        # Ctrl-C reaches us bare or inside trio's exception groups; either way it is the
        # normal way to stop the demo.
        if not isinstance(unwrap_group(exc), KeyboardInterrupt):
            raise
    finally:
        if stop:
            stopped = stop_nodes(net)
            print(f"stopped {', '.join(stopped) or 'nothing'}; state kept in {args.dir} "
                  f"(`p2pmkt testnet reset{dir_flag}` wipes it)")
            left = running_pids(net)
            if left:
                print(f"warning: still running: {left}")
        else:
            print(f"demo workload stopped; the nodes keep running (`p2pmkt testnet down{dir_flag}` stops them)")
    return 0
