"""CLI polish (issue 7 item 5): every command has ``--help`` with an example, and the exit codes
that scripts rely on (``p2pmkt.cli.main``'s docstring) hold."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pmkt.chain.dev import dev_key
from p2pmkt.cli.main import build_parser, main
from p2pmkt.crypto import save_key
from p2pmkt.crypto.peerid import peer_id_of

from ._procs import free_port, run_cli
from .conftest import DevChain


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and sub-command of the argparse tree, as argv prefixes."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from command_paths(sub, (*path, name))


PATHS = list(command_paths(build_parser()))


def test_the_tree_has_the_commands_of_issue_7() -> None:
    for path in [("testnet", a) for a in ("init", "up", "status", "logs", "down", "reset", "demo")] + [
        ("console",), ("dev",), ("node", "run"), ("key", "new"), ("market", "info"), ("visits", "ingest"),
    ]:
        assert path in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "p2pmkt")
def test_help_exits_0_and_shows_an_example(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: p2pmkt" + "".join(f" {p}" for p in path))
    assert "example" in out.lower()
    assert "p2pmkt " + " ".join(path) in out.split("example", 1)[1], "the example should use the command"


def test_help_of_the_installed_entry_point() -> None:
    done = run_cli("testnet", "up", "--help")
    assert done.returncode == 0
    assert "example:\n  p2pmkt testnet up" in done.stdout


def test_a_bad_flag_is_a_usage_error() -> None:
    done = run_cli("testnet", "status", "--no-such-flag")
    assert done.returncode == 2
    assert "error: unrecognized arguments: --no-such-flag" in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["node", "run", "--config", "{tmp}/missing.toml"], "error: cannot read config file {tmp}/missing.toml"),
        (["node", "run", "--config", "{tmp}/bad.toml"], "error: {tmp}/bad.toml: invalid TOML"),
        (["key", "show", "{tmp}/missing.key"], "error: key file {tmp}/missing.key does not exist"),
        (["key", "show", "{tmp}/open.key"], "error: key file {tmp}/open.key is accessible by group or others"),
        (["console", "--connect", "{addr}", "--key", "{tmp}/missing.key"], "error: key file {tmp}/missing.key does not exist"),
        (["console", "--connect", "{addr}", "--exec", "{tmp}/missing.py"], "error: cannot read {tmp}/missing.py"),
        (["market", "info", "acme", "--node", "node1", "--dir", "{tmp}/nonet"], "error: no testnet in {tmp}/nonet"),
    ],
    ids=["missing-config", "bad-config", "missing-key", "key-mode", "console-key", "console-exec", "no-testnet"],
)
def test_bad_config_or_key_path_exits_2(tmp_path: Path, argv: list[str], message: str) -> None:
    (tmp_path / "bad.toml").write_text("this is not toml\n")
    save_key(tmp_path / "open.key", dev_key("terminal"))
    (tmp_path / "open.key").chmod(0o644)
    # Nothing listens there: a bad path must be reported before any dial.
    addr = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{peer_id_of(dev_key('validator').public_key.compressed)}"
    done = run_cli(*(a.format(tmp=tmp_path, addr=addr) for a in argv))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message.format(tmp=tmp_path)), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_unreachable_node_exits_4() -> None:
    addr = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{peer_id_of(dev_key('validator').public_key.compressed)}"
    done = run_cli("market", "info", "acme", "--connect", addr)
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("unreachable (dial_failed): cannot connect to 16Uiu2")
    # Why, in the operating system's words, not only py-libp2p's "no addresses established".
    assert "Connection refused" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_client_timeout_waiting_for_a_block_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    """trio's timeout (a command waiting for its transaction's block) is no TimeoutError: it
    must still read as "no answer in time" with exit 4, not a traceback."""
    import trio

    from p2pmkt.cli.main import EXIT_UNAVAILABLE, _exit_code

    assert _exit_code(trio.TooSlowError()) == EXIT_UNAVAILABLE
    assert capsys.readouterr().err == "unreachable (timeout): no answer in time\n"


@pytest.mark.slow
def test_market_info_of_an_unknown_merchant_exits_1(dev_chain: DevChain) -> None:
    done = run_cli("market", "info", "nosuch", "--connect", dev_chain.addr)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr == "merchant 'nosuch' has no marketing information yet\n"


def test_output_to_a_reader_that_went_away_ends_quietly_with_141(tmp_path: Path) -> None:
    """``p2pmkt … | head``: when the reader closes the pipe, the command ends without a
    traceback, exit 141 as a shell reports SIGPIPE (it printed a BrokenPipeError traceback)."""
    import subprocess

    from p2pmkt.chain.dev import dev_genesis

    from ._procs import CLI, ENV

    dev_genesis().save(tmp_path / "genesis.json")
    proc = subprocess.Popen([*CLI, "genesis", "show", str(tmp_path / "genesis.json"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # no reader left: the command's first write gets EPIPE
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=30) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_a_transaction_taken_but_not_committed_in_time_says_it_may_still_commit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It read 'unreachable (timeout): no answer in time' although the node had taken it, and
    it committed later (operator audit)."""
    import trio

    from p2pmkt.chain.dev import dev_key
    from p2pmkt.cli.console_client import ConsoleClient
    from p2pmkt.cli.main import EXIT_UNAVAILABLE, _exit_code

    class _Stuck:
        def info(self) -> object:
            return type("Info", (), {"chain": "p2pmkt-dev"})()

        def call(self, method: str, params: object = None) -> object:
            return {"nonce": 0, "pending_nonce": 0}

        def submit_tx(self, stx: object) -> bytes:
            return b"\xab" * 32

        def wait_tx_committed(self, txid: bytes, timeout: float) -> object:
            raise trio.TooSlowError

    with pytest.raises(TimeoutError) as info:
        ConsoleClient(_Stuck()).send(dev_key("platform"), "role.grant", {}, timeout=30)
    assert _exit_code(info.value) == EXIT_UNAVAILABLE
    assert capsys.readouterr().err == (
        f"timeout: transaction {'ab' * 32} was taken by the node but not committed within 30 s; it may "
        "still commit (no leader? see `p2pmkt node status`): look it up with "
        f"tx(bytes.fromhex('{'ab' * 32}')) in `p2pmkt console` before sending it again\n")
