"""A bounded time-to-live set: "have I seen this id recently?".

Pure: time is the ``now`` argument (seconds, any monotonic origin — the trio glue passes
``trio.current_time()``). Entries expire ``ttl`` seconds after they were first added; when the
set is full the oldest entry is evicted first, so memory stays bounded under a flood of
distinct ids. Insertion order equals expiry order, which keeps :meth:`SeenCache.add` O(1)
amortised.
"""

from __future__ import annotations

from collections import OrderedDict


class SeenCache:
    """Ids seen within the last ``ttl`` seconds, at most ``max_entries`` of them."""

    __slots__ = ("_entries", "max_entries", "ttl")

    def __init__(self, ttl: float = 120.0, max_entries: int = 100_000) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def seen(self, key: bytes, now: float) -> bool:
        """True if ``key`` was added and has not expired at ``now``."""
        self._expire(now)
        return key in self._entries

    def add(self, key: bytes, now: float) -> bool:
        """Record ``key``; return True if it was new (not seen within ``ttl``)."""
        self._expire(now)
        if key in self._entries:
            return False
        self._entries[key] = now + self.ttl
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, deadline = next(iter(entries.items()))
            if deadline > now:
                return
            del entries[key]
