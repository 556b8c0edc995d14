"""p2pmkt.chain: the generic ledger (transactions, blocks, genesis, state, roles, mempool)
and block application.

``apply``/``validation`` names are loaded on first use (PEP 562): those two modules compose
the ledger with :mod:`p2pmkt.market` (the transaction kinds), which itself imports chain
modules, so importing them eagerly here would make ``import p2pmkt.market`` circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from p2pmkt.chain.block import Block, Header, build_block, decode_block, verify_block_signature
from p2pmkt.chain.contract_api import ContractRuntime, EvalResult
from p2pmkt.chain.genesis import ChainParams, Genesis, Member, genesis_from_json, load_genesis
from p2pmkt.chain.mempool import Mempool, MempoolStatistics
from p2pmkt.chain.roles import (
    MemberRecord,
    MembershipChanged,
    ValidatorSet,
    member_of,
    require_role,
    validator_set,
)
from p2pmkt.chain.state import (
    TABLES,
    MemoryState,
    Receipt,
    StateReader,
    WriteBatch,
    next_state_root,
)
from p2pmkt.chain.tx import SignedTransaction, Transaction, decode_tx, make_tx, verify_tx

if TYPE_CHECKING:
    from p2pmkt.chain.apply import (
        BlockResult,
        Head,
        account_nonce,
        apply_block,
        check_nonce,
        genesis_batch,
        read_head,
        validate_tx_for_state,
    )
    from p2pmkt.chain.validation import validate_block_bytes, validate_tx, validate_tx_bytes

_LAZY = {
    "BlockResult": "apply",
    "Head": "apply",
    "account_nonce": "apply",
    "apply_block": "apply",
    "check_nonce": "apply",
    "genesis_batch": "apply",
    "read_head": "apply",
    "validate_tx_for_state": "apply",
    "validate_block_bytes": "validation",
    "validate_tx": "validation",
    "validate_tx_bytes": "validation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'p2pmkt.chain' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"p2pmkt.chain.{module}"), name)


__all__ = [
    "TABLES",
    "Block",
    "BlockResult",
    "ChainParams",
    "ContractRuntime",
    "EvalResult",
    "Genesis",
    "Head",
    "Header",
    "Member",
    "MemberRecord",
    "MembershipChanged",
    "MemoryState",
    "Mempool",
    "MempoolStatistics",
    "Receipt",
    "SignedTransaction",
    "StateReader",
    "Transaction",
    "ValidatorSet",
    "WriteBatch",
    "account_nonce",
    "apply_block",
    "build_block",
    "check_nonce",
    "decode_block",
    "decode_tx",
    "genesis_batch",
    "genesis_from_json",
    "load_genesis",
    "make_tx",
    "member_of",
    "next_state_root",
    "read_head",
    "require_role",
    "validate_block_bytes",
    "validate_tx",
    "validate_tx_bytes",
    "validate_tx_for_state",
    "validator_set",
    "verify_block_signature",
    "verify_tx",
]
