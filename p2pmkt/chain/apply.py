"""Block application: the deterministic state machine every node runs on committed blocks.

Theory of operation
-------------------
``apply_block(state, block, ...)`` is a pure function of the committed state, the block, the
genesis and the contract engine: it reads ``state`` and returns a :class:`BlockResult` holding
a :class:`~p2pmkt.chain.state.WriteBatch` of every write, one receipt per transaction, the
post-state root and events. It never writes to storage; the caller commits ``result.batch``
together with the block in one write transaction (issue 2, crash safety).

Steps, in order:

1. **Header** (any failure → :class:`InvalidBlock`, and the block is skipped identically on
   every node): chain id; height = head + 1; parent = head hash; ``state`` = current root (the
   header carries the *pre*-state root, see :mod:`p2pmkt.chain.block`); time > head time;
   proposer is a current voter; proposer signature; transaction root; count and size limits.
2. **Transactions**, each in its own overlay on top of the block's batch: size, chain id,
   signature, kind known, payload schema (:func:`p2pmkt.chain.validation.validate_tx`), then
   ``nonce == account nonce``, role and merchant scope,
   then the kind's handler. A transaction that fails gets a ``rejected`` receipt with the
   error's ``reason`` slug and message, and its overlay is dropped: it changes **nothing**,
   not even its sender's nonce. One that passes has its nonce incremented and its writes
   merged into the block's batch.
3. **End of block**: due indicator reports (:func:`p2pmkt.market.reports.end_block`).
4. **Head**: ``meta`` gets the new head; the state root is
   :func:`~p2pmkt.chain.state.next_state_root` of the previous root and the batch; it is then
   stored under ``meta/state_root`` (that one write is, by construction, not part of the digest
   it records).

The head lives in state, in table ``meta``, so storage needs no knowledge of its own:

==================  ====================================================================
key                 value
==================  ====================================================================
``chain_id``        UTF-8 chain id
``genesis``         genesis hash (32 bytes)
``params``          canonical CBOR of the :class:`ChainParams`
``head_height``     u64 BE; 0 after genesis
``head_hash``       hash of the head block's header; 32 zero bytes at genesis (block 1's
                    ``parent``)
``head_time``       u64 BE block time (ms) of the head; ``genesis_time`` at genesis
``state_root``      root after the head block; at genesis,
                    ``next_state_root(genesis hash, genesis batch)``
``validators``      voters and learners (:mod:`p2pmkt.chain.roles`)
==================  ====================================================================

Only :class:`RemoteError` from a transaction becomes a rejected receipt. Anything else (a
:class:`LocalError` such as a missing contract runtime, or a bug) propagates: a node that
cannot apply a block the way the others do must stop rather than commit a divergent state.

This is the one module of ``p2pmkt.chain`` that imports ``p2pmkt.market``: it composes the
generic ledger with the domain's transaction kinds and end-of-block reports. Everything else in
``chain`` is domain-free, and ``market`` only imports chain modules other than this one.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from p2pmkt.chain._slots import slot_builder
from p2pmkt.chain.block import Block, verify_block_signature
from p2pmkt.chain.contract_api import ContractRuntime
from p2pmkt.chain.genesis import Genesis, parse_role
from p2pmkt.chain.merkle import merkle_root
from p2pmkt.chain.roles import (
    MemberRecord,
    ValidatorSet,
    member_of,
    short_address,
    validator_set,
    write_member,
    write_validator_set,
)
from p2pmkt.chain.state import Receipt, StateReader, WriteBatch, next_state_root
from p2pmkt.chain.tx import _VERIFIED, SignedTransaction, verify_txs
from p2pmkt.chain.validation import validate_tx
from p2pmkt.errors import InvalidBlock, LocalError, NonceError, PermissionDenied, RemoteError
from p2pmkt.market.apply import KINDS
from p2pmkt.market.kinds import KindSpec, TxContext
from p2pmkt.market.reports import end_block
from p2pmkt.types import ZERO_HASH, Hash32, Height
from p2pmkt.wire.cbor import decode_text_uint_map, encode, encode_text_uint_map

__all__ = [
    "BlockResult",
    "Head",
    "account_nonce",
    "apply_block",
    "check_nonce",
    "genesis_batch",
    "read_head",
    "validate_tx_for_state",
    "validate_tx_queued",
]

_U64 = struct.Struct(">Q")
_new_receipt = slot_builder(Receipt)  # one per transaction; see p2pmkt.chain._slots
K_CHAIN_ID = b"chain_id"
K_GENESIS = b"genesis"
K_PARAMS = b"params"
K_HEIGHT = b"head_height"
K_HASH = b"head_hash"
K_TIME = b"head_time"
K_ROOT = b"state_root"


@dataclass(frozen=True, slots=True)
class Head:
    """The last applied block as recorded in state."""

    height: Height
    hash: Hash32
    time: int
    state_root: Hash32


@dataclass(frozen=True, slots=True)
class BlockResult:
    """Everything applying one block produced; the caller commits ``batch`` with ``block``.

    Attributes:
        block: the block applied.
        batch: every state write of the block (including the new head in ``meta``).
        receipts: one per transaction, in block order.
        state_root: the post-state root (the next block's header carries it).
        events: market and membership events, in the order they happened.
    """

    block: Block
    batch: WriteBatch
    receipts: tuple[Receipt, ...]
    state_root: Hash32
    events: tuple[object, ...]


class _EmptyState:
    def get(self, table: str, key: bytes) -> bytes | None:
        return None

    def scan(self, table: str, start: bytes = b"", end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        return iter(())


class _BlockReads:
    """``state`` as one block's application reads it: each key is fetched from storage once.

    ``apply_block`` reads committed state that does not change while the block applies (the
    block's own writes live in its :class:`WriteBatch`, which every read consults first), so
    the value read for a key is its value for the whole block. Blocks read the same keys again
    and again (a sender's member record on each of its transactions, the merchants' counters),
    and a storage read costs several times a dict lookup.
    """

    __slots__ = ("_memo", "_state")

    def __init__(self, state: StateReader) -> None:
        self._state = state
        self._memo: dict[str, dict[bytes, bytes | None]] = {}

    def get(self, table: str, key: bytes) -> bytes | None:
        memo = self._memo.get(table)
        if memo is None:
            memo = self._memo[table] = {}
        elif key in memo:
            return memo[key]
        value = memo[key] = self._state.get(table, key)
        return value

    def scan(self, table: str, start: bytes = b"", end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        return self._state.scan(table, start, end)


def genesis_batch(genesis: Genesis) -> WriteBatch:
    """The writes that make height-0 state from ``genesis`` (commit them into an empty store).

    Members with their roles, the merchants those roles name, the validator set (genesis
    validators are voters), parameters, and the head at height 0. ``meta/state_root`` holds the
    genesis state root.
    """
    batch = WriteBatch(_EmptyState())
    for m in genesis.members:
        write_member(batch, MemberRecord(m.address, m.name, m.pubkey, tuple(m.roles)))
        for role in m.roles:
            parse_role(role)  # genesis_from_json checked this; a hand-built Genesis may not have
    write_validator_set(batch, ValidatorSet(genesis.validator_addresses(), ()))
    batch.put("meta", K_CHAIN_ID, genesis.chain_id.encode())
    batch.put("meta", K_GENESIS, genesis.hash)
    batch.put("meta", K_PARAMS, encode(genesis.params.to_json()))
    batch.put("meta", K_HEIGHT, _U64.pack(0))
    batch.put("meta", K_HASH, ZERO_HASH)
    batch.put("meta", K_TIME, _U64.pack(genesis.genesis_time))
    batch.put("meta", K_ROOT, next_state_root(genesis.hash, batch))
    return batch


def read_head(state: StateReader) -> Head:
    """The head recorded in ``state``.

    Raises:
        LocalError: the state holds no genesis (commit :func:`genesis_batch` first).
    """
    height, hash_, time, root = (state.get("meta", k) for k in (K_HEIGHT, K_HASH, K_TIME, K_ROOT))
    if height is None or hash_ is None or time is None or root is None:
        raise LocalError("state has no head: initialise it with genesis_batch(genesis) first")
    return Head(Height(_U64.unpack(height)[0]), Hash32(hash_), _U64.unpack(time)[0], Hash32(root))


def account_nonce(state: StateReader, address: bytes) -> int:
    """The next nonce ``address`` must use (0 for an account never seen)."""
    raw = state.get("accounts", bytes(address))
    return 0 if raw is None else decode_text_uint_map(raw, "nonce")


def _check_header(state: StateReader, block: Block, genesis: Genesis, head: Head) -> None:
    h = block.header
    params = genesis.params
    if h.chain != genesis.chain_id:
        raise InvalidBlock(f"block is for chain {h.chain!r}, this node runs {genesis.chain_id!r}",
                           reason="wrong_chain")
    if h.height != head.height + 1:
        raise InvalidBlock(
            f"block height {h.height} does not extend the head at height {head.height}",
            reason="not_next",
        )
    if h.parent != head.hash:
        raise InvalidBlock(
            f"block {h.height} has parent {h.parent.hex()[:16]}…, but the head is "
            f"{head.hash.hex()[:16]}…",
            reason="wrong_parent",
        )
    if h.state != head.state_root:
        raise InvalidBlock(
            f"block {h.height} claims pre-state root {h.state.hex()[:16]}…, but this node's "
            f"state root is {head.state_root.hex()[:16]}… (state diverged at or before block "
            f"{head.height})",
            reason="state_mismatch",
        )
    if h.time <= head.time:
        raise InvalidBlock(f"block time {h.time} is not after the head's time {head.time}",
                           reason="bad_time")
    if h.proposer not in validator_set(state).voters:
        raise InvalidBlock(f"block {h.height} proposer {short_address(h.proposer)} is not a voter",
                           reason="not_validator")
    verify_block_signature(block)
    if not block.txroot_checked and merkle_root([t.txid for t in block.txs]) != h.txroot:
        raise InvalidBlock("block's transactions do not match its header's txroot", reason="bad_txroot")
    if len(block.txs) > params.max_block_txs:
        raise InvalidBlock(f"block holds {len(block.txs)} transactions; the limit is {params.max_block_txs}",
                           reason="too_many_txs")
    size = sum(len(t.body) + len(t.sig) for t in block.txs)
    if size > params.max_block_bytes:
        raise InvalidBlock(f"block's transactions are {size} bytes; the limit is {params.max_block_bytes}",
                           reason="block_too_large")


def check_nonce(state: StateReader, stx: SignedTransaction, max_nonce_gap: int = 0) -> None:
    """Require ``account nonce <= nonce <= account nonce + max_nonce_gap``.

    Raises:
        NonceError: replayed (reason ``nonce_used``) or too far ahead (``nonce_ahead``).
    """
    nonce = stx.tx.nonce
    expected = account_nonce(state, stx.tx.sender)
    if nonce < expected:
        raise NonceError(f"nonce {nonce} already used; next is {expected}", reason="nonce_used")
    if nonce > expected + max_nonce_gap:
        raise NonceError(f"nonce {nonce} is ahead; next is {expected}", reason="nonce_ahead")


def _admit(state: StateReader, stx: SignedTransaction, genesis: Genesis, max_nonce_gap: int) -> tuple[KindSpec, Any]:
    """Stateless checks, then the nonce: everything before the handler runs."""
    checked = validate_tx(stx, genesis)
    check_nonce(state, stx, max_nonce_gap)
    return checked


class _AdmittedPayloads:
    """Parsed ``visit.pack`` payloads kept from mempool admission until the block applies.

    A node parses a transaction's payload when it admits it (:func:`validate_tx_for_state`)
    and, before this memo, again when its block applied: for 2,000-visit packs that second
    parse was ~10 % of a node's CPU under a visit load. Parsing is a pure function of the
    payload (same txid, same bytes) and the chain's parameters, and a :class:`VisitPack` is
    immutable, so handing the admission's result to block application cannot change what
    the block does. Only kinds in ``KINDS_KEPT`` are kept (parse results that are frozen
    values); other kinds' parse results may be mutable and are always parsed afresh.

    Bounded by the visits held (``max_visits``, oldest dropped first); an entry is taken
    (removed) when its block applies, so it lives about as long as the transaction's stay
    in the mempool. Not thread-safe: admission and application run on the node's one
    trio thread.
    """

    KINDS_KEPT = frozenset({"visit.pack"})

    __slots__ = ("_entries", "_visits", "max_visits")

    def __init__(self, max_visits: int = 100_000) -> None:  # ~13 MB of parsed columns
        self._entries: dict[bytes, tuple[object, Any, int]] = {}
        self._visits = 0
        self.max_visits = max_visits

    def keep(self, txid: bytes, params: object, parsed: Any) -> None:
        weight = len(parsed.times)
        if weight > self.max_visits or txid in self._entries:
            return
        self._entries[txid] = (params, parsed, weight)
        self._visits += weight
        while self._visits > self.max_visits:
            self._visits -= self._entries.pop(next(iter(self._entries)))[2]

    def take(self, txid: bytes, params: object) -> Any:
        """The parse kept for ``txid`` under these very ``params`` (removed), or None."""
        hit = self._entries.pop(txid, None) if self._entries else None
        if hit is None:
            return None
        self._visits -= hit[2]
        return hit[1] if hit[0] is params else None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, txid: object) -> bool:
        return txid in self._entries


_ADMITTED = _AdmittedPayloads()


def _keep_admitted(stx: SignedTransaction, params: object, parsed: Any) -> None:
    """Admission's end: keep ``stx``'s parsed payload for its block, if its kind is kept."""
    if stx.tx.kind in _AdmittedPayloads.KINDS_KEPT:
        _ADMITTED.keep(stx.txid, params, parsed)


def validate_tx_queued(state: StateReader, stx: SignedTransaction, genesis: Genesis) -> None:
    """Mempool admission of a transaction queued behind its sender's pending ones: the
    stateless checks (:func:`~p2pmkt.chain.validation.validate_tx`) and who may send it (its
    kind's ``permit``) against ``state``; the handler's other checks wait for its block,
    since they may depend on what the pending transactions do (a configure right after its
    deploy). Like :func:`validate_tx_for_state`, it keeps a ``visit.pack``'s parse for block
    application.

    Roles change only by governance transactions, which only platform members send, so a
    platform member's own pending transactions may change what it may send next: for a
    sender holding ``platform`` the block decides the role too.

    Raises:
        InvalidTransaction, UnknownKind, InvalidSignature: as ``validate_tx``.
        PermissionDenied: the sender may not send this kind (for that merchant).
    """
    spec, parsed = validate_tx(stx, genesis)
    try:
        spec.permit(state, stx.tx.sender, parsed)
    except PermissionDenied:
        # Looked up only on refusal: a busy terminal's every transaction is a queued one.
        record = member_of(state, stx.tx.sender)
        if record is None or "platform" not in record.roles:
            raise
    _keep_admitted(stx, genesis.params, parsed)


def validate_tx_for_state(
    state: StateReader,
    stx: SignedTransaction,
    genesis: Genesis,
    *,
    max_nonce_gap: int = 0,
    runtime: ContractRuntime | None = None,
) -> None:
    """Would ``stx`` pass if applied on top of ``state`` now? The mempool's admission check.

    Runs the same checks as block application (size, chain id, signature, nonce, kind, schema,
    role and merchant scope, handler preconditions) by applying the handler to a scratch
    overlay that is then thrown away. With ``max_nonce_gap > 0`` a nonce up to that far ahead
    of the account's is accepted (the mempool queues it); handler checks then see today's
    state, so a queued transaction can still be rejected in its block.

    Raises:
        InvalidTransaction, NonceError, UnknownKind, PermissionDenied, InvalidSignature,
        ContractRejected: exactly as the block's receipt would say.
    """
    spec, parsed = _admit(state, stx, genesis, max_nonce_gap)
    head = read_head(state)
    ctx = TxContext(
        batch=WriteBatch(state), sender=stx.tx.sender, genesis=genesis,
        height=head.height + 1, time=head.time + 1, tx_index=0, txid=stx.txid,
        runtime=runtime, dry_run=True,
    )
    spec.apply(ctx, parsed)
    _keep_admitted(stx, genesis.params, parsed)


def apply_block(
    state: StateReader,
    block: Block,
    *,
    genesis: Genesis,
    runtime: ContractRuntime | None,
) -> BlockResult:
    """Apply ``block`` on top of ``state`` (the committed head); see the module docstring.

    Args:
        state: committed state at the head (read only; nothing is written to it).
        block: the next block, from :func:`~p2pmkt.chain.block.decode_block` or
            :func:`~p2pmkt.chain.block.build_block`.
        genesis: this chain's genesis (chain id, parameters).
        runtime: the contract engine; may be None only if the block deploys no contract
            and no indicator is due.

    Raises:
        InvalidBlock: the header does not extend the head or fails a check; nothing applied.
        LocalError: this node cannot apply the block (no runtime when one is needed).
    """
    head = read_head(state)
    _check_header(state, block, genesis, head)
    # Every signature first, back to back (see verify_txs: the same checks, in less time).
    verify_txs(block.txs, genesis.chain_id, genesis.params.max_tx_bytes)
    batch = WriteBatch(_BlockReads(state))
    height, time = int(block.header.height), block.header.time
    receipts: list[Receipt] = []
    events: list[object] = []
    get = batch.get
    chain_id, params = genesis.chain_id, genesis.params
    max_tx_bytes, verified, kinds, admitted = params.max_tx_bytes, _VERIFIED, KINDS, _ADMITTED
    for index, stx in enumerate(block.txs):
        tx = stx.tx
        sender = bytes(tx.sender)
        overlay = WriteBatch(batch)
        # Positional: this loop runs once per transaction (TxContext's field order).
        ctx = TxContext(overlay, tx.sender, genesis, height, time, index, stx.txid, runtime)
        try:
            # _admit, inlined: the stateless checks, then the nonce (check_nonce decides, with
            # its message, whenever the nonce is not exactly the account's). validate_tx's
            # checks in its order, for the usual transaction whose size and chain are right
            # and whose signature verify_txs just verified; validate_tx decides the others.
            spec = kinds.get(tx.kind)
            if (
                spec is not None
                and len(stx.body) + len(stx.sig) <= max_tx_bytes
                and tx.chain == chain_id
                and (chain_id, stx.txid, stx.sig) in verified
            ):
                parsed = admitted.take(stx.txid, params) if admitted else None
                if parsed is None:
                    parsed = spec.parse(tx.payload, params)
            else:
                spec, parsed = validate_tx(stx, genesis)
            raw_nonce = get("accounts", sender)
            nonce = 0 if raw_nonce is None else decode_text_uint_map(raw_nonce, "nonce")
            if tx.nonce != nonce:
                check_nonce(batch, stx, 0)
            spec.apply(ctx, parsed)
        except RemoteError as exc:
            receipts.append(Receipt(stx.txid, "rejected", exc.reason, exc.message))
            continue
        overlay.table_writes("accounts")[sender] = encode_text_uint_map("nonce", nonce + 1)
        batch.merge(overlay)
        receipts.append(_new_receipt(stx.txid, "ok", "", ""))
        if ctx.events:
            events.extend(ctx.events)
    events.extend(end_block(batch, params=genesis.params, runtime=runtime, height=height, time=time))
    batch.put("meta", K_HEIGHT, _U64.pack(height))
    batch.put("meta", K_HASH, block.hash)
    batch.put("meta", K_TIME, _U64.pack(time))
    root = next_state_root(head.state_root, batch)
    batch.put("meta", K_ROOT, root)
    return BlockResult(block, batch, tuple(receipts), root, tuple(events))
