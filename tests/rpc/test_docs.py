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


def test_worked_example_is_generated_and_a_node_commits_it(tmp_path: Path) -> None:
    import dataclasses
    import sys

    sys.path.insert(0, str(DOC.parents[1] / "tools"))
    from doc_example import CHAIN, example_markdown, example_tx

    from p2pmkt.chain.dev import DEV_CHAIN_ID, dev_genesis, dev_key
    from p2pmkt.chain.genesis import Member
    from p2pmkt.node.chain import ChainService

    assert example_markdown() in DOC.read_text(), (
        "docs/PROTOCOL.md §7 is stale: paste the output of tools/doc_example.py")
    key, stx = example_tx()
    assert CHAIN == DEV_CHAIN_ID
    base = dev_genesis()
    genesis = dataclasses.replace(base, members=(
        *base.members, Member(name="doc-example", pubkey=key.public_key.compressed, roles=("terminal",))))
    chain = ChainService.open(tmp_path, genesis, runtime=None, sync=False)
    try:
        chain.submit(stx.encode())
        block = chain.build_block(dev_key("validator"), genesis.genesis_time + 1000)
        assert block is not None
        applied = chain.apply(block)
        assert [r.status for r in applied.result.receipts] == ["ok"]
    finally:
        chain.close()
