"""libp2p peer ids of secp256k1 keys, computed without importing libp2p (0.6 s to import).

A libp2p peer id of a key whose protobuf encoding is at most 42 bytes is the *identity*
multihash of that encoding, in base58btc. For a compressed secp256k1 key the protobuf
``PublicKey{Type: Secp256k1 (2), Data: 33 bytes}`` is 37 bytes, so the id is
``base58(0x00 0x25 ‖ 08 02 12 21 ‖ key)`` and always starts with ``16Uiu2``.
(``tests/crypto`` checks this against py-libp2p's own ``ID.from_pubkey``.)
"""

from __future__ import annotations

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_ALPHABET[rem])
    pad = len(data) - len(data.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(out))


def peer_id_of(compressed_pubkey: bytes) -> str:
    """Base58 libp2p peer id of a 33-byte compressed secp256k1 public key."""
    if len(compressed_pubkey) != 33:
        raise ValueError("expected a 33-byte compressed secp256k1 public key")
    proto = b"\x08\x02\x12\x21" + compressed_pubkey
    return _b58encode(b"\x00" + bytes([len(proto)]) + proto)
