"""How a user tests their own code with the openticket pytest fixtures.

Written as an application's test suite would be: only public imports, only the
plugin's fixtures (``openticket_fake``, ``openticket_client``,
``openticket_clock``), time moved by hand, never slept through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from openticket_async import (
    OpenTicketClient,
    Receiver,
    Reservation,
    ServerError,
    TicketUnavailable,
)
from openticket_async.testing import FakeClock, FakeOpenTicket

EIGHT_MINUTES = timedelta(minutes=8)
ADA = Receiver(email="ada@example.com", firstname="Ada", lastname="Lovelace")


@pytest.mark.asyncio
async def test_a_reservation_drops_after_eight_minutes_and_cannot_be_ordered(
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=1)
    method = openticket_fake.add_payment_method(shop)

    reservation = await openticket_client.reserve_ticket(shop.guid, ticket.guid)
    assert reservation.expires_at - reservation.reserved_at == EIGHT_MINUTES
    assert openticket_fake.stock_left(ticket) == 0

    await openticket_clock.advance(EIGHT_MINUTES)

    assert openticket_fake.live_reservations(ticket) == []
    assert openticket_fake.stock_left(ticket) == 1
    with pytest.raises(TicketUnavailable) as caught:
        await openticket_client.create_order(
            shop.guid, [reservation], receiver=ADA, payment_method=method.guid, currency="EUR"
        )
    assert caught.value.status == 410
    assert openticket_fake.orders == []


@pytest.mark.asyncio
async def test_an_order_within_the_hold_gets_its_tickets(
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    openticket_fake.add_payment_method(shop)

    holds = [await openticket_client.reserve_ticket(shop.guid, ticket.guid) for _ in range(2)]
    await openticket_clock.advance(timedelta(minutes=7, seconds=59))
    [method] = await openticket_client.payment_methods(shop.guid)
    order = await openticket_client.create_order(
        shop.guid, holds, receiver=ADA, payment_method=method.guid, currency="EUR"
    )

    assert [t.reservation_guid for t in order.tickets] == [r.guid for r in holds]
    assert (await openticket_client.get_order(order.guid)).tickets == order.tickets
    assert openticket_fake.stock_left(ticket) == 3
    await openticket_clock.advance(EIGHT_MINUTES)
    assert openticket_fake.stock_left(ticket) == 3  # sold tickets stay sold
    me = await openticket_client.me()
    assert me.guid == openticket_fake.user_guid


@pytest.mark.asyncio
async def test_a_sold_out_ticket_raises_ticket_unavailable(
    openticket_fake: FakeOpenTicket[FakeClock], openticket_client: OpenTicketClient
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=1)
    await openticket_client.reserve_ticket(shop.guid, ticket.guid)
    with pytest.raises(TicketUnavailable):
        await openticket_client.reserve_ticket(shop.guid, ticket.guid)


@pytest.mark.asyncio
async def test_retry_after_is_waited_on_the_fake_clock(
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    openticket_fake.faults.status("reserve", 503, retry_after=20)

    reserving = asyncio.create_task(openticket_client.reserve_ticket(shop.guid, ticket.guid))
    await openticket_clock.advance(19)
    assert not reserving.done()
    await openticket_clock.advance(1)
    reservation = await reserving
    assert [r.time for r in openticket_fake.requests] == [1000.0, 1020.0]
    assert reservation.guid == openticket_fake.live_reservations()[0].guid


@pytest.mark.asyncio
async def test_an_order_whose_answer_is_lost_is_not_sent_twice(
    openticket_fake: FakeOpenTicket[FakeClock], openticket_client: OpenTicketClient
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    method = openticket_fake.add_payment_method(shop)
    reservation = await openticket_client.reserve_ticket(shop.guid, ticket.guid)
    openticket_fake.faults.act_then_fail("order", status=503)

    with pytest.raises(ServerError):
        await openticket_client.create_order(
            shop.guid, [reservation], receiver=ADA, payment_method=method.guid, currency="EUR"
        )
    assert len(openticket_fake.orders) == 1  # it happened, and was not repeated


# -- testing your own aiohttp.web checkout endpoint -----------------------------------

CARTS = web.AppKey("carts", dict[str, list[Reservation]])


def make_shop_app(client: OpenTicketClient, shop_guid: str, method_guid: str) -> web.Application:
    """A tiny application under test: a cart endpoint and a checkout endpoint."""

    async def add_to_cart(request: web.Request) -> web.Response:
        reservation = await client.reserve_ticket(shop_guid, request.match_info["ticket"])
        request.app[CARTS].setdefault(request.match_info["cart"], []).append(reservation)
        return web.json_response({"expires_at": reservation.expires_at.isoformat()})

    async def checkout(request: web.Request) -> web.Response:
        cart = request.app[CARTS].pop(request.match_info["cart"], [])
        try:
            order = await client.create_order(
                shop_guid, cart, receiver=ADA, payment_method=method_guid, currency="EUR"
            )
        except TicketUnavailable:
            return web.json_response({"error": "your tickets were released"}, status=409)
        return web.json_response({"order": order.guid}, status=201)

    app = web.Application()
    app[CARTS] = {}
    app.router.add_post("/carts/{cart}/tickets/{ticket}", add_to_cart)
    app.router.add_post("/carts/{cart}/checkout", checkout)
    return app


@pytest_asyncio.fixture
async def shop_app(
    openticket_fake: FakeOpenTicket[FakeClock], openticket_client: OpenTicketClient
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], str]]:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=10)
    method = openticket_fake.add_payment_method(shop)
    app = make_shop_app(openticket_client, shop.guid, method.guid)
    async with TestClient(TestServer(app)) as http:
        yield http, ticket.guid


@pytest.mark.asyncio
async def test_checkout_endpoint_orders_a_fresh_cart(
    shop_app: tuple[TestClient[web.Request, web.Application], str],
    openticket_fake: FakeOpenTicket[FakeClock],
) -> None:
    http, ticket = shop_app
    assert (await http.post(f"/carts/c1/tickets/{ticket}")).status == 200
    response = await http.post("/carts/c1/checkout")
    assert response.status == 201
    assert (await response.json())["order"] == openticket_fake.orders[0].guid


@pytest.mark.asyncio
async def test_checkout_endpoint_says_so_when_the_cart_sat_past_the_drop(
    shop_app: tuple[TestClient[web.Request, web.Application], str],
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_clock: FakeClock,
) -> None:
    http, ticket = shop_app
    await http.post(f"/carts/c1/tickets/{ticket}")
    await openticket_clock.advance(EIGHT_MINUTES)  # the customer went for coffee
    response = await http.post("/carts/c1/checkout")
    assert response.status == 409
    assert await response.json() == {"error": "your tickets were released"}
    assert openticket_fake.stock_left(ticket) == 10


@pytest.mark.asyncio
async def test_cart_endpoint_rides_out_a_busy_api(
    shop_app: tuple[TestClient[web.Request, web.Application], str],
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_clock: FakeClock,
) -> None:
    http, ticket = shop_app
    openticket_fake.faults.status("reserve", 503, retry_after=5)

    async def add_to_cart() -> int:
        response = await http.post(f"/carts/c1/tickets/{ticket}")
        return response.status

    adding = asyncio.create_task(add_to_cart())
    await openticket_clock.advance(5)  # the client waits out Retry-After on the fake clock
    assert await adding == 200
    assert len(openticket_fake.live_reservations()) == 1
