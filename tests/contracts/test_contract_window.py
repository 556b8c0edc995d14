"""Windows given as separate records, big windows through the built-ins' hash tables, and the
SDK allocator's growth policy (issue 3's 5 ms and 50 us budgets)."""

from __future__ import annotations

import hashlib
import random
import struct

import pytest
import wasmtime

from p2pmkt.chain.contract_api import VISIT_RECORD_SIZE, EvalResult, pack_visit
from p2pmkt.contracts import RuntimeConfig, WasmRuntime
from p2pmkt.contracts.builtin import BUILTINS, builtin_code, builtin_hash
from p2pmkt.contracts.host_api import define_host_api

from .conftest import compile_wat, evaluate_code
from .test_contract_builtin import FUEL, MEMORY, _visits, reference

_RECORD = struct.Struct("<qqQQQBB6x")


def _eval(runtime: WasmRuntime, name: str, visits: object, **params: int) -> EvalResult:
    return runtime.evaluate(builtin_code(name), builtin_hash(name), visits, params,  # type: ignore[arg-type]
                            fuel=FUEL, memory_bytes=MEMORY)


@pytest.mark.parametrize("n", [1, 1023, 1024, 1025, 5_000])
def test_records_and_their_concatenation_give_the_same_result(n: int) -> None:
    runtime = WasmRuntime()
    records = [pack_visit(v) for v in _visits(11, n)]
    for name in BUILTINS:
        assert _eval(runtime, name, records) == _eval(runtime, name, b"".join(records))


def test_records_of_the_wrong_size_are_a_caller_bug() -> None:
    runtime = WasmRuntime()
    records = [pack_visit(v) for v in _visits(12, 3_000)]
    records[2_500] = records[2_500][:47]
    with pytest.raises(ValueError, match=r"^visit chunk 2500 is 47 bytes, not a multiple of 48$"):
        _eval(runtime, "page_views", records)
    many = records * 2  # more than 4,096 items: checked per group of 1,024
    with pytest.raises(ValueError, match=r"^visit records 2048\.\.3072 do not add up to a multiple of 48 bytes$"):
        _eval(runtime, "page_views", many)
    assert _eval(runtime, "page_views", records[:2_048]).ok  # and the runtime carries on


@pytest.mark.parametrize("sizes", [
    [2_000] * 50,                     # the state machine's chunks
    [1, 1_999, 2_000, 0, 37, 5_963],  # a window starting and ending inside chunks, an empty one
    [1] * 5_000 + [3_000, 2_000],     # many items: grouped, whatever their sizes
    [3] * 3_000,                      # few small items: joined, not one memmove each
])
def test_chunks_of_records_give_the_same_result_as_one_packed_window(sizes: list[int]) -> None:
    runtime = WasmRuntime()
    packed = b"".join(pack_visit(v) for v in _visits(14, sum(sizes)))
    chunks, at = [], 0
    for size in sizes:
        chunks.append(packed[at : at + size * VISIT_RECORD_SIZE])
        at += size * VISIT_RECORD_SIZE
    for name in BUILTINS:
        expected = _eval(runtime, name, packed)
        assert expected.ok
        assert _eval(runtime, name, chunks) == expected
    mixed = [bytearray(chunks[0]), memoryview(chunks[1]), *chunks[2:]]  # any bytes-like item
    assert _eval(runtime, "unique_visitors", mixed) == _eval(runtime, "unique_visitors", packed)


def test_a_chunk_that_is_not_whole_records_is_a_caller_bug() -> None:
    runtime = WasmRuntime()
    packed = b"".join(pack_visit(v) for v in _visits(15, 10))
    with pytest.raises(ValueError, match=r"^visit chunk 1 is 431 bytes, not a multiple of 48$"):
        _eval(runtime, "page_views", [packed[:48], packed[48:-1]])


def test_a_window_of_chunks_that_does_not_fit_the_memory_limit_fails_deterministically() -> None:
    runtime = WasmRuntime()
    chunk = b"".join(pack_visit(v) for v in _visits(16, 2_000))
    result = runtime.evaluate(builtin_code("page_views"), builtin_hash("page_views"), [chunk] * 20, {},
                              fuel=FUEL, memory_bytes=len(chunk) * 20)
    assert (result.ok, result.error, result.fuel_used) == (False, "memory_limit", 0)


def test_hostile_contracts_fail_alike_given_records() -> None:
    records = [bytes(range(48))] * 50
    for name in ("out_of_bounds", "memory_bomb", "infinite_loop", "start_trap"):
        code = compile_wat(name)
        runtime = WasmRuntime()
        assert evaluate_code(runtime, code, records) == evaluate_code(runtime, code, b"".join(records))  # type: ignore[arg-type]


def _record(rng: random.Random, visitor: int, time: int) -> bytes:
    # Half logged in (account id), half by IP id (the visitor's id either way).
    account = visitor if rng.random() < 0.5 else 0
    ip = visitor if account == 0 else rng.randrange(1, 2**64)
    return _RECORD.pack(time, 0, account, ip, 0, 0, 0)


