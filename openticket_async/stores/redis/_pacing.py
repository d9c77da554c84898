"""A fleet-wide rate limit per shop: the calls of every worker to one shop, paced in Redis.

OpenTicket rate-limits per client application, whichever worker calls. So a
429 seen by one worker must slow every worker's calls to that shop, and a shop
whose limit is known should not be called faster than it by the fleet as a
whole. :class:`PacedClient` wraps the client a manager uses (any
``ReservingClient``); before each reserve or order it takes the shop's next
*slot* in one Lua call (``PACE``, one round trip) and waits for it on the
client's clock:

- *Backoff*: a ``RateLimited`` answer (429) is written to the shop's pace hash
  (``BACKOFF``) as "no call before now + Retry-After" (``backoff`` when the
  server gave no hint); every worker's next slot is after it.
- *Ceiling*: with ``calls_per_second``, slots are ``1 / calls_per_second``
  apart on the fleet clock (a virtual-scheduling token bucket: ``burst`` calls
  may go at once after a quiet spell). A caller takes its slot even when it is
  in the future, so waiting callers never poll and are served in order.

Slots run on the fleet clock (:mod:`._time`). While Redis is unreachable calls
go out unpaced: a rate limit must never stop renewals.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..._clock import Clock
from ..._config import RetryPolicy
from ..._exceptions import InvalidArgument, RateLimited, StoreUnavailable
from ..._models import Order, Receiver, Reservation
from ._link import Link
from ._scripting import Script
from ._time import FleetClock

if TYPE_CHECKING:
    from ..._ports import ReservingClient

__all__ = ["PacedClient"]

logger = logging.getLogger("openticket_async.stores.redis")

#: Seconds every worker holds off a shop after a 429 that gave no Retry-After.
DEFAULT_BACKOFF = 1.0


class PacedClient:
    """A ``ReservingClient`` whose reserves and orders are paced per shop across the fleet.

    Made by :meth:`RedisStore.paced`; give it to the ``ReservationManager`` in
    place of the client. ``calls_per_second`` is the fleet's ceiling per shop:
    one number for every shop, a mapping of shop GUID to ceiling (shops not in
    it have none), or None (no ceiling: only 429s pace the fleet).
    """

    def __init__(
        self,
        client: ReservingClient,
        *,
        link: Link,
        scripts: Mapping[str, Script],
        time: FleetClock,
        key: str,
        calls_per_second: float | Mapping[str, float] | None,
        burst: int,
        ttl: int,
    ) -> None:
        if isinstance(calls_per_second, Mapping):
            every, ceilings = None, dict(calls_per_second)
        else:
            every, ceilings = calls_per_second, {}
        for rate in (every, *ceilings.values()):
            if rate is not None and not (
                type(rate) in (int, float) and math.isfinite(rate) and rate > 0
            ):
                raise InvalidArgument(f"calls_per_second must be > 0, got {rate!r}")
        if type(burst) is not int or burst < 1:
            raise InvalidArgument(f"burst must be an int >= 1, got {burst!r}")
        self._client = client
        self._link = link
        self._pace = scripts["pace"]
        self._backoff = scripts["backoff"]
        self._time = time
        self._key = key
        self._every = every
        self._ceilings = ceilings
        self._burst = burst
        self._ttl = ttl

    @property
    def clock(self) -> Clock:
        """The wrapped client's clock."""
        return self._client.clock

    @property
    def retry(self) -> RetryPolicy:
        """The wrapped client's retry policy."""
        return self._client.retry

    @property
    def reservation_ttl(self) -> float:
        """The wrapped client's reservation TTL."""
        return self._client.reservation_ttl

    def ceiling(self, shop_guid: str) -> float | None:
        """The fleet's calls-per-second ceiling for ``shop_guid`` (None: none)."""
        return self._ceilings.get(shop_guid, self._every)

    async def reserve_ticket(
        self, shop_guid: str, ticket_guid: str, *, retry: RetryPolicy | None = None
    ) -> Reservation:
        """Wait for the shop's next slot, then reserve; a 429 slows the whole fleet."""
        await self.wait_turn(shop_guid)
        try:
            return await self._client.reserve_ticket(shop_guid, ticket_guid, retry=retry)
        except RateLimited as error:
            await self.back_off(shop_guid, error.retry_after)
            raise

    async def create_order(
        self,
        shop_guid: str,
        reservations: Sequence[Reservation],
        *,
        receiver: Receiver,
        payment_method: str,
        currency: str,
        idempotency_key: str | None = None,
    ) -> Order:
        """Wait for the shop's next slot, then order; a 429 slows the whole fleet."""
        await self.wait_turn(shop_guid)
        try:
            return await self._client.create_order(
                shop_guid, reservations, receiver=receiver, payment_method=payment_method,
                currency=currency, idempotency_key=idempotency_key,
            )
        except RateLimited as error:
            await self.back_off(shop_guid, error.retry_after)
            raise

    async def wait_turn(self, shop_guid: str) -> float:
        """Take the shop's next slot and wait for it; returns the seconds waited.

        Never raises for an unreachable Redis: the call then goes out at once.
        """
        rate = self.ceiling(shop_guid)
        args = [repr(1.0 / rate) if rate else "0", str(self._burst), self._time.lease_now(),
                str(self._ttl)]
        try:
            wait = float(await self._link.call(self._pace([self._key + shop_guid], args)))
        except StoreUnavailable as error:
            if error.refused:
                logger.exception("pacing calls to shop %s failed; calling unpaced", shop_guid)
            return 0.0
        if wait > 0:
            clock = self._client.clock
            await clock.sleep_until(clock.now() + wait)
        return wait

    async def back_off(self, shop_guid: str, retry_after: float | None) -> None:
        """Hold every worker's calls to ``shop_guid`` off for ``retry_after`` seconds.

        Never raises for an unreachable Redis (then only this call backs off).
        """
        seconds = DEFAULT_BACKOFF if retry_after is None else max(retry_after, 0.0)
        args = [repr(seconds), self._time.lease_now(), str(self._ttl + math.ceil(seconds))]
        try:
            await self._link.call(self._backoff([self._key + shop_guid], args))
        except StoreUnavailable as error:
            if error.refused:
                logger.exception("sharing a 429 of shop %s failed", shop_guid)

