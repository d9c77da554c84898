"""RedisStore on a Sentinel group: the primary found through the sentinels, and failovers.

Each test gets its own group (a primary, a replica, three sentinels on loopback;
tests/conftest.py). The stores run on a FakeClock; only the failover itself
takes real time (a node is down after 1 s, then the sentinels elect and promote).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from conftest import SentinelGroup

from openticket_async import Hold
from openticket_async.stores.redis import RedisStore, StoreUnavailable
from openticket_async.testing import FakeClock
from openticket_async.testing.store_conformance import StoreKit

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LEASE = 5.0
#: Real seconds a failover may take: down after 1 s, then election and promotion.
FAILOVER_WITHIN = 20.0


@pytest_asyncio.fixture
async def kit(sentinel_group: SentinelGroup, redis_prefix: str) -> AsyncIterator[StoreKit]:
    kit = StoreKit(
        lambda: RedisStore(sentinel_group.url, prefix=redis_prefix, lease=LEASE), FakeClock()
    )
    yield kit
    await kit.close()


async def two_stores(kit: StoreKit) -> tuple[RedisStore, RedisStore]:
    first, second = await kit.store(), await kit.store()
    assert isinstance(first, RedisStore)
    assert isinstance(second, RedisStore)
    return first, second


async def on_node(port: int, *command: str) -> object:
    client = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


async def cart_once_reachable(store: RedisStore, cart_id: str) -> list[Hold]:
    """The cart's holds, as soon as the store reaches a primary again."""
    async with asyncio.timeout(FAILOVER_WITHIN):
        while True:
            try:
                return await store.cart_holds(cart_id)
            except StoreUnavailable:
                await asyncio.sleep(0.2)  # the sentinels are electing a new primary


@pytest.mark.asyncio
async def test_a_store_made_from_a_sentinel_url_works_on_the_groups_primary(
    kit: StoreKit, sentinel_group: SentinelGroup, redis_prefix: str
) -> None:
    store, _other = await two_stores(kit)
    hold = kit.hold("cart-s")
    await store.save(hold, "warn", kit.at(store, 0))
    [due] = await store.claim_due(kit.at(store, 0), 10)
    assert due.hold is hold
    assert "sentinel service fleet/0" in repr(store)
    key = f"{redis_prefix}hold:{hold.id}"
    assert await on_node(sentinel_group.primary.port, "EXISTS", key) == 1


@pytest.mark.asyncio
async def test_a_failover_to_a_replica_that_lacked_writes_restores_them(
    kit: StoreKit, sentinel_group: SentinelGroup
) -> None:
    writer, reader = await two_stores(kit)
    old = kit.hold("cart-f")
    await writer.save(old, "warn", kit.at(writer, 30))
    await writer.claim_due(kit.at(writer, 0), 10)
    await reader.claim_due(kit.at(reader, 0), 10)
    assert await on_node(sentinel_group.primary.port, "WAIT", "1", "5000") == 1
    sentinel_group.replica.signal(signal.SIGSTOP)
    await on_node(sentinel_group.primary.port, "CLIENT", "KILL", "TYPE", "replica")
    # the replica is cut off (and stopped, so it cannot sync again): it misses these
    new = kit.hold("cart-f")
    await writer.save(new, "warn", kit.at(writer, 40))
    await writer.save(old, "warn", kit.at(writer, 50), old._fence)
    sentinel_group.primary.signal(signal.SIGKILL)
    sentinel_group.replica.signal(signal.SIGCONT)
    assert [hold.id for hold in await cart_once_reachable(reader, "cart-f")] == [old.id]
    assert await writer.claim_due(kit.at(writer, 1), 10) == []  # finds the loss, restores
    assert [hold.id for hold in await reader.cart_holds("cart-f")] == [old.id, new.id]
    assert await reader.next_due() == kit.at(reader, 40)
