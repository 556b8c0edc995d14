"""The demo cast: three merchants, their starting marketing, targets and mapping rules.

Theory of operation
-------------------
* **acme** (running shoes) starts *below* its conversion target: its one campaign buys cheap
  display traffic on generic keywords at a low bid. Its rules raise the bid, add the
  keywords its buyers search for, and move from display to social. This is the merchant the
  demo watches move from below target to on target.
* **globex** (electronics) starts *on* target: a control whose rules exist but never fire
  while it stays there (a "met" rule trims its budget only if it over-performs wildly).
* **initech** (office software) starts below target with a campaign on search; its rules
  add the ``app-store`` channel (its buyers are on phones) and raise the bid.

Everything is text or frozen values: the node writes :func:`starting_info` as version 1 of
each merchant's marketing information, configures :data:`TARGETS` for the ``conversion``
indicator, and gives each merchant-tech agent :func:`rules_toml`. The pure loop in
:mod:`p2pmkt.demo.loop` and ``tests/demo`` show that these converge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from p2pmkt.demo.world import MerchantProfile
from p2pmkt.market.model import Campaign, Keyword, MarketingInfo, Target

DEMO_MERCHANTS = ("acme", "globex", "initech")
INDICATOR = "conversion"
"""Name the demo gives the built-in conversion-rate indicator (orders / visits)."""
SCALE = 4
"""Fixed-point scale of the demo's conversion values: 200 means 2.00 %."""

_CHANNEL_INTENT_DEFAULT = {"search": 1.0, "display": 0.45, "social": 0.8, "video": 0.6,
                           "app-store": 0.7, "email": 1.1, "affiliate": 0.9}
_CHANNEL_VOLUME_DEFAULT = {"search": 1.0, "display": 1.6, "social": 1.3, "video": 1.0,
                           "app-store": 0.7, "email": 0.4, "affiliate": 0.6}

PROFILES: Mapping[str, MerchantProfile] = {
    "acme": MerchantProfile(
        name="acme",
        organic_rate=0.15,
        organic_p=0.03,
        paid_rate=0.35,
        base_p=0.11,
        ref_bid=150,
        cpc_share=0.7,
        channel_intent={**_CHANNEL_INTENT_DEFAULT, "display": 0.45, "social": 0.6},
        channel_volume=_CHANNEL_VOLUME_DEFAULT,
        good_keywords=frozenset({"running shoes", "trail running shoes", "marathon shoes",
                                 "acme runners"}),
        junk_keywords=frozenset({"cheap shoes", "free shoes", "shoes sale"}),
        methods=(0.6, 0.15, 0.25),
        catalog=(("acme-trail-1", 12_900), ("acme-road-2", 10_900), ("acme-kids-3", 5_900),
                 ("acme-socks", 1_500), ("acme-marathon-4", 15_900)),
    ),
    "globex": MerchantProfile(
        name="globex",
        organic_rate=0.25,
        organic_p=0.06,
        paid_rate=0.3,
        base_p=0.07,
        ref_bid=120,
        cpc_share=0.75,
        channel_intent=_CHANNEL_INTENT_DEFAULT,
        channel_volume=_CHANNEL_VOLUME_DEFAULT,
        good_keywords=frozenset({"usb-c hub", "4k monitor", "globex dock"}),
        junk_keywords=frozenset({"free stuff"}),
        methods=(0.55, 0.35, 0.10),
        catalog=(("gx-hub", 4_900), ("gx-monitor-27", 32_900), ("gx-dock", 18_900),
                 ("gx-cable", 1_200)),
    ),
    "initech": MerchantProfile(
        name="initech",
        organic_rate=0.1,
        organic_p=0.03,
        paid_rate=0.25,
        base_p=0.06,
        ref_bid=150,
        cpc_share=0.8,
        channel_intent={**_CHANNEL_INTENT_DEFAULT, "app-store": 1.5, "search": 0.8},
        channel_volume=_CHANNEL_VOLUME_DEFAULT,
        good_keywords=frozenset({"tps report app", "expense tracker", "initech suite"}),
        junk_keywords=frozenset({"free office"}),
        methods=(0.35, 0.45, 0.20),
        catalog=(("it-suite-monthly", 1_999), ("it-suite-yearly", 19_900),
                 ("it-tps-addon", 499)),
    ),
}

