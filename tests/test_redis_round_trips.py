"""RedisStore round trips: one pipeline per loop turn of write-backs, a beat per half lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from conftest import RedisServer

from openticket_async import HoldState
from openticket_async.stores.redis import RedisStore, StoreUnavailable
from openticket_async.testing import FakeClock
from openticket_async.testing.store_conformance import StoreKit

pytestmark = pytest.mark.redis


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


@pytest.mark.asyncio
async def test_saves_made_at_once_cost_one_round_trip(kit: StoreKit) -> None:
    store = await redis_store(kit)
    # the clock is measured, and Redis learns the scripts of a lone save and of several
    await store.save(kit.hold(), "warn", kit.at(store, 1))
    await asyncio.gather(*(store.save(kit.hold(), "warn", kit.at(store, 1)) for _ in range(2)))
    before = store.round_trips
    holds = [kit.hold() for _ in range(20)]
    written = await asyncio.gather(*(store.save(h, "warn", kit.at(store, 5)) for h in holds))
    assert written == [True] * 20
    assert store.round_trips - before == 1
    assert len(await store.claim_due(kit.at(store, 5), 100)) == 23


@pytest.mark.asyncio
async def test_a_turns_saves_go_to_redis_as_one_script_call(
    kit: StoreKit, raw: aioredis.Redis
) -> None:
    store = await redis_store(kit)
    await store.save(kit.hold(), "warn", kit.at(store, 1))
    before = await evalsha_calls(raw)
    holds = [kit.hold() for _ in range(20)]
    written = await asyncio.gather(
        *(store.save(h, "warn", kit.at(store, 2 + at)) for at, h in enumerate(holds))
    )
    assert written == [True] * 20
    assert await evalsha_calls(raw) - before == 1
    claimed = await store.claim_due(kit.at(store, 30), 100)
    assert [due.hold.id for due in claimed][1:] == [hold.id for hold in holds]


@pytest.mark.asyncio
async def test_a_turns_saves_in_several_shards_go_as_one_script_call_per_shard(
    redis_url: str, redis_prefix: str, raw: aioredis.Redis
) -> None:
    kit = StoreKit(lambda: RedisStore(redis_url, prefix=redis_prefix, shards=4), FakeClock())
    try:
        store = await redis_store(kit)
        await store.save(kit.hold(), "warn", kit.at(store, 1))
        holds = [kit.hold(f"cart-{number % 6}") for number in range(18)]
        before = await evalsha_calls(raw)
        written = await asyncio.gather(*(store.save(h, "warn", kit.at(store, 2)) for h in holds))
        assert written == [True] * 18
        shards = {store._keys.shard_of(hold.cart_id) for hold in holds}
        assert await evalsha_calls(raw) - before == len(shards) > 1
        claimed = await store.claim_due(kit.at(store, 2), 100)
        assert sorted(due.hold.id for due in claimed) == sorted(
            [hold.id for hold in holds] + [claimed[0].hold.id]
        )
    finally:
        await kit.close()


@pytest.mark.asyncio
async def test_a_batch_keeps_a_forget_between_saves_in_its_place(kit: StoreKit) -> None:
    store = await redis_store(kit)
    hold, other = kit.hold(), kit.hold()
    for known in (hold, other):
        await store.save(known, "warn", kit.at(store, 1))
    other.state = hold.state = HoldState.RELEASED
    await store.forget(other)  # Redis knows FORGET: it runs in its place, not again after
    outcomes = await asyncio.gather(
        store.save(hold, "warn", kit.at(store, 2)),
        store.forget(hold),
        store.save(hold, "warn", kit.at(store, 3)),
    )
    assert outcomes == [True, True, False]  # the save after the end finds its tombstone
    assert await store.claim_due(kit.at(store, 3), 10) == []


async def evalsha_calls(raw: aioredis.Redis) -> int:
    stats = await raw.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.asyncio
async def test_a_batch_runs_scripts_redis_forgot(kit: StoreKit, raw: aioredis.Redis) -> None:
    store = await redis_store(kit)
    first, second = kit.hold(), kit.hold()
    await store.save(first, "warn", kit.at(store, 1))
    await raw.script_flush()  # as after a restart: the script cache is empty
    assert await asyncio.gather(
        store.save(second, "warn", kit.at(store, 2)), store.save(first, "warn", kit.at(store, 3))
    ) == [True, True]
    dues = [due.due for due in await store.claim_due(kit.at(store, 3), 10)]
    assert dues == [kit.at(store, 2), kit.at(store, 3)]


@pytest.mark.asyncio
async def test_a_refused_write_fails_alone_in_its_batch(
    kit: StoreKit, raw: aioredis.Redis, redis_prefix: str
) -> None:
    store = await redis_store(kit)
    await store.save(kit.hold(), "warn", kit.at(store, 1))
    broken, fine = kit.hold(), kit.hold()
    await raw.set(f"{redis_prefix}hold:{broken.id}", "not a hash")
    outcomes = await asyncio.gather(
        store.save(broken, "warn", kit.at(store, 2)),
        store.save(fine, "warn", kit.at(store, 2)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], StoreUnavailable)
    assert outcomes[0].refused
    assert outcomes[1] is True


@pytest.mark.asyncio
async def test_a_batch_sent_while_redis_is_down_is_kept_and_replayed(
    kit: StoreKit, redis_server: RedisServer
) -> None:
    store = await redis_store(kit)
    holds = [kit.hold() for _ in range(3)]
    for hold in holds:
        await store.save(hold, "warn", kit.at(store, 1))
    redis_server.stop()
    try:
        kept = await asyncio.gather(*(store.save(h, "warn", kit.at(store, 7)) for h in holds))
    finally:
        redis_server.start()
    assert kept == [True] * 3
    assert await store.claim_due(kit.at(store, 6), 10) == []  # replayed: due at 7 now
    assert len(await store.claim_due(kit.at(store, 7), 10)) == 3


async def renewing_hold_claimed(kit: StoreKit, store: RedisStore) -> None:
    """One hold claimed at 0 s whose renewal runs here: each beat carries it."""
    hold = kit.hold()
    await store.save(hold, "renew", kit.at(store, 0))
    [claim] = await store.claim_due(kit.at(store, 0), 10)
    hold.state = HoldState.RENEWING
    await store.save(hold, "drop", kit.at(store, 400), claim.fence)  # its safety net


async def trips_per_claim(kit: StoreKit, store: RedisStore, times: list[float]) -> list[int]:
    """The round trips of a claim at each of ``times`` (seconds): 2 with a beat, else 1."""
    trips = []
    for seconds in times:
        before = store.round_trips
        assert await store.claim_due(kit.at(store, seconds), 10) == []
        trips.append(store.round_trips - before)
    return trips


@pytest.mark.asyncio
async def test_claims_back_to_back_send_the_renewals_heartbeat_once_per_half_lease(
    kit: StoreKit,
) -> None:
    store = await redis_store(kit)
    await renewing_hold_claimed(kit, store)
    # the lease is 5 s, a poll 0.5 s: the next beat is due 2.5 - 0.25 s after one
    trips = await trips_per_claim(kit, store, [0.1, 0.2, 0.3, 2.3, 2.4])
    assert trips == [2, 1, 1, 1, 2]


@pytest.mark.asyncio
async def test_a_poll_a_little_early_still_beats_for_the_shortest_lease(
    redis_url: str, redis_prefix: str
) -> None:
    kit = StoreKit(lambda: RedisStore(redis_url, prefix=redis_prefix, lease=1.0), FakeClock())
    try:
        store = await redis_store(kit)
        await renewing_hold_claimed(kit, store)
        # polls every 0.5 s, each a millisecond early: skipping one would leave the
        # lease its last moment before the next
        trips = await trips_per_claim(kit, store, [0.1, 0.599, 1.098, 1.597])
        assert trips == [2, 2, 2, 2]
    finally:
        await kit.close()
