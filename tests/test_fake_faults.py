"""Scripted faults of the fake server: each kind, counting, ordering, clearing."""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from attrs import frozen

from openticket_async import InvalidArgument
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket

Fake = FakeOpenTicket[FakeClock]


@frozen
class Shopfront:
    """A seeded fake plus a client session, with helpers for the calls under test."""

    fake: Fake
    http: aiohttp.ClientSession
    shop: FakeShop
    ticket: FakeTicket
    method: str
    headers: dict[str, str]

    @property
    def reserve_url(self) -> str:
        return f"{self.fake.hosts.shop}/{self.shop.guid}/reserve/ticket/{self.ticket.guid}"

    async def reserve(self) -> tuple[int, str, bytes]:
        async with self.http.get(self.reserve_url, headers=self.headers) as response:
            return response.status, response.content_type, await response.read()

    async def order(self, reservation: str, key: str | None = None) -> tuple[int, Any]:
        body = {
            "receiver": {"email": "a@example.com", "firstname": "A", "lastname": "B"},
            "paymentProvider": self.method,
            "currency": "EUR",
            "tickets": [{"guid": self.ticket.guid, "reservation": reservation}],
        }
        headers = self.headers | ({"Idempotency-Key": key} if key else {})
        url = f"{self.fake.hosts.shop}/{self.shop.guid}/order"
        async with self.http.post(url, json=body, headers=headers) as response:
            return response.status, await response.json()


@pytest_asyncio.fixture
async def front(openticket_fake: Fake) -> AsyncIterator[Shopfront]:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=5)
    method = fake.add_payment_method(shop)
    headers = {"Authorization": f"Bearer {fake.issue_token().access_token}"}
    async with aiohttp.ClientSession() as http:
        yield Shopfront(fake, http, shop, ticket, method.guid, headers)


# -- answers instead of the server --------------------------------------------------


@pytest.mark.asyncio
async def test_status_fault_answers_with_retry_after_and_the_wire_error_body(
    front: Shopfront,
) -> None:
    front.fake.faults.status("reserve", 429, retry_after=7, times=2)
    for _ in range(2):
        async with front.http.get(front.reserve_url, headers=front.headers) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "7"
            assert (await response.json())["error"] == "rate_limited"
    assert front.fake.live_reservations() == []
    status, _, _ = await front.reserve()
    assert status == 200


@pytest.mark.asyncio
async def test_status_fault_sends_a_given_body(front: Shopfront) -> None:
    front.fake.faults.status("reserve", 409, body={"error": "unavailable", "limit": 4})
    front.fake.faults.status("reserve", 500, body="oops")
    assert await front.reserve() == (
        409,
        "application/json",
        b'{"error": "unavailable", "limit": 4}',
    )
    assert await front.reserve() == (500, "text/plain", b"oops")


@pytest.mark.asyncio
async def test_retry_after_is_sent_as_seconds_an_http_date_or_a_raw_value(
    front: Shopfront,
) -> None:
    faults = front.fake.faults
    faults.status("reserve", 429, retry_after=86400)
    past = datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
    faults.status("reserve", 503, retry_after=past)
    faults.status("reserve", 429, retry_after="soon")
    faults.status("reserve", 429, retry_after=0.5)
    values = []
    for _ in range(4):
        async with front.http.get(front.reserve_url, headers=front.headers) as response:
            values.append(response.headers["Retry-After"])
    assert values[0] == "86400"
    assert email.utils.parsedate_to_datetime(values[1]) == past
    assert values[1].endswith("GMT")
    assert values[2:] == ["soon", "0.5"]


def test_retry_after_refuses_negative_seconds_and_naive_dates(front: Shopfront) -> None:
    with pytest.raises(InvalidArgument):
        front.fake.faults.status("reserve", 429, retry_after=-1)
    with pytest.raises(InvalidArgument):
        front.fake.faults.status("reserve", 429, retry_after=datetime(2026, 1, 1))


@pytest.mark.asyncio
async def test_a_forever_fault_lasts_until_cleared(front: Shopfront) -> None:
    front.fake.faults.status("reserve", 503, times=None)
    statuses = [(await front.reserve())[0] for _ in range(4)]
    front.fake.faults.clear()
    statuses.append((await front.reserve())[0])
    assert statuses == [503, 503, 503, 503, 200]


@pytest.mark.asyncio
async def test_faults_on_a_route_apply_in_the_order_scripted(front: Shopfront) -> None:
    faults = front.fake.faults
    faults.status("reserve", 503)
    faults.html("reserve")
    faults.status("payment_methods", 500)
    faults.clear("payment_methods")
    results = [(await front.reserve())[:2] for _ in range(3)]
    assert results == [(503, "application/json"), (502, "text/html"), (200, "application/json")]


