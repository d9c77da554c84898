"""A checkout service on FastAPI: carts kept valid across OpenTicket's 8-minute drop.

One ``OpenTicketClient`` and one ``ReservationManager`` live as long as the
application (its lifespan). A customer's cart is made once and reached by its id
in every later request, so the session only has to keep that id::

    POST   /shops/{shop}/carts                          -> 201 {"cart_id": ...}
    POST   /shops/{shop}/carts/{cart_id}/tickets/{ticket}?quantity=2
    GET    /shops/{shop}/carts/{cart_id}
    POST   /shops/{shop}/carts/{cart_id}/checkout       -> 201 {"order": ...}
    DELETE /shops/{shop}/carts/{cart_id}                -> 204 (holds released)
    GET    /healthz                                     -> 200, or 503 if the store is down

Errors map to what the caller can do: a malformed shop or ticket GUID is 422
(refused before any request reaches OpenTicket), a sold-out ticket or a cart
whose holds could not be kept is 409.

Configuration comes from the environment: ``OPENTICKET_TOKEN`` (required), and
``OPENTICKET_REDIS_URL``, which, when set, keeps carts in Redis (``RedisStore``)
so that several worker processes share them; without it carts live in this
process, so run one worker. Run it with uvicorn (``pip install uvicorn``)::

    OPENTICKET_TOKEN=... uvicorn --factory fastapi_checkout:create_app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from openticket_async import (
    BearerToken,
    Cart,
    Clock,
    Hold,
    HoldPolicy,
    HoldsNotReady,
    Hosts,
    InvalidArgument,
    OpenTicketClient,
    Receiver,
    ReservationManager,
    StoreHealth,
    TicketUnavailable,
)
from openticket_async.stores import ReservationStore

TOKEN_VARIABLE = "OPENTICKET_TOKEN"  # noqa: S105 (a variable name, not a secret)
REDIS_VARIABLE = "OPENTICKET_REDIS_URL"

#: A cart left alone for 15 minutes lets its tickets go; none is held past 30.
POLICY = HoldPolicy(max_hold=1800, idle_timeout=900)


class Checkout(BaseModel):
    """What the customer enters at checkout."""

    email: str
    firstname: str
    lastname: str
    payment_method: str
    currency: str = "EUR"


def create_app(
    *, token: str | None = None, hosts: Hosts | None = None, clock: Clock | None = None
) -> FastAPI:
    """The service, talking to OpenTicket at ``hosts`` (the real API by default).

    ``token`` defaults to ``$OPENTICKET_TOKEN``; ``clock`` to real time (tests give
    a FakeClock). Raises KeyError when neither a token nor the variable is set.
    """
    bearer = token if token is not None else os.environ[TOKEN_VARIABLE]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                OpenTicketClient(auth=BearerToken(bearer), hosts=hosts or Hosts(), clock=clock)
            )
            app.state.manager = await stack.enter_async_context(
                ReservationManager(client, policy=POLICY, store=_store_from_environment())
            )
            yield

    app = FastAPI(title="checkout", lifespan=lifespan)

    @app.exception_handler(InvalidArgument)
    async def invalid(request: Request, error: InvalidArgument) -> JSONResponse:
        return JSONResponse({"error": "invalid", "detail": str(error)}, status_code=422)

    @app.exception_handler(TicketUnavailable)
    async def sold_out(request: Request, error: TicketUnavailable) -> JSONResponse:
        return JSONResponse({"error": "sold_out", "detail": str(error)}, status_code=409)

    @app.exception_handler(HoldsNotReady)
    async def not_ready(request: Request, error: HoldsNotReady) -> JSONResponse:
        lost = [hold.id for hold in error.holds if isinstance(hold, Hold)]
        return JSONResponse({"error": "holds_not_ready", "holds": lost}, status_code=409)

    @app.post("/shops/{shop}/carts", status_code=201)
    async def new_cart(shop: str, request: Request) -> dict[str, str]:
        cart = _manager(request).cart(shop)
        return {"cart_id": cart.id}

    @app.post("/shops/{shop}/carts/{cart_id}/tickets/{ticket}")
    async def add_ticket(
        shop: str, cart_id: str, ticket: str, request: Request, quantity: int = 1
    ) -> dict[str, Any]:
        cart = await _cart(request, shop, cart_id)
        holds = await cart.add(ticket, quantity=quantity)
        return {"cart_id": cart.id, "added": [_hold_view(hold) for hold in holds]}

    @app.get("/shops/{shop}/carts/{cart_id}")
    async def show_cart(shop: str, cart_id: str, request: Request) -> dict[str, Any]:
        cart = await _cart(request, shop, cart_id)
        return {"cart_id": cart.id, "holds": [_hold_view(hold) for hold in cart.holds]}

    @app.post("/shops/{shop}/carts/{cart_id}/checkout", status_code=201)
    async def checkout(
        shop: str, cart_id: str, details: Checkout, request: Request
    ) -> dict[str, str]:
        cart = await _cart(request, shop, cart_id)
        order = await cart.checkout(
            receiver=Receiver(
                email=details.email, firstname=details.firstname, lastname=details.lastname
            ),
            payment_method=details.payment_method,
            currency=details.currency,
            idempotency_key=f"cart-{cart.id}",  # a retried checkout never orders twice
        )
        return {"order": order.guid}

    @app.delete("/shops/{shop}/carts/{cart_id}", status_code=204)
    async def drop_cart(shop: str, cart_id: str, request: Request) -> Response:
        cart = await _cart(request, shop, cart_id)
        await cart.close()
        return Response(status_code=204)

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        # A hold at risk is the customer's problem, not this worker's: it is reported,
        # and only a store this worker cannot reach takes it out of rotation.
        stats = _manager(request).stats()
        body = {
            "holds": {state.value: count for state, count in stats.holds.items()},
            "carts": stats.carts,
            "renewals_in_flight": stats.renewals_in_flight,
            "lateness_p99": stats.lateness_p99,
            "store": stats.store.value,
        }
        down = stats.store is StoreHealth.UNAVAILABLE
        return JSONResponse(body, status_code=503 if down else 200)

    return app


def _store_from_environment() -> ReservationStore | None:
    """A RedisStore when ``$OPENTICKET_REDIS_URL`` is set, else None (the in-memory store)."""
    url = os.environ.get(REDIS_VARIABLE)
    if not url:
        return None
    # Imported here: only this branch needs the [redis] extra.
    from openticket_async.stores.redis import RedisStore

    return RedisStore(url, policy=POLICY)


def _manager(request: Request) -> ReservationManager:
    manager: ReservationManager = request.app.state.manager
    return manager


async def _cart(request: Request, shop: str, cart_id: str) -> Cart:
    cart = _manager(request).cart(shop, cart_id=cart_id)
    cart.touch()
    await cart.load()  # with Redis: the holds other workers added
    return cart


def _hold_view(hold: Hold) -> dict[str, Any]:
    reservation = hold.reservation
    return {
        "id": hold.id,
        "ticket": hold.ticket_guid,
        "state": hold.state.value,
        "renewals": hold.renewals,
        "expires_at": None if reservation is None else reservation.expires_at.isoformat(),
    }
