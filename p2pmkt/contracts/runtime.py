"""WasmRuntime: runs indicator contracts deterministically in a wasmtime sandbox (issue 3).

Theory of operation
-------------------
``WasmRuntime`` implements :class:`p2pmkt.chain.contract_api.ContractRuntime`.

*Deploy* (:meth:`WasmRuntime.check_code`) refuses, with a reason, modules that are too big,
not WebAssembly, import anything outside :mod:`p2pmkt.contracts.host_api`, or lack the ABI
exports with their exact types (:mod:`p2pmkt.contracts.abi`).

*Evaluate* compiles once per code hash (an in-memory LRU in front of a directory of serialized
modules, so a restart does not recompile), then for every evaluation:

1. a fresh ``Store`` with the chain's fuel budget and memory limit (nothing leaks between
   evaluations or merchants);
2. instantiate (runs the module's start function, if any, under the same fuel);
3. ``p2pmkt_alloc(n)``, copy params + visit records in (one memmove per chunk when the window
   comes as packed bytes or chunks of records, cache-sized joins when it comes as separate
   48-byte records), ``p2pmkt_eval(...)``;
4. read and check the output block; close the store (freeing the instance) right away.

Two engines, one behaviour. Check and compile happen on the *reference* engine (wasmtime's
default on-demand allocator): it alone decides what deploys. Evaluations run, when they can,
on a twin engine with the same settings plus wasmtime's **pooling allocator**: instance slots
and their linear memories are reserved once and reused, and the first
``RuntimeConfig.keep_resident_bytes`` of a memory are zeroed with memset on release instead
of being returned to the kernel. A fresh store's instance is then as clean as before, but
copying a 100k-visit window (4.8 MB) into it no longer page-faults on every 4 KiB page, and
no memory is mapped or unmapped per evaluation (issue 3's 5 ms and 50 us budgets; the
faults alone were ~2.5 ms). The pool never changes a result:

* its limits are at least the store limits every evaluation sets (memory: wasm32's whole
  4 GiB, so the genesis limit binds; table elements: equal to ``max_table_elements``);
* a module the pool cannot hold (wasmtime checks its tables and instance size against the
  pool at load) runs on the reference engine instead;
* if every slot is taken (only possible if stores leak outside this class), that evaluation
  runs on the reference engine.

Determinism rules (every validator must compute the same :class:`EvalResult`):

* The engine is configured for determinism: NaN canonicalization on; threads, shared memory,
  relaxed SIMD, multi-memory and memory64 off; fuel metering on; no epoch interruption (that
  is wall-clock driven). No WASI, no clock, no randomness is linked.
* Failures are values. Fuel exhaustion, traps, aborts, memory exhaustion and malformed output
  become ``EvalResult(ok=False, error=<slug>)``; only caller bugs raise.
* Error texts carry no wasmtime backtraces or addresses: only our slugs and the trap code.
* Fuel used is ``budget - remaining``, which wasmtime counts per wasm operator, so it is the
  same on every machine. The exception is a native stack overflow: *where* it happens depends
  on native frame sizes, so a ``stack_overflow`` reports the whole budget as used.
* ``memory.grow`` beyond the limit returns -1 inside wasm instead of trapping. A contract that
  then traps while its memory cannot grow by one more page is reported as ``memory_limit``;
  that is a function of the final memory size, hence deterministic.

Not thread-safe: use one runtime per thread (the node applies blocks on one thread).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from wasmtime import (
    Config,
    Engine,
    FuncType,
    InstancePre,
    Linker,
    MemoryType,
    Module,
    Trap,
    TrapCode,
    ValType,
    WasmtimeError,
)

from p2pmkt.chain.contract_api import VISIT_RECORD_SIZE, EvalResult, VisitLike, pack_visits
from p2pmkt.contracts import _wasm_ffi
from p2pmkt.contracts.abi import (
    ALLOC_EXPORT,
    EVAL_EXPORT,
    MEMORY_EXPORT,
    OUTPUT_ENTRY_SIZE,
    OUTPUT_HEADER_SIZE,
    PARAM_RECORD_SIZE,
    AbiError,
    decode_entries,
    decode_output,
    pack_params,
)
from p2pmkt.contracts.host_api import (
    ABORT_PREFIX,
    MEMORY_LIMIT_ABORT,
    check_imports,
    define_host_api,
)
from p2pmkt.errors import ConfigError, ContractRejected

__all__ = ["RuntimeConfig", "RuntimeStatistics", "WasmRuntime", "make_engine", "validate_config"]

WASM_PAGE = 65536
_WASM_MAGIC = b"\0asm\x01\0\0\0"
_MAX_ERROR_TEXT = 200


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Knobs of the engine. The per-execution fuel and memory come from genesis instead.

    Attributes:
        max_code_bytes: largest module accepted at deploy (chain-wide; keep equal on all
            nodes, it decides which deploys are valid).
        max_initial_memory_bytes: largest declared initial linear memory accepted at deploy.
        max_wasm_stack: native stack for wasm, bytes (bounds recursion depth).
        cache_dir: directory for serialized compiled modules; None keeps them in memory only.
            The files are native code: the directory must be private to this node.
        memory_cache_entries: compiled modules kept in memory (LRU).
        max_table_elements: table elements a contract may have.
        pool_instances: instance slots of the pooling engine (each reserves 4 GiB of address
            space, not memory); 0 turns the pool off (every evaluation on the reference
            engine). One evaluation uses one slot, released when it returns.
        keep_resident_bytes: per slot, linear-memory bytes zeroed in place on release and
            kept mapped (up to this much stays resident per used slot): 8 MiB covers a
            100k-visit window and the contract's own heap.
    """

    max_code_bytes: int = 512 * 1024
    max_initial_memory_bytes: int = 16 * WASM_PAGE
    max_wasm_stack: int = 512 * 1024
    cache_dir: Path | None = None
    memory_cache_entries: int = 256
    max_table_elements: int = 10_000
    pool_instances: int = 16
    keep_resident_bytes: int = 8 * 1024 * 1024


