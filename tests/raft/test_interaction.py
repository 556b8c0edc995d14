"""Golden transcripts (tests/raft/testdata/*.txt), etcd-style. ``pytest --rewrite`` regenerates
the expected output; review the diff before committing."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pmkt.testing.interaction import run_transcript

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_transcript(path: Path, rewrite: bool) -> None:
    want, got = run_transcript(path)
    if rewrite:
        path.write_text(got)
        return
    assert got == want, f"{path.name} differs; rerun with --rewrite and review the diff"
