"""ChainService end to end on one node: real LMDB, real wasmtime, the built-in indicator.

This is the single-node marketing loop of SPEC flows 1-4 without networking: visits go in,
the indicator reports by itself at the end of a block, and a second node replaying the same
blocks reaches the same state roots.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import pytest

from p2pmkt.chain.dev import dev_genesis, dev_key
from p2pmkt.chain.tx import make_tx
from p2pmkt.contracts import RuntimeConfig, WasmRuntime
from p2pmkt.contracts.builtin import builtin_code, builtin_hash
from p2pmkt.errors import NonceError, PermissionDenied
from p2pmkt.market.events import MarketingUpdated, ReportWritten
from p2pmkt.node.chain import ChainService

GENESIS = dev_genesis()
CHAIN = GENESIS.chain_id
T0 = GENESIS.genesis_time


def _open(path: Path) -> ChainService:
    return ChainService.open(path, GENESIS, runtime=WasmRuntime(RuntimeConfig()), sync=False)


def _visits(n: int, orders: int, start: int) -> list[list[object]]:
    out: list[list[object]] = []
    for i in range(n):
        op = "order" if i < orders else "view"
        out.append([f"10.0.0.{i % 250}", f"user{i}", start + i, "acme", "browser", op, "", 1999 if op == "order" else 0])
    return out


def _step(chain: ChainService, now: int) -> list[object]:
    block = chain.build_block(dev_key("validator"), now)
    assert block is not None
    return list(chain.apply(block).result.events)


def test_visits_trigger_a_report_that_misses_target_and_replay_agrees(tmp_path: Path) -> None:
    chain = _open(tmp_path / "a")
    ops, tech, terminal = dev_key("acme-ops"), dev_key("acme-tech"), dev_key("terminal")
    blocks = []
    chain.submit(make_tx(ops, CHAIN, 0, "contract.deploy", {"code": builtin_code("conversion_rate")}).encode())
    chain.submit(
        make_tx(ops, CHAIN, 1, "indicator.configure", {
            "merchant": "acme", "name": "conversion", "code": builtin_hash("conversion_rate"),
            "params": {}, "condition": {"every_visits": 100, "every_ms": 0},
            "target": {"value": "conversion_rate", "threshold": 30000, "scale": 6, "direction": "at_least"},
        }).encode()
    )
    campaigns = [{"name": "spring", "keywords": [{"text": "shoes", "match": "broad"}], "max_bid": 50,
                  "channels": ["search"], "daily_budget": 10000, "active": True}]
    chain.submit(make_tx(tech, CHAIN, 0, "market.update", {"merchant": "acme", "base_version": 0,
                                                          "campaigns": campaigns, "cause": ""}).encode())
    events = _step(chain, T0 + 1000)
    blocks.append(chain.store.block_bytes_at(1))
    assert any(isinstance(e, MarketingUpdated) for e in events)

    chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(100, 1, T0)}).encode())
    events = _step(chain, T0 + 2000)
    blocks.append(chain.store.block_bytes_at(2))
    reports = [e.report for e in events if isinstance(e, ReportWritten)]
    assert len(reports) == 1
    report = reports[0]
    assert report.ok and dict(report.values)["conversion_rate"] == 10000  # 1 order / 100 = 1%
    assert report.missed and report.merchant == "acme" and (report.from_seq, report.to_seq) == (0, 100)

    # A second node replaying the same blocks reaches the same state root at every height.
    other = _open(tmp_path / "b")
    for raw in blocks:
        assert raw is not None
        assert other.apply_bytes(raw) is not None
    assert other.head() == chain.head()
    chain.close()
    other.close()


def test_rejected_input_changes_nothing(tmp_path: Path) -> None:
    chain = _open(tmp_path / "a")
    before = chain.head()
    terminal = dev_key("terminal")
    # Wrong role: a terminal may not update marketing information.
    with pytest.raises(PermissionDenied):
        chain.submit(make_tx(terminal, CHAIN, 0, "market.update", {
            "merchant": "acme", "base_version": 0, "campaigns": [], "cause": ""}).encode())
    chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(3, 0, T0)}).encode())
    # A second transaction with a nonce already pending is refused at the door.
    with pytest.raises(NonceError):
        chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(2, 0, T0)}).encode())
    assert chain.head() == before
    assert chain.metrics.rejected.labels(reason="missing_role", where="rpc")._value.get() == 1
    assert chain.metrics.rejected.labels(reason="nonce_pending", where="rpc")._value.get() == 1
    chain.close()


def test_wrong_role_is_refused_at_submission_even_behind_pending_transactions(tmp_path: Path) -> None:
    """A transaction queued behind its sender's pending ones is still checked for its
    sender's role at the door (the block used to be the first to refuse it)."""
    chain = _open(tmp_path / "a")
    terminal, ops = dev_key("terminal"), dev_key("acme-ops")
    chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(3, 0, T0)}).encode())
    with pytest.raises(PermissionDenied, match="does not hold merchant-tech for 'acme'"):
        chain.submit(make_tx(terminal, CHAIN, 1, "market.update", {
            "merchant": "acme", "base_version": 0, "campaigns": [], "cause": ""}).encode())
    assert chain.metrics.rejected.labels(reason="missing_role", where="rpc")._value.get() == 1
    # Queued but allowed: its own role's kind; the rest of its checks wait for its block (a
    # configure of code that only the pending deploy stores).
    chain.submit(make_tx(ops, CHAIN, 0, "contract.deploy", {"code": builtin_code("conversion_rate")}).encode())
    chain.submit(make_tx(ops, CHAIN, 1, "indicator.configure", {
        "merchant": "acme", "name": "conversion", "code": builtin_hash("conversion_rate"), "params": {},
        "condition": {"every_visits": 10, "every_ms": 0}, "target": None}).encode())
    # ... but not for another merchant.
    with pytest.raises(PermissionDenied, match="not for 'globex'"):
        chain.submit(make_tx(ops, CHAIN, 2, "indicator.remove", {"merchant": "globex", "name": "x"}).encode())
    assert len(chain.mempool) == 3
    block = chain.build_block(dev_key("validator"), T0 + 1000)
    assert block is not None
    assert [r.status for r in chain.apply(block).result.receipts] == ["ok", "ok", "ok"]
    chain.close()


