"""Blocks: a signed header and the transactions it orders.

Wire form (canonical CBOR)::

    Block  = {"header": bstr, "sig": bstr(65), "txs": [bstr, ...]}   txs = signed tx wire bytes
    header (canonical CBOR map) = {
        "chain":    tstr,       chain id
        "height":   uint,       genesis state is height 0; the first block is height 1
        "parent":   bstr(32),   hash of the previous block's header (zeros for height 1)
        "txroot":   bstr(32),   Merkle root of the transaction ids, in order
        "state":    bstr(32),   state root *before* this block (the parent's post-state)
        "time":     uint,       block time, ms since the Unix epoch, strictly increasing
        "proposer": bstr(20),   address of the validator that built the block
    }

    SignedHeader = {"header": bstr, "sig": bstr(65)}   a block announced without its txs

The block hash is ``sha256(header)``; ``sig`` is the proposer's signature over ``header``
with purpose ``"block"``. Carrying the *pre*-state root (as Tendermint does with its app hash)
lets a leader propose block N+1 before N is applied; a node whose state diverged notices at
the next block, when the root it holds differs from the header's.

Block time is the only clock chain logic sees (reporting intervals, cooldowns): it is chosen
by the proposer, must exceed the parent's, and is identical on every node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from p2pmkt.chain.merkle import merkle_root
from p2pmkt.chain.tx import SignedTransaction, decode_signed_envelope, decode_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.crypto.signing import PURPOSE_BLOCK, recover_signer, sign
from p2pmkt.errors import DecodeError, InvalidBlock, InvalidTransaction, RemoteError
from p2pmkt.types import Address, Hash32, Height
from p2pmkt.wire.cbor import decode, encode, encode_unchecked

MAX_BLOCK_BYTES = 32 * 1024 * 1024

MAX_HEADER_BYTES = 4096
MAX_SIGNED_HEADER_BYTES = MAX_HEADER_BYTES + 128  # the header, a 65-byte signature, the map
_HEADER_KEYS = frozenset({"chain", "height", "parent", "txroot", "state", "time", "proposer"})


@dataclass(frozen=True, slots=True)
class Header:
    chain: str
    height: Height
    parent: Hash32
    txroot: Hash32
    state: Hash32
    time: int
    proposer: Address

    def encode(self) -> bytes:
        return encode(
            {
                "chain": self.chain,
                "height": self.height,
                "parent": bytes(self.parent),
                "txroot": bytes(self.txroot),
                "state": bytes(self.state),
                "time": self.time,
                "proposer": bytes(self.proposer),
            }
        )


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    header_bytes: bytes
    sig: bytes
    txs: tuple[SignedTransaction, ...]
    hash: Hash32
    # The canonical wire bytes, kept from decode_block (or from the first encode()): the store
    # writes every committed block, and re-encoding 1,000 transactions cost ~5-8 us each.
    # Not init fields, so dataclasses.replace() (how tests tamper with blocks) resets them.
    wire: bytes | None = field(default=None, init=False, compare=False, repr=False)
    # True when the constructor checked or computed txroot from ``txs`` (decode_block,
    # build_block), so apply_block need not hash every transaction id a second time.
    txroot_checked: bool = field(default=False, init=False, compare=False, repr=False)

    @property
    def height(self) -> Height:
        return self.header.height

    def encode(self) -> bytes:
        if self.wire is None:
            wire = encode_unchecked(
                {"header": self.header_bytes, "sig": self.sig, "txs": [t.encode() for t in self.txs]}
            )
            object.__setattr__(self, "wire", wire)  # a cache of a pure function of the fields
            return wire
        return self.wire


def build_block(
    key: PrivateKey,
    *,
    chain: str,
    height: int,
    parent: Hash32,
    state: Hash32,
    time: int,
    txs: Sequence[SignedTransaction],
) -> Block:
    """Assemble and sign a block proposed by ``key``."""
    header = Header(
        chain=chain,
        height=Height(height),
        parent=parent,
        txroot=merkle_root([t.txid for t in txs]),
        state=state,
        time=time,
        proposer=key.address,
    )
    header_bytes = header.encode()
    block = Block(
        header=header,
        header_bytes=header_bytes,
        sig=sign(key, chain, PURPOSE_BLOCK, header_bytes),
        txs=tuple(txs),
        hash=Hash32(hashlib.sha256(header_bytes).digest()),
    )
    object.__setattr__(block, "txroot_checked", True)
    return block


def decode_block(
    data: bytes,
    *,
    max_size: int = MAX_BLOCK_BYTES,
    known: Callable[[bytes], SignedTransaction | None] | None = None,
) -> Block:
    """Decode a block and check its internal consistency (not its signature).

    Args:
        data: the block's wire bytes.
        max_size: reject ``data`` longer than this.
        known: optional look-up of transactions decoded before (``DecodedTxCache.get``):
            called with each transaction's exact wire bytes as the block embeds them, it
            returns what :func:`~p2pmkt.chain.tx.decode_tx` returned for those bytes, or None
            to have them decoded here. The caller guarantees that an answer came from
            ``decode_tx`` of identical bytes; as a cheap guard, an answer is used only if it
            encodes back to exactly those bytes (a concatenation for the usual 65-byte
            signature), so a transaction of other bytes is never taken. The result equals
            ``decode_block(data)``: same fields, same errors.

    Raises:
        DecodeError: malformed or non-canonical.
        InvalidBlock: a field is wrong, a transaction is malformed, or the transactions
            root does not match.
    """
    outer = decode(data, max_size=max_size, canonical=True, max_depth=3, walk=False)
    if not isinstance(outer, dict) or set(outer) != {"header", "sig", "txs"}:
        raise DecodeError('a block is a map {"header": bytes, "sig": bytes, "txs": [bytes]}')
    header_bytes, sig, raw_txs = outer["header"], outer["sig"], outer["txs"]
    if not isinstance(header_bytes, bytes) or not isinstance(sig, bytes):
        raise DecodeError('"header" and "sig" of a block must be byte strings')
    if not isinstance(raw_txs, list) or not all(isinstance(t, bytes) for t in raw_txs):
        raise DecodeError('"txs" of a block must be a list of byte strings')
    header = _decode_header(header_bytes)
    try:
        if known is None:
            txs = tuple([decode_tx(t) for t in raw_txs])
        else:
            txs = tuple([_reuse(known, t) for t in raw_txs])
    except (DecodeError, InvalidTransaction) as exc:
        raise InvalidBlock(f"block holds a malformed transaction: {exc}") from exc
    if merkle_root([t.txid for t in txs]) != header.txroot:
        raise InvalidBlock("block's transactions do not match its header's txroot")
    block = Block(
        header=header,
        header_bytes=header_bytes,
        sig=sig,
        txs=txs,
        hash=Hash32(hashlib.sha256(header_bytes).digest()),
    )
    object.__setattr__(block, "wire", bytes(data))  # decode() checked: the canonical bytes
    object.__setattr__(block, "txroot_checked", True)
    return block


def _decode_header(header_bytes: bytes) -> Header:
    """Decode and check a block header's canonical bytes."""
    h = decode(header_bytes, max_size=MAX_HEADER_BYTES, canonical=True)
    if not isinstance(h, dict) or set(h) != _HEADER_KEYS:
        raise InvalidBlock(f"block header must have exactly the fields {sorted(_HEADER_KEYS)}")
    for name, size in (("parent", 32), ("txroot", 32), ("state", 32), ("proposer", 20)):
        if not isinstance(h[name], bytes) or len(h[name]) != size:
            raise InvalidBlock(f"block header {name!r} must be {size} bytes")
    for name in ("height", "time"):
        if type(h[name]) is not int or not 0 <= h[name] < 2**63:
            raise InvalidBlock(f"block header {name!r} must be a non-negative integer")
    if not isinstance(h["chain"], str):
        raise InvalidBlock("block header 'chain' must be text")
    return Header(
        chain=h["chain"],
        height=Height(h["height"]),
        parent=Hash32(h["parent"]),
        txroot=Hash32(h["txroot"]),
        state=Hash32(h["state"]),
        time=h["time"],
        proposer=Address(h["proposer"]),
    )


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """A block's header and its proposer's signature, without the transactions.

    What the leader announces on the gossip ``heads`` topic: enough to learn that a block
    exists, its height and hash, and that a validator signed it (the transactions travel
    by Raft, and by block sync to a node that lacks them). Wire form: canonical
    ``{"header": bytes, "sig": bytes}``.
    """

    header: Header
    header_bytes: bytes
    sig: bytes
    hash: Hash32

    @property
    def height(self) -> Height:
        return self.header.height

    def encode(self) -> bytes:
        return encode({"header": self.header_bytes, "sig": self.sig})


