"""Real-libp2p fixtures live in netfixtures.py so tests/client can share them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from netfixtures import dialer, node

__all__ = ["dialer", "node"]
