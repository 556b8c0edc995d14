"""The demo world: seeded visit streams whose volume and conversion respond to marketing.

Theory of operation
-------------------
``p2pmkt demo`` (issue 6 item 4) needs traffic that *reacts* to marketing information, or the
automatic loop would have nothing to show. :class:`DemoWorld` is a small, deliberately simple
response model; every number lives in :class:`MerchantProfile` so a reader can check it.

A merchant's traffic is sessions, arriving as a Poisson process in two streams:

* **organic** sessions at ``organic_rate`` (per second), converting with ``organic_p``;
* **paid** sessions from the active campaigns. Each campaign brings
  ``paid_rate * channel_volume * keyword_volume * bid_volume`` sessions per second, capped by
  its daily budget (``daily_budget / cost_per_click`` clicks per day, where a click costs
  ``cpc_share * max_bid``). A paid session converts with probability
  ``base_p * channel_intent * keyword_intent * placement``.

The levers, as an ad platform would have them:

* **bid**: ``placement = 0.3 + 0.7 * min(1, max_bid / ref_bid)``: a higher bid buys better
  positions, which bring more (``bid_volume = 0.7 + 0.3 * min(1.5, max_bid / ref_bid)``) and
  better-intent traffic, but costlier clicks, so a tight budget cap starts to bind;
* **keywords**: each keyword in the profile's ``good_keywords`` raises intent (exact and
  phrase matches more than broad), each in ``junk_keywords`` lowers it; keywords add volume;
* **channels**: per-merchant ``channel_intent`` and ``channel_volume``; a campaign on several
  channels splits its traffic evenly between them;
* **budget cap**: bounds paid sessions per day.

Each session walks a funnel: an optional ``search`` (search traffic) or ``login`` (logged-in
visitors), one or more ``view``\\ s, then ``click`` → ``cart`` → ``order`` with an amount from
the merchant's catalog; the per-step probabilities are chosen so that the session orders with
the probability above. The built-in conversion indicator is "orders / visits" over *all*
visit records (issue 3), so :func:`conversion_fp` measures exactly that.

Determinism: :meth:`DemoWorld.visits` draws from ``random.Random`` seeded with the world's
seed, the merchant, and the window, so the same call returns the same visits whatever was
asked before (the chain demo and the pure loop test can replay any window). Time is an input;
there is no clock here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter

from p2pmkt.market.model import Campaign, MarketingInfo, Visit

MS_PER_DAY = 86_400_000
_SESSION_GAP_MS = (2_000, 40_000)  # time between two steps of one session
WARM_UP_MS = 5 * 60_000
"""Sessions are started this long before a window (longer than any session lasts)."""


@dataclass(frozen=True, slots=True)
class MerchantProfile:
    """The constants of one merchant's response model (see the module docstring)."""

    name: str
    organic_rate: float
    organic_p: float
    paid_rate: float
    base_p: float
    ref_bid: int
    cpc_share: float
    channel_intent: Mapping[str, float]
    channel_volume: Mapping[str, float]
    good_keywords: frozenset[str]
    junk_keywords: frozenset[str]
    methods: tuple[float, float, float]  # organic browser/desktop/app shares
    catalog: tuple[tuple[str, int], ...]  # (sku, price in minor units)
    login_share: float = 0.3


# A visit stream for the channels' typical devices: (browser, desktop, app).
_CHANNEL_METHODS: Mapping[str, tuple[float, float, float]] = {
    "search": (0.75, 0.15, 0.10),
    "display": (0.70, 0.20, 0.10),
    "social": (0.40, 0.05, 0.55),
    "video": (0.50, 0.10, 0.40),
    "app-store": (0.03, 0.02, 0.95),
    "email": (0.55, 0.35, 0.10),
    "affiliate": (0.80, 0.15, 0.05),
}

# Probabilities of the funnel steps before the order; the order step is derived from them.
_P_CLICK = 0.5
_P_CART = 0.4


def keyword_intent(profile: MerchantProfile, campaign: Campaign) -> float:
    """Intent multiplier of a campaign's keywords (1.0 = neutral), clamped to [0.5, 1.8]."""
    score = 1.0
    for kw in campaign.keywords:
        text = kw.text.lower()
        if text in profile.good_keywords:
            score += 0.18 if kw.match in ("exact", "phrase") else 0.12
        elif text in profile.junk_keywords:
            score -= 0.12
    return min(1.8, max(0.5, score))


