"""Lifecycle log lines on ``openticket_async.manager``: level, message and ``extra`` fields."""

from __future__ import annotations

import logging

import pytest

from openticket_async import (
    BearerToken,
    HoldPolicy,
    HoldState,
    OpenTicketClient,
    Receiver,
    ReservationManager,
)
from openticket_async.testing import FakeClock, FakeOpenTicket

pytestmark = pytest.mark.asyncio

NO_JITTER = HoldPolicy(renew_jitter=0)
LOGGER = "openticket_async.manager"


def lines(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records
        if r.name == LOGGER and getattr(r, "openticket_event", None) == event
    ]


async def sold_out_twice(
    fake: FakeOpenTicket, client: OpenTicketClient, clock: FakeClock
) -> tuple[str, str, str]:
    """One hold whose renewal meets a sold-out ticket, then loses it after the drop."""
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=1)  # the overlap leaves no unit for the renewal
    async with ReservationManager(client, policy=NO_JITTER) as manager:
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        await clock.advance(480 - 62)  # the renewal, 60 s before the local deadline
        assert hold.state is HoldState.AT_RISK
        fake.faults.status("reserve", 409, times=1)  # a rival takes the unit after the drop
        await clock.advance(70)
        assert hold.state is HoldState.LOST
    return hold.id, hold.cart_id, ticket.guid


async def test_a_failed_renewal_is_a_warning_with_its_cause_and_time_left(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    hold_id, cart_id, ticket = await sold_out_twice(
        openticket_fake, openticket_client, openticket_clock
    )
    [record] = lines(caplog, "RenewalFailed")
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"renewal of hold {hold_id} of cart {cart_id} failed")
    assert record.hold_id == hold_id
    assert record.cart_id == cart_id
    assert record.ticket_guid == ticket
    assert record.time_left == pytest.approx(60.0)
    assert record.cause.startswith("TicketUnavailable: ")
    assert record.will_retry is True


async def test_at_risk_is_a_warning_with_its_reason(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    hold_id, cart_id, ticket = await sold_out_twice(
        openticket_fake, openticket_client, openticket_clock
    )
    [record] = lines(caplog, "AtRisk")
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"hold {hold_id} of cart {cart_id} is at risk (sold_out): 60.0 s left"
    )
    assert (record.hold_id, record.cart_id, record.ticket_guid) == (hold_id, cart_id, ticket)
    assert record.cause == "sold_out"
    assert record.time_left == pytest.approx(60.0)


async def test_a_lost_hold_is_a_warning_with_its_reason(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    hold_id, cart_id, ticket = await sold_out_twice(
        openticket_fake, openticket_client, openticket_clock
    )
    [record] = lines(caplog, "Lost")
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"hold {hold_id} of cart {cart_id} is lost (sold_out): ticket {ticket}"
    )
    assert (record.hold_id, record.cart_id, record.ticket_guid) == (hold_id, cart_id, ticket)
    assert record.cause == "sold_out"
    assert record.time_left <= 0.0  # past its local deadline


async def test_a_renewal_is_logged_at_debug_only(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    openticket_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=3)
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        await openticket_clock.advance(419)
    [record] = lines(caplog, "Renewed")
    assert record.levelno == logging.DEBUG
    assert record.hold_id == hold.id
    assert record.renewals == 1


async def test_a_checkout_is_logged_at_info_with_its_order(
    openticket_fake: FakeOpenTicket,
    openticket_client: OpenTicketClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=3)
    method = openticket_fake.add_payment_method(shop)
    async with ReservationManager(openticket_client, policy=NO_JITTER) as manager:
        cart = manager.cart(shop.guid)
        await cart.add(ticket.guid, quantity=2)
        order = await cart.checkout(
            receiver=Receiver(email="ada@example.com", firstname="Ada", lastname="Lovelace"),
            payment_method=method.guid,
            currency="EUR",
        )
    [record] = lines(caplog, "Checkout")
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"cart {cart.id} checked out: order {order.guid} with 2 hold(s)"
    assert (record.cart_id, record.order_guid, record.holds) == (cart.id, order.guid, 2)


async def test_no_lifecycle_line_holds_the_token(
    openticket_fake: FakeOpenTicket,
    openticket_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    token = openticket_fake.issue_token().access_token
    async with OpenTicketClient(
        auth=BearerToken(token), hosts=openticket_fake.hosts, clock=openticket_clock
    ) as client:
        await sold_out_twice(openticket_fake, client, openticket_clock)
    assert lines(caplog, "Lost")
    for record in caplog.records:
        assert all(token not in str(value) for value in vars(record).values())
        assert token not in record.getMessage()
