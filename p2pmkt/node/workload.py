"""The demo workload and the merchant-tech rules agent, over any way of submitting transactions.

Theory of operation
-------------------
Both the dev chain (everything in one process) and a testnet (a terminal node and
merchant-tech nodes in separate processes) run the same loop of SPEC flows 1–4:

* :func:`setup_demo` configures each demo merchant once: deploy the built-in conversion-rate
  contract, configure the ``conversion`` indicator with a reporting condition and a target,
  write version 1 of the marketing information and publish the rules file on chain.
* :func:`run_visit_stream` is the terminal: it asks the seeded :class:`~p2pmkt.demo.DemoWorld`
  for each merchant's visits under the merchant's *current* marketing information and submits
  them in ``visit.pack`` transactions (packed: see p2pmkt.market.packed), backing off when
  the node says it is busy.
* :class:`MerchantAgent` is the merchant-tech node's brain: for each committed report of its
  merchant (met or missed: the rules decide) it calls the pure :func:`p2pmkt.agent.decide`
  and, when rules fire, submits a signed ``market.update`` whose ``cause`` is the report. Its
  cooldown record is replayed from the merchant's update history on chain, never kept only
  in memory, so a restart changes no decision. :func:`run_agent` feeds it.

How transactions reach the chain is a :class:`Submitter`: :class:`LocalSubmitter` calls a
:class:`~p2pmkt.node.chain.ChainService` directly; the testnet uses one over the client.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from p2pmkt.agent import (
    PastUpdate,
    ProposedUpdate,
    ReportView,
    RuleSet,
    decide,
    load_rules,
    replay_cooldowns,
    unconfigured,
)
from p2pmkt.chain.tx import SignedTransaction, make_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.errors import Busy, InvalidTransaction, NonceError, P2pmktError
from p2pmkt.market.model import IndicatorSpec, MarketingInfo, Report
from p2pmkt.node.logs import kv

log = logging.getLogger("p2pmkt.workload")

DEMO_CONTRACT = "conversion_rate"
DEMO_COOLDOWN_MS = 10_000
"""Block-time cooldown of the demo's rules: short enough to watch the loop act in a minute."""
DEMO_VALUE = "conversion_rate"
NONCE_RETRIES = 3
"""Times the demo stream submits a pack whose nonce the node refused before it gives up."""


class Submitter(Protocol):
    """Signs and submits transactions; reads what the workload needs back."""

    async def submit(self, key: PrivateKey, kind: str, payload: dict[str, Any]) -> bytes:
        """Sign ``payload`` as ``kind`` with ``key`` (next nonce) and submit; returns the txid.

        Raises:
            Busy: the node cannot take it now (the caller retries later).
            RemoteError: the transaction was rejected.
        """
        ...

    async def marketing(self, merchant: str) -> MarketingInfo | None: ...

    async def indicator(self, merchant: str, name: str) -> IndicatorSpec | None: ...


class NonceBook:
    """Next nonce per key, asked of the chain once and advanced locally as we submit.

    Every submitter (in-process, node agent, remote client) keeps one; ``fetch`` is how it
    asks the chain for a key's next nonce counting pending transactions.
    """

    def __init__(self, fetch: Callable[[bytes], Awaitable[int]]) -> None:
        self._fetch = fetch
        self._next: dict[bytes, int] = {}

    async def take(self, address: bytes) -> int:
        n = self._next.get(address)
        if n is None:
            n = await self._fetch(address)
        self._next[address] = n + 1
        return n

    def forget(self, address: bytes) -> None:
        """Re-read from the chain next time (after a rejection left a gap)."""
        self._next.pop(address, None)


