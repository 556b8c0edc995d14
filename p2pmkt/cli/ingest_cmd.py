"""``p2pmkt visits ingest``: files (or stdin) of visits → signed ``visit.pack`` transactions.

The pure pieces live in :mod:`p2pmkt.ingest` (parsers, :class:`Batcher`, :class:`LineTailer`);
this module does the I/O: reads the file in chunks (following it as it grows with
``--follow``), submits each closed batch with the client library's
:meth:`~p2pmkt.client.Client.submit_visits` (which waits out back-pressure: never a silent
drop), shows progress, and reports bad lines by number. Nothing accepted is
lost: on ``--on-error stop`` the batches parsed before the bad line are still submitted, and the
command waits for the last transaction to be committed before it exits.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any, BinaryIO

import trio

from p2pmkt.errors import ConfigError

CHUNK = 1 << 16
FOLLOW_POLL = 0.2


def run_ingest(args: argparse.Namespace) -> int:
    return trio.run(_ingest, args)


async def _ingest(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from p2pmkt.cli.client_cmds import resolve
    from p2pmkt.client import open_client
    from p2pmkt.ingest import (
        BadLine,
        Batcher,
        BatcherConfig,
        LineTailer,
        detect_format,
        make_parser,
    )

    combined = combined_config(args)  # before any dial: a mistake here is the user's to fix first
    addr, key = resolve(args, need_key=True)
    src: BinaryIO
    if args.file == "-":
        src = sys.stdin.buffer
        total = None
    else:
        try:
            src = open(args.file, "rb")  # noqa: SIM115, ASYNC230 - opening is instant; closed in finally
        except OSError as exc:
            raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from exc
        total = None if args.follow else _size(src)
    batcher = Batcher(BatcherConfig(max_visits=args.batch, max_delay=0.2))
    tailer = LineTailer()
    parser: Any = None
    stats = {"lines": 0, "visits": 0, "skipped": 0, "bad": 0, "txs": 0}
    last_txid: bytes | None = None
    stop = False
    progress = Progress(TextColumn("[bold]ingest"), BarColumn(), TextColumn("{task.completed:,.0f} bytes"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                        disable=not sys.stderr.isatty(), transient=False)
    try:
        async with open_client(addr, key) as client:
            async def send(batches: list[Any]) -> None:
                nonlocal last_txid
                for b in batches:
                    # A busy node (full mempool, this terminal's share of it) is waited
                    # out for as long as it takes: Ctrl-C stops the ingest, nothing else.
                    txids = await client.submit_visits(key, b.visits, per_tx=args.batch,
                                                       patience=math.inf)
                    last_txid = txids[-1]
                    stats["txs"] += len(txids)
                    stats["visits"] += len(b.visits)

            with progress:
                task = progress.add_task("ingest", total=total, info="")
                while not stop:
                    chunk = await trio.to_thread.run_sync(src.read, CHUNK)
                    if chunk:
                        lines = tailer.feed(chunk)
                        progress.update(task, advance=len(chunk))
                    elif not args.follow:
                        lines = tailer.close()
                    else:
                        now_at = None if src is sys.stdin.buffer else _rotated(args.file, src)
                        if now_at is None:
                            await send(batcher.poll(time.monotonic()))
                            await trio.sleep(FOLLOW_POLL)  # waiting for the file to grow
                            continue
                        if now_at is src:  # truncated in place: read it again from the start
                            tailer.reset()
                            continue
                        # Rotated: read the old file to its end once more (what was written
                        # between our last read and the move); its last line may lack a
                        # newline. Then the new file at the path, from its first line.
                        rest = await trio.to_thread.run_sync(src.read)
                        lines = tailer.feed(rest) + tailer.close()
                        progress.update(task, advance=len(rest))
                        src.close()
                        src = now_at
                        tailer.reset()
                    for line in lines:
                        stats["lines"] += 1
                        if parser is None:
                            fmt = detect_format(line.text) if args.format == "auto" else args.format
                            parser = make_parser(fmt, merchant=args.merchant or "", combined=combined)
                        try:
                            visit = parser.parse(line)
                        except BadLine as exc:
                            stats["bad"] += 1
                            print(f"{args.file}: {exc}", file=sys.stderr)
                            if args.on_error == "stop":
                                stop = True
                                break
                            continue
                        if visit is None:
                            stats["skipped"] += 1
                            continue
                        await send(batcher.add(visit, time.monotonic()))
                    progress.update(task, info=f"{stats['visits']:,} visits in {stats['txs']} txs")
                    if not chunk and not args.follow:
                        break
                await send(batcher.flush(time.monotonic()))
            if last_txid is not None:
                status = await client.wait_tx_committed(last_txid, timeout=60)
                if status.status != "committed":
                    print(f"last batch {status.status}: {status.reason} {status.message}", file=sys.stderr)
                    return 3
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    print(f"{stats['lines']:,} lines: {stats['visits']:,} visits in {stats['txs']:,} transaction{'' if stats['txs'] == 1 else 's'}, "
          f"{stats['skipped']:,} skipped (not visits), {stats['bad']:,} bad"
          + (" — stopped at the first bad line" if stop else ""))
    return 1 if stop else 0


def combined_config(args: argparse.Namespace) -> Any:
    """The access-log mapping the command line asks for (:class:`CombinedConfig`).

    Raises:
        ConfigError: a bad ``--merchant-map`` entry, ``--op-rule`` without ``=OP``, an
            unknown op or a bad regex.
    """
    from p2pmkt.ingest import CombinedConfig
    from p2pmkt.ingest.combined import parse_merchant_map, validate_config

    rules = []
    for rule in args.op_rule:
        pattern, sep, op = rule.rpartition("=")
        if not sep or not pattern:
            raise ConfigError(f"--op-rule {rule!r} is not REGEX=OP")
        rules.append((pattern, op.strip()))
    config = CombinedConfig(
        merchant_map=parse_merchant_map(args.merchant_map),
        merchant_from_path=args.merchant_from_path,
        static=args.static,
        skip_bots=args.skip_bots,
        app_agents=tuple(args.app_agent),
        desktop_agents=tuple(args.desktop_agent),
        op_rules=tuple(rules),
    )
    validate_config(config)
    return config


def _rotated(path: str, f: BinaryIO) -> BinaryIO | None:
    """What ``--follow`` should read next, once ``f`` (opened from ``path``) is at its end:
    a new file opened at ``path`` if the log was rotated (moved away and created again),
    ``f`` itself rewound if it was truncated in place (``copytruncate``), else None (keep
    waiting; also while the path has no file yet)."""
    try:
        now = os.stat(path)
    except OSError:
        return None
    was = os.fstat(f.fileno())
    if (now.st_ino, now.st_dev) != (was.st_ino, was.st_dev):
        try:
            return open(path, "rb")  # the caller closes it
        except OSError:
            return None
    if now.st_size < f.tell():
        f.seek(0)
        return f
    return None


def _size(f: BinaryIO) -> int | None:
    try:
        return os.fstat(f.fileno()).st_size
    except (OSError, ValueError):
        return None
