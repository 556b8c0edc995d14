"""``p2pmkt visits ingest`` end to end: the shared access log into a real dev chain process.

The chain here makes a block every 2 s, so the terminal has hundreds of transactions waiting
at once (one visit per transaction): the case that was refused ``nonce_ahead`` after 65
waiting, with no nonce missing (the mempool bounded a sender's pending run, not its gaps).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pmkt.chain.block import decode_block
from p2pmkt.client import open_client
from p2pmkt.market.packed import RECORD_SIZE
from p2pmkt.testing.keys import dev_key

from ._procs import run_cli
from .conftest import run_dev_chain

SHARED_LOG = Path(__file__).resolve().parents[3] / "shared" / "data" / "apache-combined-2015-05.log"
VISITS_IN_LOG = 2_474  # of its 5,000 lines; the others are not visits (tests/ingest)
TERMINAL = dev_key("terminal").address


async def _terminal_visits_on_chain(addr: str) -> tuple[int, int]:
    """(the terminal's account nonce, visits in its committed ``visit.pack`` transactions)."""
    async with open_client(addr) as c:
        nonce = int((await c.call("account.get", {"address": bytes(TERMINAL)}))["nonce"])
        top = (await c.head()).height
        visits = 0
        for h in range(1, top + 1):
            block = decode_block(bytes((await c.call("chain.block", {"height": h}))["block"]))
            visits += sum(len(stx.tx.payload["visits"]) // RECORD_SIZE for stx in block.txs
                          if stx.tx.sender == TERMINAL and stx.tx.kind == "visit.pack")
    return nonce, visits


@pytest.mark.slow
def test_ingest_one_visit_per_transaction_commits_every_visit_of_the_shared_log(
    tmp_path: Path, terminal_key: Path,
) -> None:
    if not SHARED_LOG.exists():
        pytest.skip(f"shared log not found at {SHARED_LOG}")
    with run_dev_chain(tmp_path / "chain", "--block-ms", "2000") as chain:
        done = run_cli("visits", "ingest", SHARED_LOG, "--format", "combined", "--merchant", "acme",
                       "--batch", "1", "--connect", chain.addr, "--key", terminal_key, timeout=180)
        assert done.returncode == 0, done.stderr
        assert f"{VISITS_IN_LOG:,} visits in {VISITS_IN_LOG:,} transactions" in done.stdout, done.stdout
        # The command returned after its last transaction committed: so did every earlier one.
        nonce, visits = trio.run(_terminal_visits_on_chain, chain.addr)
    assert (nonce, visits) == (VISITS_IN_LOG, VISITS_IN_LOG)
