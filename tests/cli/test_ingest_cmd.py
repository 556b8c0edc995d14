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
from functools import partial
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


async def _committed_visits(addr: str, *, checked: bool = False) -> tuple[int, list[VisitPack]]:
    """(the terminal's account nonce, its ``visit.pack`` payloads in blocks, parsed). A block
    records rejected transactions too: ``checked`` asks each one's status and keeps only the
    committed ones (the other tests have none rejected)."""
    async with open_client(addr) as c:
        nonce = int((await c.call("account.get", {"address": bytes(TERMINAL)}))["nonce"])
        top = (await c.head()).height
        packs = []
        for h in range(1, top + 1):
            block = decode_block(bytes((await c.call("chain.block", {"height": h}))["block"]))
            for stx in block.txs:
                if stx.tx.sender != TERMINAL or stx.tx.kind != "visit.pack":
                    continue
                if checked and (await c.tx(stx.txid)).status != "committed":  # type: ignore[union-attr]
                    continue
                packs.append(parse_visit_pack(stx.tx.payload, GENESIS.params))
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
        assert f"{VISITS_IN_LOG:,} visits committed in {VISITS_IN_LOG:,} transactions" in done.stdout, done.stdout
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
    assert "5 visits committed in 1 transaction," in done.stdout and "stopped at the first bad line" in done.stdout
    _, packs = trio.run(_committed_visits, dev_chain.addr)
    new = [row for p in packs for row in p.rows()][sum(len(p.rows()) for p in old):]
    assert [row[0] for row in new] == [f"10.1.0.{i}" for i in range(5)]


def _jsonl(prefix: str, first: int, n: int) -> str:
    return "".join(json.dumps({"ip": f"{prefix}{i}", "time": T0 + i, "merchant": "acme",
                               "method": "browser", "op": "view"}) + "\n"
                   for i in range(first, first + n))


