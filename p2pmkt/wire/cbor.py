"""Canonical CBOR: the one encoding for everything p2pmkt signs, hashes or sends.

Theory of operation
-------------------
We use a strict subset of CBOR (RFC 8949) with the core deterministic encoding of §4.2:

* types: null, booleans, integers in [-2**63, 2**64 - 1], byte strings, text strings, arrays,
  and maps whose keys are **all text strings**. No floats (determinism: fixed-point integers
  instead), no tags, no undefined or simple values, no indefinite lengths, no duplicate keys.
* shortest-form lengths and integers; map keys sorted bytewise by their encoding.

Restricting map keys to text strings is what makes cbor2's ``canonical=True`` (length-first
key order, RFC 7049) produce exactly the RFC 8949 §4.2.1 bytewise order: for keys of one major
type with definite lengths, the header grows with the length, so both orders agree.

Decoding is bounded (``max_size`` bytes, ``max_depth`` nesting) and always raises
:class:`p2pmkt.errors.DecodeError` on bad input, never another exception. With
``canonical=True`` the decoder re-encodes what it read and rejects input whose bytes differ:
signed objects must arrive in their one canonical form, so a signature covers exactly one
byte string and two honest nodes always hash the same bytes.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from p2pmkt.errors import DecodeError

DEFAULT_MAX_SIZE = 4 * 1024 * 1024
DEFAULT_MAX_DEPTH = 32
_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1


def encode(obj: Any) -> bytes:
    """Encode ``obj`` as canonical CBOR.

    Raises:
        TypeError: ``obj`` holds a value outside the subset (a float, a non-text map key, an
            out-of-range integer, any other type). This is a local bug, never remote input.
    """
    _check(obj, DEFAULT_MAX_DEPTH, local=True)
    return cbor2.dumps(obj, canonical=True)


def encode_unchecked(obj: Any) -> bytes:
    """Encode ``obj`` canonically without walking it first.

    For hot paths that build ``obj`` from values already validated (e.g. re-encoding a
    decoded object). Anything outside the subset produces bytes a strict decoder rejects.
    """
    return cbor2.dumps(obj, canonical=True)


def encode_text_uint_map(key: str, value: int) -> bytes:
    """Canonical CBOR of the one-entry map ``{key: value}`` with ``0 <= value < 2**64``.

    For counters written on every transaction (account nonces, visit counts): a one-entry
    map needs no key sorting, so the plain encoder already yields the canonical bytes, at a
    third of the cost of :func:`encode`.

    Raises:
        TypeError: ``key`` is not text or ``value`` is not an integer in range (a local bug).
    """
    if type(key) is not str or type(value) is not int or not 0 <= value <= _MAX_INT:
        raise TypeError(f"encode_text_uint_map needs a text key and a uint, got {key!r}: {value!r}")
    head = _UINT_MAP_HEADS.get(key)
    if head is None:
        head = _UINT_MAP_HEADS[key] = cbor2.dumps({key: 0})[:-1]
    if value < 24:
        return head + _SMALL_UINTS[value]
    if value < 0x100:
        return head + b"\x18" + _SMALL_UINTS[value]
    if value < 0x10000:
        return head + b"\x19" + value.to_bytes(2, "big")
    if value < 0x100000000:
        return head + b"\x1a" + value.to_bytes(4, "big")
    return head + b"\x1b" + value.to_bytes(8, "big")


_SMALL_UINTS = tuple(bytes((i,)) for i in range(256))


def decode_text_uint_map(data: bytes, key: str) -> int:
    """``decode(data)[key]`` for a record :func:`encode_text_uint_map` wrote, as an int.

    Hand-parses that exact layout (a counter is read on every transaction, and a general
    decode costs ~10 us); anything else takes :func:`decode`, with its errors.

    Raises:
        DecodeError: ``data`` is not CBOR in the subset.
        KeyError: the map has no ``key``.
    """
    head = _UINT_MAP_HEADS.get(key)
    if head is None:
        head = _UINT_MAP_HEADS[key] = cbor2.dumps({key: 0})[:-1]
    if type(data) is bytes and data.startswith(head):
        rest = len(data) - len(head)
        first = data[len(head)] if rest else 0xFF
        if first < 24 and rest == 1:
            return first
        size = _UINT_SIZES.get(first)
        if size is not None and rest == 1 + size:
            value = int.from_bytes(data[len(head) + 1 :], "big")
            if value >= _UINT_MINIMUMS[size]:  # shortest form only, as canonical CBOR
                return value
    return int(decode(data)[key])


_UINT_SIZES = {0x18: 1, 0x19: 2, 0x1A: 4, 0x1B: 8}
_UINT_MINIMUMS = {1: 24, 2: 0x100, 4: 0x10000, 8: 0x100000000}
_UINT_MAP_HEADS: dict[str, bytes] = {}


def decode(
    data: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    canonical: bool = False,
    walk: bool = True,
) -> Any:
    """Decode one CBOR item from ``data`` (which must hold exactly one item).

    Args:
        data: the bytes received.
        max_size: reject ``data`` longer than this many bytes before parsing.
        max_depth: reject nesting deeper than this.
        canonical: also require ``data`` to be the canonical encoding of the value
            (use for anything signed or hashed).
        walk: check every value against the subset (no floats, tags, non-text keys).
            Only hot paths whose caller validates every field's type itself (the
            transaction decoder does, per kind) may pass ``False``.

    Raises:
        DecodeError: malformed, trailing bytes, too large, too deep, outside the subset, or
            (with ``canonical``) not in canonical form. The message says which.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes to decode, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"CBOR item is {len(data)} bytes; the limit here is {max_size}")
    if not data:
        raise DecodeError("empty input: expected one CBOR item")
    if canonical and walk and type(data) is bytes:
        value = _accept_canonical(data, max_depth)
        if value is not _MISS:
            return value
    raw = bytes(data)
    fp = io.BytesIO(raw)
    try:
        value = cbor2.CBORDecoder(
            fp,
            max_depth=max_depth + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        ).decode()
    except cbor2.CBORDecodeError as exc:
        raise DecodeError(f"malformed CBOR: {_short(exc)}") from exc
    except (RecursionError, MemoryError, OverflowError, ValueError, TypeError, KeyError) as exc:
        raise DecodeError(f"malformed CBOR: {_short(exc)}") from exc
    rest = len(raw) - fp.tell()
    if rest:
        raise DecodeError(f"{rest} trailing bytes after the CBOR item")
    if walk:
        _check(value, max_depth, local=False)
    if canonical and cbor2.dumps(value, canonical=True) != raw:
        raise DecodeError("CBOR is not in canonical form (RFC 8949 §4.2); re-encode it canonically")
    return value