def test_a_platform_senders_queued_transaction_is_left_to_its_block(tmp_path: Path) -> None:
    """A platform member's pending governance may grant it the role its next transaction
    needs, so its queued transactions are not refused for their role at the door."""
    chain = _open(tmp_path / "a")
    platform = dev_key("platform")
    grant = make_tx(platform, CHAIN, 0, "role.grant", {"member": bytes(platform.address), "role": "merchant-tech:acme"})
    update = make_tx(platform, CHAIN, 1, "market.update", {
        "merchant": "acme", "base_version": 0, "campaigns": [], "cause": ""})
    chain.submit(grant.encode())
    chain.submit(update.encode())  # queued: platform lacks merchant-tech:acme until the grant
    block = chain.build_block(dev_key("validator"), T0 + 1000)
    assert block is not None
    assert [r.status for r in chain.apply(block).result.receipts] == ["ok", "ok"]
    chain.close()


def test_stale_pending_transactions_are_offered_for_reannouncement_once_per_period(tmp_path: Path) -> None:
    chain = _open(tmp_path / "a")
    stx = chain.submit(make_tx(dev_key("terminal"), CHAIN, 0, "visit.batch", {"visits": _visits(2, 0, T0)}).encode())
    assert chain.stale_pending(older_than=3600, limit=10) == []  # fresh: not due
    assert [t.txid for t in chain.stale_pending(older_than=0, limit=10)] == [stx.txid]
    assert chain.stale_pending(older_than=3600, limit=10) == []  # just announced
    _step(chain, T0 + 1000)
    assert chain.stale_pending(older_than=0, limit=10) == []  # committed: gone
    chain.close()


def test_report_fuel_is_counted_in_metrics(tmp_path: Path) -> None:
    chain = _open(tmp_path / "a")
    ops, terminal = dev_key("acme-ops"), dev_key("terminal")
    chain.submit(make_tx(ops, CHAIN, 0, "contract.deploy", {"code": builtin_code("conversion_rate")}).encode())
    chain.submit(make_tx(ops, CHAIN, 1, "indicator.configure", {
        "merchant": "acme", "name": "conversion", "code": builtin_hash("conversion_rate"), "params": {},
        "condition": {"every_visits": 10, "every_ms": 0}, "target": None}).encode())
    _step(chain, T0 + 1000)
    chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(10, 1, T0)}).encode())
    events = _step(chain, T0 + 2000)
    fuel = [e.fuel_used for e in events if isinstance(e, ReportWritten)]
    assert len(fuel) == 1 and fuel[0] > 0
    assert chain.metrics.contract_fuel._value.get() == fuel[0]
    chain.close()


