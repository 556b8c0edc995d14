"""``p2pmkt dev``: a single-node chain in one process (like ``anvil`` or ``geth --dev``).

The dev chain is a ChainService whose only validator is the documented dev key
``validator`` (see :mod:`p2pmkt.chain.dev`): no Raft, no peers. Every ``block_ms`` it seals a
block when transactions are pending and prints one line per block. With ``--demo`` the demo
workload (:mod:`p2pmkt.node.workload`) runs in the same process and the merchant-tech agents
react to reports, so the whole marketing loop is visible on one screen. Unless ``--no-net``,
the node also serves the client wire protocol, so ``p2pmkt console --connect`` attaches to it.

Data lives in ``--dir`` (default ``.p2pmkt-dev``); a restart resumes where it stopped,
``--reset`` wipes it first.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import trio

from p2pmkt.chain.dev import DEV_ACCOUNTS, dev_genesis, dev_key
from p2pmkt.chain.genesis import ChainParams
from p2pmkt.market.events import MarketingUpdated, ReportWritten, VisitsAppended
from p2pmkt.market.model import Report
from p2pmkt.node.api import EventHub, events_of
from p2pmkt.node.chain import Applied, ChainService
from p2pmkt.node.logs import setup_logging
from p2pmkt.node.signals import run_until_signal

log = logging.getLogger("p2pmkt.dev")


def block_line(applied: Applied) -> str:
    """One console line per block: height, txs, visits, reports, updates, root, apply time."""
    r = applied.result
    visits = sum(e.count for e in r.events if isinstance(e, VisitsAppended))
    reports = [e.report for e in r.events if isinstance(e, ReportWritten)]
    updates = [e.info for e in r.events if isinstance(e, MarketingUpdated)]
    rejected = sum(1 for x in r.receipts if x.status != "ok")
    parts = [
        f"block {applied.head.height:>6}",
        f"txs {len(r.receipts):>4}" + (f" ({rejected} rejected)" if rejected else ""),
        f"visits {visits:>6}",
        f"root {r.state_root.hex()[:12]}",
        f"{applied.seconds * 1000:6.1f} ms",
    ]
    for rep in reports:
        vals = (
            ", ".join(f"{k}={v / 10**rep.scale:g}" for k, v in rep.values) if rep.ok else rep.error
        )
        parts.append(
            f"report {rep.merchant}/{rep.indicator}#{rep.n} [{vals}]"
            + (" MISSED" if rep.missed else "")
        )
    for info in updates:
        parts.append(
            f"market {info.merchant} v{info.version}"
            + (f" (cause {info.cause})" if info.cause else "")
        )
    return "  ".join(parts)


async def produce_blocks(
    chain: ChainService,
    *,
    block_ms: int,
    on_block: Callable[[Applied], Any],
    max_blocks: int = 0,
    clock: Callable[[], float] = time.time,
) -> None:
    """Seal a block every ``block_ms`` when transactions are pending; returns after ``max_blocks``."""
    key = dev_key("validator")
    made = 0
    while not max_blocks or made < max_blocks:
        await trio.sleep(block_ms / 1000)  # pacing between blocks, not a readiness wait
        block = chain.build_block(key, int(clock() * 1000))
        if block is None:
            continue
        applied = chain.apply(block)
        made += 1
        on_block(applied)


def open_dev_chain(data_dir: Path, *, reset: bool = False, block_ms: int = 100) -> ChainService:
    """Open the dev chain's store in ``data_dir`` (wiped first with ``reset``)."""
    from p2pmkt.contracts import RuntimeConfig, WasmRuntime

    if reset and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    genesis = dev_genesis(ChainParams(block_interval_ms=block_ms))
    runtime = WasmRuntime(
        RuntimeConfig(
            max_code_bytes=genesis.params.contract_max_code_bytes, cache_dir=data_dir / "wasm-cache"
        )
    )
    return ChainService.open(data_dir, genesis, runtime=runtime)


def run_dev_main(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    """Entry point of ``p2pmkt dev``; returns the exit code."""
    setup_logging("warning")
    chain = open_dev_chain(args.dir, reset=args.reset, block_ms=args.block_ms)
    head = chain.head()
    print(
        f"p2pmkt dev chain {chain.genesis.chain_id}: data in {args.dir}, "
        f"resuming at height {head.height}"
        if head.height
        else f"p2pmkt dev chain {chain.genesis.chain_id}: new chain in {args.dir}",
        file=out,
    )
    print(
        "dev accounts (public keys! never use them elsewhere): "
        + ", ".join(name for name, _ in DEV_ACCOUNTS)
        + "; `p2pmkt key dev NAME FILE` writes one to sign with (--key FILE)",
        file=out,
    )

    reports_send, reports_recv = trio.open_memory_channel[Report](1024)
    hub = EventHub()

    def on_block(applied: Applied) -> None:
        print(block_line(applied), file=out, flush=True)
        hub.publish(events_of(applied))
        for event in applied.result.events:
            if isinstance(event, ReportWritten):
                try:
                    reports_send.send_nowait(event.report)
                except trio.WouldBlock:
                    log.warning("demo agents are behind; a report was not delivered to them")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            if not args.no_net:
                from p2pmkt.node.services import serve_dev_rpc

                await nursery.start(serve_dev_rpc, chain, args.listen, out, hub)
            if args.demo:
                from p2pmkt.node.workload import run_local_demo

                nursery.start_soon(run_local_demo, chain, reports_recv)
            await produce_blocks(
                chain, block_ms=args.block_ms, on_block=on_block, max_blocks=args.blocks
            )
            nursery.cancel_scope.cancel()

    try:
        if trio.run(run_until_signal, main):
            print("stopped", file=out)
    finally:
        chain.close()
    return 0
