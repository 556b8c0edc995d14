"""p2pmkt.demo: the demo workload (issue 6 item 4). Pure and seeded: time is an input.

* :mod:`~p2pmkt.demo.world`: :class:`DemoWorld`, visit streams that respond to marketing.
* :mod:`~p2pmkt.demo.merchants`: acme, globex, initech: starting campaigns, targets, rules.
* :mod:`~p2pmkt.demo.loop`: the loop without a chain, and the conversion indicator.
"""

from p2pmkt.demo.loop import LoopRound, conversion_fp, simulate_loop
from p2pmkt.demo.merchants import (
    DEMO_MERCHANTS,
    INDICATOR,
    PROFILES,
    SCALE,
    TARGETS,
    DemoTarget,
    rules_toml,
    starting_campaigns,
    starting_info,
)
from p2pmkt.demo.world import DemoWorld, MerchantProfile, expected_conversion

__all__ = [
    "DEMO_MERCHANTS",
    "INDICATOR",
    "PROFILES",
    "SCALE",
    "TARGETS",
    "DemoTarget",
    "DemoWorld",
    "LoopRound",
    "MerchantProfile",
    "conversion_fp",
    "expected_conversion",
    "rules_toml",
    "simulate_loop",
    "starting_campaigns",
    "starting_info",
]