def signed_header(block: Block) -> SignedHeader:
    """The announcement of ``block`` (its header and signature)."""
    return SignedHeader(block.header, block.header_bytes, block.sig, block.hash)


def decode_signed_header(data: bytes) -> SignedHeader:
    """Decode an announcement and check its header's fields (not its signature).

    Raises:
        DecodeError: malformed, non-canonical or over ``MAX_SIGNED_HEADER_BYTES``.
        InvalidBlock: a header field is wrong.
    """
    header_bytes, sig = decode_signed_envelope(data, "header", "signed header",
                                               max_size=MAX_SIGNED_HEADER_BYTES)
    return SignedHeader(_decode_header(header_bytes), header_bytes, sig,
                        Hash32(hashlib.sha256(header_bytes).digest()))


def stored_block_hash(data: bytes) -> Hash32:
    """The hash of a block from its wire bytes, decoding only the outer map (not the txs).

    For bytes that were a valid block once, such as a store's: a block's hash is the sha256
    of its header bytes, so serving a stored block needs neither its transactions decoded
    nor its canonical form re-checked. Nothing else about the block is checked.

    Raises:
        DecodeError: ``data`` is not a CBOR map with a byte-string ``header``.
    """
    outer = decode(data, max_size=len(data), canonical=False, max_depth=3, walk=False)
    header = outer.get("header") if isinstance(outer, dict) else None
    if not isinstance(header, bytes):
        raise DecodeError('a block is a map {"header": bytes, "sig": bytes, "txs": [bytes]}')
    return Hash32(hashlib.sha256(header).digest())


def _reuse(known: Callable[[bytes], SignedTransaction | None], raw: bytes) -> SignedTransaction:
    """``known(raw)`` if it is the transaction ``raw`` encodes, else ``decode_tx(raw)``."""
    stx = known(raw)
    if stx is not None and type(stx) is SignedTransaction and stx.encode() == raw:
        return stx
    return decode_tx(raw)


def verify_block_signature(block: Block | SignedHeader) -> Address:
    """Return the proposer after checking that it signed the header.

    Raises:
        InvalidBlock: signature malformed or made by someone other than ``proposer``.
    """
    try:
        signer = recover_signer(block.header.chain, PURPOSE_BLOCK, block.header_bytes, block.sig)
    except RemoteError as exc:
        raise InvalidBlock(f"block signature is malformed: {exc}") from exc
    if signer != block.header.proposer:
        raise InvalidBlock(
            f"block {block.height} is signed by 0x{signer.hex()}, not its proposer "
            f"0x{block.header.proposer.hex()}"
        )
    return signer
