"""Signed transactions: the envelope every state change travels in.

Wire form (canonical CBOR; see docs/PROTOCOL.md for a byte-level example)::

    SignedTransaction = {"body": bstr, "sig": bstr(65)}
    body (canonical CBOR map) = {
        "chain":   tstr,        chain id; a transaction is only valid on its own chain
        "from":    bstr(20),    sender address
        "nonce":   uint,        per-sender sequence number, starting at 0 (replay protection)
        "kind":    tstr,        e.g. "visit.batch", "market.update" (see p2pmkt.market.kinds)
        "payload": map,         kind-specific, validated by the kind's handler
    }

``sig`` is a recoverable secp256k1 signature over ``body`` with purpose ``"tx"``
(:mod:`p2pmkt.crypto.signing`). The transaction id is ``sha256(body)``: it does not cover the
signature, so ECDSA malleability cannot mint a second id for one transaction.

Invariants: ``body`` is the canonical encoding of the body map (checked on decode), ``from``
recovers from ``sig``; decoding never raises anything but :class:`DecodeError`,
:class:`InvalidTransaction` or :class:`InvalidSignature`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from p2pmkt.chain._slots import slot_builder
from p2pmkt.crypto.keys import PrivateKey, address_of, recover_public_key
from p2pmkt.crypto.signing import DOMAIN_TAG, PURPOSE_TX, recover_signer, sign
from p2pmkt.errors import DecodeError, InvalidSignature, InvalidTransaction
from p2pmkt.types import Address, Hash32
from p2pmkt.wire.cbor import decode, decode_canonical_map, encode, encode_unchecked

MAX_TX_BYTES = 1024 * 1024
"""Hard ceiling for one encoded transaction; the chain's genesis may set a lower one."""

_BODY_KEYS = frozenset({"chain", "from", "nonce", "kind", "payload"})
_BODY_ORDER = ("from", "kind", "chain", "nonce", "payload")  # canonical: by length, then bytes
_NONCE_END = 2**63
_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class Transaction:
    """An unsigned transaction body."""

    chain: str
    sender: Address
    nonce: int
    kind: str
    payload: dict[str, Any]

    def encode_body(self) -> bytes:
        return encode(
            {
                "chain": self.chain,
                "from": bytes(self.sender),
                "nonce": self.nonce,
                "kind": self.kind,
                "payload": self.payload,
            }
        )

    def sign(self, key: PrivateKey) -> SignedTransaction:
        """Sign with ``key``, whose address must be ``sender``."""
        if key.address != self.sender:
            raise ValueError("signing key does not belong to the transaction's sender")
        body = self.encode_body()
        return SignedTransaction(
            tx=self, body=body, sig=sign(key, self.chain, PURPOSE_TX, body),
            txid=Hash32(hashlib.sha256(body).digest()),
        )


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    """A transaction with its canonical body bytes, signature and id."""

    tx: Transaction
    body: bytes
    sig: bytes
    txid: Hash32

    def encode(self) -> bytes:
        if len(self.sig) == 65:
            # Built by hand: blocks carry every transaction's wire form, and this is the
            # canonical encoding without a cbor2 round trip (decode_tx pins the layout).
            return _ENVELOPE_HEAD + self.sig + _BODY_KEY + _bstr_head(len(self.body)) + self.body
        return encode_unchecked({"body": self.body, "sig": self.sig})

    @property
    def sender(self) -> Address:
        return self.tx.sender


def make_tx(
    key: PrivateKey, chain: str, nonce: int, kind: str, payload: dict[str, Any]
) -> SignedTransaction:
    """Build and sign a transaction from ``key``'s address."""
    return Transaction(chain, key.address, nonce, kind, payload).sign(key)


def decode_signed_envelope(data: bytes, key: str, what: str, *, max_size: int) -> tuple[bytes, bytes]:
    """Decode the canonical map ``{key: bytes, "sig": bytes}`` a signed object travels in.

    Returns ``(data[key], sig)``. ``what`` names the object in errors.

    Raises:
        DecodeError: malformed, non-canonical, too large, other keys, or not byte strings.
    """
    outer = decode(data, max_size=max_size, canonical=True, max_depth=2)
    if not isinstance(outer, dict) or set(outer) != {key, "sig"}:
        raise DecodeError(f'a {what} is a map {{"{key}": bytes, "sig": bytes}}')
    signed, sig = outer[key], outer["sig"]
    if not isinstance(signed, bytes) or not isinstance(sig, bytes):
        raise DecodeError(f'"{key}" and "sig" of a {what} must be byte strings')
    return signed, sig


