"""Fast construction of frozen, slotted dataclasses on the block-application hot path.

A frozen dataclass's generated ``__init__`` sets every field through
``object.__setattr__`` (to get past the frozen ``__setattr__``), about 0.2 us a field. Block
application builds several such values per transaction (``Transaction``,
``SignedTransaction``, ``Visit``, ``Receipt``), which came to ~3 us of each transaction's
~30 us of bookkeeping. :func:`slot_builder` returns a constructor that writes the slots
through their descriptors instead: the same object (same fields, equality and hash), built
in about 40 % of the time.

Only for classes without ``__post_init__`` and only where the caller passes every field, in
declaration order, already validated (``__init__`` does no checking either).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["slot_builder"]


def slot_builder(cls: type[T]) -> Callable[..., T]:
    """Return ``build(*fields) -> cls`` for a frozen, slotted dataclass ``cls``.

    Raises:
        TypeError: ``cls`` is not a slotted dataclass, or it has a ``__post_init__``.
    """
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__, which slot_builder would skip")
    names = [f.name for f in dataclasses.fields(cls)]
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    scope.update({f"set_{n}": cls.__dict__[n].__set__ for n in names})
    # Unrolled like dataclasses' own generated __init__ (a loop over setters costs more).
    body = "".join(f"    set_{n}(obj, {n})\n" for n in names)
    exec(f"def build({', '.join(names)}):\n    obj = new(cls)\n{body}    return obj\n", scope)
    build: Callable[..., T] = scope["build"]
    build.__qualname__ = f"slot_builder({cls.__qualname__})"
    return build
