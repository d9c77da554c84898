"""A worker process for the multi-process RedisStore tests (run by test_redis_multiprocess).

Reads one JSON command per line on stdin and writes one JSON record per line on
stdout. The first line on stdin is the configuration.

``holds`` mode: a ReservationManager on a RedisStore, against the fake server.
Commands: ``add`` (make a cart's holds), ``close`` (load a cart and release its
holds), ``checkout`` (load a cart and check it out: ``ordered``, or
``in-progress`` for CheckoutInProgress, or ``failed``), ``holds`` (load a cart
and report the states of every hold this worker has seen in it), ``quit``.
Every hold event is written as ``{"ev": "event", ...}``; the ``ready`` record names the
store's claim owner (``owner``). With ``"stall": true``
the worker hangs right after each renewal's reserve call came back, before the
manager sees it: killed then, it dies mid-renewal. With ``"stall_order": true``
it hangs in each checkout instead, just before the order is sent (its claim on
the cart held and kept alive): killed then, it dies mid-checkout.

With ``"skew": seconds`` the worker's wall clock is that far off real time. With
``"pace": {...}`` its client is paced through the store (``RedisStore.paced``).

``token`` mode: an OpenTicketClient with OAuth2 and a RedisTokenStore; on ``go``
it makes one request (which meets a 401 and refreshes) and reports a digest of
the access token it ended with (never the token itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from openticket_async import (
    BearerToken,
    Cart,
    CheckoutInProgress,
    Hold,
    HoldEvent,
    HoldPolicy,
    Hosts,
    OAuth2,
    OpenTicketClient,
    Order,
    Receiver,
    Renewed,
    Reservation,
    ReservationManager,
    RetryPolicy,
    SystemClock,
    TokenSet,
)
from openticket_async._clock import Clock
from openticket_async.stores.redis import RedisStore, RedisTokenStore, lease_for


def say(**record: Any) -> None:
    record["t"] = time.monotonic()
    print(json.dumps(record), flush=True)


async def read_line() -> dict[str, Any]:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        return {"cmd": "quit"}
    message: dict[str, Any] = json.loads(line)
    return message


RECEIVER = Receiver(email="buyer@example.com", firstname="Ada", lastname="Lovelace")


class StallingClient:
    """The real client, but it never hands a renewal's answer back (``renewals``),
    or never sends an order (``orders``)."""

    def __init__(self, client: OpenTicketClient, *, renewals: bool, orders: bool) -> None:
        self._client = client
        self._renewals = renewals
        self._orders = orders

    @property
    def clock(self) -> Clock:
        return self._client.clock

    @property
    def reservation_ttl(self) -> float:
        return self._client.reservation_ttl

    @property
    def retry(self) -> RetryPolicy:
        return self._client.retry

    async def reserve_ticket(
        self, shop_guid: str, ticket_guid: str, *, retry: RetryPolicy | None = None
    ) -> Reservation:
        reservation = await self._client.reserve_ticket(shop_guid, ticket_guid, retry=retry)
        if self._renewals and retry is not None:  # renewals pass their one-try policy
            say(ev="stalled", ticket=ticket_guid, reservation=reservation.guid)
            await asyncio.Event().wait()
        return reservation

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
        if self._orders:
            say(ev="order-stalled")
            await asyncio.Event().wait()
        return await self._client.create_order(
            shop_guid,
            reservations,
            receiver=receiver,
            payment_method=payment_method,
            currency=currency,
            idempotency_key=idempotency_key,
        )


class SkewedClock(SystemClock):
    """Real time whose wall clock is ``skew`` seconds off (a host with a wrong clock)."""

    def __init__(self, skew: float) -> None:
        self.skew = timedelta(seconds=skew)

    def wall(self) -> datetime:
        return super().wall() + self.skew


def report(event: HoldEvent) -> None:
    hold = event.hold
    say(
        ev="event",
        kind=type(event).__name__,
        hold=hold.id,
        cart=hold.cart_id,
        ticket=hold.ticket_guid,
        reservation=hold.reservation.guid if hold.reservation is not None else None,
        new=event.new.guid if isinstance(event, Renewed) else None,
    )


async def holds(config: dict[str, Any]) -> None:
    policy = HoldPolicy(**config["policy"])
    store = RedisStore(config["redis"], prefix=config["prefix"], lease=lease_for(policy))
    async with OpenTicketClient(
        auth=BearerToken(config["token"]),
        hosts=Hosts(**config["hosts"]),
        reservation_ttl=config["ttl"],
        clock=SkewedClock(config.get("skew", 0.0)),
    ) as client:
        stall, stall_order = bool(config.get("stall")), bool(config.get("stall_order"))
        reserving: Any = (
            StallingClient(client, renewals=stall, orders=stall_order)
            if stall or stall_order
            else client
        )
        if "pace" in config:  # the fleet-wide rate limit: {"calls_per_second": ...}
            reserving = store.paced(reserving, **config["pace"])
        seen: dict[str, list[Hold]] = {}
        async with ReservationManager(reserving, policy=policy, store=store) as manager:
            manager.on(HoldEvent, report)
            say(ev="ready", owner=store.owner)  # its claims' owner name in Redis
            while True:
                command = await read_line()
                if command["cmd"] == "quit":
                    break
                async with manager.cart(command["shop"], cart_id=command["cart"]) as cart:
                    known = seen.setdefault(cart.id, [])
                    known += [hold for hold in cart.holds if hold not in known]
                    if command["cmd"] == "add":
                        made = [(await cart.add(ticket))[0] for ticket in command["tickets"]]
                        say(ev="added", cart=cart.id, holds=[
                            {"id": h.id, "ticket": h.ticket_guid, "reservation": h.reservation.guid}
                            for h in made if h.reservation is not None
                        ])
                    elif command["cmd"] == "checkout":
                        await checkout(cart, command["method"])
                    elif command["cmd"] == "holds":
                        say(ev="holds", cart=cart.id, live=len(cart.holds),
                            states={h.id: h.state.value for h in seen[cart.id]})
                    else:
                        count = len(cart.holds)
                        await cart.close()
                        say(ev="closed", cart=cart.id, holds=count)


async def checkout(cart: Cart, method: str) -> None:
    say(ev="checkout", cart=cart.id)
    try:
        order = await cart.checkout(receiver=RECEIVER, payment_method=method, currency="EUR")
    except CheckoutInProgress:
        say(ev="in-progress", cart=cart.id)
    except Exception as error:
        say(ev="failed", cart=cart.id, error=type(error).__name__)
    else:
        say(ev="ordered", cart=cart.id, order=order.guid)


async def token(config: dict[str, Any]) -> None:
    login = TokenSet(
        access_token=config["access_token"],
        refresh_token=config["refresh_token"],
        expires_at=datetime.fromisoformat(config["expires_at"]),
    )
    store = RedisTokenStore(config["redis"], key=config["key"])
    auth = OAuth2(config["client_id"], config["client_secret"], login, store=store)
    try:
        async with OpenTicketClient(auth=auth, hosts=Hosts(**config["hosts"])) as client:
            say(ev="ready")
            await read_line()  # go
            methods = await client.payment_methods(config["shop"])
            digest = hashlib.sha256(auth.token.access_token.encode()).hexdigest()[:16]
            say(ev="done", methods=len(methods), token=digest)
            await read_line()  # quit
    finally:
        await store.aclose()


async def main() -> None:
    config = await read_line()
    await (holds(config) if config["mode"] == "holds" else token(config))


if __name__ == "__main__":
    asyncio.run(main())
