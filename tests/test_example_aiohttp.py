"""examples/aiohttp_checkout.py against the fake OpenTicket server on 127.0.0.1.

The application runs on aiohttp's TestServer (its cleanup_ctx entered on
start, left on close); the fake API and the clock come from the plugin fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp_checkout import make_app

from openticket_async import BearerToken, OpenTicketClient
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeTicket

pytestmark = pytest.mark.asyncio

Http = TestClient[web.Request, web.Application]
Shop = Callable[[], AbstractAsyncContextManager[tuple[Http, FakeTicket]]]


@pytest.fixture
def shop(openticket_fake: FakeOpenTicket[FakeClock], openticket_clock: FakeClock) -> Shop:
    """Starts the application (its cleanup_ctx) on a shop with one unit of one ticket.

    Entered inside each test, not in a fixture: the manager's task group must be
    left by the task that entered it, and pytest-asyncio may finish an async
    fixture in another task. ``web.run_app`` starts and cleans up in one task.
    """
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=1)
    method = openticket_fake.add_payment_method(shop)
    token = openticket_fake.issue_token().access_token

    @asynccontextmanager
    async def start() -> AsyncIterator[tuple[Http, FakeTicket]]:
        app = make_app(
            lambda: OpenTicketClient(
                auth=BearerToken(token), hosts=openticket_fake.hosts, clock=openticket_clock
            ),
            shop_guid=shop.guid,
            payment_method=method.guid,
        )
        async with TestClient(TestServer(app)) as http:
            yield http, ticket

    return start


async def test_a_cart_rides_out_the_drop_and_checks_out(
    shop: Shop, openticket_fake: FakeOpenTicket[FakeClock], openticket_clock: FakeClock
) -> None:
    async with shop() as (http, ticket):
        added = await http.post(f"/carts/c1/tickets/{ticket.guid}")
        first = openticket_fake.live_reservations(ticket)
        await openticket_clock.advance(timedelta(minutes=10))  # the customer went for coffee
        response = await http.post("/carts/c1/checkout")
        body = await response.json()

    assert added.status == 200
    assert response.status == 201
    [order] = openticket_fake.orders
    assert body == {"order": order.guid}
    [line] = order.lines
    assert line.reservation_guid not in {r.guid for r in first}  # a renewed reservation


async def test_a_sold_out_ticket_is_409(shop: Shop) -> None:
    async with shop() as (http, ticket):
        taken = await http.post(f"/carts/c1/tickets/{ticket.guid}")
        refused = await http.post(f"/carts/c2/tickets/{ticket.guid}")
        body = await refused.json()

    assert taken.status == 200
    assert refused.status == 409
    assert body == {"error": "sold_out"}


async def test_a_bad_ticket_guid_is_422_and_nothing_is_sent(
    shop: Shop, openticket_fake: FakeOpenTicket[FakeClock]
) -> None:
    async with shop() as (http, _):
        response = await http.post("/carts/c1/tickets/not-a-guid")
        body = await response.json()

    assert response.status == 422
    assert body["error"] == "invalid"
    assert openticket_fake.requests == []


async def test_closing_the_app_stops_the_renewals(
    shop: Shop, openticket_fake: FakeOpenTicket[FakeClock], openticket_clock: FakeClock
) -> None:
    async with shop() as (http, ticket):
        await http.post(f"/carts/c1/tickets/{ticket.guid}")
        await openticket_clock.advance(timedelta(minutes=10))
        sent = len(openticket_fake.requests)  # the reserve and a renewal

    await openticket_clock.advance(timedelta(minutes=30))  # the manager is gone: no renewal
    assert sent >= 2
    assert len(openticket_fake.requests) == sent
