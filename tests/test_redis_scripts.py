"""RedisStore's Lua scripts when Redis forgets them (a restart, a failover, SCRIPT FLUSH).

A pipeline of script calls must apply in the order the calls were made even
when Redis answers NOSCRIPT to some of them: these tests leave Redis knowing
some of the scripts a pipeline carries and not others, the way one script's
own reload used to.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from conftest import ClusterGroup

from openticket_async import HoldState
from openticket_async.stores.redis import RedisStore
from openticket_async.stores.redis._link import link_for
from openticket_async.stores.redis._scripting import ScriptSet, run_scripts
from openticket_async.stores.redis._scripts import STORE_SCRIPTS
from openticket_async.testing import FakeClock
from openticket_async.testing.store_conformance import StoreKit

pytestmark = pytest.mark.redis

#: The SHA1 names of the store's scripts in Redis.
SHAS = [hashlib.sha1(text.encode()).hexdigest() for text in STORE_SCRIPTS.values()]  # noqa: S324


@pytest_asyncio.fixture
async def kit(redis_url: str, redis_prefix: str) -> AsyncIterator[StoreKit]:
    kit = StoreKit(lambda: RedisStore(redis_url, prefix=redis_prefix, lease=5.0), FakeClock())
    yield kit
    await kit.close()


@pytest_asyncio.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def redis_store(kit: StoreKit) -> RedisStore:
    store = await kit.store()
    assert isinstance(store, RedisStore)
    return store


async def ended(raw: aioredis.Redis, prefix: str, hold_id: str) -> str | None:
    """The end a hold's tombstone records in Redis (None while it lives)."""
    answer: str | None = await raw.hget(f"{prefix}hold:{hold_id}", "ended")
    return answer


@pytest.mark.asyncio
async def test_a_save_then_forget_of_one_hold_apply_in_order_after_redis_lost_its_scripts(
    kit: StoreKit, raw: aioredis.Redis, redis_prefix: str
) -> None:
    store = await redis_store(kit)
    hold, other = kit.hold(), kit.hold()
    for known in (hold, other):
        await store.save(known, "warn", kit.at(store, 1))
    await raw.script_flush()  # as after a restart
    other.state = HoldState.RELEASED
    assert await store.forget(other)  # Redis answers NOSCRIPT, and learns scripts again
    hold.state = HoldState.RELEASED
    outcomes = await asyncio.gather(store.save(hold, "warn", kit.at(store, 2)), store.forget(hold))
    assert outcomes == [True, True]
    assert await ended(raw, redis_prefix, hold.id) == "released"


@pytest.mark.asyncio
async def test_the_first_merged_save_keeps_its_place_before_a_forget_of_its_hold(
    kit: StoreKit, raw: aioredis.Redis, redis_prefix: str
) -> None:
    await raw.script_flush()
    for name in ("save", "forget"):  # as a worker of a version without merged saves did
        await raw.script_load(STORE_SCRIPTS[name])
    store = await redis_store(kit)
    hold, neighbour, other = kit.hold(), kit.hold(), kit.hold()
    for known in (hold, neighbour, other):  # one at a time: no merged save yet
        await store.save(known, "warn", kit.at(store, 1))
    other.state = HoldState.RELEASED
    assert await store.forget(other)
    hold.state = HoldState.RELEASED
    outcomes = await asyncio.gather(  # the two saves go as one merged call, then the end
        store.save(hold, "warn", kit.at(store, 2)),
        store.save(neighbour, "warn", kit.at(store, 2)),
        store.forget(hold),
    )
    assert outcomes == [True, True, True]
    assert await ended(raw, redis_prefix, hold.id) == "released"


PUSH_A = "return redis.call('RPUSH', KEYS[1], 'a')"
PUSH_B = "return redis.call('RPUSH', KEYS[1], 'b')"


@pytest.mark.asyncio
async def test_script_calls_run_together_keep_their_order_after_redis_lost_the_scripts(
    raw: aioredis.Redis, redis_url: str, redis_prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        link = link_for(client)
        scripts = ScriptSet(client, link, {"a": PUSH_A, "b": PUSH_B})
        key = [f"{redis_prefix}pushed".encode()]
        await link.call(scripts["a"](key, []))
        await raw.script_flush()  # as after a restart
        await link.call(scripts["b"](key, []))  # Redis answers NOSCRIPT, and learns again
        await run_scripts(client, link, [(scripts["a"], key, []), (scripts["b"], key, [])])
        assert await raw.lrange(key[0], 0, -1) == ["a", "b", "a", "b"]
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_on_a_cluster_every_primary_learns_every_script_before_the_first_write(
    redis_cluster: ClusterGroup, redis_prefix: str
) -> None:
    nodes = [aioredis.Redis(port=node.port, decode_responses=True) for node in redis_cluster.nodes]
    kit = StoreKit(lambda: RedisStore(redis_cluster.url, prefix=redis_prefix), FakeClock())
    try:
        for node in nodes:
            await node.script_flush()
        store = await redis_store(kit)
        await store.save(kit.hold(), "warn", kit.at(store, 1))
        known = [await node.script_exists(*SHAS) for node in nodes]
        assert known == [[True] * len(SHAS)] * len(nodes)
    finally:
        await kit.close()
        for node in nodes:
            await node.aclose()


@pytest.mark.asyncio
async def test_a_burst_of_noscript_answers_loads_every_script_at_most_twice_not_once_each(
    redis_cluster: ClusterGroup, redis_prefix: str
) -> None:
    # The first answer's load starts at once; the answers read while it is on the wire
    # may be of calls it does not cover, so one more load follows it for all of them.
    nodes = [aioredis.Redis(port=node.port, decode_responses=True) for node in redis_cluster.nodes]
    kit = StoreKit(lambda: RedisStore(redis_cluster.url, prefix=redis_prefix), FakeClock())
    try:
        store = await redis_store(kit)
        holds = [kit.hold(f"cart-{number}") for number in range(48)]
        for hold in holds:
            await store.save(hold, "warn", kit.at(store, 1))
        for node in nodes:
            await node.script_flush()
        before = [await script_loads(node) for node in nodes]
        claimed = await store.claim_due(kit.at(store, 1), 100)  # a claim per shard, at once
        assert len(claimed) == len(holds)
        loads = [await script_loads(node) - at for node, at in zip(nodes, before, strict=True)]
        assert all(len(STORE_SCRIPTS) <= made <= 2 * len(STORE_SCRIPTS) for made in loads)
        assert [await node.script_exists(*SHAS) for node in nodes] == [[True] * len(SHAS)] * 3
    finally:
        await kit.close()
        for node in nodes:
            await node.aclose()


async def script_loads(raw: aioredis.Redis) -> int:
    stats = await raw.info("commandstats")
    return int(stats.get("cmdstat_script|load", {}).get("calls", 0))