def validate_config(config: RuntimeConfig) -> None:
    """Raise :class:`p2pmkt.errors.ConfigError` naming the first bad field of ``config``."""
    for name in ("max_code_bytes", "max_initial_memory_bytes", "max_wasm_stack",
                 "memory_cache_entries", "max_table_elements"):
        value = getattr(config, name)
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"contracts.{name} must be a positive integer, got {value!r}")
    for name in ("pool_instances", "keep_resident_bytes"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"contracts.{name} must be a non-negative integer, got {value!r}")
    if config.max_wasm_stack < 64 * 1024:
        raise ConfigError("contracts.max_wasm_stack must be at least 65536 bytes")


@dataclass(frozen=True, slots=True)
class RuntimeStatistics:
    """Counters since the runtime was created (see :meth:`WasmRuntime.statistics`)."""

    compiled: int
    disk_hits: int
    memory_hits: int
    evaluations: int
    failures: int
    cached_modules: int


def _engine_settings(config: RuntimeConfig) -> dict[str, object]:
    # One place for every setting, so that the disk-cache fingerprint covers all of them.
    return {
        "consume_fuel": True,
        "epoch_interruption": False,
        "cranelift_nan_canonicalization": True,
        "wasm_threads": False,
        "shared_memory": False,
        "wasm_relaxed_simd": False,
        "wasm_relaxed_simd_deterministic": True,
        "wasm_multi_memory": False,
        "wasm_memory64": False,
        "wasm_component_model": False,
        "wasm_gc": False,
        "wasm_function_references": False,
        "wasm_exceptions": False,
        "wasm_stack_switching": False,
        "cranelift_opt_level": "speed",
        "max_wasm_stack": config.max_wasm_stack,
        # Copy data segments at instantiation instead of mapping them copy-on-write: measured
        # ~10 us cheaper per evaluation, since every evaluation touches the pages anyway.
        "memory_init_cow": False,
        # wasmtime's own compile cache stays off (its default); we keep ours, by code hash.
    }


def make_engine(config: RuntimeConfig, *, pooled: bool = False) -> Engine:
    """Return a wasmtime ``Engine`` with the deterministic settings described above.

    With ``pooled``, the same engine with the pooling allocator (module docstring): its
    limits never bind before the store limits an evaluation sets.
    """
    cfg = Config()
    for key, value in _engine_settings(config).items():
        setattr(cfg, key, value)
    if pooled:
        _wasm_ffi.set_pooling_allocator(
            cfg,
            instances=config.pool_instances,
            max_memory_bytes=_WASM32_MEMORY_BYTES,
            table_elements=config.max_table_elements,
            keep_resident_bytes=config.keep_resident_bytes,
        )
    return Engine(cfg)


