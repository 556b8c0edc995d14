"""The ``p2pmkt`` command line.

Thin argparse entry points: each sub-command module registers itself with ``add_parser`` and
imports its heavy dependencies (trio, libp2p, wasmtime) only when it runs, so that
``p2pmkt --help`` answers at once.

Exit codes (scripts may rely on them)::

    0  success
    1  the operation failed (a transaction was rejected inside its block, …)
    2  usage or configuration error (bad flag, bad config/genesis/rules/key file)
    3  a node refused the input at submission (invalid transaction, bad signature, permission)
    4  busy or unreachable: retry later (mempool full, node down or unreachable, timeout)
    130 interrupted (Ctrl-C)
    141 the reader of its output went away (``p2pmkt … | head``), as a shell reports SIGPIPE

Any ``p2pmkt`` process (a node, a command that seems stuck) prints every thread's Python
stack to its stderr on ``kill -USR1 PID`` and goes on running.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from p2pmkt import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_UNAVAILABLE = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

EPILOG = """\
examples:
  p2pmkt dev --demo                  single-node dev chain with the demo workload
  p2pmkt demo --offline              the demo's marketing loop without a chain, in a second
  p2pmkt testnet init -n 4           keys, genesis and configs for a 4-node testnet
  p2pmkt testnet up && p2pmkt testnet status
  p2pmkt genesis show genesis.json   check a network's genesis file and print its hash
  p2pmkt console --node node1        REPL attached to a running node
  p2pmkt visits ingest access.log --node node4 --format combined
  p2pmkt market info acme --node node1

Run `p2pmkt COMMAND --help` for each command's options and examples.
A p2pmkt process that seems stuck prints its threads' stacks on `kill -USR1 PID`.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2pmkt",
        description="p2pmkt: a permissioned blockchain for merchants' marketing information.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"p2pmkt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from p2pmkt.cli import commands

    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    _stacks_on_sigusr1()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        code = func(args)
    except BaseException as exc:  # mapped to an exit code, or re-raised
        return _exit_code(unwrap_group(exc))
    return int(code or 0)


def _stacks_on_sigusr1() -> None:
    """``kill -USR1 PID`` prints every thread's stack to stderr (faulthandler: from C, so
    it answers even while the interpreter is blocked in a system call or stuck in C)."""
    import faulthandler
    import signal

    if not hasattr(signal, "SIGUSR1"):
        return
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (OSError, ValueError):  # io.UnsupportedOperation: stderr is not a file (in-process use)
        pass


def unwrap_group(exc: BaseException) -> BaseException:
    """The one error inside (nested) trio exception groups, else ``exc`` itself.

    A Ctrl-C or a failed dial inside a nursery reaches us wrapped in a group; users should
    see the error, not a group traceback.
    """
    from p2pmkt.errors import group_leaves

    leaves = group_leaves(exc)  # [exc] for a plain exception
    if len(leaves) == 1 or all(isinstance(e, KeyboardInterrupt) for e in leaves):
        return leaves[0]
    return exc


def _exit_code(exc: BaseException) -> int:
    """Print ``exc`` the way users read it and return its exit code (module docstring);
    anything that is not one of ours is re-raised (a bug: the traceback is wanted)."""
    from p2pmkt.errors import Busy, LocalError, P2pmktError, RemoteError

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        # Quietly, like any Unix filter: nobody reads the output any more. What is left in
        # stdout's buffer goes to /dev/null, or its flush at exit would raise again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout without a file descriptor (in-process calls)
            pass
        return EXIT_BROKEN_PIPE
    if isinstance(exc, LocalError):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, RemoteError):
        print(f"rejected ({exc.reason}): {exc}", file=sys.stderr)
        return EXIT_REJECTED
    if isinstance(exc, Busy):
        print(f"busy ({exc.reason}): {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    # trio's own timeout (a client waiting for a block) is not a TimeoutError; trio is loaded
    # whenever one was raised.
    trio = sys.modules.get("trio")
    too_slow = trio is not None and isinstance(exc, trio.TooSlowError)
    if isinstance(exc, TimeoutError) and str(exc).startswith("transaction "):
        print(f"timeout: {exc}", file=sys.stderr)  # taken, not known to be lost: not unreachable
        return EXIT_UNAVAILABLE
    if isinstance(exc, TimeoutError) or too_slow or (isinstance(exc, P2pmktError) and _is_network(exc)):
        reason = getattr(exc, "reason", "timeout")
        print(f"unreachable ({reason}): {str(exc) or 'no answer in time'}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if isinstance(exc, P2pmktError):
        print(f"error ({exc.reason}): {exc}", file=sys.stderr)
        return EXIT_FAILED
    raise exc


def _is_network(exc: BaseException) -> bool:
    """A dial or stream failure (``p2pmkt.net`` is imported already if one was raised)."""
    net_errors = sys.modules.get("p2pmkt.net.errors")
    return net_errors is not None and isinstance(exc, net_errors.NetworkError)


if __name__ == "__main__":
    sys.exit(main())
