"""Hostile contracts (issue 3): each is refused at deploy or fails deterministically."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from p2pmkt.chain.contract_api import EvalResult
from p2pmkt.contracts import RuntimeConfig, WasmRuntime
from p2pmkt.errors import ContractRejected

FUEL = 1_000_000
MEMORY = 4 * 1024 * 1024
VISITS = b"\0" * 48 * 10

# fixture -> expected error (exact) of the failed evaluation
FAILS_AT_RUN = {
    "infinite_loop": "out_of_fuel",
    "memory_bomb": "memory_limit",
    "deep_recursion": "stack_overflow",
    "start_trap": "trap: unreachable",
    "out_of_bounds": "trap: memory_out_of_bounds",
    "giant_output": "bad_output: output count 1000000 outside 1..64",
    "output_past_memory": "bad_output: output of 2 entries runs past memory",
    "negative_return": "contract_error: -42",
    "bad_alloc": "bad_alloc: p2pmkt_alloc(480) returned 65536",
}

# fixture -> ContractRejected.reason at deploy
REJECTED_AT_DEPLOY = {
    "wasi_import": "disallowed_import",
    "bad_abort_signature": "disallowed_import",
    "imported_memory": "disallowed_import",
    "missing_export": "bad_exports",
}


@pytest.mark.parametrize("name", sorted(FAILS_AT_RUN))
def test_hostile_contract_fails_its_execution_with_a_reason(
    name: str, run: Callable[..., EvalResult], runtime: WasmRuntime, wat: Callable[[str], bytes]
) -> None:
    runtime.check_code(wat(name))  # deployable: the failure only shows when it runs
    result = run(name, VISITS, fuel=FUEL, memory_bytes=MEMORY)
    assert result == EvalResult(False, (), 0, result.fuel_used, FAILS_AT_RUN[name])
    assert 0 <= result.fuel_used <= FUEL


@pytest.mark.parametrize("name", ["infinite_loop", "deep_recursion"])
def test_runaway_contract_reports_the_whole_budget_as_used(name: str, run: Callable[..., EvalResult]) -> None:
    assert run(name, VISITS, fuel=FUEL, memory_bytes=MEMORY).fuel_used == FUEL


def test_memory_bomb_stops_at_the_store_limit_not_the_host(run: Callable[..., EvalResult]) -> None:
    # Two limits, same verdict: the node's memory is never what runs out.
    for limit in (2 * 1024 * 1024, 8 * 1024 * 1024):
        assert run("memory_bomb", fuel=FUEL, memory_bytes=limit).error == "memory_limit"


@pytest.mark.parametrize("name", sorted(REJECTED_AT_DEPLOY))
def test_disallowed_module_is_rejected_at_deploy(
    name: str, runtime: WasmRuntime, wat: Callable[[str], bytes]
) -> None:
    with pytest.raises(ContractRejected) as info:
        runtime.check_code(wat(name))
    assert info.value.reason == REJECTED_AT_DEPLOY[name]


def test_wasi_import_message_names_the_import_and_the_host_api(
    runtime: WasmRuntime, wat: Callable[[str], bytes]
) -> None:
    with pytest.raises(
        ContractRejected,
        match=r"^import wasi_snapshot_preview1\.clock_time_get is not allowed \(the host API is: env\.abort\)$",
    ):
        runtime.check_code(wat("wasi_import"))


def test_huge_module_is_rejected_at_deploy_before_compiling(wat: Callable[[str], bytes]) -> None:
    runtime = WasmRuntime(RuntimeConfig(max_code_bytes=64 * 1024))
    huge = wat("count") + b"\0" * (64 * 1024)  # size is checked before anything else
    with pytest.raises(ContractRejected, match=r"^module is \d+ bytes; the limit is 65536$") as info:
        runtime.check_code(huge)
    assert info.value.reason == "code_too_big"
    assert runtime.statistics().compiled == 0


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (b"", "invalid_wasm"),
        (b"(module)", "invalid_wasm"),  # text is not accepted: deploy the binary
        (b"\0asm\x01\0\0\0\xff\xff", "invalid_wasm"),
    ],
)
def test_malformed_module_is_rejected_at_deploy(code: bytes, reason: str, runtime: WasmRuntime) -> None:
    with pytest.raises(ContractRejected) as info:
        runtime.check_code(code)
    assert info.value.reason == reason


def test_initial_memory_above_the_deploy_limit_is_rejected(runtime: WasmRuntime) -> None:
    import wasmtime

    code = bytes(
        wasmtime.wat2wasm(
            '(module (memory (export "memory") 1000)'
            ' (func (export "p2pmkt_alloc") (param i32) (result i32) (i32.const 8))'
            ' (func (export "p2pmkt_eval") (param i32 i32 i32 i32) (result i32) (i32.const 0)))'
        )
    )
    with pytest.raises(ContractRejected, match=r"^initial memory of 1000 pages exceeds 16 pages$"):
        runtime.check_code(code)


def test_nan_from_float_code_is_canonical(run: Callable[..., EvalResult]) -> None:
    result = run("nan")
    canonical = 0x7FF8000000000000
    assert result.ok
    assert result.values == (("div", canonical), ("sqrt", canonical))


def test_input_larger_than_the_memory_limit_fails_without_running(run: Callable[..., EvalResult]) -> None:
    result = run("count", b"\0" * 48 * 50_000, memory_bytes=1024 * 1024)
    assert (result.ok, result.error, result.fuel_used) == (False, "memory_limit", 0)


@pytest.mark.parametrize("name", [*sorted(FAILS_AT_RUN), "nan", "count"])
def test_same_inputs_give_identical_results_on_two_fresh_runtimes(
    name: str, wat: Callable[[str], bytes], evaluate: Callable[..., EvalResult]
) -> None:
    code = wat(name)
    first = evaluate(WasmRuntime(), code, VISITS, {"x": 1}, fuel=FUEL, memory_bytes=MEMORY)
    second = evaluate(WasmRuntime(), code, VISITS, {"x": 1}, fuel=FUEL, memory_bytes=MEMORY)
    assert first == second


def test_runtime_keeps_working_after_every_kind_of_failure(
    run: Callable[..., EvalResult],
) -> None:
    for name in FAILS_AT_RUN:
        run(name, VISITS, fuel=FUEL, memory_bytes=MEMORY)
    assert run("count", VISITS).values == (("visits", 10),)


def test_a_wrong_export_is_refused_saying_what_the_module_has(
    runtime: WasmRuntime, wat: Callable[[str], bytes]
) -> None:
    # A missing p2pmkt_eval and one with the wrong signature read the same before.
    with pytest.raises(ContractRejected, match=(
            r"^module must export function p2pmkt_eval\(i32, i32, i32, i32\) -> i32; it exports no such "
            r"function \(its exports: memory, p2pmkt_alloc\)$")):
        runtime.check_code(wat("missing_export"))
    import wasmtime

    from tests.contracts.conftest import FIXTURES

    text = (FIXTURES / "missing_export.wat").read_text().replace(
        '(func (export "p2pmkt_alloc") (param $n i32)', '(func (export "p2pmkt_alloc") (param $n i32) (param $m i64)')
    with pytest.raises(ContractRejected, match=(
            r"^module must export function p2pmkt_alloc\(i32\) -> i32; it exports p2pmkt_alloc\(i32, i64\) -> i32$")):
        runtime.check_code(bytes(wasmtime.wat2wasm(text)))
