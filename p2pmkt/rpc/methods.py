"""Method names, parameter and result schemas of ``/p2pmkt/rpc/1.0.0``.

This table is the single source of truth for the methods section of docs/PROTOCOL.md
(:func:`methods_markdown` renders it; ``tests/rpc/test_docs.py`` checks the document holds
the rendering) and for parameter checking in :mod:`p2pmkt.rpc.server`.

Types used in schemas (CBOR major types):

* ``uint``      unsigned integer below 2**63
* ``text``      UTF-8 text string
* ``bytes``     byte string; ``bytes20`` exactly 20 bytes (an address); ``bytes32`` exactly 32 bytes
* ``bool``, ``map``, ``list[T]``, ``T | null``

Parameter maps are strict: unknown keys are an INVALID_PARAMS error, so typos fail loudly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pmkt.errors import DecodeError, RemoteError
from p2pmkt.rpc.protocol import ErrorCode

MAX_PAGE = 500
MAX_BATCH_TXS = 1024
"""Transactions one ``tx.submit_batch`` call may carry (the frame limit applies too)."""
DEFAULT_PAGE = 50
EVENT_KINDS = ("block", "report", "market")
"""Event kinds a subscription may ask for (docs/PROTOCOL.md §Events)."""


class ParamsError(RemoteError):
    """Parameters do not match the method's schema; answered with INVALID_PARAMS."""

    reason = "invalid_params"


@dataclass(frozen=True, slots=True)
class Field:
    """One map entry of a schema. ``limit`` bounds a uint's value or a text/bytes length."""

    name: str
    type: str
    doc: str
    required: bool = True
    default: Any = None
    limit: int | None = None
    max_items: int = 64
    """Longest list a ``list[T]`` field accepts."""


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    summary: str
    params: tuple[Field, ...]
    result: tuple[Field, ...]
    errors: tuple[ErrorCode, ...] = ()
    exactly_one_of: tuple[str, ...] = ()


_PAGING = (
    Field("limit", "uint", f"at most this many items (default {DEFAULT_PAGE}, max {MAX_PAGE})",
          required=False, default=DEFAULT_PAGE, limit=MAX_PAGE),
    Field("before", "uint", "only items with a sequence number below this (paging backwards); "
          "omit for the newest", required=False),
)
_MERCHANT = Field("merchant", "text", "merchant id", limit=64)
_ITEMS = (
    Field("items", "list[map]", "newest first; each map has a uint \"seq\" usable as \"before\""),
)

METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in (
        MethodSpec(
            "node.info", "Who the node is and how it sees the network.", (),
            (
                Field("chain", "text", "chain id"),
                Field("peer_id", "text", "the node's libp2p peer id"),
                Field("address", "text | null", "the node's account address (0x + 40 hex)"),
                Field("version", "text", "software version"),
                Field("roles", "list[text]", "roles of the node's account, e.g. \"platform\""),
                Field("height", "uint", "height of the last committed block (0: genesis)"),
                Field("leader", "text | null", "address of the current Raft leader, if known"),
                Field("peers", "list[text]", "peer ids of connected chain members"),
                Field("mempool", "uint", "transactions waiting in this node's mempool"),
            ),
        ),
        MethodSpec(
            "chain.head", "The last committed block.", (),
            (
                Field("height", "uint", "0 before the first block"),
                Field("hash", "bytes32", "block hash (zeros at height 0)"),
                Field("time", "uint", "block time, ms since the Unix epoch"),
            ),
        ),
        MethodSpec(
            "chain.params", "The chain's consensus parameters (from its genesis): the limits a "
            "client's transactions must respect.", (),
            (
                Field("params", "map", "text → uint: block_interval_ms, max_block_txs, "
                      "max_block_bytes, max_tx_bytes, max_visits_per_tx, mempool_max_txs, "
                      "mempool_max_bytes, contract_fuel, contract_memory_bytes, "
                      "contract_max_code_bytes, max_report_window (OPERATIONS.md, genesis)"),
            ),
        ),
        MethodSpec(
            "chain.block", "One committed block, by height or by hash (give exactly one).",
            (
                Field("height", "uint", "block height", required=False),
                Field("hash", "bytes32", "block hash", required=False),
                Field("body", "bool", "false: answer without `block` (height, hash and "
                      "`applied_at` only; a block may be megabytes). Default true",
                      required=False, default=True),
            ),
            (
                Field("height", "uint", "block height"),
                Field("hash", "bytes32", "block hash"),
                Field("block", "bytes", "the block's wire bytes (canonical CBOR, §Blocks); "
                      "absent when asked with `body: false`", required=False),
                Field("applied_at", "uint", "when this node applied the block, ms since the Unix "
                      "epoch on its own clock (not chain data: for wall-time figures such as "
                      "`p2pmkt market cycle`'s); only for blocks it applied since it started",
                      required=False),
            ),
            (ErrorCode.NOT_FOUND,),
            exactly_one_of=("height", "hash"),
        ),
        MethodSpec(
            "tx.submit",
            "Submit a signed transaction; it is checked and pooled, then handed to a second "
            "validator so that two pools hold it: a follower hands it to the leader, the Raft "
            "leader to one follower (its backup, which brings it to the next leader should this "
            "one fail). Only what is refused there, or cannot be handed over, is gossiped to "
            "every node. Any node works; the leader (`node.info`'s `leader`) saves a hop.",
            (Field("tx", "bytes", "the signed transaction's wire bytes (§Transactions)"),),
            (Field("txid", "bytes32", "sha256 of the transaction body"),),
            (ErrorCode.INVALID_TX, ErrorCode.BAD_SIGNATURE, ErrorCode.BAD_NONCE,
             ErrorCode.PERMISSION_DENIED, ErrorCode.BUSY),
        ),
        MethodSpec(
            "tx.submit_batch",
            "Submit several signed transactions in one call (a node forwarding to the leader, or "
            "a client with many to send); each is judged on its own, in order. Against the "
            "per-peer rate limit a batch of n counts as n requests, except from the chain's "
            "members.",
            (
                Field("txs", "list[bytes]", f"signed transactions' wire bytes, at most "
                      f"{MAX_BATCH_TXS}", max_items=MAX_BATCH_TXS),
                Field("relay", "bool", "pass the accepted ones on as tx.submit does (default "
                      "true; a node handing its clients' transactions to the leader or to a "
                      "backup sends false: it gossips only what the receiver refuses)",
                      required=False, default=True),
            ),
            (Field("results", "list[map]", "one per transaction, in order: {\"txid\": bytes32} "
                   "when pooled (or already known), else {\"code\": uint, \"reason\": text, "
                   "\"message\": text} with the error tx.submit would have answered"),),
        ),
        MethodSpec(
            "tx.get",
            "Where a transaction stands. A pending transaction is known to the node it was "
            "submitted to and to the leader (to the leader and its backup, if it was submitted "
            "to the leader); other nodes answer NOT_FOUND until its block arrives, so ask the "
            "node you submitted to.",
            (Field("txid", "bytes32", "transaction id"),),
            (
                Field("txid", "bytes32", "transaction id"),
                Field("status", "text", "\"pending\", \"committed\" or \"rejected\""),
                Field("height", "uint", "block height (committed, or rejected inside a block)",
                      required=False),
                Field("reason", "text", "rejection reason slug, e.g. \"bad_nonce\"", required=False),
                Field("message", "text", "human-readable rejection message", required=False),
            ),
            (ErrorCode.NOT_FOUND,),
        ),
        MethodSpec(
            "account.get", "An account's next nonce, roles and validator status (the nonce is what a client needs to sign).",
            (Field("address", "bytes20", "account address"),),
            (
                Field("address", "bytes", "the address asked for"),
                Field("nonce", "uint", "next nonce in committed state"),
                Field("pending_nonce", "uint", "next nonce counting this node's pending "
                      "transactions: use it for the next transaction"),
                Field("member", "bool", "whether the address is a chain member"),
                Field("roles", "list[text]", "its roles, e.g. \"merchant-ops:acme\""),
                Field("validator", "text", "\"voter\", \"learner\" (replicates blocks, does not "
                      "vote) or \"none\""),
            ),
        ),
        MethodSpec(
            "market.indicator", "One configured indicator of a merchant (null if none).",
            (_MERCHANT, Field("name", "text", "indicator name", limit=64)),
            (Field("indicator", "map | null", "merchant, name, code (hash), params, condition, "
                   "target; as in indicator.configure"),),
        ),
        MethodSpec(
            "market.indicators", "Every configured indicator of a merchant, by name.",
            (_MERCHANT,),
            (Field("items", "list[map]", "the indicators, as market.indicator answers each, "
                   "sorted by name (empty when none)"),),
            (ErrorCode.NOT_FOUND,),
        ),
        MethodSpec(
            "market.info", "A merchant's current marketing information.",
            (_MERCHANT,),
            (Field("info", "map", "the current version (its schema: §Market data)"),),
            (ErrorCode.NOT_FOUND,),
        ),
        MethodSpec(
            "market.history", "Past versions of a merchant's marketing information.",
            (_MERCHANT, *_PAGING), _ITEMS, (ErrorCode.NOT_FOUND,),
        ),
        MethodSpec(
            "market.reports", "Indicator reports written for a merchant.",
            (_MERCHANT, *_PAGING), _ITEMS, (ErrorCode.NOT_FOUND,),
        ),
        MethodSpec(
            "events.subscribe",
            "Start pushing events of the given kinds on this stream (§Events).",
            (
                Field("kinds", "list[text]", "any of \"block\", \"report\", \"market\" "
                      "(default: all)", required=False),
                Field("merchant", "text", "only report/market events of this merchant",
                      required=False, limit=64),
            ),
            (Field("sub", "uint", "subscription number, carried by each event"),),
            (ErrorCode.BUSY,),
        ),
        MethodSpec(
            "events.unsubscribe", "Stop a subscription of this stream.",
            (Field("sub", "uint", "subscription number"),),
            (Field("ok", "bool", "false if there was no such subscription"),),
        ),
    )
}