def keyword_volume(campaign: Campaign) -> float:
    """More keywords reach more searches, with diminishing returns."""
    return 0.6 + 0.4 * min(2.0, math.sqrt(len(campaign.keywords)))


@dataclass(frozen=True, slots=True)
class Stream:
    """One source of sessions: rate per second, order probability, channel ('' = organic)."""

    rate: float
    p_order: float
    channel: str


def streams(profile: MerchantProfile, info: MarketingInfo | None) -> tuple[Stream, ...]:
    """The organic stream plus one stream per (active campaign, channel)."""
    out = [Stream(profile.organic_rate, profile.organic_p, "")]
    for campaign in (info.campaigns if info else ()):
        if not campaign.active or not campaign.channels or campaign.max_bid <= 0:
            continue
        ratio = campaign.max_bid / profile.ref_bid
        placement = 0.3 + 0.7 * min(1.0, ratio)
        bid_volume = 0.7 + 0.3 * min(1.5, ratio)
        demand = profile.paid_rate * keyword_volume(campaign) * bid_volume
        cpc = max(1.0, profile.cpc_share * campaign.max_bid)
        budget_rate = campaign.daily_budget / cpc / (MS_PER_DAY / 1000)
        share = 1.0 / len(campaign.channels)
        intent = keyword_intent(profile, campaign)
        for channel in campaign.channels:
            rate = min(demand * profile.channel_volume.get(channel, 0.5), budget_rate) * share
            p = profile.base_p * profile.channel_intent.get(channel, 0.5) * intent * placement
            out.append(Stream(rate, min(p, _P_CLICK * _P_CART * 0.95), channel))
    return tuple(out)


def expected_conversion(profile: MerchantProfile, info: MarketingInfo | None) -> float:
    """Expected orders / visit records of the model (no sampling), for tests and tuning."""
    orders = records = 0.0
    for s in streams(profile, info):
        orders += s.rate * s.p_order
        records += s.rate * _expected_records(s, profile)
    return orders / records if records else 0.0


def _expected_records(s: Stream, profile: MerchantProfile) -> float:
    search = 0.35 if s.channel in ("search", "") else 0.0
    return search + profile.login_share * 0.5 + 1.5 + _P_CLICK * (1 + _P_CART) + s.p_order


class DemoWorld:
    """Seeded visit generator for the demo merchants (or any profiles you give it).

    Args:
        seed: the world's seed; everything it produces is a function of it and the inputs.
        profiles: merchant profiles by name; the demo merchants by default.
        scale: multiplies every rate (``p2pmkt demo`` turns it up to load a chain).
    """

    def __init__(
        self, seed: int, *, profiles: Mapping[str, MerchantProfile] | None = None,
        scale: float = 1.0,
    ) -> None:
        from p2pmkt.demo.merchants import PROFILES  # the world is generic; the cast is not

        self.seed = seed
        self.profiles = dict(profiles if profiles is not None else PROFILES)
        self.scale = scale

    def visits(
        self, merchant: str, info: MarketingInfo | None, start_ms: int, duration_ms: int
    ) -> list[Visit]:
        """Visits of ``merchant`` in ``[start_ms, start_ms + duration_ms)``, sorted by time.

        Sessions start from :data:`WARM_UP_MS` before the window, and only their steps inside
        it are kept, so every window sees the steady state (sessions already under way at
        its start, sessions cut at its end) and windows can be asked for back to back. Each
        window is an independent sample: a session cut at one window's end does not go on in
        the next.

        Raises:
            KeyError: unknown merchant.
        """
        profile = self.profiles[merchant]
        rng = random.Random(f"p2pmkt-demo/{self.seed}/{merchant}/{start_ms}/{duration_ms}")
        end = start_ms + duration_ms
        out: list[_Row] = []
        for stream in streams(profile, info):
            rate_per_ms = stream.rate * self.scale * _daily_factor(start_ms) / 1000.0
            if rate_per_ms <= 0:
                continue
            t = start_ms - WARM_UP_MS + rng.expovariate(rate_per_ms)
            while t < end:
                _session(rng, profile, stream, int(t), start_ms, end, out)
                t += rng.expovariate(rate_per_ms)
        out.sort(key=_TIME)
        return [Visit(*row) for row in out]

    def expected_rate(self, merchant: str, info: MarketingInfo | None, at_ms: int) -> float:
        """Visits per second the model expects of ``merchant`` at ``at_ms`` (no sampling).

        Raises:
            KeyError: unknown merchant.
        """
        profile = self.profiles[merchant]
        factor = self.scale * _daily_factor(at_ms)
        return sum(s.rate * factor * _expected_records(s, profile) for s in streams(profile, info))

    def session_rows(
        self, merchant: str, info: MarketingInfo | None, start_ms: int, duration_ms: int
    ) -> list[_Row]:
        """Every visit of the sessions that *start* in ``[start_ms, start_ms + duration_ms)``,
        in wire form (``Visit.to_wire()`` order, as tuples), sorted by time.

        For streaming load (the demo's terminal): no warm-up and nothing cut, so the cost is
        proportional to the visits produced even for short windows; later steps of a session
        carry times past the window's end (visit time is data, not a clock). Back-to-back
        windows give a continuous stream. Rows, not ``Visit`` values: a load generator packs
        them, and building and unbuilding a ``Visit`` per visit was a fifth of its time.

        Raises:
            KeyError: unknown merchant.
        """
        profile = self.profiles[merchant]
        rng = random.Random(f"p2pmkt-demo-stream/{self.seed}/{merchant}/{start_ms}/{duration_ms}")
        end = start_ms + duration_ms
        out: list[_Row] = []
        for stream in streams(profile, info):
            rate_per_ms = stream.rate * self.scale * _daily_factor(start_ms) / 1000.0
            if rate_per_ms <= 0:
                continue
            t = start_ms + rng.expovariate(rate_per_ms)
            while t < end:
                _session(rng, profile, stream, int(t), start_ms, _NO_END, out)
                t += rng.expovariate(rate_per_ms)
        out.sort(key=_TIME)
        return out


