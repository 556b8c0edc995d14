"""The node's merchant-tech agent over a real chain: ChainService on LMDB, the built-in
conversion contract, reports written by blocks, and the agent loop (:func:`run_agent`) the
node runs, submitting into the chain's pool.

* every report of the merchant reaches the rules, including one that met its target;
* cooldowns come from the chain: an agent restarted (on the store reopened) holds back a rule
  exactly as the agent that never stopped does;
* a rule whose indicator the merchant has not configured is logged with its file and line,
  and counted;
* after a block rejects one of its updates, its next decision takes the rejected nonce;
* when its key signed a transaction elsewhere meanwhile, its decision takes the next nonce.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from p2pmkt.agent import ProposedUpdate, load_rules
from p2pmkt.chain.dev import dev_genesis, dev_key
from p2pmkt.chain.tx import make_tx
from p2pmkt.contracts import RuntimeConfig, WasmRuntime
from p2pmkt.contracts.builtin import builtin_code, builtin_hash
from p2pmkt.market.events import ReportWritten
from p2pmkt.market.model import Report
from p2pmkt.market.store import get_marketing
from p2pmkt.node.chain import ChainService
from p2pmkt.node.workload import LocalSubmitter, MerchantAgent, run_agent

GENESIS = dev_genesis()
CHAIN = GENESIS.chain_id
T0 = GENESIS.genesis_time
OPS, TECH, TERMINAL = dev_key("acme-ops"), dev_key("acme-tech"), dev_key("terminal")
CAMPAIGN = {"name": "spring", "keywords": [{"text": "shoes", "match": "broad"}], "max_bid": 100,
            "channels": ["search"], "daily_budget": 10000, "active": True}


def _open(path: Path) -> ChainService:
    return ChainService.open(path, GENESIS, runtime=WasmRuntime(RuntimeConfig()), sync=False)


def _step(chain: ChainService, now: int) -> list[Report]:
    """Build and apply the next block at block time ``now``; the reports it wrote."""
    block = chain.build_block(dev_key("validator"), now)
    assert block is not None
    return [e.report for e in chain.apply(block).result.events if isinstance(e, ReportWritten)]


def _setup(chain: ChainService) -> None:
    """acme: the conversion indicator (every 100 visits, target at least 2 %), version 1."""
    chain.submit(make_tx(OPS, CHAIN, 0, "contract.deploy", {"code": builtin_code("conversion_rate")}).encode())
    chain.submit(make_tx(OPS, CHAIN, 1, "indicator.configure", {
        "merchant": "acme", "name": "conversion", "code": builtin_hash("conversion_rate"), "params": {},
        "condition": {"every_visits": 100, "every_ms": 0},
        "target": {"value": "conversion_rate", "threshold": 20000, "scale": 6, "direction": "at_least"},
    }).encode())
    chain.submit(make_tx(TECH, CHAIN, 0, "market.update", {
        "merchant": "acme", "base_version": 0, "campaigns": [CAMPAIGN], "cause": ""}).encode())
    assert _step(chain, T0 + 1000) == []


def _report(chain: ChainService, nonce: int, orders: int, now: int) -> Report:
    """100 visits with ``orders`` orders, committed at ``now``: the report they trigger."""
    visits = [[f"10.0.0.{i}", f"u{nonce}-{i}", now - 500 + i, "acme", "browser",
               "order" if i < orders else "view", "", 1999 if i < orders else 0] for i in range(100)]
    chain.submit(make_tx(TERMINAL, CHAIN, nonce, "visit.batch", {"visits": visits}).encode())
    (report,) = _step(chain, now)
    return report


async def _act(chain: ChainService, agent: MerchantAgent, *reports: Report) -> list[ProposedUpdate]:
    """Run the node's agent loop over ``reports``; the updates it submitted."""
    send, recv = trio.open_memory_channel[Report](len(reports))
    for report in reports:
        send.send_nowait(report)
    send.close()
    updates: list[ProposedUpdate] = []
    await run_agent(agent, recv, LocalSubmitter(chain), TECH, on_update=updates.append)
    return updates