def _type_ok(type_: str, value: Any, limit: int | None, max_items: int = 64) -> bool:
    if type_ == "uint":
        ok = type(value) is int and 0 <= value < 2**63
        return ok and (limit is None or value <= limit)
    if type_ == "text":
        return isinstance(value, str) and (limit is None or len(value) <= limit)
    if type_ == "bytes":
        return isinstance(value, bytes) and (limit is None or len(value) <= limit)
    if type_ in ("bytes20", "bytes32"):
        return isinstance(value, bytes) and len(value) == int(type_[5:])
    if type_ == "bool":
        return isinstance(value, bool)
    if type_ == "map":
        return isinstance(value, dict)
    if type_.startswith("list[") and type_.endswith("]"):
        inner = type_[5:-1]
        return isinstance(value, list) and len(value) <= max_items and all(
            _type_ok(inner, v, limit) for v in value
        )
    raise AssertionError(f"unknown schema type {type_}")


def check_params(spec: MethodSpec, params: dict[str, Any]) -> dict[str, Any]:
    """Return ``params`` with defaults filled in.

    Raises:
        ParamsError: unknown, missing or mistyped parameters; the message names the field.
    """
    known = {f.name: f for f in spec.params}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParamsError(f"{spec.name}: unknown parameters {unknown}")
    out: dict[str, Any] = {}
    for f in spec.params:
        if f.name not in params:
            if f.required:
                raise ParamsError(f"{spec.name}: missing parameter {f.name!r} ({f.type})")
            out[f.name] = f.default
            continue
        value = params[f.name]
        if not _type_ok(f.type, value, f.limit, f.max_items):
            bound = f" (limit {f.limit})" if f.limit is not None else ""
            if f.type.startswith("list["):
                bound += f" (at most {f.max_items} items)"
            raise ParamsError(f"{spec.name}: parameter {f.name!r} must be {f.type}{bound}")
        out[f.name] = value
    if spec.exactly_one_of:
        given = [n for n in spec.exactly_one_of if params.get(n) is not None]
        if len(given) != 1:
            raise ParamsError(f"{spec.name}: give exactly one of {list(spec.exactly_one_of)}")
    return out


def check_result(spec: MethodSpec, result: Any) -> dict[str, Any]:
    """Check a node's answer to ``spec`` against its result schema (a client's side).

    Unknown keys are allowed (a newer node may add some); missing optional keys are absent.

    Raises:
        DecodeError: the answer is not a map, or a field is missing or mistyped; the message
            names the method and the field.
    """
    if not isinstance(result, dict):
        raise DecodeError(f"{spec.name}: the node answered {type(result).__name__}, not a map")
    for f in spec.result:
        if f.name not in result:
            if f.required:
                raise DecodeError(f"{spec.name}: the node's answer lacks {f.name!r} ({f.type})")
            continue
        value = result[f.name]
        ok = any(_type_ok(t.strip(), value, f.limit, f.max_items) if t.strip() != "null" else value is None
                 for t in f.type.split("|"))
        if not ok:
            raise DecodeError(f"{spec.name}: {f.name!r} in the node's answer must be {f.type}")
    return result


def methods_markdown() -> str:
    """Render every method as the Markdown that docs/PROTOCOL.md §Methods contains."""
    parts: list[str] = []
    for spec in METHODS.values():
        parts.append(f"### `{spec.name}`\n\n{spec.summary}\n")
        parts.append(_table("Params", spec.params) if spec.params else "Params: none (`{}`).\n")
        parts.append(_table("Result", spec.result))
        if spec.errors:
            names = ", ".join(f"`{c.name}` ({int(c)})" for c in spec.errors)
            parts.append(f"Errors besides the general ones: {names}.\n")
    return "\n".join(parts)


def _table(title: str, fields: tuple[Field, ...]) -> str:
    rows = [f"{title}:\n", "| key | type | required | meaning |", "|---|---|---|---|"]
    for f in fields:
        rows.append(f"| `{f.name}` | {f.type} | {'yes' if f.required else 'no'} | {f.doc} |")
    return "\n".join(rows) + "\n"
