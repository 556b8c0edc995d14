"""The store conformance suite against both backends (LMDB on a real tmp_path directory)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from p2pmkt.storage import LmdbStore, MemoryStore, Store
from p2pmkt.testing.conformance import STORE_CHECKS, StoreHarness, check_store


def _lmdb_harness(tmp_path: Path) -> StoreHarness:
    counter = itertools.count()

    def new() -> Store:
        return LmdbStore.open(tmp_path / f"store{next(counter)}", map_size=64 << 20)

    def reopen(store: Store) -> Store:
        assert isinstance(store, LmdbStore)
        store.close()
        return LmdbStore.open(store.path, map_size=64 << 20)

    return StoreHarness(new, reopen)


HARNESSES: dict[str, Callable[[Path], StoreHarness]] = {
    "memory": lambda _: StoreHarness(MemoryStore),
    "lmdb": _lmdb_harness,
}


@pytest.mark.parametrize("backend", sorted(HARNESSES))
@pytest.mark.parametrize("check", STORE_CHECKS, ids=[c.__name__ for c in STORE_CHECKS])
def test_store_conforms(
    backend: str, check: Callable[[StoreHarness], None], tmp_path: Path
) -> None:
    check(HARNESSES[backend](tmp_path))


def test_check_store_runs_every_check_on_memory() -> None:
    check_store(MemoryStore)
