"""Mempool: bounds and back-pressure, dedup, nonce order and gaps, eviction, selection."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.chain.genesis import ChainParams
from p2pmkt.chain.mempool import Mempool
from p2pmkt.chain.tx import SignedTransaction, make_tx
from p2pmkt.errors import InvalidTransaction, MempoolFull, NonceError
from p2pmkt.testing.builders import visit
from p2pmkt.testing.keys import dev_key

CHAIN = "p2pmkt-dev"


def tx(who: str, nonce: int, n: int = 1) -> SignedTransaction:
    return make_tx(dev_key(who), CHAIN, nonce, "visit.batch", {"visits": [visit(account=f"{nonce}")] * n})


def pool(**overrides: int) -> Mempool:
    return Mempool(dataclasses.replace(ChainParams(), **overrides), max_nonce_gap=4, ttl=60.0)


def test_duplicate_is_reported_not_added() -> None:
    mp = pool()
    t = tx("terminal", 0)
    assert mp.add(t, account_nonce=0, now=0.0) is True
    assert mp.add(t, account_nonce=0, now=1.0) is False
    assert len(mp) == 1


def test_full_pool_pushes_back_and_keeps_what_it_has() -> None:
    mp = pool(mempool_max_txs=2)
    mp.add(tx("terminal", 0), account_nonce=0, now=0)
    mp.add(tx("terminal", 1), account_nonce=0, now=0)
    with pytest.raises(MempoolFull, match=r"^mempool is full \(2 transactions, \d+ bytes; limits 2 and \d+\); retry after the next block$") as info:
        mp.add(tx("terminal", 2), account_nonce=0, now=0)
    assert info.value.reason == "mempool_full"
    assert len(mp) == 2


def test_byte_limit_pushes_back() -> None:
    one = tx("terminal", 0, n=20)
    size = len(one.body) + len(one.sig)
    mp = pool(mempool_max_bytes=size + 10)
    mp.add(one, account_nonce=0, now=0)
    with pytest.raises(MempoolFull):
        mp.add(tx("terminal", 1, n=20), account_nonce=0, now=0)


def test_a_nodes_own_byte_cap_applies_when_lower_than_the_chains() -> None:
    one = tx("terminal", 0, n=20)
    size = len(one.body) + len(one.sig)
    params = ChainParams()
    capped = Mempool(params, max_bytes=size + 10)
    assert capped.max_bytes == size + 10
    capped.add(one, account_nonce=0, now=0)
    with pytest.raises(MempoolFull):
        capped.add(tx("terminal", 1, n=20), account_nonce=0, now=0)
    assert Mempool(params, max_bytes=params.mempool_max_bytes * 2).max_bytes == params.mempool_max_bytes


def test_oversized_tx_is_refused() -> None:
    mp = pool(max_tx_bytes=100)
    with pytest.raises(InvalidTransaction, match=r"^transaction is \d+ bytes; this chain accepts at most 100$"):
        mp.add(tx("terminal", 0), account_nonce=0, now=0)


def test_nonce_rules() -> None:
    mp = pool()
    with pytest.raises(NonceError, match=r"^nonce 2 already used; next is 5$"):
        mp.add(tx("terminal", 2), account_nonce=5, now=0)
    with pytest.raises(NonceError, match=r"^nonce 10 is ahead; next is 5 and at most 4 may wait ahead of it$"):
        mp.add(tx("terminal", 10), account_nonce=5, now=0)
    mp.add(tx("terminal", 5), account_nonce=5, now=0)
    other = make_tx(dev_key("terminal"), CHAIN, 5, "visit.batch", {"visits": [visit("globex")]})
    with pytest.raises(NonceError, match=r"^another transaction with nonce 5 from this sender is already pending$"):
        mp.add(other, account_nonce=5, now=0)


def test_a_long_run_without_gaps_is_not_ahead_only_what_is_past_its_end() -> None:
    """The gap bound counts from the end of the sender's ready run, not from its account
    nonce: a terminal with many transactions waiting, none missing, is not refused (it was,
    past max_nonce_gap + 1 = 5 here, 65 on a node)."""
    mp = pool()
    for n in range(12):
        mp.add(tx("terminal", n), account_nonce=0, now=0)
    assert mp.pending_nonce(dev_key("terminal").address, 0) == 12
    mp.add(tx("terminal", 16), account_nonce=0, now=0)  # parked: 12..15 missing, 4 = the gap
    with pytest.raises(NonceError, match=r"^nonce 17 is ahead; next is 12 and at most 4 may wait ahead of it$"):
        mp.add(tx("terminal", 17), account_nonce=0, now=0)
    assert [t.tx.nonce for t in mp.select(100, 10**9)] == list(range(12))


def test_one_sender_gets_a_quarter_of_the_pool_then_back_pressure() -> None:
    mp = pool(mempool_max_txs=40)
    for n in range(10):
        mp.add(tx("terminal", n), account_nonce=0, now=0)
    with pytest.raises(MempoolFull, match=r"^this sender has 10 transactions waiting, its share of the mempool \(10\); retry after the next block$") as info:
        mp.add(tx("terminal", 10), account_nonce=0, now=0)
    assert info.value.reason == "mempool_full"  # Busy: clients wait and retry
    assert mp.add(tx("acme-ops", 0), account_nonce=0, now=0)  # everyone else still gets in
    mp.on_block(mp.select(5, 10**9), lambda addr: 5 if addr == dev_key("terminal").address else 0)
    assert mp.add(tx("terminal", 10), account_nonce=5, now=0)  # room again after a block


def test_select_follows_nonce_order_and_waits_at_gaps() -> None:
    mp = pool()
    for n in (2, 0, 3):
        mp.add(tx("terminal", n), account_nonce=0, now=0)
    assert [t.tx.nonce for t in mp.select(10, 10**9)] == [0]
    mp.add(tx("terminal", 1), account_nonce=0, now=0)
    assert [t.tx.nonce for t in mp.select(10, 10**9)] == [0, 1, 2, 3]
    assert mp.pending_nonce(dev_key("terminal").address, 0) == 4


def test_select_interleaves_senders_by_arrival_and_respects_limits() -> None:
    mp = pool()
    mp.add(tx("terminal", 0), account_nonce=0, now=0)
    mp.add(tx("acme-ops", 0), account_nonce=0, now=0)
    mp.add(tx("terminal", 1), account_nonce=0, now=0)
    picked = mp.select(10, 10**9)
    assert [(t.sender == dev_key("terminal").address, t.tx.nonce) for t in picked] == [
        (True, 0), (False, 0), (True, 1)]
    assert len(mp.select(2, 10**9)) == 2
    first = picked[0]
    assert mp.select(10, len(first.body) + len(first.sig)) == [first]


def test_on_block_evicts_included_and_stale_nonces() -> None:
    mp = pool()
    for n in range(4):
        mp.add(tx("terminal", n), account_nonce=0, now=0)
    included = mp.select(2, 10**9)
    # The block also consumed nonce 2 through another path (e.g. a different tx with nonce 2).
    gone = mp.on_block(included, lambda _addr: 3)
    assert gone == 3
    assert [t.tx.nonce for t in mp.select(10, 10**9)] == [3]
    assert mp.statistics().txs == 1


def test_expire_drops_old_parked_txs_and_their_successors_never_ready_ones() -> None:
    mp = pool()
    mp.add(tx("terminal", 0), account_nonce=0, now=0)   # ready, however old
    mp.add(tx("terminal", 2), account_nonce=0, now=0)   # parked behind the missing 1
    mp.add(tx("terminal", 3), account_nonce=0, now=50)  # later, but cannot apply without 2
    mp.add(tx("acme-ops", 0), account_nonce=0, now=0)
    assert mp.expire(now=70) == 2
    assert sorted(t.tx.nonce for t in mp.in_arrival_order() if t.sender == dev_key("terminal").address) == [0]
    assert len(mp.select(10, 10**9)) == 2
    assert mp.statistics().bytes == sum(len(t.body) + len(t.sig) for t in mp.select(10, 10**9))
    mp.add(tx("terminal", 1), account_nonce=0, now=80)  # the gap can be filled afresh
    assert mp.pending_nonce(dev_key("terminal").address, 0) == 2


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["terminal", "acme-ops", "platform"]), st.integers(0, 6)), max_size=30))
def test_selection_is_always_applicable_in_order(ops: list[tuple[str, int]]) -> None:
    """Whatever was added, select() returns per-sender contiguous nonces from the base."""
    mp = pool()
    for who, nonce in ops:
        try:
            mp.add(tx(who, nonce), account_nonce=0, now=0)
        except NonceError:
            pass
    seen: dict[bytes, int] = {}
    for t in mp.select(1000, 10**9):
        assert t.tx.nonce == seen.get(t.sender, 0)
        seen[t.sender] = t.tx.nonce + 1
    stats = mp.statistics()
    assert stats.ready == len(mp.select(1000, 10**9))
    assert stats.txs == len(mp) <= stats.max_txs


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(["terminal", "acme-ops"]), st.integers(0, 12)),
    st.tuples(st.just("block"), st.integers(1, 6)),
    st.tuples(st.just("expire"), st.integers(0, 3)),
), max_size=40))
def test_the_run_end_it_keeps_is_the_one_it_would_count(ops: list[tuple[object, ...]]) -> None:
    """The pool keeps each sender's run end instead of counting it on every add (a sender
    with thousands waiting made that quadratic): after any history of adds, blocks and
    expiry, it equals the count, and pending_nonce agrees."""
    mp = pool()
    chain_nonce = {dev_key(w).address: 0 for w in ("terminal", "acme-ops")}
    clock = 0.0
    for op in ops:
        if op[0] == "add":
            _, who, nonce = op
            address = dev_key(str(who)).address
            try:
                mp.add(tx(str(who), int(nonce)), account_nonce=chain_nonce[address], now=clock)
            except (NonceError, MempoolFull):
                pass
        elif op[0] == "block":
            picked = mp.select(int(op[1]), 10**9)
            for t in picked:
                chain_nonce[t.sender] = t.tx.nonce + 1
            mp.on_block(picked, chain_nonce.__getitem__)
        else:
            clock += 25.0 * int(op[1])
            mp.expire(clock)
        for address, slot in mp._senders.items():
            n = slot.base
            while n in slot.pending:
                n += 1
            assert slot.next == n
            n = max(slot.base, chain_nonce[address])
            while n in slot.pending:
                n += 1
            assert mp.pending_nonce(address, chain_nonce[address]) == n


def test_drop_past_removes_what_only_a_resigned_gap_could_commit_and_keeps_the_gap_itself() -> None:
    """After a block rejected nonce 1 of the terminal (its account nonce stays 1), its pending
    2 and 3 could only commit behind a nonce 1 it has not signed yet: they go. Other senders
    are untouched, and so is a pending nonce 1 (only the sender's re-signature of the gap)."""
    terminal = dev_key("terminal").address
    mp = pool()
    for n in (2, 3):
        mp.add(tx("terminal", n), account_nonce=1, now=0)
    mp.add(tx("acme-ops", 0), account_nonce=0, now=0)
    assert mp.drop_past(terminal, 1) == 2
    assert mp.pending_nonce(terminal, 1) == 1
    assert [t.sender for t in mp.select(10, 10**9)] == [dev_key("acme-ops").address]
    assert mp.drop_past(dev_key("platform").address, 0) == 0  # a sender with nothing pending

    resigned = tx("terminal", 1, n=2)
    for t in (resigned, tx("terminal", 2, n=2), tx("terminal", 3, n=2)):
        mp.add(t, account_nonce=1, now=1)
    assert mp.drop_past(terminal, 1) == 2
    assert resigned.txid in mp and mp.pending_nonce(terminal, 1) == 2
    assert [t.tx.nonce for t in mp.select(10, 10**9) if t.sender == terminal] == [1]
    assert mp.statistics().txs == 2


def test_after_drop_past_later_nonces_are_refused_until_the_gap_is_resigned() -> None:
    """The ones still on their way when the block came (sent before the sender could know)
    are refused with the nonce to sign again from; the re-signed gap reopens the sequence."""
    terminal = dev_key("terminal").address
    mp = pool()
    mp.drop_past(terminal, 1, "block 7 rejected (unknown_merchant): …")
    with pytest.raises(NonceError, match="follows nonce 1, which block 7 rejected") as err:
        mp.add(tx("terminal", 2), account_nonce=1, now=0)
    assert err.value.reason == "behind_rejected"
    mp.add(tx("acme-ops", 0), account_nonce=0, now=0)  # other senders are untouched
    assert mp.add(tx("terminal", 1, n=2), account_nonce=1, now=1)  # the re-signed gap
    assert mp.add(tx("terminal", 2, n=2), account_nonce=1, now=1)  # and what follows it
    assert [t.tx.nonce for t in mp.select(10, 10**9) if t.sender == terminal] == [1, 2]


def test_a_cut_is_forgotten_once_the_account_moves_past_it() -> None:
    """Another node's pool may have taken the re-signed gap: once it commits, this node's
    account nonce is past the cut and the sender's transactions are taken again."""
    terminal = dev_key("terminal").address
    mp = pool()
    mp.drop_past(terminal, 1)
    with pytest.raises(NonceError):
        mp.add(tx("terminal", 3), account_nonce=1, now=0)
    assert mp.add(tx("terminal", 3), account_nonce=2, now=1)
