"""The test kit's defaults agree on time with the client's and the manager's.

README-style code starts ``FakeOpenTicket()`` and points an ``OpenTicketClient``
and a ``ReservationManager`` at it, all on their default clocks. If the fake's
clock disagreed with theirs, every reservation would look expired at once and
the manager would renew it in a storm.
"""

from __future__ import annotations

import pytest

from openticket_async import (
    BearerToken,
    Expiring,
    HoldEvent,
    HoldState,
    OpenTicketClient,
    RenewalFailed,
    Renewed,
    ReservationManager,
    SystemClock,
)
from openticket_async.testing import FakeClock, FakeOpenTicket

TTL = 480.0


def test_a_fake_without_a_clock_runs_on_real_time() -> None:
    assert isinstance(FakeOpenTicket().clock, SystemClock)


def test_a_fake_given_a_fake_clock_keeps_it() -> None:
    clock = FakeClock()

    assert FakeOpenTicket(clock).clock is clock


@pytest.mark.asyncio
async def test_defaults_give_a_hold_its_whole_ttl_and_no_renewal_right_away() -> None:
    events: list[HoldEvent] = []
    async with FakeOpenTicket() as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop, stock=5)
        token = fake.issue_token().access_token
        async with (
            OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts) as client,
            ReservationManager(client) as manager,
        ):
            for kind in (Expiring, Renewed, RenewalFailed):
                manager.on(kind, events.append)
            [hold] = await manager.cart(shop.guid).add(ticket.guid)
            assert hold.reservation is not None
            time_left = hold.reservation.deadline - manager.clock.now()
            # Round trips to the same server give the manager's scheduler every
            # chance to act on the hold; with clocks that disagree it renews here.
            for _ in range(3):
                await client.payment_methods(shop.guid)
            reserves = [r for r in fake.requests if r.route == "reserve"]
            state = hold.state

    assert TTL - 5 < time_left <= TTL
    assert state is HoldState.ACTIVE
    assert len(reserves) == 1
    assert events == []
