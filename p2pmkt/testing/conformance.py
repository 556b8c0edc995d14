"""Conformance suite for :class:`p2pmkt.storage.api.Store` backends.

A backend is done when :func:`check_store` passes against it. The same checks run against
:class:`~p2pmkt.storage.memory.MemoryStore` and :class:`~p2pmkt.storage.lmdb.LmdbStore`
(``tests/storage/test_conformance.py``), so the in-memory twin that node tests use cannot drift
from the disk store. Each check gets a fresh, empty store from the factory; checks that need a
restart also get ``reopen`` (close a store and open the same data again) and are skipped for
backends without persistence.

Checks raise :class:`AssertionError` with a message that names the broken rule; they do not
import pytest, so other test runners (and the benchmark) can use them too. Blocks are built
with real signatures (:func:`~p2pmkt.chain.block.build_block`, :func:`~p2pmkt.chain.tx.make_tx`)
and state writes are hand-built :class:`~p2pmkt.chain.state.WriteBatch`-es: storage commits what
the batch says and must not depend on how blocks are applied.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from p2pmkt.chain.block import Block, build_block
from p2pmkt.chain.state import Receipt, WriteBatch, next_state_root
from p2pmkt.chain.tx import SignedTransaction, make_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.errors import StorageError
from p2pmkt.storage.api import Head, Store
from p2pmkt.types import ZERO_HASH, Hash32

CHAIN = "conformance"
GENESIS_HASH = Hash32(bytes(range(32)))
GENESIS_TIME = 1_764_028_800_000

_PROPOSER = PrivateKey.from_seed("conformance/proposer")
_SENDER = PrivateKey.from_seed("conformance/sender")

Writes = Mapping[str, Mapping[bytes, bytes | None]]


@dataclass(frozen=True, slots=True)
class StoreHarness:
    """How the suite gets stores: ``new()`` an empty one, ``reopen(s)`` closes ``s`` and opens
    its data again (None for a backend without persistence)."""

    new: Callable[[], Store]
    reopen: Callable[[Store], Store] | None = None


# -- builders -------------------------------------------------------------------------------


def tx(nonce: int, note: str = "") -> SignedTransaction:
    """A signed transaction of the suite's sender (its content is irrelevant to storage)."""
    return make_tx(_SENDER, CHAIN, nonce, "test.note", {"note": note})


def batch_of(store: Store, writes: Writes) -> WriteBatch:
    batch = WriteBatch(store)
    for table, entries in writes.items():
        for key, value in entries.items():
            if value is None:
                batch.delete(table, key)
            else:
                batch.put(table, key, value)
    return batch


def init(store: Store, writes: Writes | None = None) -> Head:
    """Genesis with ``writes`` (default: one ``meta`` key)."""
    batch = batch_of(store, writes or {"meta": {b"genesis": b"g"}})
    root = next_state_root(GENESIS_HASH, batch)
    return store.init_genesis(batch, GENESIS_HASH, state_root=root, time=GENESIS_TIME)


def next_block(store: Store, txs: Iterable[SignedTransaction] = ()) -> Block:
    """A correctly signed block extending ``store``'s head (not committed)."""
    head = store.head()
    assert head is not None, "next_block needs a genesis"
    return build_block(
        _PROPOSER,
        chain=CHAIN,
        height=head.height + 1,
        parent=head.hash if head.height else ZERO_HASH,
        state=head.state_root,
        time=head.time + 100,
        txs=list(txs),
    )


def commit(
    store: Store,
    writes: Writes | None = None,
    txs: Iterable[SignedTransaction] = (),
    statuses: Iterable[str] | None = None,
) -> tuple[Block, Head]:
    """Build and commit the next block; receipts are ``ok`` unless ``statuses`` says."""
    block = next_block(store, txs)
    status_list = list(statuses) if statuses is not None else ["ok"] * len(block.txs)
    receipts = [
        Receipt(t.txid, s, "" if s == "ok" else "bad_nonce", "" if s == "ok" else f"rejected #{i}")
        for i, (t, s) in enumerate(zip(block.txs, status_list))
    ]
    batch = batch_of(store, writes or {})
    head = store.head()
    assert head is not None
    new_head = store.commit_block(block, batch, receipts, next_state_root(head.state_root, batch))
    return block, new_head


