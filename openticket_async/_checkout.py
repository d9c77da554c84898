"""Checkout claims: a cart checked out by one worker at a time, kept alive while it runs.

A checkout claims its cart in the store (``ReservationStore.claim_cart``)
before it looks at the holds, and releases the claim once the order's outcome
is recorded. While the claim is held no other checkout of the cart runs, here
or in another worker, and a shared store hands no due action of the cart's
holds to another worker. The claim has a lease, so a worker that dies
mid-checkout frees the cart by itself; a live one extends it (the heartbeat)
from the manager's scheduler, which wakes for it like for any due action.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._clock import Clock
from ._config import HoldPolicy
from ._exceptions import CheckoutInProgress
from .stores import CartClaim, ReservationStore, claim_lease

__all__ = ["CLAIM_RETRY", "HEARTBEAT", "CheckoutClaims"]

logger = logging.getLogger("openticket_async.manager")

#: A claim is extended when this share of its lease has passed.
HEARTBEAT = 1 / 3
#: The longest wait between two tries to claim a cart whose hold another worker
#: is renewing (that renewal is back within one reserve call).
CLAIM_RETRY = 0.25


class CheckoutClaims:
    """The checkout claims one manager holds, and their heartbeats.

    ``wake`` asks the scheduler to run no later than a given time (the next
    heartbeat).
    """

    def __init__(
        self,
        store: ReservationStore,
        clock: Clock,
        policy: HoldPolicy,
        wake: Callable[[float], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._lease = claim_lease(policy)
        self._wake = wake
        # cart id -> (its claim, when the claim's next heartbeat is due)
        self._held: dict[str, tuple[CartClaim, float]] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    async def claim(self, cart_id: str) -> CartClaim:
        """Claim cart ``cart_id``; it is extended from now on, until :meth:`release`.

        Waits while another worker renews one of its holds. Raises
        CheckoutInProgress while another checkout holds it, and what the store raises.
        """
        clock = self._clock
        while True:
            got = await self._store.claim_cart(cart_id, self._lease)
            if isinstance(got, CartClaim):
                beat = clock.now() + got.lease * HEARTBEAT
                self._held[cart_id] = (got, beat)
                self._wake(beat)
                return got
            if got.checkout:
                raise CheckoutInProgress(
                    f"cart {cart_id} is being checked out already; no order was made here",
                    cart_id=cart_id,
                    retry_after=got.free_in,
                )
            await clock.sleep_until(clock.now() + min(got.free_in, CLAIM_RETRY))

    async def release(self, claim: CartClaim) -> None:
        """End ``claim`` (the order's outcome is recorded); never raises.

        Ends the claim this manager holds on the cart now, which is a newer one
        than ``claim`` if the first lapsed and was taken again (see :meth:`keep`).
        """
        held = self._held.pop(claim.cart_id, None)
        if held is not None:
            claim = held[0]
        try:
            await self._store.release_cart(claim)
        except Exception:
            logger.exception(
                "releasing the checkout claim of cart %s failed; it lapses by itself",
                claim.cart_id,
            )

    async def keep(self, now: float) -> float | None:
        """Extend the claims whose heartbeat is due; returns the next heartbeat, if any."""
        for cart_id, (claim, beat) in list(self._held.items()):
            if beat > now:
                continue
            try:
                held = await self._store.extend_cart_claim(claim)
            except Exception:
                logger.exception("extending the checkout claim of cart %s failed", cart_id)
                held = True  # try again at the next heartbeat, before the lease runs out
            if self._held.get(cart_id, (None, 0.0))[0] is not claim:
                continue  # released meanwhile
            if held:
                self._held[cart_id] = (claim, now + claim.lease * HEARTBEAT)
                continue
            # A heartbeat came too late (a stalled loop or host): take the cart again
            # if nobody else did meanwhile; only a cart another worker got is lost.
            again = await self._claim_again(cart_id)
            if again is not None:
                self._held[cart_id] = (again, now + again.lease * HEARTBEAT)
            else:
                logger.warning("the checkout claim of cart %s lapsed before its end", cart_id)
                del self._held[cart_id]
        return min((beat for _claim, beat in self._held.values()), default=None)

    async def _claim_again(self, cart_id: str) -> CartClaim | None:
        try:
            got = await self._store.claim_cart(cart_id, self._lease)
        except Exception:
            logger.exception("claiming cart %s again after its claim lapsed failed", cart_id)
            return None
        if isinstance(got, CartClaim):
            logger.debug("the checkout claim of cart %s lapsed and was taken again", cart_id)
            return got
        return None
