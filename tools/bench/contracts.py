"""Benchmark the indicator engine (issue 3): one evaluation over 100k visits, end to end.

Prints, per built-in indicator (medians; ``e2e`` also its minimum and CPU time):
  * ``e2e``: ``WasmRuntime.evaluate`` given the window as the state machine stores it: a few
    large chunks of packed 48-byte records (``--chunk`` records each, 2,000 by default: 50
    chunks for 100k visits): fresh store, instantiate, alloc, one memmove per chunk into
    linear memory, eval, output decode. ``cpu`` is ``time.process_time`` per evaluation
    (wall time is inflated when other processes share the cores);
  * ``records``: the same given the window as 100k separate 48-byte records (joined in
    groups of 1,024 by the runtime);
  * ``packed``: ``evaluate`` given the window already as one bytes object;
  * ``raw``: the contract's ``p2pmkt_eval`` call alone, input already in linear memory, same
    module, same run: the floor set by wasm execution itself;
  * ``fixed``: ``evaluate`` over an empty window: the per-evaluation overhead.
Also the one-off cost of packing a visit at ingest. Targets: e2e <= 5 ms, fixed <= 50 us.

Usage: ``python tools/bench/contracts.py [--visits 100000] [--chunk 2000] [--repeat 15]``
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import random
import statistics
import time

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
    return statistics.median(samples_us(fn, repeat))


def samples_us(fn: object, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - t0) * 1e6)
    return samples


def cpu_us(fn: object, repeat: int) -> float:
    """CPU time (this process, all threads) per call, averaged over ``repeat`` calls."""
    t0 = time.process_time()
    for _ in range(repeat):
        fn()  # type: ignore[operator]
    return (time.process_time() - t0) / repeat * 1e6


def raw_eval_us(runtime: WasmRuntime, code: bytes, packed: bytes, repeat: int) -> float:
    """Time p2pmkt_eval alone: input copied into a fresh instance's memory beforehand."""
    compiled = runtime._compile(code, hashlib.sha256(code).digest())
    engine = runtime._pool_engine if compiled.pooled is not None else runtime._engine
    pre = compiled.pooled or compiled.pre
    ev = _wasm_ffi.Evaluator(table_elements=runtime.config.max_table_elements)
    samples = []
    for _ in range(repeat):
        ev.open(_wasm_ffi.handle(engine), memory_size=MEMORY, fuel=FUEL)
        ev.instantiate(_wasm_ffi.handle(pre))
        assert ev.bind(b"memory", b"p2pmkt_alloc", b"p2pmkt_eval")
        ptr = ev.call(1, len(packed))
        base, _ = ev.memory()
        ctypes.memmove(base + ptr, packed, len(packed))
        t0 = time.perf_counter()
        ev.call(2, ptr, len(packed) // 48, ptr, 0)
        samples.append(time.perf_counter() - t0)
        ev.close()  # give the pooled slot back, as evaluate() does
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=2_000, help="records per chunk (e2e)")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    visits = make_visits(args.visits)
    t0 = time.perf_counter()
    records = [pack_visit(v) for v in visits]
    pack_us = (time.perf_counter() - t0) / len(visits) * 1e6
    join_us = median_us(lambda: b"".join(records), args.repeat)
    packed = b"".join(records)
    chunks = [packed[i : i + 48 * args.chunk] for i in range(0, len(packed), 48 * args.chunk)]
    runtime = WasmRuntime()

    print(
        f"visits per window: {args.visits:,}; packing at ingest: {pack_us:.2f} us/visit; "
        f"b''.join of the window: {join_us:.0f} us; e2e window: {len(chunks)} chunks of up to "
        f"{args.chunk:,} records"
    )
    print(
        f"{'indicator':22} {'e2e ms (min)':>13} {'cpu ms':>6} {'records ms':>10} {'packed ms':>9} "
        f"{'raw ms':>7} {'fixed us':>9} {'fuel':>12}"
    )
    for name in BUILTINS:
        code = builtin_code(name)
        digest = hashlib.sha256(code).digest()
        runtime.check_code(code)
        result = runtime.evaluate(code, digest, packed, {}, fuel=FUEL, memory_bytes=MEMORY)
        assert result.ok, result.error
        assert runtime.evaluate(code, digest, records, {}, fuel=FUEL, memory_bytes=MEMORY) == result
        assert runtime.evaluate(code, digest, chunks, {}, fuel=FUEL, memory_bytes=MEMORY) == result

        def e2e(code: bytes = code, digest: bytes = digest) -> None:
            runtime.evaluate(code, digest, chunks, {}, fuel=FUEL, memory_bytes=MEMORY)

        def per_record(code: bytes = code, digest: bytes = digest) -> None:
            runtime.evaluate(code, digest, records, {}, fuel=FUEL, memory_bytes=MEMORY)

        def empty(code: bytes = code, digest: bytes = digest) -> None:
            runtime.evaluate(code, digest, b"", {}, fuel=FUEL, memory_bytes=MEMORY)

        def packed_only(code: bytes = code, digest: bytes = digest) -> None:
            runtime.evaluate(code, digest, packed, {}, fuel=FUEL, memory_bytes=MEMORY)

        e2e_us = samples_us(e2e, args.repeat)
        e2e_cpu_us = cpu_us(e2e, args.repeat)
        records_us = median_us(per_record, args.repeat)
        packed_us = median_us(packed_only, args.repeat)
        raw_us = raw_eval_us(runtime, code, packed, args.repeat)
        fixed_us = median_us(empty, max(args.repeat, 2000))
        print(
            f"{name:22} {statistics.median(e2e_us) / 1e3:6.2f} ({min(e2e_us) / 1e3:4.2f}) "
            f"{e2e_cpu_us / 1e3:6.2f} {records_us / 1e3:10.2f} {packed_us / 1e3:9.2f} {raw_us / 1e3:7.2f} "
            f"{fixed_us:9.1f} {result.fuel_used:12,}"
        )


if __name__ == "__main__":
    main()
