"""Public surface of p2pmkt.chain / p2pmkt.market, and import order independence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import p2pmkt.chain
import p2pmkt.market


@pytest.mark.parametrize("package", [p2pmkt.chain, p2pmkt.market])
def test_every_exported_name_resolves(package: object) -> None:
    for name in package.__all__:  # type: ignore[attr-defined]
        assert getattr(package, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'p2pmkt.chain' has no attribute 'nope'$"):
        p2pmkt.chain.nope  # noqa: B018


@pytest.mark.parametrize("first", ["p2pmkt.market", "p2pmkt.market.apply", "p2pmkt.chain.apply",
                                   "p2pmkt.chain.validation", "p2pmkt.chain", "p2pmkt.market.model"])
def test_any_import_order_works(first: str) -> None:
    """chain.apply composes chain with market; no import order may hit a partial module."""
    code = f"import {first}; from p2pmkt.chain import apply_block; import p2pmkt.market; print('ok')"
    repo = Path(p2pmkt.chain.__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=repo)
    assert out.returncode == 0, out.stderr
