"""The marketing loop with the real wasmtime engine: deploy a built-in, report, update."""

from __future__ import annotations

import pytest

from p2pmkt.market.events import ReportWritten
from p2pmkt.market.store import get_report
from p2pmkt.testing.builders import LocalChain, campaign, indicator, visit

contracts = pytest.importorskip("p2pmkt.contracts")
builtin = pytest.importorskip("p2pmkt.contracts.builtin")


def test_conversion_below_target_leads_to_an_update_on_identical_chains() -> None:
    chains = [LocalChain(runtime=contracts.WasmRuntime()) for _ in range(2)]
    code = builtin.builtin_code("conversion_rate")
    code_hash = builtin.builtin_hash("conversion_rate")
    target = {"value": "conversion_rate", "threshold": 2, "scale": 2, "direction": "at_least"}  # 2%
    reports = []
    for chain in chains:
        assert chain.run("platform", "contract.deploy", {"code": code}).status == "ok"
        assert chain.run("acme-ops", "indicator.configure", indicator(
            code=code_hash, every_visits=100, target=target)).status == "ok"
        batch = [visit("acme", "order", amount=2500)] + [visit("acme", account=f"u{i}") for i in range(99)]
        result = chain.block([chain.tx("terminal", "visit.batch", {"visits": batch})])
        (event,) = [e for e in result.events if isinstance(e, ReportWritten)]
        reports.append(event.report)
        receipt = chain.run("acme-tech", "market.update", {
            "merchant": "acme", "base_version": 0, "campaigns": [campaign(max_bid=150)],
            "cause": event.report.id})
        assert receipt.status == "ok"
    report = reports[0]
    assert report.ok, report.error
    assert report.scale == 6 and report.value("conversion_rate") == 10_000  # 1 order / 100 = 1%
    assert report.missed
    assert reports[0] == reports[1]
    assert get_report(chains[0].state, "acme", "conversion", 0) == report
    assert chains[0].head.state_root == chains[1].head.state_root


def test_real_runtime_rejects_non_wasm_at_deploy() -> None:
    chain = LocalChain(runtime=contracts.WasmRuntime())
    receipt = chain.run("acme-ops", "contract.deploy", {"code": b"\0asm\x01\0\0\0garbage"})
    assert (receipt.status, receipt.reason) == ("rejected", "invalid_wasm")
    assert chain.state.get("contracts", __import__("hashlib").sha256(b"\0asm\x01\0\0\0garbage").digest()) is None