def test_open_passes_the_configured_map_limits_to_the_store(tmp_path: Path) -> None:
    chain = ChainService.open(tmp_path, GENESIS, runtime=None, sync=False,
                              map_size=8 << 20, max_map_size=64 << 20)
    try:
        assert chain.store.sizer.ceiling == 64 << 20
        assert chain.store.env.info()["map_size"] == 8 << 20
    finally:
        chain.close()


async def test_the_block_rpc_answers_the_stored_bytes_and_their_hash(tmp_path: Path) -> None:
    from p2pmkt.node.api import ChainApi, EventHub

    chain = _open(tmp_path / "a")
    terminal = dev_key("terminal")
    chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(3, 1, T0)}).encode())
    block = chain.build_block(dev_key("validator"), T0 + 100)
    assert block is not None
    chain.apply(block)
    api = ChainApi(chain, EventHub(), peer_id="p", address=None)
    by_height = await api.block(height=1)
    assert by_height is not None
    assert (by_height.height, by_height.hash, by_height.block) == (1, block.hash, block.encode())
    by_hash = await api.block(hash=block.hash)
    assert by_hash == by_height
    assert await api.block(height=2) is None


def test_a_transaction_parked_behind_a_missing_nonce_expires_counted_and_the_ready_stay(tmp_path: Path) -> None:
    chain = _open(tmp_path / "a")
    terminal = dev_key("terminal")
    chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(2, 0, T0)}).encode())
    chain.submit(make_tx(terminal, CHAIN, 2, "visit.batch", {"visits": _visits(2, 0, T0)}).encode())
    assert chain.expire_parked() == 0  # nothing is old yet
    later = time.monotonic() + chain.mempool.ttl + 1
    assert chain.expire_parked(now=later) == 1  # nonce 2 waited out the ttl for nonce 1
    assert len(chain.mempool) == 1 and chain.pending_nonce(terminal.address) == 1
    assert chain.metrics.rejected.labels(reason="expired", where="mempool")._value.get() == 1
    chain.close()


def test_a_rejection_in_a_block_drops_the_senders_later_pending_txs_so_resending_duplicates_nothing(
    tmp_path: Path,
) -> None:
    """The ingest's case: nonce 1 (a merchant not on the chain) passes the door queued behind
    nonce 0 and is rejected in its block; nonce 2 arrived after that block was built. Its
    sender re-signs from the account nonce, as PROTOCOL.md says: the fixed nonce 1 and the
    same visits as nonce 2, batched anew. Kept, the old nonce 2 would commit right behind the
    re-signed nonce 1: those visits twice. Nonce 3, sent before the terminal could know, is
    refused rather than parked behind the gap."""
    chain = _open(tmp_path / "a")
    terminal = dev_key("terminal")
    bad = _visits(2, 0, T0 + 10)
    bad[1][3] = "nosuch"
    chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(2, 0, T0)}).encode())
    chain.submit(make_tx(terminal, CHAIN, 1, "visit.batch", {"visits": bad}).encode())
    block = chain.build_block(dev_key("validator"), T0 + 1000)
    assert block is not None
    later = make_tx(terminal, CHAIN, 2, "visit.batch", {"visits": _visits(2, 0, T0 + 20)})
    chain.submit(later.encode())  # queued behind 0 and 1, which are not committed yet
    receipts = chain.apply(block).result.receipts
    assert [(r.status, r.reason) for r in receipts] == [("ok", ""), ("rejected", "unknown_merchant")]
    assert later.txid not in chain.mempool and len(chain.mempool) == 0
    assert chain.pending_nonce(terminal.address) == 1
    assert chain.metrics.rejected.labels(reason="behind_rejected", where="mempool")._value.get() == 1
    # Still on its way when the block came: refused, naming the nonce to sign again from.
    with pytest.raises(NonceError, match=r"follows nonce 1, which block 1 rejected \(unknown_merchant; tx.get [0-9a-f]{64} says why\)") as err:
        chain.submit(make_tx(terminal, CHAIN, 3, "visit.batch", {"visits": _visits(2, 0, T0 + 30)}).encode())
    assert err.value.reason == "behind_rejected"
    assert chain.metrics.rejected.labels(reason="behind_rejected", where="rpc")._value.get() == 1

    # Re-sent from the rejected one on, batched anew: the fixed visits and nonce 2's in one.
    resent = make_tx(terminal, CHAIN, 1, "visit.batch",
                     {"visits": _visits(2, 0, T0 + 10) + _visits(2, 0, T0 + 20)})
    chain.submit(resent.encode())
    block = chain.build_block(dev_key("validator"), T0 + 2000)
    assert block is not None and [t.txid for t in block.txs] == [resent.txid]
    assert [r.status for r in chain.apply(block).result.receipts] == ["ok"]
    assert chain.pending_nonce(terminal.address) == 2 and len(chain.mempool) == 0
    chain.close()


