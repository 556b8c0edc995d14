"""Fault injection under load on a 4-node testnet of real node processes (issue 8).

The short tests (in ``make test``): a follower keeps a transaction alive through a frozen
leader (last in this file); SIGKILL of the leader, then SIGSTOP/SIGCONT of a node (the in-node
fallback for a partition); and the in-node faults: a node whose LMDB map fills up
(it must stop cleanly and, restarted with a higher ceiling, catch up), then a leader whose
clock jumps an hour ahead and an hour behind (block times must stay strictly increasing and the
chain must keep committing); Raft latency and loss, on the leader's messages and then on
every node's (the in-node stand-in for ``tc netem``, which this kernel lacks). With ``P2PMKT_CHAOS_FULL=1``: a real partition of the
leader and of a follower (each node in its own network namespace, when run as root), and a
run with every process fault kind.
Afterwards every transaction acknowledged as committed to a client must be in the final
chain, at the acknowledged height, on every node; all nodes must agree on every block hash;
no height may ever have had two blocks; the isolated minority must commit nothing. The long
run is ``python tools/chaos/run.py --minutes N``; ``P2PMKT_CHAOS_FULL=1`` adds a test with
every fault kind.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from p2pmkt.chain.genesis import load_genesis  # noqa: E402
from p2pmkt.client import open_client  # noqa: E402
from p2pmkt.node.node import STALE_AFTER  # noqa: E402
from tools.chaos.cluster import Cluster, submitter_key, wait_height, wait_leader  # noqa: E402
from tools.chaos.load import presign  # noqa: E402
from tools.chaos.netns import available as netns_available  # noqa: E402
from tools.chaos.scenario import CLOCK_JUMP_MS, run_scenario  # noqa: E402

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    # py-libp2p leaves the TCP socket of a client connection unclosed when the node at the
    # other end is killed or frozen mid-request (reported in issue 8); it is garbage, not a
    # failure of what these tests check.
    pytest.mark.filterwarnings(r"ignore:Exception ignored in. <socket\.socket:pytest.PytestUnraisableExceptionWarning"),
]

if TYPE_CHECKING:
    from tools.chaos.scenario import Report

NETNS = netns_available()


async def _run(tmp_path: Path, faults: list[str], seed: int, *, netns: bool = False,
               small_map: str | None = None, rate: float = 40) -> Report:
    with Cluster(root=tmp_path / "net", submitters=4, rules=False, netns=netns) as cl:
        if small_map is not None:
            # Genesis and the first blocks fit in 256 KiB; under load the map grows once, to
            # its 384 KiB ceiling, and is full again a few blocks later.
            cl.set_storage(small_map, map_size="256KiB", max_map_size="384KiB")
        cl.start()
        report = await run_scenario(cl, faults=faults, senders=4, rate=rate, seed=seed, drain=30,
                                    log=lambda _: None)
        tails = "\n".join(f"--- {n}\n{cl.log_tail(n)}" for n in cl.names) if not report.ok() else ""
    assert report.violations == [], tails
    assert report.acked > 0
    assert [f["fault"] for f in report.faults] == faults
    for f in report.faults:
        assert f["majority_progressed"], f
        assert f.get("minority_committed", 0) == 0, f
    gc.collect()  # finalize leaked client sockets while this module's warning filter applies
    return report


async def test_a_slow_lossy_leader_and_a_lossy_network_lose_nothing(tmp_path: Path) -> None:
    """Raft latency and loss through the in-node hook (``p2pmkt.net.faults``; this kernel has
    no ``tc netem``): first the leader's messages (200 ms, 30 % lost), then every node's
    (50 ms, 10 %). ``_run`` checked that the chain kept committing through each and the
    invariants after; here, that the hook was in force: the nodes logged taking it."""
    report = await _run(tmp_path, ["slow-leader", "lossy-net"], seed=12)
    slow, lossy = report.faults
    assert (slow["delay_ms"], slow["loss"], lossy["delay_ms"], lossy["loss"]) == (200, 0.3, 50, 0.1)
    assert slow["in_force"] and lossy["in_force"], report.faults


FULL = pytest.mark.skipif(not os.environ.get("P2PMKT_CHAOS_FULL"), reason="long: set P2PMKT_CHAOS_FULL=1")


async def test_leader_killed_then_node_frozen_loses_nothing(tmp_path: Path) -> None:
    await _run(tmp_path, ["kill-leader", "pause"], seed=8)


async def test_full_map_stops_a_node_cleanly_and_a_clock_jump_breaks_no_block_order(
    tmp_path: Path,
) -> None:
    """One cluster for both in-node faults (each needs a running, loaded network; one start-up
    keeps ``make test`` short). ``_run`` already checked the invariants, the clean stop (exit
    status 2, the StorageFull advice in the log, nothing half-written: the node resumes from
    its store) and the catch-up after the restart with ``--max-map-size`` raised."""
    report = await _run(tmp_path, ["map-full", "clock-jump"], seed=11, small_map="node4", rate=60)
    full, jump = report.faults
    assert full["exit_status"] == 2 and full["grew"] and full["clean_stop"] and full["caught_up"], full
    times = report.block_times
    # The jump reached the chain: a block after the forward jump is stamped about an hour ahead.
    after = times[jump["forward_from_height"]:]
    assert max(after) >= jump["jump_started_ms"] + CLOCK_JUMP_MS - 60_000, (jump, after[:10])
    assert len(times) > jump["backward_from_height"] + 2, "the chain kept committing after both jumps"


@FULL
@pytest.mark.skipif(not NETNS, reason="network namespaces need root and `ip netns`")
async def test_partitioned_leader_and_follower_commit_nothing(tmp_path: Path) -> None:
    await _run(tmp_path, ["cut-leader", "cut"], seed=9, netns=True)


@FULL
async def test_every_process_fault_kind_loses_nothing(tmp_path: Path) -> None:
    await _run(tmp_path, ["kill", "kill-leader", "pause", "kill"], seed=10)


async def test_a_follower_brings_its_transaction_to_the_next_leader_when_the_leader_freezes(
    tmp_path: Path,
) -> None:
    """A transaction a follower accepted commits although the leader froze with it in flight.

    The leader is frozen (SIGSTOP) before the transaction is submitted to a follower, so the
    follower's forwarding call goes to a leader that never answers; the client does not
    resubmit. The follower must bring the transaction to the next leader by itself (its
    forwarding gives up on a changed leader, gossips what was in flight, sends the new leader
    its pool), well before the stale-pool sweep would pass it on again (``STALE_AFTER``)."""
    with Cluster(root=tmp_path / "net", submitters=1, rules=False) as cl:
        cl.start()
        leader = await wait_leader(cl, timeout=60)
        follower = next(n for n in cl.names if n != leader)
        assert cl.root is not None
        chain_id = load_genesis(cl.root / "genesis.json").chain_id
        stx = presign([submitter_key(0)], chain_id, 1)[0][0]
        cl.pause(leader)
        try:
            async with open_client(cl.addr(follower)) as c:
                await c.submit_tx(stx)  # pooled at the follower; its forward hangs
                t0 = trio.current_time()
                status = await c.wait_tx_committed(stx.txid, timeout=30)
                took = trio.current_time() - t0
        finally:
            cl.resume(leader)
        assert status.status == "committed", status
        assert took < STALE_AFTER - 2, f"committed after {took:.1f} s: only the stale sweep moved it"
        # The old leader, thawed, follows the new one to the same block.
        assert status.height is not None
        await wait_height(cl.addr(leader), status.height, timeout=60)


async def test_the_leaders_own_clients_transaction_outlives_the_leader_through_its_backup(
    tmp_path: Path,
) -> None:
    """A transaction the leader pooled from its own client, not yet in a block, commits after
    the leader is killed, the client resubmitting nothing.

    The leader hands what its clients submit to one follower, its backup (the first voter
    after it in address order). The transaction has nonce 1 while nonce 0 is nowhere yet, so
    no block can take it: it must be pending at the backup, and after the leader is killed
    and nonce 0 is submitted to another follower, the backup must bring it to the next leader
    (or put it in a block itself), well before the stale-pool sweep would (``STALE_AFTER``)."""
    with Cluster(root=tmp_path / "net", submitters=1, rules=False) as cl:
        cl.start()
        leader = await wait_leader(cl, timeout=60)
        address = {e.name: e.address for e in cl.net.nodes}
        others = sorted((address[n], n) for n in cl.names if n != leader)
        backup = next((n for a, n in others if a > address[leader]), others[0][1])
        other = next(n for _, n in others if n != backup)
        assert cl.root is not None
        tx0, tx1 = presign([submitter_key(0)], load_genesis(cl.root / "genesis.json").chain_id, 2)[0]
        async with open_client(cl.addr(leader)) as c:
            await c.submit_tx(tx1)  # a future nonce: pooled, in no block
        async with open_client(cl.addr(backup)) as b:
            with trio.fail_after(10):
                while await b.tx(tx1.txid) is None:  # noqa: ASYNC110 (another process: polled, with a deadline)
                    await trio.sleep(0.05)
        cl.kill(leader)
        async with open_client(cl.addr(other)) as c:
            await c.submit_tx(tx0)
            t0 = trio.current_time()
            status = await c.wait_tx_committed(tx1.txid, timeout=30)
            took = trio.current_time() - t0
        assert status.status == "committed", status
        assert took < STALE_AFTER - 2, f"committed after {took:.1f} s: only the stale sweep moved it"
