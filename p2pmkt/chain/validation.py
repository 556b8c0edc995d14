"""Stateless transaction and block checks, shared by gossip validators, RPC and block apply.

Everything here depends only on the bytes and the genesis (chain id, limits, the table of
kinds), never on state or time, so a gossip validator can run it on every message before
forwarding it (SPEC: "validation (decode, signature, chain id, size) before a message is
forwarded"), and every node reaches the same verdict. State-dependent checks (nonce, role,
merchant scope, handler preconditions) live in :mod:`p2pmkt.chain.apply`.

Order of checks, cheapest first: size, decode (canonical), chain id, signature, kind,
payload schema. Every failure is a typed :class:`RemoteError` whose ``reason`` slug a metric
can count (``tx_too_large``, ``decode``, ``wrong_chain``, ``bad_signature``,
``unknown_kind``, ``bad_payload``, ``block_too_large``, ``invalid_block``).
"""

from __future__ import annotations

from typing import Any

from p2pmkt.chain.block import Block, decode_block, verify_block_signature
from p2pmkt.chain.genesis import Genesis
from p2pmkt.chain.tx import SignedTransaction, decode_tx, verify_tx
from p2pmkt.errors import InvalidBlock, InvalidTransaction, UnknownKind
from p2pmkt.market.apply import KINDS
from p2pmkt.market.kinds import KindSpec

__all__ = ["validate_block_bytes", "validate_tx", "validate_tx_bytes"]


def validate_tx(stx: SignedTransaction, genesis: Genesis) -> tuple[KindSpec, Any]:
    """Check a decoded transaction against everything that needs no state.

    Returns:
        The kind's spec and the parsed payload (block application reuses them).

    Raises:
        InvalidTransaction: too large (``tx_too_large``), another chain (``wrong_chain``) or a
            payload that fails its kind's schema (``bad_payload``).
        InvalidSignature: not signed by ``from`` for this chain.
        UnknownKind: the kind is not one of :data:`p2pmkt.market.apply.KINDS`.
    """
    limit = genesis.params.max_tx_bytes
    size = len(stx.body) + len(stx.sig)
    if size > limit:
        raise InvalidTransaction(
            f"transaction is {size} bytes; this chain accepts at most {limit}", reason="tx_too_large"
        )
    verify_tx(stx, genesis.chain_id)
    spec = KINDS.get(stx.tx.kind)
    if spec is None:
        raise UnknownKind(
            f"transaction kind {stx.tx.kind!r:.70} is not known to this chain; known kinds: "
            f"{', '.join(sorted(KINDS))}"
        )
    return spec, spec.parse(stx.tx.payload, genesis.params)


def validate_tx_bytes(data: bytes, genesis: Genesis) -> SignedTransaction:
    """Decode and check a transaction as it arrives from gossip or a client.

    Raises:
        DecodeError: malformed, non-canonical or over ``max_tx_bytes``.
        InvalidTransaction, InvalidSignature, UnknownKind: as :func:`validate_tx`.
    """
    limit = genesis.params.max_tx_bytes
    if len(data) > limit + 16:  # 16: the outer map's own header bytes
        raise InvalidTransaction(
            f"transaction is {len(data)} bytes; this chain accepts at most {limit}",
            reason="tx_too_large",
        )
    stx = decode_tx(data, max_size=limit + 16)
    validate_tx(stx, genesis)
    return stx


def validate_block_bytes(data: bytes, genesis: Genesis) -> Block:
    """Decode a block and check what needs no state: size, shape, chain id, proposer signature.

    Whether it extends the head, its proposer is a voter and its transactions apply is for
    :func:`p2pmkt.chain.apply.apply_block`.

    Raises:
        DecodeError: malformed or non-canonical.
        InvalidBlock: oversized, another chain, bad signature or inconsistent content.
    """
    limit = genesis.params.max_block_bytes + 64 * 1024  # header, signature, CBOR framing
    if len(data) > limit:
        raise InvalidBlock(f"block is {len(data)} bytes; the limit is {limit}", reason="block_too_large")
    block = decode_block(data, max_size=limit)
    if block.header.chain != genesis.chain_id:
        raise InvalidBlock(
            f"block is for chain {block.header.chain!r}, this node runs {genesis.chain_id!r}",
            reason="wrong_chain",
        )
    verify_block_signature(block)
    return block