def _raises(exc_type: type[BaseException], pattern: str, fn: Callable[[], Any]) -> BaseException:
    try:
        fn()
    except exc_type as exc:
        if not re.search(pattern, str(exc)):
            raise AssertionError(
                f"{exc_type.__name__} message {str(exc)!r} !~ {pattern!r}"
            ) from exc
        return exc
    raise AssertionError(f"expected {exc_type.__name__} matching {pattern!r}")


def _table(store: Any, table: str) -> list[tuple[bytes, bytes]]:
    return list(store.scan(table))


def _fingerprint(store: Store) -> tuple[Any, ...]:
    """Everything observable, to assert that a refused call changed nothing."""
    head = store.head()
    top = 0 if head is None else head.height
    return (
        head,
        [b.encode() for b in store.blocks_range(0, top + 1)],
        {t: _table(store, t) for t in ("meta", "accounts", "visits")},
    )


# -- checks ---------------------------------------------------------------------------------


def check_empty_store_has_no_head(h: StoreHarness) -> None:
    with h.new() as store:
        assert store.head() is None
        assert store.genesis_hash() is None
        assert store.block_at(1) is None and store.block_by_hash(GENESIS_HASH) is None
        assert store.blocks_range(0, 10) == []
        assert store.tx_status(bytes(32)) is None
        assert store.get("meta", b"x") is None and _table(store, "visits") == []


def check_commit_before_genesis_is_refused(h: StoreHarness) -> None:
    with h.new() as store:
        block = build_block(
            _PROPOSER, chain=CHAIN, height=1, parent=ZERO_HASH, state=ZERO_HASH, time=1, txs=[]
        )
        exc = _raises(
            StorageError,
            r"^store has no genesis yet",
            lambda: store.commit_block(block, WriteBatch(store), [], ZERO_HASH),
        )
        assert getattr(exc, "reason", None) == "no_genesis"
        assert store.head() is None


def check_genesis_is_height_zero_and_written_once(h: StoreHarness) -> None:
    with h.new() as store:
        batch = batch_of(store, {"meta": {b"genesis": b"g"}, "accounts": {b"a" * 20: b"n0"}})
        root = Hash32(b"\x07" * 32)
        for bad_hash, bad_root, pattern in (
            (b"short", root, r"^genesis hash must be 32 bytes, got 5$"),
            (GENESIS_HASH, b"\x07", r"^state root must be 32 bytes, got 1$"),
        ):
            _raises(
                StorageError,
                pattern,
                functools.partial(
                    store.init_genesis,
                    batch,
                    Hash32(bad_hash),
                    state_root=Hash32(bad_root),
                    time=GENESIS_TIME,
                ),
            )
            assert store.head() is None and store.get("meta", b"genesis") is None
        head = store.init_genesis(batch, GENESIS_HASH, state_root=root, time=GENESIS_TIME)
        assert head == store.head()
        assert (head.height, head.hash, head.time, head.state_root) == (
            0,
            GENESIS_HASH,
            GENESIS_TIME,
            root,
        )
        assert store.genesis_hash() == GENESIS_HASH
        assert store.get("accounts", b"a" * 20) == b"n0"
        assert store.block_at(0) is None, "height 0 has no block"
        exc = _raises(
            StorageError,
            r"^store already holds a chain \(head at height 0\)",
            lambda: store.init_genesis(WriteBatch(store), GENESIS_HASH, state_root=root, time=0),
        )
        assert getattr(exc, "reason", None) == "genesis_exists"


def check_blocks_are_indexed_by_height_and_hash(h: StoreHarness) -> None:
    with h.new() as store:
        init(store)
        blocks = [commit(store, txs=[tx(i)])[0] for i in range(5)]
        head = store.head()
        assert head is not None and head.height == 5 and head.hash == blocks[-1].hash
        assert head.time == blocks[-1].header.time
        for block in blocks:
            got = store.block_at(block.height)
            assert got is not None and got.encode() == block.encode() and got.hash == block.hash
            assert store.block_bytes_at(block.height) == block.encode()
            by_hash = store.block_by_hash(block.hash)
            assert by_hash is not None and by_hash.height == block.height
        for missing in (-1, 0, 6, 2**40):
            assert store.block_at(missing) is None and store.block_bytes_at(missing) is None
        assert store.block_by_hash(b"\x00" * 32) is None and store.block_by_hash(b"short") is None
        assert [b.height for b in store.blocks_range(2, 4)] == [2, 3], "half-open range"
        assert [b.height for b in store.blocks_range(-5, 100)] == [1, 2, 3, 4, 5], "clamped"
        assert store.blocks_range(4, 4) == [] and store.blocks_range(7, 9) == []


