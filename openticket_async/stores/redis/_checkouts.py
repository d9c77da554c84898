"""Checkout claims on Redis: one cart checked out by one worker at a time.

A claim is a hash per cart (``P checkout:<id>``, see :mod:`._scripts`) with its
owner, fencing token and lease end. The scripts take, extend and end it in one
atomic step each, and the due-queue claim (``CLAIM``) reads it, so no other
worker is handed a due action of the cart's holds while it is held.

The lease runs on the fleet clock (:mod:`._time`): Redis's own ``TIME`` when
the store is bound to the real clock, since the workers' wall clocks may differ
by more than a lease and Redis's is the one they share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from .. import CartClaim, CartTaken
from ._link import Link
from ._scripting import Script

__all__ = ["CheckoutClaims"]

logger = logging.getLogger("openticket_async.stores.redis")


class CheckoutClaims:
    """The cart-claim operations of one RedisStore.

    ``key`` names a cart's claim hash, ``hold_prefix`` the start of its holds' hashes;
    ``lease_now`` gives the scripts' ``lease now`` argument (see :mod:`._time`).
    """

    def __init__(
        self,
        link: Link,
        scripts: Mapping[str, Script],
        *,
        owner: str,
        key: Callable[[str], str],
        cart_key: Callable[[str], str],
        hold_prefix: Callable[[str], str],
        retention: int,
        lease_now: Callable[[], str],
    ) -> None:
        self._link = link
        self._claim = scripts["cart_claim"]
        self._extend = scripts["cart_extend"]
        self._release = scripts["cart_release"]
        self._owner = owner
        self._key = key
        self._cart_key = cart_key
        self._hold_prefix = hold_prefix
        self._retention = retention
        self.lease_now = lease_now

    async def claim(self, cart_id: str, lease: float) -> CartClaim | CartTaken:
        """See :meth:`RedisStore.claim_cart`."""
        ttl = self._retention + int(lease) + 1
        answer = cast(list[Any], await self._link.call(self._claim(
            [self._key(cart_id), self._cart_key(cart_id)],
            [self._owner, repr(lease), self.lease_now(), self._hold_prefix(cart_id), str(ttl)],
        )))
        fence, by_checkout, free_in = int(answer[0]), int(answer[1]), float(answer[2])
        if fence:
            return CartClaim(cart_id, fence, lease)
        return CartTaken(cart_id, checkout=bool(by_checkout), free_in=free_in)

    async def extend(self, claim: CartClaim) -> bool:
        """See :meth:`RedisStore.extend_cart_claim`."""
        ttl = self._retention + int(claim.lease) + 1
        done = await self._link.call(self._extend(
            [self._key(claim.cart_id)],
            [self._owner, str(claim.fence), repr(claim.lease), self.lease_now(), str(ttl)],
        ))
        return bool(done)

    async def release(self, claim: CartClaim) -> bool:
        """See :meth:`RedisStore.release_cart`."""
        done = await self._link.call(
            self._release([self._key(claim.cart_id)], [self._owner, str(claim.fence)])
        )
        if not done:
            logger.info("the checkout claim of cart %s had lapsed and was taken", claim.cart_id)
        return bool(done)
