"""LineTailer reassembly and Batcher grouping, with property tests for both."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.errors import ConfigError
from p2pmkt.ingest import Batcher, BatcherConfig, Line, LineTailer, estimate_visit_bytes, split_text
from p2pmkt.market.model import Visit


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=30), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=15),
    final_newline=st.booleans(),
)
def test_tailer_reassembles_any_chunking(lines: list[str], cuts: list[int], final_newline: bool) -> None:
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    data = text.encode("utf-8")
    tailer = LineTailer()
    got: list[Line] = []
    for chunk in chunked(data, cuts):
        got.extend(tailer.feed(chunk))
    got.extend(tailer.close())
    assert got == split_text(text)
    assert tailer.pending_bytes == 0


def test_tailer_keeps_partial_line_and_handles_crlf() -> None:
    tailer = LineTailer()
    assert tailer.feed(b"one\r\ntw") == [Line(1, "one")]
    assert tailer.pending_bytes == 2
    assert tailer.feed("o \u00e9".encode()[:-1]) == []  # half of a UTF-8 character
    assert tailer.feed("\u00e9\n".encode()[1:]) == [Line(2, "two \u00e9")]
    assert tailer.next_line_no == 3
    assert tailer.close() == []


def test_tailer_bounds_long_lines() -> None:
    tailer = LineTailer(max_line_bytes=4)
    assert tailer.feed(b"abcdefgh") == []
    assert tailer.pending_bytes == 4
    assert tailer.feed(b"ij\nok\n") == [Line(1, "abcd", truncated=True), Line(2, "ok")]


def test_tailer_reset_after_rotation() -> None:
    tailer = LineTailer()
    tailer.feed(b"a\nparti")
    tailer.reset()
    assert tailer.feed(b"b\n") == [Line(1, "b")]


def visit(n: int, item: str = "") -> Visit:
    return Visit(f"10.0.0.{n % 250}", "", n, "acme", "browser", "view", item)


def test_batch_closes_by_count() -> None:
    batcher = Batcher(BatcherConfig(max_visits=3, max_delay=10))
    assert batcher.add(visit(1), 0.0) == []
    assert batcher.add(visit(2), 0.1) == []
    [batch] = batcher.add(visit(3), 0.2)
    assert (batch.visits, batch.reason, batch.opened_at, batch.closed_at) == (
        (visit(1), visit(2), visit(3)), "count", 0.0, 0.2)
    assert batcher.pending == 0 and batcher.next_deadline() is None


def test_batch_closes_by_time() -> None:
    batcher = Batcher(BatcherConfig(max_visits=100, max_delay=0.5))
    batcher.add(visit(1), 10.0)
    batcher.add(visit(2), 10.3)
    assert batcher.next_deadline() == 10.5
    assert batcher.poll(10.49) == []
    [batch] = batcher.poll(10.5)
    assert (len(batch.visits), batch.reason) == (2, "time")


def test_late_add_closes_expired_batch_first() -> None:
    batcher = Batcher(BatcherConfig(max_visits=100, max_delay=0.5))
    batcher.add(visit(1), 0.0)
    [batch] = batcher.add(visit(2), 3.0)
    assert batch.visits == (visit(1),) and batch.reason == "time"
    assert batcher.next_deadline() == 3.5


def test_batch_closes_by_size() -> None:
    big = visit(1, item="x" * 200)
    limit = 2 * estimate_visit_bytes(big) + 10
    batcher = Batcher(BatcherConfig(max_visits=100, max_bytes=limit, max_delay=1))
    batcher.add(big, 0)
    batcher.add(big, 0)
    [batch] = batcher.add(big, 0)
    assert (len(batch.visits), batch.reason) == (2, "bytes")
    assert batch.size <= limit


def test_visit_size_estimate_is_an_upper_bound() -> None:
    from p2pmkt.wire.cbor import encode

    for v in (visit(1), Visit("::1", "\u00e9" * 256, 2**53, "m" * 64, "desktop", "order", "i" * 256, 10**15)):
        assert len(encode(v.to_wire())) <= estimate_visit_bytes(v)


def test_flush_and_bad_config() -> None:
    batcher = Batcher()
    assert batcher.flush(0) == []
    batcher.add(visit(1), 0)
    assert [b.reason for b in batcher.flush(0)] == ["flush"]
    with pytest.raises(ConfigError, match=r"^batch max_visits must be at least 1, got 0$"):
        Batcher(BatcherConfig(max_visits=0))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["add", "poll"]), st.floats(min_value=0, max_value=0.3),
                  st.integers(min_value=0, max_value=40)),
        max_size=80,
    ),
    max_visits=st.integers(min_value=1, max_value=7),
    max_bytes=st.integers(min_value=1, max_value=400),
    max_delay=st.floats(min_value=0.01, max_value=1.0),
)
def test_batcher_never_loses_or_duplicates(
    steps: list[tuple[str, float, int]], max_visits: int, max_bytes: int, max_delay: float
) -> None:
    config = BatcherConfig(max_visits=max_visits, max_bytes=max_bytes, max_delay=max_delay)
    batcher = Batcher(config)
    now, added, out = 0.0, [], []
    for i, (kind, dt, item_len) in enumerate(steps):
        now += dt
        if kind == "add":
            v = visit(i, "i" * item_len)
            added.append(v)
            out.extend(batcher.add(v, now, line=i + 1))
        else:
            out.extend(batcher.poll(now))
        deadline = batcher.next_deadline()
        assert deadline is None or deadline > now  # nothing overdue is left pending
    out.extend(batcher.flush(now))
    assert [v for b in out for v in b.visits] == added
    # each visit's input line travels with it (how a refusal of "visit K" names its line)
    assert [(v, n) for b in out for v, n in zip(b.visits, b.lines, strict=True)] == [
        (v, v.time + 1) for v in added]
    for b in out:
        assert 1 <= len(b.visits) <= max_visits
        assert b.size <= max_bytes or len(b.visits) == 1
        assert b.closed_at - b.opened_at <= max_delay or b.reason in ("time", "flush")
