"""Parsed visit.pack payloads kept from admission to block application (chain.apply)."""

from __future__ import annotations

from pathlib import Path

import p2pmkt.chain.apply as apply_module
from p2pmkt.chain.apply import _AdmittedPayloads
from p2pmkt.chain.dev import dev_genesis, dev_key
from p2pmkt.chain.tx import make_tx
from p2pmkt.market.packed import pack_visits, parse_visit_pack
from p2pmkt.node.chain import ChainService

GENESIS = dev_genesis()
CHAIN = GENESIS.chain_id
T0 = GENESIS.genesis_time


def _pack(n: int, start: int = 0) -> dict[str, object]:
    return pack_visits([[f"10.0.0.{i % 250}", f"u{i}", T0 + start + i, "acme", "app", "view", f"s{i}", 0]
                        for i in range(start, start + n)])


def test_keep_and_take_are_bounded_by_visits_and_tied_to_the_params_object() -> None:
    memo = _AdmittedPayloads(max_visits=10)
    params = GENESIS.params
    a, b, c = (parse_visit_pack(_pack(4, s), params) for s in (0, 10, 20))
    memo.keep(b"a", params, a)
    memo.keep(b"b", params, b)
    memo.keep(b"c", params, c)  # 12 visits > 10: the oldest goes
    assert len(memo) == 2 and memo.take(b"a", params) is None
    assert memo.take(b"b", object()) is None  # other params: not used (and dropped)
    assert memo.take(b"c", params) is c and len(memo) == 0
    memo.keep(b"big", params, parse_visit_pack(_pack(11), params))  # larger than the bound
    assert len(memo) == 0


def test_a_block_uses_what_admission_parsed_and_reaches_the_same_state(tmp_path: Path) -> None:
    first = ChainService.open(tmp_path / "a", GENESIS, runtime=None, sync=False)
    second = ChainService.open(tmp_path / "b", GENESIS, runtime=None, sync=False)
    stx = make_tx(dev_key("terminal"), CHAIN, 0, "visit.pack", _pack(50))
    first.submit(stx.encode())
    assert stx.txid in apply_module._ADMITTED  # kept at admission
    block = first.build_block(dev_key("validator"), T0 + 100)
    assert block is not None and [t.txid for t in block.txs] == [stx.txid]
    applied = first.apply(block)
    assert stx.txid not in apply_module._ADMITTED  # taken by the block
    replayed = second.apply(block)  # nothing kept: parsed afresh
    assert applied.result.state_root == replayed.result.state_root
    assert [r.status for r in applied.result.receipts] == ["ok"]


def test_a_pack_queued_behind_its_senders_pending_one_is_also_parsed_once(tmp_path: Path) -> None:
    chain = ChainService.open(tmp_path / "a", GENESIS, runtime=None, sync=False)
    first = make_tx(dev_key("terminal"), CHAIN, 0, "visit.pack", _pack(20))
    queued = make_tx(dev_key("terminal"), CHAIN, 1, "visit.pack", _pack(20, 100))
    chain.submit(first.encode())
    chain.submit(queued.encode())  # nonce 1 while the account is at 0: stateless checks and role only
    assert first.txid in apply_module._ADMITTED and queued.txid in apply_module._ADMITTED
    block = chain.build_block(dev_key("validator"), T0 + 100)
    assert block is not None and len(block.txs) == 2
    applied = chain.apply(block)
    assert [r.status for r in applied.result.receipts] == ["ok", "ok"]
    assert first.txid not in apply_module._ADMITTED and queued.txid not in apply_module._ADMITTED
