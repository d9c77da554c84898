"""A fleet of worker processes on one Redis, on real time: skew, restarts, a 429, a failover.

As in test_redis_multiprocess: the fake OpenTicket server runs here on
127.0.0.1 with the system clock and a 6-second reservation TTL; the workers
(tests/redis_worker.py) are separate processes, each with its own manager and
RedisStore. After each scenario: no hold lost (a reservation at the server for
every open hold at every moment) and the duplicate reserves counted.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import signal
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from conftest import RedisServer, SentinelGroup
from redis_processes import Sampler, Worker, assert_no_gap, close_pairs

from openticket_async import SystemClock
from openticket_async.stores.redis._keys import KeyLayout
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
#: Redis restarts in the restart scenarios (with and without persistence).
RESTARTS = 2
#: Two reserves of one hold closer than this are a duplicate (see close_pairs).
DUPLICATE_WITHIN = 1.75
#: The 429's Retry-After in the rate-limit scenario: under renew_before less the margin.
BACKOFF = 1.0
#: Real seconds the 429's worker may take to share it: reserves sent meanwhile go on.
SHARE_WITHIN = 0.1
#: The failover scenario's TTL and policy: renew_before covers the lease (2 s) and a
#: failover (a node is down after 1 s, then the sentinels elect and promote: ~2-3 s).
FAILOVER_TTL = 12.0
FAILOVER_POLICY = {**POLICY, "renew_before": 6.0, "warn_before": 7.0}


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


async def fill(worker: Worker, shop: FakeShop, cart: str, tickets: list[str]) -> list[Any]:
    await worker.send({"cmd": "add", "shop": shop.guid, "cart": cart, "tickets": tickets})
    added = await worker.expect(lambda r: r["ev"] == "added" and r["cart"] == cart)
    return added["holds"]  # type: ignore[no-any-return]


def renewed(workers: list[Worker]) -> list[dict[str, Any]]:
    return [e for w in workers for e in w.events() if e["kind"] == "Renewed"]


async def until_renewed(workers: list[Worker], count: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while len(renewed(workers)) < count:
            await asyncio.sleep(0.1)  # real time runs the scenario; this only looks


async def close_all(worker: Worker, shop: FakeShop, carts: list[str]) -> None:
    for cart in carts:
        await worker.send({"cmd": "close", "shop": shop.guid, "cart": cart})
        await worker.expect(lambda r, c=cart: r["ev"] == "closed" and r["cart"] == c)


def judge(
    holds: list[Any], workers: list[Worker], sampler: Sampler, closed_at: float
) -> tuple[int, int]:
    """Assert every hold's chain of reservations covers it; return the duplicates.

    (duplicate reserves at the server, duplicate Renewed events): one hold per
    ticket, so a ticket's reserves are its hold's.
    """
    chains: dict[str, list[str]] = {hold["id"]: [hold["reservation"]] for hold in holds}
    by_hold: dict[str, list[float]] = defaultdict(list)
    for event in renewed(workers):
        chains[event["hold"]].append(event["new"])
        by_hold[event["hold"]].append(event["t"])
    for guids in chains.values():
        assert_no_gap([sampler.seen[guid] for guid in guids], until=closed_at)
    by_ticket: dict[str, list[float]] = defaultdict(list)
    for record in sampler.seen.values():
        by_ticket[record.ticket_guid].append(record.reserved_at)
    lost = [e for w in workers for e in w.events() if e["kind"] in ("Lost", "Expired")]
    assert lost == []
    return close_pairs(by_ticket), close_pairs(by_hold)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_workers_two_seconds_apart_lose_and_double_nothing(
    fake: FakeOpenTicket[SystemClock], redis_url: str, redis_prefix: str
) -> None:
    shop = fake.add_shop()
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(24)]
    sampler = Sampler(fake)
    workers = [
        await Worker.start(name, config(fake, redis_url, redis_prefix, skew=skew))
        for name, skew in (("behind", -2.0), ("exact", 0.0), ("ahead", 2.0))
    ]
    behind, _exact, ahead = workers
    try:
        for worker in workers:
            await worker.expect(lambda r: r["ev"] == "ready")
        holds = await fill(behind, shop, "cart-b", tickets[:12])
        holds += await fill(ahead, shop, "cart-a", tickets[12:])
        await until_renewed(workers, 120, timeout=60)
        await close_all(behind, shop, ["cart-b", "cart-a"])
        closed_at = fake.clock.now()
    finally:
        for worker in workers:
            await worker.stop()
        await sampler.stop()
    reserves, renewals = judge(holds, workers, sampler, closed_at)
    print(f"\nrenewals={len(renewed(workers))} reserves={len(sampler.seen)}"
          f" duplicate_reserves={reserves} duplicate_renewals={renewals}")
    assert {e["worker"] for e in renewed(workers)} == {"behind", "exact", "ahead"}
    assert (reserves, renewals) == (0, 0)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("persistent", [False, True], ids=["without-persistence", "with-aof"])
async def test_a_restart_costs_at_most_one_extra_reserve_per_hold(
    fake: FakeOpenTicket[SystemClock], redis_prefix: str, redis_server: RedisServer,
    tmp_path: Path, persistent: bool,
) -> None:
    server = redis_server  # no persistence: a restart loses every key
    if persistent:  # an append-only file synced at every write: a restart keeps them
        server = RedisServer(redis_server.binary, tmp_path / "aof",
                             extra=["--appendonly", "yes", "--appendfsync", "always"])
        await asyncio.to_thread(server.start)
    epoch_key = KeyLayout(redis_prefix, 1, tagged=False).claim_keys(0)[1]
    epochs = []
    shop = fake.add_shop()
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(36)]
    sampler = Sampler(fake)
    workers = [
        await Worker.start(name, config(fake, server.url, redis_prefix)) for name in "abc"
    ]
    restarts = []
    try:
        for worker in workers:
            await worker.expect(lambda r: r["ev"] == "ready")
        holds = []
        for number, worker in enumerate(workers):
            holds += await fill(worker, shop, f"cart-{number}", tickets[number::3])
        fake.faults.delay("reserve", 0.4, real=True, times=None)  # renewals on the wire
        for restart in range(1, RESTARTS + 1):
            await until_renewed(workers, 72 * restart, timeout=30)
            restarts.append(fake.clock.now())
            epochs.append(await read_key(server.url, epoch_key))
            await asyncio.to_thread(server.restart)
        await until_renewed(workers, 72 * (RESTARTS + 1), timeout=30)
        epochs.append(await read_key(server.url, epoch_key))
        await close_all(workers[0], shop, [f"cart-{number}" for number in range(3)])
        closed_at = fake.clock.now()
    finally:
        for worker in workers:
            await worker.stop()
        await sampler.stop()
        if persistent:
            await asyncio.to_thread(server.stop)
    reserves, renewals = judge(holds, workers, sampler, closed_at)
    extra = extra_reserves_after(restarts, sampler)
    most = max(extra.values(), default=0)
    print(f"\nrestarts={RESTARTS} persistent={persistent} holds={len(holds)}"
          f" renewals={len(renewed(workers))} reserves={len(sampler.seen)}"
          f" duplicate_reserves={reserves} duplicate_renewals={renewals}"
          f" most_per_hold_and_restart={most} epochs={len(set(epochs))}")
    assert most <= 1
    assert None not in epochs
    # with the data kept, no worker saw a loss: one epoch throughout, no restore ran;
    # without, each restart made a new one (the restore path)
    assert len(set(epochs)) == (1 if persistent else RESTARTS + 1)


async def read_key(url: str, key: str) -> bytes | None:
    client = aioredis.from_url(url)
    try:
        value: bytes | None = await client.get(key)
        return value
    finally:
        await client.aclose()


def extra_reserves_after(restarts: list[float], sampler: Sampler) -> Counter[tuple[str, int]]:
    """Duplicate reserves per (ticket, restart before it): see close_pairs."""
    by_ticket: dict[str, list[float]] = defaultdict(list)
    for record in sampler.seen.values():
        by_ticket[record.ticket_guid].append(record.reserved_at)
    extra: Counter[tuple[str, int]] = Counter()
    for ticket, times in by_ticket.items():
        for before, after in itertools.pairwise(sorted(times)):
            if after - before < DUPLICATE_WITHIN:
                extra[ticket, bisect.bisect(restarts, after)] += 1
    return extra


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_429_in_one_worker_holds_off_the_whole_fleets_reserves_for_its_retry_after(
    fake: FakeOpenTicket[SystemClock], redis_url: str, redis_prefix: str
) -> None:
    shop = fake.add_shop()
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(24)]
    sampler = Sampler(fake)
    workers = [
        await Worker.start(name, config(fake, redis_url, redis_prefix, pace={}))
        for name in ("a", "b")
    ]
    try:
        for worker in workers:
            await worker.expect(lambda r: r["ev"] == "ready")
        holds = await fill(workers[0], shop, "cart-1", tickets[:12])
        holds += await fill(workers[1], shop, "cart-2", tickets[12:])
        await until_renewed(workers, 24, timeout=30)
        before = len(reserve_times(fake))
        fake.faults.status("reserve", 429, retry_after=BACKOFF)
        await until_renewed(workers, 72, timeout=30)
        await close_all(workers[0], shop, ["cart-1", "cart-2"])
        closed_at = fake.clock.now()
    finally:
        for worker in workers:
            await worker.stop()
        await sampler.stop()
    judge(holds, workers, sampler, closed_at)
    refused_at, *after = reserve_times(fake)[before:]
    on_the_way = [t for t in after if t <= refused_at + SHARE_WITHIN]
    next_reserve = min(t for t in after if t > refused_at + SHARE_WITHIN)
    print(f"\nfirst reserve {next_reserve - refused_at:.3f} s after the 429"
          f" (Retry-After {BACKOFF} s); {len(on_the_way)} already on the way")
    assert next_reserve >= refused_at + BACKOFF - 0.02  # the fleet clock's error, at most
    assert {e["worker"] for e in renewed(workers)} == {"a", "b"}


def reserve_times(fake: FakeOpenTicket[SystemClock]) -> list[float]:
    return [request.time for request in fake.requests if request.route == "reserve"]


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_sentinel_failover_during_renewals_loses_no_hold(
    sentinel_group: SentinelGroup, redis_prefix: str
) -> None:
    async with FakeOpenTicket(SystemClock(), reservation_ttl=FAILOVER_TTL) as fake:
        shop = fake.add_shop()
        tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(12)]
        sampler = Sampler(fake)
        settings = {"ttl": FAILOVER_TTL, "policy": FAILOVER_POLICY}
        workers = [
            await Worker.start(name, config(fake, sentinel_group.url, redis_prefix, **settings))
            for name in ("a", "b")
        ]
        try:
            for worker in workers:
                await worker.expect(lambda r: r["ev"] == "ready")
            holds = await fill(workers[0], shop, "cart-1", tickets[:6])
            holds += await fill(workers[1], shop, "cart-2", tickets[6:])
            await until_renewed(workers, 12, timeout=30)
            sentinel_group.primary.signal(signal.SIGKILL)  # the sentinels promote the replica
            killed_at = fake.clock.now()

            def renewed_twice_since() -> bool:
                since = Counter(e["hold"] for e in renewed(workers) if e["t"] > killed_at)
                return all(since[hold["id"]] >= 2 for hold in holds)

            async with asyncio.timeout(40):
                while not renewed_twice_since():
                    await asyncio.sleep(0.1)  # real time runs the scenario; this only looks
            await close_all(workers[1], shop, ["cart-1", "cart-2"])
            closed_at = fake.clock.now()
        finally:
            for worker in workers:
                await worker.stop()
            await sampler.stop()
    reserves, renewals = judge(holds, workers, sampler, closed_at)
    print(f"\nfailover: renewals={len(renewed(workers))} reserves={len(sampler.seen)}"
          f" duplicate_reserves={reserves} duplicate_renewals={renewals}")
