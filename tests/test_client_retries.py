"""When the client tries again, how long it waits (on its clock), and when it must not."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from openticket_async import (
    BearerToken,
    Hosts,
    NotFound,
    OpenTicketClient,
    RateLimited,
    Receiver,
    Reservation,
    RetryPolicy,
    ServerError,
    Timeouts,
    TransportError,
)
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket

T = TypeVar("T")
RECEIVER = Receiver(email="ann@example.com", firstname="Ann", lastname="Lee")


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


def client_for(fake: FakeOpenTicket[FakeClock], **options: Any) -> OpenTicketClient:
    return OpenTicketClient(
        auth=BearerToken(fake.issue_token().access_token),
        hosts=options.pop("hosts", None) or fake.hosts,
        clock=fake.clock,
        **options,
    )


@pytest_asyncio.fixture
async def client(fake: FakeOpenTicket[FakeClock]) -> AsyncIterator[OpenTicketClient]:
    async with client_for(fake, retry=RetryPolicy(attempts=3, backoff_base=1.0)) as opened:
        yield opened


def routes(fake: FakeOpenTicket[FakeClock], route: str) -> int:
    return sum(1 for record in fake.requests if record.route == route)


async def finish(clock: FakeClock, call: Awaitable[T], step: float = 1.0, limit: int = 200) -> T:
    """Run ``call`` as a task, advancing the clock ``step`` at a time until it ends."""
    task = asyncio.ensure_future(call)
    for _ in range(limit):
        await clock.settle()
        if task.done():
            return task.result()
        await clock.advance(step)
    task.cancel()
    raise AssertionError("the call did not finish")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def hosts_at(port: int) -> Hosts:
    base = f"http://127.0.0.1:{port}"
    return Hosts(auth=base + "/auth", api=base + "/api", shop=base + "/shop")


# -- waits ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reserve_answered_503_waits_retry_after_on_the_clock_then_succeeds(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    fake.faults.status("reserve", 503, retry_after=7)
    start = fake.clock.now()
    call = asyncio.create_task(client.reserve_ticket(shop.guid, ticket.guid))
    await fake.clock.advance(6.999)
    assert routes(fake, "reserve") == 1
    assert not call.done()
    await fake.clock.advance(0.001)
    reservation = await call
    assert routes(fake, "reserve") == 2
    assert [r.time - start for r in fake.requests] == [0.0, 7.0]
    assert reservation.deadline == start + 7 + 480
    assert len(fake.live_reservations(ticket.guid)) == 1


@pytest.mark.asyncio
async def test_reserve_rate_limited_is_retried_after_the_servers_hint(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    fake.faults.status("reserve", 429, retry_after=20)
    start = fake.clock.now()
    await finish(fake.clock, client.reserve_ticket(shop.guid, ticket.guid), step=20)
    assert [r.time - start for r in fake.requests] == [0.0, 20.0]


@pytest.mark.asyncio
async def test_retry_after_is_capped_by_the_policy_set_to_cap(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.status("reserve", 429, retry_after=3600)
    policy = RetryPolicy(retry_after_max=5, retry_after_over_max="cap")
    async with client_for(fake, retry=policy) as client:
        start = fake.clock.now()
        await finish(fake.clock, client.reserve_ticket(shop.guid, ticket.guid), step=5)
    assert [r.time - start for r in fake.requests] == [0.0, 5.0]


@pytest.mark.asyncio
async def test_retry_after_beyond_the_max_raises_rate_limited_at_once_by_default(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.status("reserve", 429, retry_after=3600)
    async with client_for(fake) as client:
        start = fake.clock.now()
        with pytest.raises(RateLimited) as caught:
            await finish(fake.clock, client.reserve_ticket(shop.guid, ticket.guid), step=30)
    assert caught.value.retry_after == 3600
    assert fake.clock.now() == start
    assert routes(fake, "reserve") == 1


@pytest.mark.asyncio
async def test_a_503_retry_after_beyond_the_max_raises_server_error_at_once_by_default(
    fake: FakeOpenTicket[FakeClock], client: OpenTicketClient
) -> None:
    fake.faults.status("me", 503, retry_after=120)
    with pytest.raises(ServerError) as caught:
        await finish(fake.clock, client.me(), step=30)
    assert caught.value.retry_after == 120
    assert routes(fake, "me") == 1


@pytest.mark.asyncio
async def test_backoff_without_a_hint_waits_at_most_the_jittered_ceiling(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.status("get_order", 503, times=2)
    fake.faults.status("get_order", 404)
    policy = RetryPolicy(attempts=3, backoff_base=2.0, backoff_max=3.0)
    async with client_for(fake, retry=policy) as client:
        task = asyncio.create_task(client.get_order(shop.guid))
        await fake.clock.advance(2.0)
        assert routes(fake, "get_order") >= 2  # the first wait is at most 2 s
        await fake.clock.advance(3.0)
        assert routes(fake, "get_order") == 3  # the second at most 3 s more
        with pytest.raises(NotFound):
            await task
    first, second, third = (r.time for r in fake.requests)
    assert 0 <= second - first <= 2.0
    assert 0 <= third - second <= 3.0


@pytest.mark.asyncio
async def test_attempts_run_out_with_the_last_error(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    fake.faults.status("reserve", 503, retry_after=1, times=None)
    with pytest.raises(ServerError) as caught:
        await finish(fake.clock, client.reserve_ticket(shop.guid, ticket.guid))
    assert caught.value.status == 503
    assert routes(fake, "reserve") == 3


@pytest.mark.asyncio
async def test_per_call_policy_overrides_the_clients(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    fake.faults.status("reserve", 429, retry_after=1)
    with pytest.raises(RateLimited):
        await client.reserve_ticket(shop.guid, ticket.guid, retry=RetryPolicy(attempts=1))
    assert routes(fake, "reserve") == 1


# -- reserve is not idempotent --------------------------------------------------------


@pytest.mark.asyncio
async def test_reserve_is_not_retried_after_a_read_timeout(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.act_then_fail("reserve", stall=True)
    async with client_for(fake, timeouts=Timeouts(read=0.2, total=5)) as client:
        # a retry would wait on the fake clock, which nobody moves: wait_for would expire
        with pytest.raises(TransportError) as caught:
            await asyncio.wait_for(client.reserve_ticket(shop.guid, ticket.guid), 10)
    assert caught.value.timed_out is True
    assert caught.value.may_have_reached_server is True
    assert routes(fake, "reserve") == 1
    assert len(fake.live_reservations(ticket.guid)) == 1


@pytest.mark.asyncio
async def test_reserve_is_not_retried_after_a_reset_mid_body(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    fake.faults.reset("reserve")
    with pytest.raises(TransportError) as caught:
        await finish(fake.clock, client.reserve_ticket(shop.guid, ticket.guid))
    assert caught.value.may_have_reached_server is True
    assert routes(fake, "reserve") == 1
    assert len(fake.live_reservations(ticket.guid)) == 1


@pytest.mark.asyncio
async def test_reserve_is_retried_when_the_connection_was_refused(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    port = free_port()
    await fake.close()
    policy = RetryPolicy(attempts=2, backoff_base=1.0)
    async with client_for(fake, hosts=hosts_at(port), retry=policy) as client:
        call = asyncio.create_task(client.reserve_ticket(shop.guid, ticket.guid))
        await fake.clock.settle()
        assert not call.done()
        await fake.start(port=port)
        await fake.clock.advance(1.0)
        reservation = await call
    assert routes(fake, "reserve") == 1
    assert [r.guid for r in fake.live_reservations(ticket.guid)] == [reservation.guid]


@pytest.mark.asyncio
async def test_refused_connections_exhaust_the_attempts_with_a_transport_error(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    policy = RetryPolicy(attempts=3, backoff_base=1.0)
    async with client_for(fake, hosts=hosts_at(free_port()), retry=policy) as client:
        start = fake.clock.now()
        with pytest.raises(TransportError) as caught:
            await finish(fake.clock, client.reserve_ticket(shop.guid, ticket.guid))
    assert caught.value.may_have_reached_server is False
    assert 0 <= fake.clock.now() - start <= 4.0


# -- orders are never sent twice blindly ----------------------------------------------


async def order_args(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> dict[str, Any]:
    method = fake.add_payment_method(shop)
    reservation: Reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    return {
        "shop_guid": shop.guid,
        "reservations": [reservation],
        "receiver": RECEIVER,
        "payment_method": method.guid,
        "currency": "EUR",
    }


@pytest.mark.asyncio
async def test_order_without_key_is_not_retried_after_a_503(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    arguments = await order_args(fake, shop, ticket, client)
    fake.faults.act_then_fail("order", status=503)
    with pytest.raises(ServerError):
        await finish(fake.clock, client.create_order(**arguments))
    assert routes(fake, "order") == 1
    assert len(fake.orders) == 1


@pytest.mark.asyncio
async def test_order_without_key_is_not_retried_after_a_429(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    arguments = await order_args(fake, shop, ticket, client)
    fake.faults.status("order", 429, retry_after=1)
    with pytest.raises(RateLimited):
        await finish(fake.clock, client.create_order(**arguments))
    assert routes(fake, "order") == 1


@pytest.mark.asyncio
async def test_order_without_key_is_not_retried_after_a_read_timeout(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    async with client_for(fake, timeouts=Timeouts(read=0.2, total=5)) as client:
        arguments = await order_args(fake, shop, ticket, client)
        fake.faults.act_then_fail("order", stall=True)
        with pytest.raises(TransportError):
            await asyncio.wait_for(client.create_order(**arguments), 10)
    assert routes(fake, "order") == 1
    assert len(fake.orders) == 1


@pytest.mark.asyncio
async def test_order_with_key_is_retried_and_the_server_keeps_one_order(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, client: OpenTicketClient
) -> None:
    arguments = await order_args(fake, shop, ticket, client)
    fake.faults.act_then_fail("order", status=503)
    order = await finish(fake.clock, client.create_order(**arguments, idempotency_key="cart-1"))
    assert routes(fake, "order") == 2
    assert [r.idempotency_key for r in fake.requests if r.route == "order"] == ["cart-1"] * 2
    [record] = fake.orders
    assert record.guid == order.guid


@pytest.mark.asyncio
async def test_order_without_key_is_retried_when_the_connection_was_refused(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    port = free_port()
    await fake.close()
    await fake.start(port=port)
    policy = RetryPolicy(attempts=2, backoff_base=1.0)
    async with client_for(fake, hosts=hosts_at(port), retry=policy) as client:
        arguments = await order_args(fake, shop, ticket, client)
        await fake.close()
        call = asyncio.create_task(client.create_order(**arguments))
        await fake.clock.settle()
        assert not call.done()
        await fake.start(port=port)
        await fake.clock.advance(1.0)
        order = await call
    assert [record.guid for record in fake.orders] == [order.guid]


# -- reads may be tried again after anything ------------------------------------------


@pytest.mark.asyncio
async def test_read_is_retried_after_a_read_timeout(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop
) -> None:
    method = fake.add_payment_method(shop)
    fake.faults.delay("payment_methods", 5.0, real=True)
    policy = RetryPolicy(attempts=2, backoff_base=1.0)
    async with client_for(fake, retry=policy, timeouts=Timeouts(read=0.2, total=5)) as client:
        methods = await finish(fake.clock, client.payment_methods(shop.guid))
    assert [m.guid for m in methods] == [method.guid]
    assert routes(fake, "payment_methods") == 2


@pytest.mark.asyncio
async def test_read_is_retried_after_a_reset(
    fake: FakeOpenTicket[FakeClock], client: OpenTicketClient
) -> None:
    fake.faults.reset("me")
    me = await finish(fake.clock, client.me())
    assert me.guid == fake.user_guid
    assert routes(fake, "me") == 2


@pytest.mark.asyncio
async def test_read_is_not_retried_on_a_client_error(
    fake: FakeOpenTicket[FakeClock], client: OpenTicketClient
) -> None:
    fake.faults.status("me", 400)
    with pytest.raises(Exception, match="HTTP 400"):
        await finish(fake.clock, client.me())
    assert routes(fake, "me") == 1