@contextmanager
def _following(src: Path, chain: DevChain, key: Path, visits: int) -> Iterator[None]:
    """``visits ingest SRC --follow`` running until the block ends, then Ctrl-C: it must
    exit 130 without a traceback, after printing its summary (audit: Ctrl-C printed none)
    with the ``visits`` the block wrote, all committed."""
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
    assert re.search(rf"^{visits} lines read: {visits} visits committed in \d+ transactions?, "
                     r"0 skipped \(not visits\), 0 bad — interrupted$", out, re.M), out


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
    with _following(src, dev_chain, terminal_key, visits=7):
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
    with _following(src, dev_chain, terminal_key, visits=5):
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
    assert "3 lines read: 3 visits committed in 1 transaction," in done.stdout, done.stdout
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
    assert "0 lines read: 0 visits" in out, out


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``sig`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


# --- the audit of issue 6 item 1: exit codes, refusals by line, --batch, dev keys ----------


def _terminal_nonce(addr: str) -> int:
    async def ask() -> int:
        async with open_client(addr) as c:
            return int((await c.call("account.get", {"address": bytes(TERMINAL)}))["pending_nonce"])
    return trio.run(ask)


@pytest.mark.slow
def test_a_bad_csv_header_stops_the_ingest_at_once_with_one_error_naming_line_1(
    tmp_path: Path, dev_chain: DevChain, terminal_key: Path,
) -> None:
    """Audit: a header typo made every data row a header error of its own ("line 2: header
    names unknown column(s) ['', '10.0.0.1', …]"), 0 visits, N bad, exit 0."""
    src = tmp_path / "visits.csv"
    src.write_text("ip,time,method,op,merchnat\n" + "".join(
        f"10.6.0.{i},{T0 + i},app,view,acme\n" for i in range(4)))
    done = run_cli("visits", "ingest", src, "--connect", dev_chain.addr, "--key", terminal_key)
    assert done.returncode == 1, done.stderr
    [error] = done.stderr.splitlines()
    assert error.startswith(f"{src}: line 1: bad CSV header: unknown column(s) 'merchnat' (did you "
                            "mean 'merchant'?); missing required column(s) ['merchant']"), error
    assert done.stdout.strip() == ("1 line read: 0 visits committed in 0 transactions, 0 skipped "
                                   "(not visits), 1 bad — stopped: line 1 is not a usable CSV header")


@pytest.mark.slow
def test_nothing_ingested_because_every_line_was_bad_is_a_failure(
    tmp_path: Path, dev_chain: DevChain, terminal_key: Path,
) -> None:
    """Audit: "0 visits …, 2,474 bad" exited 0. Some bad lines skipped beside committed
    visits still exit 0 (the documented --on-error skip)."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ip": "10.6.1.1"}\n\n{"ip": "10.6.1.2", "ammount": 3}\n')
    done = run_cli("visits", "ingest", bad, "--connect", dev_chain.addr, "--key", terminal_key)
    assert done.returncode == 1, done.stderr
    assert [line.split(":")[1] for line in done.stderr.splitlines()] == [" line 1", " line 3"]
    assert done.stdout.strip().endswith("2 bad — nothing ingested: every line that was not skipped was bad")
    some = tmp_path / "some.jsonl"
    some.write_text('{"ip": "10.6.1.3"}\n' + _jsonl("10.6.1.", 4, 1))
    done = run_cli("visits", "ingest", some, "--connect", dev_chain.addr, "--key", terminal_key)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2 lines read: 1 visit committed in 1 transaction, 0 skipped (not visits), 1 bad\n"


@pytest.mark.slow
def test_an_access_log_without_any_merchant_rule_is_refused_rather_than_read_as_all_bad(
    dev_chain: DevChain, terminal_key: Path, shared_log: Path,
) -> None:
    """Audit: the shared log without --merchant gave "0 visits …, 2,474 bad", exit 0."""
    done = run_cli("visits", "ingest", shared_log, "--connect", dev_chain.addr, "--key", terminal_key)
    assert done.returncode == 2, done.stderr
    assert "give --merchant ID (one merchant for every line), --merchant-map" in done.stderr
    assert done.stderr.count("\n") == 1  # that one error, no line of the log reported bad
    # Said with --format combined, before dialling: the same answer with no node at all.
    dead = "/ip4/127.0.0.1/tcp/9/p2p/16Uiu2HAm9iXAesnT5sUpLhJyCS6psYjyUPGzB4B6fZpENL1XRoKV"
    done = run_cli("visits", "ingest", shared_log, "--format", "combined", "--connect", dead,
                   "--key", terminal_key)
    assert done.returncode == 2 and "--merchant-from-path" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_batch_above_the_chains_limit_is_refused_before_anything_is_sent(
    tmp_path: Path, dev_chain: DevChain, terminal_key: Path,
) -> None:
    """Audit: --batch 6000 sent the transaction and got "rejected (bad_payload): … the chain
    allows 5000", exit 3."""
    src = tmp_path / "visits.jsonl"
    src.write_text(_jsonl("10.6.2.", 0, 3))
    before = _terminal_nonce(dev_chain.addr)
    done = run_cli("visits", "ingest", src, "--batch", "6000", "--connect", dev_chain.addr,
                   "--key", terminal_key)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("error: --batch 6000: this chain takes at most 5,000 visits in one "
                           "transaction (its max_visits_per_tx); pass --batch 5000 or less, or "
                           "leave --batch out\n")
    assert done.stdout == ""
    assert _terminal_nonce(dev_chain.addr) == before
    done = run_cli("visits", "ingest", src, "--batch", "5000", "--connect", dev_chain.addr,
                   "--key", terminal_key)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_refused_visit_is_reported_by_its_input_line_after_what_was_committed(
    tmp_path: Path, terminal_key: Path,
) -> None:
    """Audit: the node's refusal named "visit 2" (0-based, within its transaction) and no
    summary was printed; with one visit per transaction a rejection inside a block went
    unreported but for "last batch rejected: nonce_ahead". Its own chain: the transactions
    after a rejected one may stay parked in the pool, and must not reach the shared one."""
    src = tmp_path / "visits.jsonl"
    rows = [json.dumps({"ip": f"10.6.3.{i}", "time": T0 + i, "merchant": "initech" if i == 2 else "acme",
                        "method": "app", "op": "view"}) for i in range(5)]
    src.write_text("\n".join([rows[0], "", *rows[1:]]) + "\n")  # a blank line 2: lines ≠ visits
    with run_dev_chain(tmp_path / "chain") as chain:
        # one transaction: refused at submission, visit 2 of it being line 4 of the file
        done = run_cli("visits", "ingest", src, "--connect", chain.addr, "--key", terminal_key)
        assert done.returncode == 3, done.stderr
        first, second = done.stderr.splitlines()
        assert first.startswith(f"{src}: line 4: refused by the node at submission (unknown_merchant): "
                                "visit.pack: visit 2: merchant 'initech' is not on this chain"), first
        assert second == (f"{src}: the transaction of lines 1–6 was not committed; nothing of the "
                          "input is on the chain: fix it and ingest it again")
        assert done.stdout == ("6 lines read: 0 visits committed in 0 transactions, 1 skipped (not "
                               "visits), 0 bad; 5 visits read but not committed — stopped: the node "
                               "refused line 4\n")
        # one visit per transaction: lines 1 and 3 commit; line 4 is refused (at submission or
        # in its block: how far the chain got meanwhile), and nothing after it commits
        done = run_cli("visits", "ingest", src, "--batch", "1", "--connect", chain.addr,
                       "--key", terminal_key)
        assert done.returncode == 3, done.stderr
        assert re.match(rf"{re.escape(str(src))}: line 4: refused by the node (at submission|in "
                        r"its block) \(unknown_merchant\): visit\.pack: visit 0: merchant 'initech'",
                        done.stderr), done.stderr
        assert "ingest it again from line 4 (e.g. `tail -n +4 " in done.stderr
        assert done.stdout.startswith("6 lines read: 2 visits committed in 2 transactions, 1 skipped "
                                      "(not visits), 0 bad;"), done.stdout
        assert done.stdout.endswith(" — stopped: the node refused line 4\n"), done.stdout
        nonce, packs = trio.run(partial(_committed_visits, chain.addr, checked=True))
    assert [row[0] for p in packs for row in p.rows()] == ["10.6.3.0", "10.6.3.1"]
    assert nonce == 2


