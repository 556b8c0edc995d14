"""IngestTracker: refusals mapped to input lines, the summary line and the run's outcome."""

from __future__ import annotations

from p2pmkt.ingest import BadHeader, BadLine, IngestTracker, line_span, refused_line

UNKNOWN = ("visit.pack: visit 2: merchant 'initech' is not on this chain (no member holds a role "
           "for it); ask the platform to add it")


def test_a_refusal_naming_visit_k_of_a_transaction_names_the_input_line_of_that_visit() -> None:
    # lines 4 and 6 were not visits (a static asset, a blank line): the batch skips them
    assert refused_line(UNKNOWN, (3, 5, 7, 8)) == 7
    assert refused_line("visit.pack: visit 0: …", (12,)) == 12
    assert refused_line("sender 0xab… has no terminal role", (3, 5)) is None
    assert refused_line("visit.pack: visit 9: …", (3, 5)) is None  # not this batch's
    assert line_span((7,)) == "line 7" and line_span((7, 9, 2004)) == "lines 7–2,004"


def test_a_refusal_at_submission_names_the_line_and_keeps_the_count_of_what_committed() -> None:
    t = IngestTracker()
    t.lines = 9
    t.sent(b"a", (1, 2))
    t.committed(1)
    refusal = t.refused_at_submission("unknown_merchant", UNKNOWN, (3, 4, 5, 6))
    assert refusal.line == 5 and not refusal.in_block
    report = refusal.describe("visits.jsonl")
    assert report[0].startswith("line 5: refused by the node at submission (unknown_merchant): "
                                "visit.pack: visit 2: merchant 'initech'")
    assert "the transaction of lines 3–6 was not committed" in report[1]
    assert "ingest it again from line 3 (e.g. `tail -n +3 visits.jsonl | p2pmkt visits ingest - …`)" in report[1]
    assert t.outcome() == "refused"
    assert t.summary() == ("9 lines read: 2 visits committed in 1 transaction, 0 skipped (not "
                           "visits), 0 bad; 4 visits read but not committed — stopped: the node "
                           "refused line 5")


def test_a_rejection_in_a_block_takes_the_transactions_after_it_down_too() -> None:
    t = IngestTracker()
    for txid, lines in ((b"a", (1,)), (b"b", (2,)), (b"c", (3,)), (b"d", (4, 5))):
        t.sent(txid, lines)
    t.committed(2)
    assert [s.txid for s in t.inflight] == [b"c", b"d"] and t.pending_visits == 3
    refusal = t.rejected_in_block("unknown_merchant", UNKNOWN.replace("visit 2", "visit 0"))
    assert (refusal.line, refusal.later, refusal.in_block) == (3, (4, 5), True)
    assert t.inflight == () and t.committed_visits == 2
    assert "nor were those sent after it (lines 4–5)" in refusal.describe()[1]
    assert "`tail" not in refusal.describe()[1]  # standard input: no file to tail


def test_an_earlier_rejection_in_a_block_outranks_a_later_refusal_at_submission() -> None:
    t = IngestTracker()
    t.sent(b"a", (1,))
    t.refused_at_submission("unknown_merchant", "visit.pack: visit 0: …", (2,))
    refusal = t.rejected_in_block("missing_role", "sender may not send visit.pack")
    assert (refusal.lines, refusal.line, refusal.later) == ((1,), None, (2,))
    # The key lacks the role: nothing is wrong with the input.
    assert refusal.describe()[1].endswith(
        "nothing of the input is on the chain: use a key that holds the terminal role and ingest it again")


def test_the_advice_to_resume_keeps_a_csv_header() -> None:
    t = IngestTracker()
    t.sent(b"a", (2, 3))
    t.committed(2)
    refusal = t.refused_at_submission("unknown_merchant", UNKNOWN, (4, 5, 6))
    advice = refusal.describe("visits.csv", csv=True)[1]
    assert "(e.g. `(head -n 1 visits.csv; tail -n +4 visits.csv) | p2pmkt visits ingest - …`)" in advice
    # Refused from the first data line on: all of it again, header and all.
    first = IngestTracker().refused_at_submission("unknown_merchant", UNKNOWN, (2, 3, 4))
    assert first.describe("visits.csv", csv=True)[1].endswith(
        "nothing of the input is on the chain: fix it and ingest it again")


def test_exit_outcomes() -> None:
    empty = IngestTracker()
    assert empty.outcome() == "ok"  # nothing to ingest is not a failure
    assert empty.summary() == "0 lines read: 0 visits committed in 0 transactions, 0 skipped (not visits), 0 bad"

    all_bad = IngestTracker()
    all_bad.lines = 3
    all_bad.skipped = 1
    for n in (1, 2):
        assert not all_bad.bad_line(BadLine(n, "missing field 'time'"), stop=False)
    assert all_bad.outcome() == "bad_input"  # audit: 0 visits, 2,474 bad was exit 0
    assert all_bad.summary().endswith("— nothing ingested: every line that was not skipped was bad")

    some_bad = IngestTracker()
    some_bad.bad_line(BadLine(1, "x"), stop=False)
    some_bad.sent(b"a", (2,))
    some_bad.committed(1)
    assert some_bad.outcome() == "ok"  # bad lines skipped as asked, the rest is on the chain

    stopped = IngestTracker()
    assert stopped.bad_line(BadLine(4, "x"), stop=True)
    assert stopped.outcome() == "bad_input"
    assert stopped.summary().endswith("— stopped at the first bad line (line 4)")

    header = IngestTracker()
    assert header.bad_line(BadHeader(1, "bad CSV header: …"), stop=False)  # skip or not
    assert header.outcome() == "bad_input"
    assert header.summary().endswith("— stopped: line 1 is not a usable CSV header")

    interrupted = IngestTracker()
    interrupted.sent(b"a", (1, 2, 3))
    interrupted.interrupted = True
    assert interrupted.outcome() == "interrupted"
    assert interrupted.summary() == (
        "0 lines read: 0 visits committed in 0 transactions, 0 skipped (not visits), 0 bad; 3 "
        "visits in 1 transaction sent, not yet seen committed (the node keeps them) — interrupted")
