"""``p2pmkt console``: a Python REPL attached to a running node (like ``geth attach``).

Theory of operation
-------------------
The console connects with the synchronous client wrapper (:mod:`p2pmkt.client`), which runs
its trio loop in a worker thread, so that every helper here is a plain function and the REPL
itself is ordinary synchronous Python driven by prompt_toolkit (history, completion, editing).
Each line is compiled with ``PyCF_ALLOW_TOP_LEVEL_AWAIT`` so ``await`` works too (against the
async client in ``aclient``), exactly like ``python -m asyncio``'s REPL but on trio.

An exception in user code prints a short message and keeps the prompt; p2pmkt errors print
their reason slug, so ``rejected (bad_nonce): …`` tells the user what to fix.

Helpers preloaded in the namespace: ``client``, ``head()``, ``block(h)``, ``tx(txid)``,
``merchant(m)``, ``reports(m)``, ``history(m)``, ``send(kind, payload)``, ``watch()``,
``info()``, ``key`` (the signing key if one was given) and ``help_p2pmkt()``.
"""

from __future__ import annotations

import ast
import codeop
import re
import sys
import traceback
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HISTORY_FILE = Path.home() / ".p2pmkt_console_history"

BANNER = """p2pmkt console — connected to {target}
chain {chain}, height {height}, node roles {roles}
helpers: head() block(h) tx(txid) merchant(m) reports(m) history(m) send(kind, payload) watch() info()
         `client` is the connected client; help_p2pmkt() lists everything; Ctrl-D exits."""


def _pretty(value: Any) -> None:
    if value is None:
        return
    from rich.pretty import pprint

    pprint(readable(value), expand_all=False)


def readable(value: Any) -> Any:
    """Byte strings print as hex (addresses, hashes), which is what people compare."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: readable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [readable(v) for v in value]
    return value


def make_namespace(client: Any, key: Any = None) -> dict[str, Any]:
    """The console's globals: the client and short helpers over it."""

    def head() -> Any:
        """The last committed block: height, hash, time."""
        return client.head()

    def block(which: int | bytes | str) -> Any:
        """A block by height, hash (bytes) or hex hash."""
        if isinstance(which, str):
            which = bytes.fromhex(which.removeprefix("0x"))
        return client.block(which)

    def tx(txid: bytes | str) -> Any:
        """Status of a transaction: pending, committed (with height) or rejected (with reason)."""
        if isinstance(txid, str):
            txid = bytes.fromhex(txid.removeprefix("0x"))
        return client.tx(txid)

    def merchant(m: str) -> Any:
        """A merchant's current marketing information."""
        return client.market_info(m)

    def history(m: str, limit: int = 10) -> Any:
        """Past versions of a merchant's marketing information, newest first."""
        return client.market_history(m, limit=limit)

    def reports(m: str, limit: int = 10) -> Any:
        """Indicator reports of a merchant, newest first."""
        return client.reports(m, limit=limit)

    def info() -> Any:
        """node.info: chain, peer id, roles, height, leader, peers."""
        return client.info()

    def send(kind: str, payload: dict[str, Any], *, wait: bool = True) -> Any:
        """Sign ``payload`` as a ``kind`` transaction with ``key``, submit it, and (by
        default) wait until it is committed or rejected."""
        if key is None:
            raise RuntimeError("no signing key: start the console with --key FILE or --node NAME")
        return client.send(key, kind, payload, wait=wait)

    def watch(kinds: Iterable[str] = ("block", "report", "market"), count: int = 0) -> None:
        """Print events as they arrive (Ctrl-C stops); ``count`` > 0 stops after that many."""
        seen = 0
        try:
            for event in client.events(list(kinds)):
                _pretty(event)
                seen += 1
                if count and seen >= count:
                    return
        except KeyboardInterrupt:
            return

    ns: dict[str, Any] = {
        "__name__": "__console__",
        "client": client,
        "key": key,
        "head": head,
        "block": block,
        "tx": tx,
        "merchant": merchant,
        "history": history,
        "reports": reports,
        "info": info,
        "send": send,
        "watch": watch,
    }

    def help_p2pmkt() -> None:
        """List the console helpers."""
        for name in ("head", "block", "tx", "merchant", "history", "reports", "info", "send", "watch"):
            doc = (ns[name].__doc__ or "").strip().splitlines()[0]
            print(f"  {name:<9} {doc}")

    ns["help_p2pmkt"] = help_p2pmkt
    return ns


