"""examples/fastapi_checkout.py against the fake OpenTicket server on 127.0.0.1.

The service runs in-process (httpx's ASGI transport, its lifespan entered by
hand); the fake API and the clock come from the openticket pytest fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from fastapi_checkout import REDIS_VARIABLE, TOKEN_VARIABLE, create_app

from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop

pytestmark = pytest.mark.asyncio

BUYER = {"email": "ada@example.com", "firstname": "Ada", "lastname": "Lovelace"}

Service = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def service(
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Service:
    """Starts one worker of the service (its lifespan) and an HTTP client for it."""
    monkeypatch.delenv(REDIS_VARIABLE, raising=False)
    token = openticket_fake.issue_token().access_token

    @asynccontextmanager
    async def start() -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(token=token, hosts=openticket_fake.hosts, clock=openticket_clock)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://checkout"
            ) as http,
        ):
            yield http

    return start


@pytest.fixture
def shop(openticket_fake: FakeOpenTicket[FakeClock]) -> FakeShop:
    return openticket_fake.add_shop()


async def new_cart(http: httpx.AsyncClient, shop: FakeShop) -> str:
    response = await http.post(f"/shops/{shop.guid}/carts")
    assert response.status_code == 201
    cart_id: str = response.json()["cart_id"]
    return cart_id


async def test_a_cart_reached_by_id_rides_out_drops_and_checks_out_once(
    service: Service,
    shop: FakeShop,
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_clock: FakeClock,
) -> None:
    ticket = openticket_fake.add_ticket(shop, stock=5)
    method = openticket_fake.add_payment_method(shop)
    async with service() as http:
        cart = await new_cart(http, shop)
        added = await http.post(f"/shops/{shop.guid}/carts/{cart}/tickets/{ticket.guid}?quantity=2")
        assert added.status_code == 200

        await openticket_clock.advance(timedelta(minutes=20))  # two and a half drops
        shown = (await http.get(f"/shops/{shop.guid}/carts/{cart}")).json()
        checkout = await http.post(
            f"/shops/{shop.guid}/carts/{cart}/checkout",
            json={**BUYER, "payment_method": method.guid},
        )

    assert [hold["state"] for hold in shown["holds"]] == ["active", "active"]
    assert all(hold["renewals"] >= 2 for hold in shown["holds"])
    assert checkout.status_code == 201
    [order] = openticket_fake.orders
    assert checkout.json() == {"order": order.guid}
    assert len(order.lines) == 2


async def test_a_sold_out_ticket_is_409(
    service: Service, shop: FakeShop, openticket_fake: FakeOpenTicket[FakeClock]
) -> None:
    ticket = openticket_fake.add_ticket(shop, stock=1)
    async with service() as http:
        first, second = await new_cart(http, shop), await new_cart(http, shop)
        taken = await http.post(f"/shops/{shop.guid}/carts/{first}/tickets/{ticket.guid}")
        refused = await http.post(f"/shops/{shop.guid}/carts/{second}/tickets/{ticket.guid}")
        left = (await http.get(f"/shops/{shop.guid}/carts/{second}")).json()

    assert taken.status_code == 200
    assert refused.status_code == 409
    assert refused.json()["error"] == "sold_out"
    assert left["holds"] == []


@pytest.mark.parametrize("bad", ["not-a-guid", "a%3Fb%3D1", "12345678-1234-1234-1234-12345678901z"])
async def test_a_bad_guid_is_422_and_nothing_reaches_openticket(
    service: Service, shop: FakeShop, openticket_fake: FakeOpenTicket[FakeClock], bad: str
) -> None:
    async with service() as http:
        cart = await new_cart(http, shop)
        bad_ticket = await http.post(f"/shops/{shop.guid}/carts/{cart}/tickets/{bad}")
        bad_shop = await http.post(f"/shops/{bad}/carts")

    assert bad_ticket.status_code == 422
    assert bad_ticket.json()["error"] == "invalid"
    assert bad_shop.status_code == 422
    assert openticket_fake.requests == []


async def test_the_token_comes_from_the_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    with pytest.raises(KeyError):
        create_app()
    monkeypatch.setenv(TOKEN_VARIABLE, "at_from-the-environment")
    assert create_app().title == "checkout"


@pytest.mark.redis
async def test_with_redis_a_second_worker_checks_out_the_cart_the_first_filled(
    service: Service,
    shop: FakeShop,
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_clock: FakeClock,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticket = openticket_fake.add_ticket(shop, stock=5)
    method = openticket_fake.add_payment_method(shop)
    monkeypatch.setenv(REDIS_VARIABLE, redis_url)
    async with service() as blue, service() as green:
        cart = await new_cart(blue, shop)
        added = await blue.post(f"/shops/{shop.guid}/carts/{cart}/tickets/{ticket.guid}")
        await openticket_clock.advance(timedelta(minutes=10))  # renewed through Redis
        seen = (await green.get(f"/shops/{shop.guid}/carts/{cart}")).json()
        checkout = await green.post(
            f"/shops/{shop.guid}/carts/{cart}/checkout",
            json={**BUYER, "payment_method": method.guid},
        )

    assert added.status_code == 200
    [hold] = seen["holds"]
    assert hold["id"] == added.json()["added"][0]["id"]
    assert hold["renewals"] >= 1
    assert checkout.status_code == 201
    assert [order.guid for order in openticket_fake.orders] == [checkout.json()["order"]]


async def test_healthz_reports_the_managers_holds_and_store(
    service: Service, shop: FakeShop, openticket_fake: FakeOpenTicket[FakeClock]
) -> None:
    ticket = openticket_fake.add_ticket(shop, stock=5)
    async with service() as http:
        cart = await new_cart(http, shop)
        await http.post(f"/shops/{shop.guid}/carts/{cart}/tickets/{ticket.guid}?quantity=2")
        health = await http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {
        "holds": {"active": 2, "renewing": 0, "at_risk": 0},
        "carts": 1,
        "renewals_in_flight": 0,
        "lateness_p99": None,
        "store": "memory",
    }
