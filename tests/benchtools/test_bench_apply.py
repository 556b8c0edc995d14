"""The apply benchmark runs end to end and prints its figures (a smoke run, not a timing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench" / "apply.py"


def test_apply_bench_prints_rate_bound_and_ratio(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--blocks", "2", "--block-txs", "20", "--senders", "5",
         "--visit-blocks", "1", "--visit-txs", "1", "--batch-visits", "10", "--bound-sigs", "100",
         "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    figures = {
        name: float(value.replace(",", ""))
        for name, value in re.findall(r"^(applied|bound|sigs|floor):\s+([\d,]+)", out.stdout, re.M)
    }
    assert set(figures) == {"applied", "bound", "sigs", "floor"}, out.stdout
    assert all(v > 0 for v in figures.values()), figures
    ratio = re.search(r"^ratio:\s+(\d+)% of the bound", out.stdout, re.M)
    assert ratio is not None, out.stdout
    # The figures are printed rounded, so the ratio recomputed from them may differ by one.
    assert abs(int(ratio.group(1)) - 100 * figures["applied"] / figures["bound"]) <= 1, out.stdout
    assert "visits applied per second" in out.stdout
    assert list(tmp_path.iterdir()) == [], "the bench left its throwaway stores behind"
