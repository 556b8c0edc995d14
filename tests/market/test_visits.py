"""visit.batch: role, schema, per-merchant append order, compact records, hostile input."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.chain.contract_api import pack_visit
from p2pmkt.market.model import Visit
from p2pmkt.market.packed import pack_visits
from p2pmkt.market.store import (
    CHUNK_HEADER_SIZE,
    VisitChunk,
    chunk_key,
    packed_window,
    read_chunks,
    visit_count,
    visit_origins,
    window_chunks,
    window_records,
)
from p2pmkt.testing.builders import LocalChain, assert_changed_nothing, visit
from p2pmkt.testing.keys import dev_genesis


@pytest.fixture
def chain() -> LocalChain:
    return LocalChain()


def test_visits_are_stored_per_merchant_in_append_order(chain: LocalChain) -> None:
    batch = [visit("acme", account="a0"), visit("globex", account="g0"), visit("acme", "order", account="a1", amount=995)]
    result = chain.block([chain.tx("terminal", "visit.batch", {"visits": batch})])
    assert result.receipts[0].status == "ok"
    assert visit_count(chain.state, "acme") == 2
    assert visit_count(chain.state, "globex") == 1
    records = packed_window(chain.state, "acme", 0, 2)
    assert records == pack_visit(Visit.from_wire(batch[0])) + pack_visit(Visit.from_wire(batch[2]))
    # Each record points back at the visit in the ledger: (seq, height, tx index, nth visit of
    # the merchant in that tx); the chunk's header also holds the index of its first visit.
    assert list(visit_origins(chain.state, "acme", 0, 2)) == [(0, 1, 0, 0), (1, 1, 0, 1)]
    assert list(read_chunks(chain.state, "acme", 0, 2)) == [VisitChunk(0, 1, 0, 0, records)]
    (globex,) = read_chunks(chain.state, "globex", 0, 1)
    assert globex.first_index == 1
    # One value per merchant and transaction, keyed by its last seq.
    assert len(chain.state.get("visits", chunk_key("acme", 1)) or b"") == CHUNK_HEADER_SIZE + 2 * 48
    assert chain.state.get("visits", chunk_key("acme", 0)) is None
    chain.run("terminal", "visit.batch", {"visits": [visit("acme")]})
    assert list(visit_origins(chain.state, "acme", 2, 3)) == [(2, 2, 0, 0)]
    assert list(visit_origins(chain.state, "acme", 1, 3)) == [(1, 1, 0, 1), (2, 2, 0, 0)]


def test_only_terminals_log_visits(chain: LocalChain) -> None:
    result = chain.block([chain.tx("acme-ops", "visit.batch", {"visits": [visit()]})])
    assert result.receipts[0].reason == "missing_role"
    assert_changed_nothing(result)


def test_a_visit_of_an_unknown_merchant_rejects_the_whole_batch(chain: LocalChain) -> None:
    result = chain.block([chain.tx("terminal", "visit.batch", {"visits": [visit("acme"), visit("nobody")]})])
    receipt = result.receipts[0]
    assert receipt.reason == "unknown_merchant"
    assert receipt.message == ("visit.batch: visit 1: merchant 'nobody' is not on this chain (no member "
                               "holds a role for it); ask the platform to add it")
    assert_changed_nothing(result)
    assert visit_count(chain.state, "acme") == 0


def test_batch_size_limit() -> None:
    g = dev_genesis()
    chain = LocalChain(dataclasses.replace(g, params=dataclasses.replace(g.params, max_visits_per_tx=3)))
    result = chain.block([chain.tx("terminal", "visit.batch", {"visits": [visit()] * 4})])
    assert result.receipts[0].message == "visit.batch: 4 visits in one transaction; the chain allows 3"
    assert_changed_nothing(result)


HOSTILE: list[tuple[Any, str]] = [
    ({"visits": "lots"}, r"^visit.batch: 'visits' must be a non-empty array of visits$"),
    ({"visits": []}, r"^visit.batch: 'visits' must be a non-empty array of visits$"),
    ({"visits": [visit()], "extra": 1}, r"^visit.batch: payload must have exactly the fields \['visits'\]"),
    ({}, r"^visit.batch: payload must have exactly the fields"),
    ({"visits": [visit()[:7]]}, r"^visit.batch: visit 0: a visit is an array \[ip, account, time, merchant, method, op, item, amount\]$"),
    ({"visits": [{"ip": "1.2.3.4"}]}, r"^visit.batch: visit 0: a visit is an array"),
    ({"visits": [visit(), visit(ip="")]}, r"^visit.batch: visit 1: visit ip must be text of 1-64 chars"),
    ({"visits": [visit(ip="x" * 65)]}, r"^visit.batch: visit 0: visit ip must be text of 1-64 chars"),
    ({"visits": [visit(account="a" * 257)]}, r"^visit.batch: visit 0: visit account must be text of at most 256 chars$"),
    ({"visits": [visit(time=-1)]}, r"^visit.batch: visit 0: visit time must be ms since the epoch, got -1$"),
    ({"visits": [visit(time=2**60)]}, r"^visit.batch: visit 0: visit time must be ms since the epoch"),
    ({"visits": [visit(method="fax")]}, r"^visit.batch: visit 0: visit method 'fax' is not one of \['browser', 'desktop', 'app'\]$"),
    ({"visits": [visit(op="steal")]}, r"^visit.batch: visit 0: visit op 'steal' is not one of"),
    ({"visits": [visit(amount=-5)]}, r"^visit.batch: visit 0: visit amount must be an integer in \[0, 10\*\*15\]|^visit.batch: visit 0: visit amount must be an integer in \[0, 1000000000000000\]$"),
    ({"visits": [visit(amount=True)]}, r"^visit.batch: visit 0: visit amount must be an integer"),
    ({"visits": [visit(item=b"bytes")]}, r"^visit.batch: visit 0: visit item must be text"),
    ({"visits": [visit(merchant="")]}, r"^visit.batch: visit 0: visit merchant must be a merchant id"),
]


@pytest.mark.parametrize(("payload", "message"), HOSTILE)
def test_hostile_visit_batches_are_rejected_and_change_nothing(chain: LocalChain, payload: Any, message: str) -> None:
    result = chain.block([chain.tx("terminal", "visit.batch", payload)])
    receipt = result.receipts[0]
    assert receipt.status == "rejected"
    assert receipt.reason == "bad_payload"
    assert re.match(message, receipt.message), receipt.message
    assert_changed_nothing(result)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["acme", "globex"]), min_size=1, max_size=6), min_size=1, max_size=5),
       st.data())
def test_any_window_is_one_scan_of_chunks_sliced_at_the_ends(txs: list[list[str]], data: st.DataObject) -> None:
    chain = LocalChain()
    expected: list[bytes] = []
    origins: list[tuple[int, int, int, int]] = []
    for t, merchants in enumerate(txs):
        batch = [visit(m, account=f"u{t}-{i}", item=f"i{i}") for i, m in enumerate(merchants)]
        kind = ("visit.batch", "visit.pack")[t % 2]
        payload = {"visits": batch} if kind == "visit.batch" else pack_visits(batch)
        assert chain.run("terminal", kind, payload).status == "ok"
        mine = [v for v in batch if v[3] == "acme"]
        origins += [(len(expected) + n, t + 1, 0, n) for n in range(len(mine))]
        expected += [pack_visit(Visit.from_wire(v)) for v in mine]
    count = len(expected)
    start = data.draw(st.integers(0, count))
    end = data.draw(st.integers(start, count + 2))
    assert packed_window(chain.state, "acme", start, end) == b"".join(expected[start:end])
    assert window_records(chain.state, "acme", start, end) == expected[start:end]
    assert all(len(c) % 48 == 0 and c for c in window_chunks(chain.state, "acme", start, end))
    assert list(visit_origins(chain.state, "acme", start, end)) == origins[start:end]
