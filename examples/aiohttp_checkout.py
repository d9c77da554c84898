"""A checkout endpoint on aiohttp.web, its client and manager owned by ``cleanup_ctx``.

``cleanup_ctx`` runs its generator up to ``yield`` when the application starts
and the rest when it stops, so the ``OpenTicketClient`` and the
``ReservationManager`` live exactly as long as the application and are closed
(holds released) on shutdown::

    POST /carts/{cart}/tickets/{ticket}   -> 200 {"holds": [...]}; 409 sold out; 422 bad GUID
    POST /carts/{cart}/checkout           -> 201 {"order": ...}; 409 holds not ready

The cart id comes from the caller (a session id, say); one shop and one payment
method are configured per application. Run it (``OPENTICKET_TOKEN`` set)::

    python examples/aiohttp_checkout.py SHOP_GUID PAYMENT_METHOD_GUID
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from openticket_async import (
    BearerToken,
    HoldsNotReady,
    InvalidArgument,
    OpenTicketClient,
    Receiver,
    ReservationManager,
    TicketUnavailable,
)

MANAGER = web.AppKey("manager", ReservationManager)

#: Who receives the tickets; a real shop asks the customer at checkout.
RECEIVER = Receiver(email="ada@example.com", firstname="Ada", lastname="Lovelace")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    connect: Callable[[], OpenTicketClient], *, shop_guid: str, payment_method: str
) -> web.Application:
    """The application; ``connect`` makes the client it uses while it runs."""

    async def openticket(app: web.Application) -> AsyncIterator[None]:
        async with connect() as client, ReservationManager(client) as manager:
            app[MANAGER] = manager
            yield

    async def add_ticket(request: web.Request) -> web.Response:
        cart = request.app[MANAGER].cart(shop_guid, cart_id=request.match_info["cart"])
        holds = await cart.add(request.match_info["ticket"])
        return web.json_response({"holds": [hold.id for hold in holds]})

    async def checkout(request: web.Request) -> web.Response:
        cart = request.app[MANAGER].cart(shop_guid, cart_id=request.match_info["cart"])
        order = await cart.checkout(
            receiver=RECEIVER, payment_method=payment_method, currency="EUR"
        )
        return web.json_response({"order": order.guid}, status=201)

    app = web.Application(middlewares=[openticket_errors])
    app.cleanup_ctx.append(openticket)
    app.router.add_post("/carts/{cart}/tickets/{ticket}", add_ticket)
    app.router.add_post("/carts/{cart}/checkout", checkout)
    return app


@web.middleware
async def openticket_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer with what the customer can do about an OpenTicket error."""
    try:
        return await handler(request)
    except InvalidArgument as error:  # refused before any request was sent
        return web.json_response({"error": "invalid", "detail": str(error)}, status=422)
    except TicketUnavailable:
        return web.json_response({"error": "sold_out"}, status=409)
    except HoldsNotReady:
        return web.json_response({"error": "holds_not_ready"}, status=409)


def main(argv: list[str]) -> None:
    """Serve on 127.0.0.1:8080 against the real OpenTicket API."""
    shop_guid, payment_method = argv
    token = os.environ["OPENTICKET_TOKEN"]
    app = make_app(
        lambda: OpenTicketClient(auth=BearerToken(token)),
        shop_guid=shop_guid,
        payment_method=payment_method,
    )
    web.run_app(app, host="127.0.0.1", port=8080)


if __name__ == "__main__":
    main(sys.argv[1:])
