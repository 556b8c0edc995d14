"""load_rules(): the documented format loads; each kind of mistake names its line."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from p2pmkt.agent import (
    AddChannel,
    AddKeywords,
    ChangeBid,
    ChangeBudget,
    Condition,
    RemoveChannel,
    RemoveKeywords,
    RulesError,
    RuleSet,
    SetBudget,
    SwitchChannel,
    choose_merchant,
    load_rules,
    unconfigured,
)
from p2pmkt.errors import ConfigError
from p2pmkt.market.model import Keyword

GOOD = """\
# acme's rules
version = 1
merchant = "acme"

[[rule]]
name = "conversion-low"
indicator = "conversion"
when = "below_target"
cooldown_ms = 60000
actions = [
  { raise_bid_pct = 10, max_bid = 250 },             # up to 2.50 per click
  { add_keywords = ["trail shoes", { text = "running shoes", match = "exact" }], match = "phrase" },
  { switch_channel = "social", from = "display" },
]

[[rule]]
indicator = "cost_per_order"
above = 15.5
actions = [{ lower_budget_pct = 12.5, min_budget = 1000 }, { remove_channel = "display" }]

[[rule]]
name = "all-verbs"
indicator = "conversion"
when = "met"
campaigns = ["spring"]
actions = [
  { lower_bid_pct = 5, min_bid = 10, max_bid = 300 },
  { raise_budget_pct = 20, max_budget = 90000 },
  { set_budget_cap = 50000 },
  { remove_keywords = ["cheap shoes"] },
  { add_channel = "video" },
  { switch_channel = "search" },
]
"""

CATALOG = {"conversion": ("conversion",), "cost_per_order": ()}


def test_documented_example_loads() -> None:
    rules = load_rules(GOOD, catalog=CATALOG, merchant="acme")
    assert rules.merchant == "acme"
    low, cost, verbs = rules.rules
    assert (low.name, low.indicator, low.condition, low.cooldown_ms, low.line) == (
        "conversion-low", "conversion", Condition("below_target"), 60000, 5)
    assert low.actions == (
        ChangeBid(Fraction(10), None, 250),
        AddKeywords((Keyword("trail shoes", "phrase"), Keyword("running shoes", "exact"))),
        SwitchChannel("social", "display"),
    )
    assert cost.name == "rule-2"
    assert cost.condition == Condition("above", Fraction(31, 2))
    assert cost.actions == (ChangeBudget(Fraction(-25, 2), 1000, None), RemoveChannel("display"))
    assert verbs.campaigns == ("spring",)
    assert verbs.actions == (
        ChangeBid(Fraction(-5), 10, 300),
        ChangeBudget(Fraction(20), None, 90000),
        SetBudget(50000),
        RemoveKeywords(("cheap shoes",)),
        AddChannel("video"),
        SwitchChannel("search"),
    )
    assert rules.for_indicator("conversion") == (low, verbs)


def test_float_threshold_is_exact() -> None:
    rules = load_rules('[[rule]]\nindicator = "c"\nbelow = 0.02\nactions = [{ add_channel = "email" }]\n')
    assert rules.rules[0].condition.threshold == Fraction(2, 100)


def test_load_from_path_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text('[[rule]]\nindicator = "c"\nactions = [{ add_channel = "fax" }]\n')
    with pytest.raises(RulesError, match=r"^acme\.toml line 3: add_channel: channel 'fax' is not one of"):
        load_rules(path)
    with pytest.raises(ConfigError, match=r"^cannot read rules file"):
        load_rules(tmp_path / "missing.toml")


def replace_line(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


# Each case: a mistake put into GOOD, the line it must be reported on, and the message.
MISTAKES = [
    ("unknown indicator", 'indicator = "cost_per_order"', 'indicator = "cost_per_ordr"', 17,
     r"unknown indicator 'cost_per_ordr'; known: \['conversion', 'cost_per_order'\]"),
    ("unknown value", 'when = "below_target"', 'value = "ctr"', 8,
     r"indicator 'conversion' has no value 'ctr'; it has \['conversion'\]"),
    ("value no contract can write", 'when = "below_target"', 'value = "conversion-rate"', 8,
     r"value 'conversion-rate' can never be in a report: value names are 1-24 chars of a-z 0-9 _ \."),
    ("unknown action", "{ add_channel = \"video\" }", "{ add_chanel = \"video\" }", 31,
     r"unknown action 'add_chanel'; use one of \["),
    ("min above max", "min_bid = 10, max_bid = 300", "min_bid = 400, max_bid = 300", 27,
     r"min_bid 400 is above max_bid 300"),
    ("negative percentage", "raise_bid_pct = 10", "raise_bid_pct = -10", 11,
     r"raise_bid_pct must be a positive percentage, got -10; use lower_\* to lower"),
    ("lowering by 100%", "lower_bid_pct = 5", "lower_bid_pct = 100", 27,
     r"lower_bid_pct must be below 100, got 100"),
    ("missing bound", "{ raise_bid_pct = 10, max_bid = 250 }", "{ raise_bid_pct = 10 }", 11,
     r"raise_bid_pct needs max_bid \(a bound in minor units\)"),
    ("wrong type", "cooldown_ms = 60000", 'cooldown_ms = "1m"', 9,
     r"cooldown_ms must be whole ms in \[0, \d+\], got '1m'"),
    ("bool is not a number", "set_budget_cap = 50000", "set_budget_cap = true", 29,
     r"set_budget_cap must be whole minor units >= 0, got True"),
    ("modifier of another verb", "{ remove_channel = \"display\" }", "{ remove_channel = \"display\", max_bid = 3 }", 19,
     r"'max_bid' does not go with remove_channel; it takes nothing else"),
    ("two verbs", "{ set_budget_cap = 50000 }", "{ set_budget_cap = 50000, add_channel = \"email\" }", 29,
     r"several verbs \['set_budget_cap', 'add_channel'\]; an action table holds exactly one of"),
    ("unknown rule key", 'when = "met"', 'whenn = "met"', 24, r"unknown rule key 'whenn'"),
    ("bad when", 'when = "met"', 'when = "sometimes"', 24, r"when must be one of \['missed', 'met', 'below_target', 'above_target'\]"),
    ("when and below", "above = 15.5", 'above = 15.5\nwhen = "missed"', 19, r"rule 'rule-2': give only one of when, below, above"),
    ("duplicate name", 'name = "all-verbs"', 'name = "conversion-low"', 22,
     r"rule name 'conversion-low' is already used on line 5"),
    ("unknown top key", "version = 1", "version = 1\nowner = 'x'", 3, r"unknown key 'owner'"),
    ("wrong merchant", 'merchant = "acme"', 'merchant = "globex"', 3, r"file is for merchant 'globex', not 'acme'"),
    ("bad match", 'match = "phrase"', 'match = "fuzzy"', 12, r"match 'fuzzy' is not one of"),
    ("no actions", "actions = [{ lower_budget_pct", "acts = [{ lower_budget_pct", 19, r"unknown rule key 'acts'"),
    ("bad TOML", 'name = "all-verbs"', "name = all-verbs", 22, r"not valid TOML: "),
]


@pytest.mark.parametrize(("what", "old", "new", "line", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_is_rejected_with_its_line(what: str, old: str, new: str, line: int, message: str) -> None:
    text = replace_line(GOOD, old, new)
    with pytest.raises(RulesError, match=rf"^rules line {line}: {message}") as info:
        load_rules(text, catalog=CATALOG, merchant="acme")
    assert info.value.line == line
    assert info.value.reason == "bad_rules"


def test_action_lines_with_nested_tables_and_comments() -> None:
    text = (
        '[[rule]]\n'
        'indicator = "c"   # a comment with [brackets] and { braces } = signs\n'
        'actions = [\n'
        '  { add_keywords = [{ text = "a=b", match = "exact" }, "{x}"] },\n'
        '  # { raise_bid_pct = -1 }\n'
        '  { add_channel = "email" }, { raise_bid_pct = 10, max_bid = 5, min_bid = 9 },\n'
        ']\n'
    )
    with pytest.raises(RulesError, match=r"^rules line 6: min_bid 9 is above max_bid 5$"):
        load_rules(text)


def test_example_in_docs_loads() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "RULES.md"
    example = doc.read_text(encoding="utf-8").split("```toml\n", 1)[1].split("```", 1)[0]
    rules = load_rules(example, catalog={"conversion", "cost_per_order"}, merchant="acme")
    assert [r.name for r in rules.rules] == ["conversion-low", "cost-per-order-high"]
    assert rules.rules[1].condition == Condition("above", Fraction(15))


@pytest.mark.parametrize("name", ["Conversion", "conversion rate", "_conversion", "x" * 65])
def test_an_indicator_name_the_chain_refuses_is_rejected_without_a_catalog(tmp_path: Path, name: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(f'merchant = "acme"\n\n[[rule]]\nname = "r"\nindicator = "{name}"\n'
                    'actions = [{ add_channel = "email" }]\n')
    with pytest.raises(RulesError, match=rf"^rules.toml line 5: indicator '{name[:20]}.*' can never be "
                                         r"configured: indicator names are 1-64 chars of a-z 0-9 _ \. -"):
        load_rules(path)


def test_a_loaded_file_knows_its_name_and_lines() -> None:
    rules = load_rules(GOOD)
    assert (rules.origin, rules.merchant_line) == ("rules", 3)
    assert [r.where for r in rules.rules] == [7, 17, 23]
    assert load_rules('[[rule]]\nindicator = "c"\nactions = [{ add_channel = "email" }]\n').merchant_line == 1


def test_unconfigured_lists_the_rules_whose_indicator_the_chain_lacks() -> None:
    rules = load_rules(GOOD)
    assert [r.name for r in unconfigured(rules, ("conversion",))] == ["rule-2"]
    assert unconfigured(rules, ("conversion", "cost_per_order", "aov")) == ()


NAMED = load_rules('merchant = "globex"\n[[rule]]\nindicator = "c"\nactions = [{ add_channel = "email" }]\n')
UNNAMED = load_rules('[[rule]]\nindicator = "c"\nactions = [{ add_channel = "email" }]\n')


@pytest.mark.parametrize(
    ("rules", "scopes", "merchant"),
    [
        (NAMED, ["acme", "globex"], "globex"),  # the file's merchant, among several
        (NAMED, ["acme"], None),  # wait for merchant-tech:globex
        (NAMED, [], None),
        (UNNAMED, ["acme"], "acme"),  # the key's only merchant
        (UNNAMED, [], None),  # wait for a grant
    ],
)
def test_an_agent_acts_for_one_merchant(rules: RuleSet, scopes: list[str], merchant: str | None) -> None:
    assert choose_merchant(rules, scopes) == merchant


def test_a_file_naming_no_merchant_is_refused_for_a_key_of_several() -> None:
    with pytest.raises(RulesError, match=r"^rules line 1: this node's key is merchant-tech for 'acme', "
                                         r"'globex': name the merchant these rules are for "
                                         r"\(merchant = 'acme'\) at the top of the file"):
        choose_merchant(UNNAMED, ["globex", "acme"])
