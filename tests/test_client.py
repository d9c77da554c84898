"""OpenTicketClient against the fake OpenTicket server on 127.0.0.1: the happy paths,
bad input that never reaches the server, and the client's lifecycle."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from openticket_async import (
    BearerToken,
    Hosts,
    InvalidArgument,
    OpenTicketClient,
    PaymentMethod,
    Receiver,
    RetryPolicy,
    SystemClock,
    UsageError,
)
from openticket_async import _client as client_module
from openticket_async._protocol import Request, Response, guid
from openticket_async._transport import AiohttpTransport
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket

RECEIVER = Receiver(email="ann@example.com", firstname="Ann", lastname="Lee")


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenTicket[FakeClock]]:
    async with FakeOpenTicket(FakeClock()) as server:
        yield server


@pytest.fixture
def shop(fake: FakeOpenTicket[FakeClock]) -> FakeShop:
    return fake.add_shop(name="Main stage")


@pytest.fixture
def ticket(fake: FakeOpenTicket[FakeClock], shop: FakeShop) -> FakeTicket:
    return fake.add_ticket(shop, stock=3, products=2)


def client_for(fake: FakeOpenTicket[FakeClock], **options: Any) -> OpenTicketClient:
    options.setdefault("clock", fake.clock)
    return OpenTicketClient(
        auth=BearerToken(fake.issue_token().access_token), hosts=fake.hosts, **options
    )


@pytest_asyncio.fixture
async def client(fake: FakeOpenTicket[FakeClock]) -> AsyncIterator[OpenTicketClient]:
    async with client_for(fake, company=fake.company_guid) as opened:
        yield opened


# -- the issue's walk-through -----------------------------------------------------------


@pytest.mark.asyncio
async def test_reserve_pay_order_and_read_back(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    method = fake.add_payment_method(shop, name="iDEAL")

    reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    methods = await client.payment_methods(shop.guid)
    order = await client.create_order(
        shop.guid, [reservation], receiver=RECEIVER, payment_method=methods[0].guid, currency="EUR"
    )
    again = await client.get_order(order.guid)
    me = await client.me()

    assert methods == [PaymentMethod(guid=method.guid, name="iDEAL")]
    assert (order.status, order.currency, order.shop_guid) == ("pending", "EUR", shop.guid)
    assert [line.reservation_guid for line in order.tickets] == [reservation.guid]
    assert order.tickets[0].ticket_number
    assert again == order
    assert me.guid == fake.user_guid
    [record] = fake.orders
    assert record.payment_method == method.guid
    assert record.lines[0].product_guids == ticket.product_guids
    assert dict(record.receiver) == {
        "email": "ann@example.com",
        "firstname": "Ann",
        "lastname": "Lee",
        "locale": "en_GB",
    }


@pytest.mark.asyncio
async def test_reserve_returns_the_server_reservation_with_a_local_deadline(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    sent_at = fake.clock.now()
    reservation = await client.reserve_ticket(shop.guid, ticket.guid)

    [live] = fake.live_reservations(ticket.guid)
    assert reservation.guid == live.guid
    assert (reservation.shop_guid, reservation.ticket_guid) == (shop.guid, ticket.guid)
    assert reservation.event_date_guid == ticket.event_date_guid
    assert [p.guid for p in reservation.products] == list(ticket.product_guids)
    assert reservation.reserved_at == fake.clock.wall()
    assert reservation.expires_at == fake.clock.wall() + timedelta(seconds=480)
    assert reservation.deadline == sent_at + 480
    assert dict(reservation.raw) == {"status": "reserved"}
    assert fake.stock_left(ticket.guid) == 2


@pytest.mark.asyncio
async def test_reserve_in_camel_case_without_expiry_uses_send_time_plus_ttl() -> None:
    async with FakeOpenTicket(FakeClock(), style="camel", send_expiry=False) as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop)
        await fake.clock.advance(42)
        async with client_for(fake, reservation_ttl=timedelta(minutes=5)) as client:
            reservation = await client.reserve_ticket(shop.guid, ticket.guid)
            assert client.reservation_ttl == 300.0
    assert reservation.event_date_guid == ticket.event_date_guid
    assert reservation.reserved_at == fake.clock.wall()
    assert reservation.expires_at == fake.clock.wall() + timedelta(minutes=5)
    assert reservation.deadline == fake.clock.now() + 300


@pytest.mark.asyncio
async def test_reserve_keeps_flat_price_fields_of_each_product_in_its_raw() -> None:
    async with FakeOpenTicket(FakeClock(), style="camel", product_shape="flat") as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop, products=3)
        async with client_for(fake) as client:
            reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    assert [p.guid for p in reservation.products] == list(ticket.product_guids)
    assert [dict(p.raw) for p in reservation.products] == [
        {"unitPrice": price, "currency": "EUR"} for price in (1500, 2000, 2500)
    ]


@pytest.mark.asyncio
async def test_reserve_keeps_nested_price_lines_of_each_product_in_its_raw() -> None:
    async with FakeOpenTicket(FakeClock(), product_shape="nested", send_expiry=False) as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop, products=3)
        async with client_for(fake) as client:
            reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    assert [p.name for p in reservation.products] == ["Product 1", "Product 2", "Product 3"]
    lines = [p.raw["price_lines"] for p in reservation.products]
    assert [[line["amount"] for line in product] for product in lines] == [
        [1500, 150],
        [2000, 150],
        [2500, 150],
    ]
    assert reservation.expires_at == fake.clock.wall() + timedelta(seconds=480)


@pytest.mark.asyncio
async def test_reserve_of_many_tickets_in_turn_reserves_each_one(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, client: OpenTicketClient
) -> None:
    tickets = [fake.add_ticket(shop, stock=2) for _ in range(5)]
    for ticket in tickets + tickets:
        reservation = await client.reserve_ticket(shop.guid, ticket.guid)
        assert reservation.ticket_guid == ticket.guid
    assert [fake.stock_left(ticket.guid) for ticket in tickets] == [0] * 5


class Recording:
    """The real transport, keeping every request it was given."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport()
        self.sent: list[Request] = []

    async def send(self, request: Request) -> Response:
        self.sent.append(request)
        return await self.inner.send(request)


