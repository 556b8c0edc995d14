"""p2pmkt.storage: blocks, indexes and chain state on disk (LMDB) or in memory.

Synchronous disk I/O, no trio: the node decides per call site whether to run a call in a
worker thread. Start at :mod:`p2pmkt.storage.api` for the contract, :mod:`.schema` for the
on-disk layout. ``p2pmkt.storage.raftlog`` (the durable Raft log) shares an
:class:`LmdbStore`'s environment through :attr:`LmdbStore.env`.
"""

from p2pmkt.storage.api import BlockStore, CommittedState, Head, StateSnapshot, Store, TxRecord
from p2pmkt.storage.lmdb import DEFAULT_MAP_SIZE, LmdbSnapshot, LmdbStore
from p2pmkt.storage.memory import MemorySnapshot, MemoryStore

__all__ = [
    "DEFAULT_MAP_SIZE",
    "BlockStore",
    "CommittedState",
    "Head",
    "LmdbSnapshot",
    "LmdbStore",
    "MemorySnapshot",
    "MemoryStore",
    "StateSnapshot",
    "Store",
    "TxRecord",
]
