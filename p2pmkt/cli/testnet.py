"""Local testnets: ``p2pmkt testnet init|up|status|logs|down|reset|demo``.

Layout of a testnet directory (default ``testnet/run``, ignored by git)::

    testnet/run/
      testnet.json          manifest: chain id, nodes, ports, peer ids, addresses, roles
      genesis.json          shared by every node
      node1/config.toml     per node: config, key (0600), data dir, log, pid file
      node1/node.key
      node1/data/
      node1/node.log
      node1/node.pid

Each node listens on 127.0.0.1 at ``base_port + i`` and serves metrics at
``metrics_port + i``. Every node but ``node1`` bootstraps from ``node1`` only; node1
bootstraps from node2. Peer exchange finds the rest (SPEC: discovery).

Nodes run as separate processes in their own sessions (``start_new_session``) so that a
Ctrl-C in the terminal reaches only the supervisor, which then stops them in order.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pmkt.chain.dev import dev_key, testnet_genesis, testnet_roles
from p2pmkt.config import config_toml
from p2pmkt.crypto.keyfile import save_key
from p2pmkt.crypto.keys import PrivateKey, address_hex
from p2pmkt.crypto.peerid import peer_id_of
from p2pmkt.errors import ConfigError

DEFAULT_DIR = Path("testnet/run")
DEFAULT_BASE_PORT = 7101
DEFAULT_METRICS_PORT = 9101


@dataclass(frozen=True, slots=True)
class NodeEntry:
    name: str
    dir: Path
    port: int
    metrics_port: int
    peer_id: str
    address: str
    roles: tuple[str, ...]

    @property
    def multiaddr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.peer_id}"

    @property
    def config(self) -> Path:
        return self.dir / "config.toml"

    @property
    def pid_file(self) -> Path:
        return self.dir / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "node.log"


@dataclass(frozen=True, slots=True)
class Testnet:
    root: Path
    chain_id: str
    nodes: tuple[NodeEntry, ...]

    def node(self, name: str) -> NodeEntry:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigError(
            f"no node {name!r} in {self.root}; nodes are {', '.join(n.name for n in self.nodes)}"
        )


def init_testnet(
    root: Path,
    n: int,
    *,
    random_keys: bool = False,
    base_port: int = DEFAULT_BASE_PORT,
    metrics_port: int = DEFAULT_METRICS_PORT,
    force: bool = False,
    genesis_time: int | None = None,
    rules: dict[str, str] | None = None,
) -> Testnet:
    """Write keys, genesis, configs and the manifest for an ``n``-node testnet.

    Keys are the documented dev keys (``dev_key("node1")``, …) unless ``random_keys``.
    ``rules`` maps a merchant id to a rules TOML text; a merchant-tech node of that merchant
    gets it as its agent's rules file.

    Raises:
        ConfigError: ``root`` already holds a testnet (and not ``force``), or ``n`` < 1.
    """
    if n < 1:
        raise ConfigError("a testnet needs at least 1 node (-n 1 or more)")
    root = root.resolve()  # nodes run with their own directory as cwd
    manifest = root / "testnet.json"
    if manifest.exists():
        if not force:
            raise ConfigError(
                f"{root} already holds a testnet; use `p2pmkt testnet reset` or pass --force"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    layout = testnet_roles(n)
    keys: dict[str, PrivateKey] = {
        name: PrivateKey.generate() if random_keys else dev_key(name) for name, _ in layout
    }
    gtime = genesis_time if genesis_time is not None else int(time.time() * 1000)
    genesis = testnet_genesis(keys, n, genesis_time=gtime)
    genesis.save(root / "genesis.json")
    entries = []
    for i, (name, roles) in enumerate(layout):
        key = keys[name]
        entries.append(
            NodeEntry(
                name=name,
                dir=root / name,
                port=base_port + i,
                metrics_port=metrics_port + i,
                peer_id=peer_id_of(key.public_key.compressed),
                address=address_hex(key.address),
                roles=roles,
            )
        )
    for i, entry in enumerate(entries):
        entry.dir.mkdir(parents=True, exist_ok=True)
        save_key(entry.dir / "node.key", keys[entry.name], overwrite=True)
        boot = entries[1] if i == 0 and len(entries) > 1 else entries[0]
        bootstrap = [boot.multiaddr] if boot is not entry else []
        rules_file = None
        merchants = [r.partition(":")[2] for r in entry.roles if r.startswith("merchant-tech:")]
        for m in merchants:
            if rules and m in rules:
                rules_file = f"rules-{m}.toml"
                (entry.dir / rules_file).write_text(rules[m])
                break
        entry.config.write_text(config_toml(
            name=entry.name, genesis="../genesis.json", listen=[f"/ip4/127.0.0.1/tcp/{entry.port}"],
            bootstrap=bootstrap, metrics=f"127.0.0.1:{entry.metrics_port}", rules=rules_file))
    manifest.write_text(
        json.dumps(
            {
                "chain_id": genesis.chain_id,
                "nodes": [
                    {
                        "name": e.name,
                        "port": e.port,
                        "metrics_port": e.metrics_port,
                        "peer_id": e.peer_id,
                        "address": e.address,
                        "multiaddr": e.multiaddr,
                        "roles": list(e.roles),
                    }
                    for e in entries
                ],
            },
            indent=2,
        )
        + "\n"
    )
    return Testnet(root, genesis.chain_id, tuple(entries))


def load_testnet(root: Path) -> Testnet:
    """Read the manifest written by :func:`init_testnet`.

    Raises:
        ConfigError: no testnet there (with the command that makes one).
    """
    root = root.resolve()  # nodes run with their own directory as cwd
    manifest = root / "testnet.json"
    try:
        obj: dict[str, Any] = json.loads(manifest.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no testnet in {root}; create one with `p2pmkt testnet init -n 4 --dir {root}`"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {manifest}: {exc}") from exc
    nodes = tuple(
        NodeEntry(
            name=n["name"],
            dir=root / n["name"],
            port=n["port"],
            metrics_port=n["metrics_port"],
            peer_id=n["peer_id"],
            address=n["address"],
            roles=tuple(n["roles"]),
        )
        for n in obj["nodes"]
    )
    return Testnet(root, obj["chain_id"], nodes)


def _read_pid(entry: NodeEntry) -> int | None:
    try:
        pid = int(entry.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Node processes this process started: polled and reaped through their Popen objects, so
none lingers as a zombie or is garbage-collected while running (a ResourceWarning)."""


def pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists"; reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done = 0
    return done == 0


def start_nodes(net: Testnet, names: list[str] | None = None) -> list[str]:
    """Start the nodes that are not running; returns the names started."""
    started = []
    for entry in net.nodes:
        if names and entry.name not in names:
            continue
        if _read_pid(entry) is not None:
            continue
        log = open(entry.log_file, "ab")  # noqa: SIM115 - handed to the child process
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "p2pmkt", "node", "run", "--config", str(entry.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=entry.dir,
            )
        finally:
            log.close()
        _CHILDREN[proc.pid] = proc
        entry.pid_file.write_text(f"{proc.pid}\n")
        started.append(entry.name)
    return started


def stop_nodes(net: Testnet, names: list[str] | None = None, *, timeout: float = 10.0) -> list[str]:
    """SIGTERM the running nodes (those of ``names``, default all), wait up to ``timeout`` s,
    then SIGKILL; returns the names stopped."""
    chosen = [e for e in net.nodes if not names or e.name in names]
    running = {e.name: pid for e in chosen if (pid := _read_pid(e)) is not None}
    for pid in running.values():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in running.values()):
        time.sleep(0.05)
    for pid in running.values():
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for entry in chosen:
        entry.pid_file.unlink(missing_ok=True)
    return sorted(running)


def running_pids(net: Testnet) -> dict[str, int]:
    return {e.name: pid for e in net.nodes if (pid := _read_pid(e)) is not None}
