"""Node logging: py-libp2p's records go through the node's handler, without the noise of
expected events."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from p2pmkt.node.logs import setup_logging

PEER = "16Uiu2HAm7wgyqBTCTqExPaK9fAnyGGNnsAeohFEAm8dNrzojpZLQ"


def _failure(protocols: list[str]) -> str:
    """py-libp2p's message (libp2p.host.basic_host, new_stream) when negotiation fails."""
    return (f"Failed to open stream to peer {PEER}:\n"
            f"  Error: Failed to negotiate protocols: protocols not supported: tried {protocols}, "
            "peer responded with 'na' for all\n"
            f"  Protocols: {protocols}\n  Timeout: 5s\n  Connection: Yamux\n"
            "  Connection State: established=True, handshake=True\n  Registry Stats: None")


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("info", stream=out)
    yield out
    root.handlers[:], root.level = saved


def test_a_client_without_gossipsub_leaves_no_error_block_and_other_failures_stay(log: io.StringIO) -> None:
    host = logging.getLogger("libp2p.host.basic_host")
    host.error(_failure(["/meshsub/1.1.0", "/meshsub/1.0.0"]))
    assert log.getvalue() == ""
    host.error(_failure(["/p2pmkt/raft/1.0.0"]))  # a member that does not speak Raft: keep it
    assert "ERROR libp2p.host.basic_host Failed to open stream to peer" in log.getvalue()
    assert "/p2pmkt/raft/1.0.0" in log.getvalue()


def test_setting_up_twice_adds_the_filter_once(log: io.StringIO) -> None:
    setup_logging("info", stream=log)
    host = logging.getLogger("libp2p.host.basic_host")
    assert sum(type(f).__name__ == "ClientPeerWithoutGossip" for f in host.filters) == 1


def test_each_failed_tcp_dial_is_not_an_error_line(log: io.StringIO) -> None:
    # Redialling a member that is down every half second logged ~240 ERROR lines a minute;
    # discovery says it once (tests/net/test_dial_warnings.py).
    tcp = logging.getLogger("libp2p.transport.tcp.tcp")
    tcp.error("Failed to open TCP stream: %s", "all attempts to connect to 127.0.0.1:47102 failed")
    assert log.getvalue() == ""
    tcp.error("Failed to start TCP listener for /ip4/127.0.0.1/tcp/47105: [Errno 98] Address already in use")
    assert "Address already in use" in log.getvalue()
