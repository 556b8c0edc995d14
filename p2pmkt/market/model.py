"""The marketing domain's data: visits, indicators, reports, marketing information.

Everything here is a frozen value with ``to_wire()`` (a plain CBOR-able dict with text keys,
no floats) and ``from_wire(obj)`` that validates types and bounds and raises
:class:`p2pmkt.errors.InvalidTransaction` with a reason a user can act on.

* :class:`Visit` (flow 1): a positional 8-element array on the wire.
* :class:`IndicatorSpec` with its :class:`ReportingCondition` and :class:`Target` (flow 2).
* :class:`Report` (flow 3): written by the chain itself, attributed to the platform; its id
  (:func:`report_id`) is what a marketing update cites as its ``cause``.
* :class:`MarketingInfo` of :class:`Campaign` and :class:`Keyword` (flow 4), versioned.

Numbers are integers; fractional values are fixed-point with an explicit scale
(``value / 10**scale``), so every node compares them identically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from p2pmkt.chain._slots import slot_builder
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
        if cls is Visit:
            # One per visit on the chain's hottest path: see p2pmkt.chain._slots (~1 us saved).
            return _new_visit(ip, account, time, merchant, method, op, item, amount)
        return cls(ip, account, time, merchant, method, op, item, amount)


_new_visit = slot_builder(Visit)


# --- Wire helpers shared by the models below -----------------------------------------------


def _no_extra(obj: Any, keys: tuple[str, ...], what: str) -> None:
    """Refuse fields outside ``keys``: a misspelt field (``budget`` for ``daily_budget``)
    would otherwise be dropped without a word, and the merchant would believe it set."""
    extra = sorted(map(str, set(obj) - set(keys))) if isinstance(obj, dict) else []
    if extra:
        raise InvalidTransaction(
            f"{what} has unknown field{'s' if len(extra) > 1 else ''} {extra}; "
            f"its fields are exactly {sorted(keys)}")


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
        _no_extra(obj, ("text", "match"), f"keyword {text!r}")
        if not 0 < len(text) <= 80:
            raise InvalidTransaction(f"keyword text must be 1-80 chars, got {len(text)}")
        if match not in MATCH_TYPES:
            raise InvalidTransaction(f"keyword match {match!r} is not one of {list(MATCH_TYPES)}")
        return cls(text, match)


CAMPAIGN_FIELDS = ("name", "keywords", "max_bid", "channels", "daily_budget", "active")
"""A campaign map's keys, all required, no others (docs/PROTOCOL.md §Market data)."""


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
        _no_extra(obj, CAMPAIGN_FIELDS, f"campaign {name!r}")
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


# --- Indicators, reporting conditions, targets and reports (SPEC flows 2 and 3) --------------

INDICATOR_NAME_MAX = 64
MAX_PARAMS = 32
MAX_SCALE = 18
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
DIRECTIONS = ("at_least", "at_most")


VALUE_NAME = re.compile(r"[a-z0-9_.]{1,24}")
"""A report value's name: what a contract may write (contracts.abi.OUTPUT_NAME). A target or a
rule naming anything else could never match a report."""


def value_name_ok(text: str) -> bool:
    return VALUE_NAME.fullmatch(text) is not None


def _name_ok(text: str) -> bool:
    """Indicator and value names: 1-64 chars of ``[a-z0-9_.-]``, starting alphanumeric."""
    if not 0 < len(text) <= INDICATOR_NAME_MAX or not (text[0].isascii() and text[0].isalnum()):
        return False
    return all(c.isascii() and (c.islower() or c.isdigit() or c in "_.-") for c in text)


