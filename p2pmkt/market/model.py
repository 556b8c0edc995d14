"""The marketing domain's data: visits, indicators, reports, marketing information.

Everything here is a frozen value with ``to_wire()`` (a plain CBOR-able dict with text keys,
no floats) and ``from_wire(obj)`` that validates types and bounds and raises
:class:`p2pmkt.errors.InvalidTransaction` with a reason a user can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from p2pmkt.errors import InvalidTransaction

ACCESS_METHODS = ("browser", "desktop", "app")
"""SPEC flow 1: how a visitor reached the merchant. The index is the code contracts see."""

OPERATIONS = ("view", "click", "cart", "order", "search", "login", "other")
"""What the visitor did. ``order`` carries an amount; the index is the code contracts see."""

MAX_TEXT = 256
MAX_AMOUNT = 10**15  # minor currency units (cents); far above any real order


@dataclass(frozen=True, slots=True)
class Visit:
    """One visit to a merchant, as a terminal service node logs it (SPEC flow 1).

    Attributes:
        ip: visitor's IP address as text (v4 or v6).
        account: login account, ``""`` when the visitor was not logged in.
        time: access time in milliseconds since the Unix epoch (as logged by the terminal;
            it is data, never used as a clock).
        merchant: merchant id.
        method: one of :data:`ACCESS_METHODS`.
        op: one of :data:`OPERATIONS`.
        item: item id the operation concerned, ``""`` if none.
        amount: order amount in minor currency units, ``0`` unless ``op == "order"``.
    """

    ip: str
    account: str
    time: int
    merchant: str
    method: str
    op: str
    item: str = ""
    amount: int = 0

    FIELDS: ClassVar[tuple[str, ...]] = ("ip", "account", "time", "merchant", "method", "op", "item", "amount")
    """Order of the fields in the wire form (a visit batch carries thousands of visits, so a
    visit travels as a positional array rather than a map: smaller and faster to check)."""

    def to_wire(self) -> list[Any]:
        return [
            self.ip, self.account, self.time, self.merchant,
            self.method, self.op, self.item, self.amount,
        ]

    @classmethod
    def from_wire(cls, obj: Any) -> Visit:
        """Validate one visit in wire form ``[ip, account, time, merchant, method, op, item, amount]``.

        Raises:
            InvalidTransaction: naming the field at fault.
        """
        if not isinstance(obj, list) or len(obj) != 8:
            raise InvalidTransaction(
                "a visit is an array [ip, account, time, merchant, method, op, item, amount]"
            )
        ip, account, time, merchant, method, op, item, amount = obj
        if type(ip) is not str or not 0 < len(ip) <= 64:
            raise InvalidTransaction(f"visit ip must be text of 1-64 chars, got {ip!r:.40}")
        if type(account) is not str or len(account) > MAX_TEXT:
            raise InvalidTransaction(f"visit account must be text of at most {MAX_TEXT} chars")
        if type(time) is not int or not 0 <= time <= 2**53:
            raise InvalidTransaction(f"visit time must be ms since the epoch, got {time!r:.40}")
        if type(merchant) is not str or not 0 < len(merchant) <= 64:
            raise InvalidTransaction(f"visit merchant must be a merchant id, got {merchant!r:.40}")
        if method not in ACCESS_METHODS:
            raise InvalidTransaction(f"visit method {method!r:.40} is not one of {list(ACCESS_METHODS)}")
        if op not in OPERATIONS:
            raise InvalidTransaction(f"visit op {op!r:.40} is not one of {list(OPERATIONS)}")
        if type(item) is not str or len(item) > MAX_TEXT:
            raise InvalidTransaction(f"visit item must be text of at most {MAX_TEXT} chars")
        if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
            raise InvalidTransaction(f"visit amount must be an integer in [0, {MAX_AMOUNT}]")
        return cls(ip, account, time, merchant, method, op, item, amount)


# --- Wire helpers shared by the models below -----------------------------------------------


def _need(obj: Any, key: str, kind: type, what: str) -> Any:
    if not isinstance(obj, dict):
        raise InvalidTransaction(f"{what} must be a map")
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidTransaction(f"{what} field {key!r} must be {kind.__name__}, got {value!r:.40}")
    return value


MATCH_TYPES = ("exact", "phrase", "broad")
"""Keyword match types, as search-ads platforms expose them."""

CHANNELS = ("search", "display", "social", "video", "app-store", "email", "affiliate")


@dataclass(frozen=True, slots=True)
class Keyword:
    text: str
    match: str = "broad"

    def to_wire(self) -> dict[str, Any]:
        return {"text": self.text, "match": self.match}

    @classmethod
    def from_wire(cls, obj: Any) -> Keyword:
        text = _need(obj, "text", str, "keyword")
        match = _need(obj, "match", str, "keyword")
        if not 0 < len(text) <= 80:
            raise InvalidTransaction(f"keyword text must be 1-80 chars, got {len(text)}")
        if match not in MATCH_TYPES:
            raise InvalidTransaction(f"keyword match {match!r} is not one of {list(MATCH_TYPES)}")
        return cls(text, match)


@dataclass(frozen=True, slots=True)
class Campaign:
    """One campaign of a merchant's marketing information (SPEC flow 4).

    Money is in minor currency units (cents): ``max_bid`` per click, ``daily_budget`` per day.
    """

    name: str
    keywords: tuple[Keyword, ...] = ()
    max_bid: int = 0
    channels: tuple[str, ...] = ("search",)
    daily_budget: int = 0
    active: bool = True

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "keywords": [k.to_wire() for k in self.keywords],
            "max_bid": self.max_bid,
            "channels": list(self.channels),
            "daily_budget": self.daily_budget,
            "active": self.active,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Campaign:
        name = _need(obj, "name", str, "campaign")
        if not 0 < len(name) <= 64:
            raise InvalidTransaction("campaign name must be 1-64 chars")
        keywords = _need(obj, "keywords", list, f"campaign {name!r}")
        if len(keywords) > 500:
            raise InvalidTransaction(f"campaign {name!r} has {len(keywords)} keywords; at most 500")
        channels = _need(obj, "channels", list, f"campaign {name!r}")
        for ch in channels:
            if ch not in CHANNELS:
                raise InvalidTransaction(f"campaign {name!r}: channel {ch!r} is not one of {list(CHANNELS)}")
        max_bid = _need(obj, "max_bid", int, f"campaign {name!r}")
        budget = _need(obj, "daily_budget", int, f"campaign {name!r}")
        for label, v in (("max_bid", max_bid), ("daily_budget", budget)):
            if not 0 <= v <= MAX_AMOUNT:
                raise InvalidTransaction(f"campaign {name!r}: {label} {v} is outside [0, {MAX_AMOUNT}]")
        active = _need(obj, "active", bool, f"campaign {name!r}")
        kws = tuple(Keyword.from_wire(k) for k in keywords)
        if len({(k.text, k.match) for k in kws}) != len(kws):
            raise InvalidTransaction(f"campaign {name!r} lists a keyword twice")
        return cls(name, kws, max_bid, tuple(channels), budget, active)


@dataclass(frozen=True, slots=True)
class MarketingInfo:
    """A merchant's marketing information at one version (SPEC flow 4).

    Every version records who changed it (``author`` address), when (block ``time`` and
    ``height``) and which report caused it (``cause``: a report id, ``""`` for a manual
    update). Version 0 is "nothing set yet".
    """

    merchant: str
    version: int
    campaigns: tuple[Campaign, ...]
    author: bytes
    time: int
    height: int
    cause: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "merchant": self.merchant,
            "version": self.version,
            "campaigns": [c.to_wire() for c in self.campaigns],
            "author": self.author,
            "time": self.time,
            "height": self.height,
            "cause": self.cause,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> MarketingInfo:
        return cls(
            merchant=_need(obj, "merchant", str, "marketing info"),
            version=_need(obj, "version", int, "marketing info"),
            campaigns=tuple(Campaign.from_wire(c) for c in _need(obj, "campaigns", list, "marketing info")),
            author=_need(obj, "author", bytes, "marketing info"),
            time=_need(obj, "time", int, "marketing info"),
            height=_need(obj, "height", int, "marketing info"),
            cause=_need(obj, "cause", str, "marketing info"),
        )
