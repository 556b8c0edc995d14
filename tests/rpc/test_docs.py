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


# --- Tables kept in step with the code: transaction kinds, reason slugs, dev accounts ---------

OPERATIONS = DOC.parent / "OPERATIONS.md"
PACKAGE = DOC.parents[1] / "p2pmkt"


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole line such as ``### Reason slugs``) up to the next
    heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    lines = text.splitlines()
    assert heading in lines, f"docs/PROTOCOL.md has no heading {heading!r}"
    start = lines.index(heading) + 1
    end = next(
        (i for i in range(start, len(lines))
         if lines[i].startswith("#") and lines[i].split(" ", 1)[0] in {"#" * n for n in range(1, len(level) + 1)}),
        len(lines),
    )
    return "\n".join(lines[start:end])


def _first_column(section: str) -> list[str]:
    """The code-quoted first cells of the first Markdown table in ``section``."""
    rows: list[str] = []
    for line in section.splitlines():
        if line.startswith("|"):
            m = re.match(r"\| `([^`]+)` \|", line)
            if m:
                rows.append(m.group(1))
        elif rows:
            break
    return rows


def test_every_transaction_kind_is_in_the_kinds_table() -> None:
    from p2pmkt.market.apply import KINDS

    rows = _first_column(_section(DOC.read_text(), "### Transaction kinds"))
    assert len(rows) == len(set(rows)), "a kind has two rows"
    assert set(rows) == set(KINDS), (
        f"docs/PROTOCOL.md §7 Transaction kinds: missing {sorted(set(KINDS) - set(rows))}, "
        f"not kinds {sorted(set(rows) - set(KINDS))}")


def test_operations_links_to_the_kinds_section() -> None:
    assert "### Transaction kinds" in DOC.read_text().splitlines()
    assert "](PROTOCOL.md#transaction-kinds)" in OPERATIONS.read_text()


NOT_SENT_TO_CLIENTS = {
    # Class defaults that every raise of the class replaces with one of the table's slugs.
    "error": "P2pmktError", "remote": "RemoteError", "permission_denied": "PermissionDenied",
    "bad_nonce": "NonceError", "contract_rejected": "ContractRejected",
    # The node's local failures: an RPC answers them as INTERNAL_ERROR (the `internal` row).
    "local": "", "config": "", "key_file": "", "storage": "", "storage_full": "",
    "bad_key": "storage", "genesis_exists": "storage", "no_genesis": "storage",
    "not_next_block": "storage", "bad_receipts": "storage", "schema_version": "storage",
    "raft_log_violation": "raft", "proposal_dropped": "raft",
    # Blocks and block sync, between validators only.
    "invalid_block": "", "not_next": "", "wrong_parent": "", "state_mismatch": "",
    "bad_time": "", "not_validator": "", "bad_txroot": "", "too_many_txs": "",
    "block_too_large": "", "sync_out_of_order": "", "sync_refused": "",
    # Client side, command-line tools and tests.
    "rpc_error": "client", "network": "client", "dial_failed": "client",
    "stream_closed": "client", "protocol_refused": "client", "bad_rules": "agent rules file",
    "bad_line": "ingest input", "bad_header": "ingest input", "node_exited": "testnet CLI", "bad_import": "test builders", "invalid_code": "test builders",
    # Not an error: a metrics label (mempool expiry), and the reasons of an `end` event (§6).
    "expired": "metrics", "closed": "end event; storage", "failed": "end event",
}


def _reason_literals() -> dict[str, set[str]]:
    """Every text literal the package gives a reason slug: ``reason="…"`` arguments,
    ``reason = "…"`` assignments (class defaults, locals), ``{"reason": "…"}`` maps and the
    slug argument of ``RpcServerSession.refuse``; slug → files."""
    import ast

    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg == "reason":
                values.append(node.value)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any((isinstance(t, ast.Name) and t.id == "reason")
                       or (isinstance(t, ast.Attribute) and t.attr == "reason") for t in targets):
                    values.append(node.value)
            elif isinstance(node, ast.Dict):
                values += [v for k, v in zip(node.keys, node.values, strict=True)
                           if isinstance(k, ast.Constant) and k.value == "reason"]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "refuse"):
                values += node.args[3:4]
            for v in values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value:
                    found.setdefault(v.value, set()).add(str(path.relative_to(PACKAGE.parent)))
    return found


def test_every_reason_slug_is_in_the_reasons_table() -> None:
    table = _first_column(_section(DOC.read_text(), "### Reason slugs"))
    assert len(table) == len(set(table)), "a reason has two rows"
    code = _reason_literals()
    assert {"not_member", "stale_version", "rate_limited", "decode", "bad_request"} <= set(code)
    undocumented = {s: sorted(f) for s, f in code.items() if s not in table and s not in NOT_SENT_TO_CLIENTS}
    assert not undocumented, (
        "reason slugs used in the code but not in docs/PROTOCOL.md §4 Reason slugs (add a row, or "
        f"list them in NOT_SENT_TO_CLIENTS if no client can see them): {undocumented}")
    assert not set(table) - set(code), f"rows for slugs the code never uses: {sorted(set(table) - set(code))}"
    assert not set(NOT_SENT_TO_CLIENTS) - set(code), sorted(set(NOT_SENT_TO_CLIENTS) - set(code))
    assert not set(table) & set(NOT_SENT_TO_CLIENTS), sorted(set(table) & set(NOT_SENT_TO_CLIENTS))


def test_dev_accounts_table_matches_the_dev_chain() -> None:
    import hashlib
    import sys

    sys.path.insert(0, str(DOC.parents[1] / "tools"))
    from doc_example import dev_accounts_markdown

    from p2pmkt.chain.dev import DEV_ACCOUNTS, dev_key
    from p2pmkt.crypto.keys import address_hex

    text = DOC.read_text()
    assert dev_accounts_markdown() in text, (
        "docs/PROTOCOL.md §10 Dev chain accounts is stale: paste the output of "
        "`tools/doc_example.py dev-accounts`")
    # The table as a reader sees it: one row per account, with its roles and address.
    section = _section(text, "### Dev chain accounts")
    rows = [line for line in section.splitlines() if re.match(r"\| `[a-z-]+` \|", line)]
    assert len(rows) == len(DEV_ACCOUNTS)
    for (name, roles), row in zip(DEV_ACCOUNTS, rows, strict=True):
        assert row.startswith(f"| `{name}` | ") and f"`{address_hex(dev_key(name).address)}`" in row
        assert all(f"`{role}`" in row for role in roles)
    # The derivation rule the document states, and its example.
    assert 'sha256("p2pmkt dev key" ‖ 0x00 ‖ name)' in section
    secret = hashlib.sha256(b"p2pmkt dev key\x00terminal").digest()
    assert dev_key("terminal").secret == secret and secret.hex() in section
