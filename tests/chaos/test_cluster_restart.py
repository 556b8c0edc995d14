"""The chaos cluster's own bookkeeping (no node runs here: ``subprocess.Popen`` is replaced by
a stand-in that starts ``sleep`` and records the command line a node would have had)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.chaos.cluster import Cluster  # noqa: E402


def test_a_restart_without_arguments_keeps_those_of_the_nodes_previous_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The long chaos run stopped with "no leader within 60 s: not all answer: node3": its
    map-full victim, restarted with ``--max-map-size 1GiB``, was later killed by a ``kill``
    fault and restarted without it, filled its small map again and stopped."""
    real_popen = subprocess.Popen
    argvs: list[list[str]] = []

    def popen(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        argvs.append([str(a) for a in argv])
        return real_popen(["sleep", "60"], stdin=subprocess.DEVNULL, start_new_session=True)

    monkeypatch.setattr(subprocess, "Popen", popen)
    with Cluster(root=tmp_path / "net", submitters=1, rules=False) as cl:
        cl.start()
        cl.kill("node4")
        cl.start(["node4"], args=("--max-map-size", "1GiB"))
        cl.kill("node4")
        cl.start(["node4"])  # a later fault's restart: no arguments of its own
        cl.kill("node2")
        cl.start(["node2"])
    node4 = [a for a in argvs if any("node4" in part for part in a)]
    node2 = [a for a in argvs if any("node2" in part for part in a)]
    assert [a[-2:] for a in node4[1:]] == [["--max-map-size", "1GiB"]] * 2, node4
    assert "--max-map-size" not in node4[0] and all("--max-map-size" not in a for a in node2), argvs