def _exact(obj: Any, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or set(obj) != set(keys):
        raise InvalidTransaction(f"{what} must be a map with exactly the fields {sorted(keys)}")
    return obj


@dataclass(frozen=True, slots=True)
class ReportingCondition:
    """When an indicator reports (SPEC flow 2): every N visits, every T ms of block time, or both.

    ``every_visits`` or ``every_ms`` may be 0 (that trigger off), not both. With both set the
    indicator reports as soon as *either* holds. Time is block time only.
    """

    every_visits: int = 0
    every_ms: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {"every_visits": self.every_visits, "every_ms": self.every_ms}

    @classmethod
    def from_wire(cls, obj: Any) -> ReportingCondition:
        _exact(obj, ("every_visits", "every_ms"), "condition")
        n = _need(obj, "every_visits", int, "condition")
        t = _need(obj, "every_ms", int, "condition")
        if not 0 <= n <= 10**9 or not 0 <= t <= 10**12:
            raise InvalidTransaction(
                "condition every_visits must be in [0, 10**9] and every_ms in [0, 10**12]"
            )
        if n == 0 and t == 0:
            raise InvalidTransaction("condition needs every_visits or every_ms (or both) above 0")
        return cls(n, t)


@dataclass(frozen=True, slots=True)
class Target:
    """The preset result an indicator value should meet (SPEC flow 2).

    ``threshold`` is fixed-point at ``scale`` (``threshold / 10**scale``); the comparison with a
    report value at another scale is done exactly, in integers. ``at_least``: the target is
    missed when the value is below the threshold; ``at_most``: when it is above.
    """

    value: str
    threshold: int
    scale: int
    direction: str

    def to_wire(self) -> dict[str, Any]:
        return {"value": self.value, "threshold": self.threshold, "scale": self.scale,
                "direction": self.direction}

    @classmethod
    def from_wire(cls, obj: Any) -> Target:
        _exact(obj, ("value", "threshold", "scale", "direction"), "target")
        value = _need(obj, "value", str, "target")
        threshold = _need(obj, "threshold", int, "target")
        scale = _need(obj, "scale", int, "target")
        direction = _need(obj, "direction", str, "target")
        if not value_name_ok(value):
            raise InvalidTransaction(
                f"target value name {value!r:.70} must be 1-24 chars of a-z 0-9 _ . (the names a "
                "contract can write, CONTRACTS.md)")
        if not _I64_MIN <= threshold <= _I64_MAX:
            raise InvalidTransaction("target threshold must fit in a signed 64-bit integer")
        if not 0 <= scale <= MAX_SCALE:
            raise InvalidTransaction(f"target scale must be in [0, {MAX_SCALE}]")
        if direction not in DIRECTIONS:
            raise InvalidTransaction(f"target direction {direction!r:.40} is not one of {list(DIRECTIONS)}")
        return cls(value, threshold, scale, direction)

    def missed_by(self, value: int, scale: int) -> bool:
        """True when ``value`` (fixed-point at ``scale``) misses this target."""
        top = max(scale, self.scale)
        v: int = value * pow(10, top - scale)
        th: int = self.threshold * pow(10, top - self.scale)
        return v < th if self.direction == "at_least" else v > th


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """A merchant's indicator configuration (SPEC flow 2), written by its merchant-ops node.

    ``params`` are sorted by name (canonical); ``target`` is None when nothing is preset.
    """

    merchant: str
    name: str
    code_hash: bytes
    params: tuple[tuple[str, int], ...]
    condition: ReportingCondition
    target: Target | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "merchant": self.merchant,
            "name": self.name,
            "code": self.code_hash,
            "params": dict(self.params),
            "condition": self.condition.to_wire(),
            "target": None if self.target is None else self.target.to_wire(),
        }

    @classmethod
    def from_wire(cls, obj: Any) -> IndicatorSpec:
        """Validate ``{"merchant", "name", "code", "params", "condition", "target"}``."""
        _exact(obj, ("merchant", "name", "code", "params", "condition", "target"), "indicator")
        merchant = _need(obj, "merchant", str, "indicator")
        name = _need(obj, "name", str, "indicator")
        code = _need(obj, "code", bytes, "indicator")
        params = _need(obj, "params", dict, "indicator")
        if not _name_ok(name):
            raise InvalidTransaction(f"indicator name {name!r:.70} must be 1-64 chars of a-z 0-9 _ . -")
        if len(code) != 32:
            raise InvalidTransaction("indicator code must be the 32-byte sha256 hash of deployed code")
        if len(params) > MAX_PARAMS:
            raise InvalidTransaction(f"indicator has {len(params)} params; at most {MAX_PARAMS}")
        for key, value in params.items():
            if type(key) is not str or not 0 < len(key) <= 32:
                raise InvalidTransaction("indicator param names must be text of 1-32 chars")
            if type(value) is not int or not _I64_MIN <= value <= _I64_MAX:
                raise InvalidTransaction(f"indicator param {key!r} must be a 64-bit integer")
        target_obj = obj["target"]
        return cls(
            merchant=merchant,
            name=name,
            code_hash=code,
            params=tuple(sorted(params.items())),
            condition=ReportingCondition.from_wire(obj["condition"]),
            target=None if target_obj is None else Target.from_wire(target_obj),
        )


