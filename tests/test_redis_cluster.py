"""RedisStore and RedisTokenStore on a real three-primary Redis Cluster, on a FakeClock.

The conformance suite (tests/test_store_conformance.py) runs on the cluster too;
these tests pin down what only a cluster (or a store split in shards) shows: the
due queues spread over the primaries, one claim sees every shard, a primary that
lost its data restores its own shards, and the token store refreshes once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from conftest import ClusterGroup
from redis.asyncio.cluster import RedisCluster

from openticket_async import InvalidArgument, Released
from openticket_async.stores.redis import RedisStore, RedisTokenStore
from openticket_async.stores.redis._fleet import fleet_snapshot
from openticket_async.testing import FakeClock
from openticket_async.testing.store_conformance import StoreKit

pytestmark = pytest.mark.redis

LEASE = 5.0
#: Carts enough that every one of the 16 shards gets some.
CARTS = 64


@pytest_asyncio.fixture
async def kit(redis_cluster_url: str, redis_prefix: str) -> AsyncIterator[StoreKit]:
    kit = StoreKit(
        lambda: RedisStore(redis_cluster_url, prefix=redis_prefix, lease=LEASE), FakeClock()
    )
    yield kit
    await kit.close()


async def cluster_store(kit: StoreKit) -> RedisStore:
    store = await kit.store()
    assert isinstance(store, RedisStore)
    return store


async def keys_per_node(cluster: ClusterGroup, pattern: str) -> list[list[str]]:
    """The keys matching ``pattern`` that each primary holds."""
    found = []
    for node in cluster.nodes:
        raw = aioredis.Redis(port=node.port, decode_responses=True)
        try:
            found.append([key async for key in raw.scan_iter(match=pattern)])
        finally:
            await raw.aclose()
    return found


@pytest.mark.asyncio
async def test_a_cluster_store_splits_its_due_queue_over_every_primary(
    kit: StoreKit, redis_cluster: ClusterGroup, redis_prefix: str
) -> None:
    store = await cluster_store(kit)
    for number in range(CARTS):
        await store.save(kit.hold(f"cart-{number}"), "renew", kit.at(store, 10))
    queues = await keys_per_node(redis_cluster, f"{redis_prefix}*queue")
    assert store.shards == 16
    assert sum(len(keys) for keys in queues) == 16
    assert all(keys for keys in queues)  # no primary serves every poll


@pytest.mark.asyncio
async def test_one_claim_hands_out_the_due_work_of_every_shard(kit: StoreKit) -> None:
    store = await cluster_store(kit)
    holds = [kit.hold(f"cart-{number}") for number in range(CARTS)]
    for hold in holds:
        await store.save(hold, "renew", kit.at(store, 10))
    claims = await store.claim_due(kit.at(store, 10), 512)
    assert {claim.hold.id for claim in claims} == {hold.id for hold in holds}


@pytest.mark.asyncio
async def test_an_idle_poll_costs_one_read_and_no_claim(kit: StoreKit) -> None:
    store = await cluster_store(kit)
    for number in range(CARTS):
        await store.save(kit.hold(f"cart-{number}"), "renew", kit.at(store, 60))
    assert await store.claim_due(kit.at(store, 0), 512) == []  # every shard, once
    before = store.round_trips
    for poll in range(1, 5):
        assert await store.next_due() == kit.at(store, 60)
        assert await store.claim_due(kit.at(store, poll / 2), 512) == []
    assert store.round_trips - before == 4  # the four reads, pipelined: no claim ran


@pytest.mark.asyncio
async def test_work_another_worker_made_due_after_a_read_is_claimed_after_the_next(
    kit: StoreKit,
) -> None:
    mine, other = await cluster_store(kit), await cluster_store(kit)
    assert await mine.claim_due(kit.at(mine, 0), 512) == []
    assert await mine.next_due() is None
    hold = kit.hold("cart-elsewhere")
    await other.save(hold, "renew", kit.at(other, 0))
    assert await mine.claim_due(kit.at(mine, 0.5), 512) == []  # its read showed nothing
    assert await mine.next_due() == kit.at(mine, 0)  # this one does: the scheduler goes on
    [claim] = await mine.claim_due(kit.at(mine, 0.5), 512)
    assert claim.hold.id == hold.id


@pytest.mark.asyncio
async def test_a_claim_under_a_small_limit_still_takes_its_limit_from_one_busy_cart(
    kit: StoreKit,
) -> None:
    store = await cluster_store(kit)
    holds = [kit.hold("cart-busy") for _ in range(40)]
    for offset, hold in enumerate(holds):
        await store.save(hold, "renew", kit.at(store, offset / 100))
    claims = await store.claim_due(kit.at(store, 10), 24)
    assert [claim.hold for claim in claims] == holds[:24]


@pytest.mark.asyncio
async def test_a_primary_that_lost_its_data_restores_its_own_shards_only(
    kit: StoreKit, redis_cluster: ClusterGroup, caplog: pytest.LogCaptureFixture
) -> None:
    store = await cluster_store(kit)
    carts = {f"cart-{number}": kit.hold(f"cart-{number}") for number in range(CARTS)}
    for hold in carts.values():
        await store.save(hold, "warn", kit.at(store, 100))
    assert await store.claim_due(kit.at(store, 0), 512) == []  # knows every shard's epoch
    lost = aioredis.Redis(port=redis_cluster.nodes[0].port)
    try:
        await lost.flushall()  # as after a restart without persistence
    finally:
        await lost.aclose()
    with caplog.at_level(logging.WARNING, logger="openticket_async.stores.redis"):
        assert await store.claim_due(kit.at(store, 1), 512) == []
    restored = [r.getMessage() for r in caplog.records if "restoring" in r.getMessage()]
    assert 0 < len(restored) < 16  # the shards of that primary, not the others
    for cart_id, hold in carts.items():
        assert [h.id for h in await store.cart_holds(cart_id)] == [hold.id]
    assert await store.next_due() == kit.at(store, 100)


@pytest.mark.asyncio
async def test_the_fleet_snapshot_reads_the_holds_of_every_primary(kit: StoreKit) -> None:
    store = await cluster_store(kit)
    holds = {kit.hold(f"cart-{number}") for number in range(CARTS)}
    for hold in holds:
        await store.save(hold, "renew", kit.at(store, 60))
    snapshot = await fleet_snapshot(store)
    assert {row.hold_id for row in snapshot.holds} == {hold.id for hold in holds}
    assert len(snapshot.carts) == CARTS


@pytest.mark.asyncio
async def test_one_batch_of_events_reaches_the_streams_of_carts_in_every_shard(
    kit: StoreKit, redis_cluster: ClusterGroup
) -> None:
    # one EVENTS call per shard: a call across slots would be refused, its events dropped
    store = await cluster_store(kit)
    holds = [kit.hold(f"cart-{number % CARTS}") for number in range(2 * CARTS)]
    for hold in holds:  # one turn of the loop: the relay writes them in one batch
        store.event_sink.publish(Released(hold, 1.0, 0.0))
    await store.aclose()
    layout = store._keys
    assert len({layout.shard_of(hold.cart_id) for hold in holds}) == 16
    raw = RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port, decode_responses=True)
    try:
        for number in range(CARTS):
            entries = await raw.xrange(layout.events(f"cart-{number}"))
            written = [json.loads(fields["e"])["hold"] for _id, fields in entries]
            assert written == [hold.id for hold in holds if hold.cart_id == f"cart-{number}"]
    finally:
        await raw.aclose()


@pytest.mark.asyncio
async def test_stores_with_different_shard_counts_on_one_prefix_claim_nothing(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    kit = StoreKit(lambda: RedisStore(redis_url, prefix=redis_prefix, shards=4), FakeClock())
    other = RedisStore(redis_url, prefix=redis_prefix, shards=2)
    try:
        first = await kit.store()
        other.bind(kit.clock)
        await first.save(kit.hold(), "renew", kit.at(first, 0))
        assert len(await first.claim_due(kit.at(first, 0), 10)) == 1
        await first.save(kit.hold("cart-2"), "renew", kit.at(first, 0))
        with caplog.at_level(logging.ERROR):
            assert await other.claim_due(kit.at(first, 1), 10) == []
        assert "use 4 shards, this one 2" in caplog.text
    finally:
        await other.aclose()
        await kit.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(("first", "second"), [(1, 3), (3, 1)])
async def test_a_one_shard_store_and_a_sharded_one_on_one_prefix_claim_nothing_together(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture, first: int, second: int
) -> None:
    # one shard on a single Redis records its count untagged, several tagged: each
    # store must read both spellings, or each finds only its own and both claim
    kit = StoreKit(lambda: RedisStore(redis_url, prefix=redis_prefix, shards=first), FakeClock())
    other = RedisStore(redis_url, prefix=redis_prefix, shards=second)
    try:
        store = await kit.store()
        other.bind(kit.clock)
        await store.save(kit.hold(), "renew", kit.at(store, 0))
        assert len(await store.claim_due(kit.at(store, 0), 10)) == 1
        await other.save(kit.hold("cart-2"), "renew", kit.at(store, 0))
        with caplog.at_level(logging.ERROR):
            assert await other.claim_due(kit.at(store, 1), 10) == []
        assert f"use {first} shards, this one {second}" in caplog.text
    finally:
        await other.aclose()
        await kit.close()


@pytest.mark.asyncio
async def test_a_claiming_store_keeps_its_recorded_shard_count_from_lapsing(
    redis_url: str, redis_prefix: str
) -> None:
    retention = 600
    kit = StoreKit(
        lambda: RedisStore(redis_url, prefix=redis_prefix, shards=3, retention=retention),
        FakeClock(),
    )
    raw = aioredis.Redis.from_url(redis_url)
    marker = f"{redis_prefix}{{0}}shards"
    try:
        store = await kit.store()
        await store.claim_due(kit.at(store, 0), 10)
        assert await raw.ttl(marker) > retention - 10
        await raw.expire(marker, 5)  # as if most of a retention had passed
        await kit.clock.advance(retention / 2 + 1)
        await store.claim_due(kit.at(store, 0), 10)
        assert await raw.ttl(marker) > retention - 10
    finally:
        await raw.aclose()
        await kit.close()


def test_a_cluster_url_with_a_database_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="no database but 0"):
        RedisStore("redis+cluster://127.0.0.1:7000/3")


@pytest.mark.parametrize(
    "url",
    [
        "bogus://:s3cret-pass@127.0.0.1:6379",
        "redis://:s3cret-pass@127.0.0.1:notaport",
        "redis+sentinel://:s3cret-pass@127.0.0.1:26379",
        "redis+cluster://:s3cret-pass@127.0.0.1:7000/3",
    ],
)
def test_a_url_the_store_cannot_use_is_an_invalid_argument_without_its_password(
    url: str,
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        RedisStore(url)
    assert isinstance(raised.value, ValueError)  # what callers caught before
    assert "s3cret" not in str(raised.value)


def test_a_cluster_stores_repr_names_its_nodes_and_never_its_password() -> None:
    store = RedisStore("redis+cluster://:s3cret-pass@127.0.0.1:7000,127.0.0.1:7001")
    assert "127.0.0.1:7000,127.0.0.1:7001" in repr(store)
    assert "s3cret" not in repr(store)
    assert "shards=16" in repr(store)


@pytest.mark.asyncio
async def test_the_token_lock_lives_in_the_token_sets_slot(redis_cluster_url: str) -> None:
    tokens = RedisTokenStore(redis_cluster_url, key="shop:token")
    try:
        cluster = tokens._redis
        assert isinstance(cluster, RedisCluster)
        assert cluster.keyslot(tokens._lock) == cluster.keyslot("shop:token")
    finally:
        await tokens.aclose()
