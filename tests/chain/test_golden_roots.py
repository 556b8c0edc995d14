"""Pinned state roots: the hot-path work on block application must not change consensus.

The chain below mixes what block application meets in production: visit batches of one and
of many visits across merchants (accounts, items and amounts set and empty, every method),
rejected transactions of several kinds (bad payload, unknown merchant, wrong role, replayed
and skipped nonces) among accepted ones, and a marketing update. The roots were first computed
before the visit.batch fast paths of issue 2's benchmark work; a change in any of them means
a node running this code would fork from one running the previous code.

Re-pinned once, on purpose, for issue 6's chunked visit storage: the ``visits`` table went
from one 64-byte value per visit (key merchant ‖ 0x00 ‖ seq) to one value per merchant and
transaction (key merchant ‖ 0x00 ‖ last seq; a 24-byte origin header and the 48-byte
records; see p2pmkt.market.store). Receipts, events and every other table are unchanged, as
the assertions before the roots check.
"""

from __future__ import annotations

from typing import Any

from p2pmkt.chain.apply import account_nonce
from p2pmkt.chain.state import Receipt
from p2pmkt.testing.builders import LocalChain, campaign, visit
from p2pmkt.testing.keys import dev_genesis, dev_key

METHODS = ("browser", "desktop", "app")
OPS = ("view", "click", "cart", "order", "search", "login", "other")


def _visits(seed: int, count: int) -> list[list[Any]]:
    out = []
    for j in range(count):
        op = OPS[(seed + j) % len(OPS)]
        out.append(
            visit(
                ("acme", "globex")[(seed * 7 + j) % 2],
                op,
                ip=f"192.168.{seed % 7}.{j % 13}",
                account="" if j % 3 == 0 else f"acct-{(seed + j) % 5}",
                time=1_764_028_800_000 + seed * 1000 + j,
                method=METHODS[j % 3],
                item="" if j % 4 == 0 else f"sku-{j % 6}",
                amount=(j * 137) % 10_000 if op == "order" else 0,
            )
        )
    return out


def _chain() -> tuple[LocalChain, list[list[Receipt]]]:
    chain = LocalChain(dev_genesis())
    receipts = []
    for b in range(4):
        n = account_nonce(chain.state, dev_key("terminal").address)
        txs = [
            chain.tx("terminal", "visit.batch", {"visits": _visits(b, 1)}, nonce=n),
            chain.tx("terminal", "visit.batch", {"visits": _visits(b + 10, 40 + b)}, nonce=n + 1),
            # Rejected ones consume no nonce, so each of these may use n + 2 in turn.
            chain.tx("terminal", "visit.batch", {"visits": [visit("nobody")]}, nonce=n + 2),
            chain.tx("terminal", "visit.batch", {"visits": [visit(op="dance")]}, nonce=n + 2),
            chain.tx("acme-ops", "visit.batch", {"visits": [visit()]}),  # missing_role
            chain.tx("terminal", "visit.batch", {"visits": [visit()]}, nonce=0),  # replayed
            chain.tx("terminal", "visit.batch", {"visits": [visit()]}, nonce=n + 99),  # skipped
            chain.tx("terminal", "visit.batch", {"visits": _visits(b + 20, 3)}, nonce=n + 2),
        ]
        if b == 2:
            txs.append(chain.tx("acme-tech", "market.update", {
                "merchant": "acme", "base_version": 0, "campaigns": [campaign()], "cause": ""}))
        receipts.append(list(chain.block(txs).receipts))
    return chain, receipts


def test_state_roots_of_a_mixed_chain_are_pinned() -> None:
    chain, receipts = _chain()
    assert [[(r.status, r.reason) for r in block] for block in receipts][1] == [
        ("ok", ""), ("ok", ""), ("rejected", "unknown_merchant"), ("rejected", "bad_payload"),
        ("rejected", "missing_role"), ("rejected", "nonce_used"), ("rejected", "nonce_ahead"),
        ("ok", ""),
    ]
    assert [r.message for r in receipts[1][2:7]] == [
        "visit.batch: visit 0: merchant 'nobody' is not on this chain (no member holds a role "
        "for it); ask the platform to add it",
        "visit.batch: visit 0: visit op 'dance' is not one of ['view', 'click', 'cart', 'order', "
        "'search', 'login', 'other']",
        "0x2b299932… (acme-ops) does not hold the terminal role; its roles are merchant-ops:acme",
        "nonce 0 already used; next is 5",
        "nonce 102 is ahead; next is 5",
    ]
    assert [(e.merchant, e.first_seq, e.count) for e in chain.results[1].events] == [  # type: ignore[attr-defined]
        ("globex", 21, 1), ("globex", 22, 21), ("acme", 23, 20), ("globex", 43, 2), ("acme", 43, 1),
    ]
    roots = [r.state_root.hex() for r in chain.results]
    assert roots == GOLDEN_ROOTS


GOLDEN_ROOTS = [
    "8a0dc6e24f0633caac0c9e803184d96b7b7c00d4b24054fcf34f1f76b01a6140",
    "9f0df6422d0b6ab179a06af993863d32ff01c7eb12813ee0f085f5491d2524f3",
    "5d89ef90cb5bda905c4bc9846d15817fcc55b89854dca1673504735e08e978f8",
    "d88e12ca72d45eb22b319a74b78694128d378a2ac4f6e441aaca7a6fedb1da6c",
]
