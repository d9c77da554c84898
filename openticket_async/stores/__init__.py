"""Where the ReservationManager keeps hold state and the due queue.

A store holds, for every live hold, the hold itself and its *one* pending action
(warn, renew, drop, ...) with the time it is due. The manager's scheduler asks
the store for what is due (``claim_due``), acts, and writes the next action back
(``save``) or ends the hold (``forget``). Deciding *what* to do stays in the
manager; the store only remembers and hands out due work.

Two implementations satisfy :class:`ReservationStore`:

- :class:`MemoryStore` (the default): one process, due times on the manager's
  monotonic clock, claims need no lease.
- ``openticket_async.stores.redis.RedisStore`` (``[redis]`` extra): several
  processes share carts; due times are wall-clock epoch seconds so they mean the
  same in every process, and a claim carries a lease and a fencing token so a
  crashed worker's holds come due again for another.

A shared store also carries the manager's hold events to the other processes:
its ``event_sink`` is where the manager sends each event it emits. It is part
of the protocol, None for a store that keeps events in the process (such as
:class:`MemoryStore`), rather than a method the manager has to look for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import attrs

from .._clock import Clock
from .._config import HoldPolicy
from .._events import HoldEvent
from .._hold import Hold
from .._schedule import DeadlineQueue

__all__ = ["Due", "EventSink", "MemoryStore", "ReservationStore"]


@attrs.frozen
class Due:
    """One claimed piece of due work: ``action`` on ``hold``, due at ``due``.

    ``fence`` orders claims of the same hold: a write-back carrying an older
    fence than the hold's latest claim is refused by a shared store.
    """

    hold: Hold
    action: str
    due: float
    fence: int = 0


class EventSink(Protocol):
    """Where a store sends the hold events the manager emits, for other processes to see.

    The manager calls :meth:`publish` from its scheduler, so it must neither
    block nor wait on the network: a sink queues the event and sends it on in
    the background.
    """

    def publish(self, event: HoldEvent) -> None:
        """Send ``event`` on in the background; never blocks."""
        ...


@runtime_checkable
class ReservationStore(Protocol):
    """What the ReservationManager needs from a store.

    ``shared`` tells the manager whether other processes see the same holds;
    when True, due times are wall-clock epoch seconds, otherwise readings of the
    manager's monotonic clock.
    """

    shared: bool

    @property
    def event_sink(self) -> EventSink | None:
        """Where the manager publishes every hold event it emits; None: nowhere.

        Read-only in the protocol, so a store may declare it as a plain
        attribute of a narrower type (None, or its own sink).
        """
        ...

    def bind(self, clock: Clock, policy: HoldPolicy) -> None:
        """Give the store the manager's clock and policy (once, when the manager starts).

        A shared store derives its claim lease from the policy's renewal lead.
        """
        ...

    async def save(self, hold: Hold, action: str, due: float, fence: int = 0) -> bool:
        """Record ``hold`` and make ``action`` at ``due`` its one pending action.

        Returns False if a shared store refused a stale write-back (``fence``
        older than the hold's latest claim); the hold then belongs to another
        worker.
        """
        ...

    async def forget(self, hold: Hold, fence: int = 0) -> bool:
        """Remove a hold that reached a terminal state, with its pending action.

        Returns False if a shared store refused a stale end (another worker has
        claimed the hold since, and it decides how the hold ends).
        """
        ...

    async def claim_due(self, now: float, limit: int) -> list[Due]:
        """Take up to ``limit`` actions due at or before ``now``, earliest first."""
        ...

    async def next_due(self) -> float | None:
        """When the earliest pending action is due, or None if there is none."""
        ...

    async def cart_holds(self, cart_id: str) -> list[Hold]:
        """The live holds of a cart, oldest first."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources (connections)."""
        ...


class MemoryStore:
    """The in-process store: a :class:`DeadlineQueue` and a dict of carts.

    Holds and their queue entries are plain object references, so a hold costs
    one queue entry and one dict slot here. Nothing survives the process.

    A cart's dict of holds lives until :meth:`drop_cart`, even when empty: the
    manager's :class:`~openticket_async.Cart` shares it (:meth:`cart_index`)
    rather than keeping a second dict of the same holds.
    """

    shared = False
    #: Events stay in this process: the manager's callbacks and streams get them.
    event_sink = None

    def __init__(self) -> None:
        self._queue: DeadlineQueue[Hold, str] = DeadlineQueue()
        self._carts: dict[str, dict[str, Hold]] = {}

    def bind(self, clock: Clock, policy: HoldPolicy) -> None:
        del clock, policy  # due times are the manager's own clock readings; no lease

    async def save(self, hold: Hold, action: str, due: float, fence: int = 0) -> bool:
        del fence
        self.put(hold, action, due)
        return True

    def cart_index(self, cart_id: str) -> dict[str, Hold]:
        """The live dict of the holds of cart ``cart_id`` (made if new), id to hold.

        It stays the cart's dict until :meth:`drop_cart`; the store adds and
        removes holds in it as they are saved and forgotten.
        """
        cart = self._carts.get(cart_id)
        if cart is None:
            cart = self._carts[cart_id] = {}
        return cart

    def drop_cart(self, cart_id: str) -> None:
        """Forget cart ``cart_id``'s dict (its holds must have been forgotten)."""
        self._carts.pop(cart_id, None)

    def put(self, hold: Hold, action: str, due: float) -> None:
        """Synchronous :meth:`save`, for callers that know they hold a MemoryStore."""
        entry = hold._entry
        if entry is not None:
            # a popped entry is dead already: cancel is then a no-op
            self._queue.cancel(entry)  # type: ignore[arg-type]
        else:
            self.cart_index(hold.cart_id)[hold.id] = hold
        hold._entry = self._queue.push(due, hold, action)

    async def forget(self, hold: Hold, fence: int = 0) -> bool:
        del fence
        self.remove(hold)
        return True

    def remove(self, hold: Hold) -> None:
        """Synchronous :meth:`forget`."""
        entry = hold._entry
        if entry is not None:
            self._queue.cancel(entry)  # type: ignore[arg-type]
            hold._entry = None
        cart = self._carts.get(hold.cart_id)
        if cart is not None:
            cart.pop(hold.id, None)

    async def claim_due(self, now: float, limit: int) -> list[Due]:
        return [Due(hold, action, due) for due, hold, action in self.pop_due(now, limit)]

    def pop_due(self, now: float, limit: int) -> list[tuple[float, Hold, str]]:
        """Synchronous :meth:`claim_due` without the :class:`Due` wrappers.

        A claimed hold stays in its cart until forgotten; its ``_entry`` still
        names the popped (now dead) entry, which the next put or remove skips.
        """
        return self._queue.pop_due(now, limit)

    async def next_due(self) -> float | None:
        return self._queue.next_deadline()

    def peek_due(self) -> float | None:
        """Synchronous :meth:`next_due`."""
        return self._queue.next_deadline()

    async def cart_holds(self, cart_id: str) -> list[Hold]:
        return list(self._carts.get(cart_id, {}).values())

    def holds(self) -> Iterable[Hold]:
        """Every live hold in the store."""
        for cart in self._carts.values():
            yield from cart.values()

    def __len__(self) -> int:
        return sum(len(cart) for cart in self._carts.values())

    async def aclose(self) -> None:
        self._queue.clear()
        self._carts.clear()
