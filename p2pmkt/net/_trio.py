"""``TaskStatus`` for annotations.

py-libp2p pulls in ``trio-typing``, whose ``trio-stubs`` package shadows trio's own inline
types for mypy; those stubs declare ``nursery.start`` against ``trio_typing.TaskStatus``
and do not export ``trio.TaskStatus``. Import it from here so annotations check either way.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_typing import TaskStatus as TaskStatus
else:
    from trio import TaskStatus as TaskStatus

__all__ = ["TaskStatus"]
