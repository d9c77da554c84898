"""How answers the client cannot use become exceptions, and that none of them (nor any
repr or log line) ever shows a secret."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from openticket_async import (
    APIError,
    AuthenticationError,
    BearerToken,
    DecodeError,
    NotFound,
    OAuth2,
    OpenTicketClient,
    OpenTicketError,
    RateLimited,
    Receiver,
    RetryPolicy,
    ServerError,
    TicketUnavailable,
    TokenSet,
    TransportError,
)
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket

RECEIVER = Receiver(email="ann@example.com", firstname="Ann", lastname="Lee")
UNKNOWN = "99999999-9999-4999-8999-999999999999"
NO_RETRY = RetryPolicy(attempts=1)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenTicket[FakeClock]]:
    async with FakeOpenTicket(FakeClock()) as server:
        yield server


@pytest.fixture
def shop(fake: FakeOpenTicket[FakeClock]) -> FakeShop:
    return fake.add_shop()


@pytest.fixture
def ticket(fake: FakeOpenTicket[FakeClock], shop: FakeShop) -> FakeTicket:
    return fake.add_ticket(shop, stock=1)


@pytest_asyncio.fixture
async def client(fake: FakeOpenTicket[FakeClock]) -> AsyncIterator[OpenTicketClient]:
    token = fake.issue_token().access_token
    async with OpenTicketClient(
        auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock, retry=NO_RETRY
    ) as opened:
        yield opened


# -- statuses from the server's own answers -------------------------------------------


@pytest.mark.asyncio
async def test_unknown_token_raises_authentication_error(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    async with OpenTicketClient(
        auth=BearerToken("at_not-issued"), hosts=fake.hosts, clock=fake.clock
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.reserve_ticket(shop.guid, ticket.guid)
    error = caught.value
    assert error.status == 401
    assert error.method == "GET"
    assert error.path == f"/shop/{shop.guid}/reserve/ticket/{ticket.guid}"
    assert error.request_id is not None
    assert "unauthenticated" in str(error)


@pytest.mark.asyncio
async def test_unknown_ticket_raises_not_found(
    shop: FakeShop, client: OpenTicketClient
) -> None:
    with pytest.raises(NotFound) as caught:
        await client.reserve_ticket(shop.guid, UNKNOWN)
    assert caught.value.status == 404
    assert '"not_found"' in caught.value.body


@pytest.mark.asyncio
async def test_unknown_order_and_shop_raise_not_found(client: OpenTicketClient) -> None:
    with pytest.raises(NotFound):
        await client.get_order(UNKNOWN)
    with pytest.raises(NotFound):
        await client.payment_methods(UNKNOWN)


@pytest.mark.asyncio
async def test_sold_out_raises_ticket_unavailable(
    shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    await client.reserve_ticket(shop.guid, ticket.guid)
    with pytest.raises(TicketUnavailable) as caught:
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert caught.value.status == 409
    assert str(caught.value).startswith("sold_out:")


@pytest.mark.asyncio
async def test_order_with_a_dropped_reservation_raises_ticket_unavailable(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    method = fake.add_payment_method(shop)
    reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    await fake.clock.advance(480)
    with pytest.raises(TicketUnavailable) as caught:
        await client.create_order(
            shop.guid, [reservation], receiver=RECEIVER, payment_method=method.guid, currency="EUR"
        )
    assert caught.value.status == 410
    assert caught.value.method == "POST"
    assert caught.value.path == f"/shop/{shop.guid}/order"
    assert fake.orders == []


@pytest.mark.asyncio
async def test_order_the_server_finds_invalid_raises_api_error(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    with pytest.raises(APIError) as caught:
        await client.create_order(
            shop.guid, [reservation], receiver=RECEIVER, payment_method=UNKNOWN, currency="EUR"
        )
    assert type(caught.value) is APIError
    assert caught.value.status == 422


# -- scripted faults ------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, RateLimited),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (418, APIError),
    ],
)
async def test_fault_status_maps_to_its_exception(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    client: OpenTicketClient,
    status: int,
    kind: type[APIError],
) -> None:
    fake.faults.status("reserve", status)
    with pytest.raises(kind) as caught:
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert type(caught.value) is kind
    assert caught.value.status == status
    assert fake.live_reservations() == []


@pytest.mark.asyncio
async def test_rate_limit_carries_retry_after(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    fake.faults.status("reserve", 429, retry_after=12)
    with pytest.raises(RateLimited) as caught:
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert caught.value.retry_after == 12.0


@pytest.mark.asyncio
async def test_sold_out_word_in_another_status_raises_ticket_unavailable(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    fake.faults.status("reserve", 400, body={"error": "sold_out", "message": "limit reached"})
    with pytest.raises(TicketUnavailable):
        await client.reserve_ticket(shop.guid, ticket.guid)


@pytest.mark.asyncio
async def test_malformed_json_raises_decode_error_with_context(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    fake.faults.malformed_json("reserve")
    with pytest.raises(DecodeError) as caught:
        await client.reserve_ticket(shop.guid, ticket.guid)
    error = caught.value
    assert error.status == 200
    assert error.content_type == "application/json"
    assert error.snippet.startswith('{"guid": ')
    assert error.path == f"/shop/{shop.guid}/reserve/ticket/{ticket.guid}"
    assert "not valid JSON" in str(error)


@pytest.mark.asyncio
async def test_html_answer_with_200_raises_decode_error(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, client: OpenTicketClient
) -> None:
    fake.faults.html("payment_methods", status=200)
    with pytest.raises(DecodeError) as caught:
        await client.payment_methods(shop.guid)
    assert caught.value.content_type is not None
    assert caught.value.content_type.startswith("text/html")
    assert "<html>" in caught.value.snippet


@pytest.mark.asyncio
async def test_proxy_error_page_raises_server_error_with_the_page(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, client: OpenTicketClient
) -> None:
    fake.faults.html("payment_methods", status=502)
    with pytest.raises(ServerError) as caught:
        await client.payment_methods(shop.guid)
    assert "502 Bad Gateway" in caught.value.body


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "no guid"}, "guid"),
        ({"guid": "r", "products": "none"}, "products"),
        ({"guid": "r", "expires_at": "later"}, "expires_at"),
        ([1, 2], None),
    ],
)
async def test_reservation_the_client_cannot_read_raises_decode_error_naming_the_field(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    client: OpenTicketClient,
    body: Any,
    field: str | None,
) -> None:
    fake.faults.status("reserve", 200, body=body)
    with pytest.raises(DecodeError) as caught:
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert caught.value.field == field
    assert caught.value.status == 200


@pytest.mark.asyncio
async def test_order_answer_missing_its_guid_raises_decode_error(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, client: OpenTicketClient
) -> None:
    fake.faults.status("get_order", 200, body={"status": "paid"})
    with pytest.raises(DecodeError) as caught:
        await client.get_order(UNKNOWN)
    assert caught.value.field == "guid"
    assert caught.value.path == f"/api/order/{UNKNOWN}"


@pytest.mark.asyncio
async def test_every_exception_is_an_openticket_error(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    fake.faults.status("reserve", 500)
    fake.faults.malformed_json("reserve")
    for _ in range(2):
        with pytest.raises(OpenTicketError):
            await client.reserve_ticket(shop.guid, ticket.guid)


# -- no secret anywhere ---------------------------------------------------------------


async def failure(call: Any) -> OpenTicketError:
    with pytest.raises(OpenTicketError) as caught:
        await call
    return caught.value


@pytest.mark.asyncio
async def test_no_secret_in_any_error_repr_or_debug_log_line(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG", logger="openticket_async")
    issued = fake.issue_token()
    tokens: list[TokenSet] = [issued]
    auth = OAuth2("test-client", "test-secret", issued, on_refresh=tokens.append)
    method = fake.add_payment_method(shop)
    async with OpenTicketClient(
        auth=auth, hosts=fake.hosts, clock=fake.clock, retry=NO_RETRY
    ) as client:
        reservation = await client.reserve_ticket(shop.guid, ticket.guid)
        fake.expire_access_tokens()  # the next call refreshes on its 401
        await client.payment_methods(shop.guid)
        await client.create_order(
            shop.guid, [reservation], receiver=RECEIVER, payment_method=method.guid, currency="EUR"
        )
        fake.faults.status("reserve", 401, times=2)
        errors = [await failure(client.reserve_ticket(shop.guid, ticket.guid))]
        fake.faults.status("me", 500)
        errors.append(await failure(client.me()))
        fake.faults.malformed_json("me")
        errors.append(await failure(client.me()))
        fake.faults.reset("reserve")
        errors.append(await failure(client.reserve_ticket(shop.guid, ticket.guid)))
        fake.revoke(auth.token)
        errors.append(await failure(client.me()))  # 401, then the refresh is refused
        shown = [repr(client), repr(auth), repr(auth.token), repr(reservation)]
    kinds = [type(error) for error in errors]
    assert kinds == [
        AuthenticationError, ServerError, DecodeError, TransportError, AuthenticationError
    ]
    assert len(tokens) == 3
    secrets = ["test-secret"]
    for token in tokens:
        secrets += [token.access_token, token.refresh_token or "-"]
    for error in errors:
        shown += [str(error), repr(error), str(error.args), str(vars(error))]
    shown += [record.getMessage() for record in caplog.records]
    shown.append(caplog.text)
    text = "\n".join(shown)
    assert "'Authorization': 'Bearer ***'" in text
    assert "grant_type" not in text
    for secret in secrets:
        assert secret not in text


@pytest.mark.asyncio
async def test_transport_errors_show_no_token(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    token = fake.issue_token().access_token
    fake.faults.reset("reserve")
    async with OpenTicketClient(
        auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock
    ) as client:
        with pytest.raises(TransportError) as caught:
            await client.reserve_ticket(shop.guid, ticket.guid)
    assert token not in str(caught.value) + repr(caught.value)
    assert caught.value.__cause__ is None
