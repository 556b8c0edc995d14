"""Built-in indicators: each matches a plain-Python reference, and the committed .wasm files
are exactly what the committed AssemblyScript sources compile to."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from p2pmkt.chain.contract_api import EvalResult, pack_visits
from p2pmkt.contracts import WasmRuntime
from p2pmkt.contracts.builtin import BUILTINS, builtin_code, builtin_hash
from p2pmkt.market.model import ACCESS_METHODS, OPERATIONS, Visit

FUEL = 200_000_000
MEMORY = 64 * 1024 * 1024
Values = tuple[tuple[str, int], ...]


def _visits(seed: int, n: int) -> list[Visit]:
    rng = random.Random(seed)
    out = []
    t = 1_700_000_000_000
    for _ in range(n):
        t += rng.choice([1_000, 60_000, 3_600_000])
        op = rng.choice(OPERATIONS)
        out.append(
            Visit(
                ip=f"10.0.{rng.randrange(3)}.{rng.randrange(40)}",
                account=rng.choice(["", "", f"user{rng.randrange(25)}"]),
                time=t,
                merchant="m1",
                method=rng.choice(ACCESS_METHODS),
                op=op,
                item=rng.choice(["", "sku1", "sku2"]),
                amount=rng.randrange(1, 100_000) if op == "order" else 0,
            )
        )
    return out


def _rate(num: int, den: int) -> int:
    return num * 10**6 // den if den else 0


def _visitor(v: Visit) -> str:
    return "a:" + v.account if v.account else "i:" + v.ip


def _repeat(visits: Sequence[Visit], gap: int) -> int:
    last: dict[str, int] = {}
    sessions: dict[str, int] = {}
    for v in visits:
        key = _visitor(v)
        if key not in last:
            last[key], sessions[key] = v.time, 1
            continue
        if v.time - last[key] > gap:
            sessions[key] += 1
        last[key] = max(last[key], v.time)
    return _rate(sum(1 for s in sessions.values() if s >= 2), len(sessions))


def reference(name: str, visits: Sequence[Visit], gap: int = 1_800_000) -> tuple[Values, int]:
    """The built-ins' definitions (docs/CONTRACTS.md), in Python."""
    n = len(visits)
    ops = [v.op for v in visits]
    orders = [v.amount for v in visits if v.op == "order"]
    if name == "page_views":
        return (("page_views", ops.count("view")),), 0
    if name == "unique_visitors":
        return (("unique_visitors", len({_visitor(v) for v in visits})),), 0
    if name == "conversion_rate":
        return (("conversion_rate", _rate(len(orders), n)),), 6
    if name == "average_order_value":
        return (("average_order_value", sum(orders) * 100 // len(orders) if orders else 0),), 2
    if name == "add_to_cart_rate":
        return (("add_to_cart_rate", _rate(ops.count("cart"), n)),), 6
    if name == "access_method_share":
        methods = [v.method for v in visits]
        return tuple((m, _rate(methods.count(m), n)) for m in ACCESS_METHODS), 6
    if name == "repeat_visit_rate":
        return (("repeat_visit_rate", _repeat(visits, gap)),), 6
    raise AssertionError(name)


@pytest.fixture(scope="module")
def shared_runtime() -> WasmRuntime:
    runtime = WasmRuntime()
    for name in BUILTINS:
        runtime.check_code(builtin_code(name))
    return runtime


def _eval(runtime: WasmRuntime, name: str, visits: bytes, params: dict[str, int] | None = None,
          **kw: int) -> EvalResult:
    limits = {"fuel": FUEL, "memory_bytes": MEMORY, **kw}
    return runtime.evaluate(builtin_code(name), builtin_hash(name), visits, params or {}, **limits)


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize(("seed", "n"), [(1, 0), (2, 1), (3, 500), (4, 5_000)])
def test_builtin_matches_its_reference(name: str, seed: int, n: int, shared_runtime: WasmRuntime) -> None:
    visits = _visits(seed, n)
    result = _eval(shared_runtime, name, pack_visits(visits))
    values, scale = reference(name, visits)
    assert (result.ok, result.error, result.values, result.scale) == (True, "", values, scale)


def test_repeat_visit_rate_reads_its_session_gap_param(shared_runtime: WasmRuntime) -> None:
    visits = _visits(5, 2_000)
    for gap in (1, 120_000, 10**12):
        result = _eval(shared_runtime, "repeat_visit_rate", pack_visits(visits), {"session_gap_ms": gap})
        assert result.values == reference("repeat_visit_rate", visits, gap)[0]


def test_builtin_runs_out_of_memory_deterministically(shared_runtime: WasmRuntime) -> None:
    # The input fits, the visitor hash table the contract then allocates does not.
    packed = pack_visits(_visits(6, 20_000))
    result = _eval(shared_runtime, "repeat_visit_rate", packed, memory_bytes=len(packed) + 3 * 65536)
    assert (result.ok, result.error) == (False, "memory_limit")
    again = _eval(WasmRuntime(), "repeat_visit_rate", packed, memory_bytes=len(packed) + 3 * 65536)
    assert again == result


def test_builtin_runs_out_of_fuel_deterministically(shared_runtime: WasmRuntime) -> None:
    packed = pack_visits(_visits(7, 1_000))
    result = _eval(shared_runtime, "unique_visitors", packed, fuel=5_000)
    assert result == EvalResult(False, (), 0, 5_000, "out_of_fuel")


def _have_node() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _have_node(), reason="node/npm not installed: cannot rebuild the AssemblyScript built-ins")
def test_committed_wasm_is_what_the_sources_compile_to(tmp_path: Path) -> None:
    from p2pmkt.contracts.builtin.build import build

    for name, path in build(tmp_path).items():
        assert path.read_bytes() == builtin_code(name), f"{name}.wasm is stale: run python -m p2pmkt.contracts.builtin.build"


def test_every_builtin_is_deployable(shared_runtime: Callable[..., object]) -> None:
    assert set(BUILTINS) == {p.stem for p in (Path(__file__).parents[2] / "p2pmkt/contracts/builtin/wasm").glob("*.wasm")}
