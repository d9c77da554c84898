"""The converter and the hand-written decoders: lenient in, exact out. No event loop."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from openticket_async import (
    DecodeError,
    Order,
    OrderTicket,
    PaymentMethod,
    Product,
    Reservation,
    TokenSet,
    User,
)
from openticket_async._reserve_decoder import decode_reservation
from openticket_async._token_decoder import decode_token_set
from openticket_async._wire import CONVERTER, make_converter, parse_datetime, snake_key

SENT_WALL = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SENT_AT = 5000.0
TTL = timedelta(seconds=480)
SHOP = "11111111-1111-4111-8111-111111111111"
TICKET = "22222222-2222-4222-8222-222222222222"


def snake_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "guid": "r-1",
        "shop_guid": SHOP,
        "ticket_guid": TICKET,
        "event_date_guid": "e-1",
        "products": [{"guid": "p-1", "name": "Entrance"}],
        "reserved_at": "2026-01-01T12:00:00Z",
        "expires_at": "2026-01-01T12:08:00Z",
        "status": "reserved",
    }
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not ...}


def decode(payload: Any) -> Reservation:
    return decode_reservation(
        payload,
        shop_guid=SHOP,
        ticket_guid=TICKET,
        sent_at=SENT_AT,
        sent_wall=SENT_WALL,
        ttl=TTL,
    )


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


# -- reservations -------------------------------------------------------------------


def test_reservation_decodes_the_documented_snake_case_shape() -> None:
    reservation = decode(snake_payload())
    assert reservation.guid == "r-1"
    assert reservation.shop_guid == SHOP
    assert reservation.ticket_guid == TICKET
    assert reservation.event_date_guid == "e-1"
    assert reservation.products == (Product(guid="p-1", name="Entrance"),)
    assert reservation.reserved_at == SENT_WALL
    assert reservation.expires_at == SENT_WALL + TTL
    assert reservation.deadline == SENT_AT + 480


def test_reservation_camel_case_decodes_to_the_same_model() -> None:
    snake = snake_payload()
    camel_payload = {camel(key): value for key, value in snake.items()}
    assert "shopGuid" in camel_payload
    decoded = decode(camel_payload)
    assert decoded == decode(snake)
    assert dict(decoded.raw) == {"status": "reserved"}


@given(
    st.lists(st.sampled_from(["snake", "camel", "upper_guid", "pascal"]), min_size=7, max_size=7)
)
def test_reservation_any_casing_mix_decodes_the_same(styles: list[str]) -> None:
    spell: dict[str, Callable[[str], str]] = {
        "snake": lambda key: key,
        "camel": camel,
        "upper_guid": lambda key: camel(key).replace("Guid", "GUID"),
        "pascal": lambda key: camel(key)[0].upper() + camel(key)[1:],
    }
    snake = snake_payload()
    keys = [key for key in snake if key != "status"]
    mixed = {spell[style](key): snake[key] for style, key in zip(styles, keys, strict=True)}
    mixed["status"] = "reserved"
    assert decode(mixed) == decode(snake)


def test_reservation_unknown_keys_are_kept_in_raw_and_fields_are_not_stored_twice() -> None:
    reservation = decode(snake_payload(note={"x": 1}))
    assert dict(reservation.raw) == {"status": "reserved", "note": {"x": 1}}
    for field in ("guid", "shop_guid", "expires_at", "products"):
        assert field not in reservation.raw


def test_reservation_second_spelling_of_a_field_lands_in_raw() -> None:
    reservation = decode(snake_payload(shopGuid="other"))
    assert reservation.shop_guid == SHOP
    assert dict(reservation.raw) == {"status": "reserved", "shopGuid": "other"}


def test_reservation_first_spelling_of_a_field_wins_even_when_null() -> None:
    # as in the converter: which key spells a field depends on the keys alone
    reservation = decode(snake_payload(event_date_guid=None, eventDateGuid="e-2"))
    assert reservation.event_date_guid is None
    assert dict(reservation.raw) == {"status": "reserved", "eventDateGuid": "e-2"}


def test_reservation_raw_is_read_only() -> None:
    reservation = decode(snake_payload())
    assert isinstance(reservation.raw, MappingProxyType)
    with pytest.raises(TypeError):
        reservation.raw["status"] = "changed"  # type: ignore[index]


def test_reservation_without_unknown_keys_shares_the_empty_raw() -> None:
    payload = snake_payload(status=...)
    assert decode(payload).raw is decode(payload).raw


def test_reservation_product_unknown_keys_are_kept() -> None:
    reservation = decode(snake_payload(products=[{"guid": "p", "price": "12.50"}]))
    assert reservation.products[0].name is None
    assert dict(reservation.products[0].raw) == {"price": "12.50"}


def test_reservation_expiry_from_the_server_when_earlier_than_the_ttl() -> None:
    reservation = decode(snake_payload(expires_at="2026-01-01T12:05:00Z"))
    assert reservation.expires_at == SENT_WALL + timedelta(minutes=5)
    assert reservation.deadline == SENT_AT + 300


def test_reservation_expiry_is_never_later_than_send_time_plus_ttl() -> None:
    reservation = decode(snake_payload(expires_at="2026-01-01T12:30:00Z"))
    assert reservation.expires_at == SENT_WALL + TTL
    assert reservation.deadline == SENT_AT + 480


def test_reservation_without_expiry_expires_ttl_after_it_was_sent() -> None:
    reservation = decode(snake_payload(reserved_at=..., expires_at=...))
    assert reservation.reserved_at == SENT_WALL
    assert reservation.expires_at == SENT_WALL + TTL
    assert reservation.deadline == SENT_AT + 480


def test_reservation_expiry_with_an_offset_is_converted_to_utc() -> None:
    reservation = decode(snake_payload(expires_at="2026-01-01T13:04:00+01:00"))
    assert reservation.expires_at == SENT_WALL + timedelta(minutes=4)
    assert reservation.expires_at.tzinfo is UTC


def test_reservation_missing_shop_and_ticket_are_filled_from_the_request() -> None:
    reservation = decode(snake_payload(shop_guid=..., ticket_guid=...))
    assert (reservation.shop_guid, reservation.ticket_guid) == (SHOP, TICKET)


def test_reservation_numbers_for_identifiers_become_strings() -> None:
    reservation = decode(snake_payload(guid=12345, products=[{"guid": 7, "name": 8}]))
    assert reservation.guid == "12345"
    assert reservation.products[0] == Product(guid="7", name="8")


def test_reservation_built_by_the_fast_path_equals_one_built_normally() -> None:
    reservation = decode(snake_payload())
    normal = Reservation(
        guid=reservation.guid,
        shop_guid=reservation.shop_guid,
        ticket_guid=reservation.ticket_guid,
        event_date_guid=reservation.event_date_guid,
        products=(Product(guid="p-1", name="Entrance"),),
        reserved_at=reservation.reserved_at,
        expires_at=reservation.expires_at,
        deadline=reservation.deadline,
        raw=MappingProxyType({"status": "reserved"}),
    )
    assert reservation == normal
    assert repr(reservation) == repr(normal)
    assert hash(reservation) == hash(normal)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (snake_payload(guid=...), "guid"),
        (snake_payload(guid=None), "guid"),
        (snake_payload(guid={"a": 1}), "guid"),
        (snake_payload(shop_guid=["x"]), "shop_guid"),
        (snake_payload(event_date_guid=True), "event_date_guid"),
        (snake_payload(products={"guid": "p"}), "products"),
        (snake_payload(products=[{"name": "no guid"}]), "products[0].guid"),
        (snake_payload(products=[{"guid": "a"}, {"guid": []}]), "products[1].guid"),
        (snake_payload(products=["p-1"]), "products[0]"),
        (snake_payload(reserved_at="yesterday"), "reserved_at"),
        (snake_payload(expires_at=[2026]), "expires_at"),
    ],
)
def test_reservation_bad_field_raises_decode_error_naming_it(payload: Any, field: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(payload)
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize("payload", [[], "text", None, 3])
def test_reservation_payload_that_is_not_an_object_raises_decode_error(payload: Any) -> None:
    with pytest.raises(DecodeError, match="expected an object"):
        decode(payload)


# -- the converter --------------------------------------------------------------------


def test_converter_structures_an_order_leniently() -> None:
    order = CONVERTER.structure(
        {
            "guid": "o-1",
            "shopGuid": SHOP,
            "status": "pending",
            "currency": "EUR",
            "receiver": {"email": "a@b.c"},
            "tickets": [
                {"guid": "t-1", "ticketGuid": TICKET, "reservation_guid": "r", "ticketNumber": 42}
            ],
            "created_at": "2026-01-01T00:00:00Z",
        },
        Order,
    )
    assert order.shop_guid == SHOP
    assert order.tickets == (
        OrderTicket(guid="t-1", ticket_guid=TICKET, reservation_guid="r", ticket_number="42"),
    )
    assert dict(order.raw) == {
        "receiver": {"email": "a@b.c"},
        "created_at": "2026-01-01T00:00:00Z",
    }


def test_converter_null_optional_field_takes_its_default() -> None:
    method = CONVERTER.structure({"guid": "m", "name": None}, PaymentMethod)
    assert method == PaymentMethod(guid="m", name=None)
    assert method.raw == {}


@pytest.mark.parametrize(
    ("payload", "model", "field"),
    [
        ({"name": "x"}, PaymentMethod, "guid"),
        ({"guid": None}, User, "guid"),
        ({"guid": "u", "default_company_id": {"a": 1}}, User, "default_company_id"),
        (
            {"guid": "o", "tickets": [{"guid": "t"}, {"ticket_number": "1"}]},
            Order,
            "tickets[1].guid",
        ),
        (
            {"guid": "o", "tickets": [{"guid": "t", "ticketGuid": []}]},
            Order,
            "tickets[0].ticket_guid",
        ),
        ({"guid": "o", "tickets": {"guid": "t"}}, Order, "tickets"),
    ],
)
def test_converter_bad_field_raises_decode_error_naming_it(
    payload: dict[str, Any], model: type, field: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        CONVERTER.structure(payload, model)
    assert caught.value.field == field


def test_converter_payload_that_is_not_an_object_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="expected an object for User"):
        CONVERTER.structure(["guid"], User)


def test_converter_round_trips_models_through_plain_json_values() -> None:
    reservation = decode(snake_payload(note=1))
    order = CONVERTER.structure({"guid": "o", "tickets": [{"guid": "t", "x": 1}], "y": 2}, Order)
    token = decode_token_set(
        {"access_token": "a", "refresh_token": "r", "expires_in": 60, "token_type": "Bearer"},
        now=SENT_WALL,
    )
    for model in (reservation, order, token):
        plain = CONVERTER.unstructure(model)
        assert "raw" not in plain
        assert CONVERTER.structure(plain, type(model)) == model
        assert CONVERTER.structure(plain, type(model)).raw == model.raw


def test_converter_writes_datetimes_as_utc_iso_with_z() -> None:
    plain = CONVERTER.unstructure(decode(snake_payload()))
    assert plain["expires_at"] == "2026-01-01T12:08:00Z"
    assert plain["products"] == [{"guid": "p-1", "name": "Entrance"}]


def test_make_converter_builds_independent_converters() -> None:
    assert make_converter() is not make_converter()
    assert make_converter().structure({"guid": "p"}, Product) == Product(guid="p")


# -- values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01 00:00:00", datetime(2026, 1, 1, tzinfo=UTC)),
        (1767225600, datetime(2026, 1, 1, tzinfo=UTC)),
        ("1767225600", datetime(2026, 1, 1, tzinfo=UTC)),
        (1767225600.5, datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_parse_datetime_accepts_iso_and_epoch_as_aware_utc(value: Any, expected: datetime) -> None:
    moment = parse_datetime(value)
    assert moment == expected
    assert moment.tzinfo is UTC


@pytest.mark.parametrize("value", ["soon", "", [], {}, True, None, 1e300])
def test_parse_datetime_rejects_other_values(value: Any) -> None:
    with pytest.raises(DecodeError):
        parse_datetime(value)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("eventDateGuid", "event_date_guid"),
        ("EventDateGUID", "event_date_guid"),
        ("event_date_guid", "event_date_guid"),
        ("event-date-guid", "event_date_guid"),
        ("guid", "guid"),
    ],
)
def test_snake_key_normalises_every_casing(key: str, expected: str) -> None:
    assert snake_key(key) == expected


# -- tokens ---------------------------------------------------------------------------


def test_token_answer_decodes_expiries_companies_and_keeps_unknown_keys() -> None:
    token = decode_token_set(
        {
            "token_type": "Bearer",
            "access_token": "at",
            "expires_in": "259200",
            "refresh_token": "rt",
            "refresh_token_expires_in": 31536000,
            "info": {"companies": [{"guid": "c-1"}, {"guid": "c-2"}, {"name": "no guid"}]},
            "scope": "",
        },
        now=SENT_WALL,
    )
    assert token.expires_at == SENT_WALL + timedelta(days=3)
    assert token.refresh_expires_at == SENT_WALL + timedelta(days=365)
    assert token.companies == ("c-1", "c-2")
    assert set(token.raw) == {"token_type", "info", "scope"}
    assert isinstance(token, TokenSet)


def test_token_answer_without_refresh_token_or_info_is_fine() -> None:
    token = decode_token_set({"accessToken": "at", "expiresIn": 60}, now=SENT_WALL)
    assert token.refresh_token is None
    assert token.refresh_expires_at is None
    assert token.companies == ()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"expires_in": 60}, "access_token"),
        ({"access_token": "", "expires_in": 60}, "access_token"),
        ({"access_token": "a\r\nX-Evil: 1", "expires_in": 60}, "access_token"),
        ({"access_token": 12, "expires_in": 60}, "access_token"),
        ({"access_token": "a", "refresh_token": "r\n", "expires_in": 60}, "refresh_token"),
        ({"access_token": "a"}, "expires_in"),
        ({"access_token": "a", "expires_in": "soon"}, "expires_in"),
        (
            {"access_token": "a", "expires_in": 1, "refresh_token_expires_in": []},
            "refresh_token_expires_in",
        ),
        (
            {"access_token": "a", "expires_in": 1, "info": {"companies": [{"guid": []}]}},
            "info.companies[0].guid",
        ),
    ],
)
def test_token_answer_bad_field_raises_decode_error(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_token_set(payload, now=SENT_WALL)
    assert caught.value.field == field


def test_token_decode_error_never_shows_the_token_value() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_token_set({"access_token": ["secret-value"], "expires_in": 1}, now=SENT_WALL)
    assert "secret-value" not in str(caught.value)
    assert "secret-value" not in repr(caught.value)


def test_reservations_of_one_ticket_share_their_repeated_values() -> None:
    # json.loads makes new strings for every answer: decode two separate payloads
    first = decode(json.loads(json.dumps(snake_payload(guid="r-1"))))
    second = decode(json.loads(json.dumps(snake_payload(guid="r-2"))))
    assert first.guid != second.guid
    assert first.shop_guid is second.shop_guid
    assert first.ticket_guid is second.ticket_guid
    assert first.event_date_guid is second.event_date_guid
    assert first.products is second.products
    assert first.reserved_at is second.reserved_at
    assert first.raw is second.raw
    assert dict(first.raw) == {"status": "reserved"}


def test_products_with_unknown_keys_are_never_shared_across_reservations() -> None:
    products = [{"guid": "p-1", "name": "Entrance", "price": "21"}]
    first = decode(json.loads(json.dumps(snake_payload(products=products))))
    second = decode(json.loads(json.dumps(snake_payload(products=[dict(products[0], price="9")]))))
    assert first.products is not second.products
    assert first.products[0].raw == {"price": "21"}
    assert second.products[0].raw == {"price": "9"}


# -- answers that repeat their ticket's last one ------------------------------------------

FIELDS = (
    "guid",
    "shop_guid",
    "ticket_guid",
    "event_date_guid",
    "products",
    "reserved_at",
    "expires_at",
)
SPELLINGS: dict[str, Callable[[str], str]] = {
    "snake": lambda key: key,
    "camel": camel,
    "upper_guid": lambda key: camel(key).replace("Guid", "GUID"),
}
FIELD_VALUES: dict[str, list[Any]] = {
    "guid": ["r-1", "r-2", 12345, None],
    "shop_guid": [SHOP, "other-shop", None, 7],
    "ticket_guid": [TICKET, None],
    "event_date_guid": ["e-1", "e-2", None, 8],
    "products": [
        [{"guid": "p-1", "name": "Entrance"}],
        [{"guid": "p-1", "name": "Entrance"}, {"guid": "p-2", "name": None}],
        [],
        [{"guid": 7, "name": "Seven"}],
        [{"guid": "p-1", "price": "21"}],
    ],
    "reserved_at": ["2026-01-01T12:00:00Z", "2026-01-01T12:00:00.250000Z", 1767268800, None],
    "expires_at": [
        "2026-01-01T12:05:00Z",
        "2026-01-01T12:30:00Z",
        "2026-01-01T13:04:00+01:00",
        "2026-01-01T12:04:00",
        None,
    ],
}
UNKNOWN_VALUES: list[Any] = ["reserved", "pending", None, 1, True, 1.0, ["a"], {"k": "v"}]


@st.composite
def answers_of_one_layout(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two answers with the same keys (each field spelled one way, or left out); the
    second one keeps most of the first one's values."""
    values = {
        SPELLINGS[draw(st.sampled_from(sorted(SPELLINGS)))](field): FIELD_VALUES[field]
        for field in FIELDS
        if draw(st.integers(0, 5))  # now and then a field is left out
    }
    for key in draw(st.lists(st.sampled_from(["status", "note", "Extra-Key"]), unique=True)):
        values[key] = UNKNOWN_VALUES
    first = {key: draw(st.sampled_from(choices)) for key, choices in values.items()}
    second = {
        key: draw(st.sampled_from(choices)) if draw(st.integers(0, 3)) == 0 else first[key]
        for key, choices in values.items()
    }
    # new objects, as every answer has
    return json.loads(json.dumps(first)), json.loads(json.dumps(second))