@pytest.mark.asyncio
async def test_html_fault_answers_a_proxy_page_without_acting(front: Shopfront) -> None:
    front.fake.faults.html("reserve")
    front.fake.faults.html("reserve", status=200)
    for expected in (502, 200):
        status, content_type, body = await front.reserve()
        assert (status, content_type) == (expected, "text/html")
        assert body.startswith(b"<html>")
    assert front.fake.live_reservations() == []


@pytest.mark.asyncio
async def test_a_fault_on_the_token_route_hits_the_token_endpoint(front: Shopfront) -> None:
    front.fake.faults.status("token", 503)
    async with front.http.post(
        f"{front.fake.hosts.auth}/tokens", data={"grant_type": "refresh_token"}
    ) as response:
        assert response.status == 503
    assert front.fake.token_grants == []


# -- the server acts, the answer is spoiled -----------------------------------------


@pytest.mark.asyncio
async def test_reset_cuts_the_connection_mid_body_after_the_server_acted(front: Shopfront) -> None:
    front.fake.faults.reset("reserve")
    async with front.http.get(front.reserve_url, headers=front.headers) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert len(front.fake.live_reservations()) == 1
    assert (await front.reserve())[0] == 200


@pytest.mark.asyncio
async def test_malformed_json_fault_answers_a_body_that_does_not_parse(front: Shopfront) -> None:
    front.fake.faults.malformed_json("reserve")
    status, content_type, body = await front.reserve()
    assert (status, content_type) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert len(front.fake.live_reservations()) == 1


@pytest.mark.asyncio
async def test_act_then_garbage_answers_garbage_after_the_server_reserved(
    front: Shopfront,
) -> None:
    front.fake.faults.act_then_garbage("reserve")
    front.fake.faults.act_then_garbage("reserve", b"<html>ok</html>", content_type="text/html")
    assert await front.reserve() == (200, "application/json", b"\x00\xff<garbage>")
    assert await front.reserve() == (200, "text/html", b"<html>ok</html>")
    assert len(front.fake.live_reservations()) == 2


@pytest.mark.asyncio
async def test_act_then_garbage_on_order_creates_the_order(front: Shopfront) -> None:
    _, _, body = await front.reserve()
    front.fake.faults.act_then_garbage("order")
    url = f"{front.fake.hosts.shop}/{front.shop.guid}/order"
    body_json = {
        "receiver": {"email": "a@example.com", "firstname": "A", "lastname": "B"},
        "paymentProvider": front.method,
        "currency": "EUR",
        "tickets": [{"guid": front.ticket.guid, "reservation": json.loads(body)["guid"]}],
    }
    async with front.http.post(url, json=body_json, headers=front.headers) as response:
        assert response.status == 201
        assert await response.read() == b"\x00\xff<garbage>"
    assert len(front.fake.orders) == 1


@pytest.mark.asyncio
async def test_drip_fault_writes_the_body_in_small_pieces(front: Shopfront) -> None:
    front.fake.faults.drip("reserve", 0.01, chunk_size=100)
    pieces = []
    async with front.http.get(front.reserve_url, headers=front.headers) as response:
        async for piece in response.content.iter_any():
            pieces.append(piece)
    body = json.loads(b"".join(pieces))
    assert body["guid"] == front.fake.live_reservations()[0].guid
    assert len(pieces) >= 2
    assert max(len(piece) for piece in pieces) <= 100


@pytest.mark.asyncio
async def test_act_then_fail_reserves_and_answers_503(front: Shopfront) -> None:
    front.fake.faults.act_then_fail("reserve")
    status, _, body = await front.reserve()
    assert status == 503
    assert json.loads(body)["error"] == "server_error"
    assert len(front.fake.live_reservations()) == 1
    assert front.fake.stock_left(front.ticket) == 4


@pytest.mark.asyncio
async def test_act_then_fail_on_order_creates_it_and_a_keyed_retry_gets_it(
    front: Shopfront,
) -> None:
    _, _, body = await front.reserve()
    reservation = json.loads(body)["guid"]
    front.fake.faults.act_then_fail("order", status=502)
    status, _ = await front.order(reservation, key="k-1")
    assert status == 502
    [created] = front.fake.orders
    status, order = await front.order(reservation, key="k-1")
    assert (status, order["guid"]) == (201, created.guid)
    assert len(front.fake.orders) == 1