def check_state_writes_deletes_and_ordered_scans(h: StoreHarness) -> None:
    with h.new() as store:
        init(store, {"visits": {b"m\x00" + i.to_bytes(8, "big"): b"v%d" % i for i in range(5)}})
        commit(
            store,
            {
                "visits": {
                    b"m\x00" + (1).to_bytes(8, "big"): None,  # delete
                    b"m\x00" + (3).to_bytes(8, "big"): b"v3'",  # overwrite
                    b"m\x00" + (9).to_bytes(8, "big"): b"v9",  # append
                    b"a\x00" + (0).to_bytes(8, "big"): b"a0",  # before the others
                    b"zz": None,
                },  # delete of nothing
                "accounts": {b"x" * 20: b"nonce1"},
            },
        )
        keys = [k for k, _ in store.scan("visits")]
        assert keys == sorted(keys), "scan ascends"
        assert [(k[-1], v) for k, v in store.scan("visits", b"m\x00", b"m\x01")] == [
            (0, b"v0"),
            (2, b"v2"),
            (3, b"v3'"),
            (4, b"v4"),
            (9, b"v9"),
        ]
        assert [v for _, v in store.scan("visits", b"m\x00" + (3).to_bytes(8, "big"))] == [
            b"v3'",
            b"v4",
            b"v9",
        ], "start is inclusive, end None runs to the table's end"
        assert list(store.scan("visits", b"n", b"o")) == []
        assert store.get("visits", b"m\x00" + (1).to_bytes(8, "big")) is None
        assert store.get("accounts", b"x" * 20) == b"nonce1"
        assert store.get("accounts", b"") is None
        for bad in (lambda: store.get("nope", b"k"), lambda: store.scan("nope")):
            _raises(KeyError, "unknown state table 'nope'", bad)
        # A batch over the store reads through it, and merges its own writes into scans.
        batch = WriteBatch(store)
        batch.put("visits", b"m\x00" + (5).to_bytes(8, "big"), b"v5")
        assert [k[-1] for k, _ in batch.scan("visits", b"m\x00", b"m\x01")] == [0, 2, 3, 4, 5, 9]


def check_tx_index_records_outcomes(h: StoreHarness) -> None:
    with h.new() as store:
        init(store)
        t0, t1, t2 = tx(0), tx(1), tx(2)
        commit(store, txs=[t0, t1], statuses=["ok", "rejected"])
        rec = store.tx_status(t0.txid)
        assert rec is not None and (rec.height, rec.index, rec.status) == (1, 0, "ok")
        assert rec.txid == t0.txid and rec.reason == "" and rec.message == ""
        rec = store.tx_status(t1.txid)
        assert rec is not None and (rec.height, rec.index, rec.status) == (1, 1, "rejected")
        assert (rec.reason, rec.message) == ("bad_nonce", "rejected #1")
        assert store.tx_status(t2.txid) is None and store.tx_status(b"x") is None
        # A replay of an included tx is rejected later: the success stays on record.
        commit(store, txs=[t0], statuses=["rejected"])
        rec = store.tx_status(t0.txid)
        assert rec is not None and (rec.height, rec.status) == (1, "ok"), "ok is never overwritten"
        # A rejected tx that succeeds later is recorded as the success.
        commit(store, txs=[t2, t1], statuses=["rejected", "ok"])
        rec = store.tx_status(t1.txid)
        assert rec is not None and (rec.height, rec.index, rec.status) == (3, 1, "ok")
        # Twice in one block: the first success wins over the replay after it.
        t3 = tx(3)
        commit(store, txs=[t3, t3], statuses=["ok", "rejected"])
        rec = store.tx_status(t3.txid)
        assert rec is not None and (rec.height, rec.index, rec.status) == (4, 0, "ok")
        rec = store.tx_status(t2.txid)
        assert rec is not None and (rec.height, rec.status) == (3, "rejected")


