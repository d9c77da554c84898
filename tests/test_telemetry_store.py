"""A shared store's metrics on the real SDK and a real redis-server: takeovers, lease
lapses and outages.

First what a claim says about each hold it hands out (``Due.lapsed`` and
``Due.takeover``, from the CLAIM script), then the counters the manager makes of
them: two managers standing for two workers on one FakeClock and the fake
server, then a worker process killed mid-renewal and a survivor here, on real
time (about 10 s). Last the outage counter, read through the store's public
health read while the session's redis-server is stopped and started again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from conftest import RedisServer
from redis_processes import Worker
from telemetry_helpers import Recorded

from openticket_async import (
    BearerToken,
    HoldPolicy,
    HoldState,
    OpenTicketClient,
    Renewed,
    ReservationManager,
    StoreHealth,
    SystemClock,
)
from openticket_async.stores import MonitoredStore
from openticket_async.stores.redis import RedisStore
from openticket_async.testing import FakeClock, FakeOpenTicket
from openticket_async.testing.store_conformance import StoreKit

pytestmark = [pytest.mark.asyncio, pytest.mark.redis]

LEASE = 5.0
# A short TTL keeps the virtual time, and so the managers' polls of Redis, few; renewals
# come 99 s after a reserve, and a claim's lease is a third of renew_before (6.7 s).
TTL = 120.0
POLICY = HoldPolicy(
    max_hold=None, renew_jitter=0, renew_before=20, warn_before=20, safety_margin=1
)
RENEW_AT = TTL - 1 - 20
TAKEOVERS, LAPSES = "openticket.store.takeovers", "openticket.store.lease_lapses"


def total(recorded: Recorded, name: str) -> int:
    """The sum of a counter's data points; 0 while nothing was counted (no point yet)."""
    return sum(int(point.value) for point in recorded.metrics().get(name, []))


# -- what a claim says about each hold ----------------------------------------------------


@pytest_asyncio.fixture
async def kit(redis_url: str, redis_prefix: str) -> AsyncIterator[StoreKit]:
    kit = StoreKit(lambda: RedisStore(redis_url, prefix=redis_prefix, lease=LEASE), FakeClock())
    yield kit
    await kit.close()


async def test_a_claim_of_a_plan_another_worker_wrote_back_is_neither(kit: StoreKit) -> None:
    writer, claimer = await kit.store(), await kit.store()
    await writer.save(kit.hold(), "renew", kit.at(writer, 0))
    [due] = await claimer.claim_due(kit.at(claimer, 0), 10)
    assert (due.lapsed, due.takeover) == (False, False)


async def test_a_claim_of_a_dead_workers_unfinished_claim_is_a_takeover_and_a_lapse(
    kit: StoreKit,
) -> None:
    dead, alive = await kit.store(), await kit.store()
    await dead.save(kit.hold(), "warn", kit.at(dead, 0))
    await dead.claim_due(kit.at(dead, 0), 10)  # ... and the worker dies before writing back
    [due] = await alive.claim_due(kit.at(alive, LEASE), 10)
    assert (due.lapsed, due.takeover) == (True, True)


async def test_a_claim_of_this_workers_own_lapsed_claim_is_a_lapse_not_a_takeover(
    kit: StoreKit,
) -> None:
    store = await kit.store()
    await store.save(kit.hold(), "warn", kit.at(store, 0))
    await store.claim_due(kit.at(store, 0), 10)  # stalled past its lease, no write-back
    [due] = await store.claim_due(kit.at(store, LEASE), 10)
    assert (due.lapsed, due.takeover) == (True, False)


async def test_the_safety_net_of_a_renewal_running_here_is_neither(kit: StoreKit) -> None:
    store = await kit.store()
    hold = kit.hold()
    await store.save(hold, "renew", kit.at(store, 0))
    [claim] = await store.claim_due(kit.at(store, 0), 10)
    hold.state = HoldState.RENEWING  # the renewal runs here; its safety net comes before
    await store.save(hold, "warn", kit.at(store, 1), claim.fence)  # the lease ends
    [safety] = await store.claim_due(kit.at(store, 1), 10)
    assert (safety.action, safety.lapsed, safety.takeover) == ("warn", False, False)


# -- the counters of two workers ----------------------------------------------------------


class World:
    """The fake server on a FakeClock, one client, and managers on one Redis prefix."""

    def __init__(self, fake: FakeOpenTicket[FakeClock], client: OpenTicketClient,
                 store: Callable[[], RedisStore]) -> None:
        self.fake = fake
        self.client = client
        self.store = store

    def manager(self, recorded: Recorded) -> ReservationManager:
        return ReservationManager(self.client, policy=POLICY, store=self.store(),
                                  telemetry=recorded.telemetry)

    async def fill(self, manager: ReservationManager, holds: int) -> list[Any]:
        shop = self.fake.add_shop()
        cart = manager.cart(shop.guid, cart_id="shared")
        tickets = [self.fake.add_ticket(shop, stock=5) for _ in range(holds)]
        return [(await cart.add(ticket.guid))[0] for ticket in tickets]


@pytest_asyncio.fixture
async def world(redis_url: str, redis_prefix: str) -> AsyncIterator[World]:
    async with FakeOpenTicket(FakeClock(), reservation_ttl=TTL) as fake:
        token = fake.issue_token().access_token
        async with OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock,
                                    reservation_ttl=TTL) as client:
            yield World(fake, client,
                        lambda: RedisStore(redis_url, prefix=redis_prefix, policy=POLICY))