@pytest.mark.asyncio
async def test_a_stalled_request_does_not_hold_up_the_clock_and_ends_on_close(
    front: Shopfront,
) -> None:
    front.fake.faults.act_then_fail("reserve", stall=True)
    call = asyncio.create_task(front.reserve())
    # Were the stall counted as in flight, this advance would wait 30 real seconds.
    await front.fake.clock.advance(60)
    assert not call.done()
    assert len(front.fake.live_reservations()) == 1
    await front.fake.close()
    with pytest.raises(aiohttp.ClientError):
        await call


@pytest.mark.asyncio
async def test_a_hung_request_never_acts_does_not_hold_up_the_clock_and_ends_on_close(
    front: Shopfront,
) -> None:
    front.fake.faults.hang("reserve")
    call = asyncio.create_task(front.reserve())
    await front.fake.clock.advance(3600)
    assert not call.done()
    assert front.fake.live_reservations() == []
    await front.fake.close()
    with pytest.raises(aiohttp.ClientError):
        await call
    assert front.fake.live_reservations() == []


@pytest.mark.asyncio
async def test_a_client_timeout_ends_a_hung_request_and_the_next_one_is_served(
    front: Shopfront,
) -> None:
    front.fake.faults.hang("reserve")
    timeout = aiohttp.ClientTimeout(total=0.05)
    with pytest.raises(asyncio.TimeoutError):
        async with front.http.get(front.reserve_url, headers=front.headers, timeout=timeout):
            pass
    assert (await front.reserve())[0] == 200
    assert len(front.fake.live_reservations()) == 1


@pytest.mark.asyncio
async def test_a_client_timeout_ends_a_stalled_request(front: Shopfront) -> None:
    front.fake.faults.act_then_fail("reserve", stall=True)
    timeout = aiohttp.ClientTimeout(total=0.05)
    with pytest.raises(asyncio.TimeoutError):
        async with front.http.get(front.reserve_url, headers=front.headers, timeout=timeout):
            pass
    assert len(front.fake.live_reservations()) == 1


# -- delays ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_virtual_delay_waits_for_the_clock_to_be_advanced(front: Shopfront) -> None:
    front.fake.faults.delay("reserve", 30)
    call = asyncio.create_task(front.reserve())
    await front.fake.clock.settle()
    assert not call.done()
    await front.fake.clock.advance(29)
    assert not call.done()
    await front.fake.clock.advance(1)
    assert call.done()
    status, _, body = call.result()
    assert status == 200
    assert json.loads(body)["reserved_at"] == "2026-01-01T00:00:30Z"


@pytest.mark.asyncio
async def test_a_real_delay_answers_after_real_time(front: Shopfront) -> None:
    front.fake.faults.delay("reserve", 0.05, real=True)
    timeout = aiohttp.ClientTimeout(total=0.01)
    with pytest.raises(asyncio.TimeoutError):
        async with front.http.get(front.reserve_url, headers=front.headers, timeout=timeout):
            pass
    front.fake.faults.delay("reserve", 0.01, real=True)
    assert (await front.reserve())[0] == 200
    assert front.fake.clock.now() == 1000.0


# -- expiry offsets ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_expiry_offset_states_a_skewed_expiry_but_the_reservation_keeps_its_ttl(
    front: Shopfront,
) -> None:
    front.fake.faults.expiry_offset(-60)
    _, _, body = await front.reserve()
    answer = json.loads(body)
    stated = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
    assert (stated - front.fake.clock.wall()).total_seconds() == 480 - 60
    [record] = front.fake.live_reservations()
    assert record.expires_at - front.fake.clock.now() == 480


@pytest.mark.asyncio
async def test_expiry_offset_past_the_ttl_states_an_expiry_in_the_past(front: Shopfront) -> None:
    front.fake.faults.expiry_offset(-480 - 600)
    _, _, body = await front.reserve()
    stated = datetime.fromisoformat(json.loads(body)["expires_at"].replace("Z", "+00:00"))
    assert (stated - front.fake.clock.wall()).total_seconds() == -600
    assert len(front.fake.live_reservations()) == 1


# -- scripting errors ------------------------------------------------------------


@pytest.mark.asyncio
async def test_scripting_refuses_unknown_routes_and_bad_counts(front: Shopfront) -> None:
    faults = front.fake.faults
    with pytest.raises(InvalidArgument, match="unknown route"):
        faults.reset("reserv")
    with pytest.raises(InvalidArgument):
        faults.status("reserve", 503, times=0)
    with pytest.raises(InvalidArgument):
        faults.status("reserve", 42)
    with pytest.raises(InvalidArgument):
        faults.html("reserve", status=700)
    with pytest.raises(InvalidArgument):
        faults.delay("reserve", -1)
    assert (await front.reserve())[0] == 200