class Console:
    """Compiles and runs console input in ``namespace``; never lets an exception escape."""

    def __init__(self, namespace: dict[str, Any], *, write: Callable[[str], Any] = sys.stderr.write) -> None:
        self.namespace = namespace
        self.write = write
        self._compile = codeop.CommandCompiler()
        self._compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

    def needs_more(self, source: str) -> bool:
        """True when ``source`` is an incomplete statement (the prompt should continue)."""
        try:
            return self._compile(source, "<console>", "single") is None
        except (SyntaxError, ValueError, OverflowError):
            return False

    def run(self, source: str) -> None:
        try:
            compiled = self._compile(source, "<console>", "single")
        except (SyntaxError, ValueError, OverflowError) as exc:
            self.write(f"SyntaxError: {exc}\n")
            return
        if compiled is None:
            return
        self._exec(compiled)

    def run_script(self, text: str, filename: str) -> bool:
        """Run a whole file (``--exec``); returns False if it raised."""
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        try:
            compiled = compile(text, filename, "exec", flags=flags)
        except SyntaxError as exc:
            self.write(f"{filename}:{exc.lineno}: SyntaxError: {exc.msg}\n")
            return False
        return self._exec(compiled)

    def _exec(self, compiled: types.CodeType) -> bool:
        from p2pmkt.errors import P2pmktError

        old_hook = sys.displayhook
        sys.displayhook = _display
        try:
            result = eval(compiled, self.namespace)
            if result is not None and hasattr(result, "__await__"):
                self.write("await is only available with the async client `aclient`\n")
            return True
        except SystemExit:
            raise
        except KeyboardInterrupt:
            self.write("KeyboardInterrupt\n")
        except P2pmktError as exc:
            self.write(f"{type(exc).__name__} ({exc.reason}): {exc}\n")
        except Exception as exc:
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            # Drop the console's own frames: users want their line, not ours.
            self.write("".join([tb[0], *tb[2:]]) if len(tb) > 2 else "".join(tb))
        finally:
            sys.displayhook = old_hook
        return False


def _display(value: Any) -> None:
    if value is None:
        return
    import builtins

    builtins._ = value  # type: ignore[attr-defined]
    _pretty(value)


class _Completer:
    """Completes names in the namespace and attributes after a dot (like rlcompleter)."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        import rlcompleter

        self._rl = rlcompleter.Completer(namespace)

    def candidates(self, text: str) -> list[str]:
        out: list[str] = []
        i = 0
        while True:
            c = self._rl.complete(text, i)
            if c is None or i > 500:
                return out
            out.append(c)
            i += 1


def interact(namespace: dict[str, Any], banner: str, *, history: Path | None = HISTORY_FILE) -> None:
    """Run the interactive prompt until EOF (Ctrl-D)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    console = Console(namespace)
    rl = _Completer(namespace)

    class PTCompleter(Completer):  # type: ignore[misc]
        def get_completions(self, document: Any, complete_event: Any) -> Any:
            word = document.get_word_before_cursor(pattern=_WORD)
            for cand in rl.candidates(word):
                yield Completion(cand, start_position=-len(word))

    hist: Any = InMemoryHistory()
    if history is not None:
        try:
            history.touch(exist_ok=True)
            hist = FileHistory(str(history))
        except OSError:
            pass
    session: Any = PromptSession(history=hist, completer=PTCompleter(), complete_while_typing=False)
    print(banner)
    while True:
        try:
            source = session.prompt(">>> ")
            while console.needs_more(source):
                source += "\n" + session.prompt("... ")
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
            continue
        except EOFError:
            return
        console.run(source)


_WORD = re.compile(r"[\w.]+")
