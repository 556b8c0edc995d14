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
from typing import Any

from wasmtime import Instance, Store, Trap, WasmtimeError
from wasmtime import _bindings as _b
from wasmtime import _ffi as ffi
from wasmtime._func import maybe_raise_last_exn

# The raw ctypes functions, without wasmtime-py's per-call Python wrappers.
_call_unchecked = _b._wasmtime_func_call_unchecked
_export_get = _b._wasmtime_instance_export_get
_memory_data = _b._wasmtime_memory_data
_memory_data_size = _b._wasmtime_memory_data_size
_TrapPtr = ctypes.POINTER(ffi.wasm_trap_t)
_Raw4 = ffi.wasmtime_val_raw_t * 4

__all__ = ["call_i32", "export_func", "export_memory", "memory_bounds"]


def _export(store: Store, instance: Instance, name: bytes, kind: int) -> Any | None:
    item = ffi.wasmtime_extern_t()
    found = _export_get(
        store._context(), ctypes.byref(instance._instance), name, len(name), ctypes.byref(item)
    )
    if not found or item.kind != kind:
        return None
    return item


def export_func(store: Store, instance: Instance, name: bytes) -> Any | None:
    """Return the raw ``wasmtime_func_t`` exported as ``name``, or None."""
    item = _export(store, instance, name, ffi.WASMTIME_EXTERN_FUNC.value)
    return None if item is None else item.of.func


def export_memory(store: Store, instance: Instance, name: bytes) -> Any | None:
    """Return the raw ``wasmtime_memory_t`` exported as ``name``, or None."""
    item = _export(store, instance, name, ffi.WASMTIME_EXTERN_MEMORY.value)
    return None if item is None else item.of.memory


def memory_bounds(store: Store, memory: Any) -> tuple[int, int]:
    """Return ``(base address, length in bytes)`` of a linear memory right now.

    The base may move when the memory grows: call again after any wasm call.
    """
    ctx = store._context()
    ref = ctypes.byref(memory)
    base = ctypes.cast(_memory_data(ctx, ref), ctypes.c_void_p).value or 0
    return base, int(_memory_data_size(ctx, ref))


def call_i32(store: Store, func: Any, *args: int) -> int:
    """Call ``func`` (signature ``(i32 x len(args)) -> i32``) and return its result.

    Raises:
        wasmtime.Trap: the call trapped (including running out of fuel).
        wasmtime.WasmtimeError: wasmtime refused the call.
    """
    if len(args) > 4:
        raise ValueError("at most 4 arguments")
    raw = _Raw4()
    for i, arg in enumerate(args):
        raw[i].i32 = arg
    trap = _TrapPtr()
    # Same protocol as wasmtime-py's enter_wasm(), minus the context-manager overhead:
    # a Python exception raised by a host function is parked and re-raised first.
    error = _call_unchecked(store._context(), ctypes.byref(func), raw, 4, ctypes.byref(trap))
    if trap:
        trap_obj = Trap._from_ptr(trap)
        maybe_raise_last_exn()
        raise trap_obj
    if error:
        maybe_raise_last_exn()
        raise WasmtimeError._from_ptr(error)
    return int(raw[0].i32)