class LocalSubmitter:
    """A :class:`Submitter` into a ChainService in this process (dev chain, node agents, tests).

    By default a transaction is admitted straight into the chain's pool; a node's agents pass
    ``send`` (the node's RPC path) so that their transactions are also forwarded and gossiped.
    """

    def __init__(self, chain: Any, *, send: Callable[[SignedTransaction], Awaitable[bytes]] | None = None) -> None:
        self.chain = chain
        self._send = send

        async def fetch(address: bytes) -> int:
            return int(chain.pending_nonce(address))

        self.nonces = NonceBook(fetch)

    async def submit(self, key: PrivateKey, kind: str, payload: dict[str, Any]) -> bytes:
        nonce = await self.nonces.take(key.address)
        stx = make_tx(key, self.chain.genesis.chain_id, nonce, kind, payload)
        try:
            if self._send is not None:
                return await self._send(stx)
            self.chain.admit(stx, where="local")
        except P2pmktError:
            self.nonces.forget(key.address)
            raise
        await trio.lowlevel.checkpoint()
        return stx.txid

    async def marketing(self, merchant: str) -> MarketingInfo | None:
        from p2pmkt.market.store import get_marketing

        with self.chain.store.snapshot() as snap:
            return get_marketing(snap, merchant)

    async def indicator(self, merchant: str, name: str) -> IndicatorSpec | None:
        from p2pmkt.market.store import get_indicator

        with self.chain.store.snapshot() as snap:
            ind = get_indicator(snap, merchant, name)
        return None if ind is None or not ind.active else ind.spec

    async def indicators(self, merchant: str) -> tuple[str, ...]:
        """See :class:`AgentChain`."""
        from p2pmkt.market.store import active_indicators

        with self.chain.store.snapshot() as snap:
            return tuple(spec.name for spec in active_indicators(snap, merchant))

    async def history(self, merchant: str, after: int, upto: int) -> list[PastUpdate]:
        """See :class:`AgentChain`. One snapshot; the cause report's target is the one its
        indicator has now (stored reports do not keep it)."""
        from p2pmkt.market.model import parse_report_id
        from p2pmkt.market.store import get_indicator, get_marketing_version, get_report

        out: list[PastUpdate] = []
        with self.chain.store.snapshot() as snap:
            before = get_marketing_version(snap, merchant, after) if after > 0 else None
            for version in range(after + 1, upto + 1):
                info = get_marketing_version(snap, merchant, version)
                if info is None:
                    break
                if before is not None and info.cause:
                    _, indicator, n = parse_report_id(info.cause)
                    report = get_report(snap, merchant, indicator, n)
                    ind = get_indicator(snap, merchant, indicator)
                    if report is not None:
                        view = report_view(report, None if ind is None else ind.spec)
                        out.append(PastUpdate(before, info, view))
                before = info
        return out


async def submit_retrying(
    sub: Submitter, key: PrivateKey, kind: str, payload: dict[str, Any], *, patience: float = 30.0
) -> bytes:
    """Submit, waiting out back-pressure (``Busy``) for up to ``patience`` seconds."""
    delay = 0.02
    with trio.fail_after(patience):
        while True:
            try:
                return await sub.submit(key, kind, payload)
            except Busy:
                await trio.sleep(delay)  # back-pressure: the mempool drains at the next block
                delay = min(delay * 2, 0.5)


@dataclass(frozen=True, slots=True)
class DemoMerchant:
    merchant: str
    ops: PrivateKey
    tech: PrivateKey


async def setup_demo(
    sub: Submitter,
    merchants: Iterable[DemoMerchant],
    *,
    every_visits: int = 2000,
    every_ms: int = 5000,
) -> None:
    """Configure each merchant once (idempotent: skips what is already on chain)."""
    from p2pmkt.contracts.builtin import builtin_code, builtin_hash
    from p2pmkt.demo import INDICATOR, TARGETS, rules_toml, starting_campaigns

    code_hash = builtin_hash(DEMO_CONTRACT)
    for m in merchants:
        if await sub.indicator(m.merchant, INDICATOR) is None:
            # Each merchant deploys the code itself (stored once, by hash): its configure
            # then queues behind its own deploy instead of depending on another sender's.
            await submit_retrying(
                sub, m.ops, "contract.deploy", {"code": builtin_code(DEMO_CONTRACT)}
            )
            t = TARGETS[m.merchant]
            await submit_retrying(
                sub,
                m.ops,
                "indicator.configure",
                {
                    "merchant": m.merchant,
                    "name": INDICATOR,
                    "code": code_hash,
                    "params": {},
                    "condition": {"every_visits": every_visits, "every_ms": every_ms},
                    "target": {
                        "value": DEMO_VALUE,
                        "threshold": t.target.threshold,
                        "scale": t.scale,
                        "direction": t.target.direction,
                    },
                },
            )
        if await sub.marketing(m.merchant) is None:
            await submit_retrying(
                sub,
                m.tech,
                "market.update",
                {
                    "merchant": m.merchant,
                    "base_version": 0,
                    "campaigns": [c.to_wire() for c in starting_campaigns(m.merchant)],
                    "cause": "",
                },
            )
            await submit_retrying(
                sub,
                m.tech,
                "rules.publish",
                {
                    "merchant": m.merchant,
                    "rules": rules_toml(m.merchant, indicator=INDICATOR, cooldown_ms=DEMO_COOLDOWN_MS).encode(),
                },
            )


