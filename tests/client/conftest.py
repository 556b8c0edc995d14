"""Client tests reuse the in-process fake node of tests/net."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "net"))

from netfixtures import node

__all__ = ["node"]
