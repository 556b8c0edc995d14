"""Inputs for the fuzzers: arbitrary bytes, arbitrary CBOR shapes, and mutations of valid data.

Random bytes mostly die in the first check of a decoder; well-formed CBOR of the wrong shape
and small mutations of valid encodings get past it and exercise the checks behind.
"""

from __future__ import annotations

import os
from typing import Any

import cbor2
from hypothesis import settings
from hypothesis import strategies as st

from p2pmkt.errors import P2pmktError

leaves = (
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.binary(max_size=40)
    | st.text(max_size=16) | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "acme", "view", "ok", "visit.batch", "p2pmkt-dev", "broad", "height"])
    | st.sampled_from([0, 1, 20, 32, 33, 2**63 - 1, 2**63, 2**64 - 1, -1])
    | st.binary(min_size=20, max_size=20) | st.binary(min_size=32, max_size=32)
)
"""CBOR leaves, biased towards values decoders special-case (sizes of addresses, hashes)."""

values: st.SearchStrategy[Any] = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=8)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=24,
)
"""Arbitrary values of the wire's data model (CBOR with text map keys: what the decoder lets
through to the parsers behind it)."""

_any_keys: st.SearchStrategy[Any] = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=8)
    | st.dictionaries(st.text(max_size=12) | st.integers(-2, 40) | st.binary(max_size=4),
                      children, max_size=6)
    | st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 24, 55799, 9999]), children),
    max_leaves=24,
)


def cbor_bytes() -> st.SearchStrategy[bytes]:
    """Well-formed CBOR (not necessarily canonical, any map keys, tags) of arbitrary shape."""
    return _any_keys.map(lambda v: cbor2.dumps(v))


LONG = os.environ.get("P2PMKT_FUZZ") == "long"


def budget(short: int) -> settings:
    """``short`` examples per property in ``make test``; the ``fuzz-long`` profile's budget
    (tests/conftest.py) under ``P2PMKT_FUZZ=long``. No deadline either way."""
    return settings(deadline=None) if LONG else settings(deadline=None, max_examples=short)


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """One of ``samples`` after a few random edits (flip, cut, insert, delete, duplicate)."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0x00, 0x17, 0x18, 0x1B, 0x1F, 0x40, 0x5F, 0x60, 0x7F,
                                              0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xF4, 0xF6, 0xFB, 0xFF]))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "dup":
            end = pos + draw(st.integers(1, 16))
            data[pos:pos] = data[pos:end]
    return bytes(data)


@st.composite
def mutated_obj(draw: st.DrawFn, sample: Any) -> Any:
    """``sample`` (a wire-form value) with one node somewhere replaced, dropped or added."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict) and obj:
            key = draw(st.sampled_from(sorted(obj, key=repr)))
            here = draw(st.sampled_from(["descend", "replace", "drop", "add"]))
            out = dict(obj)
            if here == "descend":
                out[key] = walk(obj[key])
            elif here == "replace":
                out[key] = draw(values)
            elif here == "drop":
                del out[key]
            else:
                out[draw(st.text(max_size=8))] = draw(values)
            return out
        if isinstance(obj, list) and obj:
            i = draw(st.integers(0, len(obj) - 1))
            here = draw(st.sampled_from(["descend", "replace", "drop", "add"]))
            out_l = list(obj)
            if here == "descend":
                out_l[i] = walk(obj[i])
            elif here == "replace":
                out_l[i] = draw(values)
            elif here == "drop":
                del out_l[i]
            else:
                out_l.insert(i, draw(values))
            return out_l
        return draw(values)

    return walk(sample)


def typed_or_success(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a p2pmkt error is a fine outcome (returned), anything else propagates."""
    try:
        return fn(*args, **kwargs)
    except P2pmktError as exc:
        return exc
