"""``p2pmkt visits ingest``: files (or stdin) of visits → signed ``visit.pack`` transactions.

The pure pieces live in :mod:`p2pmkt.ingest` (parsers, :class:`Batcher`, :class:`LineTailer`,
:class:`IngestTracker`); this module does the I/O: reads the file in chunks (following it as
it grows with ``--follow``), submits each closed batch with the client library's
:meth:`~p2pmkt.client.Client.submit_visits` (which waits out back-pressure: never a silent
drop), watches the blocks for its transactions (a task beside the reader), shows progress,
and reports bad lines and refusals by input line number.

Nothing accepted is lost: on ``--on-error stop`` and on Ctrl-C the batches read so far are
still submitted, and the command waits until the node has committed its transactions before
it prints the summary and exits (a second Ctrl-C leaves at once). The summary (lines read,
visits committed, not visits, bad) is printed on every way out once reading began; the exit
codes are in :data:`EXIT_CODES_HELP` (and docs/INGEST.md).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, BinaryIO

from p2pmkt.errors import ConfigError

if TYPE_CHECKING:  # trio is loaded when the command runs, not for `p2pmkt --help`
    import trio

CHUNK = 1 << 16
FOLLOW_POLL = 0.2
DEFAULT_BATCH = 2000
MAX_BATCH = 100_000
"""Most visits per transaction the command will try: 34 bytes each, such a transaction nears
the node's default 4 MiB frame limit, far above any chain's sensible ``max_visits_per_tx``."""
COMMIT_PATIENCE = 60.0
"""Seconds the command waits, at its end, without any of its transactions being committed."""

EXIT_CODES_HELP = """\
exit status:
  0    the input was read to its end and every visit read is committed; bad lines skipped
       as asked (--on-error skip) are reported and counted, and do not fail the run as
       long as at least one visit was committed
  1    bad input: stopped at a bad line (--on-error stop) or a bad CSV header, or every line
       that was not skipped was bad (nothing committed); the visits read before a stop are
       committed all the same
  2    usage or configuration error: a bad option, --batch above the chain's limit, no
       --key, an unreadable file, an access log with no merchant rule
  3    the node refused a transaction (e.g. an unknown merchant): the input line it names
       is reported; the visits before its batch are committed, none from it on
  4    the node is unreachable, or it committed none of the last transactions in 60 s
  130  interrupted (Ctrl-C): what was read is still sent and waited for (Ctrl-C again to
       leave at once); the summary says what is committed
"""


def add_arguments(ing: argparse.ArgumentParser) -> None:
    """The options of ``p2pmkt visits ingest`` (``--connect``/``--node``/``--key`` are the
    client commands' common target options, added by the caller)."""
    ing.epilog = (ing.epilog or "") + (
        "\n\nkeys: the key must hold the terminal role. On a `p2pmkt dev` chain, write its public"
        "\n  dev terminal key with `p2pmkt key dev terminal terminal.key` and pass --key terminal.key.\n\n"
        + EXIT_CODES_HELP)
    ing.add_argument("file", help="JSON lines, CSV, or an Apache/NGINX combined access log; - reads stdin")
    ing.add_argument("--format", choices=("auto", "jsonl", "csv", "combined"), default="auto",
                     help="input format (default: guess from the first line)")
    ing.add_argument("--merchant", help="merchant id for records and access-log lines without one (see docs/INGEST.md)")
    log_opts = ing.add_argument_group("access logs (--format combined; the rules are in docs/INGEST.md)")
    log_opts.add_argument("--merchant-map", metavar="MAP", default="",
                          help="merchant by host or path prefix: 'shop.acme.test=acme,/globex=globex'")
    log_opts.add_argument("--merchant-from-path", action="store_true",
                          help="the first path segment is the merchant id (when the map gives none)")
    log_opts.add_argument("--static", choices=("skip", "view"), default="skip",
                          help="static assets (.css, .png, ...) are skipped (default) or count as views")
    log_opts.add_argument("--skip-bots", action="store_true", help="skip self-declared crawlers")
    log_opts.add_argument("--app-agent", action="append", default=[], metavar="REGEX",
                          help="a user agent matching REGEX is the app (repeatable)")
    log_opts.add_argument("--desktop-agent", action="append", default=[], metavar="REGEX",
                          help="a user agent matching REGEX is the desktop client (repeatable)")
    log_opts.add_argument("--op-rule", action="append", default=[], metavar="REGEX=OP",
                          help="path?query matching REGEX is operation OP, or 'skip' (repeatable; tried first)")
    ing.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                     help="a bad line is reported with its line number and skipped (default) or stops "
                          "the ingest; a bad CSV header always stops it")
    ing.add_argument("--batch", type=int, default=None, metavar="N",
                     help=f"visits per transaction (default: {DEFAULT_BATCH}, or the chain's "
                          "max_visits_per_tx if lower). An N above the chain's limit is refused, "
                          "naming the limit, before anything is sent")
    ing.add_argument("--follow", action="store_true", help="keep reading as the file grows, and through logrotate's moves and truncations (like tail -F)")


