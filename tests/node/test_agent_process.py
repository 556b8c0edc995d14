"""The merchant-tech agent's rules file on the real load paths: ``p2pmkt node init --rules``
and ``p2pmkt node run``, run as processes as an operator runs them.

A one-validator chain whose key ``tech`` is merchant-ops for acme and merchant-tech for acme
and globex: a node of that key must be told which merchant its agent acts for.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pmkt.chain.genesis import Genesis, Member
from p2pmkt.crypto import save_key
from p2pmkt.crypto.keys import PrivateKey

CLI = [sys.executable, "-m", "p2pmkt"]
ENV = dict(os.environ, PYTHONUNBUFFERED="1")

GLOBEX_RULES = """\
# globex's rules
version = 1
merchant = "globex"

[[rule]]
name = "conversion-low"
indicator = "conversion"
when = "below_target"
actions = [{ raise_bid_pct = 10, max_bid = 200 }]

[[rule]]
name = "typo"
indicator = "conversoin"
actions = [{ add_channel = "email" }]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cli(*args: str | Path, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=ENV, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture
def net(tmp_path: Path) -> Path:
    """genesis.json (chain agents-net: ``tech`` validates) and tech.key in ``tmp_path``."""
    key = PrivateKey.generate()
    save_key(tmp_path / "tech.key", key)
    roles = ("merchant-ops:acme", "merchant-tech:acme", "merchant-tech:globex")
    Genesis("agents-net", 1764028800000, (Member("tech", key.public_key.compressed, roles),),
            ("tech",)).save(tmp_path / "genesis.json")
    return tmp_path


def _init_then_write(net: Path, rules_text: str) -> None:
    """``node init`` with acme's rules, then DIR/rules.toml replaced by ``rules_text`` (as an
    engineer edits the node's rules before ``node run``)."""
    done = _init(net, GLOBEX_RULES.replace('"globex"', '"acme"'))
    assert done.returncode == 0, done.stderr
    (net / "n1" / "rules.toml").write_text(rules_text)


def _init(net: Path, rules_text: str) -> subprocess.CompletedProcess[str]:
    (net / "rules.toml").write_text(rules_text)
    return _cli("node", "init", "n1", "--genesis", "genesis.json", "--name", "n1", "--key", "tech.key",
                "--listen", f"/ip4/127.0.0.1/tcp/{_free_port()}", "--metrics", f"127.0.0.1:{_free_port()}",
                "--rules", "rules.toml", "--force", cwd=net)


def test_node_init_refuses_rules_no_agent_could_run_naming_the_file_and_line(net: Path) -> None:
    acme = GLOBEX_RULES.replace('"globex"', '"acme"')
    bad_name = acme.replace('indicator = "conversoin"', 'indicator = "Conversion Rate"')
    done = _init(net, bad_name)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: rules.toml line 13: indicator 'Conversion Rate' can never be "
                                  "configured"), done.stderr
    assert not (net / "n1").exists()

    done = _init(net, GLOBEX_RULES.replace('merchant = "globex"\n', ""))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: rules.toml line 1: this node's key is merchant-tech for 'acme', "
                                  "'globex': name the merchant these rules are for"), done.stderr

    done = _init(net, GLOBEX_RULES.replace('"globex"', '"initech"'))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: rules.toml line 3: file is for merchant 'initech', but this key "
                                  "is merchant-tech for 'acme', 'globex'"), done.stderr

    # A file for the key's second merchant is that merchant's agent's; a well-formed indicator
    # name is not refused (indicators are configured on chain, maybe later).
    done = _init(net, GLOBEX_RULES)
    assert done.returncode == 0, done.stderr
    assert (net / "n1" / "rules.toml").read_text() == GLOBEX_RULES


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda t: t.replace("max_bid = 200", "max_bid = 200, min_bid = 300").replace('"globex"', '"acme"'),
         "error: rules.toml line 9: min_bid 300 is above max_bid 200\n"),
        (lambda t: t.replace('merchant = "globex"\n', ""),
         "error: rules.toml line 1: this node's key is merchant-tech for 'acme', 'globex': name the "
         "merchant these rules are for (merchant = 'acme') at the top of the file; a node's agent acts "
         "for one merchant\n"),
    ],
    ids=["bad-bounds", "which-merchant"],
)
def test_node_run_refuses_bad_rules_before_it_starts(net: Path, edit: object, error: str) -> None:
    _init_then_write(net, edit(GLOBEX_RULES) if callable(edit) else "")
    done = _cli("node", "run", "--config", "n1/config.toml", cwd=net)
    assert done.returncode == 2, done.stderr
    assert "node_started" not in done.stderr
    assert done.stderr.endswith(error), done.stderr
    assert "Traceback" not in done.stderr


class _Lines:
    """A child's merged output, read in a thread, waited on with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self._stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise AssertionError(f"{pattern!r} not logged in {timeout} s:\n{''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"output ended before {pattern!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            if rx.search(line):
                return line

    def close(self) -> None:
        """After the child exited: let the reader reach EOF, then close the pipe."""
        self._thread.join(10)
        self._stream.close()


@pytest.fixture
def node(net: Path) -> Iterator[tuple[subprocess.Popen[str], _Lines, str]]:
    """``node run`` of n1 with globex's rules; yields the process, its log and its metrics URL."""
    _init_then_write(net, GLOBEX_RULES)
    metrics = re.search(r'metrics = "([^"]+)"', (net / "n1" / "config.toml").read_text())
    assert metrics is not None
    proc = subprocess.Popen([*CLI, "node", "run", "--config", "n1/config.toml"], cwd=net, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = _Lines(proc)
    try:
        yield proc, lines, f"http://{metrics.group(1)}/metrics"
    finally:
        stop(proc, lines)


def stop(proc: subprocess.Popen[str], lines: _Lines) -> None:
    """SIGINT the node's process group (SIGKILL after 20 s), then close its output."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    lines.close()


@pytest.mark.slow
def test_node_runs_one_agent_for_the_merchant_its_rules_name_and_reports_dead_rules(
    node: tuple[subprocess.Popen[str], _Lines, str],
) -> None:
    proc, log, metrics_url = node
    log.wait_for(r"node_started ")
    started = log.wait_for(r"agent_started ")
    assert "agent_started merchant=globex " in started  # not acme, the key's first merchant
    # No indicator is configured yet: both rules are dead; each is named by file and line.
    dead = log.wait_for(r"agent_rule_unconfigured where=rules\.toml:13 ")
    assert "rule=typo indicator=conversoin merchant=globex configured=none" in dead
    assert any("agent_rule_unconfigured where=rules.toml:7 rule=conversion-low" in line for line in log.seen)
    with urllib.request.urlopen(metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    assert re.search(r"^p2pmkt_agent_rules_unconfigured 2\.0$", text, re.M), text
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(30) == 0
