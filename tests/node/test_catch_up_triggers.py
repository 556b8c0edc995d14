"""When a node fetches blocks from its peers (the node's heads and catch-up tasks, over fakes
of the network and the Raft application: the decisions are what is tested here; the real
sync runs in the network and chaos tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from p2pmkt.errors import StorageFull
from p2pmkt.node.node import CATCH_UP_GAP, _catch_up, _heads_in


@dataclass
class _Head:
    height: int


@dataclass
class _Chain:
    height: int

    def head(self) -> _Head:
        return _Head(self.height)


@dataclass
class _App:
    chain: _Chain
    target_height: int = 0
    offered: list[Any] = field(default_factory=list)

    def wants(self) -> tuple[int, int] | None:
        return (self.chain.height + 1, self.target_height) if self.target_height > self.chain.height else None

    def offer(self, blocks: list[Any]) -> bool:
        self.offered.append(blocks)
        return True


class _Gossip:
    def __init__(self, heights: list[int]) -> None:
        self._heights = heights

    @property
    async def heads(self) -> AsyncIterator[_Head]:  # type: ignore[misc]
        for h in self._heights:
            yield _Head(h)


class _Net:
    def __init__(self, heights: list[int] = ()) -> None:  # type: ignore[assignment]
        self.gossip = _Gossip(list(heights))

    def connected_peers(self) -> list[str]:
        return ["peer"]


@pytest.mark.parametrize(("in_raft", "target"), [(True, 0), (False, 10 + CATCH_UP_GAP)])
async def test_a_member_outside_raft_follows_every_head_a_raft_member_only_a_gap(in_raft: bool, target: int) -> None:
    # A non-validator member gets blocks only by fetching them: it stayed up to the gap
    # behind (at height 0 until the chain was that long).
    app = _App(_Chain(10))
    await _heads_in(_Net([11, 12, 10 + CATCH_UP_GAP]), app, lambda: in_raft)  # none beyond the gap
    assert app.target_height == target
    app = _App(_Chain(10))
    await _heads_in(_Net([11 + CATCH_UP_GAP]), app, lambda: in_raft)
    assert app.target_height == 11 + CATCH_UP_GAP  # a real gap: both fetch


async def test_a_full_store_during_catch_up_stops_the_node_instead_of_retrying_silently() -> None:
    app = _App(_Chain(10), target_height=20)

    class _Members:
        def is_member(self, peer: str) -> bool:
            return True

    async def fetch(*args: Any) -> Any:
        raise StorageFull("LMDB map of data is full at its ceiling of 2MiB; raise the ceiling")

    with pytest.raises(StorageFull, match="full at its ceiling"), trio.fail_after(10):
        await _catch_up(_Net(), app, _Members(), fetch, 100)


@pytest.mark.parametrize("leaderless", [True, False])
async def test_without_a_known_leader_the_node_asks_its_peers_for_blocks_beyond_its_head(leaderless: bool) -> None:
    """A node restarted with an empty store knows only the genesis membership: it refused the
    Raft messages and heads of a leader added later, so nothing ever set a catch-up target
    and it stayed at height 0. While it knows no leader it now asks its member peers."""
    app = _App(_Chain(0))
    asked: list[tuple[int, int]] = []

    class _Members:
        def is_member(self, peer: str) -> bool:
            return True

    async def fetch(net: Any, peer: str, start: int, end: int) -> Any:
        asked.append((start, end))
        return [f"block {h}" for h in range(start, start + 3)], start + 2

    with trio.move_on_after(1.0):  # the task runs forever; a second covers a probe
        await _catch_up(_Net(), app, _Members(), fetch, 100, lambda: leaderless)
    if leaderless:
        assert asked[0] == (1, 100) and app.offered[0] == ["block 1", "block 2", "block 3"]
    else:
        assert asked == [] and app.offered == []
