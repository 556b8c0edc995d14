"""Benchmark the indicator engine (issue 3): one evaluation over 100k visits, end to end.

Prints, per built-in indicator:
  * ``e2e``: ``b"".join`` of 100k pre-packed 48-byte records (what the state machine does at
    report time) + ``WasmRuntime.evaluate`` (fresh store, instantiate, alloc, memmove, eval,
    output decode);
  * ``raw``: the contract's ``p2pmkt_eval`` call alone, input already in linear memory, same
    module, same run: the floor set by wasm execution itself;
  * ``fixed``: ``evaluate`` over an empty window: the per-evaluation overhead.
  * ``packed``: ``evaluate`` given the window already as one bytes object;
Also the one-off cost of packing a visit at ingest. Targets: e2e <= 5 ms, fixed <= 50 us.

Usage: ``python tools/bench/contracts.py [--visits 100000] [--repeat 15]``
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import random
import statistics
import time

from wasmtime import Store

from p2pmkt.chain.contract_api import pack_visit
from p2pmkt.contracts import WasmRuntime, _wasm_ffi
from p2pmkt.contracts.builtin import BUILTINS, builtin_code
from p2pmkt.market.model import ACCESS_METHODS, OPERATIONS, Visit

FUEL = 1_000_000_000
MEMORY = 64 * 1024 * 1024


def make_visits(n: int) -> list[Visit]:
    rng = random.Random(7)
    return [
        Visit(
            ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            account=rng.choice(["", f"user{rng.randrange(20_000)}"]),
            time=1_700_000_000_000 + i * 500,
            merchant="acme",
            method=rng.choice(ACCESS_METHODS),
            op=(op := rng.choice(OPERATIONS)),
            item=f"sku{rng.randrange(1000)}",
            amount=rng.randrange(100, 100_000) if op == "order" else 0,
        )
        for i in range(n)
    ]


def median_us(fn: object, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def raw_eval_us(runtime: WasmRuntime, code: bytes, packed: bytes, repeat: int) -> float:
    """Time p2pmkt_eval alone: input copied into a fresh instance's memory beforehand."""
    compiled = runtime._compile(code, hashlib.sha256(code).digest())
    pooled = compiled.pooled is not None
    pre = compiled.pooled or compiled.pre
    samples = []
    for _ in range(repeat):
        store = Store(runtime._pool_engine if pooled else runtime._engine)
        store.set_limits(memory_size=MEMORY)
        store.set_fuel(FUEL)
        inst = pre.instantiate(store)
        memory = _wasm_ffi.export_memory(store, inst, b"memory")
        alloc = _wasm_ffi.export_func(store, inst, b"p2pmkt_alloc")
        run = _wasm_ffi.export_func(store, inst, b"p2pmkt_eval")
        ptr = _wasm_ffi.call_i32(store, alloc, len(packed))
        base, _ = _wasm_ffi.memory_bounds(store, memory)
        ctypes.memmove(base + ptr, packed, len(packed))
        t0 = time.perf_counter()
        _wasm_ffi.call_i32(store, run, ptr, len(packed) // 48, ptr, 0)
        samples.append(time.perf_counter() - t0)
        store.close()  # give the pooled slot back, as evaluate() does
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    visits = make_visits(args.visits)
    t0 = time.perf_counter()
    records = [pack_visit(v) for v in visits]
    pack_us = (time.perf_counter() - t0) / len(visits) * 1e6
    join_us = median_us(lambda: b"".join(records), args.repeat)
    packed = b"".join(records)
    runtime = WasmRuntime()

    print(
        f"visits per window: {args.visits:,}; packing at ingest: {pack_us:.2f} us/visit; "
        f"b''.join of the window: {join_us:.0f} us"
    )
    print(
        f"{'indicator':22} {'e2e ms':>8} {'packed ms':>9} {'raw ms':>8} {'fixed us':>9} {'fuel':>12}"
    )
    for name in BUILTINS:
        code = builtin_code(name)
        digest = hashlib.sha256(code).digest()
        runtime.check_code(code)
        result = runtime.evaluate(code, digest, packed, {}, fuel=FUEL, memory_bytes=MEMORY)
        assert result.ok, result.error

        def e2e(code: bytes = code, digest: bytes = digest) -> None:
            runtime.evaluate(code, digest, b"".join(records), {}, fuel=FUEL, memory_bytes=MEMORY)

        def empty(code: bytes = code, digest: bytes = digest) -> None:
            runtime.evaluate(code, digest, b"", {}, fuel=FUEL, memory_bytes=MEMORY)

        def packed_only(code: bytes = code, digest: bytes = digest) -> None:
            runtime.evaluate(code, digest, packed, {}, fuel=FUEL, memory_bytes=MEMORY)

        e2e_us = median_us(e2e, args.repeat)
        packed_us = median_us(packed_only, args.repeat)
        raw_us = raw_eval_us(runtime, code, packed, args.repeat)
        fixed_us = median_us(empty, max(args.repeat, 200))
        print(
            f"{name:22} {e2e_us / 1e3:8.2f} {packed_us / 1e3:9.2f} {raw_us / 1e3:8.2f} "
            f"{fixed_us:9.1f} {result.fuel_used:12,}"
        )


if __name__ == "__main__":
    main()
