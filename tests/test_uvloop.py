"""The client and the manager on uvloop's event loop, against the fake server on 127.0.0.1.

The rest of the suite runs on asyncio's own loop (pytest-asyncio); these tests
run their scenario in an ``asyncio.Runner`` whose loop is uvloop's, so the
package's claim to work on uvloop is checked in CI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import uvloop

from openticket_async import (
    BearerToken,
    OpenTicketClient,
    Receiver,
    Renewed,
    ReservationManager,
)
from openticket_async.testing import FakeClock, FakeOpenTicket

T = TypeVar("T")
RECEIVER = Receiver(email="ada@example.com", firstname="Ada", lastname="Lovelace")


def on_uvloop(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run ``scenario`` on a new uvloop event loop; fail if the loop is not uvloop's."""

    async def checked() -> T:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        return await scenario()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(checked())


def test_the_client_reserves_and_orders_on_uvloop() -> None:
    async def scenario() -> tuple[str, list[str]]:
        async with FakeOpenTicket() as fake:
            shop = fake.add_shop()
            ticket = fake.add_ticket(shop, stock=1)
            method = fake.add_payment_method(shop)
            token = fake.issue_token().access_token
            async with OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts) as client:
                reservation = await client.reserve_ticket(shop.guid, ticket.guid)
                order = await client.create_order(
                    shop.guid,
                    [reservation],
                    receiver=RECEIVER,
                    payment_method=method.guid,
                    currency="EUR",
                )
            return order.guid, [record.guid for record in fake.orders]

    made, recorded = on_uvloop(scenario)

    assert recorded == [made]


def test_the_manager_renews_across_drops_and_checks_out_on_uvloop() -> None:
    async def scenario() -> tuple[int, int, int]:
        clock = FakeClock()
        async with FakeOpenTicket(clock) as fake:
            shop = fake.add_shop()
            ticket = fake.add_ticket(shop, stock=2)
            method = fake.add_payment_method(shop)
            token = fake.issue_token().access_token
            renewed: list[Renewed] = []
            async with (
                OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts, clock=clock) as client,
                ReservationManager(client) as manager,
            ):
                manager.on(Renewed, renewed.append)
                cart = manager.cart(shop.guid)
                [hold] = await cart.add(ticket.guid)
                await clock.advance(timedelta(minutes=20))  # two 8-minute drops
                await cart.checkout(receiver=RECEIVER, payment_method=method.guid, currency="EUR")
            return hold.renewals, len(renewed), len(fake.orders)

    renewals, events, orders = on_uvloop(scenario)

    assert renewals >= 2
    assert events == renewals
    assert orders == 1