def run_ingest(args: argparse.Namespace) -> int:
    import trio

    return trio.run(_ingest, args)


async def _ingest(args: argparse.Namespace) -> int:
    from p2pmkt.cli.client_cmds import resolve
    from p2pmkt.client import open_client

    combined = combined_config(args)  # before any dial: a mistake here is the user's to fix first
    if args.format == "combined":
        check_merchant_rule(combined, args.merchant or "")
    if args.batch is not None and not 1 <= args.batch <= MAX_BATCH:
        raise ConfigError(f"--batch {args.batch}: give 1 to {MAX_BATCH:,} visits per transaction "
                          "(and no more than the chain allows)")
    addr, key = resolve(args)
    src = _open_input(args)
    try:
        async with open_client(addr, key) as client:
            info = await client.info()
            if key is None:
                raise ConfigError(no_key_message(info.chain))
            per_tx = await batch_size(client, args.batch)
            run = _Run(args, client, key, per_tx, combined, src)
            try:
                return await run.main()
            finally:
                src = run.src  # --follow may have moved on to a new file
    finally:
        if src is not sys.stdin.buffer:
            src.close()


def no_key_message(chain: str) -> str:
    """What to say when no key was given: on a dev chain, how to get its terminal key."""
    from p2pmkt.chain.dev import DEV_CHAIN_ID

    text = "this command signs transactions: pass --key FILE, a key holding the terminal role"
    if chain == DEV_CHAIN_ID:
        text += (". This is a dev chain: `p2pmkt key dev terminal terminal.key` writes its "
                 "(public) terminal key, then pass --key terminal.key")
    else:
        text += " (or --node NAME for a node of the local testnet)"
    return text


def check_merchant_rule(config: Any, merchant: str) -> None:
    """Refuse an access-log ingest in which no line could get a merchant.

    Raises:
        ConfigError: no ``--merchant``, no ``--merchant-map`` and no ``--merchant-from-path``:
            every line would be bad (docs/INGEST.md, rule 5).
    """
    if not (merchant or config.merchant or config.merchant_map or config.merchant_from_path):
        raise ConfigError(
            "an access log does not say which merchant a request was for: give --merchant ID "
            "(one merchant for every line), --merchant-map 'host=ID,/path=ID' or "
            "--merchant-from-path (docs/INGEST.md, rule 5)")


async def batch_size(client: Any, wanted: int | None) -> int:
    """Visits per transaction: ``wanted`` if the chain takes that many in one transaction,
    else (``wanted`` None) the default, or the chain's limit if lower (``chain.params`` →
    ``max_visits_per_tx``).

    Raises:
        ConfigError: ``wanted`` is more than the chain takes in one transaction.
    """
    limit = int((await client.call("chain.params"))["params"]["max_visits_per_tx"])
    if wanted is None:
        return min(DEFAULT_BATCH, limit)
    if wanted > limit:
        raise ConfigError(f"--batch {wanted}: this chain takes at most {limit:,} visits in one "
                          f"transaction (its max_visits_per_tx); pass --batch {limit} or less, "
                          "or leave --batch out")
    return wanted


