"""Built-in indicator contracts: AssemblyScript sources in ``assembly/``, binaries in ``wasm/``.

Each built-in is an ordinary contract (same ABI, same limits, deployed by hash like any
merchant's), so the engine has no special cases. The committed ``.wasm`` files are what nodes
run; ``build.py`` reproduces them byte for byte from the sources and a test enforces that.

=====================  ===========================================  =====
name                   output values                                scale
=====================  ===========================================  =====
page_views             page_views: records with op "view"           0
unique_visitors        unique_visitors: distinct account-else-IP    0
conversion_rate        conversion_rate: orders / records            6
average_order_value    average_order_value: order amount / orders   2
add_to_cart_rate       add_to_cart_rate: "cart" records / records   6
access_method_share    browser, desktop, app: share of records      6
repeat_visit_rate      repeat_visit_rate: visitors with >= 2        6
                       sessions / visitors (param session_gap_ms)
=====================  ===========================================  =====
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["BUILTINS", "BUILTIN_DIR", "builtin_code", "builtin_hash"]

BUILTIN_DIR = Path(__file__).resolve().parent

BUILTINS: tuple[str, ...] = (
    "page_views",
    "unique_visitors",
    "conversion_rate",
    "average_order_value",
    "add_to_cart_rate",
    "access_method_share",
    "repeat_visit_rate",
)


def builtin_code(name: str) -> bytes:
    """Return the committed module bytes of built-in ``name``.

    Raises:
        KeyError: ``name`` is not in :data:`BUILTINS`.
    """
    if name not in BUILTINS:
        raise KeyError(f"no built-in indicator {name!r}; known: {', '.join(BUILTINS)}")
    return (BUILTIN_DIR / "wasm" / f"{name}.wasm").read_bytes()


def builtin_hash(name: str) -> bytes:
    """Return ``sha256`` of built-in ``name``'s module: its code hash on chain."""
    return hashlib.sha256(builtin_code(name)).digest()
