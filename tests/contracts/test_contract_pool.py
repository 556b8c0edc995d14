"""The pooling engine is an optimisation only: every result equals the reference engine's."""

from __future__ import annotations

import hashlib

import pytest
import wasmtime

from p2pmkt.chain.contract_api import EvalResult
from p2pmkt.contracts import RuntimeConfig, WasmRuntime
from p2pmkt.contracts.builtin import BUILTINS, builtin_code
from p2pmkt.errors import ConfigError

from .conftest import FIXTURES, compile_wat, evaluate_code
from .test_contract_hostile import FAILS_AT_RUN

VISITS = bytes(range(48)) * 50


def _tables(decl: str) -> bytes:
    """count.wat with extra table declarations."""
    text = (FIXTURES / "count.wat").read_text()
    return bytes(wasmtime.wat2wasm(text.replace('(memory (export "memory") 1)', f'(memory (export "memory") 1) {decl}')))


CASES = {
    **{name: compile_wat(name) for name in sorted(FAILS_AT_RUN)},
    "count": compile_wat("count"),
    "two_tables": _tables("(table 1 funcref) (table 1 funcref)"),  # the pool cannot hold it
    "table_over_limit": _tables("(table 20000 funcref)"),  # nor this
    "small_table": _tables("(table 5 funcref)"),
    **{f"builtin:{name}": builtin_code(name) for name in BUILTINS},
}


def _both(code: bytes) -> tuple[EvalResult, EvalResult]:
    pooled = WasmRuntime(RuntimeConfig())
    reference = WasmRuntime(RuntimeConfig(pool_instances=0))
    return evaluate_code(pooled, code, VISITS), evaluate_code(reference, code, VISITS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_pooled_and_reference_engines_agree(name: str) -> None:
    pooled, reference = _both(CASES[name])
    assert pooled == reference


def test_modules_the_pool_cannot_hold_run_on_the_reference_engine() -> None:
    runtime = WasmRuntime(RuntimeConfig())
    for name, pooled in (("two_tables", False), ("table_over_limit", False), ("small_table", True)):
        code = CASES[name]
        runtime.check_code(code)  # deploy is decided by the reference engine alone
        assert (runtime._compile(code, hashlib.sha256(code).digest()).pooled is not None) is pooled
        assert evaluate_code(runtime, code, VISITS).error == ("" if pooled else "instantiate: limits")


def test_a_full_pool_falls_back_without_changing_the_result() -> None:
    runtime = WasmRuntime(RuntimeConfig(pool_instances=1))
    code = CASES["count"]
    expected = evaluate_code(runtime, code, VISITS)
    assert expected.ok
    compiled = runtime._compile(code, hashlib.sha256(code).digest())
    assert compiled.pooled is not None
    squatter = wasmtime.Store(runtime._pool_engine)
    squatter.set_fuel(1000)
    compiled.pooled.instantiate(squatter)  # holds the only slot
    try:
        assert evaluate_code(runtime, code, VISITS) == expected
    finally:
        squatter.close()
    assert evaluate_code(runtime, code, VISITS) == expected  # and the slot is usable again


def test_evaluations_release_their_slot() -> None:
    runtime = WasmRuntime(RuntimeConfig(pool_instances=1))
    code = CASES["count"]
    results = {evaluate_code(runtime, code, VISITS) for _ in range(50)}
    assert len(results) == 1
    for name in sorted(FAILS_AT_RUN):  # failures too give their slot back
        evaluate_code(runtime, CASES[name], VISITS)
    compiled = runtime._compile(code, hashlib.sha256(code).digest())
    store = wasmtime.Store(runtime._pool_engine)
    store.set_fuel(1000)
    assert compiled.pooled is not None
    compiled.pooled.instantiate(store)  # would raise if a slot had leaked
    store.close()


@pytest.mark.parametrize("field", ["pool_instances", "keep_resident_bytes"])
def test_pool_settings_are_validated(field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^contracts\.{field} must be a non-negative integer, got -1$"):
        WasmRuntime(RuntimeConfig(**{field: -1}))  # type: ignore[arg-type]
