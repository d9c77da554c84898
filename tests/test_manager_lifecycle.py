"""ReservationManager against the fake server on FakeClock: the lifecycle rules.

Each test names the rule of DESIGN.md section 4 it guards.
"""

from __future__ import annotations

import pytest
from manager_helpers import RECEIVER, Recorder, live_guids, manager_tasks, task_name

from openticket_async import (
    CheckedOut,
    Expired,
    Expiring,
    HoldEvent,
    HoldPolicy,
    HoldState,
    InvalidArgument,
    Lost,
    OpenTicketClient,
    Released,
    RenewalFailed,
    Renewed,
    ReservationManager,
)
from openticket_async.stores import MemoryStore
from openticket_async.testing import FakeClock, FakeOpenTicket

pytestmark = pytest.mark.asyncio

TTL = 480.0
NO_JITTER = HoldPolicy(renew_jitter=0)


async def test_cart_of_three_stays_valid_across_ten_cycles(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    tickets = [openticket_fake.add_ticket(shop, stock=2) for _ in range(3)]
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=HoldPolicy(max_hold=None)) as manager:
        manager.on(Renewed, recorder)
        cart = manager.cart(shop.guid)
        holds = [(await cart.add(ticket.guid))[0] for ticket in tickets]
        for _ in range(10 * 48):  # ten 8-minute cycles in 10 s steps
            await openticket_clock.advance(10)
            live = live_guids(openticket_fake)
            for hold in holds:
                assert hold.state is HoldState.ACTIVE
                assert hold.reservation is not None
                assert hold.reservation.guid in live  # the server holds it right now
        assert all(hold.renewals >= 10 for hold in holds)
        assert len(cart.reservations) == 3
    renewals = recorder.of(Renewed)
    assert renewals
    assert all(e.new.deadline - TTL < e.old.deadline - 2 for e in renewals)  # before the drop


async def test_renewal_starts_renew_before_the_deadline_and_jitter_only_moves_it_earlier(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=50)
    policy = HoldPolicy(renew_before=60, renew_jitter=20, warn_before=30)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=policy) as manager:
        manager.on(Renewed, recorder)
        cart = manager.cart(shop.guid)
        await cart.add(ticket.guid, quantity=20)
        await openticket_clock.advance(TTL * 3)
    renewals = recorder.of(Renewed)
    assert len(renewals) >= 40
    # a reservation's deadline is its send time + TTL: so the lead each renewal had
    # is the old deadline (less the safety margin) minus the new one's send time
    leads = [(e.old.deadline - policy.safety_margin) - (e.new.deadline - TTL) for e in renewals]
    assert min(leads) >= policy.renew_before - 1e-6
    assert max(leads) <= policy.renew_before + policy.renew_jitter + 1e-6
    assert max(leads) - min(leads) > 1  # jitter really spreads them


