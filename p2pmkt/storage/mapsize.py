"""An LMDB map that grows on demand up to a ceiling, shared by the chain store and the Raft log.

Theory of operation
-------------------
An LMDB environment is a memory map of fixed size. A write transaction that needs a page past
it fails with ``MDB_MAP_FULL`` and is aborted whole, so nothing of it is stored. Every write of
an environment opened by :func:`open_env` goes through :meth:`MapSizer.write`, which runs the
transaction body and, when the map is full:

1. grows the map (doubling, at least :data:`GROW_MIN`, clamped to the *ceiling*) with
   ``Environment.set_mapsize``. LMDB allows that only while no transaction is active in the
   process: the failed write transaction is already aborted, and the store is used from one
   thread (the node's trio thread); a write on another thread does not grow the map;
2. runs the **whole** body again in a fresh transaction (bodies have no side effects outside
   their transaction), growing again if it still does not fit;
3. at the ceiling raises :class:`~p2pmkt.errors.StorageFull` with what to raise and where. A
   node propagates it and stops (``p2pmkt node run`` exits with status 2); restarted with a
   higher ceiling it resumes from its last committed block: the failed write left no trace.

py-lmdb invalidates every transaction and cursor of the environment on ``set_mapsize`` (they
report "closed" afterwards instead of reading unmapped memory). Listeners registered with
:meth:`MapSizer.on_resize` drop what they cache (the store's head snapshot); a snapshot a
caller holds across a growth fails with :class:`~p2pmkt.errors.StorageError` and is taken
again.

A map that grew is recorded by LMDB in the environment, so :func:`open_env` starts a reopened
store at ``max(configured map size, size it had grown to)``.

Limits come from the caller (a node passes its config's ``[storage]`` section through
``ChainService.open``); a limit it leaves out is :data:`~p2pmkt.config.DEFAULT_MAP_SIZE` or
:data:`~p2pmkt.config.DEFAULT_MAX_MAP_SIZE` (:func:`resolve_limits`). There is no
process-wide setting: a store's limits follow from its opener's arguments alone.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from p2pmkt.config import DEFAULT_MAP_SIZE, DEFAULT_MAX_MAP_SIZE
from p2pmkt.errors import StorageError, StorageFull

log = logging.getLogger("p2pmkt.storage")

T = TypeVar("T")

GROW_MIN = 1 << 20
"""Smallest growth step, so that a tiny map does not grow a page at a time."""


@dataclass(frozen=True, slots=True)
class MapLimits:
    """``size``: the map a store opens with; ``ceiling``: how far it may grow on demand."""

    size: int = DEFAULT_MAP_SIZE
    ceiling: int = DEFAULT_MAX_MAP_SIZE


def resolve_limits(map_size: int | None, max_map_size: int | None) -> MapLimits:
    """The limits a store opens with: explicit values win over ``DEFAULT_MAP_SIZE`` /
    ``DEFAULT_MAX_MAP_SIZE``; the ceiling is never below the size."""
    size = DEFAULT_MAP_SIZE if map_size is None else map_size
    ceiling = DEFAULT_MAX_MAP_SIZE if max_map_size is None else max_map_size
    return MapLimits(size, max(size, ceiling))


def human(n: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return f"{n} bytes"


class MapSizer:
    """Runs write transactions on one environment, growing its map up to ``ceiling``."""

    def __init__(self, env: Any, path: Path, ceiling: int) -> None:
        self._env: Callable[[], Any] = weakref.ref(env)
        self.path = path
        self.ceiling = ceiling
        self.grown = 0
        """How many times the map grew (for tests and metrics)."""
        self._owner = threading.get_ident()
        self._listeners: list[Callable[[], None]] = []

    @property
    def size(self) -> int:
        env = self._env()
        if env is None:
            raise StorageError(f"store at {self.path} is closed", reason="closed")
        size: int = env.info()["map_size"]
        return size

    def on_resize(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every growth (every read transaction is invalid then)."""
        self._listeners.append(listener)

    def write(self, what: str, body: Callable[[Any], T]) -> T:
        """``body(txn)`` in one write transaction, committed; grown and retried when full.

        Raises:
            StorageFull: the map is at its ceiling (or cannot grow on this thread); nothing
                of ``body`` was written.
            StorageError: any other LMDB failure (and whatever ``body`` raises itself).
        """
        env = self._env()
        if env is None:
            raise StorageError(f"store at {self.path} is closed", reason="closed")
        while True:
            try:
                with env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapFullError as exc:
                if not self._grow(env, what):
                    raise self._full(env, what) from exc
            except lmdb.Error as exc:
                raise StorageError(f"LMDB failed while {what} at {self.path}: {exc}") from exc

    def _grow(self, env: Any, what: str) -> bool:
        size = env.info()["map_size"]
        if size >= self.ceiling or threading.get_ident() != self._owner:
            return False
        new = min(self.ceiling, max(2 * size, size + GROW_MIN))
        try:
            env.set_mapsize(new)
        except lmdb.Error as exc:
            raise StorageError(f"cannot grow the LMDB map of {self.path} to {new} bytes: {exc}") from exc
        self.grown += 1
        log.warning("lmdb_map_grown path=%s from=%d to=%d ceiling=%d while=%r",
                    self.path, size, new, self.ceiling, what)
        for listener in self._listeners:
            listener()
        return True

    def _full(self, env: Any, what: str) -> StorageFull:
        size = env.info()["map_size"]
        if size < self.ceiling:
            why = (f"is full at {human(size)} while {what} and cannot grow from this thread "
                   f"(ceiling {human(self.ceiling)})")
        else:
            why = f"is full at its ceiling of {human(self.ceiling)} while {what}"
        return StorageFull(
            f"LMDB map of {self.path} {why}; nothing of this write was stored. Raise the "
            f"ceiling (node config [storage] max_map_size, or `p2pmkt node run --max-map-size "
            f"{human(2 * max(size, self.ceiling))}`) and restart: the node resumes from its last "
            f"committed block."
        )


_SIZERS: weakref.WeakKeyDictionary[Any, MapSizer] = weakref.WeakKeyDictionary()


def open_env(path: Path, limits: MapLimits, **kwargs: Any) -> tuple[Any, MapSizer]:
    """``lmdb.open(path, **kwargs)`` at ``max(limits.size, size the map had grown to)``, with
    its :class:`MapSizer` (registered: :func:`sizer_for` finds it from the environment).

    Raises:
        lmdb.Error: as ``lmdb.open`` (the caller maps it).
    """
    fresh = not (path / "data.mdb").exists()
    env = lmdb.open(str(path), map_size=0, **kwargs)  # 0: the size recorded in the file
    try:
        if fresh or env.info()["map_size"] < limits.size:
            env.set_mapsize(limits.size)  # no transaction exists yet
    except BaseException:
        env.close()
        raise
    sizer = MapSizer(env, path, max(limits.ceiling, env.info()["map_size"]))
    _SIZERS[env] = sizer
    return env, sizer


def sizer_for(env: Any) -> MapSizer:
    """The sizer :func:`open_env` registered for ``env``; for an environment opened some
    other way, one that never grows it."""
    sizer = _SIZERS.get(env)
    if sizer is None:
        sizer = MapSizer(env, Path(env.path()), int(env.info()["map_size"]))
    return sizer


__all__ = [
    "GROW_MIN",
    "MapLimits",
    "MapSizer",
    "open_env",
    "resolve_limits",
    "sizer_for",
]
