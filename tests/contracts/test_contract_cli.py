"""The merchant SDK commands: p2pmkt contract new | build | run | deploy."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from p2pmkt.chain.tx import decode_tx, verify_tx
from p2pmkt.cli import contract
from p2pmkt.contracts.builtin import BUILTIN_DIR
from p2pmkt.crypto.keyfile import save_key
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.errors import ContractRejected


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    contract.add_parser(parser.add_subparsers())
    args = parser.parse_args(["contract", *argv])
    return int(args.func(args))


def test_new_scaffolds_a_project_with_sdk_and_sample_visits(tmp_path: Path) -> None:
    assert cli("new", "big_orders", "--dir", str(tmp_path / "p")) == 0
    project = tmp_path / "p"
    assert json.loads((project / "package.json").read_text())["scripts"]["build"].endswith("build/big_orders.wasm")
    assert (project / "assembly/sdk.ts").read_text() == (BUILTIN_DIR / "assembly/sdk.ts").read_text()
    assert len((project / "visits.jsonl").read_text().splitlines()) == 6


def test_run_prints_values_and_exact_decimals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli("new", "x", "--dir", str(tmp_path / "p"))
    capsys.readouterr()
    wasm = BUILTIN_DIR / "wasm" / "average_order_value.wasm"
    assert cli("run", str(wasm), "--visits", str(tmp_path / "p/visits.jsonl")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["values"] == {"average_order_value": 870000}  # (12900 + 4500) / 2 at scale 2
    assert out["decimal"] == {"average_order_value": "8700.00"}
    assert (out["ok"], out["visits"], out["scale"]) == (True, 6, 2)


def test_run_reports_a_failed_evaluation_with_exit_1(
    tmp_path: Path, wat: Callable[[str], bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "loop.wasm").write_bytes(wat("infinite_loop"))
    (tmp_path / "v.jsonl").write_text("")
    assert cli("run", str(tmp_path / "loop.wasm"), "--visits", str(tmp_path / "v.jsonl"), "--fuel", "1000") == 1
    assert json.loads(capsys.readouterr().out)["error"] == "out_of_fuel"


def test_deploy_writes_a_signed_contract_deploy_transaction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = PrivateKey.generate()
    save_key(tmp_path / "ops.key", key)
    wasm = BUILTIN_DIR / "wasm" / "page_views.wasm"
    out = tmp_path / "deploy.tx"
    assert cli("deploy", str(wasm), "--key", str(tmp_path / "ops.key"), "--chain", "dev",
               "--nonce", "4", "--out", str(out)) == 0
    stx = decode_tx(out.read_bytes())
    verify_tx(stx, "dev")
    assert (stx.tx.kind, stx.tx.nonce, stx.tx.payload) == ("contract.deploy", 4, {"code": wasm.read_bytes()})
    assert stx.sender == key.address


def test_deploy_refuses_an_undeployable_module(tmp_path: Path, wat: Callable[[str], bytes]) -> None:
    save_key(tmp_path / "ops.key", PrivateKey.generate())
    (tmp_path / "bad.wasm").write_bytes(wat("wasi_import"))
    with pytest.raises(ContractRejected):
        cli("deploy", str(tmp_path / "bad.wasm"), "--key", str(tmp_path / "ops.key"), "--chain", "dev", "--nonce", "0")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm not installed: cannot build AssemblyScript")
def test_scaffolded_project_builds_and_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "big_orders"
    cli("new", "big_orders", "--dir", str(project))
    # Reuse the pinned compiler the built-ins use instead of a second download.
    from p2pmkt.contracts.builtin.build import ensure_compiler

    ensure_compiler()
    (project / "node_modules").symlink_to(BUILTIN_DIR / "node_modules")
    assert cli("build", str(project)) == 0
    capsys.readouterr()
    assert cli("run", str(project / "build/big_orders.wasm"), "--visits", str(project / "visits.jsonl"),
               "--params", "min_amount=5000") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["values"] == {"big_orders": 10000, "big_order_share": 5000}
    assert out["decimal"] == {"big_orders": "1.0000", "big_order_share": "0.5000"}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm not installed: cannot build AssemblyScript")
def test_a_scaffolded_contract_keeps_its_asserts_and_refuses_a_name_it_would_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The scaffold used to build with --noAssert: a failing assert() returned ok, and the SDK
    # cut a 27-char output name to 24, which no target written in full could match.
    project = tmp_path / "checks"
    cli("new", "checks", "--dir", str(project))
    from p2pmkt.contracts.builtin.build import ensure_compiler

    ensure_compiler()
    (project / "node_modules").symlink_to(BUILTIN_DIR / "node_modules")
    (project / "assembly" / "index.ts").write_text(
        'import { Output, param } from "./sdk";\n'
        'export { p2pmkt_alloc } from "./sdk";\n'
        "export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {\n"
        '  if (param(params, nParams, "long", 0) == 1) {\n'
        '    return new Output(1, 0).set(0, "average_order_value_browser", 1).done();\n'
        "  }\n"
        '  assert(n > 1000, "window too small");\n'
        '  return new Output(1, 0).set(0, "n", n).done();\n'
        "}\n")
    assert cli("build", str(project)) == 0
    wasm, visits = str(project / "build/checks.wasm"), str(project / "visits.jsonl")
    capsys.readouterr()
    assert cli("run", wasm, "--visits", visits) == 1
    assert json.loads(capsys.readouterr().out)["error"].startswith("abort: window too small at assembly/index.ts:7")
    assert cli("run", wasm, "--visits", visits, "--param", "long=1") == 1
    assert json.loads(capsys.readouterr().out)["error"].startswith(
        "abort: output name must be 1..24 chars of [a-z0-9_.] at assembly/sdk.ts:")
