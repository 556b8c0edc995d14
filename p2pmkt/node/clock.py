"""Block time from the proposer's wall clock, with a fault hook for the chaos tests (TEST-ONLY).

The leader stamps each block it proposes with :func:`block_time_ms` of its wall-clock reading
(``p2pmkt.node.node``: ``chain.build_block(key, clock.block_time_ms(time.time()))``);
``ChainService.build_block`` then clamps it to at least the parent's time + 1 ms, and block
validation rejects a block whose time is not after its parent's.

Fault hook (test-only; never set it on a real node): when the environment variable
:data:`FAULT_ENV` names a file, the integer in that file (milliseconds, may be negative) is
added to every reading: the node's clock has jumped by that much. The file is re-read when its
modification time changes, so a harness (``tools/chaos``) moves a running node's clock by
rewriting it; a missing or empty file means no offset. Without the variable this is one
multiplication.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("p2pmkt.node.clock")

FAULT_ENV = "P2PMKT_FAULT_CLOCK_FILE"
"""Environment variable naming the clock-offset file (test-only fault injection)."""

_state: dict[str, int] = {"mtime": -1, "offset": 0}


def block_time_ms(now_s: float) -> int:
    """``now_s`` (a ``time.time()`` reading) in milliseconds, plus the injected offset."""
    return int(now_s * 1000) + offset_ms()


def offset_ms() -> int:
    """The injected clock offset in ms (0 unless :data:`FAULT_ENV` names a file with one)."""
    path = os.environ.get(FAULT_ENV)
    if not path:
        return 0
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        mtime = 0
    if mtime != _state["mtime"]:
        _state["mtime"] = mtime
        offset = 0
        if mtime:
            try:
                with open(path) as f:
                    text = f.read().strip()
                offset = int(text) if text else 0
            except (OSError, ValueError) as exc:
                log.error("fault_clock_unreadable path=%s error=%r (offset stays %d)",
                          path, exc, _state["offset"])
                return _state["offset"]
        if offset != _state["offset"]:
            log.warning("fault_clock_offset offset_ms=%d path=%s (test-only fault injection)",
                        offset, path)
        _state["offset"] = offset
    return _state["offset"]


__all__ = ["FAULT_ENV", "block_time_ms", "offset_ms"]