_STARTING: Mapping[str, tuple[Campaign, ...]] = {
    "acme": (
        Campaign("spring-running",
                 (Keyword("shoes"), Keyword("cheap shoes"), Keyword("sneakers")),
                 max_bid=40, channels=("display",), daily_budget=1_000_000),
    ),
    "globex": (
        Campaign("workspace",
                 (Keyword("usb-c hub", "phrase"), Keyword("4k monitor", "exact"),
                  Keyword("globex dock")),
                 max_bid=120, channels=("search",), daily_budget=900_000),
    ),
    "initech": (
        Campaign("suite-q3", (Keyword("office software"), Keyword("free office")),
                 max_bid=80, channels=("search",), daily_budget=500_000),
    ),
}


@dataclass(frozen=True, slots=True)
class DemoTarget:
    """A merchant's conversion target, as the merchant-ops node configures it."""

    indicator: str
    target: Target
    scale: int


TARGETS: Mapping[str, DemoTarget] = {
    "acme": DemoTarget(INDICATOR, Target(INDICATOR, 200, SCALE, "at_least"), SCALE),     # >= 2.00 %
    "globex": DemoTarget(INDICATOR, Target(INDICATOR, 180, SCALE, "at_least"), SCALE),   # >= 1.80 %
    "initech": DemoTarget(INDICATOR, Target(INDICATOR, 150, SCALE, "at_least"), SCALE),  # >= 1.50 %
}


def starting_campaigns(merchant: str) -> tuple[Campaign, ...]:
    """The campaigns a demo merchant starts with. Raises KeyError for another merchant."""
    return _STARTING[merchant]


def starting_info(
    merchant: str, *, author: bytes = b"", time: int = 0, height: int = 0
) -> MarketingInfo:
    """Version 1 of a demo merchant's marketing information (a manual update: no cause)."""
    return MarketingInfo(merchant, 1, _STARTING[merchant], author, time, height, "")


_RULES: Mapping[str, str] = {
    "acme": """\
# acme: conversion (orders / visits) must be at least 2.00 %.
version = 1
merchant = "acme"

# Far below target: change what is bought (audience and words), once.
[[rule]]
name = "conversion-far-below"
indicator = "{indicator}"
below = 0.016
cooldown_ms = {cooldown}
actions = [
  {{ switch_channel = "social", from = "display" }},
  {{ add_keywords = ["running shoes", "trail running shoes"], match = "phrase" }},
  {{ remove_keywords = ["cheap shoes"] }},
]

# Below target: buy better positions, step by step, up to a cap.
[[rule]]
name = "conversion-below-target"
indicator = "{indicator}"
when = "below_target"
cooldown_ms = {cooldown}
actions = [{{ raise_bid_pct = 15, max_bid = 150 }}, {{ raise_budget_pct = 15, max_budget = 3000000 }}]
""",
    "globex": """\
# globex: conversion must be at least 1.80 %; it starts there.
version = 1
merchant = "globex"

[[rule]]
name = "conversion-low"
indicator = "{indicator}"
when = "below_target"
cooldown_ms = {cooldown}
actions = [{{ raise_bid_pct = 10, max_bid = 200 }}]

[[rule]]
name = "far-above-target"
indicator = "{indicator}"
above = 0.05
cooldown_ms = {cooldown}
actions = [{{ lower_budget_pct = 10, min_budget = 300000 }}]
""",
    "initech": """\
# initech: conversion must be at least 1.50 %; its buyers are on phones.
version = 1
merchant = "initech"

[[rule]]
name = "conversion-low-app-store"
indicator = "{indicator}"
when = "missed"
cooldown_ms = {cooldown}
actions = [
  {{ add_channel = "app-store" }},
  {{ add_keywords = ["tps report app", "expense tracker"], match = "exact" }},
  {{ remove_keywords = ["free office"] }},
]

[[rule]]
name = "conversion-low-bid"
indicator = "{indicator}"
when = "below_target"
cooldown_ms = {cooldown}
actions = [{{ raise_bid_pct = 20, max_bid = 240 }}, {{ raise_budget_pct = 10, max_budget = 800000 }}]
""",
}


def rules_toml(merchant: str, *, indicator: str = INDICATOR, cooldown_ms: int = 30_000) -> str:
    """The default rules file (TOML text) of a demo merchant.

    Args:
        merchant: one of :data:`DEMO_MERCHANTS`.
        indicator: the name under which the conversion indicator is deployed.
        cooldown_ms: block-time cooldown of every rule.

    Raises:
        KeyError: another merchant.
    """
    return _RULES[merchant].format(indicator=indicator, cooldown=cooldown_ms)
