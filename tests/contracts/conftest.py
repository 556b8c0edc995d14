"""Shared fixtures for the contract engine tests: compile .wat fixtures, run them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import wasmtime

from p2pmkt.chain.contract_api import EvalResult
from p2pmkt.contracts import RuntimeConfig, WasmRuntime

FIXTURES = Path(__file__).parent / "fixtures"
FUEL = 10_000_000
MEMORY = 16 * 1024 * 1024


def compile_wat(name: str) -> bytes:
    """Return the binary module compiled from ``fixtures/<name>.wat``."""
    return bytes(wasmtime.wat2wasm((FIXTURES / f"{name}.wat").read_text()))


def evaluate_code(
    runtime: WasmRuntime,
    code: bytes,
    visits: bytes = b"",
    params: Mapping[str, int] | None = None,
    *,
    fuel: int = FUEL,
    memory_bytes: int = MEMORY,
) -> EvalResult:
    return runtime.evaluate(
        code, hashlib.sha256(code).digest(), visits, params or {}, fuel=fuel, memory_bytes=memory_bytes
    )


@pytest.fixture
def runtime() -> WasmRuntime:
    return WasmRuntime(RuntimeConfig())


@pytest.fixture
def wat() -> Callable[[str], bytes]:
    """``wat(name)``: the binary of ``fixtures/<name>.wat``."""
    return compile_wat


@pytest.fixture
def evaluate() -> Callable[..., EvalResult]:
    """``evaluate(runtime, code, visits=b"", params=None, *, fuel=..., memory_bytes=...)``."""
    return evaluate_code


@pytest.fixture
def run(runtime: WasmRuntime) -> Callable[..., EvalResult]:
    """``run(fixture_name, visits=b"", params=None, **limits)`` on the shared runtime."""

    def _run(name: str, visits: bytes = b"", params: Mapping[str, int] | None = None, **kw: int) -> EvalResult:
        return evaluate_code(runtime, compile_wat(name), visits, params, **kw)

    return _run
