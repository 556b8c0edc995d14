"""JSON lines and CSV parsers, format detection and the skip/stop error policy."""

from __future__ import annotations

import pytest

from p2pmkt.errors import ConfigError
from p2pmkt.ingest import (
    BadHeader,
    BadLine,
    CsvParser,
    JsonLinesParser,
    Line,
    detect_format,
    make_parser,
    parse_lines,
    parse_time_ms,
    split_text,
)
from p2pmkt.market.model import Visit

V = Visit("10.0.0.1", "alice", 1431857103000, "acme", "app", "order", "sku-1", 1299)


def test_json_object_and_array_forms() -> None:
    parser = JsonLinesParser()
    obj = ('{"ip": "10.0.0.1", "account": "alice", "time": "2015-05-17T10:05:03Z", '
           '"merchant": "acme", "method": "app", "op": "order", "item": "sku-1", "amount": 1299}')
    assert parser.parse(Line(1, obj)) == V
    assert parser.parse(Line(2, '["10.0.0.1","alice",1431857103000,"acme","app","order","sku-1",1299]')) == V
    assert parser.parse(Line(3, "   ")) is None


def test_json_defaults_and_default_merchant() -> None:
    parser = JsonLinesParser(default_merchant="acme")
    visit = parser.parse(Line(1, '{"ip": "1.2.3.4", "time": 5, "method": "browser", "op": "view"}'))
    assert visit == Visit("1.2.3.4", "", 5, "acme", "browser", "view")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{oops", r"^line 4: not JSON: "),
        ('{"ip": "1", "time": 1, "method": "app", "op": "view", "merchant": "m", "ammount": 3}',
         r"^line 4: unknown field\(s\) \['ammount'\]"),
        ('{"time": 1, "method": "app", "op": "view", "merchant": "m"}', r"^line 4: missing field 'ip'$"),
        ('{"ip": "1", "time": 1, "method": "app", "op": "view"}',
         r"^line 4: missing field 'merchant' and no default merchant given$"),
        ('{"ip": "1", "time": 1, "method": "fax", "op": "view", "merchant": "m"}',
         r"^line 4: visit method 'fax' is not one of"),
        ('{"ip": "1", "time": "2015-05-17T10:05:03", "method": "app", "op": "view", "merchant": "m"}',
         r"^line 4: time '2015-05-17T10:05:03' has no UTC offset"),
        ('"just text"', r"^line 4: a visit is a JSON object or array$"),
    ],
)
def test_json_bad_lines_name_line_and_fault(text: str, message: str) -> None:
    with pytest.raises(BadLine, match=message):
        JsonLinesParser().parse(Line(4, text))


def test_time_parsing() -> None:
    assert parse_time_ms(7) == 7
    assert parse_time_ms("1431857103000") == 1431857103000
    assert parse_time_ms("2015-05-17T12:05:03.250+02:00") == 1431857103250
    with pytest.raises(ValueError, match=r"neither ms nor ISO 8601"):
        parse_time_ms("yesterday")
    with pytest.raises(ValueError, match=r"ms since the epoch"):
        parse_time_ms(True)


def test_csv_with_header_in_any_order() -> None:
    text = "op,method,ip,time,merchant,amount,item,account\norder,app,10.0.0.1,2015-05-17T10:05:03Z,acme,1299,sku-1,alice\n"
    outcome = parse_lines(CsvParser(), split_text(text))
    assert outcome.visits == (V,)
    assert outcome.errors == ()


def test_csv_quoted_cells_and_defaults() -> None:
    parser = CsvParser(default_merchant="acme")
    assert parser.parse(Line(1, "ip,time,method,op,item")) is None
    assert parser.columns == ("ip", "time", "method", "op", "item")
    visit = parser.parse(Line(2, '1.2.3.4,9,browser,view,"a, b"'))
    assert visit == Visit("1.2.3.4", "", 9, "acme", "browser", "view", "a, b")


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("ip,time,method,op,colour", None, r"^line 1: bad CSV header: unknown column\(s\) 'colour'; missing "),
        ("ip,time,method", None,
         r"^line 1: bad CSV header: missing required column\(s\) \['op', 'merchant'\]\. "),
        ("ip,time,method,op,merchant", "1,2,app", r"^line 2: 3 cells but the header has 5$"),
        ("ip,time,method,op,merchant,amount", "1,2,app,order,m,12.5",
         r"^line 2: amount '12.5' is not whole minor units$"),
    ],
)
def test_csv_bad_lines(header: str, row: str | None, message: str) -> None:
    parser = CsvParser()
    with pytest.raises(BadLine, match=message):
        parser.parse(Line(1, header))
        assert row is not None
        parser.parse(Line(2, row))


