"""Request hooks (``on_request``, ``on_response``) and trace propagation, on the fake server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from telemetry_helpers import Recorded

from openticket_async import (
    BearerToken,
    Hosts,
    InvalidArgument,
    OpenTicketClient,
    RetryPolicy,
    ServerError,
    TransportError,
)
from openticket_async._protocol import Request, Response
from openticket_async._transport import AiohttpTransport
from openticket_async.testing import FakeClock, FakeOpenTicket

pytestmark = pytest.mark.asyncio

TEMPLATE = "/{shop}/reserve/ticket/{ticket}"


class Calls:
    """Records every hook call with its arguments."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...]]] = []

    def request(self, *args: Any) -> None:
        self.seen.append(("request", args))

    def response(self, *args: Any) -> None:
        self.seen.append(("response", args))


def client_for(fake: FakeOpenTicket, clock: FakeClock, **options: Any) -> OpenTicketClient:
    token = fake.issue_token().access_token
    return OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts, clock=clock, **options)


async def test_hooks_see_method_template_attempt_status_and_elapsed(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    calls = Calls()
    openticket_fake.faults.delay("reserve", 1.5)
    async with client_for(
        openticket_fake, openticket_clock, on_request=calls.request, on_response=calls.response
    ) as client:
        call = asyncio.create_task(client.reserve_ticket(shop.guid, ticket.guid))
        await openticket_clock.advance(1.5)
        await call
    assert calls.seen == [
        ("request", ("GET", TEMPLATE, 1)),
        ("response", ("GET", TEMPLATE, 1, 200, 1.5)),
    ]


async def test_each_retry_is_a_new_attempt(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> None:
    shop = openticket_fake.add_shop()
    calls = Calls()
    openticket_fake.faults.status("payment_methods", 503, times=1)
    async with client_for(openticket_fake, openticket_clock, on_response=calls.response) as client:
        call = asyncio.create_task(client.payment_methods(shop.guid))
        await openticket_clock.advance(10)  # past the retry's backoff
        await call
    statuses = [(args[2], args[3]) for _kind, args in calls.seen]
    assert statuses == [(1, 503), (2, 200)]
    assert {args[1] for _kind, args in calls.seen} == {"/shop/{shop}/payment_methods"}


async def test_async_hooks_are_awaited_before_the_call_returns(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    finished: list[int | None] = []

    async def on_response(method: str, template: str, attempt: int, status: int | None,
                          elapsed: float) -> None:
        await openticket_clock.sleep_until(openticket_clock.now())  # a real suspension point
        finished.append(status)

    async with client_for(openticket_fake, openticket_clock, on_response=on_response) as client:
        await client.reserve_ticket(shop.guid, ticket.guid)
        assert finished == [200]


async def test_a_failing_hook_is_logged_and_the_request_goes_on(
    openticket_fake: FakeOpenTicket,
    openticket_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)

    def broken(*args: object) -> None:
        raise RuntimeError("hook bug")

    async with client_for(openticket_fake, openticket_clock, on_request=broken) as client:
        reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    assert reservation.ticket_guid == ticket.guid
    [record] = [r for r in caplog.records if "request hook" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_a_request_without_an_answer_reports_no_status(
    openticket_clock: FakeClock,
) -> None:
    calls = Calls()
    nowhere = "http://127.0.0.1:9"  # nothing listens there: the connection is refused
    async with OpenTicketClient(
        auth=BearerToken("t0ken"), clock=openticket_clock, on_response=calls.response,
        hosts=Hosts(auth=nowhere, api=nowhere, shop=nowhere),
    ) as client:
        with pytest.raises(TransportError):
            await client.me(retry=RetryPolicy(attempts=1))
    [(_kind, args)] = calls.seen
    assert args[:4] == ("GET", "/users/me", 1, None)


async def test_hooks_are_never_handed_the_token(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop)
    calls = Calls()
    token = openticket_fake.issue_token().access_token
    async with OpenTicketClient(
        auth=BearerToken(token), hosts=openticket_fake.hosts, clock=openticket_clock,
        on_request=calls.request, on_response=calls.response,
    ) as client:
        await client.reserve_ticket(shop.guid, ticket.guid)
        await client.me()
    for _kind, args in calls.seen:
        assert all(isinstance(arg, str | int | float) or arg is None for arg in args)
        assert all(token not in str(arg) for arg in args)
        assert all("://" not in str(arg) for arg in args)


async def test_a_hook_that_is_not_callable_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="on_request must be callable"):
        OpenTicketClient(auth=BearerToken("t0ken"), on_request="print")  # type: ignore[arg-type]


class HeaderRecorder:
    """The real aiohttp transport, keeping the headers each request went out with."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport()
        self.headers: list[dict[str, str]] = []

    async def send(self, request: Request) -> Response:
        self.headers.append(dict(request.headers))
        return await self.inner.send(request)


async def test_trace_context_reaches_openticket_only_when_turned_on(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    for propagate in (False, True):
        recorded = Recorded(propagate=propagate)
        transport = HeaderRecorder()
        async with client_for(
            openticket_fake, openticket_clock, transport=transport,
            telemetry=recorded.telemetry,
        ) as client:
            await client.reserve_ticket(shop.guid, ticket.guid)
        await transport.inner.aclose()
        [headers] = transport.headers
        [span] = recorded.spans()
        if propagate:
            assert span.context is not None
            assert headers["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"
        else:
            assert "traceparent" not in headers


async def test_a_server_error_span_carries_its_status_as_error_type(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> None:
    shop = openticket_fake.add_shop()
    recorded = Recorded()
    openticket_fake.faults.status("payment_methods", 503, times=None)
    async with client_for(
        openticket_fake, openticket_clock, telemetry=recorded.telemetry
    ) as client:
        call = asyncio.create_task(client.payment_methods(shop.guid))
        await openticket_clock.advance(60)  # past every backoff
        with pytest.raises(ServerError):
            await call
    spans = recorded.spans("GET /shop/{shop}/payment_methods")
    assert len(spans) == RetryPolicy().attempts
    assert [(s.attributes or {}).get("http.request.resend_count") for s in spans] == [
        None, *range(1, len(spans))
    ]
    assert {(s.attributes or {})["error.type"] for s in spans} == {"503"}
