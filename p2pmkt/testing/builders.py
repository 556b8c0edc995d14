"""Builders for tests and tools: a local chain over :class:`MemoryState`, payload helpers, and
a fake contract runtime.

:class:`LocalChain` signs transactions with the dev keys, builds blocks signed by the dev
validator, applies them with :func:`p2pmkt.chain.apply.apply_block` and commits the result
into an in-memory state, the way the node does with LMDB. It is the quickest way to put a
chain in a given state::

    chain = LocalChain(runtime=FakeRuntime())
    chain.run("terminal", "visit.batch", {"visits": [visit("acme")]})
    assert chain.head.height == 1

:class:`FakeRuntime` stands in for the wasmtime engine in unit tests: it reads the packed
visit records (the same bytes a real contract gets) and computes counts in Python. Code that
starts with ``b"\\0asm"`` is accepted; the bytes after the magic select the behaviour (see
:meth:`FakeRuntime.evaluate`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from p2pmkt.chain.apply import (
    BlockResult,
    Head,
    account_nonce,
    apply_block,
    genesis_batch,
    read_head,
)
from p2pmkt.chain.block import Block, build_block
from p2pmkt.chain.contract_api import VISIT_RECORD_SIZE, EvalResult, VisitLike, pack_visits
from p2pmkt.chain.genesis import Genesis
from p2pmkt.chain.state import MemoryState, Receipt, WriteBatch
from p2pmkt.chain.tx import SignedTransaction, make_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.errors import ContractRejected
from p2pmkt.testing.keys import dev_genesis, dev_key
from p2pmkt.types import Address, Hash32

__all__ = [
    "FAKE_CODE",
    "HEAD_KEYS",
    "FakeRuntime",
    "LocalChain",
    "assert_changed_nothing",
    "campaign",
    "indicator",
    "non_head_writes",
    "visit",
]

FAKE_CODE = b"\0asm\x01\0\0\0counts"
"""Code :class:`FakeRuntime` accepts and evaluates to visit/order counts."""


def visit(
    merchant: str = "acme",
    op: str = "view",
    *,
    ip: str = "10.0.0.1",
    account: str = "",
    time: int = 1_764_028_800_000,
    method: str = "browser",
    item: str = "",
    amount: int = 0,
) -> list[Any]:
    """One visit in wire form (the 8-element array of :meth:`Visit.to_wire`)."""
    return [ip, account, time, merchant, method, op, item, amount]


def campaign(
    name: str = "spring",
    *,
    max_bid: int = 120,
    budget: int = 50_000,
    keywords: Sequence[str] = ("shoes",),
    channels: Sequence[str] = ("search",),
) -> dict[str, Any]:
    """One campaign in wire form."""
    return {
        "name": name,
        "keywords": [{"text": k, "match": "broad"} for k in keywords],
        "max_bid": max_bid,
        "channels": list(channels),
        "daily_budget": budget,
        "active": True,
    }


def indicator(
    merchant: str = "acme",
    name: str = "conversion",
    *,
    code: bytes,
    every_visits: int = 10,
    every_ms: int = 0,
    params: Mapping[str, int] | None = None,
    target: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``indicator.configure`` payload; ``code`` is the code hash."""
    return {
        "merchant": merchant,
        "name": name,
        "code": code,
        "params": dict(params or {}),
        "condition": {"every_visits": every_visits, "every_ms": every_ms},
        "target": None if target is None else dict(target),
    }


_REC = struct.Struct("<qqQQQBB6x")


@dataclass
class FakeRuntime:
    """A deterministic stand-in for :class:`p2pmkt.contracts.WasmRuntime`.

    ``check_code`` accepts modules starting with the wasm magic and rejects the rest (and any
    containing ``b"reject"``). ``evaluate`` by code content:

    * contains ``b"trap"``: fails with ``"trap: unreachable"``;
    * contains ``b"fuel"``: fails with ``"out_of_fuel"``;
    * otherwise: values ``visits`` (count), ``orders`` (op == order), ``revenue`` (sum of
      amounts) and ``conv`` = orders / visits at scale 4.

    ``calls`` records ``(code_hash, number of visits, params)`` per evaluation.
    """

    calls: list[tuple[bytes, int, dict[str, int]]] = field(default_factory=list)

    def check_code(self, code: bytes) -> None:
        if not code.startswith(b"\0asm"):
            raise ContractRejected("not a WebAssembly module (bad magic)", reason="invalid_code")
        if b"reject" in code:
            raise ContractRejected(
                "module imports 'wasi_snapshot_preview1.fd_write'", reason="bad_import"
            )

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
        if isinstance(visits, bytes):
            raw = visits
        elif visits and isinstance(visits[0], bytes):
            raw = b"".join(cast("Sequence[bytes]", visits))
        else:
            raw = pack_visits(cast("Sequence[VisitLike]", visits))
        assert len(raw) % VISIT_RECORD_SIZE == 0
        n = len(raw) // VISIT_RECORD_SIZE
        self.calls.append((bytes(code_hash), n, dict(params)))
        if b"trap" in code:
            return EvalResult(False, (), 0, 10, "trap: unreachable")
        if b"fuel" in code:
            return EvalResult(False, (), 0, fuel, "out_of_fuel")
        orders = revenue = 0
        for rec in _REC.iter_unpack(raw):
            if rec[6] == 3:
                orders += 1
                revenue += rec[1]
        conv = orders * 10_000 // n if n else 0
        values = (("visits", n), ("orders", orders), ("revenue", revenue), ("conv", conv))
        return EvalResult(True, values, 4 if params.get("scaled", 1) else 0, n, "")


