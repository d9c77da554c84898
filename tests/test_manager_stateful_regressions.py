"""Bugs the manager state machine found (tests/test_manager_stateful.py), one test each.

The store ones run the manager on a store reached by awaits whose calls a switch
makes fail (``FlakyStore`` around a MemoryStore), against the fake server on a
FakeClock; the last one is the lifecycle rule behind a scheduler that spun.
"""

from __future__ import annotations

import itertools
import logging
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
from openticket_async.stores.redis import RedisStore
from openticket_async.stores.shared._codec import encode_hold
from openticket_async.stores.shared._registry import LocalHolds
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


def test_a_claim_of_a_hold_that_ended_here_hands_out_nothing_and_keeps_its_one_object() -> None:
    # The scheduler's own claim of a renewing hold (its safety net) ran in Redis while
    # the hold's end was on the wire: the store made a second object from the stale
    # record, which was renewed again and ended Lost, while the application's object
    # went back to AT_RISK for good (its end refused by the claim's newer fence).
    local = LocalHolds(keep_after_due=60.0, logger=logging.getLogger("test"))
    hold = Hold(
        id="h1",
        cart_id="c1",
        shop_guid=SHOP,
        ticket_guid=TICKET,
        reservation=reservation(1, 480.0),
        created_at=0.0,
    )
    record = encode_hold(hold, 0.0)
    local.planned(hold, RENEW, 480.0)
    hold.state = HoldState.LOST  # ended here: RedisStore.forget drops the notes, then writes
    local.ended(hold)
    assert local.claimed("h1", 5, record, (RENEW, 480.0), 480.0, 0.0) is None
    assert local.objects["h1"] is hold
    assert hold._fence == 5  # the latest claim's, as for every claim handed to this store


@pytest.mark.redis
@pytest.mark.usefixtures("redis_server")
def test_a_hold_lost_while_its_own_claim_crossed_its_end_ends_once_as_one_object(
    redis_url: str,
) -> None:
    # the shrunk example of the Redis state machine (one of the holds ended Lost in a
    # second object of its own); the invariants are the machine's
    from test_manager_stateful import POLICY as MACHINE_POLICY
    from test_manager_stateful import ManagerMachine

    prefixes = itertools.count()

    class OnRedis(ManagerMachine):
        longest_advance = 400.0

        def __init__(self) -> None:
            self.redis_url = redis_url  # the teardown checks that no lease is left
            self.prefix = f"regression:end-race:{next(prefixes)}:"
            super().__init__()

        def make_store(self) -> FlakyStore:
            return FlakyStore(RedisStore(redis_url, prefix=self.prefix, policy=MACHINE_POLICY))

    machine = OnRedis()
    try:
        machine.every_cart_starts_with_a_hold()
        machine.server_refuses(retry_after=None, route="order", status=409)
        machine.server_refuses(retry_after=86400.0, route="reserve", status=409)
        machine.advance(seconds=3600.0)
        machine.callbacks_raise_and_hang()
        machine.advance(seconds=1.0)
        machine.advance(seconds=120.0)
        machine.add(cart=0, quantity=1, ticket=0)
        machine.skewed_expiry(offset=-60.0)
        machine.advance(seconds=400.0)
        machine.each_hold_has_one_terminal_event_last_and_events_in_order()
        machine.no_hold_is_dropped_silently()
        machine.every_live_server_unit_is_accounted_for()
        machine.no_reservation_is_renewed_twice()
    finally:
        machine.teardown()
