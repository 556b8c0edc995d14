"""docs/PROTOCOL.md holds the method tables rendered from p2pmkt.rpc.methods, every error
code, and a worked transaction example that still verifies."""

from __future__ import annotations

import re
from pathlib import Path

from p2pmkt.chain.tx import decode_tx, verify_tx
from p2pmkt.rpc.methods import methods_markdown
from p2pmkt.rpc.protocol import ErrorCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def test_methods_section_is_current() -> None:
    assert methods_markdown() in DOC.read_text(), (
        "docs/PROTOCOL.md is stale: paste p2pmkt.rpc.methods.methods_markdown() into §Methods"
    )


def test_every_error_code_documented() -> None:
    text = DOC.read_text()
    for code in ErrorCode:
        assert f"| {int(code)} | `{code.name}`" in text


def test_worked_example_verifies() -> None:
    text = DOC.read_text()
    m = re.search(r"signed transaction \(wire\), (\d+) bytes:\n+```\n([0-9a-f\n]+)```", text)
    assert m is not None
    data = bytes.fromhex(m.group(2).replace("\n", ""))
    assert len(data) == int(m.group(1))
    stx = decode_tx(data)
    verify_tx(stx, stx.tx.chain)
    assert stx.txid.hex() in text
