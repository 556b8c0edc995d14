"""Deterministic keys and the dev genesis for tests (the documented dev accounts).

The accounts, their seeds and roles are defined once, in :mod:`p2pmkt.chain.dev` (the dev
chain uses them too); this module adds the conveniences tests want. A key's secret is
``sha256("p2pmkt dev key\\0" + name)`` (:meth:`PrivateKey.from_seed`), so these keys are
public: **never use them outside development**.

========== ======================= =============================
name       roles                   notes
========== ======================= =============================
validator  platform                the only validator of the dev chain; proposes blocks
platform   platform                governance (roles, members, validators)
acme-ops   merchant-ops:acme       contracts, indicators of acme
acme-tech  merchant-tech:acme      marketing info and rules of acme
globex-ops merchant-ops:globex
globex-tech merchant-tech:globex
terminal   terminal                visit batches for any merchant
========== ======================= =============================
"""

from __future__ import annotations

from p2pmkt.chain.dev import DEV_ACCOUNTS, DEV_CHAIN_ID, DEV_GENESIS_TIME, dev_genesis, dev_key
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.types import Address

__all__ = [
    "DEV_ACCOUNTS",
    "DEV_CHAIN_ID",
    "DEV_GENESIS_TIME",
    "DEV_NAMES",
    "dev_address",
    "dev_genesis",
    "dev_key",
    "outsider_key",
]

DEV_NAMES: tuple[str, ...] = tuple(name for name, _ in DEV_ACCOUNTS)


def dev_address(name: str) -> Address:
    """Address of the dev account ``name``."""
    return dev_key(name).address


def outsider_key(name: str = "outsider") -> PrivateKey:
    """A deterministic key that is *not* a member of the dev chain (for permission tests)."""
    return PrivateKey.from_seed("p2pmkt-test-outsider/" + name)
