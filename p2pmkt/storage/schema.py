"""Every LMDB sub-database name and key/value layout, in one place.

Theory of operation
-------------------
One LMDB environment (a directory) holds the whole node: blocks, the transaction index, chain
state and, opened by :mod:`p2pmkt.storage.raftlog`, the Raft log. Sub-databases:

============== ======================================== =======================================
sub-db         key                                      value
============== ======================================== =======================================
``blocks``     height, 8 bytes big-endian               block wire bytes (``Block.encode()``)
``block_hash`` block hash (32 bytes)                    height, 8 bytes big-endian
``txs``        txid (32 bytes)                          height u64 BE ‖ index u32 BE ‖ status
                                                        u8 (0 ok, 1 rejected) [‖ CBOR
                                                        ``[reason, message]`` if rejected]
``meta``       ``b"schema"``, ``b"head"``,              CBOR (see :func:`encode_head`); the
               ``b"genesis_hash"``                      store's own bookkeeping, not chain state
``s.<table>``  the state table's key, unchanged         the state table's value, unchanged
``raft_log``,  owned by :mod:`p2pmkt.storage.raftlog`   (not described here)
``raft_state``,
``raft_snap``
============== ======================================== =======================================

Layout decision: one sub-db per state table
-------------------------------------------
Issue 2 left open whether state lives in one sub-db (key = table ‖ 0x00 ‖ key) or one per
table. Measured on the reference machine (``/tmp`` throwaway script, durable commits, a block of
1,000 txs = 1,000 random 20-byte account keys + 2,000 visit appends over 4 merchants + 1,000
random txids, 200 blocks; the machine was shared, so ±15 %)::

    one sub-db, keys unsorted      49k tx/s     one sub-db, keys sorted      54k tx/s
    per table,  keys unsorted      56k tx/s     per table,  keys sorted      67k tx/s

Per-table sub-dbs win (shorter keys, each table's B-tree pages stay together) and make scans
plain cursor ranges with no prefix arithmetic. Writes are applied per table in **sorted key
order**, and the tail of a table's sorted writes that lies beyond the table's current last key
goes in with ``MDB_APPEND`` (11x cheaper, machine-limits §4): block heights always qualify and
per-merchant visit sequences often do.

Invariants
----------
* ``meta[b"head"]`` names the last committed block (height 0 = genesis); ``blocks`` holds
  exactly heights 1..head, ``block_hash`` exactly their hashes, and state is the state after
  applying them. All of it changes in one write transaction per block.
* :data:`SCHEMA_VERSION` is written at creation; a store with another version is refused
  rather than misread.
* Stored CBOR is produced by this module only, so decoding a record that does not parse is
  corruption (:class:`~p2pmkt.errors.StorageError`), never remote input.
"""

from __future__ import annotations

import struct
from typing import Any

from p2pmkt.chain.state import TABLES
from p2pmkt.errors import DecodeError, StorageError
from p2pmkt.storage.api import Head, TxRecord
from p2pmkt.types import Hash32, Height
from p2pmkt.wire.cbor import decode, encode_unchecked

SCHEMA_VERSION = 1

DB_BLOCKS = b"blocks"
DB_BLOCK_HASH = b"block_hash"
DB_TXS = b"txs"
DB_META = b"meta"
STATE_DB_PREFIX = b"s."

RAFT_DBS = (b"raft_log", b"raft_state", b"raft_snap")
"""Opened by the Raft log module, not by the store; listed so the sub-db budget counts them."""

META_SCHEMA = b"schema"
META_HEAD = b"head"
META_GENESIS_HASH = b"genesis_hash"

MAX_DBS = 64
"""``max_dbs`` for the environment: room for every name here plus growth of ``TABLES``."""


def state_db_name(table: str) -> bytes:
    """Sub-db name of state table ``table`` (``"visits"`` → ``b"s.visits"``)."""
    return STATE_DB_PREFIX + table.encode()


