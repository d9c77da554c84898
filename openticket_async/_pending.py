"""Store work that may or may not need awaiting.

The manager's steps that touch the store (plan, save, end, fire) return a
:data:`Pending`: None when the work is already done, which is always the case
with the default :class:`~openticket_async.stores.MemoryStore` (driven without
awaits, so the per-hold paths cost no coroutines), or the awaitable that does
the rest with a store reached by awaits. Callers in async code finish it with
:func:`settle`; hot paths test for None inline.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeAlias

__all__ = ["Pending", "settle"]

Pending: TypeAlias = Awaitable[None] | None


async def settle(step: Pending) -> None:
    """Finish a step's store work, if any is left to await."""
    if step is not None:
        await step
