"""stored_block_hash: a block's hash from its wire bytes without decoding its transactions."""

from __future__ import annotations

import pytest

from p2pmkt.chain.block import build_block, decode_block, stored_block_hash
from p2pmkt.chain.tx import make_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.errors import DecodeError
from p2pmkt.types import ZERO_HASH

CHAIN = "hash-test"


def test_stored_block_hash_equals_the_decoded_blocks_hash() -> None:
    key = PrivateKey.from_seed("hash-test/validator")
    txs = [make_tx(key, CHAIN, n, "visit.batch", {"visits": []}) for n in range(3)]
    block = build_block(key, chain=CHAIN, height=1, parent=ZERO_HASH, state=ZERO_HASH, time=1, txs=txs)
    data = block.encode()
    assert stored_block_hash(data) == decode_block(data).hash == block.hash


@pytest.mark.parametrize("data", [b"", b"\xa0", b"\x43abc", b"\xa1\x66header\x01"])
def test_stored_block_hash_refuses_what_is_no_block(data: bytes) -> None:
    with pytest.raises(DecodeError):
        stored_block_hash(data)
