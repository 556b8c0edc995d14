"""contract.deploy, indicator.configure/remove and rules.publish: roles, scopes, schemas."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

import pytest

from p2pmkt.market.store import get_indicator
from p2pmkt.testing.builders import (
    FAKE_CODE,
    FakeRuntime,
    LocalChain,
    assert_changed_nothing,
    indicator,
)
from p2pmkt.testing.keys import dev_genesis

CODE_HASH = hashlib.sha256(FAKE_CODE).digest()
TARGET = {"value": "conv", "threshold": 200, "scale": 4, "direction": "at_least"}


@pytest.fixture
def chain() -> LocalChain:
    c = LocalChain(runtime=FakeRuntime())
    c.deploy()
    return c


def test_deploy_stores_code_by_hash(chain: LocalChain) -> None:
    assert chain.state.get("contracts", CODE_HASH) == FAKE_CODE
    assert chain.run("platform", "contract.deploy", {"code": FAKE_CODE}).status == "ok"  # idempotent


@pytest.mark.parametrize(
    ("signer", "payload", "reason", "message"),
    [
        ("terminal", {"code": b"\0asm\x01"}, "missing_role", r"may not deploy contracts: that needs a merchant-ops role \(or platform\)$"),
        ("acme-ops", {"code": b"ELF\x7f"}, "invalid_code", r"^not a WebAssembly module \(bad magic\)$"),
        ("acme-ops", {"code": b"\0asm reject"}, "bad_import", r"^module imports 'wasi_snapshot_preview1.fd_write'$"),
        ("acme-ops", {"code": b""}, "bad_payload", r"^contract.deploy: 'code' must be the WebAssembly module bytes$"),
        ("acme-ops", {"code": "0061736d"}, "bad_payload", r"^contract.deploy: 'code' must be"),
    ],
)
def test_hostile_deploys(chain: LocalChain, signer: str, payload: dict[str, Any], reason: str, message: str) -> None:
    result = chain.block([chain.tx(signer, "contract.deploy", payload)])
    assert (result.receipts[0].reason, bool(re.search(message, result.receipts[0].message))) == (reason, True), result.receipts[0]
    assert_changed_nothing(result)


def test_code_over_the_chain_limit_is_rejected_before_the_runtime_sees_it() -> None:
    g = dev_genesis()
    runtime = FakeRuntime()
    chain = LocalChain(dataclasses.replace(g, params=dataclasses.replace(g.params, contract_max_code_bytes=16)),
                       runtime=runtime)
    result = chain.block([chain.tx("acme-ops", "contract.deploy", {"code": b"\0asm" + b"\0" * 20})])
    assert result.receipts[0].reason == "code_too_large"
    assert result.receipts[0].message == "contract code is 24 bytes; this chain accepts at most 16"
    assert_changed_nothing(result)


def test_configure_and_remove_an_indicator(chain: LocalChain) -> None:
    assert chain.run("acme-ops", "indicator.configure", indicator(code=CODE_HASH, target=TARGET)).status == "ok"
    ind = get_indicator(chain.state, "acme", "conversion")
    assert ind is not None and ind.active and ind.spec.target is not None
    assert ind.spec.target.threshold == 200
    assert chain.run("acme-ops", "indicator.remove", {"merchant": "acme", "name": "conversion"}).status == "ok"
    removed = get_indicator(chain.state, "acme", "conversion")
    assert removed is not None and not removed.active
    again = chain.run("acme-ops", "indicator.remove", {"merchant": "acme", "name": "conversion"})
    assert again.reason == "unknown_indicator"


def test_another_merchants_ops_cannot_configure(chain: LocalChain) -> None:
    result = chain.block([chain.tx("globex-ops", "indicator.configure", indicator(code=CODE_HASH))])
    assert result.receipts[0].reason == "wrong_merchant"
    assert result.receipts[0].message.endswith("holds merchant-ops for 'globex', not for 'acme'")
    assert_changed_nothing(result)


def test_tech_cannot_configure(chain: LocalChain) -> None:
    result = chain.block([chain.tx("acme-tech", "indicator.configure", indicator(code=CODE_HASH))])
    assert result.receipts[0].reason == "missing_role"


def test_indicator_needs_deployed_code(chain: LocalChain) -> None:
    result = chain.block([chain.tx("acme-ops", "indicator.configure", indicator(code=b"\x07" * 32))])
    assert result.receipts[0].reason == "unknown_code"
    assert result.receipts[0].message == (
        "indicator.configure: no contract with code hash " + "07" * 32
        + " is deployed; deploy it with contract.deploy first")
    assert_changed_nothing(result)


def _bad(**changes: Any) -> dict[str, Any]:
    payload = indicator(code=CODE_HASH, target=TARGET)
    payload.update(changes)
    return payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_bad(name="Conversion!"), r"indicator name 'Conversion!' must be 1-64 chars of a-z 0-9 _ \. -$"),
        (_bad(name=""), r"indicator name '' must be"),
        (_bad(code=b"\x01" * 31), r"indicator code must be the 32-byte sha256 hash of deployed code$"),
        (_bad(merchant="ACME"), r"^indicator.configure: 'merchant' must be a merchant id, got 'ACME'$"),
        (_bad(params={"x": 2**63}), r"indicator param 'x' must be a 64-bit integer$"),
        (_bad(params={f"p{i}": i for i in range(40)}), r"indicator has 40 params; at most 32$"),
        (_bad(condition={"every_visits": 0, "every_ms": 0}), r"condition needs every_visits or every_ms \(or both\) above 0$"),
        (_bad(condition={"every_visits": -1, "every_ms": 0}), r"condition every_visits must be in"),
        (_bad(condition={"every_visits": 1}), r"condition must be a map with exactly the fields"),
        (_bad(target={**TARGET, "direction": "sideways"}), r"target direction 'sideways' is not one of \['at_least', 'at_most'\]$"),
        (_bad(target={**TARGET, "scale": 19}), r"target scale must be in \[0, 18\]$"),
        (_bad(target={**TARGET, "threshold": "2%"}), r"target field 'threshold' must be int"),
        (_bad(extra=1), r"indicator must be a map with exactly the fields"),
    ],
)
def test_hostile_indicator_configurations(chain: LocalChain, payload: dict[str, Any], message: str) -> None:
    result = chain.block([chain.tx("acme-ops", "indicator.configure", payload)])
    receipt = result.receipts[0]
    assert receipt.reason == "bad_payload"
    assert receipt.message.startswith("indicator.configure: ")
    assert re.search(message, receipt.message), receipt.message
    assert_changed_nothing(result)


def test_rules_publish(chain: LocalChain) -> None:
    doc = b'[[rule]]\nindicator = "conversion"\n'
    assert chain.run("acme-tech", "rules.publish", {"merchant": "acme", "rules": doc}).status == "ok"
    assert chain.state.get("rules", b"acme") == doc
    other = chain.block([chain.tx("globex-tech", "rules.publish", {"merchant": "acme", "rules": b"x"})])
    assert other.receipts[0].reason == "wrong_merchant"
    assert_changed_nothing(other)
    big = chain.block([chain.tx("acme-tech", "rules.publish", {"merchant": "acme", "rules": b"x" * 70_000})])
    assert big.receipts[0].message == "rules.publish: 'rules' must be the rules document as bytes, at most 65536"