def report_id(merchant: str, indicator: str, n: int) -> str:
    """The text id of a report: ``"<merchant>/<indicator>/<n>"`` (``cause`` of an update)."""
    return f"{merchant}/{indicator}/{n}"


def parse_report_id(text: str) -> tuple[str, str, int]:
    """Inverse of :func:`report_id`.

    Raises:
        InvalidTransaction: not of the form ``merchant/indicator/n``.
    """
    parts = text.split("/")
    if len(parts) != 3 or not parts[2].isdigit() or len(parts[2]) > 19 or not parts[0] or not parts[1]:
        raise InvalidTransaction(
            f"report id {text!r:.80} must look like 'merchant/indicator/n'", reason="bad_cause"
        )
    return parts[0], parts[1], int(parts[2])


@dataclass(frozen=True, slots=True)
class Report:
    """An indicator result committed by the chain itself (SPEC flow 3).

    Reports are written at the end of a block by every node identically and are attributed to
    the platform (``by == "platform"``): no transaction carries them.

    Attributes:
        merchant, indicator: whose indicator ran.
        n: sequence number of this report for (merchant, indicator), from 0.
        from_seq, to_seq: the window of the merchant's visits, ``[from_seq, to_seq)``.
        from_time, to_time: block time of the previous report (or of configuration) and of
            this block: the window in block time.
        values: ``(name, fixed-point value)`` pairs as the contract wrote them.
        scale: the values mean ``value / 10**scale``.
        code_hash: sha256 of the contract that ran.
        ok: the evaluation succeeded; otherwise ``error`` holds the runtime's slug.
        height, time: block that holds the report.
        missed: the result misses the indicator's target (the merchant-tech agent acts on it).
        trigger: ``"visits"`` or ``"time"``: which part of the condition held.
    """

    merchant: str
    indicator: str
    n: int
    from_seq: int
    to_seq: int
    from_time: int
    to_time: int
    values: tuple[tuple[str, int], ...]
    scale: int
    code_hash: bytes
    ok: bool
    error: str
    height: int
    time: int
    missed: bool
    trigger: str
    by: str = "platform"

    @property
    def id(self) -> str:
        return report_id(self.merchant, self.indicator, self.n)

    def value(self, name: str) -> int | None:
        for key, val in self.values:
            if key == name:
                return val
        return None

    def to_wire(self) -> dict[str, Any]:
        return {
            "merchant": self.merchant, "indicator": self.indicator, "n": self.n,
            "from_seq": self.from_seq, "to_seq": self.to_seq,
            "from_time": self.from_time, "to_time": self.to_time,
            "values": [[k, v] for k, v in self.values], "scale": self.scale,
            "code": self.code_hash, "ok": self.ok, "error": self.error,
            "height": self.height, "time": self.time, "missed": self.missed,
            "trigger": self.trigger, "by": self.by,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Report:
        """Read a stored report (state written by this code; checked for shape only)."""
        _exact(obj, ("merchant", "indicator", "n", "from_seq", "to_seq", "from_time", "to_time",
                     "values", "scale", "code", "ok", "error", "height", "time", "missed",
                     "trigger", "by"), "report")
        return cls(
            obj["merchant"], obj["indicator"], obj["n"], obj["from_seq"], obj["to_seq"],
            obj["from_time"], obj["to_time"], tuple((k, v) for k, v in obj["values"]),
            obj["scale"], obj["code"], obj["ok"], obj["error"], obj["height"], obj["time"],
            obj["missed"], obj["trigger"], obj["by"],
        )
