"""visit.batch: role, schema, per-merchant append order, compact records, hostile input."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from p2pmkt.chain.contract_api import pack_visit
from p2pmkt.market.model import Visit
from p2pmkt.market.store import (
    VISIT_VALUE_SIZE,
    packed_window,
    visit_count,
    visit_key,
    visit_origins,
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
    # Each record points back at the visit in the ledger: (seq, height, tx index, index in tx).
    assert list(visit_origins(chain.state, "acme", 0, 2)) == [(0, 1, 0, 0), (1, 1, 0, 2)]
    assert len(chain.state.get("visits", visit_key("acme", 1)) or b"") == VISIT_VALUE_SIZE
    chain.run("terminal", "visit.batch", {"visits": [visit("acme")]})
    assert list(visit_origins(chain.state, "acme", 2, 3)) == [(2, 2, 0, 0)]


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
