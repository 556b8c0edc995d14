"""The host API: everything a contract may import. Today that is one function.

Theory
------
A contract is a pure function of (visits, params). It needs no clock, no randomness, no files
and no state, so the host offers none (SPEC "Contracts"). The single import is

``env.abort(message: i32, file: i32, line: i32, column: i32) -> ()``
    AssemblyScript's failure hook (``assert``, bounds checks, ``throw``). It ends the
    evaluation with ``error = "abort: <message> at <file>:<line>:<column>"``. ``message`` and
    ``file`` are AssemblyScript strings (UTF-16LE, byte length in the u32 just before the
    pointer) or 0; other languages may pass 0 for both and still get line and column.
    The message ``memory_limit`` is special: the evaluation's error is then just
    ``"memory_limit"``. Allocators call it when ``memory.grow`` returns -1 (the SDK's does),
    so running out of memory reads the same whatever the language.

Anything else a module imports is refused at deploy (:func:`check_imports`). The abort text is
read from the contract's own memory with a hard size bound and a deterministic decoding, so it
is identical on every node.
"""

from __future__ import annotations

from collections.abc import Iterable

from wasmtime import Caller, FuncType, Linker, Memory, Trap, ValType

__all__ = ["ABORT_PREFIX", "ALLOWED_IMPORTS", "MEMORY_LIMIT_ABORT", "check_imports", "define_host_api"]

ABORT_PREFIX = "abort: "
MEMORY_LIMIT_ABORT = "abort: memory_limit at "
"""An abort whose message is exactly ``memory_limit`` reports the error ``memory_limit``."""
_MAX_TEXT_BYTES = 256  # per string read from a contract; keeps error text small


def _abort_type() -> FuncType:
    return FuncType([ValType.i32()] * 4, [])


ALLOWED_IMPORTS: dict[tuple[str, str], str] = {
    ("env", "abort"): "func (i32, i32, i32, i32) -> ()",
}
"""``(module, name) -> signature`` of every import a contract may declare."""


def check_imports(imports: Iterable[tuple[str, str, object]]) -> str | None:
    """Return a reason why ``(module, name, type)`` imports are not allowed, or None.

    ``type`` is the wasmtime import type; only functions with exactly the documented
    signature pass.
    """
    expected = _abort_type()
    for module, name, ty in imports:
        if (module, name) not in ALLOWED_IMPORTS:
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED_IMPORTS)
            return f"import {module}.{name} is not allowed (the host API is: {allowed})"
        if not isinstance(ty, FuncType) or ty.params != expected.params or ty.results != expected.results:
            return f"import {module}.{name} must be {ALLOWED_IMPORTS[(module, name)]}"
    return None


def _read_as_string(caller: Caller, memory: Memory | None, ptr: int) -> str:
    """Decode an AssemblyScript string at ``ptr``; "" when absent or out of bounds."""
    if memory is None or ptr <= 4:
        return ""
    size = memory.data_len(caller)
    if ptr > size:
        return ""
    length = int.from_bytes(memory.read(caller, ptr - 4, ptr), "little")
    length = min(length, _MAX_TEXT_BYTES, size - ptr) & ~1
    return bytes(memory.read(caller, ptr, ptr + length)).decode("utf-16-le", errors="replace")


def _abort(caller: Caller, message: int, file: int, line: int, column: int) -> None:
    exported = caller.get("memory")
    memory = exported if isinstance(exported, Memory) else None
    text = _read_as_string(caller, memory, message)
    where = _read_as_string(caller, memory, file)
    # The runtime recognises this prefix on the first line of the trap message.
    raise Trap(f"{ABORT_PREFIX}{text} at {where}:{line}:{column}".replace("\n", " "))


def define_host_api(linker: Linker) -> None:
    """Define every allowed import in ``linker`` (store-independent definitions)."""
    linker.define_func("env", "abort", _abort_type(), _abort, access_caller=True)
