"""Thin, fast calls into wasmtime's C API for the steps of one evaluation.

Why this exists: ``Func.__call__`` re-reads the function type and boxes every argument through
``Val``; measured at 5.6 µs for a call without arguments and 22.8 µs with three i32 arguments
(shared/notes/machine-limits.md, section 5). ``wasmtime_func_call_unchecked`` is 1.0-1.3 µs.
``wasmtime.Store`` and the per-call ctypes objects of wasmtime-py's bindings (argument type
checks, ``byref``, a fresh ``wasmtime_extern_t`` per export) add microseconds more. Issue 3
allows 50 µs of fixed overhead per evaluation, ~40 of which wasmtime itself needs, so
:class:`Evaluator` calls the C functions through prototypes that take plain addresses, with
every buffer allocated once.

Safety: the *unchecked* call trusts that the arguments match the function's signature. The
runtime only calls exports whose types :func:`p2pmkt.contracts.runtime.WasmRuntime.check_code`
verified (all i32), so the trust holds. Traps come back as ``wasmtime.Trap`` exactly as from
the public API because we follow wasmtime-py's own ``enter_wasm`` protocol (re-raising a
Python exception parked by a host function first).

wasmtime is pinned exactly (pyproject), and tests/contracts exercise every function here, so
a change of these C signatures or private names fails loudly in CI rather than silently.
"""

from __future__ import annotations

import ctypes
from typing import Any

from wasmtime import Config, Engine, InstancePre, Trap, WasmtimeError
from wasmtime import _bindings as _b
from wasmtime import _ffi as ffi
from wasmtime._func import maybe_raise_last_exn

