"""``manager.stats()``: the snapshot a health check reads, on the fake server and FakeClock."""

from __future__ import annotations

import pytest

from openticket_async import (
    HoldPolicy,
    HoldState,
    ManagerStats,
    OpenTicketClient,
    ReservationManager,
    StoreHealth,
)
from openticket_async.testing import FakeClock, FakeOpenTicket

pytestmark = pytest.mark.asyncio

NO_JITTER = HoldPolicy(renew_jitter=0)


async def test_a_fresh_manager_reports_nothing_held_and_nothing_due(
    openticket_client: OpenTicketClient,
) -> None:
    async with ReservationManager(openticket_client) as manager:
        stats = manager.stats()
    assert stats == ManagerStats(
        holds={HoldState.ACTIVE: 0, HoldState.RENEWING: 0, HoldState.AT_RISK: 0},
        carts=0,
        next_due_in=None,
        renewals_in_flight=0,
        lingering_units=0,
        lateness_p50=None,
        lateness_p99=None,
        store=StoreHealth.MEMORY,
    )
    assert stats.healthy


async def test_holds_and_carts_are_counted_and_the_next_renewal_is_due(
    openticket_fake: FakeOpenTicket, openticket_client: OpenTicketClient
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=10)
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        await manager.cart(shop.guid).add(ticket.guid, quantity=2)
        await manager.cart(shop.guid).add(ticket.guid)
        stats = manager.stats()
    assert stats.holds[HoldState.ACTIVE] == 3
    assert stats.carts == 2
    # the warning (30 s before the local deadline) comes after the renewal (60 s before)
    assert stats.next_due_in == pytest.approx(480 - 2 - 60)


async def test_lateness_percentiles_show_a_renewal_queued_behind_a_slow_one(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=10)
    one_at_a_time = HoldPolicy(renew_jitter=0, renewal_concurrency=1)
    async with ReservationManager(openticket_client, policy=one_at_a_time) as manager:
        await manager.cart(shop.guid).add(ticket.guid, quantity=2)
        openticket_fake.faults.delay("reserve", 5.0)  # the first renewal takes 5 s
        await openticket_clock.advance(430)
        stats = manager.stats()
    assert stats.lateness_p50 == pytest.approx(0.0)  # the first went out on time
    assert stats.lateness_p99 == pytest.approx(5.0)  # the second waited for it


async def test_the_old_units_of_renewed_holds_linger_until_their_drop(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=10)
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        await manager.cart(shop.guid).add(ticket.guid, quantity=2)
        await openticket_clock.advance(420)
        renewed = manager.stats()
        await openticket_clock.advance(70)  # past the old reservations' drop
        dropped = manager.stats()
    assert (renewed.lingering_units, dropped.lingering_units) == (2, 0)
    assert renewed.renewals_in_flight == 0


async def test_an_at_risk_hold_makes_the_manager_unhealthy(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=1)  # no unit for the overlap
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        await manager.cart(shop.guid).add(ticket.guid)
        await openticket_clock.advance(419)
        stats = manager.stats()
    assert stats.at_risk == 1
    assert not stats.healthy


async def test_the_snapshot_cannot_be_changed_by_its_reader(
    openticket_client: OpenTicketClient,
) -> None:
    async with ReservationManager(openticket_client) as manager:
        stats = manager.stats()
    with pytest.raises(TypeError):
        stats.holds[HoldState.ACTIVE] = 5  # type: ignore[index]
