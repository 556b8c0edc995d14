"""The combined access-log parser: the shared real log, and each mapping rule."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from p2pmkt.errors import ConfigError
from p2pmkt.ingest import (
    BadLine,
    CombinedConfig,
    CombinedParser,
    Line,
    classify_agent,
    parse_lines,
    parse_log_time,
    parse_merchant_map,
    split_text,
)

SHARED_LOG = Path(__file__).resolve().parents[3] / "shared" / "data" / "apache-combined-2015-05.log"

CHROME = "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0 Safari/537.36"


def log_line(
    request: str = "GET / HTTP/1.1",
    *,
    agent: str = CHROME,
    user: str = "-",
    status: str = "200",
    time: str = "17/May/2015:10:05:03 +0000",
    prefix: str = "",
) -> str:
    return f'{prefix}10.0.0.1 - {user} [{time}] "{request}" {status} 123 "-" "{agent}"'


def parse_one(text: str, **config: object) -> object:
    cfg = CombinedConfig(**{"merchant": "acme", **config})  # type: ignore[arg-type]
    return CombinedParser(cfg).parse(Line(7, text))


@pytest.fixture(scope="module")
def shared_lines() -> list[Line]:
    if not SHARED_LOG.exists():
        pytest.skip(f"shared log not found at {SHARED_LOG}")
    return split_text(SHARED_LOG.read_text(encoding="utf-8"))


def test_every_line_of_the_shared_log_parses(shared_lines: list[Line]) -> None:
    assert len(shared_lines) == 5000
    parser = CombinedParser(CombinedConfig(merchant="semicomplete", static="view"))
    outcome = parse_lines(parser, shared_lines, on_error="stop")
    assert outcome.errors == ()
    assert len(outcome.visits) == 5000
    assert {v.merchant for v in outcome.visits} == {"semicomplete"}
    methods = Counter(v.method for v in outcome.visits)
    assert methods["browser"] > 4900 and methods["app"] > 0


def test_shared_log_with_default_rules_skips_static_assets_only(shared_lines: list[Line]) -> None:
    parser = CombinedParser(CombinedConfig(merchant="semicomplete"))
    outcome = parse_lines(parser, shared_lines, on_error="stop")
    stats = parser.statistics()
    assert outcome.errors == ()
    assert stats.visits == len(outcome.visits)
    assert stats.visits + stats.skipped_static == 5000
    assert stats.skipped_static > 2000  # images, css, js, favicon
    # Lines 1-24 fetch images, scripts and stylesheets; line 25 is the first page.
    first = outcome.visits[0]
    assert (first.ip, first.time, first.op) == ("93.114.45.13", 1431857114000, "view")


def test_time_is_timezone_aware() -> None:
    assert parse_log_time("17/May/2015:10:05:03 +0000") == 1431857103000
    assert parse_log_time("17/May/2015:12:05:03 +0200") == 1431857103000
    assert parse_log_time("17/may/2015:05:05:03 -0500") == 1431857103000
    with pytest.raises(ValueError, match=r"unknown month"):
        parse_log_time("17/Mai/2015:10:05:03 +0000")


def test_bad_timestamp_is_a_bad_line_with_its_number() -> None:
    with pytest.raises(BadLine, match=r"^line 7: timestamp '32/May/2015:10:05:03 \+0000' is not a real time") as info:
        parse_one(log_line(time="32/May/2015:10:05:03 +0000"))
    assert info.value.line_no == 7
    assert info.value.reason == "bad_line"


def test_garbage_is_a_bad_line() -> None:
    with pytest.raises(BadLine, match=r"^line 7: not an access-log line"):
        parse_one("hello world")


def test_account_comes_from_remote_user() -> None:
    assert parse_one(log_line(user="alice")).account == "alice"  # type: ignore[attr-defined]
    assert parse_one(log_line(user="-")).account == ""  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("agent", "method"),
    [
        (CHROME, "browser"),
        ("-", "browser"),
        ("okhttp/4.9.3", "app"),
        ("Dalvik/2.1.0 (Linux; U; Android 11; Pixel 5 Build/RQ3A)", "app"),
        ("MyShop/5 CFNetwork/1240.0.4 Darwin/20.6.0", "app"),
        ("Mozilla/5.0 (Linux; Android 10; K; wv) AppleWebKit/537.36 Chrome/89 Mobile Safari/537.36", "app"),
        ("AcmeShopApp/3.2 (iPhone; iOS 17.1)", "app"),
        ("Mozilla/5.0 (Macintosh) AppleWebKit/537.36 Chrome/114 Electron/25.3.1 Safari/537.36", "desktop"),
        ("Safari/9537.73.11 CFNetwork/673.0.3 Darwin/13.0.0 (x86_64) (MacBookPro8%2C1)", "desktop"),
    ],
)
def test_user_agent_maps_to_access_method(agent: str, method: str) -> None:
    assert classify_agent(agent) == method


def test_extra_agent_patterns_from_config() -> None:
    cfg = CombinedConfig(merchant="acme", desktop_agents=(r"AcmeDesk/",), app_agents=(r"^Kiosk",))
    assert classify_agent("AcmeDesk/1.0 (Windows)", cfg) == "desktop"
    assert classify_agent("Kiosk 2", cfg) == "app"


@pytest.mark.parametrize(
    ("request_line", "op", "item", "amount"),
    [
        ("GET / HTTP/1.1", "view", "", 0),
        ("GET /products/sku-42 HTTP/1.1", "view", "sku-42", 0),
        ("GET /shop?item=x1 HTTP/1.1", "view", "x1", 0),
        ("GET /landing?gclid=abc HTTP/1.1", "click", "", 0),
        ("GET /go/partner HTTP/1.1", "click", "", 0),
        ("GET /search?q=shoes HTTP/1.1", "search", "", 0),
        ("GET /catalog?q=shoes HTTP/1.1", "search", "", 0),
        ("POST /cart/add?sku=7 HTTP/1.1", "cart", "7", 0),
        ("GET /checkout HTTP/1.1", "cart", "", 0),
        ("POST /login HTTP/1.1", "login", "", 0),
        ("GET /checkout/complete?amount=12999&item=sku-9 HTTP/1.1", "order", "sku-9", 12999),
        ("GET /thank-you HTTP/1.1", "order", "", 0),
        ("POST /orders HTTP/1.1", "order", "", 0),
        ("GET /orders HTTP/1.1", "view", "", 0),  # order history is a page, not a purchase
        ("HEAD / HTTP/1.1", "other", "", 0),
        ("-", "other", "", 0),
    ],
)
def test_request_maps_to_operation(request_line: str, op: str, item: str, amount: int) -> None:
    visit = parse_one(log_line(request_line))
    assert (visit.op, visit.item, visit.amount) == (op, item, amount)  # type: ignore[attr-defined]


def test_failed_request_is_other() -> None:
    assert parse_one(log_line("GET /cart HTTP/1.1", status="404")).op == "other"  # type: ignore[attr-defined]


def test_static_assets_are_skipped_or_counted_as_views() -> None:
    assert parse_one(log_line("GET /img/a.PNG HTTP/1.1")) is None
    assert parse_one(log_line("GET /robots.txt HTTP/1.1")) is None
    assert parse_one(log_line("GET /img/a.png HTTP/1.1"), static="view").op == "view"  # type: ignore[attr-defined]


def test_bad_order_amount_is_a_bad_line() -> None:
    with pytest.raises(BadLine, match=r"^line 7: order amount='12.50' is not whole minor units$"):
        parse_one(log_line("GET /thank-you?amount=12.50 HTTP/1.1"))


def test_bots_are_kept_unless_asked() -> None:
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    assert parse_one(log_line(agent=bot)) is not None
    assert parse_one(log_line(agent=bot), skip_bots=True) is None


def test_escaped_quotes_in_fields() -> None:
    line = '10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /a\\"b HTTP/1.1" 200 1 "-" "Agent \\"x\\" okhttp/3"'
    visit = parse_one(line)
    assert visit.method == "app"  # type: ignore[attr-defined]


def test_common_format_without_agent() -> None:
    line = '10.0.0.1 - bob [17/May/2015:10:05:03 +0000] "GET /x HTTP/1.0" 200 -'
    visit = parse_one(line)
    assert (visit.method, visit.account) == ("browser", "bob")  # type: ignore[attr-defined]


class TestMerchantRules:
    MAP = parse_merchant_map("shop.acme.test=acme, /globex=globex, /globex/outlet=globex-outlet")

    def merchant(self, text: str, **config: object) -> str:
        cfg = CombinedConfig(**{"merchant_map": self.MAP, **config})  # type: ignore[arg-type]
        visit = CombinedParser(cfg).parse(Line(3, text))
        assert visit is not None
        return visit.merchant

    def test_vhost_maps_host(self) -> None:
        assert self.merchant(log_line(prefix="shop.acme.test:443 ")) == "acme"

    def test_absolute_url_host(self) -> None:
        assert self.merchant(log_line("GET http://SHOP.acme.test/x HTTP/1.1")) == "acme"

    def test_longest_path_prefix_on_segment_boundary(self) -> None:
        assert self.merchant(log_line("GET /globex/outlet/a HTTP/1.1")) == "globex-outlet"
        assert self.merchant(log_line("GET /globex HTTP/1.1")) == "globex"
        with pytest.raises(BadLine, match=r"^line 3: no merchant for host '' path '/globexx/a'"):
            self.merchant(log_line("GET /globexx/a HTTP/1.1"))

    def test_first_path_segment_then_default(self) -> None:
        assert self.merchant(log_line("GET /initech/p/1 HTTP/1.1"), merchant_from_path=True) == "initech"
        assert self.merchant(log_line("GET /x HTTP/1.1"), merchant="dflt") == "dflt"

    def test_bad_map_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match=r"^merchant map entry 'acme' is not key=merchant$"):
            parse_merchant_map("acme")


def test_user_op_rules_come_first() -> None:
    rules = ((r"^/health", "skip"), (r"/buy-now", "order"))
    assert parse_one(log_line("GET /health HTTP/1.1"), op_rules=rules) is None
    assert parse_one(log_line("GET /x/buy-now?total=5 HTTP/1.1"), op_rules=rules).amount == 5  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"op rule names 'buy'"):
        CombinedParser(CombinedConfig(op_rules=((r"x", "buy"),)))


def test_ipv6_client_is_not_mistaken_for_a_vhost() -> None:
    line = '2001:db8::1 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "-"'
    visit = parse_one(line)
    assert visit.ip == "2001:db8::1"  # type: ignore[attr-defined]
