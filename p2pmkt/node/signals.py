"""Stop long-running commands cleanly on SIGINT/SIGTERM.

Signals are received as events rather than left to trio's KeyboardInterrupt delivery: a
KeyboardInterrupt raised inside py-libp2p's tasks can be swallowed by its ``except
BaseException`` blocks, and then Ctrl-C did nothing (found by tests/cli).
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import trio


async def run_until_signal(fn: Callable[[], Awaitable[None]]) -> bool:
    """Run ``fn`` until it returns or SIGINT/SIGTERM arrives; True if a signal stopped it."""
    stopped = False
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                nonlocal stopped
                async for _ in signals:
                    stopped = True
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(on_signal)
            await fn()
            nursery.cancel_scope.cancel()
    return stopped
