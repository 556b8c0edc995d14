"""``p2pmkt visits ingest`` end to end: the shared access log into a real dev chain process.

The chain here makes a block every 2 s, so the terminal has hundreds of transactions waiting
at once (one visit per transaction): the case that was refused ``nonce_ahead`` after 65
waiting, with no nonce missing (the mempool bounded a sender's pending run, not its gaps).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from p2pmkt.chain.block import decode_block
from p2pmkt.chain.dev import dev_genesis
from p2pmkt.client import Client, open_client
from p2pmkt.ingest import CombinedConfig, make_parser, split_text
from p2pmkt.market.packed import VisitPack, parse_visit_pack
from p2pmkt.testing.keys import dev_key

from ._procs import CLI, ENV, run_cli, stop_group
from .conftest import DevChain, run_dev_chain

SHARED_LOG = Path(__file__).resolve().parents[3] / "shared" / "data" / "apache-combined-2015-05.log"
VISITS_IN_LOG = 2_474  # of its 5,000 lines; the others are not visits (tests/ingest)
TERMINAL = dev_key("terminal").address
GENESIS = dev_genesis()
T0 = GENESIS.genesis_time + 60_000


async def _committed_visits(addr: str) -> tuple[int, list[VisitPack]]:
    """(the terminal's account nonce, its committed ``visit.pack`` payloads, parsed)."""
    async with open_client(addr) as c:
        nonce = int((await c.call("account.get", {"address": bytes(TERMINAL)}))["nonce"])
        top = (await c.head()).height
        packs = []
        for h in range(1, top + 1):
            block = decode_block(bytes((await c.call("chain.block", {"height": h}))["block"]))
            packs += [parse_visit_pack(stx.tx.payload, GENESIS.params) for stx in block.txs
                      if stx.tx.sender == TERMINAL and stx.tx.kind == "visit.pack"]
    return nonce, packs


@pytest.fixture
def shared_log() -> Path:
    """The shared real access log (tests needing it skip where it is not checked out)."""
    if not SHARED_LOG.exists():
        pytest.skip(f"shared log not found at {SHARED_LOG}")
    return SHARED_LOG


def _per_merchant(packs: list[VisitPack]) -> Counter[str]:
    return Counter(row[3] for p in packs for row in p.rows())


@pytest.mark.slow
def test_ingest_one_visit_per_transaction_commits_every_visit_of_the_shared_log(
    tmp_path: Path, terminal_key: Path, shared_log: Path,
) -> None:
    with run_dev_chain(tmp_path / "chain", "--block-ms", "2000") as chain:
        done = run_cli("visits", "ingest", shared_log, "--format", "combined", "--merchant", "acme",
                       "--batch", "1", "--connect", chain.addr, "--key", terminal_key, timeout=180)
        assert done.returncode == 0, done.stderr
        assert f"{VISITS_IN_LOG:,} visits in {VISITS_IN_LOG:,} transactions" in done.stdout, done.stdout
        # The command returned after its last transaction committed: so did every earlier one.
        nonce, packs = trio.run(_committed_visits, chain.addr)
    assert nonce == VISITS_IN_LOG
    assert sum(_per_merchant(packs).values()) == VISITS_IN_LOG


@pytest.mark.slow
def test_the_access_log_mapping_options_reach_the_chain_as_the_library_applies_them(
    dev_chain: DevChain, terminal_key: Path, shared_log: Path,
) -> None:
    options = ["--merchant-map", "/presentations=globex", "--merchant", "acme",
               "--op-rule", r"^/blog/.*\?flav=rss=skip", "--static", "view", "--skip-bots"]
    expected: Counter[str] = Counter()
    parser = make_parser("combined", merchant="acme", combined=CombinedConfig(
        merchant_map=(("/presentations", "globex"),), static="view", skip_bots=True,
        op_rules=((r"^/blog/.*\?flav=rss", "skip"),)))
    for line in split_text(shared_log.read_text(encoding="utf-8")):
        visit = parser.parse(line)
        if visit is not None:
            expected[visit.merchant] += 1
    assert expected["globex"] > 0 and expected["acme"] > 0
    before, old = trio.run(_committed_visits, dev_chain.addr)
    done = run_cli("visits", "ingest", shared_log, "--format", "combined", *options,
                   "--connect", dev_chain.addr, "--key", terminal_key, timeout=180)
    assert done.returncode == 0, done.stderr
    after, packs = trio.run(_committed_visits, dev_chain.addr)
    assert _per_merchant(packs) - _per_merchant(old) == expected
    assert after > before


@pytest.mark.slow
def test_a_bad_line_stops_the_ingest_when_asked_and_what_came_before_is_committed(
    tmp_path: Path, dev_chain: DevChain, terminal_key: Path,
) -> None:
    good = [json.dumps({"ip": f"10.1.0.{i}", "time": T0 + i, "merchant": "acme", "method": "app",
                        "op": "view"}) for i in range(5)]
    src = tmp_path / "visits.jsonl"
    src.write_text("\n".join([*good, '{"ip": "10.1.0.9", "ammount": 3}', *good]) + "\n")
    _, old = trio.run(_committed_visits, dev_chain.addr)
    done = run_cli("visits", "ingest", src, "--on-error", "stop", "--connect", dev_chain.addr,
                   "--key", terminal_key, timeout=60)
    assert done.returncode == 1, done.stderr
    assert re.search(r"visits\.jsonl: line 6: .*ammount", done.stderr), done.stderr
    assert "5 visits in 1 transaction," in done.stdout and "stopped at the first bad line" in done.stdout
    _, packs = trio.run(_committed_visits, dev_chain.addr)
    new = [row for p in packs for row in p.rows()][sum(len(p.rows()) for p in old):]
    assert [row[0] for row in new] == [f"10.1.0.{i}" for i in range(5)]


def _jsonl(prefix: str, first: int, n: int) -> str:
    return "".join(json.dumps({"ip": f"{prefix}{i}", "time": T0 + i, "merchant": "acme",
                               "method": "browser", "op": "view"}) + "\n"
                   for i in range(first, first + n))


@contextmanager
def _following(src: Path, chain: DevChain, key: Path) -> Iterator[None]:
    """``visits ingest SRC --follow`` running until the block ends, then Ctrl-C: it must
    exit 130 without a traceback."""
    proc = subprocess.Popen([*CLI, "visits", "ingest", str(src), "--follow", "--connect", chain.addr,
                             "--key", str(key)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=ENV, start_new_session=True)
    try:
        yield
    finally:
        code = stop_group(proc)  # Ctrl-C
        out, err = proc.communicate()
    assert code == 130, f"exit {code}; stdout:\n{out[-4000:]}\nstderr:\n{err[-8000:]}"
    assert "Traceback" not in err, err


def _wait_for_ips(addr: str, prefix: str, ips: list[str]) -> None:
    """Poll the chain until the committed visits whose ip starts with ``prefix`` are ``ips``."""
    def seen() -> list[str]:
        _, packs = trio.run(_committed_visits, addr)
        return [row[0] for p in packs for row in p.rows() if row[0].startswith(prefix)]

    deadline = time.monotonic() + 30
    while seen() != ips:
        assert time.monotonic() < deadline, (seen(), ips)
        time.sleep(0.2)  # polling the chain, with the deadline above


@pytest.mark.slow
def test_follow_keeps_reading_through_rotation_and_truncation(
    tmp_path: Path, dev_chain: DevChain, terminal_key: Path,
) -> None:
    """What logrotate does to a followed log: move it away and create a new one, or
    (copytruncate) empty it in place. Every line written, in either file, is committed once."""
    prefix = "10.5.0."
    ips = [f"{prefix}{i}" for i in range(7)]
    src = tmp_path / "access.jsonl"
    src.write_text(_jsonl(prefix, 0, 2))
    with _following(src, dev_chain, terminal_key):
        _wait_for_ips(dev_chain.addr, prefix, ips[:2])
        with src.open("a") as f:  # the last line before the move has no newline yet
            f.write(_jsonl(prefix, 2, 1).rstrip("\n"))
        src.rename(tmp_path / "access.jsonl.1")
        src.write_text(_jsonl(prefix, 3, 2))
        _wait_for_ips(dev_chain.addr, prefix, ips[:5])
        # Truncated in place, then written again: noticed as the file being shorter than what
        # was read (as tail -F does; a file refilled past that point before a look is not).
        src.write_text(_jsonl(prefix, 5, 1))
        _wait_for_ips(dev_chain.addr, prefix, ips[:6])
        with src.open("a") as f:
            f.write(_jsonl(prefix, 6, 1))
        _wait_for_ips(dev_chain.addr, prefix, ips)


@pytest.mark.slow
def test_follow_submits_lines_as_the_file_grows_until_interrupted(
    tmp_path: Path, dev_chain: DevChain, terminal_key: Path,
) -> None:
    prefix = "10.2.0."
    src = tmp_path / "growing.jsonl"
    src.write_text(_jsonl(prefix, 0, 3))
    with _following(src, dev_chain, terminal_key):
        _wait_for_ips(dev_chain.addr, prefix, [f"{prefix}{i}" for i in range(3)])
        with src.open("a") as f:  # the back-end writes more
            f.write(_jsonl(prefix, 3, 2))
        _wait_for_ips(dev_chain.addr, prefix, [f"{prefix}{i}" for i in range(5)])


@pytest.mark.slow
def test_the_client_library_ingests_the_same_way(dev_chain: DevChain) -> None:
    """What the command does with each batch, from a client developer's script (blocking
    client; the async one is the same method)."""
    rows = [[f"10.3.0.{i}", "", T0 + i, "globex", "desktop", "view", "", 0] for i in range(5)]
    with Client.sync(dev_chain.addr) as c:
        txids = c.submit_visits(dev_key("terminal"), rows, per_tx=2)
        assert len(txids) == 3
        assert c.wait_tx_committed(txids[-1], timeout=30).status == "committed"
        assert all(c.tx(t).status == "committed" for t in txids)  # type: ignore[union-attr]
    _, packs = trio.run(_committed_visits, dev_chain.addr)
    assert [row for p in packs for row in p.rows() if row[0].startswith("10.3.0.")] == rows


@pytest.mark.slow
def test_ingest_reads_standard_input(dev_chain: DevChain, terminal_key: Path) -> None:
    text = "".join(json.dumps([f"10.4.0.{i}", "", T0 + i, "acme", "app", "click", "", 0]) + "\n"
                   for i in range(3))
    done = subprocess.run([*CLI, "visits", "ingest", "-", "--connect", dev_chain.addr, "--key", str(terminal_key)],
                          input=text, capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "3 lines: 3 visits in 1 transaction," in done.stdout, done.stdout
    _, packs = trio.run(_committed_visits, dev_chain.addr)
    assert [row[0] for p in packs for row in p.rows() if row[0].startswith("10.4.0.")] == [
        f"10.4.0.{i}" for i in range(3)]


@pytest.mark.slow
def test_a_running_command_prints_its_stacks_on_sigusr1_and_goes_on(dev_chain: DevChain, terminal_key: Path) -> None:
    """``kill -USR1`` makes any p2pmkt process print its threads' stacks (how a stuck one
    says where it is) without stopping it: here an ingest waiting on standard input."""
    import signal

    proc = subprocess.Popen([*CLI, "visits", "ingest", "-", "--connect", dev_chain.addr, "--key", str(terminal_key)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not _catches(proc.pid, signal.SIGUSR1):  # the handler is installed first thing
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)
        out, err = proc.communicate("", timeout=60)  # then end of input: it finishes normally
    finally:
        stop_group(proc)
    assert proc.returncode == 0, err
    assert "most recent call first" in err and "main.py" in err, err
    assert "0 lines: 0 visits" in out, out


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``sig`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False