@pytest.mark.asyncio
async def test_reserve_sends_a_tickets_request_built_once(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop
) -> None:
    ticket = fake.add_ticket(shop, stock=4)
    transport = Recording()
    try:
        async with client_for(fake, transport=transport) as client:
            for _ in range(3):
                await client.reserve_ticket(shop.guid, ticket.guid)
            await client.reserve_ticket(shop.guid.upper(), ticket.guid)
    finally:
        await transport.inner.aclose()
    first, second, third, other_spelling = transport.sent
    assert second is first
    assert third is first
    assert other_spelling is not first  # kept by the spelling given: checked once more
    assert other_spelling == first  # ... and canonical all the same


@pytest.mark.asyncio
async def test_reserve_keeps_the_requests_of_no_more_tickets_than_a_rotation_holds(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    client: OpenTicketClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "TICKETS_IN_ROTATION", 3)
    tickets = [fake.add_ticket(shop, stock=2) for _ in range(5)]
    for ticket in tickets + tickets:
        reservation = await client.reserve_ticket(shop.guid, ticket.guid)
        assert reservation.ticket_guid == ticket.guid
        assert len(client._reserves) <= 3
    assert [r.path for r in fake.requests[-5:]] == [
        f"/shop/{shop.guid}/reserve/ticket/{ticket.guid}" for ticket in tickets
    ]


