"""RemoteSubmitter keeps the Submitter contract over the wire: a node's back-pressure answers
are ``Busy`` (so ``submit_retrying`` waits them out), a nonce refusal is ``NonceError``, and
every other refusal stays the node's ``RpcError``. Before, a ``BUSY`` answer escaped
``submit_retrying`` as an RpcError and stopped ``visits ingest`` and the demo stream."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from p2pmkt.chain.tx import SignedTransaction
from p2pmkt.cli.watch import RemoteSubmitter
from p2pmkt.errors import Busy, NonceError
from p2pmkt.node.workload import submit_retrying
from p2pmkt.rpc.protocol import ErrorCode, RpcError
from p2pmkt.testing.keys import dev_key

KEY = dev_key("terminal")


class Node:
    """A client stand-in: refuses the first ``refusals`` submissions with ``error``."""

    def __init__(self, error: RpcError, refusals: int) -> None:
        self.error = error
        self.refusals = refusals
        self.nonces: list[int] = []

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert method == "account.get"
        return {"pending_nonce": 7}

    async def submit_tx(self, stx: SignedTransaction) -> bytes:
        self.nonces.append(stx.tx.nonce)
        if len(self.nonces) <= self.refusals:
            raise self.error
        return bytes(stx.txid)


def busy(code: int = ErrorCode.BUSY) -> RpcError:
    return RpcError(code, "mempool is full; retry after the next block", {"reason": "mempool_full"})


@pytest.mark.parametrize("code", [ErrorCode.BUSY, ErrorCode.RATE_LIMITED])
async def test_back_pressure_over_the_wire_is_waited_out(code: int) -> None:
    node = Node(busy(code), refusals=2)
    with trio.fail_after(10):
        txid = await submit_retrying(RemoteSubmitter(node, "p2pmkt-dev"), KEY, "visit.pack",
                                     {"strings": [], "visits": b""})
    assert len(txid) == 32
    # Refused twice, taken the third time, each time with the nonce the node said was next.
    assert node.nonces == [7, 7, 7]


async def test_busy_keeps_the_nodes_answer_as_its_cause() -> None:
    with pytest.raises(Busy, match="mempool is full") as info:
        await RemoteSubmitter(Node(busy(), refusals=1), "p2pmkt-dev").submit(KEY, "visit.pack", {})
    assert info.value.reason == "mempool_full"
    assert isinstance(info.value.__cause__, RpcError)


async def test_a_nonce_refusal_is_a_nonce_error_and_others_stay_rpc_errors() -> None:
    nonce = RpcError(ErrorCode.BAD_NONCE, "nonce 9 is ahead", {"reason": "nonce_ahead"})
    with pytest.raises(NonceError, match="nonce 9 is ahead") as info:
        await RemoteSubmitter(Node(nonce, refusals=1), "p2pmkt-dev").submit(KEY, "visit.pack", {})
    assert info.value.reason == "nonce_ahead"
    denied = RpcError(ErrorCode.PERMISSION_DENIED, "needs the terminal role", {"reason": "missing_role"})
    with pytest.raises(RpcError) as raw:
        await RemoteSubmitter(Node(denied, refusals=1), "p2pmkt-dev").submit(KEY, "visit.pack", {})
    assert raw.value.code == ErrorCode.PERMISSION_DENIED
