"""ChainApp: Raft entries → blocks, identically on every node, also when catching up.

The fork found by the catch-up benchmark: after a snapshot at height F, the log held a stale
re-proposal of a height <= F; a restored node that kept "the last entry per height" applied
it instead of the committed block. These tests replay such logs against real ChainServices.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pmkt.chain.block import build_block
from p2pmkt.chain.dev import dev_genesis, dev_key
from p2pmkt.chain.tx import make_tx
from p2pmkt.errors import StorageFull
from p2pmkt.node.chain import ChainService
from p2pmkt.node.raft_app import ChainApp
from p2pmkt.raft import Entry, EntryKind, Snapshot
from p2pmkt.raft.messages import SnapshotMeta
from p2pmkt.types import LogIndex, Term
from p2pmkt.wire.cbor import encode

G = dev_genesis()


def _chain(path: Path) -> ChainService:
    return ChainService.open(path, G, runtime=None, sync=False)


def _visit_tx(nonce: int, n: int) -> bytes:
    visits = [[f"10.0.0.{i}", "", G.genesis_time + i, "acme", "app", "view", "", 0] for i in range(n)]
    return make_tx(dev_key("terminal"), G.chain_id, nonce, "visit.batch", {"visits": visits}).encode()


def _leader_log(path: Path) -> tuple[ChainService, list[bytes]]:
    """A leader's committed log: b1, b2, a stale re-proposal b2' (same parent), b3."""
    leader = _chain(path)
    key = dev_key("validator")
    log: list[bytes] = []
    for height in (1, 2):
        leader.submit(_visit_tx(height - 1, 3))
        block = leader.build_block(key, G.genesis_time + 1000 * height)
        assert block is not None
        if height == 2:
            head = leader.head()
            stale = build_block(key, chain=G.chain_id, height=2, parent=head.hash, state=head.state_root,
                                time=head.time + 7, txs=[])
        leader.apply(block)
        log.append(block.encode())
    log.append(stale.encode())
    leader.submit(_visit_tx(2, 3))
    b3 = leader.build_block(key, G.genesis_time + 4000)
    assert b3 is not None
    leader.apply(b3)
    log.append(b3.encode())
    return leader, log


def _entries(log: list[bytes], first: int = 1) -> list[Entry]:
    return [Entry(Term(1), LogIndex(first + i), EntryKind.NORMAL, data) for i, data in enumerate(log)]


def test_up_to_date_node_applies_the_first_entry_per_height_and_skips_stale_ones(tmp_path: Path) -> None:
    leader, log = _leader_log(tmp_path / "leader")
    follower = _chain(tmp_path / "f")
    ChainApp(follower, on_applied=lambda a: None).apply(_entries(log))
    assert follower.head() == leader.head()


def test_restored_node_ignores_re_proposals_below_the_snapshot_and_catches_up(tmp_path: Path) -> None:
    leader, log = _leader_log(tmp_path / "leader")
    node = _chain(tmp_path / "n")
    app = ChainApp(node, on_applied=lambda a: None)
    # Snapshot taken right after b2 (log index 2, chain height 2); the log after it holds
    # the stale b2' (index 3) and b3 (index 4).
    app.restore(Snapshot(SnapshotMeta(LogIndex(2), Term(1)), encode({"height": 2, "hash": b""})))
    app.apply(_entries(log[2:], first=3))
    assert node.head().height == 0
    assert app.wants() == (1, 2)
    b1, b2 = leader.store.block_at(1), leader.store.block_at(2)
    assert b1 is not None and b2 is not None
    # A peer answers with part of the range: the stale b2' must not fill the gap.
    assert app.offer([b1]) == 1
    assert node.head().height == 1 and app.wants() == (2, 2)
    assert app.offer([b2]) == 2  # b2 from the peer, then b3 from the log
    assert node.head() == leader.head()
    assert app.wants() is None


def test_catch_up_stops_on_a_full_disk_instead_of_skipping_the_block(tmp_path: Path) -> None:
    leader, _log = _leader_log(tmp_path / "leader")
    node = _chain(tmp_path / "n")
    app = ChainApp(node, on_applied=lambda a: None)
    b1 = leader.store.block_at(1)
    assert b1 is not None

    def full(block: object) -> None:
        raise StorageFull("LMDB map is full at its ceiling", reason="storage_full")

    node.apply = full  # type: ignore[method-assign]
    with pytest.raises(StorageFull):
        app.offer([b1])
