"""The pure interface between the chain and the indicator-contract engine (issue 3).

Theory of operation
-------------------
The marketing state machine (``p2pmkt.market``) decides *when* an indicator runs (SPEC flow 3)
and stores what comes out; the engine in ``p2pmkt.contracts`` decides *how* WebAssembly runs.
This module is the seam between them, and it is pure: no wasmtime, no clock, no I/O. The chain
codes against :class:`ContractRuntime`; ``p2pmkt.node`` hands it a
``p2pmkt.contracts.WasmRuntime``; tests may hand it a fake.

The visit record format lives here too, because it is part of consensus and because the state
machine should pack each visit **once, at ingest** (:func:`pack_visit`) and keep the 48-byte
record beside the visit. Evaluating a window then hands the runtime those records as they
are (a list of 48-byte ``bytes``), and the runtime copies them into the contract's memory in
cache-sized joins: no 100k Python-level conversions and no 4.8 MB intermediate object (the
5 ms / 100k-visit budget of issue 3 leaves no room for either).

Visit record (little-endian, :data:`VISIT_RECORD_SIZE` = 48 bytes, 8-byte aligned)::

    offset size field
     0     8    time      i64  access time, ms since the Unix epoch (data, never a clock)
     8     8    amount    i64  order amount in minor currency units (0 unless op == order)
    16     8    account   u64  id of the login account, 0 when not logged in
    24     8    ip        u64  id of the IP address text
    32     8    item      u64  id of the item, 0 when the item is ""
    40     1    method    u8   index into ACCESS_METHODS  (browser=0, desktop=1, app=2)
    41     1    op        u8   index into OPERATIONS (view=0 click=1 cart=2 order=3 search=4
                               login=5 other=6)
    42     6    reserved  zero

A text id is the first 8 bytes (little-endian u64) of ``sha256(tag || utf8(text))`` with the
one-byte tag ``a`` (account), ``i`` (ip) or ``t`` (item); the tags keep an IP and an account
with the same spelling apart. An id that happens to be 0 is replaced by 1 so that 0 keeps
meaning "absent". The merchant is not in the record: a window only ever holds one merchant.

Invariants:
    * ``pack_visit`` is a pure function of the visit: every node packs identically.
    * :class:`EvalResult` holds integers only; a value ``v`` at scale ``s`` means ``v / 10**s``.
    * A failed evaluation is a *value* (``ok=False`` with a stable ``error`` slug), never an
      exception, so that every validator records the same failed report.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ACCESS_METHOD_CODES",
    "OPERATION_CODES",
    "VISIT_RECORD_SIZE",
    "ContractRuntime",
    "EvalResult",
    "VisitLike",
    "pack_visit",
    "pack_visits",
    "text_id",
    "text_ids",
]

VISIT_RECORD_SIZE = 48
"""Bytes per packed visit record; see the module docstring for the layout."""

# The same orders as p2pmkt.market.model.ACCESS_METHODS / OPERATIONS (a test pins the
# equality); repeated here because chain must not import market (market imports chain).
ACCESS_METHOD_CODES: Mapping[str, int] = {"browser": 0, "desktop": 1, "app": 2}
OPERATION_CODES: Mapping[str, int] = {
    "view": 0,
    "click": 1,
    "cart": 2,
    "order": 3,
    "search": 4,
    "login": 5,
    "other": 6,
}

_RECORD = struct.Struct("<qqQQQBB6x")
assert _RECORD.size == VISIT_RECORD_SIZE


class VisitLike(Protocol):
    """What packing reads from a visit; ``p2pmkt.market.model.Visit`` satisfies it."""

    @property
    def ip(self) -> str: ...
    @property
    def account(self) -> str: ...
    @property
    def time(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def item(self) -> str: ...
    @property
    def amount(self) -> int: ...


def text_id(tag: bytes, text: str) -> int:
    """Return the u64 id of ``text`` under the one-byte ``tag``; 0 for empty text.

    The id is the first 8 bytes (little-endian) of ``sha256(tag || utf8(text))``, or 1 if
    those are all zero.

    Args:
        tag: ``b"a"`` (account), ``b"i"`` (ip) or ``b"t"`` (item).
        text: the text to identify.
    """
    known = _TEXT_IDS.get(tag)
    if known is not None:
        got = known.get(text)
        if got is not None:
            return got
    return text_ids(tag, (text,))[0]


def text_ids(tag: bytes, texts: Iterable[str]) -> list[int]:
    """``[text_id(tag, t) for t in texts]``, for many texts at once (a transaction's).

    Ids are remembered per tag (visits repeat their IPs, accounts and items; a sha256 is
    ~1 us with its Python call), in a dict that is emptied when it holds ``_TEXT_IDS_MAX``:
    cheaper than least-recently-used bookkeeping, which cost more than the hash on a miss.
    A pure function, so the memo cannot change a result.
    """
    known = _TEXT_IDS.setdefault(tag, {})
    get, sha, from_bytes = known.get, hashlib.sha256, int.from_bytes
    out = []
    for text in texts:
        got = get(text)
        if got is None:
            got = (from_bytes(sha(tag + text.encode("utf-8")).digest()[:8], "little") or 1) if text else 0
            known[text] = got
        out.append(got)
    if len(known) > _TEXT_IDS_MAX:
        known.clear()
    return out


_TEXT_IDS: dict[bytes, dict[str, int]] = {}
_TEXT_IDS_MAX = 1 << 16  # per tag: ~8 MB at most for short texts (a key, an int, a slot)


def pack_visit(visit: VisitLike) -> bytes:
    """Return the 48-byte record contracts see for ``visit``.

    Raises:
        KeyError: ``method`` or ``op`` is not a known code (``Visit.from_wire`` already
            refuses those, so this only happens for hand-built visits).
        struct.error: ``time`` or ``amount`` does not fit in an i64.
    """
    return _RECORD.pack(
        visit.time,
        visit.amount,
        text_id(b"a", visit.account),
        text_id(b"i", visit.ip),
        text_id(b"t", visit.item),
        ACCESS_METHOD_CODES[visit.method],
        OPERATION_CODES[visit.op],
    )


def pack_visits(visits: Iterable[VisitLike]) -> bytes:
    """Concatenate :func:`pack_visit` over ``visits`` (the window, in chain order)."""
    return b"".join(map(pack_visit, visits))


@dataclass(frozen=True, slots=True)
class EvalResult:
    """The outcome of one contract evaluation; identical on every node for identical input.

    Attributes:
        ok: True when the contract returned well-formed output.
        values: ``(indicator name, fixed-point integer)`` pairs in the order the contract
            wrote them; empty when not ``ok``.
        scale: values mean ``value / 10**scale`` (0..18); 0 when not ``ok``.
        fuel_used: wasmtime fuel units consumed (the full budget when out of fuel).
        error: ``""`` when ``ok``; otherwise a stable slug, optionally followed by ``": "``
            and detail, e.g. ``"out_of_fuel"``, ``"memory_limit"``, ``"trap: unreachable"``,
            ``"bad_output: ..."``, ``"contract_error: 3"``, ``"invalid_code: ..."``.
    """

    ok: bool
    values: tuple[tuple[str, int], ...]
    scale: int
    fuel_used: int
    error: str = ""

    def value(self, name: str) -> int | None:
        """Return the fixed-point value named ``name``, or None when absent."""
        for key, val in self.values:
            if key == name:
                return val
        return None


class ContractRuntime(Protocol):
    """Runs indicator contracts; ``p2pmkt.contracts.WasmRuntime`` is the implementation."""

    def check_code(self, code: bytes) -> None:
        """Validate a module at deploy time (``contract.deploy``); return None if acceptable.

        Raises:
            p2pmkt.errors.ContractRejected: too big, not valid WebAssembly, imports anything
                outside the host API, or lacks a required export. The message says which.
        """
        ...

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
        """Run the contract over one window of one merchant's visits.

        Args:
            code: the module bytes as deployed.
            code_hash: ``sha256(code)``, the cache key for the compiled module (trusted: the
                chain computed it at deploy).
            visits: the window, in chain order: its :func:`pack_visit` records as a
                sequence of byte chunks, each a whole number of 48-byte records (what the
                state machine stores; the fast path: one copy per chunk), or those records
                already concatenated, or visit objects (packed here).
            params: the indicator's integer parameters from its configuration.
            fuel: fuel budget for this execution (chain parameter).
            memory_bytes: linear-memory limit for this execution (chain parameter).

        Returns:
            An :class:`EvalResult`; contract misbehaviour yields ``ok=False``, never raises.
        """
        ...