def calibrated_scale(
    merchants: Iterable[str], visits_per_second: float, *, at_ms: int | None = None
) -> float:
    """World scale that makes the demo merchants produce about ``visits_per_second`` in total
    at time ``at_ms`` (ms since the epoch; now by default), under their starting campaigns.

    The world's traffic swings by a third over the day (``p2pmkt.demo.world``), so the scale
    is worked out for the time the stream starts, from the model's expected rates (sampling
    a minute of visits at scale 1 was off by up to 20 %). Calibrated at a fixed time of day,
    as it was, a stream asked for 50,000 visits/s offered about 26,000 at 02:00 UTC.
    """
    from p2pmkt.demo import DemoWorld, starting_info

    world = DemoWorld(0)  # the expectation depends on no seed
    start = int(time.time() * 1000) if at_ms is None else at_ms
    per_second = sum(world.expected_rate(m, starting_info(m), start) for m in merchants)
    return visits_per_second / max(per_second, 1e-9)


async def run_visit_stream(
    terminals: Sequence[tuple[Submitter, PrivateKey]],
    merchants: list[str],
    *,
    visits_per_second: float,
    max_per_tx: int,
    tick: float = 0.1,
    seed: int = 7,
    counter: Callable[[int], Any] | None = None,
) -> None:
    """Submit the demo merchants' visits, tick by tick, until cancelled.

    ``terminals`` are the terminals the visits come from (say, one per web server): how each
    submits, and its key (a ``terminal`` member's). A generator task packs the next
    transactions while the terminals wait for the node to take their last one. Each terminal
    submits one transaction at a time, in nonce order: two of one key in flight could leave a
    nonce gap behind a refused one. Why several: one terminal's round trip (the node parsing
    and checking a 2,000-visit pack while its event loop also applies blocks: p50 14, p90 57
    ms) caps it near 40,000 visits/s however fast the network.
    """
    from p2pmkt.demo import DemoWorld
    from p2pmkt.market.packed import pack_visits

    start = int(time.time() * 1000)
    world = DemoWorld(seed, scale=calibrated_scale(merchants, visits_per_second, at_ms=start))
    infos: dict[str, MarketingInfo | None] = {}
    # Two packs ready at most: enough to hide one round trip, and what the node has not
    # taken stays here (back-pressure reaches the generator, nothing is dropped).
    ready, packs = trio.open_memory_channel[tuple[dict[str, Any], int]](2)

    async def generate() -> None:
        last_refresh = 0.0
        t = start
        step = int(tick * 1000)
        async with ready:
            while True:
                if time.monotonic() - last_refresh > 1.0:
                    for m in merchants:
                        infos[m] = await terminals[0][0].marketing(m)
                    last_refresh = time.monotonic()
                for m in merchants:
                    rows = world.session_rows(m, infos.get(m), t, step)
                    for i in range(0, len(rows), max_per_tx):
                        chunk = rows[i : i + max_per_tx]
                        await ready.send((pack_visits(chunk), len(chunk)))
                t += step
                # Keep visit time near wall time: sleep only when we are ahead of the clock.
                ahead = t / 1000 - time.time()
                await trio.sleep(max(ahead, 0))  # also lets the submitter run between ticks

    async def submit(
        sub: Submitter, terminal: PrivateKey, packs: trio.MemoryReceiveChannel[tuple[dict[str, Any], int]]
    ) -> None:
        async with packs:
            async for payload, n in packs:
                for attempt in range(NONCE_RETRIES):
                    try:
                        await submit_retrying(sub, terminal, "visit.pack", payload)
                        break
                    except NonceError as exc:
                        # Our view of the nonce went stale (the NonceBook re-reads it): the
                        # same visits again; dropped, said aloud, only if it keeps happening.
                        if attempt == NONCE_RETRIES - 1:
                            log.warning(kv("visit_pack_dropped", visits=n, reason=exc.reason,
                                           message=str(exc)))
                else:
                    continue
                if counter is not None:
                    counter(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(generate)
        async with packs:
            for sub, terminal in terminals:
                nursery.start_soon(submit, sub, terminal, packs.clone())


class AgentChain(Submitter, Protocol):
    """A :class:`Submitter` that also reads what the agent needs of committed state."""

    async def indicators(self, merchant: str) -> tuple[str, ...]:
        """Names of the merchant's configured (active) indicators, sorted."""
        ...

    async def history(self, merchant: str, after: int, upto: int) -> list[PastUpdate]:
        """The automatic updates (versions with a cause) among versions ``after+1 .. upto``
        of the merchant's marketing information, oldest first."""
        ...


HISTORY_BATCH = 500
"""Versions of the marketing history the agent reads per snapshot while it catches up."""


@dataclass
class MerchantAgent:
    """The merchant-tech node's rules agent for one merchant (SPEC flow 4).

    Its cooldown record is a function of the chain (:mod:`p2pmkt.agent.cooldown`):
    :meth:`catch_up` folds in the automatic updates up to a version, so that an agent
    restarted at any point makes the decisions one that never stopped would have made.

    Attributes:
        merchant: whose reports it acts on.
        rules: the merchant's mapping rules.
        cooldowns: block time (ms) each rule last fired, replayed from the chain.
        seen_version: the marketing-information version folded into ``cooldowns``.
        unconfigured: names of the rules whose indicator the chain does not configure for
            the merchant, as last checked (:func:`check_indicators`).
    """

    merchant: str
    rules: RuleSet
    cooldowns: dict[str, int] = field(default_factory=dict)
    seen_version: int = 0
    unconfigured: tuple[str, ...] = ()

    @classmethod
    def from_text(cls, merchant: str, text: str) -> MerchantAgent:
        return cls(merchant, load_rules(text, merchant=merchant))

    def catch_up(self, history: Iterable[PastUpdate], upto: int) -> None:
        """Fold ``history`` (the automatic updates after :attr:`seen_version` up to version
        ``upto``, oldest first) into the cooldown record."""
        self.cooldowns = replay_cooldowns(self.rules, history, self.cooldowns)
        self.seen_version = max(self.seen_version, upto)

    def decide(self, report: Report, spec: IndicatorSpec | None, current: MarketingInfo) -> ProposedUpdate | None:
        """The update to submit for ``report`` under ``current``, or None. Pure: the cooldown
        record is read, not written (the update, once committed, is folded in by
        :meth:`catch_up` like any other)."""
        if report.merchant != self.merchant:
            return None
        return decide(self.rules, report_view(report, spec), current, self.cooldowns, report.time)


def report_view(report: Report, spec: IndicatorSpec | None) -> ReportView:
    """Map the chain's report (and its indicator's target) onto the agent's view."""
    return ReportView.from_report(report, spec.target if spec is not None else None)


async def catch_up(agent: MerchantAgent, chain: AgentChain, version: int) -> None:
    """Fold the merchant's history up to ``version`` into the agent's cooldown record,
    :data:`HISTORY_BATCH` versions per read. Rules without a cooldown need no history."""
    if agent.rules.max_cooldown_ms == 0:
        agent.seen_version = max(agent.seen_version, version)
        return
    while agent.seen_version < version:
        upto = min(agent.seen_version + HISTORY_BATCH, version)
        agent.catch_up(await chain.history(agent.merchant, agent.seen_version, upto), upto)
        await trio.lowlevel.checkpoint()


async def check_indicators(
    agent: MerchantAgent, chain: AgentChain, on_unconfigured: Callable[[int], Any] | None = None
) -> None:
    """Log, with its file and line, each rule whose indicator the chain does not configure for
    the merchant (an error when it becomes so, a note when that is mended), and hand the
    count to ``on_unconfigured`` (the node's gauge)."""
    configured = await chain.indicators(agent.merchant)
    dead = unconfigured(agent.rules, configured)
    names = tuple(r.name for r in dead)
    if on_unconfigured is not None:
        on_unconfigured(len(names))
    if names != agent.unconfigured:
        for rule in dead:
            if rule.name in agent.unconfigured:
                continue
            near = difflib.get_close_matches(rule.indicator, configured, n=1)
            log.error(kv(
                "agent_rule_unconfigured", where=f"{agent.rules.origin}:{rule.where}", rule=rule.name,
                indicator=rule.indicator, merchant=agent.merchant,
                configured=",".join(configured) or "none",
                **({"did_you_mean": near[0]} if near else {}),
            ))
        for name in agent.unconfigured:
            if name not in names:
                log.info(kv("agent_rule_configured", rule=name, merchant=agent.merchant))
        agent.unconfigured = names


async def run_agent(
    agent: MerchantAgent,
    reports: trio.MemoryReceiveChannel[Report],
    sub: AgentChain,
    tech: PrivateKey,
    *,
    on_update: Callable[[ProposedUpdate], Any] | None = None,
    on_unconfigured: Callable[[int], Any] | None = None,
) -> None:
    """Act on each committed report of the agent's merchant, in order, until the channel closes.

    Every report of the merchant goes to the rules, whether it met its target or not: the
    rules' conditions decide (``when = "met"``, ``above = ...`` fire on reports that met it).
    Before each decision the agent folds the merchant's new history into its cooldown record
    and checks its rules' indicators against the chain (also once at start).
    """
    current = await sub.marketing(agent.merchant)
    if current is not None:
        await catch_up(agent, sub, current.version)
    await check_indicators(agent, sub, on_unconfigured)
    async for report in reports:
        if report.merchant != agent.merchant:
            continue
        await check_indicators(agent, sub, on_unconfigured)
        current = await sub.marketing(agent.merchant)
        if current is None:
            continue
        await catch_up(agent, sub, current.version)
        spec = await sub.indicator(report.merchant, report.indicator)
        update = agent.decide(report, spec, current)
        if update is None:
            continue
        payload = {
            "merchant": update.merchant,
            "base_version": update.base_version,
            "campaigns": [c.to_wire() for c in update.campaigns],
            "cause": update.cause,
        }
        try:
            try:
                await submit_retrying(sub, tech, "market.update", payload)
            except NonceError as exc:
                if exc.reason not in ("behind_rejected", "nonce_used"):
                    raise
                # The nonce the agent counted on is not the chain's next one: a block rejected
                # an earlier transaction of this key (an update based on a version another had
                # moved on: the nodes then refuse its later nonces), or the key signed
                # elsewhere meanwhile (an operator's `--node` command signs with the node's
                # key). This decision, made on the current version, takes the chain's next
                # nonce (the submitter asks for it again after any refusal); should that
                # other transaction have changed the version, the block rejects this one.
                await submit_retrying(sub, tech, "market.update", payload)
        except InvalidTransaction as exc:
            # A concurrent update moved the version on; the next report decides again.
            log.info(kv("agent_update_rejected", merchant=agent.merchant, reason=exc.reason))
            continue
        log.info(
            kv(
                "agent_update",
                merchant=agent.merchant,
                cause=update.cause,
                fired=",".join(update.fired),
                changes="; ".join(update.changes),
            )
        )
        if on_update is not None:
            on_update(update)


async def run_local_demo(
    chain: Any,
    reports: trio.MemoryReceiveChannel[Report],
    *,
    visits_per_second: float = 2000,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """The dev chain's demo: dev keys for acme and globex, agents in-process, visits streaming."""
    from p2pmkt.chain.dev import dev_key
    from p2pmkt.demo import rules_toml

    sub = LocalSubmitter(chain)
    merchants = [
        DemoMerchant(m, dev_key(f"{m}-ops"), dev_key(f"{m}-tech")) for m in ("acme", "globex")
    ]
    await setup_demo(sub, merchants)
    task_status.started()
    async with trio.open_nursery() as nursery:
        fanout: list[trio.MemorySendChannel[Report]] = []
        for m in merchants:
            send, recv = trio.open_memory_channel[Report](256)
            fanout.append(send)
            agent = MerchantAgent.from_text(m.merchant, rules_toml(m.merchant, cooldown_ms=DEMO_COOLDOWN_MS))
            nursery.start_soon(run_agent, agent, recv, sub, m.tech)
        nursery.start_soon(
            lambda: run_visit_stream(
                [(sub, dev_key("terminal"))],
                [m.merchant for m in merchants],
                visits_per_second=visits_per_second,
                max_per_tx=chain.genesis.params.max_visits_per_tx,
            )
        )
        async for report in reports:
            for send in fanout:
                send.send_nowait(report)
