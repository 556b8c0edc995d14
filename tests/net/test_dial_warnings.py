"""A peer that cannot be dialled is said once in the node's log, with the address and the
error, not on every retry (real py-libp2p hosts on 127.0.0.1)."""

from __future__ import annotations

import logging
import socket

import pytest
import trio

from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.crypto.peerid import peer_id_of
from p2pmkt.net import NetConfig, open_net

FAST = {"gossip": None, "reconnect_interval": 0.1, "pex_interval": 0.2}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _warnings_after(config: NetConfig, caplog: pytest.LogCaptureFixture, seconds: float) -> list[str]:
    with caplog.at_level(logging.DEBUG, logger="p2pmkt.net.discovery"):
        async with open_net(config=config):
            await trio.sleep(seconds)  # lets the node retry the dial ten times or more
    return [r.getMessage() for r in caplog.records
            if r.name == "p2pmkt.net.discovery" and r.levelno >= logging.WARNING]


async def test_a_bootstrap_node_that_is_down_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    peer = peer_id_of(PrivateKey.generate().public_key.compressed)
    port = _closed_port()
    config = NetConfig(bootstrap=(f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer}",), **FAST)  # type: ignore[arg-type]
    warnings = await _warnings_after(config, caplog, 4.0)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"cannot reach {peer} (/ip4/127.0.0.1/tcp/{port}: ")
    assert warnings[0].endswith("retrying every 0.1 s, quietly until it answers")
    retries = [r for r in caplog.records if r.getMessage().startswith(f"dial {peer} at ")]
    assert len(retries) >= 2, "the node kept dialling"


async def test_a_bootstrap_address_with_the_wrong_peer_id_is_named(caplog: pytest.LogCaptureFixture) -> None:
    async with open_net(config=NetConfig(**FAST)) as real:  # type: ignore[arg-type]
        wrong = peer_id_of(PrivateKey.generate().public_key.compressed)
        addr = real.addrs()[0].rsplit("/p2p/", 1)[0]
        config = NetConfig(bootstrap=(f"{addr}/p2p/{wrong}",), **FAST)  # type: ignore[arg-type]
        warnings = await _warnings_after(config, caplog, 1.0)
    assert len(warnings) == 1 and warnings[0].startswith(f"cannot reach {wrong} ({addr}: "), warnings


async def test_a_non_member_knocking_again_and_again_is_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    from p2pmkt.net import Members
    from p2pmkt.net.errors import NetworkError

    member = PrivateKey.generate()
    served = []

    async def handler(fs: object) -> None:
        served.append(fs)

    config = NetConfig(**FAST)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="p2pmkt.net.host"):
        async with open_net(member, config, members=Members([member.public_key.compressed])) as node, \
                open_net(config=NetConfig(listen=(), gossip=None, discovery=False)) as outsider:
            node.handle("/test/members/1", handler, members_only=True)
            await outsider.connect(node.addrs()[0])
            for _ in range(5):
                try:
                    fs = await outsider.open_stream(node.peer_id, "/test/members/1")
                    with trio.move_on_after(2):
                        await fs.read_frame()  # the node resets it
                except NetworkError:
                    pass
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused /test/members/1")]
    assert served == [] and len(lines) == 1, lines
    assert lines[0] == (f"refused /test/members/1 stream from {outsider.peer_id}: not a member of chain "
                        "p2pmkt-dev as this node's state has it (if it should be: compare `p2pmkt genesis "
                        "show` on both machines, or this node may still be catching up to the block that "
                        "added it); said once a minute")
