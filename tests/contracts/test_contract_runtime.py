"""The engine's contract with the chain: ABI, packing, params, caching, caller errors."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from p2pmkt.chain import contract_api
from p2pmkt.chain.contract_api import EvalResult, pack_visit, pack_visits, text_id
from p2pmkt.contracts import RuntimeConfig, WasmRuntime
from p2pmkt.contracts.abi import AbiError, decode_entries, pack_params, param_key
from p2pmkt.errors import ConfigError
from p2pmkt.market import model
from p2pmkt.market.model import Visit

VISIT = Visit(
    ip="10.0.0.1", account="alice", time=1_700_000_000_123, merchant="m1",
    method="app", op="order", item="sku-9", amount=4599,
)


def test_runtime_satisfies_the_chain_protocol() -> None:
    runtime: contract_api.ContractRuntime = WasmRuntime()
    assert callable(runtime.evaluate)


def test_codes_match_the_market_model_order() -> None:
    assert tuple(contract_api.ACCESS_METHOD_CODES) == model.ACCESS_METHODS
    assert tuple(contract_api.OPERATION_CODES) == model.OPERATIONS
    assert list(contract_api.OPERATION_CODES.values()) == list(range(len(model.OPERATIONS)))


def test_visit_record_layout_is_the_documented_one() -> None:
    record = pack_visit(VISIT)
    assert len(record) == 48
    time, amount, account, ip, item, method, op = struct.unpack("<qqQQQBB6x", record)
    assert (time, amount, method, op) == (1_700_000_000_123, 4599, 2, 3)
    assert account == int.from_bytes(hashlib.sha256(b"aalice").digest()[:8], "little")
    assert ip == int.from_bytes(hashlib.sha256(b"i10.0.0.1").digest()[:8], "little")
    assert item == int.from_bytes(hashlib.sha256(b"tsku-9").digest()[:8], "little")
    assert record[42:] == b"\0" * 6


def test_absent_account_and_item_are_zero_and_tags_separate_kinds() -> None:
    record = pack_visit(Visit(ip="x", account="", time=0, merchant="m", method="browser", op="view"))
    assert struct.unpack_from("<Q", record, 16)[0] == 0
    assert struct.unpack_from("<Q", record, 32)[0] == 0
    assert text_id(b"a", "x") != text_id(b"i", "x")


def test_pack_visits_concatenates_records_in_order() -> None:
    other = Visit(ip="10.0.0.2", account="", time=1, merchant="m1", method="browser", op="view")
    assert pack_visits([VISIT, other]) == pack_visit(VISIT) + pack_visit(other)


def test_param_key_is_fnv1a_64() -> None:
    # Published FNV-1a 64 test vectors.
    assert param_key("") == 0xCBF29CE484222325
    assert param_key("a") == 0xAF63DC4C8601EC8C
    assert param_key("foobar") == 0x85944171F73967E8


def test_params_are_sorted_by_key() -> None:
    packed = pack_params({"b": 2, "a": -1})
    records = [struct.unpack_from("<Qq", packed, i) for i in range(0, len(packed), 16)]
    assert records == sorted([(param_key("a"), -1), (param_key("b"), 2)])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"Bad": 1}, r"^parameter name 'Bad' must match"),
        ({"a": 2**63}, r"^parameter 'a' must be an i64 integer$"),
        ({"a": True}, r"^parameter 'a' must be an i64 integer$"),
        ({f"p{i}": i for i in range(65)}, r"^65 parameters; at most 64$"),
    ],
)
def test_bad_params_are_refused(params: dict[str, int], message: str) -> None:
    with pytest.raises(AbiError, match=message):
        pack_params(params)


def test_bad_params_fail_the_evaluation_instead_of_raising(run: Callable[..., EvalResult]) -> None:
    result = run("count", params={"Bad": 1})
    assert (result.ok, result.error.startswith("bad_params: "), result.fuel_used) == (False, True, 0)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (b"\0" * 24, r"^output entry 0 has a bad name b''$"),
        (b"a\0b" + b"\0" * 21, r"^output entry 0 has a bad name"),
        (b"A" + b"\0" * 23, r"^output entry 0 has a bad name b'A'$"),
    ],
)
def test_output_names_must_be_canonical(entry: bytes, message: str) -> None:
    with pytest.raises(AbiError, match=message):
        decode_entries(entry + b"\0" * 8, 1)


def test_repeated_output_names_are_refused() -> None:
    entry = b"x" + b"\0" * 23 + b"\0" * 8
    with pytest.raises(AbiError, match=r"^output name 'x' repeated$"):
        decode_entries(entry * 2, 2)


def test_count_contract_sees_the_whole_window_in_one_call(run: Callable[..., EvalResult]) -> None:
    result = run("count", pack_visits([VISIT] * 1000))
    assert result == EvalResult(True, (("visits", 1000),), 0, result.fuel_used, "")
    assert result.value("visits") == 1000 and result.value("nope") is None


def test_visit_objects_are_packed_by_evaluate(
    runtime: WasmRuntime, wat: Callable[[str], bytes], evaluate: Callable[..., EvalResult]
) -> None:
    code = wat("count")
    assert evaluate(runtime, code, [VISIT] * 3) == evaluate(runtime, code, pack_visits([VISIT] * 3))


def test_abort_from_the_contract_is_a_deterministic_failure(run: Callable[..., EvalResult]) -> None:
    assert run("count", params={"fail": 1}).error == "abort:  at :7:9"


def test_caller_bugs_raise(runtime: WasmRuntime, wat: Callable[[str], bytes]) -> None:
    code = wat("count")
    good = hashlib.sha256(code).digest()
    with pytest.raises(ValueError, match=r"^packed visits length 47 is not a multiple of 48$"):
        runtime.evaluate(code, good, b"\0" * 47, {}, fuel=10, memory_bytes=1 << 20)
    with pytest.raises(ValueError, match=r"^fuel and memory_bytes must be positive$"):
        runtime.evaluate(code, good, b"", {}, fuel=0, memory_bytes=1 << 20)
    with pytest.raises(ValueError, match=r"^code_hash is not sha256\(code\)$"):
        runtime.evaluate(code, b"\0" * 32, b"", {}, fuel=10, memory_bytes=1 << 20)


def test_undeployable_code_fails_the_evaluation(
    runtime: WasmRuntime, wat: Callable[[str], bytes], evaluate: Callable[..., EvalResult]
) -> None:
    result = evaluate(runtime, wat("wasi_import"))
    assert (result.ok, result.error) == (False, "invalid_code: disallowed_import")


def test_module_is_compiled_once_and_reused(
    runtime: WasmRuntime, run: Callable[..., EvalResult]
) -> None:
    for _ in range(3):
        run("count")
    stats = runtime.statistics()
    assert (stats.compiled, stats.memory_hits, stats.evaluations) == (1, 2, 3)


def test_disk_cache_survives_a_restart(
    tmp_path: Path, wat: Callable[[str], bytes], evaluate: Callable[..., EvalResult]
) -> None:
    code = wat("count")
    first = WasmRuntime(RuntimeConfig(cache_dir=tmp_path))
    expected = evaluate(first, code, b"\0" * 48)
    assert len(list(tmp_path.glob("*.cwasm"))) == 1
    restarted = WasmRuntime(RuntimeConfig(cache_dir=tmp_path))
    assert evaluate(restarted, code, b"\0" * 48) == expected
    assert (restarted.statistics().compiled, restarted.statistics().disk_hits) == (0, 1)


def test_corrupt_cache_file_is_recompiled(
    tmp_path: Path, wat: Callable[[str], bytes], evaluate: Callable[..., EvalResult]
) -> None:
    code = wat("count")
    evaluate(WasmRuntime(RuntimeConfig(cache_dir=tmp_path)), code)
    (cached,) = tmp_path.glob("*.cwasm")
    cached.write_bytes(b"garbage")
    again = WasmRuntime(RuntimeConfig(cache_dir=tmp_path))
    assert evaluate(again, code).ok
    assert again.statistics().compiled == 1


def test_memory_cache_is_bounded(wat: Callable[[str], bytes], evaluate: Callable[..., EvalResult]) -> None:
    runtime = WasmRuntime(RuntimeConfig(memory_cache_entries=1))
    evaluate(runtime, wat("count"))
    evaluate(runtime, wat("nan"))
    evaluate(runtime, wat("count"))
    assert (runtime.statistics().compiled, runtime.statistics().cached_modules) == (3, 1)


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^contracts\.max_code_bytes must be a positive integer, got 0$"):
        WasmRuntime(RuntimeConfig(max_code_bytes=0))
