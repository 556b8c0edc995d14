"""Transaction bundles: many transactions in one gossip message.

One GossipSub message costs 2–5 ms of CPU per node in py-libp2p (notes/py-libp2p.md §2), far
more than a signature check, so transactions travel in bundles::

    Bundle = {"txs": [bstr, ...]}      canonical CBOR; each bstr is SignedTransaction wire bytes

A bundle holds at least one transaction. Limits (bytes, count) are the caller's; decoding never
raises anything but :class:`~p2pmkt.errors.DecodeError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from p2pmkt.errors import DecodeError
from p2pmkt.wire.cbor import decode, encode_unchecked

DEFAULT_MAX_BUNDLE_BYTES = 1024 * 1024
DEFAULT_MAX_BUNDLE_TXS = 1000


def encode_bundle(txs: Sequence[bytes]) -> bytes:
    """Encode signed-transaction wire bytes as one bundle.

    Raises:
        ValueError: ``txs`` is empty (an empty bundle is never valid on the wire).
    """
    if not txs:
        raise ValueError("a bundle holds at least one transaction")
    return encode_unchecked({"txs": [bytes(t) for t in txs]})


def decode_bundle(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    max_txs: int = DEFAULT_MAX_BUNDLE_TXS,
) -> list[bytes]:
    """Return the transaction byte strings of a bundle (transactions are not decoded).

    Raises:
        DecodeError: too large, not canonical CBOR, wrong shape, empty, or too many txs.
    """
    value = decode(data, max_size=max_bytes, canonical=True, max_depth=2)
    if not isinstance(value, dict) or set(value) != {"txs"}:
        raise DecodeError('a bundle is a map {"txs": [bytes, ...]}')
    txs = value["txs"]
    if not isinstance(txs, list) or not all(isinstance(t, bytes) for t in txs):
        raise DecodeError('"txs" of a bundle must be a list of byte strings')
    if not txs:
        raise DecodeError("a bundle holds at least one transaction")
    if len(txs) > max_txs:
        raise DecodeError(f"bundle holds {len(txs)} transactions; the limit is {max_txs}")
    return txs
