"""Signing with domain separation.

A signature is over ``sha256(DOMAIN_TAG ‖ chain_id ‖ 0x00 ‖ purpose ‖ 0x00 ‖ message)``, where
``message`` is canonical CBOR. Binding the chain id and the purpose (``"tx"``, ``"block"``, …)
into the digest means a signature made for one chain, or for one kind of object, is never
valid for another: a testnet transaction cannot be replayed on a production chain, and a
signed block header can never pass as a transaction.

Chain ids and purposes are short printable ASCII without NUL, so the encoding is unambiguous.
"""

from __future__ import annotations

import hashlib

from p2pmkt.crypto.keys import PrivateKey, address_of, recover_public_key
from p2pmkt.errors import InvalidSignature
from p2pmkt.types import Address

DOMAIN_TAG = b"p2pmkt/sig/v1\x00"

PURPOSE_TX = "tx"
PURPOSE_BLOCK = "block"


def signing_digest(chain_id: str, purpose: str, message: bytes) -> bytes:
    """The 32-byte digest that is signed for ``message`` in this chain and purpose."""
    return hashlib.sha256(
        DOMAIN_TAG + chain_id.encode() + b"\x00" + purpose.encode() + b"\x00" + message
    ).digest()


def sign(key: PrivateKey, chain_id: str, purpose: str, message: bytes) -> bytes:
    """65-byte recoverable signature of ``message`` for ``chain_id`` and ``purpose``."""
    return key.sign_digest(signing_digest(chain_id, purpose, message))


def recover_signer(chain_id: str, purpose: str, message: bytes, signature: bytes) -> Address:
    """Address of whoever signed ``message`` for this chain and purpose.

    Raises:
        InvalidSignature: malformed signature.
    """
    return address_of(recover_public_key(signature, signing_digest(chain_id, purpose, message)))


def verify(chain_id: str, purpose: str, message: bytes, signature: bytes, signer: bytes) -> None:
    """Check that ``signer`` signed ``message`` for this chain and purpose.

    Raises:
        InvalidSignature: the signature is malformed or was made by another key, for
            another chain, or for another purpose.
    """
    if recover_signer(chain_id, purpose, message, signature) != signer:
        raise InvalidSignature(
            f"signature does not match sender 0x{signer.hex()} for chain {chain_id!r} and "
            f"purpose {purpose!r} (wrong key, wrong chain id, or altered content)"
        )