_MISS: Any = object()


def decode_canonical_map(
    raw: bytes, keys: tuple[str, ...], *, max_depth: int = DEFAULT_MAX_DEPTH
) -> dict[str, Any] | None:
    """``decode(raw, canonical=True, max_depth=max_depth)`` for a map with exactly ``keys``.

    Returns the map if ``raw`` is the canonical encoding of a map in the subset whose keys are
    ``keys`` in that order, else None: then nothing is decided, and the caller decodes with
    :func:`decode`, which accepts or rejects with its message. Like :func:`_accept_canonical`
    it only ever accepts what :func:`decode` accepts (same decoder options, same subset and
    key-order test, same re-encoding comparison), minus :func:`decode`'s call layers and its
    walk of the top-level map: ``keys`` is checked once per distinct tuple. For records of a
    fixed shape decoded on every transaction (the signed body: ~1.5 us of ~9 us).

    Raises:
        ValueError: ``keys`` are not text in canonical order (a local bug: a map in that order
            would not be canonical).
    """
    if keys not in _ORDERED_KEYS:
        if not _keys_ordered(keys):
            raise ValueError(f"keys {keys!r} are not text strings in canonical order")
        if len(_ORDERED_KEYS) < _ORDERED_KEYS_MAX:
            _ORDERED_KEYS.add(keys)
    if type(raw) is not bytes or max_depth < 1:
        return None
    try:
        value = _loads(
            raw,
            max_depth=max_depth + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
        if type(value) is not dict or tuple(value) != keys:
            return None
        for child in value.values():
            kind = type(child)
            if kind in _LEAVES:
                continue
            if kind is int:
                if not _MIN_INT <= child <= _MAX_INT:
                    return None
            elif not _in_subset_and_ordered(child, 1, max_depth):
                return None
        if _dumps(value) != raw:
            return None
    except Exception:  # any failure: decode() decides, and names it
        return None
    result: dict[str, Any] = value
    return result


_loads = cbor2.loads
_dumps = cbor2.dumps


def _accept_canonical(raw: bytes, max_depth: int) -> Any:
    """The value of ``raw`` if the strict path below would accept it, else :data:`_MISS`.

    Every signed transaction body goes through here, so it avoids what costs most in the
    strict path (~13 us -> ~8 us per body): the decoder object, the trailing-bytes check and
    the canonical re-encode. It only ever *accepts*; anything it does not accept takes the
    strict path, which rejects with the same message as always.

    Why accepting here is exact: inside the subset (the walk passed), cbor2's canonical
    encoder differs from its plain one only in sorting map keys, and a decoded dict keeps
    the wire order of its keys. So "every map's keys are in canonical order and the plain
    re-encoding equals ``raw``" is "the canonical re-encoding equals ``raw``", and equality
    with ``raw`` also rules out trailing bytes (``loads`` ignores them). tests/wire pins
    the equivalence against the strict path.
    """
    try:
        value = cbor2.loads(
            raw,
            max_depth=max_depth + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
        if _in_subset_and_ordered(value, 0, max_depth) and cbor2.dumps(value) == raw:
            return value
    except Exception:  # any failure: the strict path decides, and names it
        return _MISS
    return _MISS


def _in_subset_and_ordered(item: Any, level: int, depth: int) -> bool:
    """:func:`_check`'s test (as a bool) plus: every map lists its keys in canonical order.

    Canonical order of text keys is by encoded length, then bytewise; UTF-8 preserves code
    point order, so comparing ``(utf-8 length, str)`` pairs is the same order.
    """
    kind = type(item)
    if kind in _LEAVES:
        return True
    if kind is int:
        in_range: bool = _MIN_INT <= item <= _MAX_INT
        return in_range
    if kind is list:
        if level >= depth:
            return False
        level += 1
        for child in item:
            kind = type(child)
            if kind in _LEAVES:
                continue
            if kind is int:  # inline: visits carry two integers each
                if not _MIN_INT <= child <= _MAX_INT:
                    return False
            elif kind is list:
                # One level inlined as well: a visit batch is a list of thousands of flat
                # lists, and a call per visit was half of this walk's cost.
                if level >= depth:
                    return False
                for leaf in child:
                    kind = type(leaf)
                    if kind in _LEAVES:
                        continue
                    if kind is int:
                        if not _MIN_INT <= leaf <= _MAX_INT:
                            return False
                    elif not _in_subset_and_ordered(leaf, level + 1, depth):
                        return False
            elif not _in_subset_and_ordered(child, level, depth):
                return False
        return True
    if kind is dict:
        if level >= depth:
            return False
        level += 1
        keys = tuple(item)
        if keys not in _ORDERED_KEYS:
            if not _keys_ordered(keys):
                return False
            if len(_ORDERED_KEYS) < _ORDERED_KEYS_MAX:
                _ORDERED_KEYS.add(keys)
        for child in item.values():
            kind = type(child)
            if kind in _LEAVES:
                continue
            if kind is int:
                if not _MIN_INT <= child <= _MAX_INT:
                    return False
            elif not _in_subset_and_ordered(child, level, depth):
                return False
        return True
    return False


# Key sequences already found to be text in canonical order. Messages of one kind repeat the
# same few sequences (every transaction body has the same five keys), so checking the order
# becomes one set lookup. Bounded: a flood of novel key sets only stops the caching.
_ORDERED_KEYS: set[tuple[Any, ...]] = set()
_ORDERED_KEYS_MAX = 4096


def _keys_ordered(keys: tuple[Any, ...]) -> bool:
    prev_len, prev = -1, ""
    for key in keys:
        if type(key) is not str:
            return False
        size = len(key) if key.isascii() else len(key.encode())
        if size < prev_len or (size == prev_len and key <= prev):
            return False
        prev_len, prev = size, key
    return True


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def _check(value: Any, depth: int, *, local: bool) -> None:
    """Walk ``value`` and insist on the subset.

    Recursive, and visits children last-to-first so that the first violation reported is the
    one the former stack-based walk reported. Recursion is safe: a container is only entered
    while ``level < depth`` and every caller bounds ``depth`` (hostile depth was already
    refused by the decoder's ``max_depth``); deeper limits than :data:`_RECURSION_LIMIT` take
    the iterative walk. The recursive walk is ~2x faster and runs on every transaction body.
    """
    if depth > _RECURSION_LIMIT:
        _check_iterative(value, depth, local)
    else:
        _walk(value, 0, depth, local)


_RECURSION_LIMIT = 200
_LEAVES = frozenset({str, bytes, bool, type(None)})


def _walk(item: Any, level: int, depth: int, local: bool) -> None:
    kind = type(item)
    if kind in _LEAVES:
        return
    if kind is int:
        if not _MIN_INT <= item <= _MAX_INT:
            _fail(local, f"integer {item} is outside the 64-bit range")
    elif kind is list or kind is tuple:
        if level >= depth:
            _fail(local, f"nesting deeper than {depth}")
        level += 1
        for child in reversed(item):
            if type(child) not in _LEAVES:
                _walk(child, level, depth, local)
    elif kind is dict:
        if level >= depth:
            _fail(local, f"nesting deeper than {depth}")
        for key in item:
            if type(key) is not str:
                _fail(local, f"map key {key!r} is not a text string")
        level += 1
        for child in reversed(item.values()):
            if type(child) not in _LEAVES:
                _walk(child, level, depth, local)
    elif kind is float:
        _fail(local, "floats are not allowed (use fixed-point integers)")
    else:
        _fail(local, f"type {kind.__name__} is not allowed in p2pmkt CBOR")


def _check_iterative(value: Any, depth: int, local: bool) -> None:
    """The same walk with an explicit stack, for callers that allow very deep nesting."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        kind = type(item)
        if kind is int:
            if not _MIN_INT <= item <= _MAX_INT:
                _fail(local, f"integer {item} is outside the 64-bit range")
        elif kind is str or kind is bytes or item is None or kind is bool:
            continue
        elif kind is list or kind is tuple:
            if level >= depth:
                _fail(local, f"nesting deeper than {depth}")
            stack.extend((child, level + 1) for child in item)
        elif kind is dict:
            if level >= depth:
                _fail(local, f"nesting deeper than {depth}")
            for key, child in item.items():
                if type(key) is not str:
                    _fail(local, f"map key {key!r} is not a text string")
                stack.append((child, level + 1))
        elif kind is float:
            _fail(local, "floats are not allowed (use fixed-point integers)")
        else:
            _fail(local, f"type {kind.__name__} is not allowed in p2pmkt CBOR")


def _fail(local: bool, message: str) -> None:
    if local:
        raise TypeError(message)
    raise DecodeError(message)