async def test_holds_taken_over_from_a_worker_closed_mid_renewal_count_once_each(
    world: World,
) -> None:
    leaving, staying = Recorded(), Recorded()
    clock = world.fake.clock
    async with world.manager(leaving) as first:
        await world.fill(first, 3)
        world.fake.faults.delay("reserve", 30.0, times=3)  # its renewals stay on the wire
        await clock.advance(RENEW_AT + 0.5)
    # closed with three renewals in flight: their leases end now, unfinished
    async with world.manager(staying):
        await clock.advance(1)
        taken_over = (total(staying, TAKEOVERS), total(staying, LAPSES))
        # two more renewals each, of plans the survivor wrote back. Each claim is a
        # round trip to a real Redis that the virtual clock does not wait for, so
        # the clock goes on a second at a time until all are claimed (at most three
        # renewal intervals): a jump of half an interval could read the count
        # before the last round trip was answered
        claims = total(staying, "openticket.store.claims")
        for _ in range(int(3 * RENEW_AT)):
            if claims >= 3 + 3 * 2:
                break
            await clock.advance(1)
            claims = total(staying, "openticket.store.claims")
        kept = (total(staying, TAKEOVERS), total(staying, LAPSES))
    assert taken_over == kept == (3, 3)
    assert claims >= 3 + 3 * 2
    assert (total(leaving, TAKEOVERS), total(leaving, LAPSES)) == (0, 0)


async def test_plans_written_back_by_a_worker_that_closed_are_claimed_as_neither(
    world: World,
) -> None:
    first_run, second_run = Recorded(), Recorded()
    async with world.manager(first_run) as first:
        await world.fill(first, 3)  # plans saved; nothing on the wire when it closes
    async with world.manager(second_run):
        for _ in range(4):  # two renewals each
            await world.fake.clock.advance(RENEW_AT / 2)
        claims = total(second_run, "openticket.store.claims")
    assert claims >= 3 * 2
    assert (total(second_run, TAKEOVERS), total(second_run, LAPSES)) == (0, 0)


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_holds_of_a_worker_killed_mid_renewal_count_once_each_in_the_survivor(
    redis_url: str, redis_prefix: str
) -> None:
    # Real time: the only clock separate processes share (as in test_redis_multiprocess).
    # The victim stalls each renewal after its reserve came back: killed then, its three
    # claims stay unfinished; the survivor, here, starts after the kill and takes them.
    ttl, policy = 6.0, {"renew_before": 2.0, "warn_before": 3.0, "safety_margin": 0.3,
                        "renew_jitter": 0.0, "max_hold": None}
    recorded = Recorded()
    async with FakeOpenTicket(SystemClock(), reservation_ttl=ttl) as fake:
        shop = fake.add_shop()
        tickets = [fake.add_ticket(shop, stock=5).guid for _ in range(3)]
        victim = await Worker.start("victim", {
            "mode": "holds", "redis": redis_url, "prefix": redis_prefix, "ttl": ttl,
            "policy": policy, "token": fake.issue_token().access_token, "stall": True,
            "hosts": {"auth": fake.hosts.auth, "api": fake.hosts.api, "shop": fake.hosts.shop},
        })
        try:
            await victim.expect(lambda r: r["ev"] == "ready")
            await victim.send({"cmd": "add", "shop": shop.guid, "cart": "c", "tickets": tickets})
            await victim.expect(lambda r: r["ev"] == "added")
            await victim.expect(lambda r: sum(x["ev"] == "stalled" for x in victim.records) == 3)
        finally:
            victim.kill()
            await victim.process.wait()
        token = fake.issue_token().access_token
        async with (
            OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts,
                             reservation_ttl=ttl) as client,
            ReservationManager(
                client, policy=HoldPolicy(**policy), telemetry=recorded.telemetry,
                store=RedisStore(redis_url, prefix=redis_prefix, lease=1.0),
            ) as survivor,
        ):
            renewed: list[Renewed] = []
            survivor.on(Renewed, renewed.append)
            async with asyncio.timeout(20):  # each taken over, then renewed from its own plan
                while len({e.hold.id for e in renewed if e.hold.renewals >= 2}) < 3:
                    await asyncio.sleep(0.05)  # real time runs the scenario; this only looks
            counts = (total(recorded, TAKEOVERS), total(recorded, LAPSES))
            claims = total(recorded, "openticket.store.claims")
    assert counts == (3, 3)
    assert claims >= 3 * 2


# -- outages, through the store's health read -----------------------------------------------


@pytest.mark.realtime
async def test_an_outage_reads_as_unavailable_and_counts_once_per_period(
    world: World, redis_server: RedisServer
) -> None:
    recorded = Recorded()
    clock = world.fake.clock
    async with world.manager(recorded) as manager:
        store = manager.store
        assert isinstance(store, MonitoredStore)
        seen = []
        for _outage in range(2):
            redis_server.stop()
            await clock.advance(2)  # four polls of an unreachable Redis
            seen.append((store.available, manager.stats().store))
            redis_server.start()
            await clock.advance(1)
            seen.append((store.available, manager.stats().store))
    assert seen == [(False, StoreHealth.UNAVAILABLE), (True, StoreHealth.AVAILABLE)] * 2
    assert total(recorded, "openticket.store.unavailable") == 2
