"""examples/renewal_worker.py against the fake OpenTicket server and a real redis-server.

The web workers that fill the carts are played by managers on the same
RedisStore that leave before the worker starts (scaled down, redeployed): every
renewal after that is the worker's. The fake API, its client and the clock come
from the plugin fixtures; redis-server from tests/conftest.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from renewal_worker import POLICY, fleet_worker

from openticket_async import OpenTicketClient, Receiver, ReservationManager
from openticket_async.stores.redis import RedisStore
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket

pytestmark = [pytest.mark.asyncio, pytest.mark.redis]

Stores = Callable[[], RedisStore]
RECEIVER = Receiver(email="ada@example.com", firstname="Ada", lastname="Lovelace")


@pytest.fixture
def stores(redis_url: str, redis_prefix: str) -> Stores:
    """A new RedisStore on this test's prefix: one per worker, as in separate processes."""
    return lambda: RedisStore(redis_url, prefix=redis_prefix, policy=POLICY)


@pytest.fixture
def shop(openticket_fake: FakeOpenTicket[FakeClock]) -> FakeShop:
    return openticket_fake.add_shop()


async def web_worker_fills_a_cart(
    client: OpenTicketClient, store: RedisStore, shop: FakeShop, tickets: list[FakeTicket]
) -> str:
    """A web worker adds the tickets to a new cart and goes away; returns the cart id."""
    async with ReservationManager(client, policy=POLICY, store=store) as web:
        cart = web.cart(shop.guid)
        for ticket in tickets:
            await cart.add(ticket.guid)
        return cart.id


def live_guids(fake: FakeOpenTicket[FakeClock], tickets: list[FakeTicket]) -> set[str]:
    return {r.guid for ticket in tickets for r in fake.live_reservations(ticket)}


async def test_the_worker_keeps_a_cart_valid_after_its_web_worker_went_away(
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
    stores: Stores,
    shop: FakeShop,
) -> None:
    tickets = [openticket_fake.add_ticket(shop, stock=2) for _ in range(2)]
    method = openticket_fake.add_payment_method(shop)
    cart_id = await web_worker_fills_a_cart(openticket_client, stores(), shop, tickets)

    async with fleet_worker(openticket_client, stores()) as tally:
        await openticket_clock.advance(timedelta(minutes=20))  # two 8-minute drops
        async with ReservationManager(openticket_client, policy=POLICY, store=stores()) as web:
            cart = web.cart(shop.guid, cart_id=cart_id)
            await cart.load()  # the customer comes back, to any web worker
            held = {hold.reservation.guid for hold in cart.holds if hold.reservation}
            live = live_guids(openticket_fake, tickets)
            order = await cart.checkout(
                receiver=RECEIVER, payment_method=method.guid, currency="EUR"
            )

    assert held == live
    assert len(held) == 2
    assert tally.renewed >= 4  # each hold renewed before each drop, all by the worker
    assert tally.lost == []
    [record] = openticket_fake.orders
    assert record.guid == order.guid
    assert len(record.lines) == 2


async def test_a_stopped_worker_releases_nothing_and_the_next_one_takes_over(
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
    stores: Stores,
    shop: FakeShop,
) -> None:
    ticket = openticket_fake.add_ticket(shop, stock=2)
    await web_worker_fills_a_cart(openticket_client, stores(), shop, [ticket])

    async with fleet_worker(openticket_client, stores()) as first:
        await openticket_clock.advance(timedelta(minutes=10))
    left_behind = live_guids(openticket_fake, [ticket])
    async with fleet_worker(openticket_client, stores()) as second:
        await openticket_clock.advance(timedelta(minutes=10))
    kept = live_guids(openticket_fake, [ticket])

    assert first.renewed >= 1
    assert len(left_behind) == 1  # the worker's renewal, still held after it stopped
    assert second.renewed >= 1
    assert len(kept) == 1
    assert kept != left_behind  # renewed again, by the second worker


async def test_a_hold_the_fleet_cannot_renew_is_reported_at_risk_then_lost(
    openticket_fake: FakeOpenTicket[FakeClock],
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
    stores: Stores,
    shop: FakeShop,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticket = openticket_fake.add_ticket(shop, stock=1)
    cart_id = await web_worker_fills_a_cart(openticket_client, stores(), shop, [ticket])
    openticket_fake.faults.status("reserve", 409, times=None)  # sold out, from now on

    with caplog.at_level(logging.WARNING, logger="renewal_worker"):
        async with fleet_worker(openticket_client, stores()) as tally:
            await openticket_clock.advance(timedelta(minutes=10))

    [hold_id] = tally.lost
    assert tally.at_risk == [hold_id]
    assert tally.renewed == 0
    # the worker's own lines (the manager logs the same story on its logger too)
    records = [r for r in caplog.records if r.name == "renewal_worker"]
    assert [r.levelname for r in records] == ["WARNING", "ERROR"]
    assert f"hold {hold_id} of cart {cart_id} lost" in records[-1].getMessage()
