"""Apache/NGINX "combined" access-log lines → visits.

Theory of operation
-------------------
A terminal service node's web back-end already writes an access log; ingesting it as it is
(issue 6 item 1) needs a fixed, documented mapping from an HTTP request to a
:class:`~p2pmkt.market.model.Visit`. docs/INGEST.md carries the same rules for users.

Accepted line shapes (one regex; trailing extra fields, as some NGINX setups append, are
ignored)::

    [vhost:port ]ip ident user [dd/Mon/yyyy:HH:MM:SS +zzzz] "request" status size ["referer" "agent"]

i.e. Apache ``combined``, ``vhost_combined`` and ``common`` (no referer/agent), and NGINX's
default ``combined``. Apache's ``\\"`` escapes inside quoted fields are honoured.

Field rules, in the order the parser applies them:

1. **time**: the bracketed timestamp with its UTC offset → ms since the epoch. It is
   timezone-aware by construction; month names are parsed independently of the host locale.
2. **account**: the ``user`` field when it is not ``-``, else ``""``.
3. **ip**: the first field (after the optional vhost), as written.
4. **method** (access method, from the user agent, case-insensitive):
   ``desktop`` for desktop app shells (Electron, NW.js/node-webkit, QtWebEngine, CEF,
   Slack/Discord/Teams/Spotify clients, CFNetwork on an x86_64/i386 Mac); else
   ``app`` when it looks like a mobile app or its HTTP library (okhttp, CFNetwork, Dalvik,
   Android WebView ``; wv)``, Facebook/Instagram in-app browsers, Alamofire, Retrofit, Dart,
   React Native, or a token ending in ``app/<digit>`` such as ``ShopApp/3.2``); otherwise ``browser`` (also for
   ``-``). :class:`CombinedConfig` adds patterns to both.
5. **merchant**, first rule that gives one wins:
   a. the host (vhost field, else the host of an absolute request URL) in the merchant map;
   b. the longest path prefix in the merchant map (whole segments only: ``/shop`` matches
      ``/shop/x`` but not ``/shopping``);
   c. the first path segment, when ``merchant_from_path`` is on and it looks like an id;
   d. the default merchant;
   e. otherwise the line is a :class:`BadLine`.
6. **op** (from method, path and query; the path is percent-decoded and lower-cased):
   user ``op_rules`` first (regexes over ``path?query``); then
   HTTP status >= 400 or an unparseable request line → ``other`` (nothing was seen or bought);
   HEAD → ``other`` (monitors, not people);
   static assets (``.css .js .png .jpg .gif .svg .ico .woff`` …, ``/robots.txt``) →
   skipped, or ``view`` when ``static="view"``;
   order confirmation paths (``/checkout/complete``, ``/order/confirmation``,
   ``/thank-you``, ``/purchase`` …) or a POST to ``/order(s)``, ``/checkout``,
   ``/purchase`` → ``order``;
   ``/cart``, ``/basket``, ``/bag``, ``/add-to-cart``, ``/checkout`` (not yet complete) →
   ``cart``;
   ``/login``, ``/signin``, ``/auth``, ``/oauth``, ``wp-login.php`` … → ``login``;
   ``/search`` or a ``q``/``query``/``s``/``search``/``keywords`` parameter → ``search``;
   an ad or campaign click marker (``gclid``, ``fbclid``, ``msclkid``, ``dclid``,
   ``utm_source``/``utm_medium``/``utm_campaign``) or ``/click``, ``/go``, ``/out``,
   ``/redirect`` → ``click``; anything else → ``view``.
7. **item**: query ``item``/``sku``/``product``/``product_id``/``pid``, else the segment
   after ``/product(s)/``, ``/item(s)/``, ``/p/``, ``/dp/``, ``/sku/``; ``""`` if none.
   Longer than 256 characters → cut to 256 (it is derived, not given).
8. **amount** (``order`` only): query ``amount``/``total``/``value``/``revenue`` in integer
   minor units; missing → 0; not a whole number → :class:`BadLine`.
9. With ``skip_bots``, agents that name themselves crawlers (bot, crawl, spider, slurp,
   archiver, feedfetcher, externalhit, pingdom, uptime, headless) are skipped.

A skipped line yields ``None`` and is counted in :meth:`CombinedParser.statistics`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, unquote, urlsplit

from p2pmkt.errors import ConfigError, InvalidTransaction
from p2pmkt.ingest.lines import BadLine, Line
from p2pmkt.market.model import MAX_TEXT, OPERATIONS, Visit

STATIC_CHOICES = ("skip", "view")


def _quoted(name: str) -> str:
    # A double-quoted field in which Apache escapes ``"`` and ``\`` with a backslash.
    # Written "unrolled" (runs of plain characters between escapes): several times faster
    # than an alternation per character, which dominated parse time.
    return rf'"(?P<{name}>[^"\\]*(?:\\.[^"\\]*)*)"'


_LINE = re.compile(
    r"^(?:(?P<vhost>[^\s:]+):(?P<port>\d+) )?"
    r"(?P<ip>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    rf"{_quoted('request')} (?P<status>\d{{3}}|-) (?P<size>\d+|-)"
    rf"(?: {_quoted('referer')} {_quoted('agent')})?"
    r"(?:\s.*)?$"
)
_TIME = re.compile(r"^(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_APP_AGENT = re.compile(
    r"okhttp|cfnetwork|dalvik|; ?wv\)|\bfban|\bfbav|fb_iab|instagram|alamofire|afnetworking"
    r"|retrofit|ktor-client|dart:io|react-?native|app/\d",
    re.IGNORECASE,
)
_DESKTOP_AGENT = re.compile(
    r"electron/|node-webkit|\bnw\.js|\bnwjs|qtwebengine|\bcef/|slack/|slack_ssb|discord/"
    r"|teams/|spotify/|cfnetwork/\S+ darwin/\S+ \((?:x86_64|i386)\)",
    re.IGNORECASE,
)
_BOT_AGENT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|archiver|feedfetcher|externalhit|pingdom|uptime|headless",
    re.IGNORECASE,
)
_STATIC = re.compile(
    r"\.(?:css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|bmp|woff2?|ttf|otf|eot|mp4|webm"
    r"|mp3|ogg)$|^/robots\.txt$"
)
_ORDER_PATH = re.compile(
    r"/(?:checkout/(?:complete|success|done|confirm\w*|thank[-_]?you)"
    r"|orders?/(?:complete|confirm\w*|success|placed|received|thank[-_]?you)"
    r"|order[-_](?:complete|confirm\w*|success|placed|received)"
    r"|thank[-_]?you|purchase)(?:/|$|\.)"
)
_ORDER_POST = re.compile(r"/(?:orders?|checkout|purchase)(?:/|$|\.)")
_CART = re.compile(r"/(?:cart|basket|bag|add[-_]?to[-_]?cart|checkout)(?:/|$|\.)")
_LOGIN = re.compile(
    r"/(?:login|log-in|logon|signin|sign-in|sign_in|auth|oauth|wp-login\.php)(?:/|$|\.)"
)
_SEARCH = re.compile(r"/search(?:/|$|\.)")
_CLICK = re.compile(r"/(?:click|go|out|redirect|aclk)(?:/|$)")
_SEARCH_PARAMS = frozenset({"q", "query", "s", "search", "keywords", "keyword"})
_CLICK_PARAMS = frozenset(
    {"gclid", "fbclid", "msclkid", "dclid", "utm_source", "utm_medium", "utm_campaign"})
_ITEM_PARAMS = ("item", "sku", "product", "product_id", "pid")
_ITEM_PATH = re.compile(r"/(?:products?|items?|p|dp|sku)/([^/]+)")
_AMOUNT_PARAMS = ("amount", "total", "value", "revenue")
_AGENT_CACHE = 4096
_MERCHANT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class CombinedConfig:
    """How access-log lines map to visits (see the module docstring for the rules).

    Attributes:
        merchant: default merchant id (rule 5d); ``""`` for none.
        merchant_map: ``(key, merchant)`` pairs; a key starting with ``/`` is a path prefix,
            any other key a host name (case-insensitive, without port).
        merchant_from_path: use the first path segment as the merchant id (rule 5c).
        static: ``"skip"`` (default) or ``"view"`` for static assets.
        skip_bots: skip self-declared crawlers.
        app_agents: extra regexes (case-insensitive) whose match makes the method ``app``.
        desktop_agents: extra regexes whose match makes the method ``desktop``.
        op_rules: ``(regex, op)`` pairs tried first against ``path?query`` (decoded,
            lower-cased); an ``op`` of ``"skip"`` skips the line.
    """

    merchant: str = ""
    merchant_map: tuple[tuple[str, str], ...] = ()
    merchant_from_path: bool = False
    static: str = "skip"
    skip_bots: bool = False
    app_agents: tuple[str, ...] = ()
    desktop_agents: tuple[str, ...] = ()
    op_rules: tuple[tuple[str, str], ...] = ()


def validate_config(config: CombinedConfig) -> None:
    """Check a :class:`CombinedConfig` before use.

    Raises:
        ConfigError: an unknown ``static`` choice or op, an empty map entry, or a bad regex.
    """
    if config.static not in STATIC_CHOICES:
        raise ConfigError(f"static must be one of {list(STATIC_CHOICES)}, got {config.static!r}")
    for key, merchant in config.merchant_map:
        if not key or not merchant:
            raise ConfigError(f"merchant map entry {key!r}={merchant!r} is empty on one side")
    patterns = [*config.app_agents, *config.desktop_agents, *(p for p, _ in config.op_rules)]
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"bad regex {pattern!r}: {exc}") from None
    for _, op in config.op_rules:
        if op not in (*OPERATIONS, "skip"):
            raise ConfigError(f"op rule names {op!r}; use one of {[*OPERATIONS, 'skip']}")


def parse_merchant_map(spec: str) -> tuple[tuple[str, str], ...]:
    """Parse the CLI's ``--merchant-map`` text: ``key=merchant`` pairs split by commas.

    Example: ``"shop.acme.test=acme,/globex=globex"``.

    Raises:
        ConfigError: a pair without ``=`` or with an empty side.
    """
    pairs: list[tuple[str, str]] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, merchant = part.partition("=")
        if not sep or not key.strip() or not merchant.strip():
            raise ConfigError(f"merchant map entry {part!r} is not key=merchant")
        pairs.append((key.strip(), merchant.strip()))
    return tuple(pairs)


def parse_log_time(text: str) -> int:
    """``17/May/2015:10:05:03 +0000`` → ms since the epoch.

    Raises:
        ValueError: not in that shape, or not a real date.
    """
    m = _TIME.match(text)
    if m is None:
        raise ValueError(f"timestamp {text!r:.40} is not dd/Mon/yyyy:HH:MM:SS +zzzz")
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = _MONTHS.get(mon.lower())
    if month is None:
        raise ValueError(f"timestamp {text!r:.40} has an unknown month")
    offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
    try:
        moment = datetime(int(year), month, int(day), int(hh), int(mm), int(ss),
                          tzinfo=timezone(offset))
    except ValueError as exc:
        raise ValueError(f"timestamp {text!r:.40} is not a real time: {exc}") from None
    delta = moment - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000


def classify_agent(agent: str, config: CombinedConfig | None = None) -> str:
    """Map a user agent to an access method (rule 4): ``"app"``, ``"desktop"`` or ``"browser"``."""
    extra_app = config.app_agents if config else ()
    extra_desktop = config.desktop_agents if config else ()
    # Desktop first: a Mac app speaks CFNetwork like an iOS app, and only its
    # architecture tag (x86_64/i386) tells the two apart.
    if _DESKTOP_AGENT.search(agent) or any(re.search(p, agent, re.I) for p in extra_desktop):
        return "desktop"
    if _APP_AGENT.search(agent) or any(re.search(p, agent, re.I) for p in extra_app):
        return "app"
    return "browser"


def looks_like_access_log(text: str) -> bool:
    """True when ``text`` has the shape of a combined/common access-log line."""
    return _LINE.match(text) is not None


def is_bot(agent: str) -> bool:
    """True when the agent names itself a crawler (rule 9)."""
    return bool(_BOT_AGENT.search(agent))


@dataclass(frozen=True, slots=True)
class CombinedStatistics:
    """Counts since the parser was made: visits produced and lines skipped by reason."""

    visits: int
    skipped_static: int
    skipped_bots: int
    skipped_by_rule: int
    blank: int


class CombinedParser:
    """Parses access-log lines into visits by the module's rules.

    Raises:
        ConfigError: at construction, when ``validate_config`` refuses ``config``.
    """

    __slots__ = ("_agents", "_counts", "_op_rules", "config")

    def __init__(self, config: CombinedConfig | None = None) -> None:
        self.config = config or CombinedConfig()
        validate_config(self.config)
        self._op_rules = tuple((re.compile(p, re.I), op) for p, op in self.config.op_rules)
        self._counts = {"visits": 0, "static": 0, "bots": 0, "rule": 0, "blank": 0}
        # A log has few distinct agents and regex classification dominates parse time, so
        # remember answers (bounded: a hostile log cannot grow it without limit).
        self._agents: dict[str, str] = {}

    def statistics(self) -> CombinedStatistics:
        c = self._counts
        return CombinedStatistics(c["visits"], c["static"], c["bots"], c["rule"], c["blank"])

    def parse(self, line: Line) -> Visit | None:
        """Return the visit on ``line``, or None when the rules skip it (or it is blank).

        Raises:
            BadLine: the line is not an access-log line, has a bad timestamp, no merchant
                can be found for it, or a field the chain would refuse.
        """
        if line.truncated:
            raise BadLine(line.no, "line is too long")
        if not line.text.strip():
            self._counts["blank"] += 1
            return None
        m = _LINE.match(line.text)
        if m is None:
            raise BadLine(line.no, "not an access-log line in the combined or common format")
        agent = _unescape(m.group("agent") or "")
        if self.config.skip_bots and is_bot(agent):
            self._counts["bots"] += 1
            return None
        try:
            time_ms = parse_log_time(m.group("time"))
        except ValueError as exc:
            raise BadLine(line.no, str(exc)) from None
        http_method, host, path, query, ok_request = _split_request(_unescape(m.group("request")))
        host = (m.group("vhost") or host).lower()
        status = m.group("status")
        op = self._operation(http_method, path, query, ok_request, status)
        if op is None:
            return None
        merchant = self._merchant(host, path)
        if not merchant:
            raise BadLine(line.no, f"no merchant for host {host!r} path {path[:60]!r}; "
                                   "give a default merchant or a merchant map")
        user = m.group("user")
        item = _item(path, query)[:MAX_TEXT]
        amount = _amount(query, line.no) if op == "order" else 0
        method = self._agents.get(agent)
        if method is None:
            method = classify_agent(agent, self.config)
            if len(self._agents) < _AGENT_CACHE:
                self._agents[agent] = method
        wire = [m.group("ip"), "" if user == "-" else user, time_ms, merchant,
                method, op, item, amount]
        try:
            visit = Visit.from_wire(wire)
        except InvalidTransaction as exc:
            raise BadLine(line.no, exc.message) from None
        self._counts["visits"] += 1
        return visit

    def _operation(
        self, http_method: str, path: str, query: list[tuple[str, str]], ok_request: bool,
        status: str,
    ) -> str | None:
        target = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        for pattern, op in self._op_rules:
            if pattern.search(target):
                if op == "skip":
                    self._counts["rule"] += 1
                    return None
                return op
        if not ok_request or (status != "-" and int(status) >= 400) or http_method == "HEAD":
            return "other"
        if _STATIC.search(path):
            if self.config.static == "skip":
                self._counts["static"] += 1
                return None
            return "view"
        keys = {k for k, _ in query}
        if _ORDER_PATH.search(path) or (http_method == "POST" and _ORDER_POST.search(path)):
            return "order"
        if _CART.search(path):
            return "cart"
        if _LOGIN.search(path):
            return "login"
        if _SEARCH.search(path) or keys & _SEARCH_PARAMS:
            return "search"
        if _CLICK.search(path) or keys & _CLICK_PARAMS:
            return "click"
        return "view"

    def _merchant(self, host: str, path: str) -> str:
        host = host.split(":", 1)[0]
        best = ""
        best_len = -1
        for key, merchant in self.config.merchant_map:
            if key.startswith("/"):
                prefix = key.rstrip("/").lower()
                if (path == prefix or path.startswith(prefix + "/")) and len(prefix) > best_len:
                    best, best_len = merchant, len(prefix)
            elif host and key.lower() == host:
                return merchant
        if best:
            return best
        if self.config.merchant_from_path:
            first = path.lstrip("/").split("/", 1)[0]
            if _MERCHANT_ID.match(first):
                return first
        return self.config.merchant


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def _split_request(request: str) -> tuple[str, str, str, list[tuple[str, str]], bool]:
    """``"GET /a?b=1 HTTP/1.1"`` → (method, host, decoded lower path, query pairs, parsed ok)."""
    parts = request.split(" ")
    if len(parts) not in (2, 3) or not parts[0].isalpha():
        return "", "", "", [], False
    url = urlsplit(parts[1])
    path = unquote(url.path).lower() or "/"
    query = [(k.lower(), v) for k, v in parse_qsl(url.query, keep_blank_values=True)]
    return parts[0].upper(), url.hostname or "", path, query, True


def _item(path: str, query: list[tuple[str, str]]) -> str:
    params = dict(query)
    for key in _ITEM_PARAMS:
        if params.get(key):
            return params[key]
    m = _ITEM_PATH.search(path)
    return m.group(1) if m else ""


def _amount(query: list[tuple[str, str]], line_no: int) -> int:
    params = dict(query)
    for key in _AMOUNT_PARAMS:
        raw = params.get(key)
        if raw is not None:
            if not raw.isdigit() or len(raw) > 16:
                raise BadLine(line_no, f"order {key}={raw[:40]!r} is not whole minor units")
            return int(raw)
    return 0
