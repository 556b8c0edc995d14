"""Thin, fast calls into wasmtime's C API for the two ABI calls of an evaluation.

Why this exists: ``Func.__call__`` re-reads the function type and boxes every argument through
``Val``; measured at 5.6 µs for a call without arguments and 22.8 µs with three i32 arguments
(shared/notes/machine-limits.md, section 5). ``wasmtime_func_call_unchecked`` is 1.0-1.3 µs.
An evaluation makes two calls, so this is the difference between meeting the 50 µs fixed
overhead budget of issue 3 and not.

Safety: the *unchecked* call trusts that the arguments match the function's signature. The
runtime only calls exports whose types :func:`p2pmkt.contracts.runtime.WasmRuntime.check_code`
verified (all i32), so the trust holds. Traps come back as ``wasmtime.Trap`` exactly as from
the public API because we reuse wasmtime-py's own ``enter_wasm`` guard.

wasmtime is pinned exactly (pyproject), and tests/contracts exercise every function here, so
a change of these private names fails loudly in CI rather than silently.
"""

from __future__ import annotations

import ctypes
from typing import Any, TypeAlias

from wasmtime import Config, Engine, Instance, InstancePre, Store, Trap, WasmtimeError
from wasmtime import _bindings as _b
from wasmtime import _ffi as ffi
from wasmtime._func import maybe_raise_last_exn

# The raw ctypes functions, without wasmtime-py's per-call Python wrappers.
_export_get = _b._wasmtime_instance_export_get
_memory_data_size = _b._wasmtime_memory_data_size
_store_limiter = _b._wasmtime_store_limiter
_set_fuel = _b._wasmtime_context_set_fuel
_get_fuel = _b._wasmtime_context_get_fuel
_pre_instantiate = _b._wasmtime_instance_pre_instantiate
# wasmtime_memory_data again, as a separate function object returning the address as an int
# (wasmtime-py's returns a uint8 pointer that needs a ctypes.cast per call).
_memory_data = ctypes.CFUNCTYPE(
    ctypes.c_void_p, ctypes.POINTER(ffi.wasmtime_context_t), ctypes.POINTER(ffi.wasmtime_memory_t)
)(("wasmtime_memory_data", _b.dll))
_TrapPtr = ctypes.POINTER(ffi.wasm_trap_t)
_Raw4 = ffi.wasmtime_val_raw_t * 4
_RawI32 = ctypes.c_int32 * (ctypes.sizeof(_Raw4) // 4)
assert ctypes.sizeof(ffi.wasmtime_val_raw_t) == 16 and ffi.wasmtime_val_raw_t.i32.offset == 0
# wasmtime_func_call_unchecked again, taking the argument slots as a plain buffer.
_call_raw = ctypes.CFUNCTYPE(
    ctypes.POINTER(ffi.wasmtime_error_t),
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.POINTER(ffi.wasmtime_func_t),
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.POINTER(_TrapPtr),
)(("wasmtime_func_call_unchecked", _b.dll))
_FUNC = ffi.WASMTIME_EXTERN_FUNC.value
_MEMORY = ffi.WASMTIME_EXTERN_MEMORY.value

__all__ = [
    "RawStore",
    "call_i32",
    "export_func",
    "export_memory",
    "exports",
    "fuel",
    "instantiate",
    "memory_bounds",
    "new_store",
    "set_pooling_allocator",
]


class RawStore:
    """A wasmtime store owned through the C API: what one evaluation needs, nothing else.

    ``wasmtime.Store`` costs a few microseconds more per store in its constructor and
    accessors (issue 3's fixed-overhead budget is 50 us for the whole evaluation). It has no
    user data and no WASI; host functions see it through their ``Caller`` as usual. Close it
    as soon as the evaluation ends (``close`` is idempotent; the finaliser is a safety net).
    """

    __slots__ = ("_ctx", "_ptr")

    def __init__(self, engine: Engine) -> None:
        self._ptr: Any = _store_new(engine.ptr(), None, _NO_FINALIZER)
        self._ctx: Any = _store_context(self._ptr)

    def _context(self) -> Any:
        if self._ctx is None:
            raise ValueError("already closed")
        return self._ctx

    def ptr(self) -> Any:
        if self._ptr is None:
            raise ValueError("already closed")
        return self._ptr

    def close(self) -> None:
        ptr, self._ptr, self._ctx = self._ptr, None, None
        if ptr is not None:
            _store_delete(ptr)

    def __del__(self) -> None:
        self.close()


AnyStore: TypeAlias = Store | RawStore
_store_new = _b._wasmtime_store_new
_store_context = _b._wasmtime_store_context
_store_delete = _b._wasmtime_store_delete
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))


def new_store(engine: Engine, *, memory_size: int, table_elements: int, fuel: int) -> RawStore:
    """A store holding at most one instance, one memory and one table, with ``fuel``.

    The same as ``Store(engine)`` + ``set_limits(...)`` + ``set_fuel(fuel)`` without the
    Python wrappers (every evaluation makes one).
    """
    store = RawStore(engine)
    _store_limiter(store.ptr(), memory_size, table_elements, 1, 1, 1)
    error = _set_fuel(store._context(), fuel)
    if error:
        store.close()
        raise WasmtimeError._from_ptr(error)
    return store


def fuel(store: AnyStore) -> int:
    """Fuel left in ``store`` (``Store.get_fuel`` without the wrapper)."""
    remaining = ctypes.c_uint64(0)
    error = _get_fuel(store._context(), ctypes.byref(remaining))
    if error:
        raise WasmtimeError._from_ptr(error)
    return remaining.value