_TrapPtr = ctypes.POINTER(ffi.wasm_trap_t)
_ErrorPtr = ctypes.POINTER(ffi.wasmtime_error_t)
_Raw4 = ffi.wasmtime_val_raw_t * 4
_RawI32 = ctypes.c_int32 * (ctypes.sizeof(_Raw4) // 4)
assert ctypes.sizeof(ffi.wasmtime_val_raw_t) == 16 and ffi.wasmtime_val_raw_t.i32.offset == 0
_FUNC = ffi.WASMTIME_EXTERN_FUNC.value
_MEMORY = ffi.WASMTIME_EXTERN_MEMORY.value
_OF = ffi.wasmtime_extern_t.of.offset

__all__ = ["Evaluator", "handle", "set_pooling_allocator"]

_P = ctypes.c_void_p
_S = ctypes.c_size_t


def _raw(name: str, restype: Any, *argtypes: Any) -> Any:
    """The C function ``name`` with plain ``void *``/integer arguments: no per-call type checks
    and no ctypes objects per argument (addresses are passed as ints)."""
    return ctypes.CFUNCTYPE(restype, *argtypes)((name, _b.dll))


_c_store_new = _raw("wasmtime_store_new", _P, _P, _P, _P)
_c_store_context = _raw("wasmtime_store_context", _P, _P)
_c_store_limiter = _raw("wasmtime_store_limiter", None, _P, ctypes.c_int64, ctypes.c_int64,
                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
_c_store_delete = _raw("wasmtime_store_delete", None, _P)
_c_set_fuel = _raw("wasmtime_context_set_fuel", _P, _P, ctypes.c_uint64)
_c_get_fuel = _raw("wasmtime_context_get_fuel", _P, _P, _P)
_c_pre_instantiate = _raw("wasmtime_instance_pre_instantiate", _P, _P, _P, _P, _P)
_c_export_get = _raw("wasmtime_instance_export_get", ctypes.c_bool, _P, _P, ctypes.c_char_p, _S, _P)
_c_call = _raw("wasmtime_func_call_unchecked", _P, _P, _P, _P, _S, _P)
_c_memory_data = _raw("wasmtime_memory_data", _P, _P, _P)
_c_memory_data_size = _raw("wasmtime_memory_data_size", _S, _P, _P)


def handle(obj: Engine | InstancePre) -> int:
    """The C pointer of ``obj`` as an int, for :meth:`Evaluator.open` and
    :meth:`Evaluator.instantiate` (keep ``obj`` alive while the int is in use)."""
    return ctypes.cast(obj.ptr(), ctypes.c_void_p).value or 0


def _raise_trap(trap: int) -> None:
    # The protocol of wasmtime-py's enter_wasm(): a Python exception raised by a host function
    # is parked and re-raised first.
    trap_obj = Trap._from_ptr(ctypes.cast(trap, _TrapPtr))
    maybe_raise_last_exn()
    raise trap_obj


def _raise_error(error: int) -> None:
    maybe_raise_last_exn()
    raise WasmtimeError._from_ptr(ctypes.cast(error, _ErrorPtr))


class Evaluator:
    """One store at a time, driven through the C API with buffers allocated once.

    ``wasmtime.Store``, ``Func.__call__`` and per-call ctypes objects cost microseconds each
    (issue 3's fixed-overhead budget is 50 us for a whole evaluation), so this class keeps
    the instance handle, the three export slots, the call argument slots, the trap slot and
    the fuel slot for its lifetime and passes their addresses as plain ints. Exports are
    bound by :meth:`bind` to three fixed slots: 0 the memory, 1 and 2 the two functions.

    Not thread-safe (one per runtime, one runtime per thread). A store is opened by
    :meth:`open` and must be closed with :meth:`close` (idempotent; also on garbage
    collection) before the next one opens.
    """

    __slots__ = ("_args", "_args_at", "_ctx", "_fuel", "_fuel_at", "_instance", "_instance_at",
                 "_item_at", "_items", "_of", "_store", "_table_elements", "_trap", "_trap_at")

    def __init__(self, *, table_elements: int) -> None:
        self._table_elements = table_elements
        self._store = 0
        self._ctx = 0
        self._instance = ffi.wasmtime_instance_t()
        self._instance_at = ctypes.addressof(self._instance)
        self._items = [ffi.wasmtime_extern_t() for _ in range(3)]
        self._item_at = [ctypes.addressof(item) for item in self._items]
        self._of = [at + _OF for at in self._item_at]
        self._args = _RawI32()
        self._args_at = ctypes.addressof(self._args)
        self._trap = ctypes.c_void_p()
        self._trap_at = ctypes.addressof(self._trap)
        self._fuel = ctypes.c_uint64()
        self._fuel_at = ctypes.addressof(self._fuel)

    def open(self, engine: int, *, memory_size: int, fuel: int) -> None:
        """A fresh store (in the engine whose :func:`handle` is ``engine``) holding at most one
        instance, memory and table, limited to ``memory_size`` bytes, with ``fuel``."""
        if self._store:
            raise ValueError("a store is already open")
        store = _c_store_new(engine, None, None)
        self._store = store
        self._ctx = _c_store_context(store)
        _c_store_limiter(store, memory_size, self._table_elements, 1, 1, 1)
        error = _c_set_fuel(self._ctx, fuel)
        if error:
            self.close()
            raise WasmtimeError._from_ptr(ctypes.cast(error, _ErrorPtr))

    def close(self) -> None:
        store, self._store, self._ctx = self._store, 0, 0
        if store:
            _c_store_delete(store)

    def __del__(self) -> None:
        self.close()

    def instantiate(self, pre: int) -> None:
        """Instantiate the ``InstancePre`` whose :func:`handle` is ``pre`` in the open store.

        Raises:
            wasmtime.Trap: the start function trapped (or a host function raised).
            wasmtime.WasmtimeError: instantiation failed (limits, pool full).
        """
        error = _c_pre_instantiate(pre, self._ctx, self._instance_at, self._trap_at)
        self._check(error)

    def bind(self, memory: bytes, first: bytes, second: bytes) -> bool:
        """Look up the memory export and two function exports; False if one is missing."""
        ctx, inst, items, at = self._ctx, self._instance_at, self._items, self._item_at
        return bool(
            _c_export_get(ctx, inst, memory, len(memory), at[0]) and items[0].kind == _MEMORY
            and _c_export_get(ctx, inst, first, len(first), at[1]) and items[1].kind == _FUNC
            and _c_export_get(ctx, inst, second, len(second), at[2]) and items[2].kind == _FUNC
        )

    def call(self, slot: int, *args: int) -> int:
        """Call bound function ``slot`` (1 or 2; signature ``(i32 x len(args)) -> i32``).

        Raises:
            wasmtime.Trap: the call trapped (including running out of fuel).
            wasmtime.WasmtimeError: wasmtime refused the call.
        """
        raw = self._args
        # Four 16-byte wasmtime_val_raw_t slots seen as int32s: an i32 lives in the first four
        # bytes of its slot (little-endian union), so slot i is element 4 * i.
        for i, arg in enumerate(args):
            raw[4 * i] = arg
        error = _c_call(self._ctx, self._of[slot], self._args_at, 4, self._trap_at)
        if error or self._trap.value:
            self._check(error)
        return raw[0]

    def _check(self, error: int | None) -> None:
        trap = self._trap.value
        if trap:
            self._trap.value = None
            _raise_trap(trap)
        if error:
            _raise_error(error)

    def memory(self) -> tuple[int, int]:
        """``(base address, length in bytes)`` of the bound memory right now (it moves when the
        memory grows: ask again after any call)."""
        ctx, mem = self._ctx, self._of[0]
        return _c_memory_data(ctx, mem) or 0, _c_memory_data_size(ctx, mem)

    def fuel(self) -> int:
        """Fuel left in the open store."""
        error = _c_get_fuel(self._ctx, self._fuel_at)
        if error:
            raise WasmtimeError._from_ptr(ctypes.cast(error, _ErrorPtr))
        return self._fuel.value


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