async def test_a_node_remembers_when_it_applied_each_block_and_answers_it(tmp_path: Path) -> None:
    """Node-local wall time (``chain.block``'s ``applied_at``), never part of the chain."""
    from p2pmkt.node.api import ChainApi, EventHub

    chain = _open(tmp_path / "a")
    chain.submit(make_tx(dev_key("terminal"), CHAIN, 0, "visit.batch", {"visits": _visits(2, 0, T0)}).encode())
    before = int(time.time() * 1000)
    _step(chain, T0 + 1000)
    after = int(time.time() * 1000)
    record = await ChainApi(chain, EventHub(), peer_id="p", address=None).block(height=1)
    assert record is not None and record.applied_at is not None
    assert before <= record.applied_at <= after
    assert record.to_wire()["applied_at"] == record.applied_at
    replay = _open(tmp_path / "b")  # another node, another clock: same block, same state
    replay.apply(chain.store.block_at(1))  # type: ignore[arg-type]
    assert replay.head() == chain.head()
    chain.close()
    replay.close()


def test_a_time_triggered_report_gets_an_empty_block_when_no_transaction_comes(tmp_path: Path) -> None:
    """On an idle chain a report due by block time (every_ms, over visits that arrived)
    used to wait for the next transaction, however late: the leader makes no block without
    one. The block builder now makes an empty block once such a report is due, and only then."""
    chain = _open(tmp_path / "a")
    ops, terminal, validator = dev_key("acme-ops"), dev_key("terminal"), dev_key("validator")
    chain.submit(make_tx(ops, CHAIN, 0, "contract.deploy", {"code": builtin_code("conversion_rate")}).encode())
    chain.submit(make_tx(ops, CHAIN, 1, "indicator.configure", {
        "merchant": "acme", "name": "conversion", "code": builtin_hash("conversion_rate"), "params": {},
        "condition": {"every_visits": 1000, "every_ms": 60_000}, "target": None}).encode())
    _step(chain, T0 + 1000)  # configured at block time T0 + 1 s
    assert chain.build_block(validator, T0 + 90_000) is None, "no visits yet: an empty report would say nothing"

    chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(6, 1, T0)}).encode())
    assert not [e for e in _step(chain, T0 + 2000) if isinstance(e, ReportWritten)]
    assert chain.build_block(validator, T0 + 60_999) is None, "not due before 60 s of block time"
    block = chain.build_block(validator, T0 + 61_000)
    assert block is not None and block.txs == ()
    events = chain.apply(block).result.events
    (report,) = [e.report for e in events if isinstance(e, ReportWritten)]
    assert (report.trigger, report.from_seq, report.to_seq, report.time) == ("time", 0, 6, T0 + 61_000)
    assert chain.build_block(validator, T0 + 200_000) is None, "reported: nothing is due until new visits"
    chain.close()


def test_a_failed_report_is_logged_with_its_indicator_and_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing contract used to leave no trace in any node's log (only in market.reports and
    an unlabelled counter)."""
    import wasmtime

    code = bytes(wasmtime.wat2wasm((Path(__file__).parents[1] / "contracts/fixtures/negative_return.wat").read_text()))
    chain = _open(tmp_path / "a")
    ops, terminal = dev_key("acme-ops"), dev_key("terminal")
    chain.submit(make_tx(ops, CHAIN, 0, "contract.deploy", {"code": code}).encode())
    chain.submit(make_tx(ops, CHAIN, 1, "indicator.configure", {
        "merchant": "acme", "name": "broken", "code": hashlib.sha256(code).digest(), "params": {},
        "condition": {"every_visits": 10, "every_ms": 0}, "target": None}).encode())
    _step(chain, T0 + 1000)
    chain.submit(make_tx(terminal, CHAIN, 0, "visit.batch", {"visits": _visits(10, 1, T0)}).encode())
    with caplog.at_level(logging.WARNING, logger="p2pmkt.chain"):
        _step(chain, T0 + 2000)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("report_failed ")]
    assert lines == [f"report_failed report=acme/broken/0 height=2 error='contract_error: -42' "
                     f"code={hashlib.sha256(code).hexdigest()[:16]} fuel=24"], lines
    chain.close()