def decode_tx(data: bytes, *, max_size: int = MAX_TX_BYTES) -> SignedTransaction:
    """Decode the wire form **without** checking the signature (see :func:`verify_tx`).

    Raises:
        DecodeError: not canonical CBOR of the right shape, or too large.
        InvalidTransaction: a body field has the wrong type or range.
    """
    split = _split_envelope(data) if type(data) is bytes and len(data) <= max_size else None
    if split is not None:
        sig, body = split
        # Fast path: a canonical body with valid fields is accepted here, in one pass; anything
        # else falls through to the general decode below, which decides as it always has.
        fields = decode_canonical_map(body, _BODY_ORDER)
        if fields is not None:
            sender, kind, chain, nonce, payload = fields.values()  # _BODY_ORDER
            if (
                type(chain) is str and 0 < len(chain) <= 64
                and type(sender) is bytes and len(sender) == 20
                and type(nonce) is int and 0 <= nonce < _NONCE_END
                and type(kind) is str and 0 < len(kind) <= 64
                and type(payload) is dict
            ):
                tx = _new_transaction(chain, Address(sender), nonce, kind, payload)
                return _new_signed(tx, body, sig, Hash32(_sha256(body).digest()))
    else:
        body, sig = decode_signed_envelope(data, "body", "signed transaction", max_size=max_size)
    fields = decode(body, max_size=max_size, canonical=True)
    if not isinstance(fields, dict) or fields.keys() != _BODY_KEYS:
        raise InvalidTransaction(
            f"transaction body must have exactly the fields {sorted(_BODY_KEYS)}"
        )
    chain, sender, nonce, kind, payload = (
        fields["chain"], fields["from"], fields["nonce"], fields["kind"], fields["payload"]
    )
    if not isinstance(chain, str) or not 0 < len(chain) <= 64:
        raise InvalidTransaction("transaction 'chain' must be a chain id of 1 to 64 characters")
    if not isinstance(sender, bytes) or len(sender) != 20:
        raise InvalidTransaction("transaction 'from' must be a 20-byte address")
    if type(nonce) is not int or not 0 <= nonce < 2**63:
        raise InvalidTransaction("transaction 'nonce' must be an integer in [0, 2**63)")
    if not isinstance(kind, str) or not 0 < len(kind) <= 64:
        raise InvalidTransaction("transaction 'kind' must be text of 1 to 64 characters")
    if not isinstance(payload, dict):
        raise InvalidTransaction("transaction 'payload' must be a map")
    tx = _new_transaction(chain, Address(sender), nonce, kind, payload)
    return _new_signed(tx, body, sig, Hash32(hashlib.sha256(body).digest()))


ENTRY_COST_PER_WIRE_BYTE = 5
"""Memory a :class:`DecodedTxCache` entry holds per byte of its wire form: the key (the wire
bytes), the body and the decoded payload (a 2,000-visit ``visit.pack`` of 107 kB decodes to
~440 kB of Python objects, its text table mostly; measured with tracemalloc)."""