@pytest.mark.asyncio
async def test_reserve_accepts_any_guid_spelling_and_sends_it_canonically(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    reservation = await client.reserve_ticket(shop.guid.upper(), ticket.guid.replace("-", ""))
    assert fake.requests[-1].path == f"/shop/{shop.guid}/reserve/ticket/{ticket.guid}"
    assert reservation.ticket_guid == ticket.guid


@pytest.mark.asyncio
async def test_reserve_checks_its_guids_on_every_call(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    spellings = [
        (shop.guid, ticket.guid),
        (shop.guid.upper(), uuid.UUID(ticket.guid)),
        (shop.guid, ticket.guid),
    ]
    for shop_guid, ticket_guid in spellings:
        reservation = await client.reserve_ticket(shop_guid, ticket_guid)
        assert (reservation.shop_guid, reservation.ticket_guid) == (shop.guid, ticket.guid)

    class Text(str):
        """Equal to a GUID reserved above, but not a str."""

    with pytest.raises(InvalidArgument):
        guid(Text(shop.guid))  # the rule, which an earlier call must not bend
    for bad in (Text(shop.guid), shop.guid + "0"):
        with pytest.raises(InvalidArgument):
            await client.reserve_ticket(bad, ticket.guid)
        with pytest.raises(InvalidArgument):
            await client.reserve_ticket(shop.guid, bad)
    assert [r.route for r in fake.requests] == ["reserve"] * 3


class CountingAuth:
    """An application's own Auth."""

    def __init__(self, token: str) -> None:
        self.header = f"Bearer {token}"
        self.calls = 0

    async def authorization(self, endpoint: Any) -> str:
        self.calls += 1
        return self.header

    async def unauthorized(self, rejected: str, endpoint: Any) -> str | None:
        return None


class CountingBearer(BearerToken):
    """A BearerToken that changes what ``authorization`` does."""

    calls = 0

    async def authorization(self, endpoint: Any) -> str:
        CountingBearer.calls += 1
        return await super().authorization(endpoint)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", [CountingAuth, CountingBearer])
async def test_an_auth_of_ones_own_is_asked_for_every_request(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, kind: Any
) -> None:
    CountingBearer.calls = 0
    auth = kind(fake.issue_token().access_token)
    async with OpenTicketClient(auth=auth, hosts=fake.hosts, clock=fake.clock) as client:
        for _ in range(3):
            await client.reserve_ticket(shop.guid, ticket.guid)
    assert auth.calls == 3
    assert [r.route for r in fake.requests] == ["reserve"] * 3


@pytest.mark.asyncio
async def test_requests_carry_the_bearer_and_company_headers(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    companies = [fake.company_guid, "55555555-5555-4555-8555-555555555555"]
    async with client_for(fake, company=companies) as client:
        await client.reserve_ticket(shop.guid, ticket.guid)
        await client.payment_methods(shop.guid)
        await client.me()
    reserve, methods, me = fake.requests
    assert all(record.had_auth for record in (reserve, methods, me))
    assert reserve.company == methods.company == ",".join(companies)
    assert me.company is None


@pytest.mark.asyncio
async def test_payment_methods_accepts_a_data_envelope() -> None:
    body = b'{"data": [{"guid": "m-1", "name": "iDEAL", "fee": "0.29"}], "last_page": 1}'

    class Envelope:
        async def send(self, request: Request) -> Response:
            return Response(200, {"Content-Type": "application/json"}, body, None)

    async with OpenTicketClient(auth=BearerToken("t"), transport=Envelope()) as client:
        [method] = await client.payment_methods("11111111-1111-4111-8111-111111111111")
    assert (method.guid, method.name, dict(method.raw)) == ("m-1", "iDEAL", {"fee": "0.29"})


@pytest.mark.asyncio
async def test_order_with_idempotency_key_sends_it(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    method = fake.add_payment_method(shop)
    reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    await client.create_order(
        shop.guid,
        [reservation],
        receiver=RECEIVER,
        payment_method=method.guid,
        currency="EUR",
        idempotency_key="cart-17",
    )
    assert fake.requests[-1].idempotency_key == "cart-17"
    assert fake.orders[0].idempotency_key == "cart-17"


@pytest.mark.asyncio
async def test_me_path_is_configurable(fake: FakeOpenTicket[FakeClock]) -> None:
    async with client_for(fake, user_path="/user/me") as client:
        me = await client.me()
    assert me.guid == fake.user_guid
    assert me.default_company_id == fake.company_guid
    assert dict(me.raw) == {"email": "user@example.com"}
    assert fake.requests[-1].path == "/auth/user/me"


# -- bad input never leaves the client ------------------------------------------------

BAD_GUIDS: list[Any] = [
    "",
    "../x",
    "a?b=1",
    "%2e%2e",
    " \t",
    "11111111-1111-4111-8111-11111111111 ",
    "x" * 10_000,
    None,
    42,
    b"11111111-1111-4111-8111-111111111111",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", BAD_GUIDS)
async def test_bad_guid_raises_invalid_argument_and_sends_nothing(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    client: OpenTicketClient,
    bad: Any,
) -> None:
    method = fake.add_payment_method(shop)
    with pytest.raises(InvalidArgument):
        await client.reserve_ticket(bad, ticket.guid)
    with pytest.raises(InvalidArgument):
        await client.reserve_ticket(shop.guid, bad)
    with pytest.raises(InvalidArgument):
        await client.payment_methods(bad)
    with pytest.raises(InvalidArgument):
        await client.get_order(bad)
    reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    with pytest.raises(InvalidArgument):
        await client.create_order(
            bad, [reservation], receiver=RECEIVER, payment_method=method.guid, currency="EUR"
        )
    with pytest.raises(InvalidArgument):
        await client.create_order(
            shop.guid, [reservation], receiver=RECEIVER, payment_method=bad, currency="EUR"
        )
    assert [r.route for r in fake.requests] == ["reserve"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "changes",
    [
        {"currency": "eur"},
        {"receiver": Receiver(email="not-an-address", firstname="A", lastname="B")},
        {"receiver": Receiver(email="a@b.c\r\nBcc: x@y.z", firstname="A", lastname="B")},
        {"receiver": Receiver(email="a@b.c", firstname="A\n", lastname="B")},
        {"idempotency_key": "two words"},
        {"idempotency_key": "k\r\nX: 1"},
        {"reservations": []},
        {"retry": 3},
    ],
)
async def test_bad_order_input_raises_invalid_argument_and_sends_nothing(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    client: OpenTicketClient,
    changes: dict[str, Any],
) -> None:
    method = fake.add_payment_method(shop)
    reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    arguments: dict[str, Any] = {
        "receiver": RECEIVER,
        "payment_method": method.guid,
        "currency": "EUR",
    }
    arguments.update(changes)
    reservations = arguments.pop("reservations", [reservation])
    with pytest.raises(InvalidArgument):
        await client.create_order(shop.guid, reservations, **arguments)
    assert [r.route for r in fake.requests] == ["reserve"]
    assert fake.orders == []


@pytest.mark.parametrize(
    "options",
    [
        {"auth": BearerToken("t"), "company": "not-a-guid"},
        {"auth": BearerToken("t"), "company": "11111111-1111-4111-8111-111111111111\r\nX: 1"},
        {"auth": BearerToken("t"), "company": ["11111111-1111-4111-8111-111111111111", ""]},
        {"auth": BearerToken("t"), "company": 7},
        {"auth": "token"},
        {"auth": BearerToken("t"), "hosts": "https://example.com"},
        {"auth": BearerToken("t"), "reservation_ttl": 0},
        {"auth": BearerToken("t"), "reservation_ttl": "480"},
        {"auth": BearerToken("t"), "retry": 3},
        {"auth": BearerToken("t"), "timeouts": 5},
        {"auth": BearerToken("t"), "user_path": "../admin"},
        {"auth": BearerToken("t"), "session": object()},
    ],
)
def test_bad_client_options_raise_invalid_argument(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        OpenTicketClient(**options)


@pytest.mark.parametrize("token", ["", "abc\r\nX-Evil: 1", "abc\n", None])
def test_bearer_token_with_control_characters_is_rejected(token: Any) -> None:
    with pytest.raises(InvalidArgument):
        BearerToken(token)


# -- lifecycle ------------------------------------------------------------------------


def test_client_exposes_its_clock_and_ttl_for_the_manager() -> None:
    client = OpenTicketClient(auth=BearerToken("t"), reservation_ttl=timedelta(minutes=8))
    assert isinstance(client.clock, SystemClock)
    assert client.reservation_ttl == 480.0
    assert isinstance(client.reservation_ttl, float)
    assert client.hosts == Hosts()
    clock = FakeClock()
    assert OpenTicketClient(auth=BearerToken("t"), clock=clock).clock is clock


@pytest.mark.asyncio
async def test_closed_client_raises_usage_error_and_closes_once(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    client = client_for(fake)
    async with client:
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert client.closed
    await client.aclose()
    with pytest.raises(UsageError, match="closed"):
        await client.reserve_ticket(shop.guid, ticket.guid)
    with pytest.raises(UsageError, match="closed"):
        await client.me()
    with pytest.raises(UsageError):
        async with client:
            pass
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_a_users_session_is_used_and_left_open(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    async with aiohttp.ClientSession() as session:
        async with client_for(fake, session=session) as client:
            await client.reserve_ticket(shop.guid, ticket.guid)
        assert not session.closed
        async with session.get(fake.url + "/auth/users/me") as answer:
            assert answer.status == 401


def test_client_made_outside_a_loop_works_inside_one() -> None:
    async def main() -> None:
        async with FakeOpenTicket(FakeClock()) as fake:
            shop = fake.add_shop()
            ticket = fake.add_ticket(shop)
            client = client_for(fake)
            await use(client, shop, ticket)

    async def use(client: OpenTicketClient, shop: FakeShop, ticket: FakeTicket) -> None:
        async with client:
            reservation = await client.reserve_ticket(shop.guid, ticket.guid)
            assert reservation.ticket_guid == ticket.guid

    asyncio.run(main())


def test_client_used_from_a_second_event_loop_raises_usage_error() -> None:
    first = asyncio.new_event_loop()
    second = asyncio.new_event_loop()
    try:
        fake: FakeOpenTicket[FakeClock] = FakeOpenTicket(FakeClock())
        first.run_until_complete(fake.start())
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop)
        client = client_for(fake, retry=RetryPolicy(attempts=1))
        first.run_until_complete(client.reserve_ticket(shop.guid, ticket.guid))

        with pytest.raises(UsageError, match="event loop"):
            second.run_until_complete(client.reserve_ticket(shop.guid, ticket.guid))
        with pytest.raises(UsageError, match="event loop"):
            second.run_until_complete(client.aclose())

        first.run_until_complete(client.aclose())
        first.run_until_complete(fake.close())
        assert [r.route for r in fake.requests] == ["reserve"]
    finally:
        first.close()
        second.close()


async def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


def test_client_from_a_finished_event_loop_raises_usage_error_and_still_closes() -> None:
    first = asyncio.new_event_loop()
    fake: FakeOpenTicket[FakeClock] = FakeOpenTicket(FakeClock())
    try:
        first.run_until_complete(fake.start())
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop)
        session = first.run_until_complete(new_session())
        client = client_for(fake, session=session)
        first.run_until_complete(client.reserve_ticket(shop.guid, ticket.guid))
        first.run_until_complete(session.close())
        first.run_until_complete(fake.close())
    finally:
        first.close()

    async def later() -> None:
        with pytest.raises(UsageError, match="event loop"):
            await client.reserve_ticket(shop.guid, ticket.guid)
        await client.aclose()
        with pytest.raises(UsageError, match="closed"):
            await client.reserve_ticket(shop.guid, ticket.guid)

    asyncio.run(later())
