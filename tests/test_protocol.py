"""Requests as values, answers mapped to errors, retry decisions. No event loop."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qs

import pytest

from openticket_async import (
    APIError,
    AuthenticationError,
    DecodeError,
    Hosts,
    InvalidArgument,
    NotFound,
    Product,
    RateLimited,
    Receiver,
    Reservation,
    RetryPolicy,
    ServerError,
    TicketUnavailable,
    TransportError,
)
from openticket_async._answers import (
    Replay,
    error_for,
    parse_retry_after,
    read_json,
    should_retry,
    with_context,
)
from openticket_async._protocol import (
    USER_AGENT,
    Request,
    RequestFactory,
    Response,
    encode_order,
    guid,
    header_value,
    idempotency_header,
    route_path,
)

SHOP = "11111111-1111-4111-8111-111111111111"
TICKET = "22222222-2222-4222-8222-222222222222"
METHOD = "33333333-3333-4333-8333-333333333333"
COMPANY = "44444444-4444-4444-8444-444444444444"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = "at_protocol-test-token"
HOSTS = Hosts(
    auth="https://auth.example/base", api="https://api.example", shop="https://shop.example/s"
)

BAD_GUIDS: list[Any] = [
    "",
    "../x",
    "a?b=1",
    "%2e%2e",
    " ",
    f" {SHOP}",
    f"{SHOP}\n",
    f"{SHOP}/../x",
    SHOP[:-1] + "g",
    SHOP[:-1],
    "x" * 10_000,
    None,
    12345,
    SHOP.encode(),
    ["a"],
]


def reservation(shop: str = SHOP, **overrides: Any) -> Reservation:
    values: dict[str, Any] = {
        "guid": "r-1",
        "shop_guid": shop,
        "ticket_guid": TICKET,
        "event_date_guid": None,
        "products": (Product(guid="p-1"), Product(guid="p-2")),
        "reserved_at": NOW,
        "expires_at": NOW + timedelta(minutes=8),
        "deadline": 480.0,
    }
    values.update(overrides)
    return Reservation(**values)


RECEIVER = Receiver(email="ann@example.com", firstname="Ann", lastname="Lee", locale="nl_NL")


def answer(status: int, body: Any = b"", **headers: str) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, headers, raw, headers.get("X_Request_Id"))


def a_request(route: str = "reserve") -> Request:
    factory = RequestFactory(HOSTS)
    if route == "reserve":
        return factory.reserve(SHOP, TICKET, f"Bearer {TOKEN}")
    return factory.token("/tokens", {"grant_type": "refresh_token"})


# -- GUIDs and header values ----------------------------------------------------------


def test_guid_keeps_a_canonical_guid() -> None:
    assert guid(SHOP) == SHOP


@pytest.mark.parametrize(
    "spelling", [SHOP.upper(), SHOP.replace("-", ""), SHOP.upper().replace("-", "")]
)
def test_guid_writes_other_spellings_canonically(spelling: str) -> None:
    assert guid(spelling) == SHOP


def test_guid_accepts_a_uuid_instance() -> None:
    assert guid(uuid.UUID(SHOP)) == SHOP


@pytest.mark.parametrize("value", BAD_GUIDS)
def test_guid_rejects_anything_else(value: Any) -> None:
    with pytest.raises(InvalidArgument, match="shop_guid must be a GUID") as caught:
        guid(value, "shop_guid")
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "a\x00", "", None, 3])
def test_header_value_rejects_control_characters_and_non_strings(value: Any) -> None:
    with pytest.raises(InvalidArgument):
        header_value(value, "token")


@pytest.mark.parametrize("value", ["k-1", "x" * 255, "A.b_c~d"])
def test_idempotency_key_accepts_visible_ascii(value: str) -> None:
    assert idempotency_header(value) == value


@pytest.mark.parametrize("value", ["", "x" * 256, "a b", "a\r\nb", "ключ", None, 7])
def test_idempotency_key_rejects_anything_else(value: Any) -> None:
    with pytest.raises(InvalidArgument):
        idempotency_header(value)


@pytest.mark.parametrize("path", ["/users/me", "/user/me", "/tokens", "/v2/token"])
def test_route_path_accepts_plain_paths(path: str) -> None:
    assert route_path(path, "path") == path


@pytest.mark.parametrize(
    "path", ["users/me", "/users/../admin", "/a/./b", "/a?b=1", "/a#b", "/a b", "", "/", None]
)
def test_route_path_rejects_unsafe_paths(path: Any) -> None:
    with pytest.raises(InvalidArgument):
        route_path(path, "path")


# -- building requests ----------------------------------------------------------------


def test_a_reserver_builds_the_request_of_an_authorization_once() -> None:
    factory = RequestFactory(HOSTS, company=COMPANY)
    requests = factory.reserver(SHOP, TICKET)
    first = requests["Bearer tok"]
    assert requests["Bearer tok"] is first
    assert first == factory.reserve(SHOP, TICKET, "Bearer tok")
    assert (requests.shop, requests.ticket) == (SHOP, TICKET)


def test_a_reserver_keeps_the_requests_of_two_authorizations_at_most() -> None:
    requests = RequestFactory(HOSTS).reserver(SHOP, TICKET)
    for token in ("Bearer a", "Bearer b", "Bearer c"):
        assert requests[token].headers["Authorization"] == token
    assert len(requests) <= 2
    assert "Bearer c" in requests


def test_reserve_request_is_a_non_replayable_get_on_the_shop_host() -> None:
    request = RequestFactory(HOSTS, company=COMPANY).reserve(SHOP, TICKET, "Bearer tok")
    assert request.method == "GET"
    assert request.url == f"https://shop.example/s/{SHOP}/reserve/ticket/{TICKET}"
    assert request.path == f"/s/{SHOP}/reserve/ticket/{TICKET}"
    assert request.route == "reserve"
    assert request.replayable is False
    assert request.body is None
    assert request.headers == {
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Company": COMPANY,
        "Authorization": "Bearer tok",
    }


def test_user_agent_names_the_sdk_and_its_version() -> None:
    from openticket_async import __version__

    assert USER_AGENT.split("/") == ["openticket-async", __version__]


def test_reads_go_to_the_api_and_auth_hosts() -> None:
    factory = RequestFactory(HOSTS, company=COMPANY, user_path="/user/me")
    methods = factory.payment_methods(SHOP, "Bearer t")
    order = factory.get_order(TICKET, "Bearer t")
    me = factory.me("Bearer t")
    assert methods.url == f"https://api.example/shop/{SHOP}/payment_methods"
    assert order.url == f"https://api.example/order/{TICKET}"
    assert me.url == "https://auth.example/base/user/me"
    assert all(r.method == "GET" and r.replayable for r in (methods, order, me))
    assert methods.headers["Company"] == COMPANY
    assert "Company" not in me.headers
    assert me.headers["Authorization"] == "Bearer t"


def test_order_request_posts_json_with_the_idempotency_key() -> None:
    request = RequestFactory(HOSTS).create_order(SHOP, b"{}", "Bearer t", "key-1")
    assert (request.method, request.url, request.body) == (
        "POST",
        f"https://shop.example/s/{SHOP}/order",
        b"{}",
    )
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "key-1"
    assert request.replayable is False
    plain = RequestFactory(HOSTS).create_order(SHOP, b"{}", "Bearer t")
    assert "Idempotency-Key" not in plain.headers


def test_token_request_is_form_encoded_without_a_bearer() -> None:
    form = {"grant_type": "refresh_token", "refresh_token": "r&t=1", "client_id": "c"}
    request = RequestFactory(HOSTS).token("/token", form)
    assert request.url == "https://auth.example/base/token"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in request.headers
    assert request.body is not None
    assert parse_qs(request.body.decode()) == {key: [value] for key, value in form.items()}


def test_header_maps_are_reused_per_token_and_refreshed_for_a_new_one() -> None:
    factory = RequestFactory(HOSTS)
    first = factory.payment_methods(SHOP, "Bearer a").headers
    assert factory.get_order(SHOP, "Bearer a").headers is first
    assert factory.payment_methods(SHOP, "Bearer b").headers["Authorization"] == "Bearer b"


def test_reserve_request_carries_the_authorization_it_is_built_with() -> None:
    factory = RequestFactory(HOSTS, company=COMPANY)
    tokens = [f"Bearer t{n}" for n in range(6)]  # more than the header maps kept
    requests = [factory.reserve(SHOP, TICKET, token) for token in tokens + tokens]
    assert [r.headers["Authorization"] for r in requests] == tokens + tokens
    assert {r.replayable for r in requests} == {False}


def test_base_urls_are_encoded_once() -> None:
    factory = RequestFactory(Hosts(shop="https://bücher.example/a b"))
    request = factory.reserve(SHOP, TICKET, "Bearer t")
    assert request.url.startswith("https://xn--bcher-kva.example/a%20b/")
    assert request.url.isascii()


def test_company_with_a_newline_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        RequestFactory(HOSTS, company=f"{COMPANY}\r\nX-Evil: 1")


# -- the order body -------------------------------------------------------------------


def test_order_body_has_the_documented_shape() -> None:
    body = json.loads(
        encode_order(
            SHOP, [reservation()], receiver=RECEIVER, payment_method=METHOD.upper(), currency="EUR"
        )
    )
    assert body == {
        "receiver": {
            "locale": "nl_NL",
            "email": "ann@example.com",
            "firstname": "Ann",
            "lastname": "Lee",
        },
        "paymentProvider": METHOD,
        "currency": "EUR",
        "tickets": [{"guid": TICKET, "reservation": "r-1", "products": ["p-1", "p-2"]}],
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": 978}, "currency"),
        ({"payment_method": "cash"}, "payment_method"),
        ({"reservations": []}, "at least one"),
        ({"reservations": "r-1"}, "sequence"),
        ({"reservations": [{"guid": "r-1"}]}, "Reservation"),
        ({"reservations": [reservation(shop=TICKET)]}, "its shop"),
        ({"receiver": {"email": "a@b.c"}}, "Receiver"),
        ({"receiver": Receiver("no-at-sign", "A", "B")}, "email"),
        ({"receiver": Receiver("a@b.c\r\nBcc: x@y.z", "A", "B")}, "receiver.email"),
        ({"receiver": Receiver("a@b.c", "A\nB", "B")}, "receiver.firstname"),
        ({"receiver": Receiver("a@b.c", "A", "")}, "receiver.lastname"),
        ({"receiver": Receiver("a@b.c", "A", "B", locale="en GB")}, "locale"),
        ({"receiver": Receiver("a@b.c", "A", "x" * 201)}, "receiver.lastname"),
    ],
)
def test_order_body_rejects_bad_input(changes: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "reservations": [reservation()],
        "receiver": RECEIVER,
        "payment_method": METHOD,
        "currency": "EUR",
    }
    arguments.update(changes)
    reservations = arguments.pop("reservations")
    with pytest.raises(InvalidArgument, match=message):
        encode_order(SHOP, reservations, **arguments)


# -- reading answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, {"error": "unauthenticated", "message": "expired"}, AuthenticationError),
        (404, {"error": "not_found", "message": "no such ticket"}, NotFound),
        (409, {"error": "sold_out", "message": "none left"}, TicketUnavailable),
        (410, {"error": "reservation_expired", "message": "dropped"}, TicketUnavailable),
        (422, {"error": "sold_out", "message": "limit"}, TicketUnavailable),
        (400, {"error": "unavailable"}, TicketUnavailable),
        (422, {"error": "invalid", "message": "bad body"}, APIError),
        (429, {"error": "rate_limited"}, RateLimited),
        (500, b"boom", ServerError),
        (503, {"error": "unavailable", "message": "maintenance"}, ServerError),
        (302, b"", APIError),
    ],
)
def test_error_status_maps_to_its_exception(status: int, body: Any, kind: type) -> None:
    error = error_for(a_request(), answer(status, body), NOW)
    assert type(error) is kind
    assert error.status == status
    assert error.method == "GET"
    assert error.path == f"/s/{SHOP}/reserve/ticket/{TICKET}"


def test_error_carries_message_request_id_and_a_truncated_body() -> None:
    body = {"error": "sold_out", "message": "none left", "padding": "x" * 5000}
    response = Response(409, {"X-Request-Id": "req-7"}, json.dumps(body).encode(), "req-7")
    error = error_for(a_request(), response, NOW)
    assert error.request_id == "req-7"
    assert str(error).startswith("sold_out: none left (HTTP 409, GET /s/")
    assert "request id req-7" in str(error)
    assert len(error.body) <= 513
    assert error.body.startswith('{"error": "sold_out"')


def test_error_body_is_redacted() -> None:
    body = {"error": "invalid", "message": "bad", "access_token": "at-secret"}
    error = error_for(a_request(), answer(422, body), NOW)
    assert "at-secret" not in error.body
    assert "at-secret" not in str(error)


def test_token_endpoint_refusals_are_authentication_errors_without_a_body() -> None:
    body = {"error": "invalid_grant", "error_description": "refresh token was already used"}
    error = error_for(a_request("token"), answer(400, body), NOW)
    assert type(error) is AuthenticationError
    assert str(error).startswith("invalid_grant: refresh token was already used")
    assert error.body == ""
    assert type(error_for(a_request("token"), answer(429, b""), NOW)) is RateLimited
    assert type(error_for(a_request("token"), answer(502, b""), NOW)) is ServerError


def test_rate_limit_reads_retry_after_seconds() -> None:
    error = error_for(a_request(), answer(429, b"", **{"Retry-After": "7"}), NOW)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0


def test_service_unavailable_reads_retry_after_as_a_date() -> None:
    later = "Thu, 01 Jan 2026 00:00:30 GMT"
    error = error_for(a_request(), answer(503, b"", **{"Retry-After": later}), NOW)
    assert isinstance(error, ServerError)
    assert error.retry_after == 30.0
    other = error_for(a_request(), answer(500, b"", **{"Retry-After": "5"}), NOW)
    assert isinstance(other, ServerError)
    assert other.retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", 12.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 2026 00:01:00 GMT", 60.0),
        ("Wed, 31 Dec 2025 23:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_read_json_of_a_non_json_answer_raises_decode_error_with_context() -> None:
    response = Response(200, {"Content-Type": "text/html"}, b"<html>gateway</html>", None)
    with pytest.raises(DecodeError) as caught:
        read_json(a_request(), response)
    error = caught.value
    assert (error.status, error.content_type, error.method) == (200, "text/html", "GET")
    assert error.snippet == "<html>gateway</html>"
    assert "status=200" in str(error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": [1, 2.5, null, "\\u00e9"]}', {"a": [1, 2.5, None, "\u00e9"]}),
        (b' {"a": 1}\r\n', {"a": 1}),
        (b"[]", []),
        (b'"text"', "text"),
    ],
)
def test_read_json_reads_any_json_value(body: bytes, expected: Any) -> None:
    assert read_json(a_request(), answer(200, body)) == expected


@pytest.mark.parametrize(
    "body", [b"", b" ", b'{"a": 1} {"b": 2}', b'{"a": 1', b"\xff", b"[" * 100_000]
)
def test_read_json_of_an_empty_cut_or_doubled_answer_raises_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="not valid JSON"):
        read_json(a_request(), answer(200, body))


def test_read_json_never_shows_a_token_answer() -> None:
    response = Response(200, {}, b'{"access_token": "at-secret", "expi', None)
    with pytest.raises(DecodeError) as caught:
        read_json(a_request("token"), response)
    assert caught.value.snippet == ""
    assert "at-secret" not in str(caught.value)


def test_with_context_adds_request_and_response_to_a_decoder_error() -> None:
    response = Response(200, {"Content-Type": "application/json"}, b'{"guid": 1}', None)
    error = with_context(DecodeError("bad", field="guid"), a_request(), response)
    assert (error.field, error.status, error.path) == ("guid", 200, a_request().path)
    assert error.snippet == '{"guid": 1}'


# -- when to try again ----------------------------------------------------------------


def transport_failure(*, reached: bool) -> TransportError:
    return TransportError("x", method="GET", path="/p", may_have_reached_server=reached)


def status_error(status: int) -> APIError:
    return error_for(a_request(), answer(status, b""), NOW)


POLICY = RetryPolicy()


@pytest.mark.parametrize(
    ("replay", "error", "expected"),
    [
        (Replay.ALWAYS, transport_failure(reached=True), True),
        (Replay.ALWAYS, transport_failure(reached=False), True),
        (Replay.ALWAYS, status_error(503), True),
        (Replay.ALWAYS, status_error(429), True),
        (Replay.ALWAYS, status_error(500), False),
        (Replay.ALWAYS, status_error(404), False),
        (Replay.IF_REFUSED, transport_failure(reached=True), False),
        (Replay.IF_REFUSED, transport_failure(reached=False), True),
        (Replay.IF_REFUSED, status_error(503), True),
        (Replay.IF_REFUSED, status_error(429), True),
        (Replay.IF_REFUSED, status_error(409), False),
        (Replay.IF_NOT_SENT, transport_failure(reached=True), False),
        (Replay.IF_NOT_SENT, transport_failure(reached=False), True),
        (Replay.IF_NOT_SENT, status_error(503), False),
        (Replay.IF_NOT_SENT, status_error(429), False),
        (Replay.ALWAYS, DecodeError("bad"), False),
    ],
)
def test_should_retry(replay: Replay, error: Any, expected: bool) -> None:
    assert should_retry(replay, error, POLICY) is expected


def test_reserve_is_never_retried_on_a_status_the_policy_adds_beyond_429_and_503() -> None:
    statuses: frozenset[int] = frozenset({500, 503})
    policy = RetryPolicy(retry_statuses=statuses)
    assert should_retry(Replay.IF_REFUSED, status_error(500), policy) is False
    assert should_retry(Replay.ALWAYS, status_error(500), policy) is True
    assert should_retry(Replay.IF_REFUSED, status_error(429), policy) is False


def rate_limited(retry_after: str) -> APIError:
    return error_for(a_request(), answer(429, b"", **{"Retry-After": retry_after}), NOW)


def test_a_retry_after_beyond_the_max_allows_no_retry_by_default() -> None:
    policy = RetryPolicy(retry_after_max=30)
    assert should_retry(Replay.ALWAYS, rate_limited("31"), policy) is False


def test_a_retry_after_at_the_max_is_still_retried() -> None:
    policy = RetryPolicy(retry_after_max=30)
    assert should_retry(Replay.ALWAYS, rate_limited("30"), policy) is True


def test_a_retry_after_beyond_the_max_is_retried_when_the_policy_caps_it() -> None:
    policy = RetryPolicy(retry_after_max=30, retry_after_over_max="cap")
    assert should_retry(Replay.ALWAYS, rate_limited("3600"), policy) is True


def test_retry_after_over_max_accepts_only_raise_or_cap() -> None:
    with pytest.raises(InvalidArgument, match="retry_after_over_max must be 'raise' or 'cap'"):
        RetryPolicy(retry_after_over_max=cast(Any, "sleep"))
