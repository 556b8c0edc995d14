"""The ``p2pmkt`` command line.

Thin argparse entry points: each sub-command module registers itself with ``add_parser`` and
imports its heavy dependencies (trio, libp2p, wasmtime) only when it runs, so that
``p2pmkt --help`` answers at once.

Exit codes (scripts may rely on them)::

    0  success
    1  the operation failed (a transaction was rejected, a node did not answer, …)
    2  usage or configuration error (bad flag, bad config/genesis/rules/key file)
    3  a remote party rejected the input (invalid transaction, bad signature, permission)
    4  busy or unreachable: retry later (mempool full, node down, timeout)
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from p2pmkt import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_UNAVAILABLE = 4
EXIT_INTERRUPTED = 130

EPILOG = """\
examples:
  p2pmkt dev --demo                  single-node dev chain with the demo workload
  p2pmkt testnet init -n 4           keys, genesis and configs for a 4-node testnet
  p2pmkt testnet up && p2pmkt testnet status
  p2pmkt console --node node1        REPL attached to a running node
  p2pmkt visits ingest access.log --node node4 --format combined
  p2pmkt market info acme --node node1

Run `p2pmkt COMMAND --help` for each command's options and examples.
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
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    from p2pmkt.errors import Busy, LocalError, P2pmktError, RemoteError

    try:
        code = func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except LocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RemoteError as exc:
        print(f"rejected ({exc.reason}): {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except Busy as exc:
        print(f"busy ({exc.reason}): {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except P2pmktError as exc:
        print(f"error ({exc.reason}): {exc}", file=sys.stderr)
        return EXIT_FAILED
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
