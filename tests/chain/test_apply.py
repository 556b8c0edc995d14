"""apply_block: header checks, per-transaction checks, receipts, head bookkeeping, determinism."""

from __future__ import annotations

import dataclasses

import pytest

from p2pmkt.chain.apply import (
    account_nonce,
    apply_block,
    genesis_batch,
    read_head,
    validate_tx_for_state,
)
from p2pmkt.chain.block import build_block
from p2pmkt.chain.state import MemoryState
from p2pmkt.chain.tx import make_tx
from p2pmkt.errors import (
    InvalidBlock,
    InvalidSignature,
    InvalidTransaction,
    LocalError,
    NonceError,
    PermissionDenied,
    UnknownKind,
)
from p2pmkt.testing.builders import (
    FakeRuntime,
    LocalChain,
    assert_changed_nothing,
    non_head_writes,
    visit,
)
from p2pmkt.testing.keys import dev_address, dev_genesis, dev_key, outsider_key
from p2pmkt.types import ZERO_HASH


@pytest.fixture
def chain() -> LocalChain:
    return LocalChain(runtime=FakeRuntime())


def test_genesis_state_has_head_at_height_zero() -> None:
    g = dev_genesis()
    state = MemoryState()
    state.commit(genesis_batch(g))
    head = read_head(state)
    assert head.height == 0
    assert head.hash == ZERO_HASH
    assert head.time == g.genesis_time
    assert state.get("meta", b"genesis") == g.hash
    assert state.get("meta", b"chain_id") == g.chain_id.encode()


def test_genesis_root_is_deterministic_and_binds_the_genesis() -> None:
    a = genesis_batch(dev_genesis()).get("meta", b"state_root")
    b = genesis_batch(dev_genesis()).get("meta", b"state_root")
    other = dataclasses.replace(dev_genesis(), genesis_time=dev_genesis().genesis_time + 1)
    assert a == b
    assert genesis_batch(other).get("meta", b"state_root") != a


def test_read_head_without_genesis_is_a_local_error() -> None:
    with pytest.raises(LocalError, match=r"^state has no head"):
        read_head(MemoryState())


def test_empty_block_advances_the_head(chain: LocalChain) -> None:
    before = chain.head
    result = chain.block([])
    head = chain.head
    assert head.height == before.height + 1
    assert head.hash == result.block.hash
    assert head.time == result.block.header.time
    assert head.state_root == result.state_root != before.state_root


def test_next_block_header_carries_the_previous_post_state_root(chain: LocalChain) -> None:
    first = chain.block([])
    second = chain.build([])
    assert second.header.state == first.state_root


def test_two_nodes_applying_the_same_blocks_agree_on_every_root() -> None:
    a, b = LocalChain(runtime=FakeRuntime()), LocalChain(runtime=FakeRuntime())
    blocks = []
    code = a.deploy()
    blocks.append(a.results[-1].block)
    for i in range(3):
        txs = [a.tx("terminal", "visit.batch", {"visits": [visit(account=f"u{i}")] * 3})]
        blocks.append(a.block(txs).block)
    for block in blocks:
        b.commit(b.apply(block))
    assert [r.state_root for r in a.results] == [r.state_root for r in b.results]
    assert code  # deployed


# --- Header checks: each yields InvalidBlock and nothing is applied --------------------------


@pytest.mark.parametrize(
    ("override", "reason", "message"),
    [
        ({"chain": "other-chain"}, "wrong_chain", r"^block is for chain 'other-chain', this node runs 'p2pmkt-dev'$"),
        ({"height": 5}, "not_next", r"^block height 5 does not extend the head at height 0$"),
        ({"height": 0}, "not_next", r"^block height 0 does not extend the head at height 0$"),
        ({"parent": b"\x01" * 32}, "wrong_parent", r"^block 1 has parent 0101010101010101…, but the head is 0000000000000000…$"),
        ({"state": b"\x02" * 32}, "state_mismatch", r"^block 1 claims pre-state root 0202020202020202…, but this node's state root is [0-9a-f]{16}… \(state diverged at or before block 0\)$"),
    ],
)
def test_header_that_does_not_extend_the_head_is_rejected(
    chain: LocalChain, override: dict[str, object], reason: str, message: str
) -> None:
    block = chain.build([], **override)
    with pytest.raises(InvalidBlock, match=message) as info:
        chain.apply(block)
    assert info.value.reason == reason


def test_block_time_must_increase(chain: LocalChain) -> None:
    head = chain.head
    with pytest.raises(InvalidBlock, match=rf"^block time {head.time} is not after the head's time {head.time}$"):
        chain.apply(chain.build([], time=head.time))


def test_proposer_must_be_a_voter(chain: LocalChain) -> None:
    block = chain.build([], proposer=dev_key("platform"))
    with pytest.raises(InvalidBlock, match=r"^block 1 proposer 0x[0-9a-f]{8}… is not a voter$") as info:
        chain.apply(block)
    assert info.value.reason == "not_validator"


