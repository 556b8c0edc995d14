"""The visit hot paths decide and store exactly what the per-visit model code does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.chain.contract_api import pack_visit
from p2pmkt.chain.state import MemoryState, WriteBatch
from p2pmkt.errors import InvalidTransaction
from p2pmkt.market.apply import apply_visit_batch, apply_visit_pack
from p2pmkt.market.kinds import TxContext, _all_valid, parse_visit_batch
from p2pmkt.market.model import ACCESS_METHODS, OPERATIONS, Visit
from p2pmkt.market.packed import pack_visits, parse_visit_pack
from p2pmkt.market.store import CHUNK_HEADER, chunk_key
from p2pmkt.testing.builders import LocalChain, visit
from p2pmkt.testing.keys import dev_genesis, dev_key

# Values at and around every limit Visit.from_wire checks, and of every wrong type.
FIELD_VALUES: list[list[Any]] = [
    ["1.2.3.4", "", "x" * 64, "x" * 65, "é", 7, None, b"ip"],  # ip
    ["", "acct", "a" * 256, "a" * 257, 0, True],  # account
    [0, 1_764_028_800_000, 2**53, 2**53 + 1, -1, True, False, "5", None],  # time
    ["acme", "m" * 64, "m" * 65, "", 3, b"acme"],  # merchant
    [*ACCESS_METHODS, "fax", "", 1, None, b"app"],  # method
    [*OPERATIONS, "steal", 0, None, b"view"],  # op
    ["", "sku", "i" * 256, "i" * 257, 0, None],  # item
    [0, 995, 10**15, 10**15 + 1, -1, True, "5", None],  # amount
]


def _accepted(obj: Any) -> bool:
    try:
        Visit.from_wire(obj)
    except InvalidTransaction:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.tuples(*(st.sampled_from(values) for values in FIELD_VALUES)))
def test_fast_visit_check_accepts_exactly_what_from_wire_accepts(fields: tuple[Any, ...]) -> None:
    obj = list(fields)
    assert _all_valid([obj]) == _accepted(obj)
    assert _all_valid([visit(), obj]) == _accepted(obj)


@pytest.mark.parametrize("obj", [visit()[:7], [*visit(), 0], tuple(visit()), {"ip": "1"}, "visit", None])
def test_fast_visit_check_refuses_what_is_not_an_8_element_list(obj: Any) -> None:
    assert not _all_valid([obj])


class _Text(str):
    pass


def test_a_hand_built_odd_visit_still_parses_as_before() -> None:
    # A str subclass passes Visit.from_wire but not the fast check: the slow path decides.
    odd = visit()
    odd[4] = _Text("app")
    assert not _all_valid([odd])
    assert list(parse_visit_batch({"visits": [odd]}, dev_genesis().params).visits) == [odd]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["acme", "globex"]),
            st.sampled_from(ACCESS_METHODS),
            st.sampled_from(OPERATIONS),
            st.text(min_size=1, max_size=20),
            st.text(max_size=20),
            st.integers(0, 2**53),
            st.integers(0, 10**15),
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(1, 2**40),
    st.integers(0, 5000),
)
def test_stored_chunks_are_pack_visit_records_behind_their_origin(rows: list[Any], height: int, tx_index: int) -> None:
    chain = LocalChain()
    wire = [visit(m, op, ip=ip, account=acct, time=t, method=method, item=acct, amount=amount)
            for m, method, op, ip, acct, t, amount in rows]
    for kind, payload, parse, apply in (
        ("visit.batch", {"visits": wire}, parse_visit_batch, apply_visit_batch),
        ("visit.pack", pack_visits(wire), parse_visit_pack, apply_visit_pack),
    ):
        batch = WriteBatch(chain.state)
        ctx = TxContext(batch, dev_key("terminal").address, chain.genesis, height, 1, tx_index, b"", None)
        apply(ctx, parse(payload, chain.genesis.params))
        for m in ("acme", "globex"):
            mine = [i for i, v in enumerate(wire) if v[3] == m]
            if mine:
                expected = CHUNK_HEADER.pack(0, height, tx_index, mine[0]) + b"".join(
                    pack_visit(Visit.from_wire(wire[i])) for i in mine)
                assert batch.get("visits", chunk_key(m, len(mine) - 1)) == expected, kind
            assert len(batch.table_writes("visits")) == len({v[3] for v in wire})


def test_table_writes_refuses_an_unknown_table() -> None:
    with pytest.raises(KeyError):
        WriteBatch(MemoryState()).table_writes("nope")
