"""RedisStore on the fleet clock: workers whose wall clocks differ share leases and due times.

Each store here runs on real time with a wall clock set off by a known skew
(as on hosts whose clocks drift apart). Leases run on Redis's own TIME and due
times are shifted onto it, so what one worker writes means the same instant to
every other. The skews (±20 s) are much larger than a lease, so a store that
used its own wall clock would fail every check here at once; no test waits for
time to pass.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from openticket_async import Hold, HoldPolicy, HoldState, Product, Reservation, SystemClock
from openticket_async.stores.redis import RedisStore

pytestmark = pytest.mark.redis

LEASE = 10.0
SKEW = 20.0
#: What the skew estimate may be off by on loopback (half a round trip, with room).
TOLERANCE = 0.25


class SkewedClock(SystemClock):
    """Real time whose wall clock is ``skew`` seconds off."""

    def __init__(self, skew: float) -> None:
        self.skew = timedelta(seconds=skew)

    def wall(self) -> datetime:
        return super().wall() + self.skew


@pytest_asyncio.fixture
async def stores(redis_url: str, redis_prefix: str) -> AsyncIterator[dict[float, RedisStore]]:
    made = {}
    for skew in (-SKEW, 0.0, SKEW):
        store = RedisStore(redis_url, prefix=redis_prefix, lease=LEASE)
        store.bind(SkewedClock(skew), HoldPolicy())
        made[skew] = store
    yield made
    for store in made.values():
        await store.aclose()


def wall(store: RedisStore) -> float:
    """The store's process's wall time (its skewed clock), as the manager passes it."""
    clock = store._clock
    assert clock is not None
    return clock.wall().timestamp()


def a_hold(cart_id: str = "cart-skew") -> Hold:
    """A fresh hold whose reservation drops in 480 s of real time."""
    now, wall_now = time.monotonic(), datetime.now(UTC)
    reservation = Reservation(
        guid=uuid.uuid4().hex, shop_guid="shop", ticket_guid="ticket", event_date_guid=None,
        products=(Product(guid=uuid.uuid4().hex, name="Entrance"),), reserved_at=wall_now,
        expires_at=wall_now + timedelta(seconds=480), deadline=now + 480.0,
    )
    return Hold(id=uuid.uuid4().hex, cart_id=cart_id, shop_guid="shop", ticket_guid="ticket",
                reservation=reservation, created_at=now)


@pytest.mark.asyncio
async def test_a_worker_whose_clock_runs_ahead_leaves_a_live_claim_alone(
    stores: dict[float, RedisStore],
) -> None:
    behind, ahead = stores[-SKEW], stores[SKEW]
    hold = a_hold()
    await behind.save(hold, "renew", wall(behind) - 1.0)
    [claim] = await behind.claim_due(wall(behind), 10)
    assert await ahead.claim_due(wall(ahead), 10) == []  # 20 s ahead: the lease still runs
    assert claim.hold.id == hold.id


@pytest.mark.asyncio
async def test_a_worker_whose_clock_runs_behind_sees_a_due_time_at_the_same_instant(
    stores: dict[float, RedisStore],
) -> None:
    behind, ahead = stores[-SKEW], stores[SKEW]
    await ahead.save(a_hold(), "warn", wall(ahead) + 5.0)
    due = await behind.next_due()
    assert due is not None
    assert abs(due - (wall(behind) + 5.0)) < TOLERANCE
    assert await behind.claim_due(wall(behind), 10) == []  # not 40 s early either


@pytest.mark.asyncio
async def test_a_reservation_deadline_means_the_same_moment_in_every_worker(
    stores: dict[float, RedisStore],
) -> None:
    behind, ahead = stores[-SKEW], stores[SKEW]
    hold = a_hold("cart-deadline")
    await ahead.save(hold, "warn", wall(ahead) + 60.0)
    [seen] = await behind.cart_holds("cart-deadline")
    assert seen.reservation is not None
    assert hold.reservation is not None
    assert abs(seen.reservation.deadline - hold.reservation.deadline) < TOLERANCE


@pytest.mark.asyncio
async def test_a_renewal_heartbeat_keeps_its_lease_against_a_worker_ahead(
    stores: dict[float, RedisStore],
) -> None:
    behind, ahead = stores[-SKEW], stores[SKEW]
    hold = a_hold()
    await behind.save(hold, "renew", wall(behind) - 1.0)
    [claim] = await behind.claim_due(wall(behind), 10)
    claim.hold.state = HoldState.RENEWING
    assert await behind.save(claim.hold, "drop", wall(behind) + 400.0, claim.fence)
    assert await behind.claim_due(wall(behind), 10) == []  # the heartbeat
    assert await ahead.claim_due(wall(ahead), 10) == []


@pytest.mark.asyncio
async def test_an_idle_worker_follows_a_step_of_its_clock_at_its_next_poll(
    stores: dict[float, RedisStore],
) -> None:
    store = stores[0.0]
    await store.save(a_hold(), "warn", wall(store) + 5.0)
    assert await store.claim_due(wall(store), 10) == []
    assert await store.next_due() is not None
    clock = store._clock
    assert isinstance(clock, SkewedClock)
    clock.skew = timedelta(seconds=SKEW)  # NTP steps the host's clock
    due = await store.next_due()  # the poll's read measures it: no claim script ran since
    assert due is not None
    assert abs(due - (wall(store) + 5.0)) < TOLERANCE
