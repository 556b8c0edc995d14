"""A local multi-process testnet for benchmarks and fault injection, cleaned up on every exit.

Theory of operation
-------------------
:class:`Cluster` wraps :mod:`p2pmkt.cli.testnet` (the same ``init_testnet`` /
command line, pid files and ``stop_nodes`` the CLI uses) with what a harness needs and the CLI does not
offer:

* free ports picked at init (a run never collides with a developer's ``testnet up``);
* optional extra *submitter* members (``bench01`` …, role ``terminal``) added to the genesis
  before any node starts: the mempool lets one sender queue at most ``max_nonce_gap`` (64)
  transactions ahead of its committed nonce, so a throughput run needs many senders;
* fault primitives on node processes: ``kill`` (SIGKILL), ``pause``/``resume``
  (SIGSTOP/SIGCONT, the partition fallback when network namespaces are not used), ``restart``;
* in-node fault hooks: :meth:`Cluster.set_clock_offset` moves a running node's block-time clock
  (``p2pmkt.node.clock``, test-only: every node is started with ``P2PMKT_FAULT_CLOCK_FILE``
  naming ``<node dir>/fault-clock``); :meth:`Cluster.set_storage` gives a node a small LMDB map
  before it starts, and :meth:`Cluster.exit_status` tells how a node process ended;
* :meth:`Cluster.close` stops every node it started (SIGTERM, then SIGKILL, then it resumes
  and kills any node still paused) and is called from ``__exit__``; :func:`guard_signals`
  turns SIGTERM into KeyboardInterrupt so ``finally`` blocks run on it as on Ctrl-C.

The async helpers below talk to nodes only through :mod:`p2pmkt.client`, the way an
operator's tools would. Readiness is polled with deadlines, never waited out with a sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from p2pmkt.chain.genesis import Member, load_genesis
from p2pmkt.cli.testnet import Testnet, init_testnet, load_testnet, pid_alive, stop_nodes
from p2pmkt.crypto.keyfile import load_key
from p2pmkt.crypto.keys import PrivateKey, address_hex

POLL = 0.05
"""Period of remote-condition polls (each poll has a deadline)."""


def free_port_block(count: int, *, lo: int = 20000, hi: int = 60000) -> int:
    """First port of ``count`` consecutive TCP ports on 127.0.0.1 that are free now."""
    import random

    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(lo, hi - count)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {count} free ports in {lo}..{hi}")


def submitter_key(i: int) -> PrivateKey:
    from p2pmkt.chain.dev import dev_key

    return dev_key(f"bench{i:02d}")


_LIVE: list[Cluster] = []
"""Clusters not closed yet: :func:`close_all` stops their nodes whatever happened."""


def close_all() -> None:
    for cluster in list(_LIVE):
        cluster.close()


def guard_signals() -> None:
    """SIGTERM behaves like Ctrl-C, and every cluster is closed at exit.

    A KeyboardInterrupt may surface inside trio's own machinery, abandoning the run without
    unwinding ``with Cluster(...)`` blocks, so scripts also call :func:`close_all` at exit.
    """
    import atexit

    def _raise(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
    atexit.register(close_all)


def process_cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used so far: user + system, from /proc (Linux)."""
    # Fields 14 and 15 of /proc/PID/stat, counted after the command's closing parenthesis
    # (the command itself may hold spaces or parentheses).
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

