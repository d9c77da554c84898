"""RedisStore when Redis answers as during a failover (READONLY), on a FakeClock.

A primary turned replica (a failover, a ``REPLICAOF``) answers every write with
READONLY, a cluster between primaries with CLUSTERDOWN or TRYAGAIN: errors that
pass. The store must take them for an outage (its write-backs kept for the
replay), not for a refusal (the write dropped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from conftest import RedisServer, binaries

from openticket_async.stores.redis import RedisStore, StoreUnavailable
from openticket_async.testing import FakeClock
from openticket_async.testing.store_conformance import StoreKit

pytestmark = [pytest.mark.redis, pytest.mark.asyncio]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: it is turned into a replica and back."""
    (binary,) = binaries("redis-server")
    server = RedisServer(binary, tmp_path / "own")
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def kit(own_redis: RedisServer, redis_prefix: str) -> AsyncIterator[StoreKit]:
    kit = StoreKit(lambda: RedisStore(own_redis.url, prefix=redis_prefix, lease=5.0), FakeClock())
    yield kit
    await kit.close()


async def replica_of(port: int, primary: tuple[str, str] | None) -> None:
    """``REPLICAOF`` on the node at ``port``: of ``primary``, or of no one."""
    client = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        await client.execute_command("REPLICAOF", *(primary or ("NO", "ONE")))
    finally:
        await client.aclose()


async def test_a_new_hold_answered_readonly_is_an_outage_not_a_refusal(
    kit: StoreKit, own_redis: RedisServer, redis_server: RedisServer
) -> None:
    store = await kit.store()
    await replica_of(own_redis.port, ("127.0.0.1", str(redis_server.port)))
    with pytest.raises(StoreUnavailable) as caught:
        await store.save(kit.hold(), "warn", kit.at(store, 30))
    assert "read only replica" in str(caught.value)
    assert not caught.value.refused


async def test_a_write_back_answered_readonly_is_kept_and_replayed(
    kit: StoreKit, own_redis: RedisServer, redis_server: RedisServer
) -> None:
    store = await kit.store()
    assert isinstance(store, RedisStore)
    hold = kit.hold()
    assert await store.save(hold, "warn", kit.at(store, 30))
    await replica_of(own_redis.port, ("127.0.0.1", str(redis_server.port)))
    assert await store.save(hold, "warn", kit.at(store, 40))  # kept for the replay
    await replica_of(own_redis.port, None)  # a primary again
    await store.claim_due(kit.at(store, 0), 10)  # replays what it kept
    assert await store.next_due() == kit.at(store, 40)