_WASM32_MEMORY_BYTES = 1 << 32


def _fingerprint(config: RuntimeConfig) -> str:
    from importlib.metadata import version

    text = f"wasmtime={version('wasmtime')};{sorted(_engine_settings(config).items())}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:_MAX_ERROR_TEXT]


_I32 = ValType.i32()
_EXPECTED_FUNCS = {
    ALLOC_EXPORT: ([_I32], [_I32]),
    EVAL_EXPORT: ([_I32] * 4, [_I32]),
}


@dataclass(slots=True)
class _Compiled:
    module: Module
    pre: InstancePre
    # The same module loaded into the pooling engine; None when the pool cannot hold it
    # (or is off) and evaluations use ``pre``.
    pooled: InstancePre | None = None
    # C handles of pre and pooled (0: none), for the Evaluator; the objects above keep them valid.
    pre_at: int = 0
    pooled_at: int = 0

    def __post_init__(self) -> None:
        self.pre_at = _wasm_ffi.handle(self.pre)
        self.pooled_at = _wasm_ffi.handle(self.pooled) if self.pooled is not None else 0


@dataclass(slots=True)
class _Counters:
    compiled: int = 0
    disk_hits: int = 0
    memory_hits: int = 0
    evaluations: int = 0
    failures: int = 0


_MEMORY_NAME = MEMORY_EXPORT.encode()
_ALLOC_NAME = ALLOC_EXPORT.encode()
_EVAL_NAME = EVAL_EXPORT.encode()
_ALLOC_SLOT, _EVAL_SLOT = 1, 2  # Evaluator.bind(memory, alloc, eval) slots
_POOL_FULL = "maximum concurrent limit"  # wasmtime: "maximum concurrent limit of N for ..."


# A window given as at most this many items is checked item by item and each item copied
# with one memmove (the state machine's chunks of records); a longer one is taken as separate
# records, joined in groups (one memmove per item would cost ~0.4 us each).
_MAX_CHUNKS = 4096

# Items per b"".join when a window comes as many separate records: 48 KB of bytes and 80 KB of
# join's own array of buffer views, both under glibc's mmap threshold, so they stay in the heap
# instead of being mapped, page-faulted and unmapped per evaluation.
_RECORDS_PER_JOIN = 1024

# Items of at least this many bytes on average are copied one memmove each, smaller ones joined.
_MIN_MEMMOVE = 4096

_BytesLike = (bytes, bytearray, memoryview)


def _window(visits: bytes | Sequence[bytes] | Sequence[VisitLike]) -> tuple[Sequence[bytes], int]:
    """``(pieces, n)``: the window as bytes objects to copy back to back, and its record count.

    Accepted: one bytes-like object of packed records; a sequence of bytes-like items each a
    multiple of 48 bytes (chunks of records, or single records: any mix); or visits, which
    are packed here.

    Raises:
        ValueError: a length is not a multiple of 48 bytes. Items are checked one by one in
            a window of at most ``_MAX_CHUNKS`` items, else per group of
            ``_RECORDS_PER_JOIN`` items (a group's bytes must be a multiple of 48).
    """
    if isinstance(visits, _BytesLike):
        packed = visits if type(visits) is bytes else bytes(visits)
        if len(packed) % VISIT_RECORD_SIZE:
            raise ValueError(f"packed visits length {len(packed)} is not a multiple of {VISIT_RECORD_SIZE}")
        return (packed,), len(packed) // VISIT_RECORD_SIZE
    if not visits:
        return (), 0
    if not isinstance(visits[0], _BytesLike):
        packed = pack_visits(cast("Sequence[VisitLike]", visits))
        return (packed,), len(packed) // VISIT_RECORD_SIZE
    items = cast("Sequence[bytes]", visits)
    if len(items) <= _MAX_CHUNKS:
        total = 0
        for i, item in enumerate(items):
            size = len(item)
            if size % VISIT_RECORD_SIZE:
                raise ValueError(f"visit chunk {i} is {size} bytes, not a multiple of {VISIT_RECORD_SIZE}")
            total += size
        if total >= _MIN_MEMMOVE * len(items):  # big chunks: one memmove each
            if any(type(item) is not bytes for item in items):
                items = [bytes(item) for item in items]
            return items, total // VISIT_RECORD_SIZE
    # Many or small items (separate records, typically): joined in cache-sized groups, before
    # any wasm runs, so that the count is known for p2pmkt_alloc and a bad length raises first.
    join, step = b"".join, _RECORDS_PER_JOIN
    groups = [join(items[start : start + step]) for start in range(0, len(items), step)]
    for g, group in enumerate(groups):
        if len(group) % VISIT_RECORD_SIZE:
            start = g * step
            raise ValueError(
                f"visit records {start}..{start + step} do not add up to a multiple of {VISIT_RECORD_SIZE} bytes"
            )
    return groups, sum(map(len, groups)) // VISIT_RECORD_SIZE


