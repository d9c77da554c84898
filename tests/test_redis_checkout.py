"""Checkout claims between managers sharing a RedisStore (fake server + FakeClock).

Two managers on one Redis prefix stand for two workers. A checkout claims its
cart: a second checkout elsewhere raises CheckoutInProgress, the other worker
renews none of the cart's holds until the outcome is recorded, and a claim
nobody extends (its worker died) lapses after its lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from manager_helpers import RECEIVER, Recorder

from openticket_async import (
    BearerToken,
    CheckoutInProgress,
    HoldEvent,
    HoldPolicy,
    OpenTicketClient,
    Order,
    Renewed,
    ReservationManager,
)
from openticket_async.stores import CartClaim, claim_lease
from openticket_async.stores.redis import RedisStore
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop

pytestmark = pytest.mark.redis

TTL = 120.0
POLICY = HoldPolicy(
    max_hold=None, renew_jitter=0, renew_before=20, warn_before=20, safety_margin=1
)
#: The checkout claim's lease under POLICY (20 / 3 s).
LEASE = claim_lease(POLICY)
#: When a fresh hold's renewal is due: TTL - safety_margin - renew_before.
RENEW_AT = TTL - 1 - 20

World = tuple[FakeOpenTicket[FakeClock], Callable[[], ReservationManager], Callable[[], RedisStore]]


@pytest_asyncio.fixture
async def world(redis_url: str, redis_prefix: str) -> AsyncIterator[World]:
    async with FakeOpenTicket(FakeClock(), reservation_ttl=TTL) as fake:
        token = fake.issue_token()
        async with OpenTicketClient(
            auth=BearerToken(token.access_token),
            hosts=fake.hosts,
            clock=fake.clock,
            reservation_ttl=TTL,
        ) as client:

            def store() -> RedisStore:
                return RedisStore(redis_url, prefix=redis_prefix, policy=POLICY)

            def manager() -> ReservationManager:
                return ReservationManager(client, policy=POLICY, store=store())

            yield fake, manager, store


async def fill(manager: ReservationManager, shop: FakeShop, tickets: list[str]) -> None:
    async with manager.cart(shop.guid, cart_id="cart") as cart:
        for ticket in tickets:
            await cart.add(ticket)


def checkout(manager: ReservationManager, shop: FakeShop, method: str) -> Awaitable[Order]:
    async def run() -> Order:
        async with manager.cart(shop.guid, cart_id="cart") as cart:
            return await cart.checkout(receiver=RECEIVER, payment_method=method, currency="EUR")

    return run()


def reserves_between(fake: FakeOpenTicket[FakeClock], start: float, end: float) -> int:
    return sum(1 for r in fake.requests if r.route == "reserve" and start <= r.time <= end)


@pytest.mark.asyncio
async def test_second_checkout_elsewhere_raises_while_the_first_order_runs(world: World) -> None:
    fake, make, _store = world
    shop = fake.add_shop()
    method = fake.add_payment_method(shop).guid
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(2)]
    first, second = make(), make()
    async with first, second:
        await fill(first, shop, tickets)
        fake.faults.delay("order", 3 * LEASE)  # outlasts the claim's first lease
        ordering = asyncio.ensure_future(checkout(first, shop, method))
        await fake.clock.advance(2 * LEASE)  # the order waits at the server
        with pytest.raises(CheckoutInProgress) as raised:
            await checkout(second, shop, method)
        assert raised.value.cart_id == "cart"
        assert raised.value.retry_after is not None
        assert 0 < raised.value.retry_after <= LEASE + 1e-3  # Redis keeps microseconds
        await fake.clock.advance(2 * LEASE)
        order = await ordering
    assert len(fake.orders) == 1
    assert fake.orders[0].guid == order.guid


@pytest.mark.asyncio
async def test_other_worker_renews_none_of_a_cart_checking_out(world: World) -> None:
    fake, make, _store = world
    shop = fake.add_shop()
    method = fake.add_payment_method(shop).guid
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(2)]
    recorder = Recorder()
    first, second = make(), make()
    async with first, second:
        second.on(HoldEvent, recorder)
        await fill(first, shop, tickets)
        await fake.clock.advance(RENEW_AT - 3)
        fake.faults.delay("order", 6)  # the holds' renewals come due meanwhile
        start = fake.clock.now()
        ordering = asyncio.ensure_future(checkout(first, shop, method))
        await fake.clock.advance(7)
        await ordering
        end = fake.clock.now()
        async with second.cart(shop.guid, cart_id="cart") as cart:
            assert cart.holds == []  # the second worker follows: its holds ended ORDERED
    assert reserves_between(fake, start, end) == 0
    assert recorder.of(Renewed) == []
    assert len(fake.orders) == 1


@pytest.mark.asyncio
async def test_claim_of_a_dead_worker_lapses_and_renewals_resume(world: World) -> None:
    fake, make, store = world
    shop = fake.add_shop()
    method = fake.add_payment_method(shop).guid
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(2)]
    recorder = Recorder()
    dead = store()
    async with make() as worker:
        worker.on(Renewed, recorder)
        await fill(worker, shop, tickets)
        await fake.clock.advance(RENEW_AT - 1)
        dead.bind(fake.clock, POLICY)
        assert isinstance(await dead.claim_cart("cart", LEASE), CartClaim)
        await dead.aclose()  # it dies holding the claim: nobody extends it
        died = fake.clock.now()
        with pytest.raises(CheckoutInProgress):
            await checkout(worker, shop, method)
        await fake.clock.advance(LEASE - 0.5)
        assert recorder.of(Renewed) == []  # due at RENEW_AT, held off by the claim
        await fake.clock.advance(1)
        renewed = [event.hold.id for event in recorder.of(Renewed)]
        assert len(renewed) == 2
        assert reserves_between(fake, died, died + LEASE) == 0
        order = await checkout(worker, shop, method)
    assert [fake.orders[0].guid] == [order.guid]


@pytest.mark.asyncio
async def test_checkout_waits_for_a_renewal_on_the_wire_elsewhere_and_orders_its_result(
    world: World,
) -> None:
    fake, make, _store = world
    shop = fake.add_shop()
    method = fake.add_payment_method(shop).guid
    ticket = fake.add_ticket(shop, stock=3).guid
    renewer, buyer = make(), make()
    async with renewer:
        await fill(renewer, shop, [ticket])
        await fake.clock.advance(RENEW_AT - 1)
        async with buyer:  # joins only now: the renewal is the other worker's
            fake.faults.delay("reserve", 3)
            await fake.clock.advance(1.5)  # the renewal waits at the server
            assert [r.route for r in fake.requests].count("reserve") == 2
            ordering = asyncio.ensure_future(checkout(buyer, shop, method))
            await fake.clock.advance(0.5)
            assert not ordering.done()  # waiting for the renewal, not refused
            await fake.clock.advance(3)
            order = await ordering
    renewed = fake.orders[0].lines[0].reservation_guid
    assert [line.reservation_guid for line in fake.orders[0].lines] == [renewed]
    assert order.guid == fake.orders[0].guid
    assert [r.route for r in fake.requests].count("reserve") == 2  # no second renewal