def decoded(payload: dict[str, Any], ticket_guid: str) -> Reservation | str:
    """The reservation, or the field a DecodeError names."""
    try:
        return decode_reservation(
            payload,
            shop_guid=SHOP,
            ticket_guid=ticket_guid,
            sent_at=SENT_AT,
            sent_wall=SENT_WALL,
            ttl=TTL,
        )
    except DecodeError as error:
        return f"DecodeError({error.field})"


def exactly(value: Reservation | str) -> str:
    """Every value, raw ones included, with its type: 1, 1.0 and True differ."""
    if isinstance(value, str):
        return value
    products = [(p.guid, p.name, repr(dict(p.raw))) for p in value.products]
    return repr((value, products, value.deadline, dict(value.raw)))


# Answers after others: what the memory shares (layouts, values, the last timestamps
# and unknown keys) changes nothing in what an answer decodes to.


@given(answers_of_one_layout())
def test_an_answer_after_others_of_its_ticket_decodes_as_if_it_came_alone(
    answers: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    first, second = answers
    ticket = str(uuid.uuid4())
    decoded(first, ticket)
    decoded(first, ticket)
    after_first = decoded(second, ticket)
    fresh = str(uuid.uuid4())
    alone = decoded(second, fresh)
    if not isinstance(alone, str) and alone.ticket_guid == fresh:  # filled from the request
        alone = attrs.evolve(alone, ticket_guid=ticket)
    assert exactly(after_first) == exactly(alone)


def test_an_answer_with_other_unknown_values_keeps_its_own() -> None:
    statuses = ["reserved", "reserved", "pending", "reserved", "pending"]
    raws = [decode(snake_payload(status=status)).raw for status in statuses]
    assert [dict(raw) for raw in raws] == [{"status": status} for status in statuses]


@pytest.mark.parametrize("expiry", ["2026-01-01T12:08:00Z", ...])  # ...: no expiry sent
@pytest.mark.parametrize("start", ["reserved", 1])
def test_unknown_values_equal_to_the_last_ones_but_of_another_type_are_kept_as_sent(
    expiry: Any, start: Any
) -> None:
    ticket = str(uuid.uuid4())
    sent = [start, start, 1, True, 1.0, 1, "1", ["a"], ["a"]]  # 1 == True == 1.0
    answers = [json.loads(json.dumps(snake_payload(status=v, expires_at=expiry))) for v in sent]
    reservations = [decoded(answer, ticket) for answer in answers]
    assert [repr(r.raw["status"]) for r in reservations if isinstance(r, Reservation)] == [
        repr(value) for value in sent
    ]


def test_an_answer_spelled_otherwise_is_read_by_its_own_keys() -> None:
    decode(snake_payload())
    decode(snake_payload())
    camel_payload = {camel(key): value for key, value in snake_payload().items()}
    camel_payload["shopGuid"] = "33333333-3333-4333-8333-333333333333"
    reservation = decode(camel_payload)
    assert reservation.shop_guid == "33333333-3333-4333-8333-333333333333"
    assert dict(reservation.raw) == {"status": "reserved"}


def test_an_answer_after_others_reads_its_own_timestamps() -> None:
    decode(snake_payload())
    decode(snake_payload())
    later = snake_payload(reserved_at=1767268800, expires_at="2026-01-01T13:04:00+01:00")
    reservation = decode(later)
    assert reservation.reserved_at == SENT_WALL
    assert reservation.expires_at == SENT_WALL + timedelta(minutes=4)
    assert reservation.expires_at.tzinfo is UTC


def test_reservations_of_one_ticket_share_their_repeated_expiry() -> None:
    first = decode(json.loads(json.dumps(snake_payload(expires_at="2026-01-01T12:04:00Z"))))
    second = decode(json.loads(json.dumps(snake_payload(expires_at="2026-01-01T12:04:00Z"))))
    assert first.expires_at is second.expires_at
    assert first.expires_at == SENT_WALL + timedelta(minutes=4)


def test_an_answer_without_a_shop_takes_the_shop_of_its_own_request() -> None:
    ticket = str(uuid.uuid4())
    other_shop = "33333333-3333-4333-8333-333333333333"
    for shop in (SHOP, SHOP, other_shop, SHOP):
        reservation = decode_reservation(
            snake_payload(shop_guid=None),
            shop_guid=shop,
            ticket_guid=ticket,
            sent_at=SENT_AT,
            sent_wall=SENT_WALL,
            ttl=TTL,
        )
        assert reservation.shop_guid == shop


def test_an_answer_with_one_more_unknown_key_keeps_it() -> None:
    decode(snake_payload())
    decode(snake_payload())
    assert dict(decode(snake_payload(note="x")).raw) == {"status": "reserved", "note": "x"}


def test_a_deeply_nested_unknown_value_is_kept() -> None:
    nested = json.loads("[" * 450 + "]" * 450)
    for _ in range(3):
        reservation = decode(json.loads(json.dumps(snake_payload(note=nested))))
        assert reservation.raw["note"] == nested


def test_products_with_unknown_keys_are_not_shared_even_when_equal() -> None:
    products = [{"guid": "p-1", "name": "Entrance", "price": "21"}]
    firsts = [decode(json.loads(json.dumps(snake_payload(products=products)))) for _ in range(3)]
    assert len({id(reservation.products) for reservation in firsts}) == 3
