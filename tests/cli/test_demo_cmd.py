"""``p2pmkt demo --offline``: the demo loop without a chain (issue 6 item 4)."""

from __future__ import annotations

import json

from p2pmkt.cli.demo_cmd import offline_rounds

from ._procs import run_cli


def test_offline_demo_moves_acme_from_below_to_on_target_and_leaves_globex_alone() -> None:
    rows = offline_rounds(seed=1, rounds=8)
    assert sorted(rows) == ["acme", "globex", "initech"]
    acme = rows["acme"]
    assert acme[0]["missed"] and acme[0]["fired"] and acme[0]["version"] == 1
    assert not acme[-1]["missed"] and acme[-1]["version"] > 1
    assert [r["version"] for r in acme] == sorted(r["version"] for r in acme)
    assert all(not r["missed"] and not r["fired"] and r["version"] == 1 for r in rows["globex"])


def test_offline_demo_from_the_command_line_is_reproducible() -> None:
    first = run_cli("demo", "--offline", "--rounds", 3, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == offline_rounds(seed=1, rounds=3)
    text = run_cli("demo", "--offline", "--rounds", 3)
    assert text.returncode == 0, text.stderr
    assert "acme: conversion per 10-minute reporting window, target at least 2.00%" in text.stdout
    assert "  window 0: " in text.stdout and "MISSED" in text.stdout and "rules fired: " in text.stdout
    bad = run_cli("demo", "--offline", "--rounds", 0)
    assert bad.returncode == 2 and bad.stderr == "error: --rounds must be at least 1\n"


def test_live_view_does_not_round_a_miss_onto_the_target() -> None:
    from p2pmkt.cli.watch import _percent

    assert _percent(19_983, 6, missed=True) == "1.998%"  # target 2.00 %: "2.00% MISSED" read wrong
    assert _percent(19_983, 6, missed=False) == "2.00%"
    assert _percent(18_900, 6, missed=True) == "1.89%"
