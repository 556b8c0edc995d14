"""Small value types shared by every layer (no behaviour, no imports beyond typing)."""

from __future__ import annotations

from typing import NewType

Hash32 = NewType("Hash32", bytes)
"""A 32-byte SHA-256 digest (block hash, tx id, code hash, state root)."""

Address = NewType("Address", bytes)
"""A 20-byte account address: the first 20 bytes of SHA-256 of the compressed public key."""

Height = NewType("Height", int)
MerchantId = NewType("MerchantId", str)
PeerId = NewType("PeerId", str)
NodeId = NewType("NodeId", str)
Term = NewType("Term", int)
LogIndex = NewType("LogIndex", int)

ZERO_HASH = Hash32(b"\x00" * 32)
