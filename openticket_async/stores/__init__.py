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

A checkout claims its cart first (:meth:`ReservationStore.claim_cart`): a
claim with a lease and a fencing token. While it is held no other worker
checks the cart out, and a shared store hands out no due action of the cart's
holds, to any worker: those are put back until the claim ends (the claimer's
checkout pauses them anyway, and so a worker that dies mid-checkout leaves
its holds' plans as they were). The claim ends when
the checkout releases it (once the order's outcome is recorded) or, when the
worker died, by itself once its lease runs out; the checking-out manager
extends it meanwhile.

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
from .._exceptions import UsageError
from .._hold import Hold
from .._schedule import DeadlineQueue

__all__ = [
    "CartClaim",
    "CartTaken",
    "Due",
    "EventSink",
    "MemoryStore",
    "MonitoredStore",
    "ReservationStore",
    "claim_lease",
]

#: A claim's lease is this share of ``renew_before``, leaving the rest for a takeover.
LEASE_FRACTION = 1 / 3
#: How often a manager on a shared store looks for work other processes made due;
#: the store's heartbeat of the renewals in hand rides on those polls.
SHARED_POLL = 0.5
#: The shortest lease: twice a shared store's poll interval, so the holder's
#: heartbeat always comes before its lease lapses.
MIN_LEASE = 2 * SHARED_POLL


def claim_lease(policy: HoldPolicy) -> float:
    """The default lease of a claim under ``policy``: ``max(renew_before / 3, 1 s)``.

    Holds (a shared store's claims of due work) and carts (checkouts) use it alike.
    """
    return max(policy.renew_before * LEASE_FRACTION, MIN_LEASE)


@attrs.frozen
class Due:
    """One claimed piece of due work: ``action`` on ``hold``, due at ``due``.

    ``fence`` orders claims of the same hold: a write-back carrying an older
    fence than the hold's latest claim is refused by a shared store.

    ``lapsed`` and ``takeover`` say how a shared store's claim came by the hold
    (both False in a store of one process). The hold's previous claim was never
    written back (a renewal still on the wire, or a worker gone between its
    claim and its write-back) and:

    - ``lapsed``: the lease of that claim had run out, whoever held it;
    - ``takeover``: that claim was another worker's (one that died, stalled, or
      closed while its renewal ran). A takeover is always a lapse too: a claim
      never takes a hold from a worker whose lease still runs.

    A claim of a hold whose last claim was written back (a plan saved by any
    worker) is neither: that is how a fleet shares its due work.
    """

    hold: Hold
    action: str
    due: float
    fence: int = 0
    lapsed: bool = False
    takeover: bool = False


@attrs.frozen
class CartClaim:
    """A cart claimed for checkout: nobody else checks it out or renews its holds.

    ``fence`` is the claim's fencing token: it grows with every claim of the
    cart, and extending or releasing needs the current one, so a worker whose
    claim lapsed and was taken over cannot touch the new holder's. ``lease`` is
    how long (seconds) the claim lasts unless it is extended.
    """

    cart_id: str
    fence: int
    lease: float


@attrs.frozen
class CartTaken:
    """Why a cart could not be claimed now.

    ``checkout`` is True when another checkout holds the cart (its outcome is
    not known yet), False when another worker has one of the cart's holds in
    hand (a renewal on the wire: it is back within one reserve call).
    ``free_in`` is the most seconds that lasts unless its holder extends it.
    """

    cart_id: str
    checkout: bool
    free_in: float


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
class MonitoredStore(Protocol):
    """A store that can say whether its backend answers (optional to implement).

    The manager reads :attr:`available` after each pass of its scheduler over a
    shared store: ``manager.stats().store`` and the outage log lines and
    ``openticket.store.unavailable`` counter come from it. A shared store
    without it is taken as always available.
    """

    @property
    def available(self) -> bool:
        """False while the backend cannot be reached (the last attempt failed); cheap,
        never waits on the network."""
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

    async def claim_cart(self, cart_id: str, lease: float) -> CartClaim | CartTaken:
        """Claim cart ``cart_id`` for a checkout, for ``lease`` seconds.

        Returns a :class:`CartClaim`, or :class:`CartTaken` while another claim
        of the cart is held (this store's own included: claims do not nest) or,
        in a shared store, while another worker has one of its holds in hand.
        """
        ...

    async def extend_cart_claim(self, claim: CartClaim) -> bool:
        """Make ``claim`` last its lease from now (the holder's heartbeat).

        Returns False if it is no longer held: released, or lapsed.
        """
        ...

    async def release_cart(self, claim: CartClaim) -> bool:
        """End ``claim``. Returns False if it was no longer this claim to end
        (it lapsed and the cart was claimed again since)."""
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
    #: In the process: always there (see :class:`MonitoredStore`).
    available = True

    def __init__(self) -> None:
        self._queue: DeadlineQueue[Hold, str] = DeadlineQueue()
        self._carts: dict[str, dict[str, Hold]] = {}
        # cart id -> (fence, lease end on the clock) of its claim; fences come from
        # one counter, so a fence is never reused even after its entry is gone
        self._claims: dict[str, tuple[int, float]] = {}
        self._fences = 0
        self._clock: Clock | None = None

    def bind(self, clock: Clock, policy: HoldPolicy) -> None:
        del policy  # due times are the manager's own clock readings; no lease for holds
        self._clock = clock

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
            # cart_index inlined: this runs once for every hold a cart adds
            cart = self._carts.get(hold.cart_id)
            if cart is None:
                cart = self._carts[hold.cart_id] = {}
            cart[hold.id] = hold
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

    # -- cart claims: one process, so only other checkouts of this store contend ---------

    def _now(self) -> float:
        if self._clock is None:
            raise UsageError("bind the MemoryStore to a clock first (the manager does)")
        return self._clock.now()

    async def claim_cart(self, cart_id: str, lease: float) -> CartClaim | CartTaken:
        now = self._now()
        _fence, until = self._claims.get(cart_id, (0, 0.0))
        if until > now:
            return CartTaken(cart_id, checkout=True, free_in=until - now)
        self._fences += 1
        self._claims[cart_id] = (self._fences, now + lease)
        return CartClaim(cart_id, self._fences, lease)

    async def extend_cart_claim(self, claim: CartClaim) -> bool:
        now = self._now()
        fence, until = self._claims.get(claim.cart_id, (0, 0.0))
        if fence != claim.fence or until <= now:
            return False
        self._claims[claim.cart_id] = (fence, now + claim.lease)
        return True

    async def release_cart(self, claim: CartClaim) -> bool:
        fence, _until = self._claims.get(claim.cart_id, (0, 0.0))
        if fence != claim.fence:
            return False
        del self._claims[claim.cart_id]
        return True

    async def aclose(self) -> None:
        self._queue.clear()
        self._carts.clear()
        self._claims.clear()
