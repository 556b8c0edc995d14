"""Every decoder of untrusted bytes ends in success or a typed p2pmkt error, never anything else.

Each decoder gets three kinds of input (see :mod:`tests.fuzz.strategies`): arbitrary bytes,
well-formed CBOR of arbitrary shape, and valid encodings with a few random edits. Object-level
parsers (payloads of every transaction kind, market wire forms, on-disk Raft records) get
arbitrary CBOR values and valid samples with one node replaced, dropped or added.
``P2PMKT_FUZZ=long`` (``make fuzz``) runs the same properties with a far larger budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pmkt.chain.block import build_block, decode_block
from p2pmkt.chain.tx import decode_tx, make_tx
from p2pmkt.chain.validation import validate_block_bytes, validate_tx_bytes
from p2pmkt.gossip.bundle import decode_bundle, encode_bundle
from p2pmkt.market import model, pack_visits
from p2pmkt.market.apply import KINDS
from p2pmkt.net.sync import _parse_request as parse_sync_request
from p2pmkt.raft import messages as rm
from p2pmkt.rpc.protocol import (
    ErrorAnswer,
    ErrorCode,
    Event,
    Request,
    encode_error,
    encode_event,
    encode_request,
    encode_result,
    parse_request,
    parse_server_message,
)
from p2pmkt.storage import schema
from p2pmkt.storage.api import Head
from p2pmkt.testing.builders import campaign, indicator, visit
from p2pmkt.testing.keys import dev_genesis, dev_key
from p2pmkt.types import ZERO_HASH, Hash32, Height, LogIndex, NodeId, Term
from p2pmkt.wire.cbor import decode, encode

from .strategies import budget, cbor_bytes, mutated, mutated_obj, typed_or_success, values

GENESIS = dev_genesis()
PARAMS = GENESIS.params
TX = make_tx(dev_key("terminal"), GENESIS.chain_id, 0, "visit.batch", {"visits": [visit()] * 2})
TX2 = make_tx(dev_key("terminal"), GENESIS.chain_id, 1, "visit.batch", {"visits": [visit("globex")]})
BLOCK = build_block(dev_key("validator"), chain=GENESIS.chain_id, height=1, parent=ZERO_HASH,
                    state=ZERO_HASH, time=GENESIS.genesis_time + 1, txs=[TX, TX2])

BYTE_DECODERS: dict[str, tuple[Callable[[bytes], Any], list[bytes]]] = {
    "cbor.decode": (lambda b: decode(b), [encode({"a": [1, b"x", None]}), TX.encode()]),
    "cbor.decode(canonical=False)": (lambda b: decode(b, canonical=False), [TX.encode()]),
    "chain.decode_tx": (decode_tx, [TX.encode()]),
    "chain.decode_block": (decode_block, [BLOCK.encode()]),
    "chain.validate_tx_bytes": (lambda b: validate_tx_bytes(b, GENESIS), [TX.encode()]),
    "chain.validate_block_bytes": (lambda b: validate_block_bytes(b, GENESIS), [BLOCK.encode()]),
    "gossip.decode_bundle": (decode_bundle, [encode_bundle([TX.encode(), TX2.encode()])]),
    "raft.decode_message": (rm.decode_message, [rm.encode_message(rm.MsgHeartbeat(
        frm=NodeId("a"), to=NodeId("b"), term=Term(3), commit=LogIndex(2)))]),
    "raft.decode_conf_change": (rm.decode_conf_change, [rm.encode_conf_change(
        rm.ConfChange(rm.ConfChangeType.ADD_VOTER, NodeId("node-x")))]),
    "rpc.parse_request": (parse_request, [encode_request(Request(1, "chain.block", {"height": 3}))]),
    "rpc.parse_server_message": (parse_server_message, [
        encode_result(1, {"height": 2}), encode_error(2, ErrorCode.NOT_FOUND, "no", {"reason": "x"}),
        encode_event(Event("block", 1, {"height": 1}))]),
    "storage.decode_head": (schema.decode_head, [schema.encode_head(
        Head(Height(3), Hash32(b"\1" * 32), 5, Hash32(b"\2" * 32)))]),
    "storage.decode_tx_record": (lambda b: schema.decode_tx_record(b"\0" * 32, b), [
        schema.encode_tx_record(3, 1, "rejected", "bad_nonce", "m"), schema.encode_tx_record(3, 0, "ok", "", "")]),
    "storage.decode_int": (lambda b: schema.decode_int(b, "x"), [schema.encode_int(5)]),
    "storage.decode_height": (schema.decode_height, [schema.height_key(9)]),
    "net.sync request": (lambda b: parse_sync_request(decode(b)), [encode({"from": 1, "to": 9})]),
}


def _bytes_inputs(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    parts = [st.binary(max_size=300), cbor_bytes()]
    if samples:
        parts.append(mutated(samples))
    return st.one_of(*parts)


@pytest.mark.parametrize("name", sorted(BYTE_DECODERS))
@budget(25)
@given(data=st.data())
def test_byte_decoders_end_in_success_or_a_typed_error(name: str, data: st.DataObject) -> None:
    fn, samples = BYTE_DECODERS[name]
    typed_or_success(fn, data.draw(_bytes_inputs(samples), label="input"))


def test_the_samples_are_valid() -> None:
    """The mutation seeds decode, or the mutations would start from garbage."""
    for name, (fn, samples) in BYTE_DECODERS.items():
        for s in samples:
            out = fn(s)
            assert name != "rpc.parse_request" or not isinstance(out, ErrorAnswer), out
    for kind, payloads in PAYLOADS.items():
        for payload in payloads:
            KINDS[kind].parse(payload, PARAMS)
    for fn, objs in OBJECT_DECODERS.values():
        for obj in objs:
            fn(obj)


def test_parse_request_never_raises_and_answers_parse_errors_with_a_null_id() -> None:
    out = parse_request(b"\xff")
    assert isinstance(out, ErrorAnswer) and out.id is None and out.code == ErrorCode.PARSE_ERROR


TARGET = {"value": "rate", "threshold": 5, "scale": 2, "direction": "at_least"}
PAYLOADS: dict[str, list[Any]] = {
    "visit.batch": [{"visits": [visit(), visit("globex", "order", amount=1200, item="i1")]}],
    "visit.pack": [pack_visits([visit(), visit("globex", "order", amount=1200, item="i1")])],
    "indicator.configure": [indicator(code=b"\3" * 32, every_ms=60_000, target=TARGET)],
    "indicator.remove": [{"merchant": "acme", "name": "conversion"}],
    "contract.deploy": [{"code": b"\0asm\1\0\0\0"}],
    "market.update": [{"merchant": "acme", "base_version": 0, "campaigns": [campaign()],
                       "cause": "r1"}],
    "rules.publish": [{"merchant": "acme", "rules": b"[rule]"}],
    "role.grant": [{"member": b"\7" * 20, "role": "platform"}],
    # secp256k1's generator G: a key must be a point on the curve
    "member.add": [{"name": "x", "pubkey": bytes.fromhex(
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"), "roles": ["terminal"]}],
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@budget(15)
@given(data=st.data())
def test_every_transaction_kind_parses_any_payload_to_success_or_a_typed_error(
    kind: str, data: st.DataObject
) -> None:
    samples = PAYLOADS.get(kind, [{}])
    payload = data.draw(st.one_of(
        st.dictionaries(st.text(max_size=10), values, max_size=6),
        st.sampled_from(samples).flatmap(mutated_obj),
    ), label="payload")
    if not isinstance(payload, dict):
        payload = {"_": payload}
    typed_or_success(KINDS[kind].parse, payload, PARAMS)


OBJECT_DECODERS: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {
    "market.Visit": (model.Visit.from_wire, [visit()]),
    "market.Keyword": (model.Keyword.from_wire, [{"text": "shoes", "match": "broad"}]),
    "market.Campaign": (model.Campaign.from_wire, [campaign()]),
    "market.MarketingInfo": (model.MarketingInfo.from_wire, [{
        "merchant": "acme", "version": 1, "campaigns": [campaign()], "author": b"\7" * 20,
        "time": 5, "height": 2, "cause": ""}]),
    "market.ReportingCondition": (model.ReportingCondition.from_wire,
                                  [{"every_visits": 10, "every_ms": 0}]),
    "market.Target": (model.Target.from_wire, [TARGET]),
    "market.IndicatorSpec": (model.IndicatorSpec.from_wire, [indicator(code=b"\3" * 32)]),
    "market.Report": (model.Report.from_wire, []),
    "raft.entry_from_obj": (rm.entry_from_obj, [rm.entry_to_obj(rm.Entry(Term(1), LogIndex(2), rm.EntryKind.NORMAL, b"x"))]),
    "raft.hard_state_from_obj": (rm.hard_state_from_obj, [rm.hard_state_to_obj(rm.HardState(Term(2), NodeId("a"), LogIndex(1)))]),
    "raft.conf_state_from_obj": (rm.conf_state_from_obj, [rm.conf_state_to_obj(rm.ConfState((NodeId("a"), NodeId("b")), ()))]),
    "raft.snapshot_from_obj": (rm.snapshot_from_obj, [rm.snapshot_to_obj(rm.Snapshot())]),
}


@pytest.mark.parametrize("name", sorted(OBJECT_DECODERS))
@budget(15)
@given(data=st.data())
def test_object_decoders_end_in_success_or_a_typed_error(name: str, data: st.DataObject) -> None:
    fn, samples = OBJECT_DECODERS[name]
    strategy = values if not samples else st.one_of(values, st.sampled_from(samples).flatmap(mutated_obj))
    typed_or_success(fn, data.draw(strategy, label="obj"))
