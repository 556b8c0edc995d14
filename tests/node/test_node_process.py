"""``p2pmkt node run`` as an operator runs it: a node that cannot serve stops with the reason
(exit 2) instead of running on unreachable, two nodes never share a data directory, and the
health gauges a scraper reads are current without anyone calling the node."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pmkt.chain.genesis import Genesis, Member
from p2pmkt.crypto import save_key
from p2pmkt.crypto.keys import PrivateKey

from .test_agent_process import CLI, ENV, _cli, _free_port, _Lines, stop

pytestmark = pytest.mark.slow


@pytest.fixture
def net(tmp_path: Path) -> Path:
    """A one-validator chain (``v``) and its node directory n1, on free ports."""
    key = PrivateKey.generate()
    save_key(tmp_path / "v.key", key)
    Genesis("ops-net", 1764028800000, (Member("v", key.public_key.compressed, ("platform",)),),
            ("v",)).save(tmp_path / "genesis.json")
    return tmp_path


def _init(net: Path, listen: int, metrics: int) -> None:
    done = _cli("node", "init", "n1", "--genesis", "genesis.json", "--name", "n1", "--key", "v.key",
                "--listen", f"/ip4/127.0.0.1/tcp/{listen}", "--metrics", f"127.0.0.1:{metrics}",
                "--force", cwd=net)
    assert done.returncode == 0, done.stderr


def _start(net: Path) -> tuple[subprocess.Popen[str], _Lines]:
    proc = subprocess.Popen([*CLI, "node", "run", "--config", "n1/config.toml"], cwd=net, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    return proc, _Lines(proc)


@pytest.fixture
def running(net: Path) -> Iterator[tuple[subprocess.Popen[str], _Lines, int]]:
    """n1 running; yields the process, its log and its metrics port."""
    metrics = _free_port()
    _init(net, _free_port(), metrics)
    proc, lines = _start(net)
    try:
        lines.wait_for(r"node_started ")
        yield proc, lines, metrics
    finally:
        stop(proc, lines)


def _exits_with(net: Path, message: str) -> None:
    done = _cli("node", "run", "--config", "n1/config.toml", cwd=net, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "node_started" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert re.search(message, done.stderr), done.stderr[-2000:]


def test_a_second_node_on_the_same_data_directory_is_refused(
    net: Path, running: tuple[subprocess.Popen[str], _Lines, int]
) -> None:
    proc, _lines, metrics = running
    # Its own metrics port: what is refused is the directory, whatever else differs.
    text = (net / "n1" / "config.toml").read_text()
    (net / "n1" / "config.toml").write_text(text.replace(f"127.0.0.1:{metrics}", f"127.0.0.1:{_free_port()}"))
    _exits_with(net, rf"error: {re.escape(str(net / 'n1' / 'data'))} is in use by another node "
                     rf"process \(pid {proc.pid}\): stop it first")
    assert proc.poll() is None, "the first node kept running"


def test_a_listen_port_in_use_stops_the_node_with_the_reason(net: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        _init(net, port, _free_port())
        _exits_with(net, rf"error: cannot listen on /ip4/127\.0\.0\.1/tcp/{port} \(see the error "
                         r"above: the port in use by another process")


def test_a_metrics_port_in_use_stops_the_node_naming_it(net: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        _init(net, _free_port(), port)
        _exits_with(net, rf"error: cannot serve metrics on 127\.0\.0\.1:{port}: Address already in use")


def test_health_gauges_are_current_without_any_client_call(
    running: tuple[subprocess.Popen[str], _Lines, int],
) -> None:
    """Leadership, peers and height were set only while answering node.info: a scraper
    read p2pmkt_raft_is_leader 0 on the leader until someone ran `node status`."""
    _proc, _lines, metrics = running
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        if re.search(r"^p2pmkt_raft_is_leader 1\.0$", text, re.M):
            break
        assert time.monotonic() < deadline, "the only validator never showed as leader"
        time.sleep(0.2)  # polling the scrape endpoint, with a deadline
    assert re.search(r"^p2pmkt_peers 0\.0$", text, re.M)
    assert re.search(r"^p2pmkt_height 0\.0$", text, re.M)


def test_a_client_signing_with_the_nodes_own_key_is_not_taken_for_a_peer(
    net: Path, running: tuple[subprocess.Popen[str], _Lines, int],
) -> None:
    """An operator on the node's machine passing its node.key: the client connected with the
    node's own peer id, and the node listed itself among its connected members."""
    _proc, lines, _metrics = running
    started = next(line for line in lines.seen if "node_started " in line)
    assert " validator=voter" in started  # the chain's view (was genesis's True/False)
    addr = re.search(r" addrs=(\S+)", started).group(1).split(",")[0]  # type: ignore[union-attr]
    done = _cli("node", "status", "--connect", addr, "--key", "v.key", "--json", cwd=net)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["peers"] == [], info
