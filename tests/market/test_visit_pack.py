"""visit.pack: the same visits as visit.batch, same rules, same state; hostile packed payloads."""

from __future__ import annotations

import dataclasses
import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.chain.state import MemoryState
from p2pmkt.errors import InvalidTransaction
from p2pmkt.market.events import ReportWritten
from p2pmkt.market.model import ACCESS_METHODS, OPERATIONS, Visit
from p2pmkt.market.packed import RECORD, pack_visits, parse_visit_pack
from p2pmkt.market.store import visit_count
from p2pmkt.testing.builders import (
    FAKE_CODE,
    FakeRuntime,
    LocalChain,
    assert_changed_nothing,
    indicator,
    visit,
)
from p2pmkt.testing.keys import dev_genesis

PARAMS = dev_genesis().params
T0 = 1_764_028_800_000


def _state(state: MemoryState) -> dict[str, dict[bytes, bytes]]:
    """Every table, minus the two entries that hash the block (and so the tx bytes) itself."""
    tables = {t: dict(state.scan(t)) for t in state._tables}
    for k in (b"head_hash", b"state_root"):
        tables["meta"].pop(k)
    return tables


def _configured() -> LocalChain:
    chain = LocalChain(runtime=FakeRuntime())
    code = chain.deploy(FAKE_CODE)
    assert chain.run("acme-ops", "indicator.configure", indicator(code=code, every_visits=7)).status == "ok"
    assert chain.run("globex-ops", "indicator.configure",
                     indicator("globex", "conv", code=code, every_visits=3)).status == "ok"
    return chain


texts = st.text(alphabet=st.sampled_from("ab1.é\u4e2d"), max_size=4)
visits = st.builds(
    visit,
    st.sampled_from(["acme"] * 12 + ["globex"] * 6 + ["nobody"]),
    st.sampled_from(OPERATIONS),
    ip=st.sampled_from(["10.0.0.1", "::1", "10.0.0.2"]) | texts.filter(bool),
    account=texts,
    time=st.integers(0, 2**53),
    method=st.sampled_from(ACCESS_METHODS),
    item=texts,
    amount=st.integers(0, 10**15),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.lists(visits, min_size=1, max_size=12), min_size=1, max_size=3), min_size=1, max_size=3))
def test_a_pack_applies_exactly_like_the_same_batch(blocks: list[list[list[list[Any]]]]) -> None:
    """Same receipts (but the kind in messages), events, reports, records, counters: all state
    except the block hash and the root that chains it."""
    as_batch, as_pack = _configured(), _configured()
    for txs in blocks:
        a = as_batch.block([as_batch.tx("terminal", "visit.batch", {"visits": vs}) for vs in txs])
        b = as_pack.block([as_pack.tx("terminal", "visit.pack", pack_visits(vs)) for vs in txs])
        assert [(r.status, r.reason, r.message.replace("visit.batch", "visit.pack")) for r in a.receipts] == [
            (r.status, r.reason, r.message) for r in b.receipts]
        assert a.events == b.events
        assert _state(as_batch.state) == _state(as_pack.state)


def test_a_mixed_block_writes_the_same_reports_either_way() -> None:
    vs = [visit(("acme", "globex")[i % 3 % 2], OPERATIONS[i % 7], ip=f"10.0.0.{i % 5}", account=f"u{i % 4}",
                time=T0 + i, method=ACCESS_METHODS[i % 3], item=f"sku{i % 6}", amount=i * 10 if i % 7 == 3 else 0)
          for i in range(40)]
    as_batch, as_pack = _configured(), _configured()
    a = as_batch.block([as_batch.tx("terminal", "visit.batch", {"visits": vs[:25]}),
                        as_batch.tx("terminal", "visit.batch", {"visits": vs[25:]})])
    b = as_pack.block([as_pack.tx("terminal", "visit.pack", pack_visits(vs[:25])),
                       as_pack.tx("terminal", "visit.pack", pack_visits(vs[25:]))])
    assert [r.status for r in b.receipts] == ["ok", "ok"]
    assert a.events == b.events
    assert sum(isinstance(e, ReportWritten) for e in b.events) == 2
    assert _state(as_batch.state) == _state(as_pack.state)