class DecodedTxCache:
    """A bounded memo of :func:`decode_tx` keyed by the exact wire bytes.

    A node decodes one transaction several times: at admission (RPC or gossip), and again when
    its block arrives (``decode_block``). Decoding is a pure function of the bytes, so a
    transaction decoded once can be handed out again for identical bytes: a hit is one dict
    lookup instead of ~15 us of canonical decoding. The signature is not part of this: a hit is
    exactly what :func:`decode_tx` returns, never a verified transaction.

    Eviction is least recently used; at most ``max_entries`` transactions are kept, and
    ``max_bytes`` bounds their memory, each entry charged ``ENTRY_COST_PER_WIRE_BYTE`` times
    its wire size.
    Not thread-safe: use one per thread, or from one thread.

    Use it as ``decode_block(data, known=cache.get)`` to reuse what admission decoded.
    """

    __slots__ = ("_bytes", "_entries", "hits", "max_bytes", "max_entries", "misses")

    def __init__(self, max_entries: int = 65_536, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a DecodedTxCache needs room for at least one entry and one byte")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, SignedTransaction] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def decode(self, data: bytes, max_size: int = MAX_TX_BYTES) -> SignedTransaction:
        """``decode_tx(data, max_size=max_size)``, from the cache when ``data`` was seen.

        Raises:
            DecodeError, InvalidTransaction: as :func:`decode_tx` (failures are not cached).
        """
        key = bytes(data)
        if len(key) <= max_size:
            stx = self.get(key)
            if stx is not None:
                return stx
        stx = decode_tx(key, max_size=max_size)
        self.misses += 1
        self._put(key, stx)
        return stx

    def get(self, data: bytes) -> SignedTransaction | None:
        """The transaction decoded earlier from exactly ``data``, or None (no decoding)."""
        stx = self._entries.get(data) if type(data) is bytes else None
        if stx is not None:
            self._entries.move_to_end(data)
            self.hits += 1
        return stx

    def add(self, data: bytes, stx: SignedTransaction) -> None:
        """Remember ``stx`` for ``data``; ``stx`` must be what ``decode_tx(data)`` returned.

        For callers that decoded ``data`` themselves (e.g. a gossip validator). Checked
        cheaply: ``stx.encode()`` must give back ``data`` exactly, else ValueError.
        """
        key = bytes(data)
        if stx.encode() != key:
            raise ValueError("DecodedTxCache.add: the transaction does not encode to these bytes")
        self._put(key, stx)

    def _put(self, key: bytes, stx: SignedTransaction) -> None:
        size = len(key) * ENTRY_COST_PER_WIRE_BYTE
        if size > self.max_bytes:
            return
        entries = self._entries
        old = entries.pop(key, None)
        if old is not None:
            self._bytes -= size
        entries[key] = stx
        self._bytes += size
        while len(entries) > self.max_entries or self._bytes > self.max_bytes:
            evicted, _ = entries.popitem(last=False)
            self._bytes -= len(evicted) * ENTRY_COST_PER_WIRE_BYTE

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, data: object) -> bool:
        return data in self._entries

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


# Every field checked above; built without the frozen __init__'s per-field cost (_slots).
_new_transaction = slot_builder(Transaction)
_new_signed = slot_builder(SignedTransaction)


# The canonical envelope with a 65-byte signature is a fixed layout (keys sort "sig" before
# "body": shorter first):  a2 | 63 "sig" | 58 41 sig(65) | 64 "body" | bstr head | body.
# decode_tx splits it with slicing instead of a canonical CBOR decode + re-encode (~10 us per
# transaction); anything else takes the general path, which accepts or rejects exactly as before.
_ENVELOPE_HEAD = b"\xa2\x63sig\x58\x41"
_BODY_KEY = b"\x64body"
_SIG_END = len(_ENVELOPE_HEAD) + 65
_BODY_AT = _SIG_END + len(_BODY_KEY)


