"""The aiohttp transport: error mapping, timeouts, resets, connection limits, loops."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from openticket_async import Hosts, Timeouts, TransportError, UsageError
from openticket_async._protocol import USER_AGENT, Request, RequestFactory
from openticket_async._transport import (
    URL_CACHE_LIMIT,
    AiohttpTransport,
    _SentAndLost,
    transport_error,
)
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket

SHOP = "11111111-1111-4111-8111-111111111111"
TICKET = "22222222-2222-4222-8222-222222222222"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenTicket[FakeClock]]:
    async with FakeOpenTicket(FakeClock()) as server:
        yield server


@pytest.fixture
def shop(fake: FakeOpenTicket[FakeClock]) -> FakeShop:
    return fake.add_shop()


@pytest.fixture
def ticket(fake: FakeOpenTicket[FakeClock], shop: FakeShop) -> FakeTicket:
    return fake.add_ticket(shop, stock=10)


def bearer(fake: FakeOpenTicket[FakeClock]) -> str:
    return "Bearer " + fake.issue_token().access_token


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@asynccontextmanager
async def hang_up_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that reads each request, counts it, and closes without answering."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


# -- mapping aiohttp failures ---------------------------------------------------------

REQUEST = RequestFactory(Hosts()).reserve(SHOP, TICKET, "Bearer secret-token")


def connector_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey(
        "127.0.0.1", 1, False, True, None, None, None
    )
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("error", "reached", "timed_out"),
    [
        (connector_error(), False, False),
        (aiohttp.ConnectionTimeoutError("connect"), False, True),
        (aiohttp.SocketTimeoutError("read"), True, True),
        (TimeoutError(), True, True),
        (aiohttp.ServerDisconnectedError(), True, False),
        (_SentAndLost("ServerDisconnectedError"), True, False),
        (aiohttp.ClientPayloadError("cut"), True, False),
        (aiohttp.ClientOSError(104, "reset"), True, False),
    ],
)
def test_transport_error_says_whether_the_server_may_have_acted(
    error: BaseException, reached: bool, timed_out: bool
) -> None:
    mapped = transport_error(error, REQUEST)
    assert mapped.may_have_reached_server is reached
    assert mapped.timed_out is timed_out
    assert (mapped.method, mapped.path) == ("GET", REQUEST.path)
    assert REQUEST.path in str(mapped)
    assert "secret-token" not in str(mapped) + repr(mapped)


# -- against servers on 127.0.0.1 -----------------------------------------------------


@pytest.mark.asyncio
async def test_send_returns_status_headers_body_and_request_id(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    transport = AiohttpTransport()
    request = RequestFactory(fake.hosts).reserve(shop.guid, ticket.guid, bearer(fake))
    try:
        response = await transport.send(request)
    finally:
        await transport.aclose()
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    assert b'"status": "reserved"' in response.body
    assert response.request_id is not None
    assert response.request_id.startswith("req-")


@pytest.mark.asyncio
async def test_requests_carry_the_sdk_user_agent() -> None:
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers["User-Agent"])
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/api/shop/{shop}/payment_methods", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    transport = AiohttpTransport()
    try:
        factory = RequestFactory(Hosts(api=f"http://127.0.0.1:{port}/api"))
        await transport.send(factory.payment_methods(SHOP, "Bearer t"))
    finally:
        await transport.aclose()
        await runner.cleanup()
    assert seen == [USER_AGENT]


@pytest.mark.asyncio
async def test_connection_refused_surely_did_not_reach_the_server() -> None:
    transport = AiohttpTransport()
    request = RequestFactory(Hosts(shop=f"http://127.0.0.1:{free_port()}")).reserve(
        SHOP, TICKET, "Bearer t"
    )
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send(request)
    finally:
        await transport.aclose()
    assert caught.value.may_have_reached_server is False
    assert caught.value.timed_out is False


@pytest.mark.asyncio
async def test_read_timeout_may_have_reached_the_server(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.delay("reserve", 5.0, real=True)
    transport = AiohttpTransport(timeouts=Timeouts(read=0.2, total=5))
    request = RequestFactory(fake.hosts).reserve(shop.guid, ticket.guid, bearer(fake))
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send(request)
    finally:
        await transport.aclose()
    assert caught.value.may_have_reached_server is True
    assert caught.value.timed_out is True


@pytest.mark.asyncio
async def test_total_timeout_on_a_dripping_body_may_have_reached_the_server(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.drip("reserve", 0.1)
    transport = AiohttpTransport(timeouts=Timeouts(read=5, total=0.3))
    request = RequestFactory(fake.hosts).reserve(shop.guid, ticket.guid, bearer(fake))
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send(request)
    finally:
        await transport.aclose()
    assert caught.value.may_have_reached_server is True
    assert caught.value.timed_out is True
    assert len(fake.live_reservations(ticket.guid)) == 1


@pytest.mark.asyncio
async def test_reset_mid_body_may_have_reached_the_server(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.reset("reserve")
    transport = AiohttpTransport()
    request = RequestFactory(fake.hosts).reserve(shop.guid, ticket.guid, bearer(fake))
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send(request)
    finally:
        await transport.aclose()
    assert caught.value.may_have_reached_server is True
    assert caught.value.timed_out is False
    assert len(fake.live_reservations(ticket.guid)) == 1


def reserve_at(base: str) -> Request:
    return RequestFactory(Hosts(shop=base)).reserve(SHOP, TICKET, "Bearer t")


@pytest.mark.asyncio
async def test_reserve_dropped_before_the_answer_is_sent_once() -> None:
    async with hang_up_server() as (base, seen):
        transport = AiohttpTransport()
        try:
            with pytest.raises(TransportError) as caught:
                await transport.send(reserve_at(base))
        finally:
            await transport.aclose()
    assert caught.value.may_have_reached_server is True
    assert len(seen) == 1


@pytest.mark.asyncio
async def test_reserve_on_a_users_session_dropped_before_the_answer_is_sent_once() -> None:
    async with hang_up_server() as (base, seen), aiohttp.ClientSession() as session:
        transport = AiohttpTransport(session)
        with pytest.raises(TransportError) as caught:
            await transport.send(reserve_at(base))
    assert caught.value.may_have_reached_server is True
    assert len(seen) == 1


@pytest.mark.asyncio
async def test_the_guard_matters_aiohttp_alone_resends_a_get() -> None:
    # Shows the hang-up server really provokes aiohttp's silent resend, so the
    # two tests above would fail without the client's protection.
    async with hang_up_server() as (base, seen), aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.get(reserve_at(base).url)
    assert len(seen) == 2


@pytest.mark.asyncio
async def test_connections_per_host_bounds_requests_in_flight(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.delay("reserve", 10.0, times=3)
    transport = AiohttpTransport(connections_per_host=1)
    request = RequestFactory(fake.hosts).reserve(shop.guid, ticket.guid, bearer(fake))
    try:
        sends = [asyncio.create_task(transport.send(request)) for _ in range(3)]
        await fake.clock.settle()
        assert len(fake.requests) == 1
        await fake.clock.advance(10)
        assert len(fake.requests) == 2
        await fake.clock.advance(20)
        responses = await asyncio.gather(*sends)
    finally:
        await transport.aclose()
    assert [r.status for r in responses] == [200, 200, 200]


@pytest.mark.asyncio
async def test_default_connection_limit_lets_concurrent_requests_through(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.delay("reserve", 10.0, times=5)
    transport = AiohttpTransport()
    request = RequestFactory(fake.hosts).reserve(shop.guid, ticket.guid, bearer(fake))
    try:
        sends = [asyncio.create_task(transport.send(request)) for _ in range(5)]
        await fake.clock.settle()
        assert len(fake.requests) == 5
        await fake.clock.advance(10)
        await asyncio.gather(*sends)
    finally:
        await transport.aclose()


@pytest.mark.asyncio
async def test_closed_transport_raises_usage_error(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    transport = AiohttpTransport()
    await transport.aclose()
    await transport.aclose()
    assert transport.closed
    with pytest.raises(UsageError, match="closed"):
        await transport.send(RequestFactory(fake.hosts).reserve(shop.guid, ticket.guid, "Bearer t"))
    assert fake.requests == []


@pytest.mark.asyncio
async def test_a_users_session_is_never_closed(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    async with aiohttp.ClientSession() as session:
        transport = AiohttpTransport(session)
        request = RequestFactory(fake.hosts).reserve(shop.guid, ticket.guid, bearer(fake))
        assert (await transport.send(request)).status == 200
        await transport.aclose()
        assert not session.closed


def test_transport_used_from_a_second_loop_raises_usage_error() -> None:
    transport = AiohttpTransport(timeouts=Timeouts(connect=0.5, total=1))
    request = reserve_at(f"http://127.0.0.1:{free_port()}")

    async def send() -> None:
        await transport.send(request)

    first = asyncio.new_event_loop()
    try:
        with pytest.raises(TransportError):
            first.run_until_complete(send())
        with pytest.raises(UsageError, match="event loop"):
            asyncio.run(send())
        first.run_until_complete(transport.aclose())
    finally:
        first.close()


# -- the table of parsed URLs ---------------------------------------------------------


def rotation_requests(tickets: int) -> list[Request]:
    """A reserve request for each of ``tickets`` distinct tickets of one shop."""
    factory = RequestFactory(Hosts(shop="http://127.0.0.1:8080/shop"))
    return [
        factory.reserve(SHOP, f"22222222-2222-4222-8222-{i:012x}", "Bearer t")
        for i in range(tickets)
    ]


def test_a_rotation_as_large_as_the_url_table_finds_every_url_again() -> None:
    transport = AiohttpTransport()
    requests = rotation_requests(URL_CACHE_LIMIT)
    first = [transport._url(r.url, r.path) for r in requests]
    found = [transport._urls.get(r.url) for r in requests]
    assert all(again is url for again, url in zip(found, first, strict=True))
    assert [str(url) for url in first[:2]] == [r.url for r in requests[:2]]


def test_the_url_table_never_holds_more_than_its_limit() -> None:
    transport = AiohttpTransport()
    for request in rotation_requests(URL_CACHE_LIMIT + 1):
        transport._url(request.url, request.path)
        assert len(transport._urls) <= URL_CACHE_LIMIT
    assert len(transport._urls) == 1  # emptied by the entry past the limit
