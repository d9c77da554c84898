"""Many holds on FakeClock: every one renewed in time, with one scheduler task."""

from __future__ import annotations

import asyncio

import pytest
from manager_helpers import Recorder, manager_tasks

from openticket_async import (
    HoldPolicy,
    HoldState,
    Lost,
    OpenTicketClient,
    RenewalFailed,
    Renewed,
    ReservationManager,
)
from openticket_async.testing import FakeClock, FakeOpenTicket

pytestmark = pytest.mark.asyncio

HOLDS = 10_000
CARTS = 500
CYCLES = 3


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_ten_thousand_holds_across_many_carts_miss_no_renewal(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
) -> None:
    shop = openticket_fake.add_shop()
    tickets = [openticket_fake.add_ticket(shop, stock=2 * HOLDS // 10) for _ in range(10)]
    recorder = Recorder()
    # no jitter: holds added in the same virtual instant renew in one burst, which
    # keeps this test fast; jitter itself is covered in test_manager_lifecycle
    policy = HoldPolicy(max_hold=None, renewal_concurrency=32, renew_jitter=0)
    async with ReservationManager(openticket_client, policy=policy) as manager:
        manager.on(Renewed, recorder)
        manager.on(RenewalFailed, recorder)
        manager.on(Lost, recorder)
        carts = [manager.cart(shop.guid) for _ in range(CARTS)]

        async def fill(index: int) -> None:
            cart = carts[index]
            for n in range(HOLDS // CARTS):
                await cart.add(tickets[(index + n) % len(tickets)].guid)

        await asyncio.gather(*(fill(i) for i in range(CARTS)))
        await openticket_clock.settle()
        assert len(manager_tasks()) == 1  # the scheduler, whatever the number of holds
        for _ in range(CYCLES * 16):
            await openticket_clock.advance(30)
        holds = [hold for cart in carts for hold in cart.holds]
        assert len(holds) == HOLDS
        assert all(hold.state is HoldState.ACTIVE for hold in holds)
        assert min(hold.renewals for hold in holds) >= CYCLES
    assert recorder.of(RenewalFailed) == []
    assert recorder.of(Lost) == []
    assert all(event.time_left > 0 for event in recorder.of(Renewed))
