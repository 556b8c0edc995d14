"""The network benchmark's CPU accounting: what /proc says a process used, and the figures
derived from it (the ceiling ``cores / node CPU per transaction`` that BENCHMARKS.md quotes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tools.bench.network import cpu_figures
from tools.chaos.cluster import process_cpu_seconds


def test_process_cpu_seconds_counts_a_child_that_burns_cpu_and_not_one_that_sleeps() -> None:
    burner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                               "while time.process_time() - t < 0.6: pass\nimport sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while process_cpu_seconds(burner.pid) < 0.6:  # poll with a deadline: the child is busy
            assert time.monotonic() < deadline, "the burning child never reached 0.6 s of CPU"
            time.sleep(0.05)
        assert process_cpu_seconds(sleeper.pid) < 0.5  # its interpreter's start-up only
    finally:
        for p in (burner, sleeper):
            p.communicate(b"")


def test_cpu_figures_per_transaction_and_the_ceiling_they_allow() -> None:
    cores = os.cpu_count() or 1
    f = cpu_figures(node_cpu=2.0, own_cpu=0.5, committed=4000, wall=2.5)
    assert f["node_cpu_us_per_tx"] == pytest.approx(500.0)
    assert f["client_cpu_us_per_tx"] == pytest.approx(125.0)
    assert f["cores_busy"] == pytest.approx(1.0)
    assert f["node_cpu_bound_tx_per_s"] == round(cores / 500e-6)
    assert cpu_figures(1.0, 1.0, 0, 1.0)["node_cpu_bound_tx_per_s"] is None