def _distinct_and_repeaters(records: list[bytes], gap: int) -> tuple[int, int]:
    last: dict[int, int] = {}
    repeaters: set[int] = set()
    for rec in records:
        time, _, account, ip, *_ = _RECORD.unpack(rec)
        key = account or ip
        if key in last and time - last[key] > gap:
            repeaters.add(key)
        last[key] = max(last.get(key, time), time)
    return len(last), len(repeaters)


@pytest.mark.parametrize("spread", ["hashed", "clustered"])
def test_hash_tables_agree_with_python_on_big_windows(spread: str) -> None:
    rng = random.Random(13)
    n = 60_000
    # "clustered": every id's home slot is in the top half of the table, so probe runs are long
    # and wrap around the end of the table.
    low = 1 if spread == "hashed" else 2**63
    pool = [rng.randrange(low, 2**64) for _ in range(25_000)]
    records = [_record(rng, rng.choice(pool), 1_700_000_000_000 + i * rng.choice([10, 100_000]))
               for i in range(n)]
    distinct, repeaters = _distinct_and_repeaters(records, 1_800_000)
    runtime = WasmRuntime()
    assert _eval(runtime, "unique_visitors", records).values == (("unique_visitors", distinct),)
    assert _eval(runtime, "repeat_visit_rate", records).values == (
        ("repeat_visit_rate", repeaters * 10**6 // distinct),
    )


def test_records_without_a_visitor_are_skipped_by_the_hash_tables() -> None:
    # Visitor id 0 (account 0 and ip 0) is impossible on chain; the built-ins skip it, also
    # when it lands between records of real visitors (the branch-free loops must not count it
    # nor let it disturb the slot it probes).
    rng = random.Random(17)
    pool = [rng.randrange(1, 2**64) for _ in range(300)]
    records = []
    for i in range(5_000):
        time = 1_700_000_000_000 + i * rng.choice([10, 100_000, 4_000_000])
        visitor = 0 if rng.random() < 0.2 else rng.choice(pool)
        records.append(_RECORD.pack(time, 0, 0, visitor, 0, 0, 0))
    distinct, repeaters = _distinct_and_repeaters([r for r in records if _RECORD.unpack(r)[3]], 1_800_000)
    runtime = WasmRuntime()
    assert _eval(runtime, "unique_visitors", records).values == (("unique_visitors", distinct),)
    assert _eval(runtime, "repeat_visit_rate", records).values == (
        ("repeat_visit_rate", repeaters * 10**6 // distinct),
    )


def test_builtins_match_their_reference_on_a_100k_window() -> None:
    visits = _visits(14, 100_000)
    records = [pack_visit(v) for v in visits]
    runtime = WasmRuntime()
    for name in BUILTINS:
        result = _eval(runtime, name, records)
        assert (result.ok, result.values, result.scale) == (True, *reference(name, visits))


def _instance(name: str) -> tuple[wasmtime.Store, wasmtime.Memory, wasmtime.Func, wasmtime.Func]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_limits(memory_size=MEMORY)
    linker = wasmtime.Linker(engine)
    define_host_api(linker)
    exports = linker.instantiate(store, wasmtime.Module(engine, builtin_code(name))).exports(store)
    memory, alloc, run = exports["memory"], exports["p2pmkt_alloc"], exports["p2pmkt_eval"]
    assert isinstance(memory, wasmtime.Memory)
    assert isinstance(alloc, wasmtime.Func) and isinstance(run, wasmtime.Func)
    return store, memory, alloc, run


@pytest.mark.parametrize("name", BUILTINS)
def test_an_empty_window_grows_no_memory(name: str) -> None:
    # Every memory.grow costs the host microseconds: the SDK grows only when a block does
    # not fit, so reserving the (empty) input and writing the output stays in the first page.
    store, memory, alloc, run = _instance(name)
    pages = memory.size(store)
    ptr = alloc(store, 0)
    assert run(store, ptr, 0, ptr, 0) > 0
    assert memory.size(store) == pages


def test_a_window_grows_memory_by_what_it_needs() -> None:
    store, memory, alloc, _ = _instance("page_views")
    size = 100_000 * VISIT_RECORD_SIZE
    ptr = alloc(store, size)
    # Enough for the block, plus one page of headroom at most (the old SDK grew on every call).
    assert ptr + size <= memory.data_len(store) <= ptr + size + 2 * 65536


def test_pooled_and_reference_engines_agree_on_records() -> None:
    records = [pack_visit(v) for v in _visits(15, 3_000)]
    pooled, plain = WasmRuntime(), WasmRuntime(RuntimeConfig(pool_instances=0))
    for name in BUILTINS:
        code = builtin_code(name)
        digest = hashlib.sha256(code).digest()
        a = pooled.evaluate(code, digest, records, {}, fuel=FUEL, memory_bytes=MEMORY)
        b = plain.evaluate(code, digest, records, {}, fuel=FUEL, memory_bytes=MEMORY)
        assert a == b and a.ok
