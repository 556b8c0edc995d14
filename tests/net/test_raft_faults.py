"""The test-only Raft latency and loss hook (``p2pmkt.net.faults``): the file's format, its
re-reading, and what it does to messages between two real py-libp2p hosts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.net import Members, NetConfig, open_net, open_raft_transport
from p2pmkt.net.faults import RAFT_FAULT_ENV, FaultFile, RaftFault, parse_raft_fault
from p2pmkt.types import NodeId

CFG = NetConfig(gossip=None, discovery=False)


def test_the_fault_file_format() -> None:
    assert parse_raft_fault("") == RaftFault()
    assert parse_raft_fault("delay_ms=150 loss=0.2") == RaftFault(0.15, 0.2)
    assert parse_raft_fault("loss=1") == RaftFault(0.0, 1.0)
    for bad in ("delay=5", "loss=2", "delay_ms=-1", "loss=x"):
        with pytest.raises(ValueError):
            parse_raft_fault(bad)


def test_a_fault_file_is_re_read_when_it_changes_and_a_bad_one_keeps_the_last_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "fault"
    monkeypatch.setenv("P2PMKT_TEST_FAULT", str(path))
    hook = FaultFile("P2PMKT_TEST_FAULT", parse_raft_fault, RaftFault(), "test")
    assert hook.get() == RaftFault()  # no file: no fault
    path.write_text("delay_ms=20\n")
    assert hook.get() == RaftFault(0.02, 0.0)
    path.write_text("nonsense=1\n")
    os.utime(path, ns=(1, 1))  # a new modification time however fast the writes were
    assert hook.get() == RaftFault(0.02, 0.0)  # refused: the last good value stays
    monkeypatch.delenv("P2PMKT_TEST_FAULT")
    assert hook.get() == RaftFault()  # no variable: no fault, whatever the file said
    monkeypatch.setenv("P2PMKT_TEST_FAULT", str(path))
    path.unlink()
    assert hook.get() == RaftFault()  # no file: no fault


async def _send_and_receive(count: int) -> tuple[int, float]:
    """A sends ``count`` messages to B over the Raft protocol; how many B got within 3 s, and
    the seconds from the first send to the first arrival."""
    ka, kb = PrivateKey.from_seed("fault/a"), PrivateKey.from_seed("fault/b")
    members = Members([ka.public_key.compressed, kb.public_key.compressed])
    to_b = NodeId("0x" + kb.address.hex())
    got, first = 0, float("nan")
    async with open_net(ka, CFG, members=members) as a, open_net(kb, CFG, members=members) as b, \
            open_raft_transport(a) as ta, open_raft_transport(b) as tb:
        await a.connect(b.addrs()[0])
        t0 = trio.current_time()
        for i in range(count):
            await ta.send(to_b, b"m%d" % i)
        with trio.move_on_after(3):
            while got < count:
                await tb.incoming.receive()
                if not got:
                    first = trio.current_time() - t0
                got += 1
    return got, first


async def test_messages_wait_the_latency_and_a_loss_of_one_drops_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "raft-fault"
    monkeypatch.setenv(RAFT_FAULT_ENV, str(path))
    got, first = await _send_and_receive(5)
    assert got == 5  # no file: no fault
    path.write_text("delay_ms=400\n")
    got, first = await _send_and_receive(5)
    assert got == 5 and first >= 0.4  # each waited the latency; none was lost
    path.write_text("loss=1\n")
    os.utime(path, ns=(2, 2))
    got, _ = await _send_and_receive(5)
    assert got == 0
    monkeypatch.delenv(RAFT_FAULT_ENV)
    got, first = await _send_and_receive(5)
    assert got == 5  # the variable gone, the loss is gone with it