MET_RULES = """\
merchant = "acme"

[[rule]]
name = "far-above-target"
indicator = "conversion"
above = 0.05
actions = [{ lower_budget_pct = 10, min_budget = 1000 }]

[[rule]]
name = "on-target"
indicator = "conversion"
when = "met"
actions = [{ add_keywords = ["best sellers"] }]

[[rule]]
name = "missed"
indicator = "conversion"
actions = [{ raise_bid_pct = 10, max_bid = 500 }]
"""


async def test_a_report_that_met_its_target_reaches_the_rules(tmp_path: Path) -> None:
    chain = _open(tmp_path / "chain")
    try:
        _setup(chain)
        report = _report(chain, 0, 10, T0 + 2000)  # 10 % against at least 2 %: met, above 5 %
        assert not report.missed and report.ok
        updates = await _act(chain, MerchantAgent("acme", load_rules(MET_RULES)), report)
        assert [u.fired for u in updates] == [("far-above-target", "on-target")]
        _step(chain, T0 + 3000)
        with chain.store.snapshot() as snap:
            info = get_marketing(snap, "acme")
        assert info is not None and (info.version, info.cause) == (2, report.id)
        (spring,) = info.campaigns
        assert spring.daily_budget == 9000 and spring.max_bid == 100  # the missed rule held still
        assert [k.text for k in spring.keywords] == ["shoes", "best sellers"]
    finally:
        chain.close()


COOLDOWN_RULES = """\
merchant = "acme"

[[rule]]
name = "low"
indicator = "conversion"
when = "missed"
cooldown_ms = 60000
actions = [{ raise_bid_pct = 10, max_bid = 1000 }]
"""


async def test_a_restarted_agent_keeps_the_cooldown_the_chain_records(tmp_path: Path) -> None:
    path = tmp_path / "chain"
    running = MerchantAgent("acme", load_rules(COOLDOWN_RULES))
    chain = _open(path)
    try:
        _setup(chain)
        first = _report(chain, 0, 1, T0 + 2000)  # 1 %: missed
        assert [u.fired for u in await _act(chain, running, first)] == [("low",)]
        _step(chain, T0 + 3000)  # the update commits: version 2, caused by the first report
        second = _report(chain, 1, 1, T0 + 12_000)  # 10 s later: "low" is cooling down
    finally:
        chain.close()

    chain = _open(path)  # the node restarts: a new agent, the same chain
    try:
        restarted = MerchantAgent("acme", load_rules(COOLDOWN_RULES))
        assert await _act(chain, restarted, second) == []
        assert await _act(chain, running, second) == []  # the same decision as the one that ran on
        assert len(chain.mempool) == 0
        assert restarted.cooldowns == running.cooldowns == {"low": first.time}

        third = _report(chain, 2, 1, T0 + 62_000)  # 60 s after the first: it may fire again
        assert [u.fired for u in await _act(chain, restarted, third)] == [("low",)]
        _step(chain, T0 + 63_000)
        with chain.store.snapshot() as snap:
            info = get_marketing(snap, "acme")
        assert info is not None and (info.version, info.cause) == (3, third.id)
        assert info.campaigns[0].max_bid == 121  # 100 -> 110 -> 121: twice, not three times
    finally:
        chain.close()


