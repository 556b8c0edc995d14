"""The benchmark scripts live in ``tools/``, which is not an installed package: import them
from the checkout's root, as the chaos tests do."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
