"""``p2pmkt rules check``: a rules file refused with the line at fault, offline for what the
file alone decides, and against a dev chain process for indicators the merchant has not
configured (issue 6, Tests: "unknown indicator ... rejected at load with the line at fault")."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pmkt.chain.dev import dev_key
from p2pmkt.client import connect
from p2pmkt.crypto import save_key
from p2pmkt.rpc.protocol import ErrorCode, RpcError

from ._procs import run_cli
from .conftest import DevChain

RULES = '''merchant = "acme"

[[rule]]
name = "low"
indicator = "conv-rc"
when = "missed"
actions = [{ raise_bid_pct = 10, max_bid = 250 }]
'''


def test_offline_check_names_the_line(tmp_path: Path) -> None:
    good = tmp_path / "rules.toml"
    good.write_text(RULES)
    done = run_cli("rules", "check", good)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{good}: 1 rule(s) for acme: ok (indicators not checked against a chain: add --connect or --node)\n"
    bad = tmp_path / "bad.toml"
    bad.write_text(RULES.replace("max_bid = 250", "max_bid = -1"))
    done = run_cli("rules", "check", bad)
    assert done.returncode == 2 and done.stderr.startswith("error: bad.toml line 7: "), done.stderr


@pytest.mark.slow
def test_an_indicator_the_merchant_has_not_configured_is_refused_with_its_line(dev_chain: DevChain, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    at = ("--connect", dev_chain.addr)
    done = run_cli("rules", "check", rules, *at)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: rules.toml line 5: unknown indicator 'conv-rc'"), done.stderr

    ops = tmp_path / "ops.key"
    save_key(ops, dev_key("acme-ops"))
    assert run_cli("contract", "deploy", "builtin:conversion_rate", *at, "--key", ops).returncode == 0
    done = run_cli("indicator", "configure", "acme", "conv-rc", "--code", "builtin:conversion_rate",
                   "--every-visits", 1000, *at, "--key", ops)
    assert done.returncode == 0, done.stdout + done.stderr
    with connect(dev_chain.addr) as client:
        names = [i["name"] for i in client.call("market.indicators", {"merchant": "acme"})["items"]]
    assert "conv-rc" in names and names == sorted(names)

    done = run_cli("rules", "check", rules, *at)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"{rules}: 1 rule(s) for acme: ok; every rule's indicator is configured on chain (")


@pytest.mark.slow
def test_a_merchant_the_chain_does_not_know_is_named_not_listed_as_empty(dev_chain: DevChain, tmp_path: Path) -> None:
    # A misspelt merchant id used to answer empty lists, read as "no reports yet".
    unknown = "merchant 'acmee' is not known to this chain (no member has ever held a merchant-ops: or merchant-tech: role for it)"
    at = ("--connect", dev_chain.addr)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.replace('"acme"', '"acmee"'))
    done = run_cli("rules", "check", rules, *at)
    assert (done.returncode, done.stderr) == (2, f"error: {rules} line 1: {unknown}\n"), done.stdout
    for query in ("history", "reports"):
        done = run_cli("market", query, "acmee", *at)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", unknown + "\n"), query
        done = run_cli("market", query, "globex", *at)  # known, with nothing of this kind yet
        assert done.returncode == 0 and done.stdout.strip() == "[]", (query, done.stdout, done.stderr)
    with connect(dev_chain.addr) as client:
        assert client.call("market.indicators", {"merchant": "globex"})["items"] == []
        with pytest.raises(RpcError) as exc:
            client.call("market.indicators", {"merchant": "acmee"})
    assert (exc.value.code, exc.value.error_reason, exc.value.rpc_message) == (ErrorCode.NOT_FOUND, "not_found", unknown)