def instantiate(store: AnyStore, pre: InstancePre) -> Any:
    """Instantiate ``pre`` in ``store``; return the raw ``wasmtime_instance_t``.

    Raises:
        wasmtime.Trap: the start function trapped (or a host function raised).
        wasmtime.WasmtimeError: instantiation failed (limits, pool full).
    """
    instance = ffi.wasmtime_instance_t()
    trap = _TrapPtr()
    error = _pre_instantiate(pre.ptr(), store._context(), ctypes.byref(instance), ctypes.byref(trap))
    # The protocol of wasmtime-py's enter_wasm() around InstancePre.instantiate.
    if trap:
        trap_obj = Trap._from_ptr(trap)
        maybe_raise_last_exn()
        raise trap_obj
    if error:
        maybe_raise_last_exn()
        raise WasmtimeError._from_ptr(error)
    return instance


def exports(store: AnyStore, instance: Any, memory: bytes, *funcs: bytes) -> list[Any | None]:
    """The raw memory export ``memory`` and function exports ``funcs`` (None where absent)."""
    ctx = store._context()
    inst = ctypes.byref(instance)
    out: list[Any | None] = []
    for name, kind in ((memory, _MEMORY), *((f, _FUNC) for f in funcs)):
        item = ffi.wasmtime_extern_t()
        if not _export_get(ctx, inst, name, len(name), ctypes.byref(item)) or item.kind != kind:
            out.append(None)
        else:
            out.append(item.of.memory if kind == _MEMORY else item.of.func)
    return out


def set_pooling_allocator(
    config: Config,
    *,
    instances: int,
    max_memory_bytes: int,
    table_elements: int,
    keep_resident_bytes: int,
) -> None:
    """Switch ``config`` to wasmtime's pooling instance allocator.

    wasmtime-py 50 has no Python API for it; these are the C API's setters. ``instances``
    bounds concurrent instances, memories and tables alike (one each per contract instance).
    """
    pool = _b.wasmtime_pooling_allocation_config_new()
    try:
        _b.wasmtime_pooling_allocation_config_total_core_instances_set(pool, instances)
        _b.wasmtime_pooling_allocation_config_total_memories_set(pool, instances)
        _b.wasmtime_pooling_allocation_config_total_tables_set(pool, instances)
        _b.wasmtime_pooling_allocation_config_max_memory_size_set(pool, max_memory_bytes)
        _b.wasmtime_pooling_allocation_config_table_elements_set(pool, table_elements)
        _b.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(
            pool, keep_resident_bytes
        )
        _b.wasmtime_pooling_allocation_config_table_keep_resident_set(pool, 64 * 1024)
        _b.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        _b.wasmtime_pooling_allocation_config_delete(pool)


def _export(store: AnyStore, instance: Instance | Any, name: bytes, kind: int) -> Any | None:
    raw = instance._instance if isinstance(instance, Instance) else instance
    item = ffi.wasmtime_extern_t()
    found = _export_get(store._context(), ctypes.byref(raw), name, len(name), ctypes.byref(item))
    if not found or item.kind != kind:
        return None
    return item


def export_func(store: AnyStore, instance: Instance | Any, name: bytes) -> Any | None:
    """Return the raw ``wasmtime_func_t`` exported as ``name``, or None."""
    item = _export(store, instance, name, ffi.WASMTIME_EXTERN_FUNC.value)
    return None if item is None else item.of.func


def export_memory(store: AnyStore, instance: Instance | Any, name: bytes) -> Any | None:
    """Return the raw ``wasmtime_memory_t`` exported as ``name``, or None."""
    item = _export(store, instance, name, ffi.WASMTIME_EXTERN_MEMORY.value)
    return None if item is None else item.of.memory


def memory_bounds(store: AnyStore, memory: Any) -> tuple[int, int]:
    """Return ``(base address, length in bytes)`` of a linear memory right now.

    The base may move when the memory grows: call again after any wasm call.
    """
    ctx = store._context()
    ref = ctypes.byref(memory)
    return _memory_data(ctx, ref) or 0, int(_memory_data_size(ctx, ref))


def call_i32(store: AnyStore, func: Any, *args: int) -> int:
    """Call ``func`` (signature ``(i32 x len(args)) -> i32``) and return its result.

    Raises:
        wasmtime.Trap: the call trapped (including running out of fuel).
        wasmtime.WasmtimeError: wasmtime refused the call.
    """
    if len(args) > 4:
        raise ValueError("at most 4 arguments")
    # Four 16-byte wasmtime_val_raw_t slots seen as int32s: an i32 lives in the first four
    # bytes of its slot (little-endian union), so slot i is element 4 * i. Plain int indexing
    # instead of a union view object per argument.
    raw = _RawI32()
    for i, arg in enumerate(args):
        raw[4 * i] = arg
    trap = _TrapPtr()
    # Same protocol as wasmtime-py's enter_wasm(), minus the context-manager overhead:
    # a Python exception raised by a host function is parked and re-raised first.
    error = _call_raw(store._context(), ctypes.byref(func), raw, 4, ctypes.byref(trap))
    if trap:
        trap_obj = Trap._from_ptr(trap)
        maybe_raise_last_exn()
        raise trap_obj
    if error:
        maybe_raise_last_exn()
        raise WasmtimeError._from_ptr(error)
    return int(raw[0])