def check_refused_commits_change_nothing(h: StoreHarness) -> None:
    with h.new() as store:
        init(store)
        commit(store, {"accounts": {b"a" * 20: b"1"}}, txs=[tx(0)])
        before = _fingerprint(store)
        head = store.head()
        assert head is not None
        good = next_block(store, [tx(1)])
        ok = [Receipt(t.txid, "ok") for t in good.txs]
        batch = batch_of(store, {"accounts": {b"a" * 20: b"2", b"b" * 20: b"1"}})
        root = next_state_root(head.state_root, batch)
        skip = build_block(
            _PROPOSER,
            chain=CHAIN,
            height=3,
            parent=head.hash,
            state=head.state_root,
            time=head.time + 1,
            txs=[],
        )
        repeat = store.block_at(1)
        assert repeat is not None
        orphan = build_block(
            _PROPOSER,
            chain=CHAIN,
            height=2,
            parent=Hash32(b"\x01" * 32),
            state=head.state_root,
            time=head.time + 1,
            txs=[],
        )
        cases: list[tuple[str, str, Callable[[], Any]]] = [
            (
                r"^block 3 does not extend the head at height 1",
                "not_next_block",
                lambda: store.commit_block(skip, batch, [], root),
            ),
            (
                r"^block 1 does not extend the head at height 1",
                "not_next_block",
                lambda: store.commit_block(repeat, batch, ok, root),
            ),
            (
                r"^block 2's parent 0x0101",
                "not_next_block",
                lambda: store.commit_block(orphan, batch, [], root),
            ),
            (
                r"^block 2 has 1 transactions but 0 receipts",
                "bad_receipts",
                lambda: store.commit_block(good, batch, [], root),
            ),
            (
                r"^receipt 0 of block 2 is for another transaction",
                "bad_receipts",
                lambda: store.commit_block(good, batch, [Receipt(tx(9).txid, "ok")], root),
            ),
            (
                r"^receipt 0 of block 2 has status 'maybe'",
                "bad_receipts",
                lambda: store.commit_block(good, batch, [Receipt(good.txs[0].txid, "maybe")], root),
            ),
            (
                r"^state key of 0 bytes in table 'visits'",
                "bad_key",
                lambda: store.commit_block(
                    good, batch_of(store, {"visits": {b"": b"x"}}), ok, root
                ),
            ),
            (
                r"^state key of 512 bytes in table 'accounts'",
                "bad_key",
                lambda: store.commit_block(
                    good,
                    batch_of(store, {"accounts": {b"k" * 512: b"x", b"c" * 20: b"1"}}),
                    ok,
                    root,
                ),
            ),
        ]
        for pattern, reason, call in cases:
            exc = _raises(StorageError, pattern, call)
            assert getattr(exc, "reason", None) == reason, (pattern, getattr(exc, "reason", None))
            assert _fingerprint(store) == before, f"refused commit changed the store: {pattern}"
            assert store.tx_status(good.txs[0].txid) is None
        store.commit_block(good, batch, ok, root)  # the store is still usable
        assert store.get("accounts", b"b" * 20) == b"1"


def check_snapshots_are_isolated_from_later_commits(h: StoreHarness) -> None:
    with h.new() as store:
        init(store, {"visits": {b"k%d" % i: b"old" for i in range(4)}})
        snap = store.snapshot()
        running = store.scan("visits")  # started before the commit, consumed after
        assert next(running) == (b"k0", b"old")
        commit(store, {"visits": {b"k1": b"new", b"k2": None, b"k9": b"new"}})
        assert list(running) == [(b"k1", b"old"), (b"k2", b"old"), (b"k3", b"old")]
        with snap:
            assert snap.get("visits", b"k1") == b"old" and snap.get("visits", b"k9") is None
            assert [k for k, _ in snap.scan("visits")] == [b"k0", b"k1", b"k2", b"k3"]
        _raises(StorageError, r"^state snapshot is closed", lambda: snap.get("visits", b"k1"))
        _raises(StorageError, r"^state snapshot is closed", lambda: snap.scan("visits"))
        snap.close()  # idempotent
        assert store.get("visits", b"k1") == b"new" and store.get("visits", b"k2") is None
        assert [k for k, _ in store.scan("visits")] == [b"k0", b"k1", b"k3", b"k9"]
        with store.snapshot() as fresh:
            iterator = fresh.scan("visits")
            assert next(iterator) == (b"k0", b"old")
        _raises(StorageError, r"state snapshot is closed", lambda: next(iterator))


