"""``p2pmkt indicator configure|show|remove`` and ``contract deploy builtin:NAME`` as a
merchant's engineer runs them against a dev chain process: an indicator configured from the
command line reports by itself once its condition holds (issue 6 item 2)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from p2pmkt.chain.dev import dev_key
from p2pmkt.cli.indicator_cmd import parse_target
from p2pmkt.client import connect
from p2pmkt.contracts.builtin import BUILTIN_DIR, builtin_hash
from p2pmkt.crypto import save_key
from p2pmkt.errors import ConfigError

from ._procs import run_cli
from .conftest import DevChain


def test_target_text_becomes_a_fixed_point_target() -> None:
    assert parse_target("conversion_rate>=0.02", None) == {
        "value": "conversion_rate", "threshold": 200, "scale": 4, "direction": "at_least"}
    assert parse_target(" bounce <= 0.125 ", 6) == {
        "value": "bounce", "threshold": 125000, "scale": 6, "direction": "at_most"}
    assert parse_target("x>=0.123456", None)["scale"] == 6
    with pytest.raises(ConfigError, match=r"needs 3 decimal places; --scale is 2$"):
        parse_target("x>=0.125", 2)
    with pytest.raises(ConfigError, match=r"write VALUE>=X or VALUE<=X"):
        parse_target("x=>1", None)


@pytest.mark.slow
def test_configure_show_report_remove(dev_chain: DevChain, tmp_path: Path) -> None:
    ops = tmp_path / "acme-ops.key"
    save_key(ops, dev_key("acme-ops"))
    at = ("--connect", dev_chain.addr, "--key", ops)

    done = run_cli("contract", "deploy", "builtin:page_views", *at)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "committed at height" in done.stdout and builtin_hash("page_views").hex() in done.stdout

    done = run_cli("indicator", "configure", "acme", "views-cli", "--code", "builtin:page_views",
                   "--every-visits", 5, "--target", "page_views>=100", *at)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == "committed"
    shown = run_cli("indicator", "show", "acme", "views-cli", "--connect", dev_chain.addr)
    assert shown.returncode == 0, shown.stderr
    spec = json.loads(shown.stdout)
    assert spec["condition"] == {"every_visits": 5, "every_ms": 0}
    assert spec["target"] == {"value": "page_views", "threshold": 1_000_000, "scale": 4, "direction": "at_least"}

    # Six views of acme: the condition holds and the chain writes the report by itself.
    with connect(dev_chain.addr) as client:
        now = 1_764_000_000_000
        txids = client.submit_visits(dev_key("terminal"),
                                     [(f"10.1.0.{i}", "", now + i, "acme", "browser", "view", "", 0) for i in range(6)])
        client.wait_tx_committed(txids[-1])
        deadline = time.monotonic() + 30
        while not (ours := [r for r in client.reports("acme", limit=50) if r["indicator"] == "views-cli"]):
            assert time.monotonic() < deadline, "no report of the configured indicator"
            time.sleep(0.2)  # polling the chain for the report, with a deadline
        # Paging: "at most limit items" (limit 0 answered one report).
        assert client.reports("acme", limit=0) == [] and len(client.reports("acme", limit=1)) == 1
    assert ours[0]["ok"] and ours[0]["missed"]  # fewer than 100 views

    done = run_cli("indicator", "remove", "acme", "views-cli", *at)
    assert done.returncode == 0, done.stdout + done.stderr
    gone = run_cli("indicator", "show", "acme", "views-cli", "--connect", dev_chain.addr)
    assert gone.returncode == 1 and gone.stderr == "merchant 'acme' has no indicator 'views-cli'\n"


@pytest.mark.slow
def test_mistakes_are_refused_before_signing(dev_chain: DevChain, tmp_path: Path) -> None:
    ops = tmp_path / "acme-ops.key"
    save_key(ops, dev_key("acme-ops"))
    base = ("indicator", "configure", "acme", "x", "--connect", dev_chain.addr, "--key", ops)
    cases = [
        (("--code", "builtin:nope", "--every-visits", 5), "error: --code: no built-in indicator 'nope'"),
        (("--code", "/nonexistent.wasm", "--every-visits", 5), "error: --code /nonexistent.wasm: not a code hash"),
        (("--code", "builtin:page_views"), "error: condition needs --every-visits or --every-ms (or both) above 0"),
        (("--code", "builtin:page_views", "--every-ms", 10, "--param", "min"), "error: --param 'min': write NAME=INTEGER"),
        (("--code", "builtin:page_views", "--every-ms", 10, "--target", "views>1"), "error: --target 'views>1': write VALUE>=X"),
        (("--code", "builtin:page_views", "--every-ms", 10, "--target", "Page Views>=1"),
         "error: target value name 'Page Views' must be 1-24 chars of a-z 0-9 _ ."),
        # A target on a value the contract never writes would never be missed: a silent no-op.
        (("--code", "builtin:conversion_rate", "--every-ms", 10, "--target", "conv>=0.02"),
         "error: --target names the value 'conv', but this contract writes ['conversion_rate'] (run "
         "over sample visits): its reports would never be judged missed. Name one of those, or pass "
         "--skip-target-check if the contract writes 'conv' only for some windows\n"),
        (("--code", str(BUILTIN_DIR / "wasm" / "access_method_share.wasm"), "--every-ms", 10, "--target", "web<=0.5"),
         "error: --target names the value 'web', but this contract writes ['browser', 'desktop', 'app']"),
    ]
    for extra, message in cases:
        done = run_cli(*base, *extra)
        assert done.returncode == 2 and done.stderr.startswith(message), (extra, done.stderr)
    deployed = run_cli("contract", "deploy", "builtin:conversion_rate", "--connect", dev_chain.addr, "--key", ops)
    assert deployed.returncode == 0, deployed.stderr
    done = run_cli(*base, "--code", "builtin:conversion_rate", "--every-ms", 10, "--target", "conv>=0.02",
                   "--skip-target-check")
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "committed", done.stderr
    # Signed and sent, but the role is wrong: acme-tech is no merchant-ops.
    tech = tmp_path / "acme-tech.key"
    save_key(tech, dev_key("acme-tech"))
    done = run_cli("indicator", "configure", "acme", "x", "--code", "builtin:page_views", "--every-ms", 10,
                   "--connect", dev_chain.addr, "--key", tech)
    assert done.returncode == 3 and done.stderr.startswith("rejected (missing_role)"), done.stderr
