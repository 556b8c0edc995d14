"""Randomized fault simulation over many seeds (3- and 5-node clusters).

Each seed: loss, duplication, delay/reordering, partitions, crash-restarts losing unsynced
state, snapshots + compaction and membership changes, with Election Safety, Log Matching,
Leader Completeness and State Machine Safety checked after every step, then a liveness check.
A failure names its seed; replay it with ``python tools/raft_soak.py --seed N -v``.
"""

from __future__ import annotations

import pytest

from p2pmkt.testing.sim import SimConfig, run_simulation

SEEDS = 1000
CHUNK = 50
STEPS = 120  # short runs per seed keep the suite fast; tools/raft_soak.py runs longer ones


def config_for(seed: int) -> SimConfig:
    return SimConfig(nodes=5 if seed % 2 else 3, steps=STEPS)


@pytest.mark.chaos
@pytest.mark.parametrize("start", range(0, SEEDS, CHUNK), ids=lambda s: f"seeds{s}-{s + CHUNK - 1}")
def test_random_faults_keep_raft_safe_and_live(start: int) -> None:
    for seed in range(start, start + CHUNK):
        run_simulation(seed, config_for(seed))


def test_same_seed_replays_identically() -> None:
    a = run_simulation(7, config_for(7))
    b = run_simulation(7, config_for(7))
    assert [n.applied_data for n in a.nodes.values()] == [n.applied_data for n in b.nodes.values()]
