"""The fleet-wide rate limit: PacedClient on a real Redis, the fake server and a FakeClock.

Two paced clients on one Redis and prefix stand for two workers: what one
learns (a 429) or takes (a slot under the ceiling) paces the other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from openticket_async import (
    BearerToken,
    HoldPolicy,
    InvalidArgument,
    OpenTicketClient,
    RateLimited,
    RetryPolicy,
)
from openticket_async.stores.redis import PacedClient, RedisStore
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop

pytestmark = pytest.mark.redis

ONE_TRY = RetryPolicy(attempts=1)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenTicket[FakeClock]]:
    async with FakeOpenTicket(FakeClock()) as server:
        yield server


@pytest_asyncio.fixture
async def client(fake: FakeOpenTicket[FakeClock]) -> AsyncIterator[OpenTicketClient]:
    token = fake.issue_token().access_token
    async with OpenTicketClient(
        auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock
    ) as made:
        yield made


@pytest_asyncio.fixture
async def stores(
    fake: FakeOpenTicket[FakeClock], redis_url: str, redis_prefix: str
) -> AsyncIterator[list[RedisStore]]:
    made = [RedisStore(redis_url, prefix=redis_prefix) for _ in range(2)]
    for store in made:
        store.bind(fake.clock, HoldPolicy())
    yield made
    for store in made:
        await store.aclose()


def reserve_times(fake: FakeOpenTicket[FakeClock], shop: FakeShop) -> list[float]:
    return [
        request.time for request in fake.requests
        if request.route == "reserve" and shop.guid in request.path
    ]


async def settle(tasks: list[asyncio.Task[object]], fake: FakeOpenTicket[FakeClock]) -> None:
    """Move virtual time on in small steps until every task is done."""
    while not all(task.done() for task in tasks):
        await fake.clock.advance(0.05)


@pytest.mark.asyncio
async def test_a_429_seen_by_one_worker_holds_the_others_calls_to_that_shop_off(
    fake: FakeOpenTicket[FakeClock], client: OpenTicketClient, stores: list[RedisStore]
) -> None:
    shop, other_shop = fake.add_shop(), fake.add_shop()
    ticket, other_ticket = fake.add_ticket(shop).guid, fake.add_ticket(other_shop).guid
    first, second = (store.paced(client) for store in stores)
    fake.faults.status("reserve", 429, retry_after=30)
    with pytest.raises(RateLimited):
        await first.reserve_ticket(shop.guid, ticket, retry=ONE_TRY)
    [refused_at] = reserve_times(fake, shop)
    await second.reserve_ticket(other_shop.guid, other_ticket, retry=ONE_TRY)  # not slowed
    task = asyncio.ensure_future(second.reserve_ticket(shop.guid, ticket, retry=ONE_TRY))
    await settle([task], fake)
    assert reserve_times(fake, other_shop) == [refused_at]
    assert reserve_times(fake, shop)[1] >= refused_at + 30


@pytest.mark.asyncio
async def test_the_fleets_calls_to_a_shop_keep_to_its_ceiling(
    fake: FakeOpenTicket[FakeClock], client: OpenTicketClient, stores: list[RedisStore]
) -> None:
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=100).guid
    workers = [store.paced(client, calls_per_second=2.0) for store in stores]
    tasks: list[asyncio.Task[object]] = [
        asyncio.ensure_future(worker.reserve_ticket(shop.guid, ticket, retry=ONE_TRY))
        for _ in range(5) for worker in workers
    ]
    await settle(tasks, fake)
    times = reserve_times(fake, shop)
    assert len(times) == 10
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.5 - 1e-6  # 2 calls per second, whichever worker
    assert times[-1] - times[0] < 4.5 + 0.5  # and no slower than that


@pytest.mark.asyncio
async def test_a_burst_after_a_quiet_spell_goes_at_once(
    fake: FakeOpenTicket[FakeClock], client: OpenTicketClient, stores: list[RedisStore]
) -> None:
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=100).guid
    paced = stores[0].paced(client, calls_per_second={shop.guid: 1.0}, burst=3)
    tasks: list[asyncio.Task[object]] = [
        asyncio.ensure_future(paced.reserve_ticket(shop.guid, ticket, retry=ONE_TRY))
        for _ in range(4)
    ]
    await settle(tasks, fake)
    start = reserve_times(fake, shop)[0]
    assert [round(t - start, 3) for t in reserve_times(fake, shop)] == [0, 0, 0, 1.0]


@pytest.mark.asyncio
async def test_calls_go_out_unpaced_while_redis_is_unreachable(
    fake: FakeOpenTicket[FakeClock], client: OpenTicketClient
) -> None:
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop).guid
    store = RedisStore("redis://127.0.0.1:1/0")
    store.bind(fake.clock, HoldPolicy())
    try:
        paced = store.paced(client, calls_per_second=0.001)
        reservation = await paced.reserve_ticket(shop.guid, ticket, retry=ONE_TRY)
    finally:
        await store.aclose()
    assert reservation.ticket_guid == ticket


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, 1), (-1.0, 1), (float("inf"), 1), (True, 1), ({"s": 0}, 1), (1, 0)]
)
def test_a_bad_ceiling_or_burst_is_refused(
    stores: list[RedisStore], client: OpenTicketClient, rate: object, burst: int
) -> None:
    with pytest.raises(InvalidArgument):
        stores[0].paced(client, calls_per_second=rate, burst=burst)  # type: ignore[arg-type]


def test_a_paced_client_passes_on_the_clients_clock_policy_and_ttl(
    stores: list[RedisStore], client: OpenTicketClient
) -> None:
    paced = stores[0].paced(client)
    assert isinstance(paced, PacedClient)
    assert (paced.clock, paced.retry, paced.reservation_ttl) == (
        client.clock, client.retry, client.reservation_ttl
    )
