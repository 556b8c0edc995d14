"""The merchant-tech mapping rules: the TOML format, its model, and its strict loader.

Theory of operation
-------------------
SPEC flow 4: a merchant-tech node keeps rules that map an indicator result to changes of the
merchant's marketing information ("conversion below 2%: raise bid 10% up to a cap, add
keywords K, move to channel C"). docs/RULES.md is the user's reference; in brief::

    version = 1                # optional; the only format version
    merchant = "acme"          # optional; reports of other merchants are then ignored

    [[rule]]
    name = "conversion-low"    # unique; default "rule-N" (N counts from 1)
    indicator = "conversion"   # the indicator whose reports this rule watches
    value = "conversion"       # optional; which named value of the report (see decide.py)
    when = "missed"            # missed | met | below_target | above_target
    # below = 0.02             # ...or a literal threshold instead of `when`
    campaigns = ["spring"]     # optional; default: every active campaign
    cooldown_ms = 60000        # block-time ms before this rule may fire again
    actions = [
      { raise_bid_pct = 10, max_bid = 250 },
      { add_keywords = ["trail shoes", { text = "running shoes", match = "exact" }] },
      { switch_channel = "social", from = "display" },
      { set_budget_cap = 50000 },
    ]

Each action table holds exactly one *verb* plus the modifiers that verb allows:

=================  ======================================  =====================================
verb               value                                   modifiers
=================  ======================================  =====================================
raise_bid_pct      percent, 0 < p <= 1000                  max_bid (required), min_bid
lower_bid_pct      percent, 0 < p < 100                    min_bid (required), max_bid
raise_budget_pct   percent, 0 < p <= 1000                  max_budget (required), min_budget
lower_budget_pct   percent, 0 < p < 100                    min_budget (required), max_budget
set_budget_cap     minor units >= 0                        -
add_keywords       list of text or {text, match}           match (default for plain texts)
remove_keywords    list of text                            -
switch_channel     channel                                 from (replace only that channel)
add_channel        channel                                 -
remove_channel     channel                                 -
=================  ======================================  =====================================

Loading is strict because a rule that silently does nothing is worse than no rule: unknown
keys, unknown verbs, wrong types (a bool is not a number), negative or out-of-range
percentages, ``min_* > max_*``, unknown channels or match types, duplicate rule names,
indicator names the chain would never accept, and (when the caller passes a catalog)
unknown indicators or value names are all refused with a :class:`RulesError` that names the
file and **the line at fault**. Positions come from :mod:`p2pmkt.agent._toml_lines`, because
tomllib keeps none.

Which indicators exist is chain state (merchant-ops configure them, by name, at any time), so
the node cannot refuse a well-formed name at load without refusing rules written ahead of
their indicator. Two helpers cover what comes after loading: :func:`unconfigured` lists the
rules whose indicator the chain does not configure for the merchant (the node logs each with
its file and line, and counts them), and :func:`choose_merchant` decides which merchant a
node's agent acts for, given the merchant-tech roles of the node's key (one agent, one
merchant; see docs/RULES.md).

Numbers are kept exact: thresholds and percentages become :class:`fractions.Fraction` (a
TOML float such as ``0.02`` is read through its shortest decimal repr, so it means exactly
2/100), and money is integer minor units. Nothing here reads a clock.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from p2pmkt.agent._toml_lines import Block, Layout, scan
from p2pmkt.errors import ConfigError
from p2pmkt.market.model import (
    CHANNELS,
    INDICATOR_NAME_MAX,
    MATCH_TYPES,
    Keyword,
    _name_ok,
    value_name_ok,
)

FORMAT_VERSION = 1
WHEN = ("missed", "met", "below_target", "above_target")
MAX_COOLDOWN_MS = 366 * 24 * 3600 * 1000
_TOP_KEYS = ("version", "merchant", "rule")
_RULE_KEYS = (
    "name", "indicator", "value", "when", "below", "above", "campaigns", "cooldown_ms", "actions",
)


class RulesError(ConfigError):
    """A rules file is wrong; ``str(err)`` reads ``"<origin> line N: <what and how to fix>"``.

    Attributes:
        line: 1-based line at fault.
        detail: the message without the origin and line prefix.
    """

    reason = "bad_rules"

    def __init__(self, origin: str, line: int, detail: str) -> None:
        super().__init__(f"{origin} line {line}: {detail}")
        self.line = line
        self.detail = detail


# --- The model -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """When a rule applies to a report.

    Attributes:
        kind: one of :data:`WHEN`, or ``"below"``/``"above"`` for a literal threshold.
        threshold: for ``below``/``above``, in the indicator's natural units (the report's
            fixed-point value divided by ``10**scale``); None otherwise.
    """

    kind: str
    threshold: Fraction | None = None


@dataclass(frozen=True, slots=True)
class ChangeBid:
    """Multiply ``max_bid`` by ``1 + pct/100`` (``pct`` < 0 lowers), kept within bounds."""

    pct: Fraction
    min_bid: int | None = None
    max_bid: int | None = None


@dataclass(frozen=True, slots=True)
class ChangeBudget:
    """Multiply ``daily_budget`` by ``1 + pct/100``, kept within bounds."""

    pct: Fraction
    min_budget: int | None = None
    max_budget: int | None = None


@dataclass(frozen=True, slots=True)
class SetBudget:
    """Set ``daily_budget`` to ``amount`` minor units."""

    amount: int


@dataclass(frozen=True, slots=True)
class AddKeywords:
    keywords: tuple[Keyword, ...]


@dataclass(frozen=True, slots=True)
class RemoveKeywords:
    """Remove keywords whose text is listed, whatever their match type."""

    texts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SwitchChannel:
    """Replace ``from_`` by ``to`` (or every channel by ``to`` when ``from_`` is None)."""

    to: str
    from_: str | None = None


@dataclass(frozen=True, slots=True)
class AddChannel:
    channel: str


@dataclass(frozen=True, slots=True)
class RemoveChannel:
    channel: str


Action = (
    ChangeBid | ChangeBudget | SetBudget | AddKeywords | RemoveKeywords | SwitchChannel
    | AddChannel | RemoveChannel
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rule]]`` table, validated.

    Attributes:
        name: unique within the file; cooldowns are tracked by it.
        indicator: indicator name the rule watches.
        value: named value of the report to test, or None for the default choice.
        condition: when it applies.
        campaigns: campaign names it changes; empty means every active campaign.
        cooldown_ms: block-time milliseconds before it may fire again.
        actions: applied in order.
        line: line of its ``[[rule]]`` header (for messages).
        indicator_line: line of its ``indicator`` key (0: unknown, use ``line``).
    """

    name: str
    indicator: str
    value: str | None
    condition: Condition
    campaigns: tuple[str, ...]
    cooldown_ms: int
    actions: tuple[Action, ...]
    line: int
    indicator_line: int = 0

    @property
    def where(self) -> int:
        """The line to blame for the rule's indicator."""
        return self.indicator_line or self.line


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A whole rules file, validated.

    Attributes:
        rules: in file order.
        merchant: the file's ``merchant`` (or the one the loader was given); None when
            neither names one.
        version: the format version.
        origin: where it came from, for messages: the file name, or ``"rules"`` for text.
        merchant_line: line of the file's ``merchant`` key (1 when it has none).
    """

    rules: tuple[Rule, ...]
    merchant: str | None = None
    version: int = FORMAT_VERSION
    origin: str = "rules"
    merchant_line: int = 1

    def for_indicator(self, indicator: str) -> tuple[Rule, ...]:
        """Rules watching ``indicator``, in file order."""
        return tuple(r for r in self.rules if r.indicator == indicator)

    @property
    def max_cooldown_ms(self) -> int:
        """The longest cooldown of any rule (0 when none has one)."""
        return max((r.cooldown_ms for r in self.rules), default=0)


def choose_merchant(ruleset: RuleSet, scopes: Collection[str]) -> str | None:
    """The merchant a node's agent acts for: one agent, one merchant.

    Args:
        ruleset: the node's rules.
        scopes: the merchants the node's key is merchant-tech for (in committed state, or in
            genesis before there is a chain).

    Returns:
        The file's ``merchant`` when the key holds merchant-tech for it; else, for a file
        that names none, the key's only merchant-tech merchant; else None: the agent waits
        (a platform key may grant the role later).

    Raises:
        RulesError: the file names no merchant and the key is merchant-tech for several
            (line 1: the fix is a ``merchant = "..."`` line at the top).
    """
    have = sorted(set(scopes))
    if ruleset.merchant is not None:
        return ruleset.merchant if ruleset.merchant in have else None
    if len(have) > 1:
        raise RulesError(
            ruleset.origin, 1,
            f"this node's key is merchant-tech for {', '.join(map(repr, have))}: name the merchant "
            f"these rules are for (merchant = {have[0]!r}) at the top of the file; a node's agent "
            "acts for one merchant",
        )
    return have[0] if have else None


def unconfigured(ruleset: RuleSet, configured: Collection[str]) -> tuple[Rule, ...]:
    """Rules whose indicator is not among ``configured`` (the merchant's indicators on
    chain): such a rule can never fire until merchant-ops configure that indicator."""
    return tuple(r for r in ruleset.rules if r.indicator not in configured)


# --- Loading -------------------------------------------------------------------------------


def load_rules(
    source: str | os.PathLike[str],
    *,
    catalog: Mapping[str, Collection[str]] | Collection[str] | None = None,
    merchant: str | None = None,
) -> RuleSet:
    """Parse and validate a rules file.

    Args:
        source: the TOML text (a ``str``), or a path (any ``os.PathLike``) to read it from.
        catalog: known indicators; either names, or a mapping from name to the value names
            its reports carry (an empty collection means "any value name"). None skips the
            check.
        merchant: when given, the file's ``merchant`` (if any) must equal it.

    Raises:
        RulesError: on any mistake, naming the line at fault.
        ConfigError: the path cannot be read.
    """
    if isinstance(source, str):
        origin, text = "rules", source
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read rules file {path}: {exc}") from None
        origin = path.name
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, detail = _toml_error(str(exc))
        raise RulesError(origin, line, f"not valid TOML: {detail}") from None
    return _Loader(origin, scan(text), catalog).ruleset(data, merchant)


def _toml_error(message: str) -> tuple[int, str]:
    # tomllib says e.g. "Invalid value (at line 3, column 9)".
    head, sep, tail = message.rpartition(" (at line ")
    if not sep:
        return 1, message
    digits = tail.split(",", 1)[0].rstrip(")")
    return (int(digits) if digits.isdigit() else 1), head


class _Loader:
    """Validates the parsed dict, knowing where every key sits."""

    def __init__(
        self, origin: str, layout: Layout,
        catalog: Mapping[str, Collection[str]] | Collection[str] | None,
    ) -> None:
        self.origin = origin
        self.layout = layout
        self.catalog = catalog

    def fail(self, line: int, detail: str) -> RulesError:
        return RulesError(self.origin, line, detail)

    def ruleset(self, data: dict[str, Any], merchant: str | None) -> RuleSet:
        top = self.layout.top
        for key in data:
            if key not in _TOP_KEYS:
                raise self.fail(top.key(key), f"unknown key {key!r}; the file may hold {list(_TOP_KEYS)}")
        version = data.get("version", FORMAT_VERSION)
        if type(version) is not int or version != FORMAT_VERSION:
            raise self.fail(top.key("version"), f"version must be {FORMAT_VERSION}, got {version!r}")
        file_merchant = data.get("merchant")
        if file_merchant is not None:
            if type(file_merchant) is not str or not 0 < len(file_merchant) <= 64:
                raise self.fail(top.key("merchant"), "merchant must be a merchant id (1-64 chars)")
            if merchant is not None and file_merchant != merchant:
                raise self.fail(top.key("merchant"),
                                f"file is for merchant {file_merchant!r}, not {merchant!r}")
        tables = data.get("rule", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise self.fail(top.key("rule"), "rules are [[rule]] tables")
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for index, table in enumerate(tables):
            rule = self.rule(index, table)
            if rule.name in seen:
                raise self.fail(self.layout.rule(index).key("name"),
                                f"rule name {rule.name!r} is already used on line {seen[rule.name]}")
            seen[rule.name] = rule.line
            rules.append(rule)
        return RuleSet(tuple(rules), file_merchant or merchant, version, self.origin,
                       top.key("merchant") if file_merchant is not None else 1)

    def rule(self, index: int, table: dict[str, Any]) -> Rule:
        block = self.layout.rule(index)
        for key in table:
            if key not in _RULE_KEYS:
                raise self.fail(block.key(key), f"unknown rule key {key!r}; use one of {list(_RULE_KEYS)}")
        name = table.get("name", f"rule-{index + 1}")
        if type(name) is not str or not 0 < len(name) <= 64:
            raise self.fail(block.key("name"), "rule name must be text of 1-64 chars")
        indicator = table.get("indicator")
        if type(indicator) is not str or not indicator:
            raise self.fail(block.key("indicator"), f"rule {name!r} needs indicator = \"<name>\"")
        if not _name_ok(indicator):
            raise self.fail(block.key("indicator"),
                            f"indicator {indicator!r:.80} can never be configured: indicator names are "
                            f"1-{INDICATOR_NAME_MAX} chars of a-z 0-9 _ . -, starting with a letter or digit")
        value = table.get("value")
        if value is not None and (type(value) is not str or not value_name_ok(value)):
            raise self.fail(block.key("value"), f"value {value!r:.80} can never be in a report: value "
                                                "names are 1-24 chars of a-z 0-9 _ . (CONTRACTS.md)")
        self.check_catalog(block, indicator, value)
        condition = self.condition(block, name, table)
        campaigns = table.get("campaigns", [])
        if not isinstance(campaigns, list) or not all(type(c) is str and c for c in campaigns):
            raise self.fail(block.key("campaigns"), "campaigns must be a list of campaign names")
        cooldown = table.get("cooldown_ms", 0)
        if type(cooldown) is not int or not 0 <= cooldown <= MAX_COOLDOWN_MS:
            raise self.fail(block.key("cooldown_ms"),
                            f"cooldown_ms must be whole ms in [0, {MAX_COOLDOWN_MS}], got {cooldown!r}")
        actions = table.get("actions")
        if not isinstance(actions, list) or not actions:
            raise self.fail(block.key("actions"), f"rule {name!r} needs actions = [ {{...}}, ... ]")
        parsed = tuple(self.action(block, j, a) for j, a in enumerate(actions))
        return Rule(name, indicator, value, condition, tuple(campaigns), cooldown, parsed, block.line,
                    block.key("indicator"))

    def check_catalog(self, block: Block, indicator: str, value: str | None) -> None:
        if self.catalog is None:
            return
        if indicator not in self.catalog:
            known = sorted(self.catalog)
            raise self.fail(block.key("indicator"), f"unknown indicator {indicator!r}; known: {known}")
        if value is not None and isinstance(self.catalog, Mapping):
            names = self.catalog[indicator]
            if names and value not in names:
                raise self.fail(block.key("value"),
                                f"indicator {indicator!r} has no value {value!r}; it has {sorted(names)}")

    def condition(self, block: Block, name: str, table: dict[str, Any]) -> Condition:
        given = [k for k in ("when", "below", "above") if k in table]
        if len(given) > 1:
            # Blame the later line: that is usually the one just added.
            line = max(block.key(k) for k in given)
            raise self.fail(line, f"rule {name!r}: give only one of when, below, above")
        if not given or given[0] == "when":
            when = table.get("when", "missed")
            if when not in WHEN:
                raise self.fail(block.key("when"), f"when must be one of {list(WHEN)}, got {when!r}")
            return Condition(when)
        kind = given[0]
        return Condition(kind, self.number(block.key(kind), kind, table[kind], minimum=None))

    def number(self, line: int, key: str, raw: Any, *, minimum: Fraction | None) -> Fraction:
        if type(raw) is int:
            value = Fraction(raw)
        elif type(raw) is float and raw == raw and abs(raw) != float("inf"):
            value = Fraction(Decimal(repr(raw)))  # 0.02 means exactly 2/100
        else:
            raise self.fail(line, f"{key} must be a number, got {raw!r}")
        if minimum is not None and value < minimum:
            raise self.fail(line, f"{key} must be at least {minimum}, got {raw!r}")
        return value

    def money(self, line: int, key: str, raw: Any) -> int:
        if type(raw) is not int or raw < 0:
            raise self.fail(line, f"{key} must be whole minor units >= 0, got {raw!r}")
        return raw

    def channel(self, line: int, key: str, raw: Any) -> str:
        if raw not in CHANNELS:
            raise self.fail(line, f"{key}: channel {raw!r} is not one of {list(CHANNELS)}")
        return str(raw)

    def action(self, block: Block, j: int, raw: Any) -> Action:
        at = block.action_key(j)
        if not isinstance(raw, dict):
            raise self.fail(at, "an action is an inline table such as { raise_bid_pct = 10, max_bid = 250 }")
        verbs = [k for k in raw if k in _VERBS]
        if len(verbs) != 1:
            unknown = [k for k in raw if k not in _VERBS and k not in _MODIFIERS]
            if unknown:
                raise self.fail(block.action_key(j, unknown[0]),
                                f"unknown action {unknown[0]!r}; use one of {sorted(_VERBS)}")
            what = "no action verb" if not verbs else f"several verbs {verbs}"
            raise self.fail(at, f"{what}; an action table holds exactly one of {sorted(_VERBS)}")
        verb = verbs[0]
        for key in raw:
            if key != verb and key not in _VERBS[verb]:
                raise self.fail(block.action_key(j, key),
                                f"{key!r} does not go with {verb}; it takes {list(_VERBS[verb]) or 'nothing else'}")
        line = block.action_key(j, verb)

        def line_of(key: str) -> int:
            return block.action_key(j, key)

        if verb in ("raise_bid_pct", "lower_bid_pct", "raise_budget_pct", "lower_budget_pct"):
            return self.change(verb, raw, line, line_of)
        if verb == "set_budget_cap":
            return SetBudget(self.money(line, verb, raw[verb]))
        if verb == "add_keywords":
            return self.add_keywords(raw, line, line_of)
        if verb == "remove_keywords":
            texts = raw[verb]
            if not isinstance(texts, list) or not texts or not all(type(t) is str and t for t in texts):
                raise self.fail(line, "remove_keywords must be a non-empty list of keyword texts")
            return RemoveKeywords(tuple(texts))
        if verb == "switch_channel":
            source = raw.get("from")
            return SwitchChannel(
                self.channel(line, verb, raw[verb]),
                None if source is None else self.channel(line_of("from"), "from", source),
            )
        if verb == "add_channel":
            return AddChannel(self.channel(line, verb, raw[verb]))
        return RemoveChannel(self.channel(line, verb, raw[verb]))

    def change(self, verb: str, raw: dict[str, Any], line: int, line_of: Callable[[str], int]) -> Action:
        pct = self.number(line, verb, raw[verb], minimum=None)
        lowering = verb.startswith("lower")
        limit = Fraction(100) if lowering else Fraction(1000)
        if pct <= 0:
            hint = "; use raise_* to raise" if lowering else "; use lower_* to lower"
            raise self.fail(line, f"{verb} must be a positive percentage, got {raw[verb]!r}{hint}")
        if pct > limit or (lowering and pct == limit):
            raise self.fail(line, f"{verb} must be {'below' if lowering else 'at most'} {limit}, got {raw[verb]!r}")
        unit = "bid" if "bid" in verb else "budget"
        low_key, high_key = f"min_{unit}", f"max_{unit}"
        required = low_key if lowering else high_key
        if required not in raw:
            raise self.fail(line, f"{verb} needs {required} (a bound in minor units)")
        low = self.money(line_of(low_key), low_key, raw[low_key]) if low_key in raw else None
        high = self.money(line_of(high_key), high_key, raw[high_key]) if high_key in raw else None
        if low is not None and high is not None and low > high:
            raise self.fail(line_of(low_key), f"{low_key} {low} is above {high_key} {high}")
        signed = -pct if lowering else pct
        if unit == "bid":
            return ChangeBid(signed, low, high)
        return ChangeBudget(signed, low, high)

    def add_keywords(self, raw: dict[str, Any], line: int, line_of: Callable[[str], int]) -> AddKeywords:
        default_match = raw.get("match", "broad")
        if default_match not in MATCH_TYPES:
            raise self.fail(line_of("match"), f"match {default_match!r} is not one of {list(MATCH_TYPES)}")
        items = raw["add_keywords"]
        if not isinstance(items, list) or not items:
            raise self.fail(line, "add_keywords must be a non-empty list")
        keywords: list[Keyword] = []
        for item in items:
            if isinstance(item, str):
                text, match = item, default_match
            elif isinstance(item, dict) and set(item) <= {"text", "match"} and "text" in item:
                text, match = item["text"], item.get("match", default_match)
            else:
                raise self.fail(line, f"keyword {item!r} must be text or {{ text = ..., match = ... }}")
            if type(text) is not str or not 0 < len(text) <= 80:
                raise self.fail(line, f"keyword text must be 1-80 chars, got {text!r:.90}")
            if match not in MATCH_TYPES:
                raise self.fail(line, f"keyword {text!r}: match {match!r} is not one of {list(MATCH_TYPES)}")
            keywords.append(Keyword(text, match))
        return AddKeywords(tuple(dict.fromkeys(keywords)))


_VERBS: dict[str, tuple[str, ...]] = {
    "raise_bid_pct": ("max_bid", "min_bid"),
    "lower_bid_pct": ("min_bid", "max_bid"),
    "raise_budget_pct": ("max_budget", "min_budget"),
    "lower_budget_pct": ("min_budget", "max_budget"),
    "set_budget_cap": (),
    "add_keywords": ("match",),
    "remove_keywords": (),
    "switch_channel": ("from",),
    "add_channel": (),
    "remove_channel": (),
}
"""Action verbs and the modifier keys each allows."""

_MODIFIERS = frozenset(m for mods in _VERBS.values() for m in mods)
