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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from p2pmkt.chain._slots import slot_builder
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.crypto.signing import PURPOSE_TX, recover_signer, sign
from p2pmkt.errors import DecodeError, InvalidSignature, InvalidTransaction
from p2pmkt.types import Address, Hash32
from p2pmkt.wire.cbor import decode, encode, encode_unchecked

MAX_TX_BYTES = 1024 * 1024
"""Hard ceiling for one encoded transaction; the chain's genesis may set a lower one."""

_BODY_KEYS = frozenset({"chain", "from", "nonce", "kind", "payload"})


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


def decode_tx(data: bytes, *, max_size: int = MAX_TX_BYTES) -> SignedTransaction:
    """Decode the wire form **without** checking the signature (see :func:`verify_tx`).

    Raises:
        DecodeError: not canonical CBOR of the right shape, or too large.
        InvalidTransaction: a body field has the wrong type or range.
    """
    split = _split_envelope(data) if type(data) is bytes and len(data) <= max_size else None
    if split is not None:
        sig, body = split
    else:
        outer = decode(data, max_size=max_size, canonical=True, max_depth=2)
        if not isinstance(outer, dict) or set(outer) != {"body", "sig"}:
            raise DecodeError('a signed transaction is a map {"body": bytes, "sig": bytes}')
        body, sig = outer["body"], outer["sig"]
        if not isinstance(body, bytes) or not isinstance(sig, bytes):
            raise DecodeError('"body" and "sig" of a signed transaction must be byte strings')
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
    for stx in stxs:
        tx = stx.tx
        if tx.chain != chain_id or len(stx.body) + len(stx.sig) > max_bytes:
            continue
        key = (chain_id, stx.txid, stx.sig)
        if key in _VERIFIED:
            continue
        try:
            signer = recover_signer(chain_id, PURPOSE_TX, stx.body, stx.sig)
        except InvalidSignature:
            continue
        if signer == tx.sender:
            _remember(key)


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
