"""Client.submit_visits: visits → signed visit.pack transactions, nonces counted across calls,
back-pressure waited out by resending the same transaction, a refused nonce asked again once.
(A fake RPC stream here; the same method against a real dev chain process is in
tests/cli/test_ingest_cmd.py, which the ``visits ingest`` command also goes through.)"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from p2pmkt.chain.tx import decode_tx
from p2pmkt.client import Client, ErrorCode, RpcError
from p2pmkt.market.packed import RECORD_SIZE
from p2pmkt.testing.builders import visit
from p2pmkt.testing.keys import dev_key

KEY = dev_key("terminal")


class Rpc:
    """Answers account.get with ``pending``, and tx.submit from a script of refusals."""

    def __init__(self, refusals: list[RpcError | None], pending: list[int]) -> None:
        self.refusals = refusals
        self.pending = pending
        self.submitted: list[bytes] = []
        self.asked = 0

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        await trio.lowlevel.checkpoint()
        if method == "account.get":
            self.asked += 1
            return {"pending_nonce": self.pending[min(self.asked, len(self.pending)) - 1]}
        assert method == "tx.submit"
        self.submitted.append(params["tx"])
        refusal = self.refusals.pop(0) if self.refusals else None
        if refusal is not None:
            raise refusal
        return {"txid": decode_tx(params["tx"]).txid}


def client(rpc: Rpc) -> Client:
    c = Client(None, rpc)  # type: ignore[arg-type]
    c._chain = "p2pmkt-dev"
    return c


def nonces(rpc: Rpc) -> list[int]:
    return [decode_tx(t).tx.nonce for t in rpc.submitted]


BUSY = RpcError(ErrorCode.BUSY, "mempool is full", {"reason": "mempool_full"})


async def test_visits_are_packed_per_tx_and_nonces_follow_on_across_calls() -> None:
    rpc = Rpc([], pending=[5])
    c = client(rpc)
    first = await c.submit_visits(KEY, [visit(account=f"u{i}") for i in range(7)], per_tx=3)
    second = await c.submit_visits(KEY, [visit()], per_tx=3)
    assert len(first) == 3 and len(second) == 1
    assert nonces(rpc) == [5, 6, 7, 8] and rpc.asked == 1
    sizes = [len(decode_tx(t).tx.payload["visits"]) // RECORD_SIZE for t in rpc.submitted]
    assert sizes == [3, 3, 1, 1]
    assert all(decode_tx(t).tx.kind == "visit.pack" for t in rpc.submitted)


async def test_back_pressure_resends_the_same_transaction_until_taken() -> None:
    rpc = Rpc([BUSY, RpcError(ErrorCode.RATE_LIMITED, "slow down"), None], pending=[0])
    with trio.fail_after(10):
        txids = await client(rpc).submit_visits(KEY, [visit()])
    assert len(rpc.submitted) == 3 and len(set(rpc.submitted)) == 1  # the very same bytes
    assert txids == [decode_tx(rpc.submitted[0]).txid]


async def test_patience_bounds_the_wait() -> None:
    rpc = Rpc([BUSY] * 100, pending=[0])
    with pytest.raises(trio.TooSlowError):
        await client(rpc).submit_visits(KEY, [visit()], patience=0.1)


async def test_a_refused_nonce_is_asked_again_once_and_other_refusals_raise() -> None:
    used = RpcError(ErrorCode.BAD_NONCE, "nonce 0 already used; next is 3", {"reason": "nonce_used"})
    rpc = Rpc([used, None], pending=[0, 3])
    c = client(rpc)
    await c.submit_visits(KEY, [visit()])
    assert nonces(rpc) == [0, 3] and rpc.asked == 2
    denied = RpcError(ErrorCode.PERMISSION_DENIED, "needs the terminal role", {"reason": "missing_role"})
    rpc.refusals = [None, denied]
    with pytest.raises(RpcError) as info:
        await c.submit_visits(KEY, [visit(), visit(account="x")], per_tx=1)
    assert info.value.code == ErrorCode.PERMISSION_DENIED
    assert nonces(rpc)[-2:] == [4, 5]  # the first went in before the refusal


async def test_a_nonce_behind_a_rejected_transaction_is_not_re_signed_with_this_batch() -> None:
    """After a block rejected this key's nonce 3, the node refuses nonce 5 (``behind_rejected``).
    Asking the node again would give 3 and put *this* batch there, past the rejected batch
    and nonce 4's, which would then be lost without a word: the refusal is raised instead,
    and the next call starts from the node's answer."""
    behind = RpcError(ErrorCode.BAD_NONCE, "nonce 5 follows nonce 3, which block 9 rejected (…)",
                      {"reason": "behind_rejected"})
    rpc = Rpc([None, None, behind], pending=[3, 3])
    c = client(rpc)
    await c.submit_visits(KEY, [visit(), visit(account="x")], per_tx=1)  # nonces 3 and 4
    with pytest.raises(RpcError) as info:
        await c.submit_visits(KEY, [visit(account="y")])
    assert info.value.error_reason == "behind_rejected"
    assert nonces(rpc) == [3, 4, 5] and rpc.asked == 1  # not asked again, nothing re-signed
    await c.submit_visits(KEY, [visit(account="z")])
    assert nonces(rpc)[-1] == 3 and rpc.asked == 2  # a later call starts from the node's nonce
