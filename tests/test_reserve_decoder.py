"""The reservation decoder's memory: bounded tables, and right answers past the bounds.

Each test decodes into a fresh :class:`DecoderMemory` (put in place of the
process's one for the test), so the sizes it sees are its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from openticket_async import Product, Reservation
from openticket_async import _reserve_decoder as decoder
from openticket_async._reserve_decoder import (
    LAYOUTS_LIMIT,
    VALUES_LIMIT,
    DecoderMemory,
    decode_reservation,
)

SENT_WALL = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SENT_AT = 5000.0
TTL = timedelta(seconds=480)
SHOP = "11111111-1111-4111-8111-111111111111"
#: well past every limit
DISTINCT = max(VALUES_LIMIT, LAYOUTS_LIMIT) + 2_000


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> DecoderMemory:
    fresh = DecoderMemory()
    monkeypatch.setattr(decoder, "MEMORY", fresh)
    return fresh


def reserved_at(i: int) -> datetime:
    return SENT_WALL + timedelta(seconds=i % 60)


def expires_at(i: int) -> datetime:
    return reserved_at(i) + timedelta(minutes=5)  # before the TTL runs out: not capped


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def answer(i: int, *, note: bool = False, spelling: str = "snake") -> dict[str, Any]:
    """Ticket ``i``'s answer: its own event date and product, timestamps of a minute.

    ``note`` adds an unknown key of its own to the answer and to its product, so
    each answer and its product have a key layout of their own.
    """
    product: dict[str, Any] = {"guid": f"p-{i}", "name": "Entrance"}
    payload: dict[str, Any] = {
        "guid": f"r-{i}",
        "shop_guid": SHOP,
        "ticket_guid": f"t-{i}",
        "event_date_guid": f"e-{i}",
        "products": [product],
        "reserved_at": iso(reserved_at(i)),
        "expires_at": iso(expires_at(i)),
        "status": "reserved",
    }
    if note:
        payload[f"note-{i}"] = i
        product[f"tag-{i}"] = "x"
    if spelling == "camel":
        payload = {camel(key): value for key, value in payload.items()}
    return json.loads(json.dumps(payload))  # new objects, as every answer has


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def decode(payload: dict[str, Any], i: int) -> Reservation:
    return decode_reservation(
        payload,
        shop_guid=SHOP,
        ticket_guid=f"t-{i}",
        sent_at=SENT_AT,
        sent_wall=SENT_WALL,
        ttl=TTL,
    )


def expected(i: int) -> Reservation:
    return Reservation(
        guid=f"r-{i}",
        shop_guid=SHOP,
        ticket_guid=f"t-{i}",
        event_date_guid=f"e-{i}",
        products=(Product(guid=f"p-{i}", name="Entrance"),),
        reserved_at=reserved_at(i),
        expires_at=expires_at(i),
        deadline=SENT_AT + (expires_at(i) - SENT_WALL).total_seconds(),
    )


def peaks_while_decoding(
    memory: DecoderMemory, answers: Iterable[tuple[int, dict[str, Any]]]
) -> dict[str, int]:
    """Decode every (i, answer), twice each; the most entries each table held meanwhile."""
    peaks = dict.fromkeys(DecoderMemory.LIMITS, 0)
    for i, payload in answers:
        for _ in range(2):  # a ticket's second answer finds what its first one left
            decode(payload, i)
            for name, size in memory.sizes().items():
                peaks[name] = max(peaks[name], size)
    return peaks


def test_every_table_of_the_memory_has_a_limit() -> None:
    # last_raw and last_moments are single slots, not tables
    assert set(DecoderMemory.__slots__) - {"last_raw", "last_moments"} == set(
        DecoderMemory.LIMITS
    )


def test_value_tables_fill_to_their_limits_and_no_further(memory: DecoderMemory) -> None:
    peaks = peaks_while_decoding(memory, ((i, answer(i)) for i in range(DISTINCT)))
    assert peaks["shared"] == VALUES_LIMIT
    assert peaks["one_product"] == VALUES_LIMIT
    assert all(peaks[name] <= limit for name, limit in DecoderMemory.LIMITS.items())


def test_layout_tables_fill_to_their_limits_and_no_further(memory: DecoderMemory) -> None:
    peaks = peaks_while_decoding(memory, ((i, answer(i, note=True)) for i in range(DISTINCT)))
    assert peaks["layouts"] == LAYOUTS_LIMIT
    assert peaks["product_layouts"] == LAYOUTS_LIMIT
    assert all(peaks[name] <= limit for name, limit in DecoderMemory.LIMITS.items())


@pytest.mark.parametrize("spelling", ["snake", "camel"])
def test_answers_of_one_shape_share_one_layout_whatever_their_ticket(
    memory: DecoderMemory, spelling: str
) -> None:
    for i in range(DISTINCT):
        decode(answer(i, spelling=spelling), i)
    assert memory.sizes()["layouts"] == 1


def test_a_full_table_is_emptied_by_its_next_entry(memory: DecoderMemory) -> None:
    for i in range(VALUES_LIMIT + 1):
        decode(answer(i), i)
    assert memory.sizes()["one_product"] == 1


def test_answers_decode_right_while_the_tables_overflow(memory: DecoderMemory) -> None:
    wrong = []
    for i in range(DISTINCT):
        note = i % 2 == 0  # half of them get new layouts, half share one
        payload = answer(i, note=note)
        raw = {"status": "reserved", f"note-{i}": i} if note else {"status": "reserved"}
        product_raw = {f"tag-{i}": "x"} if note else {}
        for _ in range(3):
            reservation = decode(payload, i)
            if (
                reservation != expected(i)
                or reservation.raw != raw
                or reservation.products[0].raw != product_raw
            ):
                wrong.append(i)
    assert wrong == []


@pytest.mark.parametrize("spelling", ["snake", "camel"])
def test_answers_decode_right_once_every_table_is_past_its_limit(
    memory: DecoderMemory, spelling: str
) -> None:
    peaks_while_decoding(memory, ((i, answer(i, note=True)) for i in range(DISTINCT)))
    late = DISTINCT + 1
    reservations = [decode(answer(late, spelling=spelling), late) for _ in range(3)]
    assert reservations == [expected(late)] * 3
    assert [dict(r.raw) for r in reservations] == [{"status": "reserved"}] * 3
    assert [r.products[0].raw for r in reservations] == [{}] * 3


def test_a_product_renamed_under_its_guid_decodes_with_its_new_name(
    memory: DecoderMemory,
) -> None:
    first, renamed = answer(1), answer(1)
    renamed["products"][0]["name"] = "Entrance, late"
    names = [decode(payload, 1).products[0].name for payload in (first, renamed, first)]
    assert names == ["Entrance", "Entrance, late", "Entrance"]
