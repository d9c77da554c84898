"""Bugs the manager state machine found (tests/test_manager_stateful.py), one test each.

The store ones run the manager on a store reached by awaits whose calls a switch
makes fail (``FlakyStore`` around a MemoryStore), against the fake server on a
FakeClock; the last one is the lifecycle rule behind a scheduler that spun.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from lifecycle_world import SHOP, TICKET, reservation
from manager_helpers import RECEIVER, FlakyStore, InjectedFault, Recorder, live_guids

from openticket_async import (
    BearerToken,
    CheckedOut,
    Hold,
    HoldEvent,
    HoldPolicy,
    HoldState,
    OpenTicketClient,
    Released,
    Renewed,
    ReservationManager,
    RetryPolicy,
)
from openticket_async._lifecycle import Due, Plan, Reserve, Rules, plan, step
from openticket_async._planning import RENEW
from openticket_async.stores import MemoryStore
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop

POLICY = HoldPolicy(renew_jitter=0, max_hold=None)
Fake = FakeOpenTicket[FakeClock]


@pytest_asyncio.fixture
async def client(openticket_fake: Fake) -> AsyncIterator[OpenTicketClient]:
    async with OpenTicketClient(
        auth=BearerToken(openticket_fake.issue_token().access_token),
        hosts=openticket_fake.hosts,
        clock=openticket_fake.clock,
    ) as client:
        yield client


def shop_with_stock(fake: Fake) -> tuple[FakeShop, str]:
    shop = fake.add_shop()
    return shop, fake.add_ticket(shop, stock=5).guid


@pytest.mark.asyncio
async def test_a_hold_whose_end_the_store_fails_to_record_still_ends_with_its_event_and_unit(
    openticket_fake: Fake, client: OpenTicketClient
) -> None:
    shop, ticket = shop_with_stock(openticket_fake)
    store = FlakyStore(MemoryStore())
    recorder = Recorder()
    async with ReservationManager(client, policy=POLICY, store=store) as manager:
        manager.on(HoldEvent, recorder)
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket)
        store.fail("forget", 1)
        await cart.remove(hold)
        assert hold.state is HoldState.RELEASED
        assert recorder.names_for(hold) == ["Released"]
        assert cart.holds == []
        assert [u.reservation_guid for u in manager.lingering()] == [hold.reservation.guid]


@pytest.mark.asyncio
async def test_closing_releases_every_hold_although_the_store_fails_to_forget_one(
    openticket_fake: Fake, client: OpenTicketClient
) -> None:
    shop, ticket = shop_with_stock(openticket_fake)
    store = FlakyStore(MemoryStore())
    recorder = Recorder()
    async with ReservationManager(client, policy=POLICY, store=store) as manager:
        manager.on(HoldEvent, recorder)
        holds = await manager.cart(shop.guid).add(ticket, 3)
        store.fail("forget", 1)
    assert [hold.state for hold in holds] == [HoldState.RELEASED] * 3
    assert len(recorder.of(Released)) == 3


@pytest.mark.asyncio
async def test_a_plan_the_store_refused_is_saved_again_and_the_hold_is_renewed(
    openticket_fake: Fake, client: OpenTicketClient
) -> None:
    shop, ticket = shop_with_stock(openticket_fake)
    store = FlakyStore(MemoryStore())
    recorder = Recorder()
    clock = openticket_fake.clock
    async with ReservationManager(client, policy=POLICY, store=store) as manager:
        manager.on(HoldEvent, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket)
        # the renewal goes out, but the plans after it (its safety net, then the next
        # renewal's) are refused: nothing in the store would hand the hold out again
        store.fail("save", 2)
        await clock.advance(420)
        assert recorder.names_for(hold) == ["Renewed"]
        await clock.advance(420)
        assert recorder.names_for(hold) == ["Renewed", "Renewed"]
        assert hold.state is HoldState.ACTIVE
        assert hold.reservation.guid in live_guids(openticket_fake)


@pytest.mark.asyncio
async def test_the_scheduler_asks_a_store_whose_next_due_failed_again(
    openticket_fake: Fake, client: OpenTicketClient
) -> None:
    shop, ticket = shop_with_stock(openticket_fake)
    store = FlakyStore(MemoryStore())
    recorder = Recorder()
    clock = openticket_fake.clock
    async with ReservationManager(client, policy=POLICY, store=store) as manager:
        manager.on(HoldEvent, recorder)
        store.fail("next_due", 1)
        [hold] = await manager.cart(shop.guid).add(ticket)
        await clock.advance(480)
        assert recorder.of(Renewed) != []
        assert hold.state is HoldState.ACTIVE


@pytest.mark.asyncio
async def test_every_hold_of_a_checkout_ends_although_the_store_fails_for_one(
    openticket_fake: Fake, client: OpenTicketClient
) -> None:
    shop, ticket = shop_with_stock(openticket_fake)
    method = openticket_fake.add_payment_method(shop)
    store = FlakyStore(MemoryStore())
    recorder = Recorder()
    async with ReservationManager(client, policy=POLICY, store=store) as manager:
        manager.on(HoldEvent, recorder)
        cart = manager.cart(shop.guid)
        holds = await cart.add(ticket, 3)
        # the first hold's checkout plan is refused: the others still pause
        store.fail("save", 1)
        with pytest.raises(InjectedFault):
            await cart.checkout(receiver=RECEIVER, payment_method=method.guid, currency="EUR")
        assert [hold.state for hold in holds] == [HoldState.ACTIVE] * 3
        assert [hold._paused for hold in holds] == [False] * 3
        order = await cart.checkout(
            receiver=RECEIVER, payment_method=method.guid, currency="EUR"
        )
        assert [hold.state for hold in holds] == [HoldState.ORDERED] * 3
        assert {e.hold.id for e in recorder.of(CheckedOut)} == {hold.id for hold in holds}
        assert [o.guid for o in openticket_fake.orders] == [order.guid]


def test_a_renew_claimed_within_the_clock_resolution_of_the_floor_goes_out_not_back() -> None:
    # A shared store's epoch due times come back a fraction of a microsecond off: the
    # scheduler claims the renew planned for the floor (last send + min_renew_interval)
    # just before it. Put back for the floor, the same claim came due at the same
    # instant forever, and a FakeClock never moved on.
    rules = Rules(POLICY, RetryPolicy(), resolution=1e-6)
    hold = Hold(
        id="h1",
        cart_id="c1",
        shop_guid=SHOP,
        ticket_guid=TICKET,
        reservation=reservation(1, 50.0),  # renewal is overdue: only the floor holds it
        created_at=0.0,
    )
    assert plan(hold, 0.5, rules) == [Plan(RENEW, 1.0)]
    actions = step(hold, Due(RENEW, 1.0), 1.0 - 5e-7, rules)
    assert actions[0] == Reserve()
    assert hold.state is HoldState.RENEWING


@pytest.mark.asyncio
async def test_a_released_unit_lingers_until_the_server_drops_it_although_its_expiry_was_early(
    openticket_fake: Fake, client: OpenTicketClient
) -> None:
    shop, ticket = shop_with_stock(openticket_fake)
    openticket_fake.faults.expiry_offset(-60)  # stated a minute early: still trusted
    async with ReservationManager(client, policy=POLICY) as manager:
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket)
        await cart.remove(hold)
        [record] = openticket_fake.live_reservations()
        [unit] = manager.lingering()
        assert unit.reservation_guid == record.guid
        assert unit.until >= record.expires_at