def test_forged_proposer_signature_is_rejected(chain: LocalChain) -> None:
    block = chain.build([])
    forged = dataclasses.replace(block, sig=dev_key("terminal").sign_digest(b"\x00" * 32))
    with pytest.raises(InvalidBlock, match=r"^block 1 is signed by 0x[0-9a-f]{40}, not its proposer"):
        chain.apply(forged)


def test_block_signed_for_another_chain_is_rejected(chain: LocalChain) -> None:
    block = chain.build([])
    foreign = build_block(dev_key("validator"), chain="other", height=1, parent=block.header.parent,
                          state=block.header.state, time=block.header.time, txs=[])
    spliced = dataclasses.replace(block, sig=foreign.sig)
    with pytest.raises(InvalidBlock, match=r"^block 1 is signed by"):
        chain.apply(spliced)


def test_txroot_must_match_the_transactions(chain: LocalChain) -> None:
    tx = chain.tx("terminal", "visit.batch", {"visits": [visit()]})
    block = chain.build([tx])
    tampered = dataclasses.replace(block, txs=())
    with pytest.raises(InvalidBlock, match=r"^block's transactions do not match its header's txroot$"):
        chain.apply(tampered)


def test_too_many_transactions_is_an_invalid_block() -> None:
    g = dev_genesis()
    g = dataclasses.replace(g, params=dataclasses.replace(g.params, max_block_txs=2))
    chain = LocalChain(g)
    txs = [chain.tx("terminal", "visit.batch", {"visits": [visit()]}) for _ in range(3)]
    with pytest.raises(InvalidBlock, match=r"^block holds 3 transactions; the limit is 2$"):
        chain.apply(chain.build(txs))


# --- Transaction checks: a rejected receipt, and the state is unchanged ---------------------


def test_replayed_nonce_is_rejected_and_changes_nothing(chain: LocalChain) -> None:
    for _ in range(5):
        chain.run("terminal", "visit.batch", {"visits": [visit()]})
    replay = chain.tx("terminal", "visit.batch", {"visits": [visit()]}, nonce=3)
    result = chain.block([replay])
    assert result.receipts[0].reason == "nonce_used"
    assert result.receipts[0].message == "nonce 3 already used; next is 5"
    assert_changed_nothing(result)


def test_skipped_nonce_is_rejected(chain: LocalChain) -> None:
    for _ in range(5):
        chain.run("terminal", "visit.batch", {"visits": [visit()]})
    result = chain.block([chain.tx("terminal", "visit.batch", {"visits": [visit()]}, nonce=9)])
    assert (result.receipts[0].reason, result.receipts[0].message) == (
        "nonce_ahead", "nonce 9 is ahead; next is 5")
    assert_changed_nothing(result)


def test_same_transaction_twice_in_a_block_applies_once(chain: LocalChain) -> None:
    tx = chain.tx("terminal", "visit.batch", {"visits": [visit()]})
    result = chain.block([tx, tx])
    assert [r.status for r in result.receipts] == ["ok", "rejected"]
    assert result.receipts[1].reason == "nonce_used"
    assert account_nonce(chain.state, dev_address("terminal")) == 1


def test_rejected_transaction_does_not_consume_its_nonce(chain: LocalChain) -> None:
    bad = chain.tx("terminal", "market.update", {"merchant": "acme", "base_version": 0,
                                                 "campaigns": [], "cause": ""})
    good = chain.tx("terminal", "visit.batch", {"visits": [visit()]}, nonce=0)
    result = chain.block([bad, good])
    assert [r.status for r in result.receipts] == ["rejected", "ok"]
    assert account_nonce(chain.state, dev_address("terminal")) == 1


def test_market_update_with_an_unknown_campaign_field_is_rejected_and_changes_nothing(
    chain: LocalChain,
) -> None:
    campaign = {"name": "spring", "keywords": [], "max_bid": 40, "channels": ["search"],
                "daily_budget": 5000, "active": True, "budget_cap": 100}
    result = chain.block([chain.tx("acme-tech", "market.update", {
        "merchant": "acme", "base_version": 0, "campaigns": [campaign], "cause": ""})])
    receipt = result.receipts[0]
    assert (receipt.status, receipt.reason) == ("rejected", "bad_payload")
    assert "campaign 'spring' has unknown field ['budget_cap']" in receipt.message
    assert_changed_nothing(result)


def test_foreign_chain_transaction_is_rejected(chain: LocalChain) -> None:
    tx = chain.tx("terminal", "visit.batch", {"visits": [visit()]}, chain="p2pmkt-prod")
    result = chain.block([tx])
    assert result.receipts[0].reason == "wrong_chain"
    assert result.receipts[0].message == "transaction is for chain 'p2pmkt-prod', this node runs 'p2pmkt-dev'"
    assert_changed_nothing(result)


