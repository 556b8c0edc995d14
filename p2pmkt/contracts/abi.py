"""The indicator-contract ABI, version 1: what goes into linear memory and what comes out.

Pure (no wasmtime): the runtime, the SDK (``p2pmkt contract run``) and the tests share it.
docs/CONTRACTS.md is the prose version; keep the two in step.

Theory of operation
-------------------
One evaluation is exactly two calls into the module, whatever the window size, because a call
through wasmtime's Python API costs microseconds and 100k visits must take milliseconds:

1. ``p2pmkt_alloc(size: i32) -> i32`` reserves ``size`` bytes in the contract's own heap and
   returns their address (8-byte aligned). The host copies the input there with one memmove::

       [ params: n_params x 16 bytes ][ visits: n_visits x 48 bytes ]

2. ``p2pmkt_eval(visits_ptr, n_visits, params_ptr, n_params) -> i32`` computes the indicators
   and returns the address of its output, or a negative error code of its own choosing.

Letting the contract allocate (rather than the host writing at a fixed address) keeps the
contract's allocator the only owner of its heap, so languages with a runtime (AssemblyScript)
need no special memory layout.

Parameter record (16 bytes, little-endian, sorted by key, keys unique)::

    0  u64  key    fnv1a64(utf-8 name); see :func:`param_key`
    8  i64  value

Output (at the returned address)::

    0  u32  count  number of entries, 1..MAX_OUTPUTS
    4  u32  scale  0..MAX_SCALE: every value means value / 10**scale
    8  count x { name: 24 bytes ASCII [a-z0-9_.], NUL-padded; value: i64 }

Visit records: see :mod:`p2pmkt.chain.contract_api` (48 bytes each, packed at ingest).

Invariants:
    * All integers are little-endian; nothing here uses floats.
    * :func:`decode_output` accepts exactly one byte string for a given result, so two nodes
      that read the same memory produce the same :class:`EvalResult`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping

from p2pmkt.chain.contract_api import VISIT_RECORD_SIZE, pack_visit, pack_visits, text_id

__all__ = [
    "ABI_VERSION",
    "ALLOC_EXPORT",
    "EVAL_EXPORT",
    "MAX_OUTPUTS",
    "MAX_PARAMS",
    "MAX_SCALE",
    "MEMORY_EXPORT",
    "OUTPUT_ENTRY_SIZE",
    "OUTPUT_HEADER_SIZE",
    "OUTPUT_NAME_SIZE",
    "PARAM_RECORD_SIZE",
    "VISIT_RECORD_SIZE",
    "AbiError",
    "decode_entries",
    "decode_output",
    "output_size",
    "pack_params",
    "pack_visit",
    "pack_visits",
    "param_key",
    "text_id",
]

ABI_VERSION = 1
MEMORY_EXPORT = "memory"
ALLOC_EXPORT = "p2pmkt_alloc"
EVAL_EXPORT = "p2pmkt_eval"

PARAM_RECORD_SIZE = 16
MAX_PARAMS = 64
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

OUTPUT_HEADER_SIZE = 8
OUTPUT_NAME_SIZE = 24
OUTPUT_ENTRY_SIZE = OUTPUT_NAME_SIZE + 8
MAX_OUTPUTS = 64
MAX_SCALE = 18
OUTPUT_NAME = re.compile(rb"^[a-z0-9_.]{1,24}$")

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_PARAM = struct.Struct("<Qq")
_HEADER = struct.Struct("<II")
_VALUE = struct.Struct("<q")


class AbiError(ValueError):
    """Input or output does not follow the ABI; ``str(err)`` is a deterministic reason."""


def param_key(name: str) -> int:
    """Return the 64-bit FNV-1a hash of ``name``'s UTF-8 bytes: the key contracts look up.

    FNV-1a is chosen because a contract can compute it in a few lines of any language
    (the SDK does it at compile time for constant names).
    """
    h = _FNV_OFFSET
    for byte in name.encode("utf-8"):
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def pack_params(params: Mapping[str, int]) -> bytes:
    """Encode ``params`` as sorted 16-byte records.

    Raises:
        AbiError: too many parameters, a bad name, a non-integer or out-of-range value, or
            two names with the same key.
    """
    if len(params) > MAX_PARAMS:
        raise AbiError(f"{len(params)} parameters; at most {MAX_PARAMS}")
    records: dict[int, int] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not PARAM_NAME.match(name):
            raise AbiError(f"parameter name {name!r} must match {PARAM_NAME.pattern}")
        if not isinstance(value, int) or isinstance(value, bool) or not _I64_MIN <= value <= _I64_MAX:
            raise AbiError(f"parameter {name!r} must be an i64 integer")
        key = param_key(name)
        if key in records:
            raise AbiError(f"parameter {name!r} collides with another name's key")
        records[key] = value
    return b"".join(_PARAM.pack(key, records[key]) for key in sorted(records))


def output_size(count: int) -> int:
    """Bytes of an output block holding ``count`` entries."""
    return OUTPUT_HEADER_SIZE + count * OUTPUT_ENTRY_SIZE


def decode_output(header: bytes) -> tuple[int, int]:
    """Parse and check the 8-byte output header; return ``(count, scale)``.

    Raises:
        AbiError: count outside 1..MAX_OUTPUTS or scale above MAX_SCALE.
    """
    count, scale = _HEADER.unpack(header)
    if not 1 <= count <= MAX_OUTPUTS:
        raise AbiError(f"output count {count} outside 1..{MAX_OUTPUTS}")
    if scale > MAX_SCALE:
        raise AbiError(f"output scale {scale} above {MAX_SCALE}")
    return count, scale


def decode_entries(body: bytes, count: int) -> tuple[tuple[str, int], ...]:
    """Parse ``count`` output entries from ``body`` (exactly ``count * 32`` bytes).

    Raises:
        AbiError: a name that is empty, not ``[a-z0-9_.]``, not NUL-padded, or repeated.
    """
    values: list[tuple[str, int]] = []
    seen: set[str] = set()
    for i, (raw, value) in enumerate(_ENTRY.iter_unpack(body[: count * OUTPUT_ENTRY_SIZE])):
        name = _NAMES.get(raw)
        if name is None:
            name = _output_name(raw, i)
        if name in seen:
            raise AbiError(f"output name {name!r} repeated")
        seen.add(name)
        values.append((name, value))
    return tuple(values)


_ENTRY = struct.Struct(f"<{OUTPUT_NAME_SIZE}sq")
# Raw 24-byte name fields already checked, and their names: every evaluation of an indicator
# writes the same few. A pure function's memo (bounded), so it cannot change a result.
_NAMES: dict[bytes, str] = {}
_MAX_NAMES = 4096


def _output_name(raw: bytes, index: int) -> str:
    name_bytes = raw.rstrip(b"\0")
    # Canonical padding: after the first NUL everything is NUL (rstrip alone would accept
    # "a\0b" as garbage). One byte string per name keeps reports identical across nodes.
    if b"\0" in name_bytes or not OUTPUT_NAME.match(name_bytes):
        raise AbiError(f"output entry {index} has a bad name {name_bytes[:24]!r}")
    name = name_bytes.decode("ascii")
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[raw] = name
    return name
