"""Block time from the proposer's wall clock, with a fault hook for the chaos tests (TEST-ONLY).

The leader stamps each block it proposes with :func:`block_time_ms` of its wall-clock reading
(``p2pmkt.node.node``: ``chain.build_block(key, clock.block_time_ms(time.time()))``);
``ChainService.build_block`` then clamps it to at least the parent's time + 1 ms, and block
validation rejects a block whose time is not after its parent's.

Fault hook (test-only; never set it on a real node): when the environment variable
:data:`FAULT_ENV` names a file, the integer in that file (milliseconds, may be negative) is
added to every reading: the node's clock has jumped by that much. The file is re-read when its
modification time changes, so a harness (``tools/chaos``) moves a running node's clock by
rewriting it; a missing or empty file means no offset (:class:`p2pmkt.net.faults.FaultFile`).
Without the variable this is one multiplication and one lookup.
"""

from __future__ import annotations

from p2pmkt.net.faults import FaultFile

FAULT_ENV = "P2PMKT_FAULT_CLOCK_FILE"
"""Environment variable naming the clock-offset file (test-only fault injection)."""


def _parse_offset(text: str) -> int:
    return int(text) if text else 0


_offset = FaultFile(FAULT_ENV, _parse_offset, 0, "clock_offset_ms")


def block_time_ms(now_s: float) -> int:
    """``now_s`` (a ``time.time()`` reading) in milliseconds, plus the injected offset."""
    return int(now_s * 1000) + offset_ms()


def offset_ms() -> int:
    """The injected clock offset in ms (0 unless :data:`FAULT_ENV` names a file with one)."""
    return _offset.get()
