"""secp256k1 keys and addresses (coincurve).

An account is a secp256k1 key pair. Its :data:`~p2pmkt.types.Address` is the first 20 bytes
of SHA-256 over the 33-byte compressed public key, shown as ``0x`` + 40 hex digits. The same
key is the node's libp2p identity, so a validator's peer id and its address name one key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import coincurve

from p2pmkt.errors import InvalidSignature
from p2pmkt.types import Address

ADDRESS_LEN = 20


def address_of(public_key: bytes) -> Address:
    """Address of a 33-byte compressed public key."""
    return Address(hashlib.sha256(public_key).digest()[:ADDRESS_LEN])


def is_public_key(raw: bytes) -> bool:
    """True if ``raw`` is a compressed secp256k1 public key: 33 bytes, 02 or 03, on the curve."""
    if len(raw) != 33 or raw[0] not in (2, 3):
        return False
    try:
        coincurve.PublicKey(raw)
    except ValueError:
        return False
    return True


def address_hex(address: bytes) -> str:
    return "0x" + address.hex()


def parse_address(text: str) -> Address:
    """Parse ``0x`` + 40 hex digits (the ``0x`` is optional).

    Raises:
        ValueError: with a message naming the expected form.
    """
    raw = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        value = b""
    if len(value) != ADDRESS_LEN:
        raise ValueError(f"not an address: {text!r} (expected 0x followed by 40 hex digits)")
    return Address(value)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A compressed secp256k1 public key."""

    compressed: bytes

    @property
    def address(self) -> Address:
        return address_of(self.compressed)


class PrivateKey:
    """A secp256k1 secret. Never printed: ``repr`` shows only the address."""

    __slots__ = ("_key", "public_key")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError(f"a secp256k1 secret is 32 bytes, got {len(secret)}")
        try:
            self._key = coincurve.PrivateKey(secret)
        except ValueError as exc:
            raise ValueError("not a valid secp256k1 secret (zero or above the curve order)") from exc
        self.public_key = PublicKey(self._key.public_key.format(compressed=True))

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(coincurve.PrivateKey().secret)

    @classmethod
    def from_seed(cls, seed: str) -> PrivateKey:
        """Deterministic key from a text seed: for documented dev and test keys only."""
        return cls(hashlib.sha256(b"p2pmkt dev key\x00" + seed.encode()).digest())

    @property
    def secret(self) -> bytes:
        return bytes(self._key.secret)

    @property
    def address(self) -> Address:
        return self.public_key.address

    def sign_digest(self, digest: bytes) -> bytes:
        """65-byte recoverable signature (r ‖ s ‖ recovery id) over a 32-byte digest."""
        return bytes(self._key.sign_recoverable(digest, hasher=None))

    def __repr__(self) -> str:
        return f"PrivateKey(address={address_hex(self.address)})"


def recover_public_key(signature: bytes, digest: bytes) -> bytes:
    """Compressed public key that made ``signature`` over ``digest``.

    Raises:
        InvalidSignature: the signature is malformed or recovers no key.
    """
    if len(signature) != 65:
        raise InvalidSignature(f"signature must be 65 bytes (r, s, recovery id), got {len(signature)}")
    try:
        key = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except Exception as exc:  # coincurve raises ValueError or its own errors
        raise InvalidSignature("signature is malformed: no public key can be recovered") from exc
    return bytes(key.format(compressed=True))