def _open_input(args: argparse.Namespace) -> BinaryIO:
    if args.file == "-":
        return sys.stdin.buffer
    try:
        return open(args.file, "rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from exc


class _Run:
    """One ingest: the reading loop, the block watcher and the Ctrl-C handler, sharing an
    :class:`~p2pmkt.ingest.IngestTracker`."""

    def __init__(self, args: argparse.Namespace, client: Any, key: Any, per_tx: int,
                 combined: Any, src: BinaryIO) -> None:
        import trio

        from p2pmkt.ingest import Batcher, BatcherConfig, IngestTracker, LineTailer

        self.args = args
        self.client = client
        self.key = key
        self.per_tx = per_tx
        self.combined = combined
        self.src = src
        self.tracker = IngestTracker()
        self.batcher = Batcher(BatcherConfig(max_visits=per_tx, max_delay=0.2))
        self.tailer = LineTailer()
        self.parser: Any = None
        self.fmt = ""                    # the input's format, once its first line is read
        self.stop_requested = False      # first Ctrl-C: read no more, finish what was read
        self.read_scope = trio.CancelScope()   # the reading loop (a refusal cancels it)
        self.hard_scope = trio.CancelScope()   # everything (second Ctrl-C)
        self.wait_scope: trio.CancelScope | None = None  # a blocking read of standard input
        self.progress = trio.Event()     # set whenever the watcher learns something
        self.outbox: list[Any] = []      # closed batches not yet taken by the node, oldest first

    # --- the run -------------------------------------------------------------------------

    async def main(self) -> int:
        import trio

        from p2pmkt.cli.main import (
            EXIT_FAILED,
            EXIT_INTERRUPTED,
            EXIT_OK,
            EXIT_REJECTED,
            EXIT_UNAVAILABLE,
        )

        t = self.tracker
        late = False
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._watch_interrupts)
                nursery.start_soon(self._watch_blocks)
                with self.hard_scope:
                    with self.read_scope:
                        await self._read_all()
                    if t.refusal is None:
                        await self._send(self.batcher.flush(time.monotonic()))
                    late = not await self._wait_committed()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # the reader and the watcher both lost the node
            from p2pmkt.errors import group_leaves

            raise group_leaves(group)[0] from None
        finally:
            t.unsent += self.batcher.pending + sum(len(b.visits) for b in self.outbox)
            if t.refusal is not None:
                for message in t.refusal.describe(self.args.file, csv=self.fmt == "csv"):
                    print(f"{self.args.file}: {message}", file=sys.stderr)
            if late:
                print(f"unreachable (timeout): the node committed none of the ingest's last "
                      f"{len(t.inflight):,} transactions in {COMMIT_PATIENCE:.0f} s",
                      file=sys.stderr)
            print(t.summary(), flush=True)
        if late and t.outcome() == "ok":
            return EXIT_UNAVAILABLE
        return {"ok": EXIT_OK, "bad_input": EXIT_FAILED, "refused": EXIT_REJECTED,
                "interrupted": EXIT_INTERRUPTED}[t.outcome()]

    async def _read_all(self) -> None:
        """Read, parse and submit until the input ends (not with ``--follow``), a bad line
        stops it, the user interrupts it, or the node refuses a transaction."""
        import trio

        from p2pmkt.ingest import BadLine, detect_format, make_parser

        args, t = self.args, self.tracker
        total = None if args.follow or self.src is sys.stdin.buffer else _size(self.src)
        progress = _progress()
        with progress:
            task = progress.add_task("ingest", total=total, info="")
            while not self.stop_requested:
                chunk = await self._read_chunk()
                if self.stop_requested:
                    break
                if chunk:
                    lines = self.tailer.feed(chunk)
                    progress.update(task, advance=len(chunk))
                elif not args.follow:
                    lines = self.tailer.close()
                else:
                    now_at = None if self.src is sys.stdin.buffer else _rotated(args.file, self.src)
                    if now_at is None:
                        await self._send(self.batcher.poll(time.monotonic()))
                        await trio.sleep(FOLLOW_POLL)  # waiting for the file to grow
                        continue
                    if now_at is self.src:  # truncated in place: read it again from the start
                        self.tailer.reset()
                        continue
                    # Rotated: read the old file to its end once more (what was written
                    # between our last read and the move); its last line may lack a
                    # newline. Then the new file at the path, from its first line.
                    rest = await trio.to_thread.run_sync(self.src.read)
                    lines = self.tailer.feed(rest) + self.tailer.close()
                    progress.update(task, advance=len(rest))
                    self.src.close()
                    self.src = now_at
                    self.tailer.reset()
                for line in lines:
                    t.lines += 1
                    if self.parser is None:
                        fmt = self.fmt = detect_format(line.text) if args.format == "auto" else args.format
                        if fmt == "combined":
                            check_merchant_rule(self.combined, args.merchant or "")
                        self.parser = make_parser(fmt, merchant=args.merchant or "",
                                                  combined=self.combined)
                    try:
                        visit = self.parser.parse(line)
                    except BadLine as exc:
                        print(f"{args.file}: {exc}", file=sys.stderr)
                        if t.bad_line(exc, stop=args.on_error == "stop"):
                            return
                        continue
                    if visit is None:
                        t.skipped += 1
                        continue
                    await self._send(self.batcher.add(visit, time.monotonic(), line=line.no))
                progress.update(task, info=f"{t.committed_visits:,} visits committed")
                if not chunk and not args.follow:
                    return

    async def _read_chunk(self) -> bytes:
        """The next bytes of the input (``b""`` at its end, or when Ctrl-C cut a wait on
        standard input short)."""
        import trio

        if self.src is not sys.stdin.buffer:
            return await trio.to_thread.run_sync(self.src.read, CHUNK)
        data = b""
        self.wait_scope = trio.CancelScope()
        try:
            with self.wait_scope:
                # read1: what the pipe has now (read would wait for a whole chunk). A pipe may
                # stay silent for ever: Ctrl-C must not wait for it; the abandoned thread
                # ends with the process.
                read1 = getattr(self.src, "read1", self.src.read)
                # (mypy 2.4 misreads run_sync's keyword arguments after its *args: Unpack[Ts])
                data = await trio.to_thread.run_sync(read1, CHUNK, abandon_on_cancel=True)  # type: ignore[call-arg]
        finally:
            self.wait_scope = None
        return data

    async def _send(self, batches: list[Any]) -> None:
        """Submit closed batches in order, one transaction each. A busy node (full mempool,
        this terminal's share of it) is waited out for as long as it takes: a second Ctrl-C
        stops it, nothing else. A refusal is recorded with the batch's lines and ends the
        reading; the batches after it are not sent."""
        from p2pmkt.rpc.protocol import RpcError

        t = self.tracker
        self.outbox.extend(batches)  # what is left there at the end was never taken
        while self.outbox and t.refusal is None:
            b = self.outbox[0]
            try:
                (txid,) = await self.client.submit_visits(self.key, b.visits, per_tx=self.per_tx,
                                                          patience=math.inf)
            except RpcError as exc:
                del self.outbox[0]  # counted by the refusal itself
                t.refused_at_submission(exc.error_reason or exc.reason, exc.rpc_message, b.lines)
                self.read_scope.cancel()
                self.progress.set()
                return
            del self.outbox[0]
            t.sent(txid, b.lines)

    async def _wait_committed(self) -> bool:
        """Wait until every transaction sent is committed or one is rejected in its block
        (which ends the others' chances); False when the node committed none of them for
        :data:`COMMIT_PATIENCE` seconds."""
        import trio

        t = self.tracker
        while t.inflight:
            before = t.committed_txs
            with trio.move_on_after(COMMIT_PATIENCE):
                while t.committed_txs == before and t.inflight:
                    self.progress = trio.Event()
                    await self.progress.wait()
            if t.committed_txs == before and t.inflight:
                return False
        return True

    # --- beside the reader ---------------------------------------------------------------

    async def _watch_blocks(self) -> None:
        """After each block, learn which of the run's transactions it committed or rejected
        (polling instead if the node takes no more subscriptions)."""
        import trio

        from p2pmkt.rpc.protocol import RpcError

        while True:
            try:
                async with self.client.subscribe(["block"]) as events:
                    await self._settle()
                    async for _ in events:
                        await self._settle()
                # The node ended the subscription (this client fell behind): subscribe again.
            except RpcError:
                await self._settle()
                await trio.sleep(FOLLOW_POLL)

    async def _settle(self) -> None:
        """Find how far the run's transactions are committed, and whether the first one not
        committed was rejected. Transactions commit in nonce order (a rejected one blocks
        those after it), so the committed ones are a prefix of the queue: a binary search
        asks about a few of them, not each."""
        t = self.tracker
        queue = t.inflight
        if not queue:
            return
        statuses: dict[int, Any] = {}

        async def status(i: int) -> Any:
            if i not in statuses:
                statuses[i] = await _tx_status(self.client, queue[i].txid)
            return statuses[i]

        def committed(st: Any) -> bool:
            return st is not None and st.status == "committed"

        lo, hi = -1, len(queue) - 1  # queue[lo] committed (-1: none), queue[hi] unknown
        if committed(await status(hi)):
            lo = hi = len(queue)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if committed(await status(mid)):
                lo = mid
            else:
                hi = mid
        if lo >= 0:
            t.committed(lo + 1)
        first = statuses.get(hi)
        if first is not None and first.status == "rejected":
            t.rejected_in_block(first.reason, first.message)
            self.read_scope.cancel()
        self.progress.set()

    async def _watch_interrupts(self, task_status: Any) -> None:
        """First Ctrl-C: read no more, send and wait for what was read. Second: leave now."""
        import trio

        with trio.open_signal_receiver(signal.SIGINT) as signals:
            task_status.started()
            async for _ in signals:
                self.tracker.interrupted = True
                if not self.stop_requested:
                    self.stop_requested = True
                    print("stopping: sending what was read and waiting for it to be committed "
                          "(Ctrl-C again to leave now)", file=sys.stderr, flush=True)
                    if self.wait_scope is not None:
                        self.wait_scope.cancel()
                else:
                    self.hard_scope.cancel()
                    return


async def _tx_status(client: Any, txid: bytes) -> Any:
    """``client.tx(txid)``, waiting out the node's rate limit."""
    from p2pmkt.client.client import while_busy

    return await while_busy(lambda: client.tx(txid))


def _progress() -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]ingest"), BarColumn(), TextColumn("{task.completed:,.0f} bytes"),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                    disable=not sys.stderr.isatty(), transient=False)


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