_NO_END = 2**62
_Row = tuple[str, str, int, str, str, str, str, int]
_TIME = itemgetter(2)  # a row's time (stable sort: equal times keep their draw order)


def _daily_factor(time_ms: int) -> float:
    """Traffic swings by a third over the day (quietest near 03:00 UTC)."""
    hour = (time_ms % MS_PER_DAY) / 3_600_000
    return 1.0 + 0.33 * math.sin(2 * math.pi * (hour - 9) / 24)


_METHODS = ("browser", "desktop", "app")
_GAP_LO, _GAP_SPAN = _SESSION_GAP_MS[0], _SESSION_GAP_MS[1] - _SESSION_GAP_MS[0] + 1


def _session(
    rng: random.Random, profile: MerchantProfile, stream: Stream, t: int, start: int,
    end: int, out: list[_Row],
) -> None:
    # Every draw is one rng.random() (or getrandbits for the address): randint, choice and
    # choices cost 5-10 times as much in Python, and a load generator sharing the nodes'
    # cores should not spend them (tools/bench/cycle.py).
    draw = rng.random
    weights = _CHANNEL_METHODS.get(stream.channel, profile.methods)
    u = draw() * sum(weights)
    method = _METHODS[0] if u < weights[0] else _METHODS[1] if u < weights[0] + weights[1] else _METHODS[2]
    r = rng.getrandbits(32)
    ip = f"{11 + (r >> 24) % 213}.{(r >> 16) & 255}.{(r >> 8) & 255}.{1 + (r & 255) % 254}"
    account = f"u{int(draw() * 5000):04d}" if draw() < profile.login_share else ""
    catalog = profile.catalog
    sku, price = catalog[int(draw() * len(catalog))]
    steps: list[tuple[str, str, int]] = []
    if stream.channel in ("search", "") and draw() < 0.35:
        steps.append(("search", "", 0))
    if account and draw() < 0.5:
        steps.append(("login", "", 0))
    steps.append(("view", sku, 0))
    while draw() < 0.33:
        steps.append(("view", catalog[int(draw() * len(catalog))][0], 0))
    # P(order) = P_CLICK * P_CART * p_checkout, so p_checkout carries the stream's intent.
    if draw() < _P_CLICK:
        steps.append(("click", sku, 0))
        if draw() < _P_CART:
            steps.append(("cart", sku, 0))
            if draw() < stream.p_order / (_P_CLICK * _P_CART):
                steps.append(("order", sku, price * (2 if draw() < 0.25 else 1)))
    name = profile.name
    for op, item, amount in steps:
        if t >= end:
            return
        if t >= start:
            out.append((ip, account, t, name, method, op, item, amount))
        t += _GAP_LO + int(draw() * _GAP_SPAN)