@settings(max_examples=300, deadline=None)
@given(st.builds(
    visit,
    st.sampled_from(["acme", "", "m" * 64, "m" * 65]),
    st.sampled_from(OPERATIONS),
    ip=st.sampled_from(["1.2.3.4", "", "x" * 64, "x" * 65]),
    account=st.sampled_from(["", "a" * 256, "a" * 257]),
    time=st.sampled_from([0, 2**53, 2**53 + 1, 2**64 - 1]),
    method=st.sampled_from(ACCESS_METHODS),
    item=st.sampled_from(["", "i" * 256, "i" * 257]),
    amount=st.sampled_from([0, 10**15, 10**15 + 1, 2**64 - 1]),
))
def test_a_pack_is_accepted_exactly_when_the_batch_is(v: list[Any]) -> None:
    try:
        Visit.from_wire(v)
        batch_ok = True
    except InvalidTransaction:
        batch_ok = False
    try:
        parse_visit_pack(pack_visits([visit(), v]), PARAMS)
        pack_ok = True
    except InvalidTransaction:
        pack_ok = False
    assert pack_ok == batch_ok


@settings(max_examples=100, deadline=None)
@given(st.lists(visits, min_size=1, max_size=30))
def test_pack_visits_round_trips_and_is_the_only_encoding(vs: list[list[Any]]) -> None:
    payload = pack_visits(vs)
    assert parse_visit_pack(payload, PARAMS).rows() == vs
    assert pack_visits(map(Visit.from_wire, vs)) == payload
    strings = payload["strings"]
    assert strings == sorted(set(strings))


def test_pack_visits_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError, match=r"^pack_visits: no visits$"):
        pack_visits([])
    with pytest.raises(ValueError, match=r"^pack_visits: unknown access method or operation 'fax'$"):
        pack_visits([visit(method="fax")])
    with pytest.raises(ValueError, match=r"^pack_visits: a visit is \["):
        pack_visits([visit()[:7]])


def _raw(*records: tuple[int, ...]) -> bytes:
    return b"".join(RECORD.pack(*r) for r in records)


GOOD = {"strings": ["1.2.3.4", "acme"], "visits": _raw((0, 0, T0, 1, 0, 0, 0, 0))}  # ip == account == item
BIG = dataclasses.replace(PARAMS, max_visits_per_tx=2)

HOSTILE: list[tuple[Any, str]] = [
    ({}, r"^visit.pack: payload must have exactly the fields \['strings', 'visits'\], got \[\]$"),
    ({**GOOD, "x": 1}, r"^visit.pack: payload must have exactly the fields"),
    ({**GOOD, "visits": b""}, r"^visit.pack: 'visits' must be a non-empty byte string of 34-byte visit records$"),
    ({**GOOD, "visits": [1]}, r"^visit.pack: 'visits' must be a non-empty byte string"),
    ({**GOOD, "visits": GOOD["visits"] * 2 + b"\0" * 33},
     r"^visit.pack: 'visits' is 101 bytes: visit 2 is truncated \(records are 34 bytes\)$"),
    ({**GOOD, "visits": GOOD["visits"][:-1]}, r"^visit.pack: 'visits' is 33 bytes: visit 0 is truncated"),
    ({**GOOD, "visits": GOOD["visits"] * 3}, r"^visit.pack: 3 visits in one transaction; the chain allows 2$"),
    ({**GOOD, "strings": []}, r"^visit.pack: 'strings' must be a non-empty array of texts$"),
    ({**GOOD, "strings": "1.2.3.4"}, r"^visit.pack: 'strings' must be a non-empty array of texts$"),
    ({**GOOD, "strings": ["1.2.3.4", "acme", "b", "c", "d"]},
     r"^visit.pack: 'strings' holds 5 texts but 1 visit\(s\) can use at most 4$"),
    ({**GOOD, "strings": ["1.2.3.4", b"acme"]}, r"^visit.pack: strings\[1\] must be text, got b'acme'$"),
    ({**GOOD, "strings": ["1.2.3.4", "a" * 257]}, r"^visit.pack: strings\[1\] is 257 chars; a text is at most 256$"),
    ({**GOOD, "strings": ["acme", "1.2.3.4"]},
     r"^visit.pack: strings\[1\] \('1.2.3.4'\) sorts before strings\[0\]; the table must list each text once, "
     r"sorted by UTF-8 bytes$"),
    ({**GOOD, "strings": ["acme", "acme"]}, r"^visit.pack: strings\[1\] \('acme'\) repeats strings\[0\]"),
    ({"strings": ["1.2.3.4", "acme", "zzz"], "visits": GOOD["visits"]},
     r"^visit.pack: strings\[2\] \('zzz'\) is used by no visit; the table must hold exactly the texts the visits use$"),
    ({**GOOD, "visits": _raw((0, 0, T0, 1, 0, 0, 0, 0), (0, 2, T0, 1, 0, 0, 0, 0))},
     r"^visit.pack: visit 1: account index 2 is outside the string table \(2 texts\)$"),
    ({**GOOD, "visits": _raw((0, 0, T0, 1, 0, 0, 0, 0), (0, 0, T0, 1, 0, 0, 2**32 - 1, 0))},
     r"^visit.pack: visit 1: item index 4294967295 is outside the string table \(2 texts\)$"),
    ({**GOOD, "visits": _raw((9, 0, T0, 1, 0, 0, 0, 0))}, r"^visit.pack: visit 0: ip index 9 is outside"),
    ({**GOOD, "visits": _raw((0, 0, T0, 7, 0, 0, 0, 0))}, r"^visit.pack: visit 0: merchant index 7 is outside"),
    ({**GOOD, "visits": _raw((0, 0, T0, 1, 3, 0, 0, 0))},
     r"^visit.pack: visit 0: visit method code 3 is not one of \{0: 'browser', 1: 'desktop', 2: 'app'\}$"),
    ({**GOOD, "visits": _raw((0, 0, T0, 1, 0, 0, 0, 0), (0, 0, T0, 1, 0, 255, 0, 0))},
     r"^visit.pack: visit 1: visit op code 255 is not one of \{0: 'view', 1: 'click'"),
    ({**GOOD, "visits": _raw((0, 0, 2**53 + 1, 1, 0, 0, 0, 0))},
     r"^visit.pack: visit 0: visit time must be ms since the epoch, got 9007199254740993$"),
    ({**GOOD, "visits": _raw((0, 0, T0, 1, 0, 3, 0, 10**15 + 1))},
     r"^visit.pack: visit 0: visit amount must be an integer in \[0, 1000000000000000\]$"),
    ({"strings": ["", "acme"], "visits": _raw((0, 0, T0, 1, 0, 0, 0, 0))},
     r"^visit.pack: visit 0: visit ip must be text of 1-64 chars, got ''$"),
    ({"strings": ["1.2.3.4", "m" * 65], "visits": _raw((0, 0, T0, 1, 0, 0, 0, 0))},
     r"^visit.pack: visit 0: visit merchant must be a merchant id, got 'mmmm"),
    ({"strings": ["1.2.3.4", "x" * 65], "visits": _raw((1, 0, T0, 0, 0, 0, 0, 0))},
     r"^visit.pack: visit 0: visit ip must be text of 1-64 chars"),  # merchant fine, ip too long
]


