"""``p2pmkt console`` driven through a pseudo-terminal, as a person would use it, and its
script mode (``--exec``), against a real ``p2pmkt dev`` process (issue 7, Tests)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._procs import CLI, ENV, run_cli
from ._term import Terminal
from .conftest import DevChain

pytestmark = pytest.mark.slow

PROMPT = r">>>"
VISIT = '["10.0.0.7", "", 1764028800000, "acme", "browser", "view", "", 0]'


@pytest.fixture
def console(dev_chain: DevChain, terminal_key: Path) -> Iterator[Terminal]:
    """A console attached to the dev chain, signing with the terminal key, at its first prompt."""
    term = Terminal([*CLI, "console", "--connect", dev_chain.addr, "--key", str(terminal_key),
                     "--no-history"], env=ENV)
    try:
        term.expect(r"p2pmkt console — connected to /ip4/.*/p2p/")
        term.expect(PROMPT)
        yield term
    finally:
        term.close()


def exit_with_ctrl_d(term: Terminal) -> None:
    term.send("\x04")
    assert term.wait() == 0


def test_typed_session_head_completion_error_send(console: Terminal) -> None:
    # head(): the screen shows the chain's height.
    console.send("head()\r")
    m = console.expect(r"'height': (\d+)")
    height = int(m.group(1))
    console.expect(PROMPT)

    # A bad expression prints the error, and the prompt stays alive.
    console.send("nosuch_helper(1)\r")
    console.expect(r"NameError: name 'nosuch_helper' is not defined")
    console.expect(PROMPT)
    console.send("1 +\r")
    console.expect(r"SyntaxError")
    console.expect(PROMPT)

    # send(): signed with --key, committed, and visible afterwards.
    console.send(f'send("visit.batch", {{"visits": [{VISIT}]}})\r')
    m = console.expect(r"'txid': '(0x[0-9a-f]{64})', 'status': 'committed', 'height': (\d+)", timeout=30)
    txid, committed_at = m.group(1), int(m.group(2))
    assert committed_at > height
    console.expect(PROMPT)
    console.send(f'tx("{txid}")["status"]\r')
    console.expect(r"'committed'")
    console.expect(PROMPT)

    # `bl` + TAB completes to the helper `block(`; finishing the call shows that block.
    # (prompt_toolkit redraws the line with cursor moves, so the screen is checked by what the
    # completed line does when run.)
    console.send("bl\t")
    console.expect(r"ock\(")  # the completion is drawn (as a redraw of the line's tail)
    console.send(f"{committed_at})['txs'][0]['txid']\r")
    console.expect(rf"block\({committed_at}\)\['txs'\]\[0\]\['txid'\]\s*\n\s*'{txid}'")
    console.expect(PROMPT)
    console.send("head()['height']\r")
    m = console.expect(r"head\(\)\['height'\]\s*\n\s*(\d+)\s*\n")
    assert int(m.group(1)) >= committed_at
    console.expect(PROMPT)

    exit_with_ctrl_d(console)


def test_attribute_completion_and_ctrl_c_keep_the_prompt(console: Terminal) -> None:
    console.send("client.hea\t")
    console.expect(r"d\(\)")  # completed to client.head() (no parameters: closed for us)
    console.send("\r")
    console.expect(r"'height': \d+, 'hash': '0x[0-9a-f]{64}'")
    console.expect(PROMPT)
    console.send("head")
    console.send("\x03")  # Ctrl-C at the prompt drops the line, like Python's REPL
    console.expect(r"KeyboardInterrupt")
    console.expect(PROMPT)
    console.send("info()['chain']\r")
    console.expect(r"'p2pmkt-dev'")
    console.expect(PROMPT)
    exit_with_ctrl_d(console)


def test_send_without_key_is_a_clear_error(dev_chain: DevChain) -> None:
    term = Terminal([*CLI, "console", "--connect", dev_chain.addr, "--no-history"], env=ENV)
    try:
        term.expect(PROMPT)
        term.send(f'send("visit.batch", {{"visits": [{VISIT}]}})\r')
        term.expect(r"RuntimeError: no signing key: start the console with --key FILE")
        term.expect(PROMPT)
        exit_with_ctrl_d(term)
    finally:
        term.close()


# --- script mode -----------------------------------------------------------------------------


def run_script(tmp_path: Path, dev_chain: DevChain, key: Path, text: str) -> tuple[int, str, str]:
    script = tmp_path / "script.py"
    script.write_text(text)
    done = run_cli("console", "--connect", dev_chain.addr, "--key", key, "--exec", script)
    return done.returncode, done.stdout, done.stderr


def test_exec_script_succeeds(tmp_path: Path, dev_chain: DevChain, terminal_key: Path) -> None:
    code, out, err = run_script(tmp_path, dev_chain, terminal_key, f"""
before = head()["height"]
status = send("visit.batch", {{"visits": [{VISIT}]}})
assert status["status"] == "committed", status
print("COMMITTED", status["height"] > before, head()["height"] >= status["height"])
""")
    assert (code, err) == (0, "")
    assert "COMMITTED True True" in out


def test_exec_script_that_raises_exits_1(tmp_path: Path, dev_chain: DevChain, terminal_key: Path) -> None:
    code, out, err = run_script(tmp_path, dev_chain, terminal_key, 'print("first")\nraise ValueError("boom")\n')
    assert code == 1
    assert out == "first\n"
    assert re.search(r"script\.py\", line 2.*\nValueError: boom", err, re.S), err


def test_exec_script_with_syntax_error_exits_1(tmp_path: Path, dev_chain: DevChain, terminal_key: Path) -> None:
    code, _, err = run_script(tmp_path, dev_chain, terminal_key, "x = (\n")
    assert code == 1
    assert "script.py:1: SyntaxError" in err
