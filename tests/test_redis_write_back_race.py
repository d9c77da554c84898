"""A worker's own claim racing the write-back of a renewal it just made (issue 17 point 2).

Under load a renewing worker's lease may lapse while its reserve is on the
wire. Its next claim then takes the hold back (its own lapsed lease) with the
record from *before* the renewal, and when that claim ran in Redis just before
the renewal's write-back, the write-back is fenced out. If the local hold
object was gone by the time the claim's answer was handed out, the store made
a new one from that old record and the worker renewed the hold a second time
(seen in the fleet soak: two reserves 0.4 s apart, an Expiring for the old
reservation after the Renewed).

These tests drive that interleaving by hand on a real redis-server: the CLAIM
runs in Redis, its answer is held back until the write-back was refused and
the test dropped every reference to the hold, as the manager does.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, NamedTuple

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from openticket_async import Hold, HoldPolicy, Reservation, RetryPolicy
from openticket_async._hold_plan import plan
from openticket_async._lifecycle import Answered, Due, Plan, Reserve, Rules, sending, step
from openticket_async.stores import Due as Claimed
from openticket_async.stores.redis import RedisStore
from openticket_async.stores.shared._registry import PRUNE_EVERY
from openticket_async.testing import FakeClock
from openticket_async.testing.store_conformance import StoreKit

LEASE = 5.0
# no Expiring and no jitter: the renewal is the hold's only action
POLICY = HoldPolicy(warn_before=0.0, renew_jitter=0.0, max_hold=None)
RULES = Rules(POLICY, RetryPolicy())


class HeldClaims(aioredis.Redis):
    """A real client that can hold back the answer of one CLAIM after it ran in Redis."""

    def __init__(self, url: str) -> None:
        pool = aioredis.ConnectionPool.from_url(url, decode_responses=True)
        super().__init__(connection_pool=pool)
        self.claim_sha = ""
        self.ran = asyncio.Event()
        self.release: asyncio.Event | None = None

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:  # type: ignore[override]
        answer = await super().evalsha(sha, numkeys, *keys_and_args)
        release = self.release
        if sha == self.claim_sha and release is not None:
            self.release = None
            self.ran.set()
            await release.wait()
        return answer


class World:
    """One worker's RedisStore on a held-back client, its clock, and the lifecycle by hand."""

    def __init__(self, store: RedisStore, client: HeldClaims, kit: StoreKit) -> None:
        self.store, self.client, self.kit, self.clock = store, client, kit, kit.clock

    @property
    def offset(self) -> float:
        """From the manager's clock to the store's (wall) time, as the executor converts."""
        return self.clock.wall().timestamp() - self.clock.now()

    async def carry_out(self, hold: Hold, actions: list[Any]) -> list[bool]:
        """Write the plans among ``actions`` as the executor does; whether each was kept."""
        return [
            await self.store.save(hold, action.action, action.at + self.offset, hold._fence)
            for action in actions if isinstance(action, Plan)
        ]

    def fire(self, claimed: Claimed) -> list[Any]:
        """Feed a claimed action to the lifecycle as the scheduler does; its actions."""
        claimed.hold._fence = claimed.fence
        return step(claimed.hold, Due(claimed.action, claimed.due - self.offset),
                    self.clock.now(), RULES)

    def renewed(self, hold: Hold) -> Reservation:
        """A new reservation for ``hold``, as the server would answer its reserve."""
        old = hold.reservation
        assert old is not None
        now, wall = self.clock.now(), self.clock.wall()
        return Reservation(
            guid=str(uuid.uuid4()), shop_guid=old.shop_guid, ticket_guid=old.ticket_guid,
            event_date_guid=None, products=old.products, reserved_at=wall,
            expires_at=wall + timedelta(seconds=480), deadline=now + 480.0,
        )


@pytest_asyncio.fixture
async def world(redis_url: str, redis_prefix: str) -> AsyncIterator[World]:
    client = HeldClaims(redis_url)
    kit = StoreKit(lambda: None, FakeClock())
    store = RedisStore(client, prefix=redis_prefix, lease=LEASE)
    store.bind(kit.clock, POLICY)
    client.claim_sha = store._scripts["claim"].sha
    try:
        yield World(store, client, kit)
    finally:
        await store.aclose()
        await client.aclose(close_connection_pool=True)


class Race(NamedTuple):
    """The race run up to the refused write-back (the claim's answer still held back)."""

    release: asyncio.Event  # set it to hand the claim's answer out
    claiming: asyncio.Task[list[Claimed]]
    cart_id: str
    renewed: str  # the guid of the reservation the renewal made


