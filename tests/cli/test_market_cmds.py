"""``p2pmkt market update|info|history|cycle`` as a user runs them, against a dev chain
process running the demo workload (its merchant-tech agent updates acme by itself)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from p2pmkt.chain.dev import dev_key
from p2pmkt.crypto import save_key

from ._procs import run_cli
from .conftest import run_dev_chain

CAMPAIGNS = [{"name": "manual", "keywords": [{"text": "trail boots", "match": "exact"}], "max_bid": 40,
              "channels": ["search"], "daily_budget": 5000, "active": True}]


@pytest.mark.slow
def test_automatic_updates_are_measured_and_a_manual_update_is_committed(tmp_path: Path) -> None:
    # acme-ops may configure acme's indicators, not its marketing information.
    tech, ops = tmp_path / "acme-tech.key", tmp_path / "acme-ops.key"
    save_key(tech, dev_key("acme-tech"))
    save_key(ops, dev_key("acme-ops"))
    campaigns = tmp_path / "campaigns.json"
    campaigns.write_text(json.dumps(CAMPAIGNS))
    with run_dev_chain(tmp_path / "chain", "--demo") as chain:
        at = ("--connect", chain.addr)
        # The demo's acme starts below target: its agent updates it within the first reports.
        deadline = time.monotonic() + 90
        while True:
            cycle = run_cli("market", "cycle", "acme", *at)
            # exit 1 until the demo has set acme's first marketing information
            assert cycle.returncode in (0, 1), cycle.stderr
            if cycle.returncode == 0 and cycle.stdout.startswith("updates: "):
                break
            assert time.monotonic() < deadline, cycle.stdout
            time.sleep(1.0)  # polling the chain for the first automatic update, with a deadline
        assert re.search(r"^block time: p50 [\d,]+ ms  p99 [\d,]+ ms  max [\d,]+ ms", cycle.stdout, re.M), cycle.stdout
        # Wall time too: the node applied both blocks of every cycle since it started.
        updates = int(re.match(r"updates: (\d+)", cycle.stdout).group(1))  # type: ignore[union-attr]
        assert re.search(rf"^wall time:  p50 [\d,]+ ms  p99 [\d,]+ ms  max [\d,]+ ms  \({updates} observed\)$",
                         cycle.stdout, re.M), cycle.stdout
        unknown = run_cli("market", "cycle", "nosuch", *at)
        assert unknown.returncode == 1 and unknown.stderr.startswith(
            "merchant 'nosuch' has no marketing information (an unknown merchant, or none set yet)")
        history = json.loads(run_cli("market", "history", "acme", *at).stdout)
        automatic = [v for v in history if v["cause"]]
        assert automatic and all(re.fullmatch(r"acme/conversion/\d+", v["cause"]) for v in automatic)
        # Each names the block of its cause report (and so of the visit that made it due).
        reports = {f"acme/{r['indicator']}/{r['n']}": r for r in
                   json.loads(run_cli("market", "reports", "acme", "--limit", 500, *at).stdout)}
        for v in automatic:
            assert v["cause_height"] == reports[v["cause"]]["height"] <= v["height"], v

        done = run_cli("market", "update", "acme", "--campaigns", campaigns, *at, "--key", tech)
        assert done.returncode == 0, done.stderr
        receipt = json.loads(done.stdout)
        assert receipt["status"] == "committed"
        info = json.loads(run_cli("market", "info", "acme", *at).stdout)
        # The agent may have updated again meanwhile: find ours by its block.
        ours = [v for v in json.loads(run_cli("market", "history", "acme", *at).stdout)
                if v["height"] == receipt["height"] and v["cause"] == ""]
        assert len(ours) == 1 and ours[0]["campaigns"] == CAMPAIGNS
        assert info["version"] >= ours[0]["version"]

        refused = run_cli("market", "update", "acme", "--campaigns", campaigns, *at, "--key", ops)
        assert refused.returncode == 3, (refused.stdout, refused.stderr)
        assert "merchant-tech" in refused.stderr and "Traceback" not in refused.stderr


def test_market_update_refuses_a_misspelt_campaign_field_before_sending(tmp_path: Path) -> None:
    # Nothing listens at the address: the file is refused before any connection is tried.
    campaigns = tmp_path / "campaigns.json"
    campaigns.write_text(json.dumps([{**CAMPAIGNS[0], "budget": 9000}]))
    key = tmp_path / "acme-tech.key"
    save_key(key, dev_key("acme-tech"))
    done = run_cli("market", "update", "acme", "--campaigns", campaigns, "--key", key,
                   "--connect", "/ip4/127.0.0.1/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr == (f"error: {campaigns}: campaign 1: campaign 'manual' has unknown field ['budget']; "
                           "its fields are exactly ['active', 'channels', 'daily_budget', 'keywords', "
                           "'max_bid', 'name']\n")