def _bstr_head(n: int) -> bytes:
    """Shortest-form CBOR byte-string header for length ``n``."""
    if n < 24:
        return bytes((0x40 + n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x5a" + n.to_bytes(4, "big")
    return b"\x5b" + n.to_bytes(8, "big")


def _split_envelope(data: bytes) -> tuple[bytes, bytes] | None:
    """``(sig, body)`` if ``data`` is exactly the canonical envelope with a 65-byte sig."""
    if not data.startswith(_ENVELOPE_HEAD) or data[_SIG_END:_BODY_AT] != _BODY_KEY:
        return None
    if len(data) <= _BODY_AT:
        return None
    head_len = _BSTR_HEAD_LEN.get(data[_BODY_AT], 1)
    size = len(data) - _BODY_AT - head_len
    if size < 0 or data[_BODY_AT : _BODY_AT + head_len] != _bstr_head(size):
        return None  # not a shortest-form byte-string header for exactly the rest
    return data[len(_ENVELOPE_HEAD) : _SIG_END], data[_BODY_AT + head_len :]


_BSTR_HEAD_LEN = {0x58: 2, 0x59: 3, 0x5A: 5, 0x5B: 9}


def verify_tx(stx: SignedTransaction, chain_id: str) -> None:
    """Check chain id and signature.

    Raises:
        InvalidTransaction: the transaction is for another chain.
        InvalidSignature: the signature was not made by ``from`` for this chain.
    """
    if stx.tx.chain != chain_id:
        raise InvalidTransaction(
            f"transaction is for chain {stx.tx.chain!r}, this node runs {chain_id!r}",
            reason="wrong_chain",
        )
    key = (chain_id, stx.txid, stx.sig)
    if key in _VERIFIED:
        return
    signer = recover_signer(chain_id, PURPOSE_TX, stx.body, stx.sig)
    if signer != stx.tx.sender:
        raise InvalidSignature(
            f"signature was made by 0x{signer.hex()}, not by the sender 0x{stx.tx.sender.hex()}"
        )
    _remember(key)


def verify_txs(stxs: Sequence[SignedTransaction], chain_id: str, max_bytes: int) -> None:
    """Check the signatures of ``stxs`` back to back and remember the valid ones.

    Block application calls this before it applies the block's transactions one by one; each
    :func:`verify_tx` then finds its transaction already verified. Outcomes do not change: this
    raises nothing and remembers only signatures that :func:`verify_tx` would accept, so a bad
    one is refused by :func:`verify_tx` in its turn, with its message (at the price of a second
    recovery, for a transaction no honest leader puts in a block). Transactions for another
    chain or over ``max_bytes`` (body plus signature) are skipped, as the checks before the
    signature would refuse them.

    Why: interleaved with applying transactions, a recovery costs ~40 % more than back to back
    (measured in tools/bench/apply.py: the interpreter's working set evicts secp256k1's tables
    from the CPU caches between two recoveries).
    """
    # recover_signer, unrolled: the digest's constant prefix built once, and the address of a
    # recovered key looked up (senders repeat) instead of hashed; tests pin the equivalence.
    prefix = signing_digest_prefix(chain_id, PURPOSE_TX)
    sha256, recover, addresses = hashlib.sha256, recover_public_key, _ADDRESSES
    for stx in stxs:
        tx = stx.tx
        if tx.chain != chain_id or len(stx.body) + len(stx.sig) > max_bytes:
            continue
        key = (chain_id, stx.txid, stx.sig)
        if key in _VERIFIED:
            continue
        try:
            public_key = recover(stx.sig, sha256(prefix + stx.body).digest())
        except InvalidSignature:
            continue
        signer = addresses.get(public_key)
        if signer is None:
            signer = address_of(public_key)
            if len(addresses) >= _ADDRESSES_MAX:
                addresses.clear()
            addresses[public_key] = signer
        if signer == tx.sender:
            _remember(key)


def signing_digest_prefix(chain_id: str, purpose: str) -> bytes:
    """What :func:`p2pmkt.crypto.signing.signing_digest` hashes before the message.

    ``signing_digest(c, p, m) == sha256(signing_digest_prefix(c, p) + m).digest()``.
    """
    return DOMAIN_TAG + chain_id.encode() + b"\x00" + purpose.encode() + b"\x00"


# Compressed public key -> address, for verify_txs (a pure function; cleared when full).
_ADDRESSES: dict[bytes, Address] = {}
_ADDRESSES_MAX = 65_536


def _remember(key: tuple[str, bytes, bytes]) -> None:
    _VERIFIED[key] = None
    if len(_VERIFIED) > _VERIFIED_MAX:
        del _VERIFIED[next(iter(_VERIFIED))]  # oldest first (dicts keep insertion order)


# A node checks each transaction's signature when it enters the mempool and again when its
# block is applied (~30 µs of secp256k1 each, the dominant cost per transaction). Validity is
# a pure function of (chain, body, signature) and the txid is sha256(body), so remembering the
# pairs already verified changes no outcome, only the second cost.
_VERIFIED: dict[tuple[str, bytes, bytes], None] = {}
_VERIFIED_MAX = 100_000
