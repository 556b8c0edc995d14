"""The RPC request handler answers every frame with a well-formed frame, never with a crash.

``RpcServerSession.handle`` turns any exception into an answer; an ``internal`` answer means a
non-p2pmkt exception escaped parameter checking or dispatch, which is what this fuzzer looks
for. The node side is a fake :class:`~p2pmkt.rpc.server.NodeApi` that behaves like the real
one where input reaches it (transactions are decoded and checked for real).

Client side: the wire forms of node answers (``NodeInfo``/``Head``/``TxStatus.from_wire``)
decode any result map to a value or a typed error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import cbor2
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from p2pmkt.chain.validation import validate_tx_bytes
from p2pmkt.rpc.methods import METHODS
from p2pmkt.rpc.protocol import (
    ErrorAnswer,
    ErrorCode,
    Request,
    encode_request,
    parse_server_message,
)
from p2pmkt.rpc.server import (
    BlockRecord,
    Head,
    NodeEvent,
    NodeInfo,
    Reply,
    RpcServerSession,
    StartSubscription,
    StopSubscription,
    TxStatus,
)
from p2pmkt.testing.builders import visit
from p2pmkt.testing.keys import dev_genesis, dev_key

from .strategies import budget, cbor_bytes, mutated, typed_or_success, values

GENESIS = dev_genesis()


class FakeApi:
    """A NodeApi over nothing: one block at height 1, no transactions, no market data."""

    async def node_info(self) -> NodeInfo:
        return NodeInfo("p2pmkt-dev", "16Uiu2", None, "0", (), 1, None, ())

    async def head(self) -> Head:
        return Head(1, b"\1" * 32, 5)

    async def block(self, *, height: int | None = None, hash: bytes | None = None) -> BlockRecord | None:
        return BlockRecord(1, b"\1" * 32, b"\x80") if height == 1 or hash == b"\1" * 32 else None

    async def submit_tx(self, data: bytes, *, relay: bool = True) -> bytes:
        return bytes(validate_tx_bytes(data, GENESIS).txid)

    async def tx_status(self, txid: bytes) -> TxStatus | None:
        return None

    async def account(self, address: bytes) -> dict[str, Any]:
        return {"address": address, "nonce": 0, "pending_nonce": 0, "member": None, "roles": []}

    async def market_indicator(self, merchant: str, name: str) -> dict[str, Any] | None:
        return None

    async def market_indicators(self, merchant: str) -> list[dict[str, Any]]:
        return []

    async def chain_params(self) -> dict[str, int]:
        return GENESIS.params.to_json()

    async def market_info(self, merchant: str) -> dict[str, Any] | None:
        return None

    async def market_history(self, merchant: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
        return []

    async def market_reports(self, merchant: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
        return []

    @asynccontextmanager
    async def subscribe_events(self, kinds: frozenset[str], merchant: str | None) -> AsyncIterator[AsyncIterator[NodeEvent]]:
        raise AssertionError("handle() never opens a feed itself")
        yield  # pragma: no cover


TX = __import__("p2pmkt.chain.tx", fromlist=["make_tx"]).make_tx(
    dev_key("terminal"), GENESIS.chain_id, 0, "visit.batch", {"visits": [visit()]})

PARAM_NAMES = sorted({f.name for m in METHODS.values() for f in m.params})
param_values = st.one_of(
    values, st.just(TX.encode()), st.sampled_from([b"\1" * 32, b"\7" * 20, 1, 0, None, ["block"]]))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A request frame: mostly well-formed maps with a real method and plausible params."""
    method = draw(st.sampled_from(sorted(METHODS)) | st.text(max_size=20))
    params = draw(st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=8), param_values,
                                  max_size=4))
    frame: dict[Any, Any] = {"id": draw(st.integers(0, 2**63 - 1) | values), "method": method,
                             "params": params}
    if draw(st.booleans()):
        frame[draw(st.text(max_size=6))] = draw(values)
    return cbor2.dumps(frame, canonical=draw(st.booleans()))


VALID = [encode_request(Request(7, "tx.submit", {"tx": TX.encode()})),
         encode_request(Request(8, "chain.block", {"height": 1})),
         encode_request(Request(9, "events.subscribe", {"kinds": ["block"]})),
         encode_request(Request(10, "market.history", {"merchant": "acme", "limit": 5}))]


def _answer(action: Any) -> bytes:
    if isinstance(action, Reply):
        return action.payload
    assert isinstance(action, StartSubscription | StopSubscription), action
    return action.reply


@budget(150)
@given(frame=st.one_of(requests(), mutated(VALID), cbor_bytes(), st.binary(max_size=200)))
def test_every_frame_gets_a_well_formed_answer_and_never_an_internal_error(frame: bytes) -> None:
    session = RpcServerSession(FakeApi())
    action = trio.run(session.handle, frame)
    msg = parse_server_message(_answer(action))
    if isinstance(msg, ErrorAnswer):
        assert msg.code != ErrorCode.INTERNAL_ERROR, msg
        assert isinstance(msg.data, dict) and isinstance(msg.data.get("reason"), str), msg


def test_the_valid_requests_succeed() -> None:
    for frame in VALID:
        msg = parse_server_message(_answer(trio.run(RpcServerSession(FakeApi()).handle, frame)))
        assert not isinstance(msg, ErrorAnswer), msg


ANSWER_DECODERS = {
    "NodeInfo": (NodeInfo.from_wire, NodeInfo("c", "p", None, "0", ("r",), 1, None, ("x",)).to_wire()),
    "Head": (Head.from_wire, Head(1, b"\1" * 32, 5).to_wire()),
    "TxStatus": (TxStatus.from_wire, TxStatus(b"\1" * 32, "rejected", 3, "bad", "m").to_wire()),
}


@pytest.mark.parametrize("name", sorted(ANSWER_DECODERS))
@budget(40)
@given(data=st.data())
def test_client_decodes_any_answer_to_a_value_or_a_typed_error(name: str, data: st.DataObject) -> None:
    fn, sample = ANSWER_DECODERS[name]
    from .strategies import mutated_obj

    typed_or_success(fn, data.draw(st.one_of(values, mutated_obj(sample)), label="result"))
