"""Documented development keys and genesis layouts (like anvil's known accounts).

**Never use these keys on a real network**: their secrets are derived from public names,
``sha256("p2pmkt dev key\\0" + name)``, so anyone can sign with them. ``p2pmkt testnet init
--random-keys`` and ``p2pmkt key new`` make real ones.

Dev chain accounts (``p2pmkt dev``)::

    name          roles
    validator     platform (also the only validator)
    platform      platform
    acme-ops      merchant-ops:acme
    acme-tech     merchant-tech:acme
    globex-ops    merchant-ops:globex
    globex-tech   merchant-tech:globex
    terminal      terminal

Testnet layout (``p2pmkt testnet init -n N``, every node a validator): ``node1`` is the
platform, the last node is the terminal, and each node between runs one merchant with both
its ops and tech roles (``acme``, ``globex``, ``initech``, …). With fewer than 3 nodes the
roles are folded onto the nodes there are.
"""

from __future__ import annotations

from p2pmkt.chain.genesis import ChainParams, Genesis, Member
from p2pmkt.crypto.keys import PrivateKey

DEV_CHAIN_ID = "p2pmkt-dev"
TESTNET_CHAIN_ID = "p2pmkt-testnet"
DEV_GENESIS_TIME = 1_764_028_800_000  # 2025-11-25T00:00:00Z: fixed so dev genesis hashes agree
MERCHANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka")

DEV_ACCOUNTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("validator", ("platform",)),
    ("platform", ("platform",)),
    ("acme-ops", ("merchant-ops:acme",)),
    ("acme-tech", ("merchant-tech:acme",)),
    ("globex-ops", ("merchant-ops:globex",)),
    ("globex-tech", ("merchant-tech:globex",)),
    ("terminal", ("terminal",)),
)


def dev_key(name: str) -> PrivateKey:
    """The documented, public development key called ``name``."""
    return PrivateKey.from_seed(name)


def dev_genesis(params: ChainParams | None = None) -> Genesis:
    """Genesis of the single-node dev chain (accounts above; ``validator`` validates)."""
    members = tuple(
        Member(name=name, pubkey=dev_key(name).public_key.compressed, roles=roles)
        for name, roles in DEV_ACCOUNTS
    )
    return Genesis(
        chain_id=DEV_CHAIN_ID,
        genesis_time=DEV_GENESIS_TIME,
        members=members,
        validators=("validator",),
        params=params or ChainParams(),
    )


def testnet_roles(n: int) -> list[tuple[str, tuple[str, ...]]]:
    """Node names and roles for an ``n``-node testnet (see the module docstring)."""
    if n < 1:
        raise ValueError("a testnet needs at least one node")
    names = [f"node{i}" for i in range(1, n + 1)]
    if n == 1:
        merchant = MERCHANTS[0]
        return [(names[0], ("platform", "terminal", f"merchant-ops:{merchant}", f"merchant-tech:{merchant}"))]
    if n == 2:
        m = MERCHANTS[0]
        return [
            (names[0], ("platform", "terminal")),
            (names[1], (f"merchant-ops:{m}", f"merchant-tech:{m}")),
        ]
    layout: list[tuple[str, tuple[str, ...]]] = [(names[0], ("platform",))]
    for i, name in enumerate(names[1:-1]):
        m = MERCHANTS[i % len(MERCHANTS)] if i < len(MERCHANTS) else f"merchant{i + 1}"
        layout.append((name, (f"merchant-ops:{m}", f"merchant-tech:{m}")))
    layout.append((names[-1], ("terminal",)))
    return layout


def testnet_genesis(
    keys: dict[str, PrivateKey], n: int, *, genesis_time: int = DEV_GENESIS_TIME,
    params: ChainParams | None = None,
) -> Genesis:
    """Genesis for an ``n``-node testnet whose node keys are ``keys[name]``."""
    layout = testnet_roles(n)
    members = tuple(
        Member(name=name, pubkey=keys[name].public_key.compressed, roles=roles)
        for name, roles in layout
    )
    return Genesis(
        chain_id=TESTNET_CHAIN_ID,
        genesis_time=genesis_time,
        members=members,
        validators=tuple(name for name, _ in layout),
        params=params or ChainParams(),
    )
