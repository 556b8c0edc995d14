"""Fault injection under load on a 4-node testnet of real node processes (issue 8).

The short tests (in ``make test``): SIGKILL of the leader, then SIGSTOP/SIGCONT of a node (the
in-node fallback for a partition); and the in-node faults: a node whose LMDB map fills up
(it must stop cleanly and, restarted with a higher ceiling, catch up), then a leader whose
clock jumps an hour ahead and an hour behind (block times must stay strictly increasing and the
chain must keep committing). With ``P2PMKT_CHAOS_FULL=1``: a real partition of the
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

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.chaos.cluster import Cluster  # noqa: E402
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