def check_closed_store_refuses_calls(h: StoreHarness) -> None:
    store = h.new()
    init(store)
    store.close()
    store.close()  # idempotent
    calls: list[Callable[[], Any]] = [
        store.head,
        lambda: store.get("meta", b"genesis"),
        lambda: store.block_at(1),
        lambda: store.tx_status(bytes(32)),
        store.snapshot,
        store.genesis_hash,
        lambda: store.commit_block(next_block_unchecked(), WriteBatch(store), [], ZERO_HASH),
    ]
    for call in calls:
        exc = _raises(StorageError, r"is closed$", call)
        assert getattr(exc, "reason", None) == "closed"


def next_block_unchecked() -> Block:
    return build_block(
        _PROPOSER, chain=CHAIN, height=1, parent=ZERO_HASH, state=ZERO_HASH, time=1, txs=[]
    )


def check_reopen_resumes_at_last_committed_block(h: StoreHarness) -> None:
    if h.reopen is None:
        return
    store = h.new()
    try:
        init(store, {"accounts": {b"a" * 20: b"0"}})
        blocks = [
            commit(store, {"accounts": {b"a" * 20: b"%d" % i}}, txs=[tx(i)])[0] for i in range(3)
        ]
        before = _fingerprint(store)
        store = h.reopen(store)
        assert _fingerprint(store) == before, "reopened store differs"
        assert store.genesis_hash() == GENESIS_HASH
        rec = store.tx_status(blocks[2].txs[0].txid)
        assert rec is not None and rec.height == 3
        commit(store, {"accounts": {b"a" * 20: b"x"}})
        head = store.head()
        assert head is not None and head.height == 4 and store.get("accounts", b"a" * 20) == b"x"
    finally:
        store.close()


def check_large_block_commits_whole(h: StoreHarness) -> None:
    with h.new() as store:
        init(store)
        txs = [tx(i, "x" * 40) for i in range(300)]
        writes = {
            "accounts": {bytes([i % 256, i // 256]) * 10: b"%d" % i for i in range(300)},
            "visits": {b"m\x00" + i.to_bytes(8, "big"): b"v" * 60 for i in range(2000)},
        }
        _, head = commit(store, writes, txs=txs)
        assert head.height == 1 and len(_table(store, "visits")) == 2000
        assert len(_table(store, "accounts")) == 300
        got = store.block_at(1)
        assert got is not None and [t.txid for t in got.txs] == [t.txid for t in txs]
        rec = store.tx_status(txs[-1].txid)
        assert rec is not None and rec.index == 299


STORE_CHECKS: tuple[Callable[[StoreHarness], None], ...] = (
    check_empty_store_has_no_head,
    check_commit_before_genesis_is_refused,
    check_genesis_is_height_zero_and_written_once,
    check_blocks_are_indexed_by_height_and_hash,
    check_state_writes_deletes_and_ordered_scans,
    check_tx_index_records_outcomes,
    check_refused_commits_change_nothing,
    check_snapshots_are_isolated_from_later_commits,
    check_closed_store_refuses_calls,
    check_reopen_resumes_at_last_committed_block,
    check_large_block_commits_whole,
)
"""Every check, in order; tests parametrize over it for one test id per rule."""


def check_store(new: Callable[[], Store], reopen: Callable[[Store], Store] | None = None) -> None:
    """Run every check of :data:`STORE_CHECKS` against a backend.

    Args:
        new: returns a fresh, empty store each call (the suite closes it).
        reopen: closes the given store and opens the same data again; None for a backend
            without persistence (restart checks are then skipped).

    Raises:
        AssertionError: a rule is broken; the message names it.
    """
    harness = StoreHarness(new, reopen)
    for check in STORE_CHECKS:
        check(harness)