async def test_expiring_fires_warn_before_the_deadline_when_warning_leads_renewal(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    policy = HoldPolicy(warn_before=120, renew_before=60, renew_jitter=0)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=policy) as manager:
        manager.on(Expiring, recorder)
        manager.on(Renewed, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        await openticket_clock.advance(TTL)
    assert recorder.names_for(hold)[:2] == ["Expiring", "Renewed"]
    expiring = recorder.of(Expiring)[0]
    assert expiring.time_left == pytest.approx(120)
    assert expiring.lateness == pytest.approx(0)


async def test_failing_callbacks_do_not_stop_renewals(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    recorder = Recorder()

    def broken(event: Renewed) -> None:
        raise RuntimeError("callback bug")

    async def broken_async(event: Renewed) -> None:
        raise RuntimeError("async callback bug")

    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(Renewed, broken)
        manager.on(Renewed, broken_async)
        manager.on(Renewed, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        await openticket_clock.advance(TTL * 3)
        assert hold.state is HoldState.ACTIVE
    assert len(recorder.of(Renewed)) >= 3
    assert "callback bug" in caplog.text
    assert "async callback bug" in caplog.text


async def test_closing_the_manager_leaves_no_task_and_releases_every_hold(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=10)
    recorder = Recorder()
    async with ReservationManager(openticket_client) as manager:
        manager.on(Released, recorder)
        holds = await manager.cart(shop.guid).add(ticket.guid, quantity=5)
        await openticket_clock.advance(100)
        assert len(manager_tasks()) == 1  # one scheduler task for 5 holds
    await openticket_clock.settle()
    assert manager_tasks() == []
    assert {event.hold.id for event in recorder.of(Released)} == {hold.id for hold in holds}
    assert all(hold.state is HoldState.RELEASED for hold in holds)


async def test_one_scheduler_task_whatever_the_number_of_holds(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=500)
    async with ReservationManager(openticket_client) as manager:
        for n in range(10):
            await manager.cart(shop.guid).add(ticket.guid, quantity=20 + n)
        await openticket_clock.settle()
        assert [task_name(t) for t in manager_tasks()] == ["ReservationManager._scheduler"]
        await openticket_clock.advance(TTL)  # renewal workers come and go
        assert [task_name(t) for t in manager_tasks()] == ["ReservationManager._scheduler"]


async def test_sold_out_during_overlap_gives_at_risk_then_a_retry_after_the_drop(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=1)  # our hold is the only unit
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(RenewalFailed, recorder)
        manager.on(Renewed, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        first = hold.reservation
        assert first is not None
        # renewal starts 60 s before the local deadline: the old unit still runs
        await openticket_clock.advance(TTL - 2 - 60)
        assert hold.state is HoldState.AT_RISK
        [failed] = recorder.of(RenewalFailed)
        assert failed.will_retry
        # just after the drop the unit is back in stock and the retry takes it
        await openticket_clock.advance(65)
        assert hold.state is HoldState.ACTIVE
        assert hold.reservation is not None
        assert hold.reservation.guid != first.guid
        assert live_guids(openticket_fake, ticket.guid) == {hold.reservation.guid}
    assert recorder.names_for(hold)[:2] == ["RenewalFailed", "Renewed"]


async def test_sold_out_again_after_the_drop_loses_the_hold(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=1)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(Lost, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        await openticket_clock.advance(TTL - 62)  # renewal fails: sold out in the overlap
        assert hold.state is HoldState.AT_RISK
        # a rival takes the unit the moment it returns to stock
        openticket_fake.faults.status("reserve", 409, times=1)
        await openticket_clock.advance(70)
        assert hold.state is HoldState.LOST
    [lost] = recorder.of(Lost)
    assert lost.hold is hold
    assert lost.reason == "sold_out"
    assert recorder.terminal_counts() == {hold.id: 1}


async def test_a_wait_that_outlasts_the_deadline_escalates_to_at_risk_at_once(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    recorder = Recorder()
    policy = HoldPolicy(renew_before=20, renew_jitter=0)
    async with ReservationManager(openticket_client, policy=policy) as manager:
        manager.on(RenewalFailed, recorder)
        manager.on(Renewed, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        openticket_fake.faults.status("reserve", 429, retry_after=25, times=1)
        await openticket_clock.advance(TTL - 2 - 20)
        # the server asked for 25 s, the hold has 20 s left: at risk now, not later
        assert hold.state is HoldState.AT_RISK
        assert recorder.names_for(hold) == ["RenewalFailed"]
        await openticket_clock.advance(TTL)
        # one more try after the drop succeeded
        assert hold.state is HoldState.ACTIVE
        assert "Renewed" in recorder.names_for(hold)


async def test_a_transient_error_is_retried_before_the_deadline(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(RenewalFailed, recorder)
        manager.on(Renewed, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        openticket_fake.faults.status("reserve", 503, times=1)
        await openticket_clock.advance(TTL - 30)
        assert hold.state is HoldState.ACTIVE
        assert recorder.names_for(hold) == ["RenewalFailed", "Renewed"]
        renewed = recorder.of(Renewed)[0]
        assert renewed.time_left > 50  # retried within the backoff, long before the drop


async def test_max_hold_lets_the_hold_expire_after_its_budget(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    recorder = Recorder()
    policy = HoldPolicy(max_hold=600, renew_jitter=0)
    async with ReservationManager(openticket_client, policy=policy) as manager:
        manager.on(Renewed, recorder)
        manager.on(Expired, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        await openticket_clock.advance(TTL * 3)
        assert hold.state is HoldState.EXPIRED
    assert recorder.names_for(hold) == ["Renewed", "Expired"]
    assert recorder.of(Expired)[0].reason == "max_hold"


async def test_an_idle_cart_stops_renewing(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=4)
    recorder = Recorder()
    policy = HoldPolicy(idle_timeout=300, renew_jitter=0)
    async with ReservationManager(openticket_client, policy=policy) as manager:
        manager.on(Expired, recorder)
        manager.on(Renewed, recorder)
        busy = manager.cart(shop.guid)
        idle = manager.cart(shop.guid)
        [kept] = await busy.add(ticket.guid)
        [dropped] = await idle.add(ticket.guid)
        for _ in range(10):
            await openticket_clock.advance(TTL / 5)
            busy.touch()
        assert kept.state is HoldState.ACTIVE
        assert dropped.state is HoldState.EXPIRED
    assert recorder.of(Expired)[0].reason == "idle"


async def test_auto_renew_off_warns_then_expires(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    recorder = Recorder()
    async with ReservationManager(
        openticket_client, policy=HoldPolicy(auto_renew=False)
    ) as manager:
        manager.on(Expiring, recorder)
        manager.on(Renewed, recorder)
        manager.on(Expired, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        await openticket_clock.advance(TTL)
    assert recorder.names_for(hold) == ["Expiring", "Expired"]
    assert recorder.of(Expired)[0].reason == "not_renewed"
    assert len(openticket_fake.requests) == 1  # the first reserve only


async def test_metadata_is_carried_across_renewals(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    recorder = Recorder()
    async with ReservationManager(openticket_client) as manager:
        manager.on(Renewed, recorder)
        [hold] = await manager.cart(shop.guid).add(ticket.guid, metadata={"seat": "A7"})
        await openticket_clock.advance(TTL * 2)
    assert [event.hold.metadata for event in recorder.of(Renewed)] == [{"seat": "A7"}] * 2
    assert hold.metadata == {"seat": "A7"}


async def test_every_hold_ends_in_exactly_one_terminal_event(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=10)
    method = openticket_fake.add_payment_method(shop)
    recorder = Recorder()
    async with ReservationManager(openticket_client) as manager:
        manager.on(Renewed, recorder)
        for kind in (Released, CheckedOut, Expired, Lost):
            manager.on(kind, recorder)
        ordered = manager.cart(shop.guid)
        removed = manager.cart(shop.guid)
        left = manager.cart(shop.guid)
        order_holds = await ordered.add(ticket.guid, quantity=2)
        [gone] = await removed.add(ticket.guid)
        kept = await left.add(ticket.guid, quantity=2)
        await removed.remove(gone)
        await removed.remove(gone)  # a second remove is a no-op
        await openticket_clock.advance(TTL)
        await ordered.checkout(receiver=RECEIVER, payment_method=method.guid, currency="EUR")
    holds = [*order_holds, gone, *kept]
    assert recorder.terminal_counts() == {hold.id: 1 for hold in holds}
    assert [hold.state for hold in holds] == [HoldState.ORDERED] * 2 + [HoldState.RELEASED] * 3
    assert len(openticket_fake.orders) == 1


async def test_a_cart_and_its_store_keep_no_trace_of_ended_holds(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=10)
    async with ReservationManager(openticket_client) as manager:
        store = manager.store
        assert isinstance(store, MemoryStore)
        cart = manager.cart(shop.guid)
        holds = await cart.add(ticket.guid, quantity=3)
        for hold in holds[:2]:
            await cart.remove(hold)
        # a long-lived cart that adds and removes must not grow with every hold it had
        assert len(store) == 1
        assert [h.id for h in await store.cart_holds(cart.id)] == [holds[2].id]
        assert repr(cart).endswith("holds=1)")
        with pytest.raises(InvalidArgument):
            await manager.cart(shop.guid).remove(holds[2])  # not that cart's hold
        await cart.close()
        assert len(store) == 0
        assert await store.cart_holds(cart.id) == []
    assert [hold.state for hold in holds] == [HoldState.RELEASED] * 3


class ListSink:
    """An event sink that keeps what it is sent."""

    def __init__(self) -> None:
        self.events: list[HoldEvent] = []

    def publish(self, event: HoldEvent) -> None:
        self.events.append(event)


class SinkStore(MemoryStore):
    """A MemoryStore whose ``event_sink`` is a ListSink, as a shared store's is its relay."""

    def __init__(self) -> None:
        super().__init__()
        self.event_sink = ListSink()


async def test_every_event_goes_to_the_stores_event_sink_even_with_no_listener(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=10)
    store = SinkStore()
    async with ReservationManager(openticket_client, policy=NO_JITTER, store=store) as manager:
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        await openticket_clock.advance(TTL)
        await cart.remove(hold)
    names = [type(event).__name__ for event in store.event_sink.events if event.hold is hold]
    assert "Renewed" in names
    assert names[-1] == "Released"