@pytest.mark.slow
def test_the_dev_chains_terminal_key_has_a_documented_command_line_route(
    tmp_path: Path, dev_chain: DevChain,
) -> None:
    """Audit: against `p2pmkt dev` the command said "pass --key FILE", and the only way to
    the dev terminal key was Python (dev_key + save_key)."""
    src = tmp_path / "visits.jsonl"
    src.write_text(_jsonl("10.6.4.", 0, 2))
    done = run_cli("visits", "ingest", src, "--connect", dev_chain.addr)
    assert done.returncode == 2
    assert "This is a dev chain: `p2pmkt key dev terminal terminal.key` writes its (public) " \
           "terminal key, then pass --key terminal.key" in done.stderr, done.stderr
    key = tmp_path / "terminal.key"
    made = run_cli("key", "dev", "terminal", key)
    assert made.returncode == 0, made.stderr
    assert "dev keys are public" in made.stderr
    done = run_cli("visits", "ingest", src, "--connect", dev_chain.addr, "--key", key)
    assert done.returncode == 0, done.stderr
    assert "2 visits committed" in done.stdout


def test_ingest_help_and_the_guide_give_the_same_exit_codes_as_the_cli() -> None:
    """Audit: docs/INGEST.md listed 0/1/3 while a dead node gives 4."""
    from p2pmkt.cli import main

    codes = {main.EXIT_OK, main.EXIT_FAILED, main.EXIT_USAGE, main.EXIT_REJECTED,
             main.EXIT_UNAVAILABLE, main.EXIT_INTERRUPTED}
    guide = (Path(__file__).resolve().parents[2] / "docs" / "INGEST.md").read_text()
    table = guide[guide.index("### Exit status"):]
    assert {int(c) for c in re.findall(r"^\| `(\d+)` ", table, re.M)} == codes
    done = run_cli("visits", "ingest", "--help")
    assert done.returncode == 0
    helped = done.stdout[done.stdout.index("exit status:"):]
    assert {int(c) for c in re.findall(r"^  (\d+) ", helped, re.M)} == codes
    assert "p2pmkt key dev terminal terminal.key" in done.stdout
    assert "refused, naming the limit, before anything is sent" in " ".join(done.stdout.split())
