"""``p2pmkt testnet init/up/status/logs/down/reset`` with real node processes in a temp dir,
and Ctrl-C of ``p2pmkt testnet demo`` (issue 7, Tests): no process may be left behind."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._procs import (
    CLI,
    ENV,
    LineReader,
    free_port_block,
    kill_leftovers,
    node_processes,
    run_cli,
    stop_group,
)

pytestmark = pytest.mark.slow

N = 3
VISIT = '["10.0.0.9", "", 1764028800000, "acme", "browser", "view", "", 0]'


@pytest.fixture
def testnet_dir(tmp_path: Path) -> Iterator[Path]:
    """An initialised 3-node testnet on free ports; any node process still running at the end
    is killed (and fails the test that left it)."""
    root = tmp_path / "net"
    done = run_cli("testnet", "init", "-n", N, "--dir", root, "--base-port", free_port_block(N),
                   "--metrics-port", free_port_block(N))
    assert done.returncode == 0, done.stderr
    assert f"start it with: p2pmkt testnet up --dir {root}" in done.stdout
    yield root
    left = kill_leftovers(root)
    assert not left, f"node processes left behind: {left}"


def status(root: Path) -> list[dict[str, Any]]:
    done = run_cli("testnet", "status", "--dir", root, "--json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def up(root: Path) -> str:
    done = run_cli("testnet", "up", "--dir", root, "--timeout", 60, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_init_up_status_logs_down_up_reset(testnet_dir: Path) -> None:
    root = testnet_dir
    out = up(root)
    assert "started node1, node2, node3" in out
    assert re.search(rf"^ready: leader node\d, {N} nodes connected, height \d+$", out, re.M), out
    assert len(node_processes(root)) == N

    rows = status(root)
    assert [r["name"] for r in rows] == ["node1", "node2", "node3"]
    for r in rows:
        assert r["state"] == "running"
        assert r["multiaddr"].startswith("/ip4/127.0.0.1/tcp/") and "/p2p/16Uiu2" in r["multiaddr"]
        assert r["roles"] and isinstance(r["height"], int)
        assert r["peers"] == N - 1
    assert rows[0]["roles"] == ["platform"] and rows[-1]["roles"] == ["terminal"]
    assert sum(r["is_leader"] for r in rows) == 1
    assert len({r["leader"] for r in rows}) == 1

    # A transaction through the terminal node (--node resolves the testnet's own key).
    script = root.parent / "visit.py"
    script.write_text(f'print("HEIGHT", send("visit.batch", {{"visits": [{VISIT}]}})["height"])\n')
    done = run_cli("console", "--node", "node3", "--dir", root, "--exec", script)
    assert done.returncode == 0, done.stderr
    committed_at = int(done.stdout.split("HEIGHT")[1])
    assert committed_at >= 1

    done = run_cli("testnet", "logs", "node1", "--dir", root, "-n", 0)
    assert done.returncode == 0
    assert re.search(r"^\S+ INFO +p2pmkt\.node node_started name=node1 ", done.stdout, re.M), done.stdout
    done = run_cli("testnet", "logs", "node2", "--dir", root, "-n", 2)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2
    done = run_cli("testnet", "logs", "node9", "--dir", root)
    assert done.returncode == 2 and done.stderr.startswith("error: no node 'node9'")

    done = run_cli("testnet", "down", "--dir", root)
    assert done.returncode == 0
    assert done.stdout.startswith("stopped node1, node2, node3")
    assert node_processes(root) == {}, "down left node processes running"
    assert all(r["state"] == "stopped" for r in status(root))

    # State survives down/up: the chain resumes where it was.
    up(root)
    heights = [r["height"] for r in status(root)]
    assert min(heights) >= committed_at, heights

    # One node restarted (to take an edited config or rules file): only its process changes.
    before = {cmd.split("--config ")[1]: pid for pid, cmd in node_processes(root).items()}
    done = run_cli("testnet", "restart", "node2", "--dir", root, "--timeout", 60, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("stopped node2; started node2\nready: leader node"), done.stdout
    after = {cmd.split("--config ")[1]: pid for pid, cmd in node_processes(root).items()}
    changed = sorted(c for c in before if before[c] != after.get(c))
    assert len(after) == N and changed == [str(root / "node2" / "config.toml")], (before, after)
    done = run_cli("testnet", "restart", "node9", "--dir", root)
    assert done.returncode == 2 and done.stderr.startswith("error: no node 'node9'"), done.stderr
    assert len(node_processes(root)) == N
    done = run_cli("testnet", "down", "--dir", root)
    assert done.returncode == 0
    assert node_processes(root) == {}

    done = run_cli("testnet", "reset", "--dir", root)
    assert done.returncode == 0
    assert not root.exists()


def test_commands_on_a_missing_testnet_say_how_to_make_one(tmp_path: Path) -> None:
    for action in ("up", "status", "down"):
        done = run_cli("testnet", action, "--dir", tmp_path / "none")
        assert done.returncode == 2, (action, done.stderr)
        assert done.stderr.startswith(f"error: no testnet in {tmp_path / 'none'}; create one with `p2pmkt testnet init")


def test_ctrl_c_of_the_demo_leaves_no_process(testnet_dir: Path) -> None:
    root = testnet_dir
    demo = subprocess.Popen(
        [*CLI, "testnet", "demo", "--dir", str(root), "--no-live", "--visits-per-second", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env=ENV, start_new_session=True,
    )
    lines = LineReader(demo)
    try:
        lines.wait_for(r"^ready: leader node\d", timeout=90)
        lines.wait_for(r"^height \d+ visits submitted \d+", timeout=30)
        assert len(node_processes(root)) == N
        # Ctrl-C in a terminal signals the foreground process group: the demo's, not the
        # nodes' (they run in sessions of their own, and the demo must stop them).
        demo.send_signal(signal.SIGINT)
        try:
            code: int | None = demo.wait(30)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        stop_group(demo, signal.SIGKILL)
        out = lines.rest()
        if demo.stdout is not None:
            demo.stdout.close()
    assert code == 0, out
    assert "stopped node1, node2, node3" in out
    assert "Traceback" not in out and "warning: still running" not in out, out
    assert node_processes(root) == {}


def test_demo_needs_a_running_testnet_and_up_demo_leaves_it_running(testnet_dir: Path) -> None:
    root = testnet_dir
    done = run_cli("demo", "--dir", root, "--duration", 1, "--no-live")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"not running: start it with `p2pmkt testnet up --dir {root}`" in done.stderr
    assert node_processes(root) == {}

    # `testnet up --demo`: start, configure the demo merchant, stream visits; the nodes stay up.
    done = run_cli("testnet", "up", "--demo", "--dir", root, "--duration", 6, "--no-live",
                   "--visits-per-second", 200, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^ready: leader node\d", done.stdout, re.M), done.stdout
    sent = [int(n) for n in re.findall(r"^height \d+ visits submitted (\d+) .* acme:", done.stdout, re.M)]
    assert sent and sent[-1] > 0, done.stdout
    assert f"the nodes keep running (`p2pmkt testnet down --dir {root}` stops them)" in done.stdout
    assert len(node_processes(root)) == N

    # `p2pmkt demo` on the running testnet: the merchant is configured already; visits go on.
    done = run_cli("demo", "--dir", root, "--duration", 4, "--no-live", "--visits-per-second", 200, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = re.findall(r"^height (\d+) visits submitted (\d+) .* acme:.*/v(\d+)$", done.stdout, re.M)
    assert lines and int(lines[-1][1]) > 0 and int(lines[-1][2]) >= 1, done.stdout
    assert len(node_processes(root)) == N

    # What `contract new`'s README tells a merchant engineer: deploy through a testnet node
    # (there was no --node), signed with that node's key (node2 is acme's merchant-ops).
    done = run_cli("contract", "deploy", "builtin:page_views", "--node", "node2", "--dir", root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.match(r"contract\.deploy [0-9a-f]{64}: committed at height \d+; code hash ", done.stdout), done.stdout
    assert run_cli("testnet", "down", "--dir", root).returncode == 0


def test_up_reports_a_node_that_exited_instead_of_waiting_out_the_timeout(testnet_dir: Path) -> None:
    root = testnet_dir
    (root / "node2" / "rules-acme.toml").write_text('merchant = "acme"\n[[rule]]\nindicator = "Bad Name"\n')
    started = time.monotonic()
    done = run_cli("testnet", "up", "--dir", root, "--timeout", 120, timeout=150)
    took = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error (node_exited): node2 is not running; the end of its log"), done.stderr
    assert "rules-acme.toml line 3: " in done.stderr  # the node's own reason, in its log
    assert f"`p2pmkt testnet down --dir {root}` stops them" in done.stderr
    assert took < 60, took  # not the 120-s timeout
    assert run_cli("testnet", "down", "--dir", root).returncode == 0
