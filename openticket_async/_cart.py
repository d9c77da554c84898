"""Cart: the holds of one customer in one shop, and its checkout.

A cart is made by ``ReservationManager.cart()``. Every cart call counts as use
(``touch``) for ``HoldPolicy.idle_timeout``. Leaving ``async with`` closes the
cart: its live holds are released, unless the manager's store is shared (then
the cart lives on for the next request or worker; ``await cart.close()``
releases explicitly).

A checkout holds its cart's claim in the store from before it looks at the
holds until their outcome is recorded: a second checkout of the cart, here or
in another worker, raises :class:`~openticket_async.CheckoutInProgress` at once
rather than waiting for the first one's order (a web request should not hang
on another request's payment), and no other worker renews the holds meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Protocol

import anyio

from ._checkout import CheckoutClaims
from ._clock import Clock
from ._config import HoldPolicy
from ._exceptions import CheckoutInProgress, HoldsNotReady, InvalidArgument, UsageError
from ._hold import Hold, HoldState
from ._holdlog import log_checkout
from ._lifecycle import Close, Remove
from ._models import Order, Receiver, Reservation
from ._pending import Pending, settle
from ._planning import local_deadline
from ._ports import ReservingClient
from ._protocol import guid
from .stores import ReservationStore

__all__ = ["Cart", "CartHost"]


class CartHost(Protocol):
    """What a cart needs from the manager that made it (``ReservationManager``).

    Every change to a hold goes through the host, which feeds it to the
    lifecycle: a cart never sets a hold's state itself.
    """

    client: ReservingClient
    clock: Clock
    policy: HoldPolicy
    store: ReservationStore
    _checkouts: CheckoutClaims

    def _check_open(self) -> None: ...

    def _new_hold_id(self) -> str: ...

    def _reserve(self, shop_guid: str, ticket_guid: str, sent: float) -> Awaitable[Reservation]: ...

    def _track(self, hold: Hold) -> Pending: ...

    def _step(self, hold: Hold, inp: Remove | Close) -> Pending: ...

    def _checkout_started(self, holds: Sequence[Hold]) -> Pending: ...

    def _checkout_ended(self, holds: Sequence[Hold], order: Order | None) -> Pending: ...


    def _forget_cart(self, cart: Cart) -> None: ...

#: The most units one ``add`` call may reserve (each is one reserve call).
MAX_QUANTITY = 100

_REMOVE = Remove()  # inputs without fields are shared, not made per call


class Cart:
    """The holds a customer keeps in one shop until checkout.

    Not made directly: use ``manager.cart(shop_guid)``.
    """

    def __init__(
        self,
        manager: CartHost,
        shop_guid: str,
        *,
        cart_id: str,
        holds: dict[str, Hold] | None = None,
    ) -> None:
        self.id = cart_id
        self.shop_guid = guid(shop_guid, "shop_guid")
        self._manager = manager
        # id -> hold; the default store lends its own dict of the cart, so each
        # hold costs one dict slot, not two
        self._holds: dict[str, Hold] = {} if holds is None else holds
        self.touched_at = manager.clock.now()
        self.paused = False
        self._closed = False
        self._order: Order | None = None
        self._renewal_done: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"Cart(id={self.id!r}, shop_guid={self.shop_guid!r}, holds={len(self._holds)})"

    async def __aenter__(self) -> Cart:
        await self.load()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._manager.store.shared:
            await self.close()

    async def load(self) -> None:
        """Pick up holds other processes added to this cart (shared stores only).

        Holds already known here keep their identity.
        """
        if not self._manager.store.shared:
            return
        for hold in await self._manager.store.cart_holds(self.id):
            self._holds.setdefault(hold.id, hold)

    # -- reading ------------------------------------------------------------------

    @property
    def holds(self) -> list[Hold]:
        """The cart's live holds (not yet lost, expired, released or ordered), oldest first.

        Reading them counts as using the cart (``idle_timeout``).
        """
        self.touched_at = self._manager.clock.now()
        return [hold for hold in self._holds.values() if not hold.done]

    @property
    def reservations(self) -> list[Reservation]:
        """The current valid reservations, ready for an order (counts as use)."""
        now = self.touched_at = self._manager.clock.now()
        policy = self._manager.policy
        return [
            hold.reservation
            for hold in self._holds.values()
            if hold.reservation is not None
            and hold.state in (HoldState.ACTIVE, HoldState.RENEWING)
            and local_deadline(hold.reservation, policy) > now
        ]

    @property
    def order(self) -> Order | None:
        """The order made by :meth:`checkout`, once it succeeded."""
        return self._order

    def touch(self) -> None:
        """Mark the cart as in use (resets the ``idle_timeout`` clock)."""
        self.touched_at = self._manager.clock.now()

    # -- changing -------------------------------------------------------------------

    def _check_usable(self) -> None:
        self._manager._check_open()
        if self._closed:
            raise UsageError(f"cart {self.id} is closed")
        if self._order is not None:
            raise UsageError(f"cart {self.id} is checked out")

    async def add(
        self, ticket_guid: str, quantity: int = 1, metadata: Mapping[str, Any] | None = None
    ) -> list[Hold]:
        """Reserve ``quantity`` units of a ticket and keep them reserved.

        All or nothing: if one reserve fails, the holds this call made are
        released and the error is raised. Raises InvalidArgument for a malformed
        GUID, quantity or metadata (before any request), TicketUnavailable when
        sold out, any other client error as is, UsageError on a closed cart.
        """
        ticket_guid = guid(ticket_guid, "ticket_guid")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise InvalidArgument(f"quantity must be an int, got {type(quantity).__name__}")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise InvalidArgument(f"quantity must be between 1 and {MAX_QUANTITY}, got {quantity}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidArgument("metadata must be a mapping or None")
        frozen = None if metadata is None else MappingProxyType(dict(metadata))
        self._check_usable()
        manager = self._manager
        clock = manager.clock
        made: list[Hold] = []
        try:
            for _ in range(quantity):
                sent = self.touched_at = clock.now()
                reservation = await manager._reserve(self.shop_guid, ticket_guid, sent)
                hold = Hold(
                    id=manager._new_hold_id(),
                    cart_id=self.id,
                    shop_guid=self.shop_guid,
                    ticket_guid=ticket_guid,
                    reservation=reservation,
                    created_at=sent,
                    metadata=frozen,
                )
                # tracked before anything else can suspend: a cancellation from
                # here on finds the hold in the cart and releases it below
                self._holds[hold.id] = hold
                made.append(hold)
                step = manager._track(hold)
                if step is not None:
                    await step
        except BaseException:
            with anyio.CancelScope(shield=True):
                for hold in made:
                    await settle(manager._step(hold, _REMOVE))
            raise
        return made

    async def remove(self, hold: Hold) -> None:
        """Stop keeping ``hold``; it ends ``Released``. A no-op if it already ended.

        Raises InvalidArgument if the hold belongs to another cart.
        """
        if hold.cart_id != self.id:
            raise InvalidArgument(f"hold {hold.id} is not in cart {self.id}")
        manager = self._manager
        self.touched_at = manager.clock.now()
        step = manager._step(hold, _REMOVE)
        if step is not None:
            await step

    async def close(self) -> None:
        """Release every live hold and close the cart. Safe to call twice."""
        await self._shut(_REMOVE)

    async def _shut(self, inp: Remove | Close) -> None:
        """End every live hold with ``inp`` (the manager's close uses ``Close``)."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            for hold in list(self._holds.values()):
                await settle(self._manager._step(hold, inp))
        self._manager._forget_cart(self)

    def _ended(self, hold: Hold) -> None:
        """Forget a hold that reached a terminal state (manager use)."""
        if self._holds.get(hold.id) is hold:
            del self._holds[hold.id]

    async def checkout(
        self,
        *,
        receiver: Receiver,
        payment_method: str,
        currency: str,
        idempotency_key: str | None = None,
    ) -> Order:
        """Create the order from every live hold, once.

        The cart is claimed in the store first: no other checkout of it runs
        and no other worker renews its holds until this one's outcome is
        recorded. Renewals of this cart pause; holds with less than
        ``renew_before`` left are renewed first; then the order is created
        (never retried blindly: the client retries only what surely did not
        reach the server, or anything with ``idempotency_key``). On success
        every hold ends ``CheckedOut``. On failure renewals resume and the
        error is raised: CheckoutInProgress if the cart is being checked out
        already (here or in another worker; nothing was done),
        InvalidArgument for an empty cart, HoldsNotReady if a hold could not
        be renewed (it is then at risk or lost), or the client's error.
        """
        self._check_usable()
        if self.paused:
            raise CheckoutInProgress(f"cart {self.id} is already checking out", cart_id=self.id)
        manager = self._manager
        self.paused = True
        try:
            claim = await manager._checkouts.claim(self.id)
            try:
                await self.load()  # what other workers did to the holds before the claim
                return await self._place_order(receiver, payment_method, currency, idempotency_key)
            finally:
                with anyio.CancelScope(shield=True):
                    await manager._checkouts.release(claim)
        finally:
            self.paused = False

    async def _place_order(
        self, receiver: Receiver, payment_method: str, currency: str, idempotency_key: str | None
    ) -> Order:
        """The checkout once the cart is claimed: renew first, order, record the outcome."""
        holds = self.holds
        if not holds:
            raise InvalidArgument(f"cart {self.id} has no holds to order")
        manager = self._manager
        order: Order | None = None
        failure: BaseException | None = None
        try:
            await settle(manager._checkout_started(holds))
            await self._wait_for_renewals(holds)
            _check_ready(self.id, holds)
            order = await manager.client.create_order(
                self.shop_guid,
                [hold.reservation for hold in holds if hold.reservation is not None],
                receiver=receiver,
                payment_method=payment_method,
                currency=currency,
                idempotency_key=idempotency_key,
            )
        except BaseException as error:
            failure = error
            raise
        finally:
            with anyio.CancelScope(shield=True):
                if order is not None:
                    self._order = order
                # recorded before the claim ends: no other worker acts on a stale view
                await settle(manager._checkout_ended(holds, order))
            guid = None if order is None else order.guid
            log_checkout(self.id, self.shop_guid, len(holds), guid, failure)
        return order

    async def _wait_for_renewals(self, holds: Sequence[Hold]) -> None:
        """Wait until no reserve of these holds is queued or on the wire."""
        while any(hold._wire for hold in holds):
            self._renewal_done = anyio.Event()
            await self._renewal_done.wait()

    def renewal_finished(self) -> None:
        """Wake a checkout waiting for renewals to come back (manager use)."""
        if self._renewal_done is not None:
            self._renewal_done.set()


def _check_ready(cart_id: str, holds: Sequence[Hold]) -> None:
    """Raise HoldsNotReady unless every hold is ACTIVE (renewed for checkout if it had to be)."""
    not_ready = [hold for hold in holds if hold.state is not HoldState.ACTIVE]
    if not_ready:
        raise HoldsNotReady(
            f"{len(not_ready)} hold(s) of cart {cart_id} could not be renewed for"
            " checkout; no order was created",
            holds=not_ready,
        )
