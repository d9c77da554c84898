"""What a hold costs in memory: its slots, its rarely set fields, its id."""

from __future__ import annotations

import sys

import pytest

from openticket_async import HoldPolicy, OpenTicketClient, ReservationManager
from openticket_async._hold import Hold, HoldState, Persisted, restore
from openticket_async.testing import FakeClock, FakeOpenTicket

#: CPython allocates objects in 16-byte size classes; a hold fits in this one.
HOLD_BYTES = 176


def make_hold() -> Hold:
    return Hold(
        id="h1", cart_id="c1", shop_guid="shop", ticket_guid="ticket",
        reservation=None, created_at=5.0,
    )


def has_side_object(hold: Hold) -> bool:
    return hold._more is not None


def test_a_hold_fits_in_176_bytes() -> None:
    assert sys.getsizeof(make_hold()) <= HOLD_BYTES


def test_a_fresh_hold_reads_the_defaults_of_its_rarely_set_fields() -> None:
    hold = make_hold()

    assert (hold._attempt, hold._retry_at, hold._risk, hold._paused, hold._fence) == (
        0, 0.0, False, False, 0,
    )
    assert not has_side_object(hold)


def test_writing_a_default_value_makes_no_side_object() -> None:
    hold = make_hold()

    hold._attempt = 0
    hold._retry_at = 0.0
    hold._risk = False
    hold._paused = False
    hold._fence = 0

    assert not has_side_object(hold)


@pytest.mark.parametrize(
    ("name", "value"),
    [("_attempt", 3), ("_retry_at", 12.5), ("_risk", True), ("_paused", True), ("_fence", 7)],
)
def test_a_rarely_set_field_keeps_the_value_written(name: str, value: object) -> None:
    hold = make_hold()

    setattr(hold, name, value)

    assert getattr(hold, name) == value
    assert has_side_object(hold)


def test_the_side_object_goes_once_every_rare_field_is_back_to_its_default() -> None:
    hold = make_hold()
    hold._attempt = 2
    hold._retry_at = 30.0

    hold._attempt = 0
    assert has_side_object(hold)  # the retry is still planned
    hold._retry_at = 0.0

    assert not has_side_object(hold)
    assert (hold._attempt, hold._retry_at) == (0, 0.0)


def test_restore_writes_the_persisted_part_through_the_side_object() -> None:
    hold = make_hold()

    applied = restore(hold, None, Persisted(HoldState.AT_RISK, 2, 4, True, True))

    assert applied
    assert (hold.state, hold.renewals, hold._attempt, hold._risk, hold._warned) == (
        HoldState.AT_RISK, 2, 4, True, True,
    )


@pytest.mark.asyncio
async def test_hold_ids_take_at_most_15_characters_and_differ_between_managers(
    openticket_fake: FakeOpenTicket[FakeClock], openticket_client: OpenTicketClient
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=10)
    policy = HoldPolicy(max_hold=None)
    ids = []
    for _ in range(2):
        async with ReservationManager(openticket_client, policy=policy) as manager:
            # a 15-character string is one 64-byte allocation; 16 would take 80
            manager._next_id = 16**6 - 3  # the last two ids that still fit
            async with manager.cart(shop.guid) as cart:
                ids += [hold.id for hold in await cart.add(ticket.guid, quantity=2)]

    assert max(len(hold_id) for hold_id in ids) == 15
    assert len(set(ids)) == 4