@dataclass(eq=False)
class Cluster:
    """A testnet directory plus the node processes this object started."""

    n: int = 4
    submitters: int = 0
    root: Path | None = None
    rules: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    netns: bool = False
    """Run each node in its own network namespace (see tools/chaos/netns.py): real cuts."""
    net: Testnet = field(init=False)
    ns: Any = field(init=False, default=None)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(init=False, default=None)
    _paused: set[str] = field(init=False, default_factory=set)
    _pids: dict[str, int] = field(init=False, default_factory=dict)
    _args: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict)
    _procs: list[Any] = field(init=False, default_factory=list)
    _proc_of: dict[str, Any] = field(init=False, default_factory=dict)
    small_map: str | None = field(init=False, default=None)
    """The node :meth:`set_storage` gave a small map (the ``map-full`` fault's victim)."""

    def __post_init__(self) -> None:
        _LIVE.append(self)
        if self.root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="p2pmkt-cluster-")
            self.root = Path(self._tmp.name)
        base = free_port_block(self.n)
        metrics = free_port_block(self.n)
        rules = None
        if self.rules:
            from p2pmkt.cli.testnet_cmd import _demo_rules

            rules = _demo_rules()
        init_testnet(self.root, self.n, base_port=base, metrics_port=metrics, force=True, rules=rules)
        if self.submitters or self.params:
            self._extend_genesis()
        self.net = load_testnet(self.root)
        if self.netns:
            self._setup_netns()

    def _setup_netns(self) -> None:
        import json
        import re

        from .netns import Netns

        self.ns = Netns(f"{(os.getpid() ^ time.monotonic_ns()) & 0xFFFF:04x}", self.n)
        try:
            self.ns.setup()
        except BaseException:
            self.ns.teardown()
            raise
        nodes = self.net.nodes
        for i, e in enumerate(nodes):
            boot = nodes[1] if i == 0 else nodes[0]
            j = 1 if i == 0 else 0
            text = e.config.read_text()
            text = re.sub(r"^listen = .*$", "listen = " + json.dumps(
                [f"/ip4/{self.ns.peer_ip(i)}/tcp/{e.port}", f"/ip4/{self.ns.client_ip(i)}/tcp/{e.port}"]),
                text, flags=re.M)
            text = re.sub(r"^bootstrap = .*$", "bootstrap = " + json.dumps(
                [f"/ip4/{self.ns.peer_ip(j)}/tcp/{boot.port}/p2p/{boot.peer_id}"]), text, flags=re.M)
            text = re.sub(r"^metrics = .*$", f'metrics = "{self.ns.client_ip(i)}:{e.metrics_port}"',
                          text, flags=re.M)
            e.config.write_text(text)

    def cut(self, name: str) -> None:
        """Cut ``name`` off from the other nodes (netns clusters only)."""
        self.ns.cut(self.names.index(name))

    def heal(self, name: str) -> None:
        self.ns.heal(self.names.index(name))

    def _extend_genesis(self) -> None:
        import dataclasses

        assert self.root is not None
        path = self.root / "genesis.json"
        g = load_genesis(path)
        extra = tuple(
            Member(name=f"bench{i:02d}", pubkey=submitter_key(i).public_key.compressed, roles=("terminal",))
            for i in range(self.submitters)
        )
        params = dataclasses.replace(g.params, **self.params)
        dataclasses.replace(g, members=g.members + extra, params=params).save(path)

    # --- processes -------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.net.nodes]

    def addr(self, name: str) -> str:
        e = self.net.node(name)
        if self.ns is not None:
            return f"/ip4/{self.ns.client_ip(self.names.index(name))}/tcp/{e.port}/p2p/{e.peer_id}"
        return e.multiaddr

    def key(self, name: str) -> PrivateKey:
        return load_key(self.net.node(name).dir / "node.key")

    def name_of(self, address: str | None) -> str | None:
        return next((e.name for e in self.net.nodes if e.address == address), None)

    def set_storage(self, name: str, *, map_size: str, max_map_size: str) -> None:
        """Give ``name`` these LMDB map limits (a ``[storage]`` section in its config)."""
        config = self.net.node(name).config
        text = config.read_text()
        assert "[storage]" not in text, "set_storage once per node"
        config.write_text(text + f'\n[storage]\nmap_size = "{map_size}"\nmax_map_size = "{max_map_size}"\n')
        self.small_map = name

    def clock_file(self, name: str) -> Path:
        return self.net.node(name).dir / "fault-clock"

    def set_clock_offset(self, name: str, offset_ms: int) -> None:
        """Make ``name``'s block-time clock run ``offset_ms`` ahead (negative: behind); the
        running node picks it up at its next block proposal (test-only hook)."""
        path = self.clock_file(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{offset_ms}\n")
        tmp.replace(path)  # atomic: the node never reads half a number

    def raft_fault_file(self, name: str) -> Path:
        return self.net.node(name).dir / "fault-raft"

    def set_raft_fault(self, name: str, *, delay_ms: int = 0, loss: float = 0.0) -> None:
        """Give ``name``'s outgoing Raft messages this latency and loss (0 and 0: none); the
        running node picks it up at its next message (test-only hook, ``p2pmkt.net.faults``:
        the stand-in for ``tc netem``, which this machine's kernel lacks)."""
        path = self.raft_fault_file(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"delay_ms={delay_ms} loss={loss}\n")
        tmp.replace(path)  # atomic, as for the clock

    def exit_status(self, name: str) -> int | None:
        """The exit status of the last process started for ``name``, None while it runs."""
        proc = self._proc_of.get(name)
        if proc is None:
            raise RuntimeError(f"{name} was never started by this cluster")
        code: int | None = proc.poll()
        if code is not None:
            self.net.node(name).pid_file.unlink(missing_ok=True)
            self._pids.pop(name, None)
        return code

    def start(self, names: Sequence[str] | None = None, *, args: Sequence[str] | None = None) -> float:
        """Start the named nodes (default all), with extra ``p2pmkt node run`` arguments;
        returns the monotonic time just before. Without ``args`` a node gets those of its
        previous start: a restart after a fault keeps what an operator changed (the map-full
        victim's raised ``--max-map-size``; restarted without it, it filled its small map
        again and stopped, and the next fault waited in vain for it to answer)."""
        t0 = time.monotonic()
        started = self._start_procs(names, args)
        for name in started:
            self._pids[name] = int(self.net.node(name).pid_file.read_text())
        return t0

    def _start_procs(self, names: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
        """Like ``p2pmkt.cli.testnet.start_nodes`` (same command, log, pid file, session), but
        keeps the Popen objects so that they are reaped (pytest turns the ResourceWarning of
        a dropped, still-running Popen into an error)."""
        import subprocess
        import sys

        started = []
        for i, e in enumerate(self.net.nodes):
            if (names and e.name not in names) or self.pid(e.name) is not None:
                continue
            if args is not None:
                self._args[e.name] = tuple(args)
            argv = [sys.executable, "-m", "p2pmkt", "node", "run", "--config", str(e.config),
                    *self._args.get(e.name, ())]
            env = {**os.environ, "P2PMKT_FAULT_CLOCK_FILE": str(self.clock_file(e.name)),
                   "P2PMKT_FAULT_RAFT_FILE": str(self.raft_fault_file(e.name))}
            with open(e.log_file, "ab") as log:
                proc = subprocess.Popen(
                    self.ns.command(i, argv) if self.ns is not None else argv,
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True, cwd=e.dir, env=env)
            e.pid_file.write_text(f"{proc.pid}\n")
            self._procs.append(proc)
            self._proc_of[e.name] = proc
            started.append(e.name)
        return started

    def pid(self, name: str) -> int | None:
        pid = self._pids.get(name)
        return pid if pid is not None and pid_alive(pid) else None

    def signal(self, name: str, sig: int) -> None:
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        os.kill(pid, sig)

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` and reap it (so its ports and LMDB lock are free for a restart)."""
        pid = self.pid(name)
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        self._paused.discard(name)
        deadline = time.monotonic() + 10
        while pid_alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} (pid {pid}) survived SIGKILL for 10 s")
            time.sleep(0.01)
        self.net.node(name).pid_file.unlink(missing_ok=True)
        self._pids.pop(name, None)

    def pause(self, name: str) -> None:
        self.signal(name, signal.SIGSTOP)
        self._paused.add(name)

    def resume(self, name: str) -> None:
        self.signal(name, signal.SIGCONT)
        self._paused.discard(name)

    def rss_kib(self, name: str, field: str = "VmRSS") -> int:
        """Resident memory of the node's process from /proc (``VmRSS`` in all; ``RssAnon``
        is its heap, ``RssFile`` its mapped files: libraries and touched LMDB pages)."""
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} for pid {pid}")

    def cpu_seconds(self, name: str) -> float:
        """CPU time the node's process has used so far (user + system, from /proc)."""
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        return process_cpu_seconds(pid)

    def close(self) -> None:
        if self in _LIVE:
            _LIVE.remove(self)
        if not hasattr(self, "net"):  # init failed before the testnet existed
            if self._tmp is not None:
                self._tmp.cleanup()
            return
        for name in list(self._paused):
            try:
                self.resume(name)
            except (RuntimeError, ProcessLookupError):
                pass
        stop_nodes(self.net, timeout=5.0)
        for name, pid in list(self._pids.items()):
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._pids.pop(name, None)
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except Exception:
                proc.kill()
                proc.wait()
        self._procs.clear()
        if self.ns is not None:
            self.ns.teardown()
        if self._tmp is not None and not os.environ.get("P2PMKT_KEEP_CLUSTER"):
            self._tmp.cleanup()

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.net.node(name).log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- async helpers over the client protocol -------------------------------------------------


async def node_info(addr: str, limit: float = 2.0) -> dict[str, Any] | None:
    from p2pmkt.client import open_client

    try:
        with trio.fail_after(limit):
            async with open_client(addr) as c:
                info: dict[str, Any] = (await c.info()).to_wire()
                return info
    except Exception:
        return None


async def infos(cluster: Cluster, names: Iterable[str] | None = None) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}

    async def one(name: str) -> None:
        out[name] = await node_info(cluster.addr(name))

    async with trio.open_nursery() as nursery:
        for name in names or cluster.names:
            nursery.start_soon(one, name)
    return out


async def wait_leader(
    cluster: Cluster, names: Sequence[str] | None = None, *, timeout: float = 60.0,  # noqa: ASYNC109
    exclude: str | None = None, connected: bool = True,
) -> str:
    """Poll until every node of ``names`` answers and they agree on a leader (not ``exclude``).

    With ``connected``, also wait until each sees the others in ``names`` as peers.

    Raises:
        trio.TooSlowError: not so within ``timeout`` (the last reason is in the message).
    """
    names = list(names or cluster.names)
    why = "no answer"
    with trio.move_on_after(timeout):
        while True:
            got = await infos(cluster, names)
            leaders = {i["leader"] for i in got.values() if i is not None}
            if any(i is None for i in got.values()):
                why = "not all answer: " + ",".join(n for n, i in got.items() if i is None)
            elif len(leaders) != 1 or None in leaders:
                why = f"no agreed leader: {leaders}"
            elif cluster.name_of(next(iter(leaders))) == exclude:
                why = f"leader is still {exclude}"
            elif connected and any(len(i["peers"]) < len(names) - 1 for i in got.values() if i):
                why = "not fully connected: " + ", ".join(
                    f"{n} sees {len(i['peers'])}" for n, i in got.items() if i and len(i["peers"]) < len(names) - 1)
            else:
                leader = cluster.name_of(next(iter(leaders)))
                assert leader is not None
                return leader
            await trio.sleep(POLL)  # polling a remote condition, with a deadline
    raise trio.TooSlowError(f"no leader within {timeout} s: {why}")


async def wait_height(addr: str, height: int, *, timeout: float = 60.0) -> int:  # noqa: ASYNC109
    """Poll ``chain.head`` until it reaches ``height``; returns the height seen."""
    from p2pmkt.client import open_client

    with trio.fail_after(timeout):
        while True:
            try:
                async with open_client(addr) as c:
                    while True:
                        h = int((await c.head()).height)
                        if h >= height:
                            return h
                        await trio.sleep(POLL)  # polling a remote condition, with a deadline
            except (OSError, Exception) as exc:
                if isinstance(exc, trio.Cancelled):
                    raise
                await trio.sleep(POLL)  # the node is not serving yet
    raise AssertionError("unreachable")


async def block_hashes(addr: str, start: int, end: int, *, concurrency: int = 32) -> dict[int, bytes]:
    """``height → block hash`` for ``start..end`` from one node, via ``chain.block``."""
    from p2pmkt.client import open_client

    out: dict[int, bytes] = {}
    async with open_client(addr) as c:
        todo = iter(range(start, end + 1))

        async def worker() -> None:
            for h in todo:
                res = await c.call("chain.block", {"height": h})
                out[h] = bytes(res["hash"])

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
    return out


async def block_txids(addr: str, start: int, end: int, *, concurrency: int = 16) -> dict[int, tuple[bytes, list[bytes], int]]:
    """``height → (block hash, txids, block time)`` for ``start..end`` from one node."""
    from p2pmkt.chain.block import decode_block
    from p2pmkt.client import open_client

    out: dict[int, tuple[bytes, list[bytes], int]] = {}
    async with open_client(addr) as c:
        todo = iter(range(start, end + 1))

        async def worker() -> None:
            for h in todo:
                res = await c.call("chain.block", {"height": h})
                blk = decode_block(res["block"], max_size=1 << 30)
                out[h] = (bytes(blk.hash), [bytes(t.txid) for t in blk.txs], int(blk.header.time))

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
    return out


def visit(i: int, merchant: str = "acme") -> list[Any]:
    """One small valid visit in wire form."""
    return [f"10.0.{(i >> 8) & 255}.{i & 255}", f"user{i}", 1_764_000_000_000 + i, merchant,
            "browser", "view", f"item{i % 100}", 0]


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def address_of(key: PrivateKey) -> str:
    return address_hex(key.address)
