"""Gossip validators judge every message: a verdict, never an exception, and ACCEPT only for
messages that really pass (all signatures verify, right chain, allowed proposer)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from p2pmkt.chain.block import (
    build_block,
    decode_signed_header,
    signed_header,
    verify_block_signature,
)
from p2pmkt.chain.tx import make_tx, verify_tx
from p2pmkt.gossip.bundle import encode_bundle
from p2pmkt.gossip.validate import (
    ACCEPT,
    DUPLICATE,
    BundleCheck,
    HeadCheck,
    HeadValidator,
    Ignore,
    Reject,
    TxBundleValidator,
)
from p2pmkt.testing.builders import visit
from p2pmkt.testing.keys import dev_genesis, dev_key
from p2pmkt.types import ZERO_HASH

from .strategies import budget, cbor_bytes, mutated

GENESIS = dev_genesis()
CHAIN = GENESIS.chain_id
TXS = [make_tx(dev_key("terminal"), CHAIN, n, "visit.batch", {"visits": [visit(item=f"i{n}")]})
       for n in range(3)]
OTHER_CHAIN_TX = make_tx(dev_key("terminal"), "other-chain", 0, "visit.batch", {"visits": [visit()]})
BUNDLES = [encode_bundle([t.encode() for t in TXS]), encode_bundle([TXS[0].encode()]),
           encode_bundle([TXS[1].encode(), OTHER_CHAIN_TX.encode()])]
PROPOSER = dev_key("validator")
BLOCK = build_block(PROPOSER, chain=CHAIN, height=1, parent=ZERO_HASH, state=ZERO_HASH,
                    time=GENESIS.genesis_time + 1, txs=TXS)
STRANGER_BLOCK = build_block(dev_key("terminal"), chain=CHAIN, height=1, parent=ZERO_HASH,
                             state=ZERO_HASH, time=GENESIS.genesis_time + 1, txs=TXS[:1])
HEADS = [signed_header(BLOCK).encode(), signed_header(STRANGER_BLOCK).encode()]
ALLOWED = frozenset({bytes(PROPOSER.address)})

inputs = st.one_of(st.binary(max_size=300), cbor_bytes())


@budget(100)
@given(data=st.one_of(inputs, mutated(BUNDLES)), now=st.floats(0, 1e9))
def test_bundle_validator_always_answers_and_accepts_only_verified_transactions(data: bytes, now: float) -> None:
    v = TxBundleValidator(CHAIN, max_bundle_bytes=64 * 1024)
    out = v.check(data, now)
    assert isinstance(out, BundleCheck) and isinstance(out.verdict, type(ACCEPT) | Ignore | Reject)
    if out.verdict == ACCEPT:
        assert out.txs
        for stx in out.txs:
            verify_tx(stx, CHAIN)  # raises if the validator let a bad one through
        assert v.check(data, now).verdict == DUPLICATE
    else:
        assert out.txs == ()


@budget(100)
@given(data=st.one_of(inputs, mutated(HEADS)), now=st.floats(0, 1e9))
def test_head_validator_always_answers_and_accepts_only_heads_of_allowed_proposers(data: bytes, now: float) -> None:
    v = HeadValidator(CHAIN, proposers=lambda: ALLOWED)
    out = v.check(data, now)
    assert isinstance(out, HeadCheck) and isinstance(out.verdict, type(ACCEPT) | Ignore | Reject)
    if out.verdict == ACCEPT:
        assert out.head is not None and out.head.header.chain == CHAIN
        assert bytes(verify_block_signature(out.head)) in ALLOWED
        assert decode_signed_header(data).hash == out.head.hash
        assert v.check(data, now).verdict == DUPLICATE


def test_the_seeds_get_the_expected_verdicts() -> None:
    bv = TxBundleValidator(CHAIN)
    assert [bv.check(b, 0).verdict for b in BUNDLES] == [ACCEPT, DUPLICATE, Reject(
        "wrong_chain", bv.check(BUNDLES[2], 1).verdict.message)]  # type: ignore[union-attr]
    kv = HeadValidator(CHAIN, proposers=lambda: ALLOWED)
    assert kv.check(HEADS[0], 0).verdict == ACCEPT
    assert kv.check(HEADS[1], 0).verdict.reason == "not_validator"  # type: ignore[union-attr]