STORE_DBS = (DB_BLOCKS, DB_BLOCK_HASH, DB_TXS, DB_META, *(state_db_name(t) for t in TABLES))
"""Every sub-db the store opens itself."""

# Fail at import, not at the first open after someone adds tables, if the budget is exceeded.
assert len(STORE_DBS) + len(RAFT_DBS) <= MAX_DBS, "raise MAX_DBS: too many sub-databases"


def height_key(height: int) -> bytes:
    """8-byte big-endian key: byte order equals numeric order, so heights append."""
    return height.to_bytes(8, "big")


def decode_height(raw: bytes) -> Height:
    if len(raw) != 8:
        raise StorageError(f"corrupt store: a height is 8 bytes, found {len(raw)}")
    return Height(int.from_bytes(raw, "big"))


def encode_head(head: Head) -> bytes:
    return encode_unchecked(
        {
            "height": head.height,
            "hash": bytes(head.hash),
            "time": head.time,
            "state_root": bytes(head.state_root),
        }
    )


def decode_head(raw: bytes) -> Head:
    obj = _decode_record(raw, "head", ("height", "hash", "time", "state_root"))
    return Head(
        height=Height(obj["height"]),
        hash=Hash32(obj["hash"]),
        time=obj["time"],
        state_root=Hash32(obj["state_root"]),
    )


_TX_FIXED = struct.Struct(">QIB")
_TX_STATUSES = ("ok", "rejected")


def encode_tx_record(height: int, index: int, status: str, reason: str, message: str) -> bytes:
    """Value of ``txs[txid]``.

    A fixed 13-byte prefix, not CBOR: a block of 1,000 transactions writes 1,000 of these on
    the commit path, and ``struct`` packs one in a fraction of a microsecond where canonical
    CBOR of a five-key map took several. Only rejections, which are rare, carry text.
    """
    code = _TX_STATUSES.index(status)
    fixed = _TX_FIXED.pack(height, index, code)
    return fixed if code == 0 else fixed + encode_unchecked([reason, message])


def tx_record_is_ok(raw: bytes) -> bool:
    """Whether a stored record says ``"ok"``, without decoding the rest."""
    return len(raw) == _TX_FIXED.size and raw[-1] == 0


def decode_tx_record(txid: bytes, raw: bytes) -> TxRecord:
    if len(raw) < _TX_FIXED.size:
        raise StorageError(f"corrupt store: tx record of {len(raw)} bytes is too short")
    height, index, code = _TX_FIXED.unpack_from(raw)
    reason = message = ""
    if code == 1:
        try:
            reason, message = decode(raw[_TX_FIXED.size:], max_depth=1)
        except (DecodeError, ValueError, TypeError) as exc:
            raise StorageError(f"corrupt store: tx record text does not decode ({exc})") from exc
    elif code != 0 or len(raw) != _TX_FIXED.size:
        raise StorageError(f"corrupt store: tx record has unknown status code {code}")
    return TxRecord(
        txid=Hash32(bytes(txid)),
        height=Height(height),
        index=index,
        status=_TX_STATUSES[code],
        reason=reason,
        message=message,
    )


def encode_int(value: int) -> bytes:
    return encode_unchecked(value)


def decode_int(raw: bytes, what: str) -> int:
    try:
        value = decode(raw, max_depth=1)
    except DecodeError as exc:
        raise StorageError(f"corrupt store: {what} does not decode ({exc})") from exc
    if type(value) is not int:
        raise StorageError(f"corrupt store: {what} is not an integer")
    return value


def _decode_record(raw: bytes, what: str, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        obj = decode(raw, max_depth=2)
    except DecodeError as exc:
        raise StorageError(f"corrupt store: {what} does not decode ({exc})") from exc
    if not isinstance(obj, dict) or set(obj) != set(keys):
        raise StorageError(f"corrupt store: {what} must have the fields {sorted(keys)}")
    return obj
