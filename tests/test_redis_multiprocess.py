"""Worker processes sharing carts and tokens through a real Redis, on real time.

The fake OpenTicket server runs in this process on 127.0.0.1 with the system
clock and a 6-second reservation TTL; the workers (tests/redis_worker.py) are
separate Python processes, each with its own manager and RedisStore. Real time
is the point here: it is the only clock separate processes share.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from redis_processes import Sampler, Worker, assert_no_gap

from openticket_async import SystemClock
from openticket_async.stores.redis import RedisStore
from openticket_async.testing import FakeOpenTicket

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TTL = 6.0
POLICY = {
    "renew_before": 2.0,
    "warn_before": 3.0,
    "safety_margin": 0.3,
    "renew_jitter": 0.2,
    "max_hold": None,
}
TERMINAL = {"Lost", "Expired", "Released", "CheckedOut"}


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenTicket[SystemClock]]:
    async with FakeOpenTicket(SystemClock(), reservation_ttl=TTL) as server:
        yield server


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_carts_survive_a_worker_killed_mid_renewal(
    fake: FakeOpenTicket[SystemClock], redis_url: str, redis_prefix: str
) -> None:
    shop = fake.add_shop()
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(8)]
    base = {
        "mode": "holds", "redis": redis_url, "prefix": redis_prefix, "ttl": TTL,
        "policy": POLICY, "hosts": {"auth": fake.hosts.auth, "api": fake.hosts.api,
                                    "shop": fake.hosts.shop},
    }
    sampler = Sampler(fake)
    workers = [
        await Worker.start(name, {**base, "token": fake.issue_token().access_token,
                                  "stall": name == "victim"})
        for name in ("victim", "first", "second")
    ]
    victim, first, second = workers
    carts = {"cart-v1": (victim, tickets[0:2]), "cart-v2": (victim, tickets[2:4]),
             "cart-f1": (first, tickets[4:6]), "cart-f2": (first, tickets[6:8])}
    try:
        for worker in workers:
            await worker.expect(lambda r: r["ev"] == "ready")
        for cart, (owner, wanted) in carts.items():
            await owner.send({"cmd": "add", "shop": shop.guid, "cart": cart, "tickets": wanted})
        added = [
            await owner.expect(lambda r, c=cart: r["ev"] == "added" and r["cart"] == c)
            for cart, (owner, _tickets) in carts.items()
        ]
        holds = {hold["id"]: hold for record in added for hold in record["holds"]}
        assert len(holds) == 8

        stalled = await victim.expect(lambda r: r["ev"] == "stalled", timeout=20)
        victim.kill()  # mid-renewal: reserved on the server, not yet written back
        killed_at = fake.clock.now()

        def renewed_twice_since_the_kill() -> bool:
            after = Counter(
                e["hold"] for w in (first, second) for e in w.events()
                if e["kind"] == "Renewed" and e["t"] > killed_at
            )
            return all(after[hold_id] >= 2 for hold_id in holds)

        async with asyncio.timeout(20):
            while not renewed_twice_since_the_kill():
                await asyncio.sleep(0.05)  # real time runs the scenario; this only looks

        for cart in carts:
            await second.send({"cmd": "close", "shop": shop.guid, "cart": cart})
            closed = await second.expect(lambda r, c=cart: r["ev"] == "closed" and r["cart"] == c)
            assert closed["holds"] == 2
        closed_at = fake.clock.now()
    finally:
        for worker in (first, second):
            await worker.stop()
        await victim.process.wait()
        await sampler.stop()

    events = [event for worker in workers for event in worker.events()]
    terminal = Counter(e["hold"] for e in events if e["kind"] in TERMINAL)
    assert terminal == dict.fromkeys(holds, 1)  # exactly one end each...
    assert {(e["kind"], e["worker"]) for e in events if e["kind"] in TERMINAL} == {
        ("Released", "second")  # ... by the worker that closed the carts
    }
    chains: dict[str, list[str]] = defaultdict(list)
    for hold_id, hold in holds.items():
        chains[hold_id].append(hold["reservation"])
    for event in events:
        if event["kind"] == "Renewed":
            chains[event["hold"]].append(event["new"])
    for guids in chains.values():
        assert all(guid in sampler.seen for guid in guids)
        assert_no_gap([sampler.seen[guid] for guid in guids], until=closed_at)
        assert stalled["reservation"] not in guids  # the dead worker's renewal never counted
    orphan = next(h for h in holds.values() if h["ticket"] == stalled["ticket"])
    assert any(
        e["kind"] == "Renewed" and e["hold"] == orphan["id"] and e["t"] > killed_at
        for e in events
    )

    store = RedisStore(redis_url, prefix=redis_prefix)
    try:
        seen_from_here = [event async for event in _cart_events(store, "cart-v1", 2)]
    finally:
        await store.aclose()
    kinds = Counter(event.kind for event in seen_from_here)
    assert kinds["Renewed"] >= 4  # two holds, renewed at least twice each since the kill
    assert kinds["Released"] == 2
    assert len({event.origin for event in seen_from_here if event.terminal}) == 1


async def _cart_events(store: RedisStore, cart_id: str, holds: int) -> AsyncIterator[Any]:
    """The cart's stream from its start, until ``holds`` terminal events were read."""
    ended = 0
    watch = store.watch(cart_id, since="0-0", block=0.1)
    async with asyncio.timeout(10):
        async for event in watch:
            yield event
            ended += event.terminal
            if ended == holds:
                break
    await watch.aclose()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_processes_sharing_a_login_refresh_it_exactly_once(
    fake: FakeOpenTicket[SystemClock], redis_url: str, redis_prefix: str
) -> None:
    shop = fake.add_shop()
    fake.add_payment_method(shop)
    login = fake.issue_token()
    config = {
        "mode": "token", "redis": redis_url, "key": redis_prefix + "token",
        "client_id": "test-client", "client_secret": "test-secret",
        "access_token": login.access_token, "refresh_token": login.refresh_token,
        "expires_at": login.expires_at.isoformat(), "shop": shop.guid,
        "hosts": {"auth": fake.hosts.auth, "api": fake.hosts.api, "shop": fake.hosts.shop},
    }
    workers = [await Worker.start(f"w{n}", config) for n in range(4)]
    try:
        for worker in workers:
            await worker.expect(lambda r: r["ev"] == "ready")
        fake.expire_access_tokens()  # every process meets a 401 and wants to refresh
        for worker in workers:
            await worker.send({"cmd": "go"})
        done = [await worker.expect(lambda r: r["ev"] == "done") for worker in workers]
    finally:
        for worker in workers:
            await worker.stop()
    assert fake.refresh_count == 1
    assert all(record["methods"] == 1 for record in done)
    assert len({record["token"] for record in done}) == 1  # all use the one new token
