"""Benchmark block application end to end against its machine bound (issue 2, "Benchmark").

What is timed, per block of ``--block-txs`` signed transactions (default 1,000), on one core:

1. ``decode_block`` of the block's wire bytes (every transaction decoded, canonical checks);
2. ``p2pmkt.chain.apply.apply_block`` on the LMDB store's committed state: header checks,
   **every transaction's signature recovery** (back to back, ``chain.tx.verify_txs``; nothing
   is cached from an earlier run: the transactions were only signed), then per transaction
   size/chain/kind/payload schema, nonce check, role check, the ``visit.batch`` handler,
   nonce increment, and the state root;
3. ``LmdbStore.commit_block``: the block, its indexes and every state write in one durable
   (fsync'd) LMDB write transaction.

Not timed: signing (the clients' and the proposer's work). Senders are ``--senders`` distinct
terminal accounts, so nonce reads and writes hit random keys as in production.

A second, ``floor`` pipeline runs the same blocks through the least a ledger must do, built
from this package's parts: ``decode_block``, ``verify_tx`` (signature recovery), an 8-byte
nonce read and check, two writes per transaction (nonce, the raw visit appended under its
merchant) and the same ``commit_block``. Its gap to ``apply`` is the state machine's own cost.

In the same run, sampled between blocks, it measures the machine's **bound** as issue 2 defines
it ("signature check plus a batched LMDB put", about 22k tx/s per core on the quiet reference
machine): :class:`MachineBound`, the per-transaction pipeline of ``../shared/notes/
machine-limits.md`` built from the raw libraries (cbor2 decode, sha256, coincurve recover +
compare, two LMDB reads and three writes, a durable commit per block). It prints the applied
rate, the bound and their ratio; issue 2's target is >= 50 %. It also prints the stricter
ratio against secp256k1 signature checks alone (coincurve recover + compare: a lower bound on
any transaction's cost, which leaves no room for storage at all).
On a shared machine the load drifts during a run, so it also prints the ``paired`` ratio:
each block's rate against the bound sample taken right after it (median and range), and
the load average before and after.

A second table, **visits applied per second, one core**, times the same three steps per visit
for blocks of large batches (``--visit-blocks`` × ``--visit-txs`` transactions of
``--batch-visits`` visits over every merchant; issue 6's unit of work), and relates the total
to issue 6's budget (50k visits/s applied by each of 4 nodes on 2 cores). A third table times
the same visits sent as ``visit.pack`` transactions (what terminals send).

Usage: ``python tools/bench/apply.py [--blocks 10] [--block-txs 1000] [--visits 1] [--dir D]
[--visit-blocks 5] [--visit-txs 5] [--batch-visits 2000]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import coincurve

import p2pmkt.chain.tx as tx_module
from p2pmkt.chain.apply import BlockResult, apply_block, genesis_batch
from p2pmkt.chain.block import Block, build_block, decode_block
from p2pmkt.chain.genesis import ChainParams, Genesis, Member
from p2pmkt.chain.merkle import merkle_root
from p2pmkt.chain.state import Receipt, WriteBatch, next_state_root
from p2pmkt.chain.tx import SignedTransaction, make_tx, verify_tx
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.market.packed import pack_visits
from p2pmkt.storage import LmdbStore
from p2pmkt.types import ZERO_HASH, Hash32

CHAIN = "bench-apply"
GENESIS_TIME = 1_764_028_800_000
MERCHANTS = 8


def secp256k1_bound(n: int) -> float:
    """Recoverable-signature checks per second (recover + compare), one core."""
    keys = [coincurve.PrivateKey(hashlib.sha256(b"bound%d" % i).digest()) for i in range(64)]
    items = []
    for i in range(n):
        key = keys[i % len(keys)]
        digest = hashlib.sha256(b"msg%d" % i).digest()
        items.append((key.sign_recoverable(digest, hasher=None), digest, key.public_key.format()))
    recover = coincurve.PublicKey.from_signature_and_message
    t0 = time.perf_counter()
    for sig, digest, expected in items:
        if recover(sig, digest, hasher=None).format() != expected:
            raise AssertionError("bound: recovered the wrong key")
    return n / (time.perf_counter() - t0)


class MachineBound:
    """Issue 2's bound, "signature check plus a batched LMDB put", built from the raw libraries.

    The per-transaction model of ``../shared/notes/machine-limits.md`` ("Derived bounds", the
    measured ``b8_pipeline``: about 22k tx/s on one core of the quiet reference machine), with
    none of this package's code: per transaction, ``cbor2.loads`` of the envelope and of a
    ~300-byte body, sha256 of the body (tx id and signed digest), coincurve recover + format +
    compare with the sender's known key, two account reads and two account writes, one write
    of the transaction under its id; per block of ``block_txs``, the Merkle root of the ids
    and one durable LMDB write transaction. Each :meth:`sample` times one block of fresh keys.
    """

    def __init__(self, directory: str, block_txs: int) -> None:
        import cbor2
        import lmdb

        self._loads = cbor2.loads
        self._env = lmdb.open(directory, map_size=1 << 30, max_dbs=4)
        self._accounts = self._env.open_db(b"accounts")
        self._txs = self._env.open_db(b"txs")
        keys = [coincurve.PrivateKey(hashlib.sha256(b"mb%d" % i).digest()) for i in range(64)]
        self._pub = {hashlib.sha256(k.public_key.format()).digest()[:20]: k.public_key.format() for k in keys}
        senders = list(self._pub)
        self._block_txs = block_txs
        self._keys, self._senders, self._made = keys, senders, 0
        self._nonces = [0] * len(keys)

    def _block(self) -> list[bytes]:
        import cbor2

        out = []
        for _ in range(self._block_txs):
            i = self._made % len(self._keys)
            self._made += 1
            body = cbor2.dumps({
                "chain": CHAIN, "sender": self._senders[i], "nonce": self._nonces[i], "kind": "visit.batch",
                "payload": {"visits": [[f"10.0.{i}.{self._made % 250}", f"user{self._made}", GENESIS_TIME,
                                        "m1", "app", "click", f"sku{self._made}", 0]]},
                "pad": bytes(120),
            }, canonical=True)
            self._nonces[i] += 1
            sig = self._keys[i].sign_recoverable(hashlib.sha256(body).digest(), hasher=None)
            out.append(cbor2.dumps([body, sig]))
        return out

    def sample(self) -> float:
        """Transactions per second through the pipeline, one block of fresh transactions."""
        import struct

        raw = self._block()
        loads, sha, pub = self._loads, hashlib.sha256, self._pub
        recover = coincurve.PublicKey.from_signature_and_message
        u64 = struct.Struct(">Q")
        t0 = time.perf_counter()
        ids = []
        with self._env.begin(write=True) as txn:
            for data in raw:
                body, sig = loads(data)
                tx = loads(body)
                digest = sha(body).digest()
                sender = tx["sender"]
                if recover(sig, digest, hasher=None).format() != pub[sender]:
                    raise AssertionError("machine bound: recovered the wrong key")
                stored = txn.get(sender, db=self._accounts)
                nonce = 0 if stored is None else u64.unpack(stored)[0]
                if nonce != tx["nonce"]:
                    raise AssertionError("machine bound: nonce out of order")
                counter = txn.get(b"count" + sender, db=self._accounts)
                txn.put(sender, u64.pack(nonce + 1), db=self._accounts)
                txn.put(b"count" + sender, u64.pack(0 if counter is None else u64.unpack(counter)[0] + 1),
                        db=self._accounts)
                txn.put(digest, body, db=self._txs)
                ids.append(digest)
            merkle_root(ids)
        return len(raw) / (time.perf_counter() - t0)

    def close(self) -> None:
        self._env.close()


def make_genesis(senders: list[PrivateKey], validator: PrivateKey, block_txs: int) -> Genesis:
    members = [Member("validator", validator.public_key.compressed, ("platform",))]
    members += [
        Member(f"terminal{i}", k.public_key.compressed, ("terminal",))
        for i, k in enumerate(senders)
    ]
    # Visits name merchants m0..m7, which exist once a member holds a role for them.
    members += [
        Member(
            f"m{i}-ops",
            PrivateKey.from_seed(f"bench/m{i}").public_key.compressed,
            (f"merchant-ops:m{i}",),
        )
        for i in range(MERCHANTS)
    ]
    return Genesis(
        chain_id=CHAIN,
        genesis_time=GENESIS_TIME,
        members=tuple(members),
        validators=("validator",),
        params=ChainParams(max_block_txs=max(block_txs, 2000)),
    )


def _account(i: int, j: int, mixed: bool) -> str:
    if not mixed:
        return f"user{i}"
    return "" if j % 4 == 0 else f"user{(i * 7 + j) % 5000}"  # a quarter not logged in


def make_txs(
    senders: list[PrivateKey], count: int, visits: int, *, mixed: bool = False,
    packed: bool = False,
) -> list[SignedTransaction]:
    """``count`` signed ``visit.batch`` transactions, round-robin over senders.

    With ``mixed``, visits of one transaction spread over every merchant, accounts and items
    repeat (as a terminal's log does), and methods, operations and amounts vary. With
    ``packed``, the same visits go as ``visit.pack`` transactions.
    """
    out = []
    for i in range(count):
        sender = senders[i % len(senders)]
        batch = [
            [
                f"10.0.{i % 250}.{j % 250}",
                _account(i, j, mixed),
                GENESIS_TIME + i,
                f"m{(i + j) % MERCHANTS}" if mixed else f"m{i % MERCHANTS}",
                ("browser", "desktop", "app")[j % 3] if mixed else "app",
                ("view", "click", "cart", "order")[j % 4] if mixed else "click",
                f"sku{j % 500}" if mixed else f"sku{j}",
                (j * 137) % 100_000 if mixed and j % 4 == 3 else 0,
            ]
            for j in range(visits)
        ]
        if packed:
            out.append(make_tx(sender, CHAIN, i // len(senders), "visit.pack", pack_visits(batch)))
        else:
            out.append(make_tx(sender, CHAIN, i // len(senders), "visit.batch", {"visits": batch}))
    return out


def run_floor(store: LmdbStore, raw: bytes, pre_root: Hash32) -> tuple[Block, Hash32, float]:
    """The minimal pipeline for one block; returns the block, its post-root and seconds."""
    t0 = time.perf_counter()
    block = decode_block(raw)
    batch = WriteBatch(store)
    receipts = []
    base = block.height * 1_000_000
    for index, stx in enumerate(block.txs):
        verify_tx(stx, CHAIN)
        sender = bytes(stx.tx.sender)
        stored = batch.get("accounts", sender)
        nonce = 0 if stored is None else int.from_bytes(stored, "big")
        if stx.tx.nonce != nonce:
            receipts.append(Receipt(stx.txid, "rejected", "bad_nonce", "nonce"))
            continue
        batch.put("accounts", sender, (nonce + 1).to_bytes(8, "big"))
        visit = stx.tx.payload["visits"][0]
        batch.put(
            "visits", visit[3].encode() + b"\x00" + (base + index).to_bytes(8, "big"), stx.body
        )
        receipts.append(Receipt(stx.txid, "ok"))
    root = next_state_root(pre_root, batch)
    store.commit_block(block, batch, receipts, root)
    if any(r.status != "ok" for r in receipts):
        raise SystemExit("bench bug: floor pipeline rejected a transaction")
    return block, root, time.perf_counter() - t0


def bench_floor(
    txs: list[SignedTransaction], validator: PrivateKey, args: argparse.Namespace
) -> float:
    """tx/s of the floor pipeline over the same transactions, in a store of its own."""
    # The node remembers signatures it verified (chain.tx._VERIFIED); forget them so this
    # pipeline pays for its own verifications, as the main run did.
    tx_module._VERIFIED.clear()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, LmdbStore.open(Path(tmp) / "s") as store:
        head = store.init_genesis(
            WriteBatch(store), Hash32(bytes(32)), state_root=Hash32(bytes(32)), time=GENESIS_TIME
        )
        parent, pre_root, total = ZERO_HASH, head.state_root, 0.0
        for b in range(args.blocks):
            raw = build_block(
                validator,
                chain=CHAIN,
                height=b + 1,
                parent=parent,
                state=pre_root,
                time=GENESIS_TIME + 100 * (b + 1),
                txs=txs[b * args.block_txs : (b + 1) * args.block_txs],
            ).encode()
            block, pre_root, seconds = run_floor(store, raw, pre_root)
            parent, total = block.hash, total + seconds
    return float(args.blocks * args.block_txs / total)


def bench_visits(
    validator: PrivateKey, args: argparse.Namespace, *, packed: bool = False
) -> dict[str, float]:
    """Seconds per visit by phase for blocks of large ``visit.batch`` transactions (issue 6).

    ``--visit-blocks`` blocks of ``--visit-txs`` transactions of ``--batch-visits`` visits each,
    spread over the merchants (``make_txs(mixed=True)``), through the same decode, apply
    (signatures included: one per batch) and durable commit as the main run. With ``packed``
    the same visits are sent as ``visit.pack`` transactions.
    """
    senders = [PrivateKey.from_seed(f"bench/terminal{i}") for i in range(args.visit_txs)]
    genesis = make_genesis(senders, validator, args.visit_txs)
    genesis = Genesis(
        chain_id=genesis.chain_id, genesis_time=genesis.genesis_time, members=genesis.members,
        validators=genesis.validators,
        params=ChainParams(max_block_txs=max(args.visit_txs, 2000), max_tx_bytes=1024 * 1024,
                           max_block_bytes=32 * 1024 * 1024,
                           max_visits_per_tx=max(args.batch_visits, 5000)),
    )
    txs = make_txs(senders, args.visit_blocks * args.visit_txs, args.batch_visits, mixed=True,
                   packed=packed)
    tx_module._VERIFIED.clear()
    phases = {"decode": 0.0, "apply": 0.0, "commit": 0.0}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, LmdbStore.open(Path(tmp) / "s") as store:
        gbatch = genesis_batch(genesis)
        root = gbatch.get("meta", b"state_root")
        assert root is not None
        head = store.init_genesis(gbatch, genesis.hash, state_root=Hash32(root), time=GENESIS_TIME)
        parent, pre_root = ZERO_HASH, head.state_root
        for b in range(args.visit_blocks):
            raw = build_block(
                validator, chain=CHAIN, height=b + 1, parent=parent, state=pre_root,
                time=GENESIS_TIME + 100 * (b + 1),
                txs=txs[b * args.visit_txs : (b + 1) * args.visit_txs],
            ).encode()
            block, result, (t0, t1, t2, t3) = timed_block(store, raw, genesis)
            if any(r.status != "ok" for r in result.receipts):
                raise SystemExit(f"bench bug: visit batch rejected: {result.receipts[0]}")
            phases["decode"] += t1 - t0
            phases["apply"] += t2 - t1
            phases["commit"] += t3 - t2
            parent, pre_root = block.hash, result.state_root
    visits = args.visit_blocks * args.visit_txs * args.batch_visits
    return {name: seconds / visits for name, seconds in phases.items()}


def timed_block(
    store: LmdbStore, raw: bytes, genesis: Genesis
) -> tuple[Block, BlockResult, tuple[float, float, float, float]]:
    """Decode, apply and durably commit one block's bytes, as a node does; returns the block,
    its result and the clock before decoding, after decoding, after applying, after the commit."""
    t0 = time.perf_counter()
    block = decode_block(raw)
    t1 = time.perf_counter()
    result = apply_block(store, block, genesis=genesis, runtime=None)
    t2 = time.perf_counter()
    store.commit_block(block, result.batch, result.receipts, result.state_root)
    return block, result, (t0, t1, t2, time.perf_counter())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--block-txs", type=int, default=1000)
    ap.add_argument("--visits", type=int, default=1, help="visits per visit.batch transaction")
    ap.add_argument("--senders", type=int, default=500)
    ap.add_argument("--bound-sigs", type=int, default=20000)
    ap.add_argument("--dir", default=None, help="parent directory for the throwaway store")
    ap.add_argument("--visit-blocks", type=int, default=5, help="blocks of the visits run")
    ap.add_argument("--visit-txs", type=int, default=5, help="visit.batch txs per block there")
    ap.add_argument("--batch-visits", type=int, default=2000, help="visits per tx there")
    args = ap.parse_args()

    validator = PrivateKey.from_seed("bench/validator")
    senders = [PrivateKey.from_seed(f"bench/terminal{i}") for i in range(args.senders)]
    genesis = make_genesis(senders, validator, args.block_txs)
    print(
        f"signing {args.blocks * args.block_txs} transactions ({args.visits} visit(s) each)...",
        file=sys.stderr,
    )
    txs = make_txs(senders, args.blocks * args.block_txs, args.visits)
    # The bound is sampled between blocks, so that it sees the same machine load as the
    # pipeline does (the reference machine is shared); the median of the samples is reported.
    bound_samples = [secp256k1_bound(args.bound_sigs // args.blocks)]
    mb_dir = tempfile.TemporaryDirectory(dir=args.dir)
    machine = MachineBound(mb_dir.name, args.block_txs)
    machine_samples = [machine.sample()]

    decode_s = apply_s = commit_s = 0.0
    per_block: list[float] = []
    paired: list[float] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, LmdbStore.open(Path(tmp) / "s") as store:
        gbatch = genesis_batch(genesis)
        root = gbatch.get("meta", b"state_root")
        assert root is not None
        head = store.init_genesis(
            gbatch, genesis.hash, state_root=Hash32(root), time=genesis.genesis_time
        )
        parent, pre_root = ZERO_HASH, head.state_root
        for b in range(args.blocks):
            chunk = txs[b * args.block_txs : (b + 1) * args.block_txs]
            raw = build_block(
                validator,
                chain=CHAIN,
                height=b + 1,
                parent=parent,
                state=pre_root,
                time=GENESIS_TIME + 100 * (b + 1),
                txs=chunk,
            ).encode()
            block, result, (t0, t1, t2, t3) = timed_block(store, raw, genesis)
            rejected = [r for r in result.receipts if r.status != "ok"]
            if rejected:
                raise SystemExit(f"bench bug: {len(rejected)} rejected, first: {rejected[0]}")
            decode_s += t1 - t0
            apply_s += t2 - t1
            commit_s += t3 - t2
            per_block.append(t3 - t0)
            bound_samples.append(secp256k1_bound(args.bound_sigs // args.blocks))
            machine_samples.append(machine.sample())
            # Paired with the bound sampled right after the block: on a shared machine the
            # load drifts within a run, and a ratio of neighbours cancels most of the drift.
            paired.append(args.block_txs / (t3 - t0) / machine_samples[-1])
            parent, pre_root = block.hash, result.state_root
        used = store.env.info()["last_pgno"] * store.env.stat()["psize"]
        where = os.path.realpath(tmp)

    machine.close()
    mb_dir.cleanup()
    floor = bench_floor(txs, validator, args)
    per_visit = bench_visits(validator, args) if args.visit_blocks > 0 else None
    per_packed = bench_visits(validator, args, packed=True) if args.visit_blocks > 0 else None
    bound = statistics.median(bound_samples)
    mbound = statistics.median(machine_samples)
    n = args.blocks * args.block_txs
    total = decode_s + apply_s + commit_s
    rate = n / total
    us = 1e6 / n
    print(f"store: {where} (durable commits, {used / 2**20:.1f} MiB used)")
    print(
        f"workload: {args.blocks} blocks x {args.block_txs} visit.batch txs "
        f"({args.visits} visit(s) each), {args.senders} senders"
    )
    print(
        f"per tx: decode {decode_s * us:.1f} us, apply {apply_s * us:.1f} us "
        f"(incl. signature recovery), commit {commit_s * us:.1f} us"
    )
    print(
        f"per block: median {statistics.median(per_block) * 1e3:.1f} ms, "
        f"max {max(per_block) * 1e3:.1f} ms"
    )
    print(f"applied:  {rate:,.0f} tx/s  (signed txs decoded, verified, applied, committed; 1 core)")
    print(
        f"bound:    {mbound:,.0f} tx/s  (machine bound: raw cbor2 decode + coincurve recover + "
        f"LMDB gets/puts, durable commit per block, 1 core; median of {len(machine_samples)} "
        f"samples, {min(machine_samples):,.0f}..{max(machine_samples):,.0f})"
    )
    print(f"ratio:    {rate / mbound:.0%} of the bound (target >= 50%)")
    print(
        f"paired:   median {statistics.median(paired):.0%} (range {min(paired):.0%}..{max(paired):.0%}) "
        f"per block against the bound sample right after it; load average "
        f"{load_before:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(
        f"sigs:     {bound:,.0f} sig checks/s  (coincurve recover + compare alone, 1 core; median "
        f"of {len(bound_samples)} samples, {min(bound_samples):,.0f}..{max(bound_samples):,.0f}); "
        f"applied = {rate / bound:.0%} of it"
    )
    print(
        f"floor:    {floor:,.0f} tx/s  (this package's decode_block + verify + nonce + 2 puts + "
        f"commit_block; {floor / mbound:.0%} of the bound)"
    )
    for kind, table in (("visit.batch", per_visit), ("visit.pack", per_packed)):
        if table is not None:
            print_visits_table(kind, table, args)


def print_visits_table(kind: str, per_visit: dict[str, float], args: argparse.Namespace) -> None:
    total_us = sum(per_visit.values()) * 1e6
    print()
    print(
        f"visits applied per second, one core: {args.visit_blocks} blocks x {args.visit_txs} "
        f"{kind} txs x {args.batch_visits} visits (8 merchants, mixed)"
    )
    for name, seconds in per_visit.items():
        print(f"  {name:<7} {seconds * 1e6:6.2f} us/visit")
    print(f"  total   {total_us:6.2f} us/visit = {1e6 / total_us:,.0f} visits/s on one core")
    print(
        f"  issue 6: 50,000 visits/s applied by each of 4 nodes on 2 cores leaves "
        f"{2 * 1e6 / (4 * 50_000):.0f} us of CPU per visit per node for everything; "
        f"this uses {total_us / (2 * 1e6 / (4 * 50_000)):.0%} of it"
    )


if __name__ == "__main__":
    main()
