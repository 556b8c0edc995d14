"""Process helpers for the CLI tests: run ``p2pmkt`` as a user would, find and reap its children.

Every process a test starts gets its own process group (``start_new_session``) so that
teardown can kill the whole group; node processes of a testnet are found through the process
table (``/proc/*/cmdline`` naming the testnet directory), which is also how the tests check
that nothing was left behind.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PYTHON = sys.executable
CLI = [PYTHON, "-m", "p2pmkt"]
ENV = dict(os.environ, TERM="xterm", COLUMNS="160", PYTHONUNBUFFERED="1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_port_block(n: int) -> int:
    """First of ``n`` consecutive free TCP ports on 127.0.0.1 (testnets use base + i)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - n)
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {n} free ports found")


def run_cli(*args: str | Path, timeout: float = 60.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``p2pmkt ARGS…`` to completion, with its output captured."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=ENV, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)


def processes_mentioning(text: str) -> dict[int, str]:
    """Live processes whose command line contains ``text`` (zombies have none and are skipped)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            out[int(entry.name)] = cmdline.strip()
    return out


def node_processes(root: Path) -> dict[int, str]:
    """``p2pmkt node run`` processes of the testnet in ``root``."""
    return {pid: cmd for pid, cmd in processes_mentioning(str(root)).items() if " node run " in cmd}


def kill_leftovers(root: Path) -> dict[int, str]:
    """SIGKILL the node processes of the testnet in ``root`` (test teardown); returns them."""
    left = node_processes(root)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def stop_group(proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
    """Signal ``proc``'s process group, then SIGKILL it if it has not exited within ``timeout``.

    Before the SIGKILL, a ``p2pmkt`` process is asked for its threads' stacks (SIGUSR1,
    p2pmkt.cli.main), so that its stderr says where it was stuck."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            return proc.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGUSR1)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(1.0)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait(timeout)


class LineReader:
    """Reads a child's stdout lines in a thread so the test can wait for one with a deadline
    (and the child never blocks on a full pipe)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self._stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line (from now on) matching ``pattern``.

        Raises:
            AssertionError: EOF or ``timeout`` s first (with what was printed).
        """
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise AssertionError(f"{pattern!r} not printed within {timeout} s:\n{''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"output ended before {pattern!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            m = rx.search(line)
            if m is not None:
                return m

    def rest(self, timeout: float = 10.0) -> str:
        """Everything printed until EOF (call after the process exited)."""
        self._thread.join(timeout)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)
