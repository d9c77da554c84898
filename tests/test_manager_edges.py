"""The manager at the edges, on the fake server and FakeClock: one seen case per test.

Each test is a case of the lifecycle issue that went wrong before the pure
lifecycle machine (``_lifecycle``) decided every change of a hold's state.
"""

from __future__ import annotations

import anyio
import pytest
from manager_helpers import RECEIVER, Recorder, live_guids, manager_tasks

from openticket_async import (
    BearerToken,
    Expiring,
    HoldEvent,
    HoldPolicy,
    HoldState,
    Lost,
    OpenTicketClient,
    Released,
    RenewalFailed,
    Renewed,
    ReservationManager,
    RetryPolicy,
)
from openticket_async._events import AtRisk
from openticket_async.stores import MemoryStore
from openticket_async.testing import FakeClock, FakeOpenTicket

pytestmark = pytest.mark.asyncio

TTL = 480.0
NO_JITTER = HoldPolicy(renew_jitter=0, max_hold=None)


def reserves(fake: FakeOpenTicket, ticket_guid: str) -> list[float]:
    """When the fake received each reserve of ``ticket_guid``."""
    return [r.time for r in fake.requests if r.route == "reserve" and ticket_guid in r.path]


async def test_a_checkout_hung_past_the_drop_then_cancelled_leaves_no_hold_stuck(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    method = openticket_fake.add_payment_method(shop)
    openticket_fake.faults.delay("order", TTL * 10)  # the order call hangs
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(HoldEvent, recorder)
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        async with anyio.create_task_group() as tg:

            async def checkout() -> None:
                await cart.checkout(receiver=RECEIVER, payment_method=method.guid, currency="EUR")

            tg.start_soon(checkout)
            await openticket_clock.advance(TTL + 30)  # past renewal time and the drop
            assert recorder.of(AtRisk)  # the risk was told, not silent
            tg.cancel_scope.cancel()
        await openticket_clock.advance(TTL)
        # an hour on, the hold is either kept (a reservation at the server) or told lost
        await openticket_clock.advance(3600)
        if hold.done:
            assert hold.state is HoldState.LOST
            assert recorder.of(Lost)
        else:
            assert hold.state is HoldState.ACTIVE
            assert hold.reservation is not None
            assert hold.reservation.guid in live_guids(openticket_fake)


async def test_a_server_expiry_in_the_past_does_not_start_a_renewal_storm(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=500)
    openticket_fake.faults.expiry_offset(-TTL - 600, times=None)  # ten minutes ago
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        for _ in range(60):
            await openticket_clock.advance(1)
        assert len(reserves(openticket_fake, ticket.guid)) == 1  # no renewal at all yet
        await openticket_clock.advance(TTL * 2)
        assert hold.state is HoldState.ACTIVE
        # the local TTL rules: about one renewal per 8 minutes, not hundreds
        assert len(reserves(openticket_fake, ticket.guid)) <= 4


async def test_a_long_retry_after_never_parks_the_renewal_past_the_drop(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    policy = HoldPolicy(renew_before=20, warn_before=10, renew_jitter=0, max_hold=None)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=policy) as manager:
        manager.on(HoldEvent, recorder)
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        openticket_fake.faults.status("reserve", 429, retry_after=86400)
        await openticket_clock.advance(TTL - 2 - 20 + 1)  # the renewal met the 429
        assert recorder.of(AtRisk)
        await openticket_clock.advance(20 + 2 + 2 + 1)  # just after the drop
        assert hold.renewals == 1
        assert hold.state is HoldState.ACTIVE


async def test_the_deadline_passing_with_a_renewal_on_the_wire_emits_at_risk(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(HoldEvent, recorder)
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        openticket_fake.faults.delay("reserve", 90)  # the renewal answers after the deadline
        await openticket_clock.advance(TTL - 2 - 60 + 65)
        assert hold.state is HoldState.AT_RISK
        assert [e.reason for e in recorder.of(AtRisk)] == ["renewal in flight at the deadline"]
        await openticket_clock.advance(60)
        assert hold.state is HoldState.ACTIVE
        assert hold.renewals >= 1


async def test_renewals_wait_by_the_clients_retry_policy(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    token = openticket_fake.issue_token()
    retry = RetryPolicy(retry_after_max=3)
    async with (
        OpenTicketClient(
            auth=BearerToken(token.access_token),
            hosts=openticket_fake.hosts,
            clock=openticket_clock,
            retry=retry,
        ) as client,
        ReservationManager(client, policy=NO_JITTER) as manager,
    ):
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        openticket_fake.faults.status("reserve", 429, retry_after=20)
        await openticket_clock.advance(TTL - 2 - 60 + 1)
        assert hold.renewals == 0
        await openticket_clock.advance(3.5)  # the client caps Retry-After at 3 s
        assert hold.renewals == 1


async def test_a_client_closed_under_the_manager_fails_attempts_not_the_application(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    recorder = Recorder()
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        manager.on(HoldEvent, recorder)
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        await openticket_client.aclose()
        await openticket_clock.advance(TTL + 60)
        failed = recorder.of(RenewalFailed)
        assert failed
        assert all(e.error is not None for e in failed)
        assert hold.state is HoldState.LOST  # told, after its try past the drop
        assert manager.cart(shop.guid) is not None  # the manager still serves


async def test_checkout_behind_queued_renewals_reserves_its_ticket_once(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    others = openticket_fake.add_ticket(shop, stock=50)
    method = openticket_fake.add_payment_method(shop)
    policy = HoldPolicy(renew_jitter=0, max_hold=None, renewal_concurrency=1)
    async with ReservationManager(openticket_client, policy=policy) as manager:
        crowd = manager.cart(shop.guid)
        await crowd.add(others.guid, quantity=10)
        cart = manager.cart(shop.guid)
        await cart.add(ticket.guid)
        openticket_fake.faults.delay("reserve", 1, times=None)  # each renewal takes 1 s
        await openticket_clock.advance(TTL - 2 - 60 + 0.5)  # 11 renewals queued, one worker
        async with anyio.create_task_group() as tg:

            async def checkout() -> None:
                await cart.checkout(receiver=RECEIVER, payment_method=method.guid, currency="EUR")

            tg.start_soon(checkout)
            for _ in range(30):
                await openticket_clock.advance(1)
        assert cart.order is not None
        await openticket_clock.advance(30)
    assert len(reserves(openticket_fake, ticket.guid)) == 2  # the add, one renewal


async def test_async_callbacks_for_the_releases_at_close_run(
    openticket_fake: FakeOpenTicket, openticket_client: OpenTicketClient
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    seen: list[str] = []

    async def on_release(event: Released) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(event.hold.id)

    async with ReservationManager(openticket_client) as manager:
        manager.on(Released, on_release)
        holds = await manager.cart(shop.guid).add(ticket.guid, quantity=3)
    assert sorted(seen) == sorted(hold.id for hold in holds)


async def test_an_undecodable_renewal_answer_counts_a_lingering_unit(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        await manager.cart(shop.guid).add(ticket.guid)
        openticket_fake.faults.malformed_json("reserve")  # the server reserved, then this
        await openticket_clock.advance(TTL - 2 - 60 + 0.5)
        unknown = [u for u in manager.lingering(ticket.guid) if u.reservation_guid is None]
        assert len(unknown) == 1
        assert len(openticket_fake.live_reservations(ticket.guid)) == 2


async def test_expiring_fires_with_the_default_policy_when_a_renewal_is_slow(
    # a specification of the defaults (warn_before 30 s, renew_before 60 s), not a
    # regression: before, it fired or not by the jitter's draw
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    recorder = Recorder()
    async with ReservationManager(openticket_client) as manager:
        manager.on(Expiring, recorder)
        manager.on(Renewed, recorder)
        await manager.cart(shop.guid).add(ticket.guid)
        openticket_fake.faults.delay("reserve", 45)  # no answer until 15-20 s before the drop
        await openticket_clock.advance(TTL)
    assert [type(e).__name__ for e in recorder.events] == ["Expiring", "Renewed"]


async def test_the_applications_own_exception_leaves_async_with_as_itself(
    openticket_client: OpenTicketClient,
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with ReservationManager(openticket_client):
            raise Boom


async def test_a_store_whose_close_fails_still_leaves_no_manager_task(
    openticket_client: OpenTicketClient, openticket_clock: FakeClock
) -> None:
    class CloseFails(MemoryStore):
        async def aclose(self) -> None:
            await super().aclose()
            raise ConnectionError("the store's backend went away")

    with pytest.raises(ConnectionError):
        async with ReservationManager(openticket_client, store=CloseFails()):
            pass
    await openticket_clock.settle()  # the caller's own task is not cancelled
    assert manager_tasks() == []


async def test_fetching_a_cart_by_id_keeps_it_from_going_idle(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    policy = HoldPolicy(renew_jitter=0, max_hold=None, idle_timeout=300)
    async with ReservationManager(openticket_client, policy=policy) as manager:
        cart = manager.cart(shop.guid)
        [hold] = await cart.add(ticket.guid)
        for _ in range(12):  # an hour, the customer's page polling its cart every 5 minutes
            await openticket_clock.advance(290)
            assert manager.cart(shop.guid, cart_id=cart.id).holds
        assert hold.state is HoldState.ACTIVE
        assert hold.renewals >= 6