class _PoolFull(Exception):
    """Internal: every pooled instance slot is taken; use the reference engine."""


class _Failed(Exception):
    """Internal: an evaluation failed with ``reason``; caught inside :meth:`evaluate`."""

    def __init__(self, reason: str, *, all_fuel: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.all_fuel = all_fuel


class WasmRuntime:
    """The wasmtime-backed :class:`~p2pmkt.chain.contract_api.ContractRuntime`."""

    def __init__(self, config: RuntimeConfig | None = None) -> None:
        self.config = config or RuntimeConfig()
        validate_config(self.config)
        self._engine = make_engine(self.config)
        self._linker = Linker(self._engine)
        define_host_api(self._linker)
        self._pool_linker: Linker | None = None
        if self.config.pool_instances:
            self._pool_engine = make_engine(self.config, pooled=True)
            self._pool_linker = Linker(self._pool_engine)
            define_host_api(self._pool_linker)
        self._cache: OrderedDict[bytes, _Compiled] = OrderedDict()
        self._counters = _Counters()
        self._evaluator = _wasm_ffi.Evaluator(table_elements=self.config.max_table_elements)
        self._engine_at = _wasm_ffi.handle(self._engine)
        self._pool_engine_at = _wasm_ffi.handle(self._pool_engine) if self._pool_linker else 0
        self._fingerprint = _fingerprint(self.config) if self.config.cache_dir else ""

    # ------------------------------------------------------------------ deploy

    def check_code(self, code: bytes) -> None:
        """Validate ``code`` for deployment; see ``ContractRuntime.check_code``.

        On success the compiled module is cached, so the first evaluation is cheap.

        Raises:
            ContractRejected: with ``reason`` one of ``code_too_big``, ``invalid_wasm``,
                ``disallowed_import``, ``bad_exports``.
        """
        self._compile(bytes(code), hashlib.sha256(code).digest())

    def _compile(self, code: bytes, code_hash: bytes) -> _Compiled:
        cached = self._cache.get(code_hash)
        if cached is not None:
            self._cache.move_to_end(code_hash)
            self._counters.memory_hits += 1
            return cached
        if len(code) > self.config.max_code_bytes:
            raise ContractRejected(
                f"module is {len(code)} bytes; the limit is {self.config.max_code_bytes}",
                reason="code_too_big",
            )
        if not code.startswith(_WASM_MAGIC):
            raise ContractRejected(
                "not a WebAssembly 1.0 binary module (compile .wat/.ts first)", reason="invalid_wasm"
            )
        module = self._load_or_compile(code, code_hash)
        self._check_module(module)
        compiled = _Compiled(module, self._linker.instantiate_pre(module), self._pooled(module))
        self._cache[code_hash] = compiled
        if len(self._cache) > self.config.memory_cache_entries:
            self._cache.popitem(last=False)
        return compiled

    def _load_or_compile(self, code: bytes, code_hash: bytes) -> Module:
        path = None
        if self.config.cache_dir is not None:
            path = self.config.cache_dir / f"{code_hash.hex()}.{self._fingerprint}.cwasm"
            if path.exists():
                try:
                    module = Module.deserialize_file(self._engine, str(path))
                except WasmtimeError:
                    pass  # stale or corrupt: recompile and overwrite below
                else:
                    self._counters.disk_hits += 1
                    return module
        try:
            module = Module(self._engine, code)
        except WasmtimeError as exc:
            raise ContractRejected(
                f"invalid WebAssembly: {_first_line(str(exc))}", reason="invalid_wasm"
            ) from exc
        self._counters.compiled += 1
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(module.serialize())
            os.replace(tmp, path)  # atomic: a crash leaves the old file or none
        return module

    def _pooled(self, module: Module) -> InstancePre | None:
        """``module`` for the pooling engine (a copy of the compiled code, no recompile)."""
        if self._pool_linker is None:
            return None
        try:
            # Same settings, so the serialized code loads as is (~30 us, once per code hash).
            # Loading is where wasmtime checks a module against the pool's limits.
            twin = Module.deserialize(self._pool_engine, module.serialize())
        except WasmtimeError:
            return None  # e.g. more tables or a bigger instance than a slot holds
        return self._pool_linker.instantiate_pre(twin)

    def _check_module(self, module: Module) -> None:
        reason = check_imports((imp.module, imp.name or "", imp.type) for imp in module.imports)
        if reason is not None:
            raise ContractRejected(reason, reason="disallowed_import")
        exports = {exp.name: exp.type for exp in module.exports}
        memory = exports.get(MEMORY_EXPORT)
        if not isinstance(memory, MemoryType):
            raise ContractRejected(f"module must export its memory as {MEMORY_EXPORT!r}", reason="bad_exports")
        if memory.is_64 or memory.is_shared:
            raise ContractRejected("memory must be 32-bit and not shared", reason="bad_exports")
        if memory.limits.min * WASM_PAGE > self.config.max_initial_memory_bytes:
            raise ContractRejected(
                f"initial memory of {memory.limits.min} pages exceeds "
                f"{self.config.max_initial_memory_bytes // WASM_PAGE} pages",
                reason="bad_exports",
            )
        for name, (params, results) in _EXPECTED_FUNCS.items():
            ty = exports.get(name)
            if not isinstance(ty, FuncType) or ty.params != params or ty.results != results:
                sig = f"({', '.join(['i32'] * len(params))}) -> i32"
                if isinstance(ty, FuncType):
                    found = f"it exports {name}{_signature(ty)}"
                else:
                    found = f"it exports no such function (its exports: {', '.join(sorted(exports)) or 'none'})"
                raise ContractRejected(f"module must export function {name}{sig}; {found}",
                                       reason="bad_exports")

    # ---------------------------------------------------------------- evaluate

    def evaluate(
        self,
        code: bytes,
        code_hash: bytes,
        visits: bytes | Sequence[bytes] | Sequence[VisitLike],
        params: Mapping[str, int],
        *,
        fuel: int,
        memory_bytes: int,
    ) -> EvalResult:
        """Run the contract over one window; see ``ContractRuntime.evaluate``.

        Raises:
            ValueError: caller bugs only: packed visits not a multiple of 48 bytes (or
                records that are not 48 bytes each), a non-positive fuel or memory limit, or
                ``code_hash != sha256(code)`` on a cache miss.
        """
        if fuel <= 0 or memory_bytes <= 0:
            raise ValueError("fuel and memory_bytes must be positive")
        pieces, n_visits = _window(visits)
        self._counters.evaluations += 1
        try:
            param_bytes = pack_params(params) if params else b""
        except AbiError as exc:
            return self._fail(f"bad_params: {exc}", 0)
        try:
            compiled = self._compiled_for_eval(code, code_hash)
        except ContractRejected as exc:
            return self._fail(f"invalid_code: {exc.reason}", 0)
        ev = self._evaluator
        try:
            try:
                if compiled.pooled_at:
                    ev.open(self._pool_engine_at, memory_size=memory_bytes, fuel=fuel)
                    try:
                        values, scale = self._run(compiled.pooled_at, pieces, n_visits, param_bytes, memory_bytes)
                    except _PoolFull:
                        ev.close()
                        compiled = replace(compiled, pooled=None, pooled_at=0)
                if not compiled.pooled_at:
                    ev.open(self._engine_at, memory_size=memory_bytes, fuel=fuel)
                    values, scale = self._run(compiled.pre_at, pieces, n_visits, param_bytes, memory_bytes)
                fuel_used = fuel - ev.fuel()
            except _Failed as failed:
                used = fuel if failed.all_fuel else fuel - ev.fuel()
                return self._fail(failed.reason, used)
        finally:
            # Free the instance now, not whenever the garbage collector gets to it: a pooled
            # slot is reused by the next evaluation (and its resident memory zeroed here).
            ev.close()
        return EvalResult(True, values, scale, fuel_used, "")

    def _compiled_for_eval(self, code: bytes, code_hash: bytes) -> _Compiled:
        cached = self._cache.get(code_hash)
        if cached is not None:
            self._cache.move_to_end(code_hash)
            self._counters.memory_hits += 1
            return cached
        if hashlib.sha256(code).digest() != code_hash:
            raise ValueError("code_hash is not sha256(code)")
        return self._compile(bytes(code), code_hash)

    def _fail(self, reason: str, fuel_used: int) -> EvalResult:
        self._counters.failures += 1
        return EvalResult(False, (), 0, fuel_used, reason)

    def _run(
        self, pre: int, pieces: Sequence[bytes], n_visits: int, params: bytes, memory_bytes: int
    ) -> tuple[tuple[tuple[str, int], ...], int]:
        """One evaluation in the evaluator's open store; ``pre`` is the InstancePre's handle,
        ``pieces`` the window's bytes (``n_visits`` records in all, see :func:`_window`)."""
        size = len(params) + n_visits * VISIT_RECORD_SIZE
        if size + WASM_PAGE > memory_bytes:
            raise _Failed("memory_limit")  # the input alone cannot fit: do not even start
        ev = self._evaluator
        bound = False
        try:
            try:
                ev.instantiate(pre)
            except WasmtimeError as exc:
                # Instantiation limits (initial memory above the limit, table too large) are
                # the only WasmtimeErrors a checked module can produce here, besides a full
                # pool (never a property of the contract: retried on the reference engine).
                text = str(exc)
                if _POOL_FULL in text:
                    raise _PoolFull from exc
                raise _Failed("memory_limit" if "memory" in text else "instantiate: limits") from exc
            if not ev.bind(_MEMORY_NAME, _ALLOC_NAME, _EVAL_NAME):  # check_code guarantees these
                raise _Failed("invalid_code: bad_exports")
            bound = True
            ptr = ev.call(_ALLOC_SLOT, size)
            base, length = ev.memory()
            if ptr <= 0 or ptr % 8 or ptr + size > length:
                raise _Failed(f"bad_alloc: {ALLOC_EXPORT}({size}) returned {ptr}")
            if params:
                ctypes.memmove(base + ptr, params, len(params))
            at, memmove = base + ptr + len(params), ctypes.memmove
            for piece in pieces:
                memmove(at, piece, len(piece))
                at += len(piece)
            out = ev.call(_EVAL_SLOT, ptr + len(params), n_visits, ptr, len(params) // PARAM_RECORD_SIZE)
        except Trap as trap:
            raise self._classify(trap, bound, memory_bytes) from None
        if out < 0:
            raise _Failed(f"contract_error: {out}")
        base, length = ev.memory()
        try:
            if out + OUTPUT_HEADER_SIZE > length:
                raise AbiError(f"output address {out} outside memory")
            count, scale = decode_output(ctypes.string_at(base + out, OUTPUT_HEADER_SIZE))
            body_at = out + OUTPUT_HEADER_SIZE
            if body_at + count * OUTPUT_ENTRY_SIZE > length:
                raise AbiError(f"output of {count} entries runs past memory")
            values = decode_entries(ctypes.string_at(base + body_at, count * OUTPUT_ENTRY_SIZE), count)
        except AbiError as exc:
            raise _Failed(f"bad_output: {exc}") from None
        return values, scale

    def _classify(self, trap: Trap, bound: bool, memory_bytes: int) -> _Failed:
        code = trap.trap_code
        if code == TrapCode.OUT_OF_FUEL:
            return _Failed("out_of_fuel", all_fuel=True)
        if code == TrapCode.STACK_OVERFLOW:
            return _Failed("stack_overflow", all_fuel=True)
        first = _first_line(trap.message)
        if first.startswith(MEMORY_LIMIT_ABORT):
            return _Failed("memory_limit")  # the SDK allocator's signal (host_api docstring)
        if bound:
            _, length = self._evaluator.memory()
            if length + WASM_PAGE > memory_bytes:
                return _Failed("memory_limit")
        if code is None and first.startswith(ABORT_PREFIX):
            return _Failed(first)
        return _Failed(f"trap: {code.name.lower() if code is not None else 'host'}")

    # ------------------------------------------------------------- introspection

    def statistics(self) -> RuntimeStatistics:
        """Return a snapshot of the cache and evaluation counters."""
        c = self._counters
        return RuntimeStatistics(
            c.compiled, c.disk_hits, c.memory_hits, c.evaluations, c.failures, len(self._cache)
        )



def _signature(ty: FuncType) -> str:
    """``(i32, i64) -> i32``: a function type as the deploy messages write it."""
    params = ", ".join(str(p) for p in ty.params)
    results = ", ".join(str(r) for r in ty.results) or "nothing"
    return f"({params}) -> {results}"
