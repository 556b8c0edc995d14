"""Binary Merkle root over 32-byte leaves (RFC 6962 style, domain-separated).

leaf = H(0x00 ‖ item), node = H(0x01 ‖ left ‖ right); an odd node at a level is carried up
unchanged. The empty tree's root is H(b""). Used for the transactions root of a block.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from p2pmkt.types import Hash32

EMPTY_ROOT = Hash32(hashlib.sha256(b"").digest())


def merkle_root(items: Sequence[bytes]) -> Hash32:
    if not items:
        return EMPTY_ROOT
    sha = hashlib.sha256
    level = [sha(b"\x00" + item).digest() for item in items]
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return Hash32(level[0])
