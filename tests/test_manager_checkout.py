"""Checkout, cancellation and uncertain units: nothing is lost or left behind."""

from __future__ import annotations

import asyncio

import pytest
from manager_helpers import RECEIVER, Recorder, live_guids

from openticket_async import (
    BearerToken,
    CheckedOut,
    HoldPolicy,
    HoldState,
    InvalidArgument,
    OpenTicketClient,
    Released,
    Renewed,
    ReservationManager,
    ServerError,
    Timeouts,
    UsageError,
)
from openticket_async.testing import FakeClock, FakeOpenTicket

pytestmark = pytest.mark.asyncio

TTL = 480.0
NO_JITTER = HoldPolicy(renew_jitter=0)


async def test_checkout_creates_the_order_once_and_marks_holds_ordered(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    method = openticket_fake.add_payment_method(shop)
    recorder = Recorder()
    async with ReservationManager(openticket_client) as manager:
        manager.on(CheckedOut, recorder)
        async with manager.cart(shop.guid) as cart:
            holds = await cart.add(ticket.guid, quantity=3)
            await openticket_clock.advance(TTL * 2)  # two renewals each first
            order = await cart.checkout(
                receiver=RECEIVER, payment_method=method.guid, currency="EUR"
            )
            assert cart.order is order
            with pytest.raises(UsageError):
                await cart.add(ticket.guid)
    assert [hold.state for hold in holds] == [HoldState.ORDERED] * 3
    assert [event.order for event in recorder.of(CheckedOut)] == [order] * 3
    assert len(openticket_fake.orders) == 1
    ordered = {t.reservation_guid for t in order.tickets}
    assert ordered == {hold.reservation.guid for hold in holds if hold.reservation}


async def test_checkout_renews_first_a_hold_too_close_to_its_deadline(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    method = openticket_fake.add_payment_method(shop)
    policy = HoldPolicy(renew_before=30, renew_jitter=0, warn_before=10)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=policy) as manager:
        manager.on(Renewed, recorder)
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        first = hold.reservation
        await openticket_clock.advance(TTL - 2 - 40)  # 40 s left: above renew_before
        await cart.checkout(receiver=RECEIVER, payment_method=method.guid, currency="EUR")
    assert recorder.of(Renewed) == []  # 40 s is enough: no renewal
    assert hold.state is HoldState.ORDERED

    # no reserve floor here: when the backoff's draw puts the last failed try less
    # than min_renew_interval before the checkout, the checkout's reserve waits for
    # the floor on the virtual clock, which this test does not advance
    policy = HoldPolicy(renew_jitter=0, min_renew_interval=0)
    async with ReservationManager(openticket_client, policy=policy) as manager:
        manager.on(Renewed, recorder)
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        first = hold.reservation
        openticket_fake.faults.status("reserve", 503, times=None)
        await openticket_clock.advance(TTL - 2 - 50)  # renewals keep failing; 50 s left
        assert hold.reservation is first
        openticket_fake.faults.clear()
        await cart.checkout(receiver=RECEIVER, payment_method=method.guid, currency="EUR")
    [renewed] = recorder.of(Renewed)
    assert renewed.old is first  # checkout renewed it before ordering
    order = openticket_fake.orders[-1]
    assert renewed.new.guid in str(order)


async def test_a_failed_checkout_resumes_renewals_and_raises(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    method = openticket_fake.add_payment_method(shop)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(Renewed, recorder)
        cart = manager.cart(shop.guid)
        holds = await cart.add(ticket.guid, quantity=2)
        openticket_fake.faults.status("order", 500, times=1)
        with pytest.raises(ServerError):
            await cart.checkout(receiver=RECEIVER, payment_method=method.guid, currency="EUR")
        assert openticket_fake.orders == []
        assert [hold.state for hold in holds] == [HoldState.ACTIVE] * 2
        await openticket_clock.advance(TTL)
        assert len(recorder.of(Renewed)) == 2  # renewals resumed
        assert [r.guid for r in cart.reservations] == [h.reservation.guid for h in holds]


async def test_checkout_of_an_empty_cart_is_refused_before_any_request(
    openticket_fake: FakeOpenTicket, openticket_client: OpenTicketClient
) -> None:
    shop = openticket_fake.add_shop()
    method = openticket_fake.add_payment_method(shop)
    async with ReservationManager(openticket_client) as manager:
        with pytest.raises(InvalidArgument):
            await manager.cart(shop.guid).checkout(
                receiver=RECEIVER, payment_method=method.guid, currency="EUR"
            )
    assert openticket_fake.requests == []


@pytest.mark.parametrize("bad", ["", "../x", "a?b=1", "%2e%2e", " ", "x" * 10_000])
async def test_bad_ticket_guid_is_refused_before_any_request(
    openticket_fake: FakeOpenTicket, openticket_client: OpenTicketClient, bad: str
) -> None:
    shop = openticket_fake.add_shop()
    async with ReservationManager(openticket_client) as manager:
        cart = manager.cart(shop.guid)
        with pytest.raises(InvalidArgument):
            await cart.add(bad)
        with pytest.raises(InvalidArgument):
            await cart.add(openticket_fake.add_ticket(shop).guid, quantity=0)
    assert openticket_fake.requests == []


async def test_cancelling_add_mid_request_leaves_no_untracked_hold(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    async with ReservationManager(openticket_client) as manager:
        cart = manager.cart(shop.guid)
        # the server makes the reservation, then never answers
        openticket_fake.faults.act_then_fail("reserve", stall=True, times=1)
        task = asyncio.create_task(cart.add(ticket.guid))
        await openticket_clock.settle()  # the request is on the wire
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cart.holds == []
        # the server may still act on it: the unit is counted as uncertain, not free
        [uncertain] = manager.lingering(ticket.guid)
        assert uncertain.reservation_guid is None
        # the server did act: its one live unit is exactly the one counted as uncertain
        assert len(live_guids(openticket_fake, ticket.guid)) == 1
        assert manager.lingering(ticket.guid) == [uncertain]


async def test_cancelling_a_multi_unit_add_releases_the_units_already_made(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    recorder = Recorder()
    async with ReservationManager(openticket_client) as manager:
        manager.on(Released, recorder)
        cart = manager.cart(shop.guid)
        openticket_fake.faults.delay("reserve", 10, times=None)  # virtual latency
        task = asyncio.create_task(cart.add(ticket.guid, quantity=3))
        await openticket_clock.advance(15)  # first unit made, second on the wire
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        openticket_fake.faults.clear()
        assert cart.holds == []
        [released] = recorder.of(Released)
        tracked = {u.reservation_guid for u in manager.lingering(ticket.guid)}
        assert released.hold.reservation is not None
        assert released.hold.reservation.guid in tracked
        # every unit the server holds is known to the manager (made or uncertain)
        await openticket_clock.advance(15)
        live = live_guids(openticket_fake, ticket.guid)
        assert len(live) <= len(manager.lingering(ticket.guid))


async def test_a_timed_out_renewal_counts_an_uncertain_unit_until_its_ttl(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    token = openticket_fake.issue_token().access_token
    async with (
        OpenTicketClient(
            auth=BearerToken(token),
            hosts=openticket_fake.hosts,
            clock=openticket_clock,
            timeouts=Timeouts(read=0.2, total=0.5),
        ) as client,
        ReservationManager(client, policy=NO_JITTER) as manager,
    ):
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        openticket_fake.faults.act_then_fail("reserve", stall=True, times=1)
        await openticket_clock.advance(TTL - 62)
        # the renewal timed out in real time; the server did make a unit
        deadline = asyncio.get_running_loop().time() + 5
        while not manager.lingering(ticket.guid):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        [uncertain] = manager.lingering(ticket.guid)
        assert uncertain.reservation_guid is None
        assert hold.state in (HoldState.ACTIVE, HoldState.AT_RISK)
        await openticket_clock.advance(TTL + 10)
        assert manager.lingering(ticket.guid) == []


async def test_cancelling_checkout_mid_order_leaves_every_hold_tracked_and_renewing(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    method = openticket_fake.add_payment_method(shop)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(Renewed, recorder)
        cart = manager.cart(shop.guid)
        holds = await cart.add(ticket.guid, quantity=2)
        openticket_fake.faults.delay("order", 5, times=1)  # the order is on the wire
        task = asyncio.create_task(
            cart.checkout(receiver=RECEIVER, payment_method=method.guid, currency="EUR")
        )
        await openticket_clock.settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cart.holds == holds
        assert [hold.state for hold in holds] == [HoldState.ACTIVE] * 2
        await openticket_clock.advance(TTL)
        assert len(recorder.of(Renewed)) == 2  # renewals resumed for both holds


async def test_closing_the_manager_mid_renewal_releases_the_hold_and_counts_the_unit(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(Released, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        openticket_fake.faults.delay("reserve", 30, times=1)  # the renewal hangs on the wire
        await openticket_clock.advance(TTL - 62)
        assert hold.state is HoldState.RENEWING
    assert hold.state is HoldState.RELEASED
    assert [event.hold for event in recorder.of(Released)] == [hold]
    kinds = sorted(unit.reservation_guid is None for unit in manager.lingering(ticket.guid))
    # the released hold's last reservation, and the renewal that may have reached the server
    assert kinds == [False, True]