def test_a_bad_csv_header_is_one_error_naming_line_1_and_stops_even_when_skipping() -> None:
    """A typo in the header (audit: every data row was then re-read as a header and refused,
    "line 2: header names unknown column(s) ['', '10.0.0.1', …]", and the run ended with no
    visits, N bad and exit 0)."""
    rows = "".join(f"10.0.0.{i},{i},app,view,acme\n" for i in range(5))
    outcome = parse_lines(CsvParser(), split_text("ip,time,method,op,merchnat\n" + rows),
                          on_error="skip")
    assert outcome.visits == ()
    assert outcome.stopped and outcome.lines == 1
    [error] = outcome.errors
    assert isinstance(error, BadHeader) and error.line_no == 1
    assert error.unknown == ("merchnat",) and error.missing == ("merchant",)
    assert str(error).startswith("line 1: bad CSV header: unknown column(s) 'merchnat' (did you "
                                 "mean 'merchant'?); missing required column(s) ['merchant']")


def test_a_parser_whose_header_was_refused_never_takes_a_data_line_for_the_header() -> None:
    parser = CsvParser(default_merchant="acme")
    with pytest.raises(BadHeader, match=r"^line 2: bad CSV header: unknown column\(s\) '10\.0\.0\.1', "):
        parser.parse(Line(1, ""))  # blank lines before the header are fine
        parser.parse(Line(2, "10.0.0.1,5,app,view"))  # a file without its header
    for n in (3, 4):  # every later line gets the header's error, not a header error of its own
        with pytest.raises(BadHeader, match=r"^line 2: "):
            parser.parse(Line(n, "10.0.0.2,6,app,view"))
    assert parser.columns is None


def test_a_repeated_or_overlong_header_column_is_a_bad_header() -> None:
    with pytest.raises(BadHeader, match=r"column\(s\) named twice \['ip'\]"):
        CsvParser().parse(Line(1, "ip,ip,time,method,op,merchant"))
    with pytest.raises(BadHeader, match=r"^line 1: CSV header line is too long$"):
        CsvParser().parse(Line(1, "ip,", truncated=True))
    # A long unknown name (a data line taken for a header) is cut in the message.
    with pytest.raises(BadHeader) as info:
        CsvParser().parse(Line(1, "x" * 500))
    assert len(str(info.value)) < 400


def test_skip_policy_reports_and_goes_on() -> None:
    text = '{"ip":"1","time":1,"method":"app","op":"view","merchant":"m"}\nbad\n{"ip":"2","time":2,"method":"app","op":"view","merchant":"m"}\n'
    outcome = parse_lines(JsonLinesParser(), split_text(text), on_error="skip")
    assert [v.ip for v in outcome.visits] == ["1", "2"]
    assert [e.line_no for e in outcome.errors] == [2]
    assert (outcome.lines, outcome.stopped) == (3, False)


def test_stop_policy_keeps_what_was_accepted() -> None:
    text = '{"ip":"1","time":1,"method":"app","op":"view","merchant":"m"}\nbad\n{"ip":"2","time":2,"method":"app","op":"view","merchant":"m"}\n'
    outcome = parse_lines(JsonLinesParser(), split_text(text), on_error="stop")
    assert [v.ip for v in outcome.visits] == ["1"]
    assert [e.line_no for e in outcome.errors] == [2]
    assert (outcome.lines, outcome.stopped) == (2, True)


def test_truncated_line_is_refused() -> None:
    with pytest.raises(BadLine, match=r"^line 9: line is too long$"):
        JsonLinesParser().parse(Line(9, "{", truncated=True))


def test_detect_format_and_make_parser() -> None:
    assert detect_format('{"ip": 1}') == "jsonl"
    assert detect_format('1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5') == "combined"
    assert detect_format("ip,time,method,op") == "csv"
    parser = make_parser("combined", merchant="acme")
    visit = parser.parse(Line(1, '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5'))
    assert visit is not None and visit.merchant == "acme"
    with pytest.raises(ConfigError, match=r"^unknown input format 'xml'"):
        make_parser("xml")
