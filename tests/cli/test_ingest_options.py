"""``visits ingest`` before it reads: --batch against the chain's limit, the key advice, the
``key dev`` accounts. (A fake node here; the same against a dev chain process is in
test_ingest_cmd.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from p2pmkt.chain.dev import DEV_ACCOUNTS, DEV_CHAIN_ID, dev_genesis
from p2pmkt.cli.commands import DEV_ACCOUNT_NAMES
from p2pmkt.cli.ingest_cmd import DEFAULT_BATCH, batch_size, no_key_message
from p2pmkt.errors import ConfigError
from p2pmkt.testing.keys import dev_key

GENESIS_PARAMS = dev_genesis().params.to_json()


class Node:
    """Answers ``chain.params`` as a node whose chain takes at most ``limit`` visits per
    transaction."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls: list[str] = []

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append(method)
        assert method == "chain.params"
        return {"params": {**GENESIS_PARAMS, "max_visits_per_tx": self.limit}}


async def test_a_batch_within_the_limit_is_kept_and_nothing_is_submitted() -> None:
    node = Node(limit=5000)
    assert await batch_size(node, 4000) == 4000
    assert node.calls == ["chain.params"]


async def test_a_batch_above_the_limit_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^--batch 6000: this chain takes at most 5,000 visits "
                                          r"in one transaction \(its max_visits_per_tx\); pass "
                                          r"--batch 5000 or less"):
        await batch_size(Node(limit=5000), 6000)


async def test_without_batch_the_default_is_lowered_to_a_smaller_chain_limit() -> None:
    assert await batch_size(Node(limit=5000), None) == DEFAULT_BATCH
    assert await batch_size(Node(limit=500), None) == 500


def test_no_key_advice_names_the_dev_key_route_on_a_dev_chain_only() -> None:
    assert "p2pmkt key dev terminal terminal.key" in no_key_message(DEV_CHAIN_ID)
    other = no_key_message("acme-prod")
    assert "key dev" not in other and "pass --key FILE" in other


def test_key_dev_help_names_the_dev_accounts() -> None:
    assert tuple(name for name, _ in DEV_ACCOUNTS) == DEV_ACCOUNT_NAMES


def test_key_dev_writes_the_documented_key_with_a_warning(tmp_path: Any, capsys: Any) -> None:
    from p2pmkt.cli.main import main
    from p2pmkt.crypto import load_key

    assert main(["key", "dev", "acme-tech", str(tmp_path / "k")]) == 0
    assert load_key(tmp_path / "k").secret == dev_key("acme-tech").secret
    out, err = capsys.readouterr()
    assert "merchant-tech:acme" in out and "dev keys are public" in err
    assert main(["key", "dev", "acme-tech", str(tmp_path / "k")]) == 2  # never overwritten
    assert main(["key", "dev", "mallory", str(tmp_path / "m")]) == 2
    assert "the dev chain's accounts are validator, platform" in capsys.readouterr().err