class LocalChain:
    """A chain in one process over :class:`MemoryState`; see the module docstring.

    Args:
        genesis: defaults to :func:`p2pmkt.testing.keys.dev_genesis`.
        runtime: contract runtime handed to ``apply_block``.
        proposer: dev account name (or key) that signs blocks; must be a voter.
    """

    def __init__(
        self,
        genesis: Genesis | None = None,
        *,
        runtime: Any = None,
        proposer: str | PrivateKey = "validator",
    ) -> None:
        self.genesis = genesis or dev_genesis()
        self.runtime = runtime
        self.proposer = _key(proposer)
        self.state = MemoryState()
        self.state.commit(genesis_batch(self.genesis))
        self.results: list[BlockResult] = []
        self._issued: dict[Address, int] = {}

    @property
    def head(self) -> Head:
        return read_head(self.state)

    def tx(
        self,
        signer: str | PrivateKey,
        kind: str,
        payload: dict[str, Any],
        *,
        nonce: int | None = None,
        chain: str | None = None,
    ) -> SignedTransaction:
        """Sign a transaction; the nonce defaults to the next unused one for ``signer``."""
        key = _key(signer)
        if nonce is None:
            nonce = self._issued.get(key.address, account_nonce(self.state, key.address))
            self._issued[key.address] = nonce + 1
        return make_tx(key, chain or self.genesis.chain_id, nonce, kind, payload)

    def build(
        self,
        txs: Sequence[SignedTransaction],
        *,
        time: int | None = None,
        proposer: PrivateKey | None = None,
        **header: Any,
    ) -> Block:
        """A block on top of the head (not applied); ``header`` overrides header fields."""
        head = self.head
        fields: dict[str, Any] = {
            "chain": self.genesis.chain_id,
            "height": head.height + 1,
            "parent": head.hash,
            "state": head.state_root,
            "time": time if time is not None else head.time + self.genesis.params.block_interval_ms,
        }
        fields.update(header)
        return build_block(proposer or self.proposer, txs=txs, **fields)

    def apply(self, block: Block) -> BlockResult:
        """Apply ``block`` without committing it."""
        return apply_block(self.state, block, genesis=self.genesis, runtime=self.runtime)

    def commit(self, result: BlockResult) -> None:
        self.state.commit(result.batch)
        self.results.append(result)
        self._issued.clear()

    def block(
        self, txs: Sequence[SignedTransaction] = (), *, time: int | None = None
    ) -> BlockResult:
        """Build, apply and commit a block holding ``txs``."""
        result = self.apply(self.build(txs, time=time))
        self.commit(result)
        return result

    def run(
        self,
        signer: str | PrivateKey,
        kind: str,
        payload: dict[str, Any],
        *,
        time: int | None = None,
    ) -> Receipt:
        """One transaction in its own block; returns its receipt."""
        return self.block([self.tx(signer, kind, payload)], time=time).receipts[0]

    def deploy(self, code: bytes = FAKE_CODE, signer: str = "acme-ops") -> Hash32:
        """Deploy ``code`` and return its hash (asserts the deploy succeeded)."""
        import hashlib

        receipt = self.run(signer, "contract.deploy", {"code": code})
        assert receipt.status == "ok", receipt
        return Hash32(hashlib.sha256(code).digest())


def _key(who: str | PrivateKey) -> PrivateKey:
    return dev_key(who) if isinstance(who, str) else who


HEAD_KEYS = frozenset({b"head_height", b"head_hash", b"head_time", b"state_root"})
"""``meta`` keys every block writes (see :mod:`p2pmkt.chain.apply`)."""


def non_head_writes(batch: WriteBatch) -> dict[str, dict[bytes, bytes | None]]:
    """Every write of ``batch`` except the head bookkeeping every block does."""
    out: dict[str, dict[bytes, bytes | None]] = {}
    for table, writes in batch.writes().items():
        kept = {k: v for k, v in writes.items() if not (table == "meta" and k in HEAD_KEYS)}
        if kept:
            out[table] = kept
    return out


def assert_changed_nothing(result: BlockResult) -> None:
    """Assert every transaction of ``result`` was rejected and left no trace but the new head."""
    assert all(r.status == "rejected" for r in result.receipts), result.receipts
    assert non_head_writes(result.batch) == {}, non_head_writes(result.batch)
