"""A background worker that keeps a whole fleet's carts valid, from Redis.

The web workers (``fastapi_checkout.py`` with ``OPENTICKET_REDIS_URL`` set) make
carts and check them out; the carts' holds live in Redis. This worker has no web
side at all: its ``ReservationManager`` on the same ``RedisStore`` claims every
renewal that comes due, whichever process made the hold, so carts stay valid
while the web workers scale to zero, restart or deploy. Run one or several: each
claim carries a lease, so two workers never renew the same hold at once, and a
worker that dies hands its holds to the others within the lease.

It reports what the application has to act on (a hold at risk, a hold lost: tell
the customer) and counts the renewals::

    export OPENTICKET_TOKEN=... OPENTICKET_REDIS_URL=redis://127.0.0.1:6379/0
    python examples/renewal_worker.py

SIGTERM or Ctrl-C stops it. Stopping releases nothing: on a shared store the
holds belong to the fleet, and their next renewals come due for the other
workers (or for this one, restarted) within the lease.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs

from openticket_async import (
    AtRisk,
    BearerToken,
    HoldPolicy,
    Lost,
    OpenTicketClient,
    Renewed,
    ReservationManager,
)
from openticket_async.stores.redis import RedisStore

TOKEN_VARIABLE = "OPENTICKET_TOKEN"  # noqa: S105 (the variable's name, not a token)
REDIS_VARIABLE = "OPENTICKET_REDIS_URL"

#: The web workers' timings: a hold's renewals must not depend on which worker makes
#: them. ``idle_timeout`` is left out: it counts uses of a cart in the process that
#: renews, and this worker never sees a customer, so abandoned carts end at ``max_hold``.
POLICY = HoldPolicy(max_hold=1800)

logger = logging.getLogger("renewal_worker")


@attrs.define
class Tally:
    """What one worker did while it ran: renewals made, holds at risk and lost (hold ids)."""

    renewed: int = 0
    at_risk: list[str] = attrs.field(factory=list)
    lost: list[str] = attrs.field(factory=list)


@asynccontextmanager
async def fleet_worker(
    client: OpenTicketClient, store: RedisStore, *, policy: HoldPolicy = POLICY
) -> AsyncIterator[Tally]:
    """Renew every hold in ``store`` that comes due while inside; yield the running tally.

    Leaving releases nothing: the holds stay in the store for the other workers.
    Enter and leave it in one task (the manager's task group requires it).
    Raises ``StoreUnavailable`` if Redis is unreachable when a hold is first
    loaded; an outage later only delays the renewals until Redis is back.
    """
    tally = Tally()

    def renewed(event: Renewed) -> None:
        tally.renewed += 1
        logger.debug("renewed hold %s of cart %s", event.hold.id, event.hold.cart_id)

    def at_risk(event: AtRisk) -> None:
        tally.at_risk.append(event.hold.id)
        logger.warning(
            "hold %s of cart %s at risk: %s", event.hold.id, event.hold.cart_id, event.reason
        )

    def lost(event: Lost) -> None:
        # A real worker tells the customer here (an email, a push to their session).
        tally.lost.append(event.hold.id)
        logger.error("hold %s of cart %s lost: %s", event.hold.id, event.hold.cart_id, event.reason)

    async with ReservationManager(client, policy=policy, store=store) as manager:
        manager.on(Renewed, renewed)
        manager.on(AtRisk, at_risk)
        manager.on(Lost, lost)
        yield tally


async def main() -> None:
    """Run against the real OpenTicket API and the Redis at ``$OPENTICKET_REDIS_URL``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    store = RedisStore(os.environ[REDIS_VARIABLE], policy=POLICY)
    async with (
        OpenTicketClient(auth=BearerToken(os.environ[TOKEN_VARIABLE])) as client,
        fleet_worker(client, store) as tally,
    ):
        await stop.wait()
    logger.info(
        "stopped: %d renewals, %d holds at risk, %d lost",
        tally.renewed,
        len(tally.at_risk),
        len(tally.lost),
    )


if __name__ == "__main__":
    asyncio.run(main())
