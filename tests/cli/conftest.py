"""Fixtures of the CLI tests: one dev chain (a real ``p2pmkt dev`` process) shared by the package."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from p2pmkt.chain.dev import dev_key
from p2pmkt.crypto import save_key

from ._procs import CLI, ENV, LineReader, free_port, stop_group


@dataclass(frozen=True)
class DevChain:
    addr: str
    """Full multiaddr of its wire protocol, with ``/p2p/<peer id>``."""
    dir: Path


@pytest.fixture(scope="package")
def dev_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevChain]:
    """``p2pmkt dev`` serving the wire protocol on a free port; stopped (group-killed if
    needed) at the end."""
    with run_dev_chain(tmp_path_factory.mktemp("dev") / "chain") as chain:
        yield chain


@contextmanager
def run_dev_chain(data: Path, *args: str) -> Iterator[DevChain]:
    """``p2pmkt dev --dir data ARGS…`` on a free port, until the context exits."""
    proc = subprocess.Popen(
        [*CLI, "dev", "--dir", str(data), "--listen", f"/ip4/127.0.0.1/tcp/{free_port()}", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env=ENV, start_new_session=True,
    )
    lines = LineReader(proc)
    try:
        m = lines.wait_for(r"wire protocol at (/ip4/\S+/p2p/\S+)", timeout=30)
        yield DevChain(addr=m.group(1), dir=data)
    finally:
        stop_group(proc)
        lines.rest()  # the reader thread ends at EOF: only then close the pipe
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="package")
def terminal_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documented dev key ``terminal`` (may sign ``visit.batch``) in a 0600 key file."""
    path = tmp_path_factory.mktemp("keys") / "terminal.key"
    save_key(path, dev_key("terminal"))
    return path
