"""Raft test options: ``pytest tests/raft --rewrite`` regenerates tests/raft/testdata/*.txt.

(The option is registered here, so pass ``tests/raft`` on the command line with it.)
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite",
        action="store_true",
        default=False,
        help="rewrite Raft transcript expectations in tests/raft/testdata (review the diff!)",
    )


@pytest.fixture
def rewrite(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--rewrite"))