async def test_a_rule_on_an_unconfigured_indicator_is_logged_with_its_line_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules_file = tmp_path / "acme-rules.toml"
    rules_file.write_text(COOLDOWN_RULES + '\n[[rule]]\nname = "typo"\nindicator = "conversoin"\n'
                          'actions = [{ add_channel = "email" }]\n')
    chain = _open(tmp_path / "chain")
    counts: list[int] = []
    try:
        _setup(chain)
        report = _report(chain, 0, 1, T0 + 2000)
        agent = MerchantAgent("acme", load_rules(rules_file))
        send, recv = trio.open_memory_channel[Report](1)
        send.send_nowait(report)
        send.close()
        with caplog.at_level(logging.INFO, logger="p2pmkt.workload"):
            await run_agent(agent, recv, LocalSubmitter(chain), TECH, on_unconfigured=counts.append)
    finally:
        chain.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "agent_rule_unconfigured where=acme-rules.toml:12 rule=typo indicator=conversoin merchant=acme "
        "configured=conversion did_you_mean=conversion"
    ]  # logged once, at start, not again at the report
    assert counts == [1, 1]  # at start and at the report
    assert agent.unconfigured == ("typo",)


async def test_after_a_block_rejects_its_update_the_agent_signs_the_next_decision_at_that_nonce(
    tmp_path: Path,
) -> None:
    """The agent's key had two updates pending; the block applied the first and rejected the
    second (its base version was stale by then). The nodes then refuse the key's later nonces
    (``behind_rejected``); the agent's next decision takes the rejected nonce instead of being
    lost (and, before the nodes refused them, of parking every later update for 10 minutes)."""
    chain = _open(tmp_path / "chain")
    try:
        _setup(chain)  # acme at version 1; the tech key's nonce is 1
        sub = LocalSubmitter(chain)  # the agent's own submitter: its nonce count carries on
        update = {"merchant": "acme", "base_version": 1, "campaigns": [CAMPAIGN], "cause": ""}
        await sub.submit(TECH, "market.update", update)  # nonce 1: version 2
        await sub.submit(TECH, "market.update", update)  # nonce 2: queued, stale in its block
        block = chain.build_block(dev_key("validator"), T0 + 1500)
        assert block is not None
        receipts = chain.apply(block).result.receipts
        assert [(r.status, r.reason) for r in receipts] == [("ok", ""), ("rejected", "stale_version")]

        await _missed_report_updates_to(chain, sub, 3)
    finally:
        chain.close()


async def test_when_its_key_signed_elsewhere_meanwhile_the_agent_signs_its_decision_at_the_next_nonce(
    tmp_path: Path,
) -> None:
    """An operator used the agent's key from the command line (``--node`` signs with the node's
    own key), so the nonce the agent counted on is taken (``nonce_used``). The agent signs the
    same decision at the next free nonce instead of dropping it."""
    chain = _open(tmp_path / "chain")
    try:
        _setup(chain)  # acme at version 1; the tech key's nonce is 1
        sub = LocalSubmitter(chain)  # the agent's own submitter: its nonce count carries on
        update = {"merchant": "acme", "base_version": 1, "campaigns": [CAMPAIGN], "cause": ""}
        await sub.submit(TECH, "market.update", update)  # nonce 1: version 2; the agent counts 2 next
        _step(chain, T0 + 1500)
        # The operator's update, signed with the same key elsewhere, takes nonce 2: version 3.
        chain.submit(make_tx(TECH, CHAIN, 2, "market.update", {**update, "base_version": 2}).encode())
        _step(chain, T0 + 1700)
        await _missed_report_updates_to(chain, sub, 4)
    finally:
        chain.close()


async def _missed_report_updates_to(chain: ChainService, sub: LocalSubmitter, version: int) -> None:
    """A missed report goes to the agent on ``sub``; its rule fires and the update it signs
    commits as ``version``, caused by that report."""
    report = _report(chain, 0, 1, T0 + 2000)  # 1 %: missed
    send, recv = trio.open_memory_channel[Report](1)
    send.send_nowait(report)
    send.close()
    updates: list[ProposedUpdate] = []
    await run_agent(MerchantAgent("acme", load_rules(COOLDOWN_RULES)), recv, sub, TECH,
                    on_update=updates.append)
    assert [u.fired for u in updates] == [("low",)]
    _step(chain, T0 + 3000)
    with chain.store.snapshot() as snap:
        info = get_marketing(snap, "acme")
    assert info is not None and (info.version, info.cause) == (version, report.id)