def test_transaction_signed_by_someone_else_is_rejected(chain: LocalChain) -> None:
    tx = chain.tx("terminal", "visit.batch", {"visits": [visit()]})
    impostor = make_tx(dev_key("acme-ops"), tx.tx.chain, 0, "visit.batch", tx.tx.payload)
    forged = dataclasses.replace(tx, sig=impostor.sig)
    result = chain.block([forged])
    assert result.receipts[0].reason == "bad_signature"
    assert_changed_nothing(result)


def test_unknown_kind_is_rejected_with_the_known_kinds(chain: LocalChain) -> None:
    result = chain.block([chain.tx("platform", "token.mint", {"amount": 1})])
    receipt = result.receipts[0]
    assert receipt.reason == "unknown_kind"
    assert receipt.message.startswith("transaction kind 'token.mint' is not known to this chain; known kinds: ")
    assert "visit.batch" in receipt.message
    assert_changed_nothing(result)


def test_outsider_is_not_a_member(chain: LocalChain) -> None:
    result = chain.block([chain.tx(outsider_key(), "visit.batch", {"visits": [visit()]})])
    assert result.receipts[0].reason == "not_member"
    assert result.receipts[0].message.endswith(" is not a member of this chain")
    assert_changed_nothing(result)


def test_oversized_transaction_is_rejected() -> None:
    g = dev_genesis()
    g = dataclasses.replace(g, params=dataclasses.replace(g.params, max_tx_bytes=200))
    chain = LocalChain(g)
    result = chain.block([chain.tx("terminal", "visit.batch", {"visits": [visit()] * 5})])
    assert result.receipts[0].reason == "tx_too_large"
    assert_changed_nothing(result)


def test_successful_tx_bumps_the_nonce_and_writes(chain: LocalChain) -> None:
    result = chain.block([chain.tx("terminal", "visit.batch", {"visits": [visit()]})])
    assert result.receipts[0].status == "ok"
    writes = non_head_writes(result.batch)
    assert set(writes) == {"accounts", "visits", "merchants"}


def test_contract_deploy_without_runtime_is_a_local_error() -> None:
    chain = LocalChain(runtime=None)
    with pytest.raises(LocalError, match=r"^applying contract.deploy needs a ContractRuntime"):
        chain.block([chain.tx("acme-ops", "contract.deploy", {"code": b"\0asm\x01\0\0\0"})])


# --- validate_tx_for_state: the mempool's admission check -----------------------------------


def test_validate_tx_for_state_raises_what_the_receipt_would_say(chain: LocalChain) -> None:
    g = chain.genesis
    ok = chain.tx("terminal", "visit.batch", {"visits": [visit()]})
    validate_tx_for_state(chain.state, ok, g)
    with pytest.raises(PermissionDenied, match=r"does not hold the terminal role"):
        validate_tx_for_state(chain.state, make_tx(dev_key("acme-ops"), g.chain_id, 0, "visit.batch",
                                                   {"visits": [visit()]}), g)
    with pytest.raises(NonceError, match=r"^nonce 2 is ahead; next is 0$"):
        validate_tx_for_state(chain.state, chain.tx("terminal", "visit.batch", {"visits": [visit()]}, nonce=2), g)
    validate_tx_for_state(chain.state, chain.tx("terminal", "visit.batch", {"visits": [visit()]}, nonce=2), g,
                          max_nonce_gap=2)
    with pytest.raises(UnknownKind):
        validate_tx_for_state(chain.state, chain.tx("terminal", "nope", {}, nonce=0), g)
    with pytest.raises(InvalidTransaction, match=r"^visit.batch: visit 0: visit method 'fax'"):
        validate_tx_for_state(chain.state, chain.tx("terminal", "visit.batch", {"visits": [visit(method="fax")]}, nonce=0), g)
    forged = dataclasses.replace(ok, sig=chain.tx("platform", "x", {}).sig)
    with pytest.raises(InvalidSignature):
        validate_tx_for_state(chain.state, forged, g)


def test_validate_tx_for_state_does_not_write(chain: LocalChain) -> None:
    before = {t: dict(chain.state.scan(t)) for t in ("visits", "merchants", "accounts")}
    validate_tx_for_state(chain.state, chain.tx("terminal", "visit.batch", {"visits": [visit()] * 10}),
                          chain.genesis)
    assert {t: dict(chain.state.scan(t)) for t in before} == before


def test_apply_block_never_writes_to_the_state_it_reads(chain: LocalChain) -> None:
    before = {t: dict(chain.state.scan(t)) for t in ("meta", "visits", "accounts")}
    apply_block(chain.state, chain.build([chain.tx("terminal", "visit.batch", {"visits": [visit()]})]),
                genesis=chain.genesis, runtime=None)
    assert {t: dict(chain.state.scan(t)) for t in before} == before