async def renewal_fenced_out_by_its_own_claim(world: World) -> Race:
    """A hold is claimed for its renewal; the worker's loop stalls past the lease, so
    the renewal's answer comes after the lease ran out, while the worker's next
    claim (its own lapsed lease) has just run in Redis. The renewal's write-back
    then meets the claim's newer fence. Every reference to the hold is gone with
    this coroutine's frame.
    """
    store, clock = world.store, world.clock
    hold = world.kit.hold(uuid.uuid4().hex)
    assert await world.carry_out(hold, plan(hold, clock.now(), RULES)) == [True]
    await clock.advance_to(hold._due)
    [claim] = await store.claim_due(world.kit.at(store, 0), 10)
    actions = world.fire(claim)
    assert any(isinstance(action, Reserve) for action in actions)
    assert await world.carry_out(hold, actions) == [True]  # its safety net: kept here
    sending(hold, clock.now())
    await clock.advance(LEASE + 1.0)  # no claim, no heartbeat: the lease ran out
    renewed = world.renewed(hold)
    answered = step(hold, Answered(renewed, hold._last_sent), clock.now(), RULES)
    release = world.client.release = asyncio.Event()
    claiming = asyncio.create_task(store.claim_due(world.kit.at(store, 0), 10))
    await world.client.ran.wait()  # CLAIM ran in Redis; its answer waits
    assert await world.carry_out(hold, answered) == [False]  # fenced out by that claim
    return Race(release, claiming, hold.cart_id, renewed.guid)


async def handed_out(race: Race) -> Claimed:
    """The claim's answer, handed out once nothing but the store may keep the hold (as
    in a worker whose renewal task moved on)."""
    gc.collect()
    race.release.set()
    [claimed] = await race.claiming
    return claimed


@pytest.mark.asyncio
async def test_own_claim_racing_a_renewals_write_back_never_renews_it_again(
    world: World,
) -> None:
    claimed = await handed_out(await renewal_fenced_out_by_its_own_claim(world))
    actions = world.fire(claimed)
    assert not any(isinstance(action, Reserve) for action in actions)


@pytest.mark.asyncio
async def test_a_renewal_fenced_out_by_its_own_claim_reaches_the_record(
    world: World, redis_url: str, redis_prefix: str
) -> None:
    race = await renewal_fenced_out_by_its_own_claim(world)
    claimed = await handed_out(race)
    assert await world.carry_out(claimed.hold, world.fire(claimed)) == [True]
    peer = RedisStore(redis_url, prefix=redis_prefix, lease=LEASE)
    peer.bind(world.clock, POLICY)
    try:
        [seen] = await peer.cart_holds(race.cart_id)
    finally:
        await peer.aclose()
    assert seen.reservation is not None
    assert (seen.renewals, seen.reservation.guid) == (1, race.renewed)


@pytest.mark.asyncio
async def test_a_hold_fenced_out_by_another_workers_takeover_is_let_go_long_after_its_due_time(
    world: World, redis_url: str, redis_prefix: str
) -> None:
    peer = RedisStore(redis_url, prefix=redis_prefix, lease=LEASE)
    peer.bind(world.clock, POLICY)
    store, clock = world.store, world.clock
    try:
        kept, due = await fenced_out_by_a_takeover(world, peer)
        let_go = due + store._local.keep_after_due - world.offset
        await clock.advance_to(let_go - 1.0)
        assert await store.claim_due(world.kit.at(store, 0), 10) == []
        gc.collect()
        assert kept() is not None
        await clock.advance_to(let_go + PRUNE_EVERY)
        assert await store.claim_due(world.kit.at(store, 0), 10) == []
        gc.collect()
        assert kept() is None
    finally:
        await peer.aclose()


async def fenced_out_by_a_takeover(
    world: World, peer: RedisStore
) -> tuple[weakref.ref[Hold], float]:
    """A renewal's write-back refused because ``peer`` took the hold over meanwhile (and
    planned it for much later); the hold and the refused plan's due time (the store's)."""
    store, clock = world.store, world.clock
    hold = world.kit.hold()
    assert await world.carry_out(hold, plan(hold, clock.now(), RULES)) == [True]
    await clock.advance_to(hold._due)
    [claim] = await store.claim_due(world.kit.at(store, 0), 10)
    assert await world.carry_out(hold, world.fire(claim)) == [True]
    sending(hold, clock.now())
    await clock.advance(LEASE + 1.0)
    [taken] = await peer.claim_due(world.kit.at(peer, 0), 10)
    assert taken.takeover
    assert await peer.save(taken.hold, "renew", world.kit.at(peer, 3600), taken.fence)
    answered = step(hold, Answered(world.renewed(hold), hold._last_sent), clock.now(), RULES)
    assert await world.carry_out(hold, answered) == [False]
    return weakref.ref(hold), hold._due + world.offset
