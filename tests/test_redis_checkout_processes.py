"""Checkout claims between worker processes on a real Redis, on real time.

As in test_redis_multiprocess: the fake OpenTicket server runs here on
127.0.0.1 with the system clock; the workers (tests/redis_worker.py) are
separate processes, each with its own manager and RedisStore, whose cart
claims run on Redis's own clock. Worker records and the fake server's request
log share one clock (CLOCK_MONOTONIC), so their times compare.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from redis_processes import Sampler, Worker, close_pairs

from openticket_async import HoldPolicy, SystemClock
from openticket_async.stores import claim_lease
from openticket_async.testing import FakeOpenTicket, FakeShop

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TTL = 6.0
POLICY = {
    "renew_before": 2.0,
    "warn_before": 3.0,
    "safety_margin": 0.3,
    "renew_jitter": 0.2,
    "max_hold": None,
}
#: The checkout claim's lease under POLICY (1 s).
LEASE = claim_lease(HoldPolicy(**POLICY))  # type: ignore[arg-type]
#: How often a worker on a shared store polls for due work (the manager's SHARED_POLL).
POLL = 0.5


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenTicket[SystemClock]]:
    async with FakeOpenTicket(SystemClock(), reservation_ttl=TTL) as server:
        yield server


def config(fake: FakeOpenTicket[SystemClock], redis_url: str, prefix: str, **extra: Any) -> Any:
    return {
        "mode": "holds", "redis": redis_url, "prefix": prefix, "ttl": TTL, "policy": POLICY,
        "token": fake.issue_token().access_token,
        "hosts": {"auth": fake.hosts.auth, "api": fake.hosts.api, "shop": fake.hosts.shop},
        **extra,
    }


async def fill(worker: Worker, shop: FakeShop, tickets: list[str]) -> dict[str, Any]:
    await worker.send({"cmd": "add", "shop": shop.guid, "cart": "cart", "tickets": tickets})
    return await worker.expect(lambda r: r["ev"] == "added")  # type: ignore[no-any-return]


def reserve_times(fake: FakeOpenTicket[SystemClock]) -> list[float]:
    return [request.time for request in fake.requests if request.route == "reserve"]


async def order_arrived(fake: FakeOpenTicket[SystemClock]) -> float:
    async with asyncio.timeout(10):
        while not any(request.route == "order" for request in fake.requests):
            await asyncio.sleep(0.02)  # real time runs the scenario; this only looks
    return next(request.time for request in fake.requests if request.route == "order")


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_checkout_holds_off_a_due_renewal_and_a_second_checkout_in_another_worker(
    fake: FakeOpenTicket[SystemClock], redis_url: str, redis_prefix: str
) -> None:
    shop = fake.add_shop()
    method = fake.add_payment_method(shop).guid
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(2)]
    buyer = await Worker.start("buyer", config(fake, redis_url, redis_prefix))
    other = await Worker.start("other", config(fake, redis_url, redis_prefix))
    try:
        for worker in (buyer, other):
            await worker.expect(lambda r: r["ev"] == "ready")
        added = await fill(buyer, shop, tickets)
        # the order waits at the server past the holds' renewal time (~3.6 s after
        # they were made) and within their reservations' life (6 s)
        fake.faults.delay("order", 4.4, real=True)
        await buyer.send({"cmd": "checkout", "shop": shop.guid, "cart": "cart", "method": method})
        ordering = await order_arrived(fake)
        await other.send({"cmd": "checkout", "shop": shop.guid, "cart": "cart", "method": method})
        second = await other.expect(lambda r: r["ev"] in ("in-progress", "ordered", "failed"))
        ordered = await buyer.expect(lambda r: r["ev"] in ("ordered", "failed"), timeout=20)
        await other.send({"cmd": "holds", "shop": shop.guid, "cart": "cart"})
        seen = await other.expect(lambda r: r["ev"] == "holds")
    finally:
        for worker in (buyer, other):
            await worker.stop()
    assert ordered["ev"] == "ordered"
    assert second["ev"] == "in-progress"
    assert [order.guid for order in fake.orders] == [ordered["order"]]
    assert ordered["t"] - added["t"] > 4.0  # a renewal came due while the claim was held
    assert [t for t in reserve_times(fake) if ordering <= t <= ordered["t"]] == []
    assert [e for e in other.events() if e["kind"] == "Renewed"] == []
    assert (seen["live"], set(seen["states"].values())) == (0, {"ordered"})  # it follows


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_claim_of_a_killed_checkout_lapses_within_a_lease_and_renewals_resume(
    fake: FakeOpenTicket[SystemClock], redis_url: str, redis_prefix: str
) -> None:
    shop = fake.add_shop()
    method = fake.add_payment_method(shop).guid
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(2)]
    buyer = await Worker.start("buyer", config(fake, redis_url, redis_prefix, stall_order=True))
    other = await Worker.start("other", config(fake, redis_url, redis_prefix))
    try:
        for worker in (buyer, other):
            await worker.expect(lambda r: r["ev"] == "ready")
        added = await fill(buyer, shop, tickets)
        await buyer.send({"cmd": "checkout", "shop": shop.guid, "cart": "cart", "method": method})
        claimed = await buyer.expect(lambda r: r["ev"] == "order-stalled")
        await other.send({"cmd": "checkout", "shop": shop.guid, "cart": "cart", "method": method})
        second = await other.expect(lambda r: r["ev"] in ("in-progress", "ordered", "failed"))
        async with asyncio.timeout(10):
            while fake.clock.now() < added["t"] + 4.0:  # the renewals are due by now
                await asyncio.sleep(0.02)  # real time runs the scenario; this only looks
        buyer.kill()
        killed = fake.clock.now()
        await buyer.process.wait()
        renewed = [
            await other.expect(
                lambda r, h=hold["id"]: r["ev"] == "event" and r["kind"] == "Renewed"
                and r["hold"] == h
            )
            for hold in added["holds"]
        ]
        await other.send({"cmd": "checkout", "shop": shop.guid, "cart": "cart", "method": method})
        ordered = await other.expect(lambda r: r["ev"] in ("ordered", "failed"), timeout=20)
    finally:
        await other.stop()
        await buyer.stop()
    assert second["ev"] == "in-progress"
    assert [t for t in reserve_times(fake) if claimed["t"] <= t <= killed] == []
    first_after = min(t for t in reserve_times(fake) if t > killed)
    print(f"\nfirst reserve {first_after - killed:.2f} s after the kill (lease {LEASE} s)")
    assert first_after - killed <= LEASE + POLL + 0.5  # lapsed within one lease (+ a poll)
    assert all(event["t"] > killed for event in renewed)
    assert ordered["ev"] == "ordered"
    assert [order.guid for order in fake.orders] == [ordered["order"]]


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_two_workers_renew_hundreds_of_times_without_a_duplicate_reserve(
    fake: FakeOpenTicket[SystemClock], redis_url: str, redis_prefix: str
) -> None:
    shop = fake.add_shop()
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(24)]
    sampler = Sampler(fake)
    workers = [
        await Worker.start(name, config(fake, redis_url, redis_prefix)) for name in ("a", "b")
    ]
    try:
        for worker in workers:
            await worker.expect(lambda r: r["ev"] == "ready")
        await fill(workers[0], shop, tickets)

        def renewals() -> int:
            return sum(
                1 for w in workers for e in w.events() if e["kind"] == "Renewed"
            )

        async with asyncio.timeout(90):
            while renewals() < 300:
                await asyncio.sleep(0.1)  # real time runs the scenario; this only looks
        await workers[1].send({"cmd": "close", "shop": shop.guid, "cart": "cart"})
        await workers[1].expect(lambda r: r["ev"] == "closed")
    finally:
        for worker in workers:
            await worker.stop()
        await sampler.stop()
    by_ticket: dict[str, list[float]] = defaultdict(list)
    for record in sampler.seen.values():
        by_ticket[record.ticket_guid].append(record.reserved_at)
    # one hold per ticket: a ticket's reserves are its hold's
    events = [e for w in workers for e in w.events() if e["kind"] == "Renewed"]
    by_hold: dict[str, list[float]] = defaultdict(list)
    for event in events:
        by_hold[event["hold"]].append(event["t"])
    reserves, renewed = close_pairs(by_ticket), close_pairs(by_hold)
    print(f"\nrenewals={len(events)} reserves={len(sampler.seen)}"
          f" duplicate_reserves={reserves} duplicate_renewals={renewed}")
    assert len(events) >= 300
    assert {e["worker"] for e in events} == {"a", "b"}  # both workers renewed
    assert (reserves, renewed) == (0, 0)

