"""``visit.pack``: visits as a string table plus fixed-width binary records (issue 6).

Theory of operation
-------------------
``visit.batch`` carries each visit as an 8-element CBOR array: decoding, type-checking and
hashing its texts is ~5 us a visit in Python, which alone is more than issue 6's budget
(50,000 visits/s applied by each of 4 nodes on 2 cores: ~2 us a visit for everything). A
``visit.pack`` carries the same visits as::

    {"strings": [text, ...], "visits": bytes}

* ``strings``: every text the visits use (IPs, accounts, merchant ids, items), **each once,
  sorted strictly ascending by UTF-8 bytes**, and nothing else: every entry is used by at
  least one visit. Sorted, distinct and all used makes the encoding of a list of visits
  unique (canonical), and lets a node validate and hash each distinct text once.
* ``visits``: ``n`` records of :data:`RECORD_SIZE` = 34 bytes, back to back, little-endian,
  the fields in :class:`~p2pmkt.market.model.Visit` order::

      offset size field
       0     4    ip        u32  index into strings (text of 1-64 chars)
       4     4    account   u32  index into strings (text of at most 256 chars; "" = none)
       8     8    time      u64  ms since the Unix epoch, at most 2**53
      16     4    merchant  u32  index into strings (a merchant on chain, 1-64 chars)
      20     1    method    u8   index into ACCESS_METHODS (browser=0, desktop=1, app=2)
      21     1    op        u8   index into OPERATIONS (view=0 click=1 cart=2 order=3
                                 search=4 login=5 other=6)
      22     4    item      u32  index into strings (at most 256 chars; "" = none)
      26     8    amount    u64  minor currency units, at most 10**15

The node decodes the records with one ``struct`` unpack of the whole byte string and slices
it into columns; every check is then a ``max``/``set`` over a column (C loops), and only a payload
that fails one walks its visits in Python to name the first visit and field at fault, with
the messages of :meth:`Visit.from_wire`. The rules are exactly those of ``visit.batch``: a
list of visits is accepted as a ``visit.pack`` iff it is accepted as a ``visit.batch``, and
applying it writes the same state and events (tests/market pins both).

:func:`pack_visits` is the one builder; :meth:`VisitPack.rows` the inverse.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import lt
from typing import Any

from p2pmkt.chain._slots import slot_builder
from p2pmkt.chain.genesis import ChainParams
from p2pmkt.errors import InvalidTransaction
from p2pmkt.market.kinds import bad, exact_keys
from p2pmkt.market.model import ACCESS_METHODS, MAX_AMOUNT, MAX_TEXT, OPERATIONS, Visit

__all__ = ["KIND", "RECORD", "RECORD_SIZE", "VisitPack", "pack_visits", "parse_visit_pack"]

KIND = "visit.pack"
RECORD = struct.Struct("<IIQIBBIQ")
"""One visit record of a ``visit.pack`` (see the module docstring)."""
RECORD_SIZE = RECORD.size
assert RECORD_SIZE == 34

_MAX_TIME = 2**53


@functools.lru_cache(maxsize=8)
def _records(n: int) -> struct.Struct:
    """A ``struct`` for ``n`` records at once (terminals send batches of a few sizes, so the
    compiled format is reused; unpacking a whole payload in one call and slicing columns is
    ~4x cheaper than ``iter_unpack`` and a transpose)."""
    return struct.Struct("<" + RECORD.format[1:] * n)
_METHOD_CODES = {name: code for code, name in enumerate(ACCESS_METHODS)}
_OP_CODES = {name: code for code, name in enumerate(OPERATIONS)}
_FIELDS = ("ip", "account", "time", "merchant", "method", "op", "item", "amount")


def pack_visits(visits: Iterable[Visit | Sequence[Any]]) -> dict[str, Any]:
    """Return the ``visit.pack`` payload of ``visits`` (``Visit`` values or wire arrays).

    The encoding is the canonical one: the only one the chain accepts for these visits.

    Raises:
        ValueError: no visits, a visit that is not 8 fields, or a method or op name the chain
            does not know (other mistakes, e.g. an over-long text, are left for the chain to
            reject with its usual message).
    """
    rows = [v.to_wire() if isinstance(v, Visit) else v for v in visits]
    if not rows:
        raise ValueError("pack_visits: no visits")
    if any(len(r) != 8 for r in rows):
        raise ValueError("pack_visits: a visit is [ip, account, time, merchant, method, op, item, amount]")
    ips, accounts, times, merchants, methods, ops, items, amounts = zip(*rows, strict=True)
    strings = sorted(set(ips).union(accounts, merchants, items))
    get = {s: i for i, s in enumerate(strings)}.__getitem__
    try:
        method_codes = list(map(_METHOD_CODES.__getitem__, methods))
        op_codes = list(map(_OP_CODES.__getitem__, ops))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"pack_visits: unknown access method or operation {exc}") from None
    data = b"".join(map(
        RECORD.pack, map(get, ips), map(get, accounts), times, map(get, merchants),
        method_codes, op_codes, map(get, items), amounts,
    ))
    return {"strings": strings, "visits": data}


@dataclass(frozen=True, slots=True)
class VisitPack:
    """A checked ``visit.pack`` payload, as columns (one tuple per field, in visit order).

    Attributes:
        strings: the string table.
        ips, accounts, merchants, items: string-table indexes.
        times, methods, ops, amounts: the integers as sent (method and op as codes).
    """

    strings: Sequence[str]
    ips: tuple[int, ...]
    accounts: tuple[int, ...]
    times: tuple[int, ...]
    merchants: tuple[int, ...]
    methods: tuple[int, ...]
    ops: tuple[int, ...]
    items: tuple[int, ...]
    amounts: tuple[int, ...]

    def rows(self) -> list[list[Any]]:
        """The visits in ``visit.batch`` wire form (off the hot path: tests, tools)."""
        s = self.strings
        return [
            [s[ip], s[acct], time, s[m], ACCESS_METHODS[me], OPERATIONS[op], s[item], amount]
            for ip, acct, time, m, me, op, item, amount in zip(
                self.ips, self.accounts, self.times, self.merchants, self.methods, self.ops,
                self.items, self.amounts, strict=True,
            )
        ]

    def parsed(self) -> tuple[Visit, ...]:
        return tuple(map(Visit.from_wire, self.rows()))


_new_visit_pack = slot_builder(VisitPack)


def parse_visit_pack(payload: dict[str, Any], params: ChainParams) -> VisitPack:
    """Check a ``visit.pack`` payload (module docstring) and return its columns.

    Raises:
        InvalidTransaction: reason ``bad_payload``, the message naming the string-table entry
            or the first visit and field at fault.
    """
    if len(payload) != 2 or "visits" not in payload or "strings" not in payload:
        exact_keys(KIND, payload, ("strings", "visits"))
    data, strings = payload["visits"], payload["strings"]
    if type(data) is not bytes or not data:
        raise bad(KIND, f"'visits' must be a non-empty byte string of {RECORD_SIZE}-byte visit records")
    n, extra = divmod(len(data), RECORD_SIZE)
    if extra:
        raise bad(KIND, f"'visits' is {len(data)} bytes: visit {n} is truncated "
                        f"(records are {RECORD_SIZE} bytes)")
    if n > params.max_visits_per_tx:
        raise bad(KIND, f"{n} visits in one transaction; the chain allows {params.max_visits_per_tx}")
    _check_table(strings, n)
    flat = _records(n).unpack(data)  # one C call; then each column is a strided slice
    cols = tuple(flat[i::8] for i in range(8))
    ips, accounts, times, merchants, methods, ops, items, amounts = cols
    count = len(strings)
    # Sets of the index columns: needed for the "every text used" rule, and their maxima
    # are maxima over distinct values only.
    ip_set, account_set, merchant_set, item_set = set(ips), set(accounts), set(merchants), set(items)
    if not (
        max(ip_set) < count and max(account_set) < count and max(merchant_set) < count
        and max(item_set) < count and max(times) <= _MAX_TIME and max(amounts) <= MAX_AMOUNT
        and max(methods) < len(ACCESS_METHODS) and max(ops) < len(OPERATIONS)
        and _lengths_within(strings, ip_set, 64) and _lengths_within(strings, merchant_set, 64)
    ):
        _name_first_bad_visit(strings, cols)
    used = ip_set.union(account_set, merchant_set, item_set)
    if len(used) != count:
        unused = min(set(range(count)) - used)
        raise bad(KIND, f"strings[{unused}] ({strings[unused]!r:.40}) is used by no visit; the "
                        "table must hold exactly the texts the visits use")
    return _new_visit_pack(strings, *cols)


def _lengths_within(strings: list[str], indexes: set[int], most: int) -> bool:
    """True if every ``strings[k]`` for ``k`` in ``indexes`` has 1 to ``most`` characters."""
    lengths = set(map(len, map(strings.__getitem__, indexes)))
    return min(lengths) > 0 and max(lengths) <= most


def _check_table(strings: Any, n: int) -> None:
    if type(strings) is not list or not strings:
        raise bad(KIND, "'strings' must be a non-empty array of texts")
    if len(strings) > 4 * n:
        raise bad(KIND, f"'strings' holds {len(strings)} texts but {n} visit(s) can use at most "
                        f"{4 * n}")
    if set(map(type, strings)) != {str}:
        i = next(i for i, s in enumerate(strings) if type(s) is not str)
        raise bad(KIND, f"strings[{i}] must be text, got {strings[i]!r:.40}")
    if max(map(len, strings)) > MAX_TEXT:
        i = next(i for i, s in enumerate(strings) if len(s) > MAX_TEXT)
        raise bad(KIND, f"strings[{i}] is {len(strings[i])} chars; a text is at most {MAX_TEXT}")
    if not all(map(lt, strings, islice(strings, 1, None))):
        i = next(i for i in range(1, len(strings)) if not strings[i - 1] < strings[i])
        what = "repeats" if strings[i - 1] == strings[i] else "sorts before"
        raise bad(KIND, f"strings[{i}] ({strings[i]!r:.40}) {what} strings[{i - 1}]; the table "
                        "must list each text once, sorted by UTF-8 bytes")


def _name_first_bad_visit(strings: list[str], cols: tuple[tuple[int, ...], ...]) -> None:
    """Raise for the first visit (and its first field) that breaks a rule; the slow path."""
    count = len(strings)
    for i, row in enumerate(zip(*cols, strict=True)):
        for field, k in zip(("ip", "account", "merchant", "item"), (row[0], row[1], row[3], row[6]), strict=True):
            if k >= count:
                raise bad(KIND, f"visit {i}: {field} index {k} is outside the string table "
                                f"({count} texts)")
        ip, _account, time, merchant, method, op, _item, amount = row
        message = ""
        if not 0 < len(strings[ip]) <= 64:
            message = f"visit ip must be text of 1-64 chars, got {strings[ip]!r:.40}"
        elif time > _MAX_TIME:
            message = f"visit time must be ms since the epoch, got {time!r:.40}"
        elif not 0 < len(strings[merchant]) <= 64:
            message = f"visit merchant must be a merchant id, got {strings[merchant]!r:.40}"
        elif method >= len(ACCESS_METHODS):
            message = (f"visit method code {method} is not one of "
                       f"{dict(enumerate(ACCESS_METHODS))}")
        elif op >= len(OPERATIONS):
            message = f"visit op code {op} is not one of {dict(enumerate(OPERATIONS))}"
        elif amount > MAX_AMOUNT:
            message = f"visit amount must be an integer in [0, {MAX_AMOUNT}]"
        if message:
            raise bad(KIND, f"visit {i}: {message}")
    raise InvalidTransaction(f"{KIND}: a visit breaks a rule", reason="bad_payload")  # unreachable
