"""RedisStore after Redis lost its data or some writes (a restart, an old snapshot), on a FakeClock.

Every store writes back the holds it knows; these tests pin down what decides
which copy wins and that no due work is handed out from a stale one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from conftest import RedisServer

from openticket_async import HoldState
from openticket_async.stores.redis import RedisStore
from openticket_async.stores.redis._queue import RESTORE_WINDOW
from openticket_async.testing import FakeClock
from openticket_async.testing.store_conformance import StoreKit

pytestmark = pytest.mark.redis

LEASE = 5.0


@pytest_asyncio.fixture
async def kit(redis_url: str, redis_prefix: str) -> AsyncIterator[StoreKit]:
    kit = StoreKit(lambda: RedisStore(redis_url, prefix=redis_prefix, lease=LEASE), FakeClock())
    yield kit
    await kit.close()


async def two_stores(kit: StoreKit) -> tuple[RedisStore, RedisStore]:
    first, second = await kit.store(), await kit.store()
    assert isinstance(first, RedisStore)
    assert isinstance(second, RedisStore)
    return first, second


@pytest.mark.asyncio
async def test_a_stale_copy_restored_first_is_never_handed_out_before_the_fresh_one_lands(
    kit: StoreKit, redis_server: RedisServer
) -> None:
    stale, fresh = await two_stores(kit)
    hold = kit.hold("cart-stale")
    await stale.save(hold, "renew", kit.at(stale, 10))
    assert await stale.claim_due(kit.at(stale, 0), 10) == []  # knows the epoch
    [claim] = await fresh.claim_due(kit.at(fresh, 10), 10)  # renews it; stale's copy is old
    assert await fresh.save(claim.hold, "renew", kit.at(fresh, 100), claim.fence)
    redis_server.restart()
    assert await stale.claim_due(kit.at(stale, 10.5), 10) == []  # restores its old copy
    assert await stale.claim_due(kit.at(stale, 10.5 + RESTORE_WINDOW / 2), 10) == []
    assert await fresh.claim_due(kit.at(fresh, 11.0), 10) == []  # restores the fresh one
    assert await stale.claim_due(kit.at(stale, 10.5 + RESTORE_WINDOW), 10) == []
    assert await fresh.next_due() == kit.at(fresh, 100)


@pytest.mark.asyncio
async def test_the_restore_window_is_the_next_due_time_so_no_worker_spins(
    kit: StoreKit, redis_server: RedisServer
) -> None:
    store, _other = await two_stores(kit)
    await store.save(kit.hold(), "warn", kit.at(store, 1))
    await store.claim_due(kit.at(store, 0), 10)
    redis_server.restart()
    assert await store.claim_due(kit.at(store, 2), 10) == []  # restored, and held back
    assert await store.next_due() == kit.at(store, 2 + RESTORE_WINDOW)


@pytest.mark.asyncio
async def test_a_renewal_on_the_wire_at_a_restart_stays_leased_and_is_taken_over_if_its_worker_dies(
    kit: StoreKit, redis_server: RedisServer
) -> None:
    renewing, other = await two_stores(kit)
    hold = kit.hold()
    await renewing.save(hold, "renew", kit.at(renewing, 0))
    [claim] = await renewing.claim_due(kit.at(renewing, 0), 10)
    hold.state = HoldState.RENEWING
    await renewing.save(hold, "drop", kit.at(renewing, 400), claim.fence)  # its safety net
    await other.claim_due(kit.at(other, 0), 10)
    redis_server.restart()
    assert await renewing.claim_due(kit.at(renewing, 0.5), 10) == []  # ... then it dies
    assert await other.claim_due(kit.at(other, 1.0), 10) == []  # its next poll: restores too
    assert await other.claim_due(kit.at(other, LEASE - 0.1), 10) == []
    [orphan] = await other.claim_due(kit.at(other, LEASE), 10)
    assert (orphan.hold.id, orphan.action) == (hold.id, "renew")


@pytest.mark.asyncio
async def test_writes_lost_behind_a_surviving_epoch_are_restored(
    kit: StoreKit, redis_server: RedisServer, redis_url: str
) -> None:
    writer, reader = await two_stores(kit)
    old = kit.hold("cart-snap")
    await writer.save(old, "warn", kit.at(writer, 30))
    await writer.claim_due(kit.at(writer, 0), 10)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.save()  # a snapshot with the epoch and the old hold
    finally:
        await raw.aclose()
    new = kit.hold("cart-snap")
    await writer.save(new, "warn", kit.at(writer, 40))
    await writer.save(old, "warn", kit.at(writer, 50), old._fence)
    try:
        redis_server.restart()  # back from the snapshot: the epoch survived, the writes not
    finally:
        (redis_server.directory / "dump.rdb").unlink()
    assert [hold.id for hold in await reader.cart_holds("cart-snap")] == [old.id]
    assert await writer.claim_due(kit.at(writer, 1), 10) == []
    assert [hold.id for hold in await reader.cart_holds("cart-snap")] == [old.id, new.id]
    assert await reader.next_due() == kit.at(reader, 40)