@pytest.mark.parametrize(("payload", "message"), HOSTILE)
def test_hostile_packs_are_rejected_and_change_nothing(payload: Any, message: str) -> None:
    g = dev_genesis()
    chain = LocalChain(dataclasses.replace(g, params=BIG))
    result = chain.block([chain.tx("terminal", "visit.pack", payload)])
    (receipt,) = result.receipts
    assert (receipt.status, receipt.reason) == ("rejected", "bad_payload")
    assert re.match(message, receipt.message), receipt.message
    assert_changed_nothing(result)


def test_the_good_pack_of_the_hostile_table_is_accepted() -> None:
    chain = LocalChain()
    assert chain.run("terminal", "visit.pack", GOOD).status == "ok"
    assert visit_count(chain.state, "acme") == 1


def test_unknown_merchants_and_roles_as_for_visit_batch() -> None:
    chain = LocalChain()
    result = chain.block([chain.tx("terminal", "visit.pack", pack_visits([visit(), visit("globex"), visit("nobody")]))])
    assert (result.receipts[0].reason, result.receipts[0].message) == (
        "unknown_merchant", "visit.pack: visit 2: merchant 'nobody' is not on this chain (no member holds a "
        "role for it); ask the platform to add it")
    assert_changed_nothing(result)
    result = chain.block([chain.tx("acme-ops", "visit.pack", pack_visits([visit()]))])
    assert result.receipts[0].reason == "missing_role"
    assert_changed_nothing(result)


def test_the_protocol_document_example_is_what_the_node_accepts() -> None:
    # docs/PROTOCOL.md §7 "visit.pack": the same bytes, byte for byte.
    from p2pmkt.wire.cbor import encode

    payload = pack_visits([
        visit("acme", "view", ip="10.0.0.7", time=T0, method="app", item="sku-1"),
        visit("acme", "order", ip="10.0.0.7", account="ann", time=T0 + 1500, method="app", item="sku-1",
              amount=1999),
    ])
    assert payload["strings"] == ["", "10.0.0.7", "acme", "ann", "sku-1"]
    assert payload["visits"].hex() == (
        "0100000000000000005c4fb89a010000020000000200040000000000000000000000"
        "0100000003000000dc614fb89a01000002000000020304000000cf07000000000000"
    )
    assert encode(payload).hex() == (
        "a26676697369747358440100000000000000005c4fb89a010000020000000200"
        "0400000000000000000000000100000003000000dc614fb89a01000002000000"
        "020304000000cf0700000000000067737472696e677385606831302e302e302e"
        "376461636d6563616e6e65736b752d31"
    )
    assert struct.calcsize("<IIQIBBIQ") == RECORD.size == 34
