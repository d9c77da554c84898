"""The fake OpenTicket server: routes, shapes, stock, TTL drop, orders, OAuth2.

These tests talk to the server with a raw aiohttp client, as the wire does.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from multidict import CIMultiDictProxy

from openticket_async import InvalidArgument, UsageError
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket

Fake = FakeOpenTicket[FakeClock]


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def bearer(fake: Fake) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.issue_token().access_token}"}


def reserve_url(fake: Fake, shop: FakeShop, ticket: FakeTicket) -> str:
    return f"{fake.hosts.shop}/{shop.guid}/reserve/ticket/{ticket.guid}"


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    async with http.request(method, url, headers=headers, **kwargs) as response:
        text = await response.text()
        body = json.loads(text) if response.content_type == "application/json" else text
        return response.status, body, response.headers


def order_body(fake: Fake, ticket: FakeTicket, reservation: str, method: str) -> dict[str, Any]:
    return {
        "receiver": {
            "locale": "en_GB",
            "email": "ada@example.com",
            "firstname": "Ada",
            "lastname": "Lovelace",
        },
        "paymentProvider": method,
        "currency": "EUR",
        "tickets": [
            {
                "guid": ticket.guid,
                "reservation": reservation,
                "products": list(ticket.product_guids),
            }
        ],
    }


# -- reservations ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reserve_answers_the_snake_case_wire_shape(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=2, products=2)
    status, body, headers = await call(http, "GET", reserve_url(fake, shop, ticket), bearer(fake))
    assert status == 200
    assert headers["X-Request-Id"]
    assert body == {
        "guid": fake.live_reservations()[0].guid,
        "shop_guid": shop.guid,
        "ticket_guid": ticket.guid,
        "event_date_guid": ticket.event_date_guid,
        "products": [
            {"guid": ticket.product_guids[0], "name": "Product 1"},
            {"guid": ticket.product_guids[1], "name": "Product 2"},
        ],
        "reserved_at": "2026-01-01T00:00:00Z",
        "expires_at": "2026-01-01T00:08:00Z",
        "status": "reserved",
    }


@pytest.mark.asyncio
async def test_camel_style_and_no_expiry_change_the_reservation_shape(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeOpenTicket(FakeClock(), style="camel", send_expiry=False) as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop)
        _, body, _ = await call(http, "GET", reserve_url(fake, shop, ticket), bearer(fake))
    assert set(body) == {"guid", "shopGuid", "ticketGuid", "eventDateGuid", "products", "status"}
    assert body["eventDateGuid"] == ticket.event_date_guid


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("product_shape", "keys"),
    [
        ("lean", {"guid", "name"}),
        ("flat", {"guid", "name", "unit_price", "currency"}),
        ("nested", {"guid", "name", "price_lines"}),
    ],
)
async def test_product_shape_sets_what_each_product_line_carries(
    http: aiohttp.ClientSession, product_shape: Any, keys: set[str]
) -> None:
    async with FakeOpenTicket(FakeClock(), product_shape=product_shape) as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop, products=3)
        _, body, _ = await call(http, "GET", reserve_url(fake, shop, ticket), bearer(fake))
    assert [set(product) for product in body["products"]] == [keys] * 3
    assert [product["guid"] for product in body["products"]] == list(ticket.product_guids)


@pytest.mark.asyncio
async def test_camel_style_expiry_keys_are_camel_case(http: aiohttp.ClientSession) -> None:
    async with FakeOpenTicket(FakeClock(), style="camel", reservation_ttl=60.5) as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop)
        _, body, _ = await call(http, "GET", reserve_url(fake, shop, ticket), bearer(fake))
    assert body["reservedAt"] == "2026-01-01T00:00:00Z"
    assert body["expiresAt"] == "2026-01-01T00:01:00.500000Z"


@pytest.mark.asyncio
async def test_reservation_drops_after_eight_minutes_of_virtual_time(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=3)
    await call(http, "GET", reserve_url(fake, shop, ticket), bearer(fake))
    [live] = fake.live_reservations(ticket)
    assert (live.reserved_at, live.expires_at) == (1000.0, 1480.0)
    assert fake.stock_left(ticket) == 2

    await fake.clock.advance(479.999)
    assert fake.stock_left(ticket) == 2
    await fake.clock.advance(0.001)
    assert fake.live_reservations() == []
    assert fake.stock_left(ticket) == 3


@pytest.mark.asyncio
async def test_no_stock_left_is_409_sold_out_until_a_reservation_drops(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=1)
    url, headers = reserve_url(fake, shop, ticket), bearer(fake)
    assert (await call(http, "GET", url, headers))[0] == 200
    await fake.clock.advance(100)
    status, body, _ = await call(http, "GET", url, headers)
    assert status == 409
    assert body["error"] == "sold_out"
    assert body["ticket_guid"] == ticket.guid

    await fake.clock.advance(380)
    status, _, _ = await call(http, "GET", url, headers)
    assert status == 200
    assert [r.reserved_at for r in fake.live_reservations(ticket)] == [1480.0]


@pytest.mark.asyncio
async def test_reservation_ttl_is_configurable(http: aiohttp.ClientSession) -> None:
    async with FakeOpenTicket(FakeClock(), reservation_ttl=30.0) as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop)
        await call(http, "GET", reserve_url(fake, shop, ticket), bearer(fake))
        await fake.clock.advance(30)
        assert fake.live_reservations() == []


@pytest.mark.asyncio
async def test_unknown_shop_or_ticket_is_404(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop, other = fake.add_shop(), fake.add_shop()
    ticket = fake.add_ticket(other)
    headers = bearer(fake)
    for url in (
        reserve_url(fake, shop, ticket),
        f"{fake.hosts.shop}/{shop.guid}/reserve/ticket/not-a-guid",
        f"{fake.hosts.api}/shop/00000000-0000-0000-0000-000000000000/payment_methods",
        f"{fake.hosts.api}/order/00000000-0000-0000-0000-000000000000",
    ):
        status, body, _ = await call(http, "GET", url, headers)
        assert (status, body["error"]) == (404, "not_found"), url


@pytest.mark.asyncio
async def test_every_response_carries_a_request_id(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    ids = set()
    for url in (f"{openticket_fake.url}/nowhere", f"{openticket_fake.hosts.auth}/users/me"):
        status, _, headers = await call(http, "GET", url)
        assert status in (401, 404)
        ids.add(headers["X-Request-Id"])
    assert len(ids) == 2


# -- authentication ----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer nonsense", "Basic dXNlcjpwdw=="],
    ids=["none", "unknown", "basic"],
)
async def test_api_and_shop_routes_refuse_a_missing_or_bad_token_with_401(
    openticket_fake: Fake, http: aiohttp.ClientSession, authorization: str | None
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop)
    headers = {"Authorization": authorization} if authorization else None
    for method, url in [
        ("GET", reserve_url(fake, shop, ticket)),
        ("POST", f"{fake.hosts.shop}/{shop.guid}/order"),
        ("GET", f"{fake.hosts.api}/shop/{shop.guid}/payment_methods"),
        ("GET", f"{fake.hosts.api}/order/{ticket.guid}"),
        ("GET", f"{fake.hosts.auth}/users/me"),
    ]:
        status, body, response_headers = await call(http, method, url, headers, json={})
        assert (status, body["error"]) == (401, "unauthenticated"), url
        assert response_headers["WWW-Authenticate"] == "Bearer"
    assert fake.live_reservations() == []


@pytest.mark.asyncio
async def test_access_token_expires_on_the_clock_and_refresh_brings_a_new_one(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeOpenTicket(FakeClock(), access_token_ttl=3600) as fake:
        tokens = fake.issue_token()
        me = f"{fake.hosts.auth}/users/me"
        headers = {"Authorization": f"Bearer {tokens.access_token}"}
        assert tokens.expires_at == datetime(2026, 1, 1, 1, tzinfo=UTC)
        assert (await call(http, "GET", me, headers))[0] == 200
        await fake.clock.advance(3600)
        assert (await call(http, "GET", me, headers))[0] == 401

        status, body, _ = await call(
            http,
            "POST",
            f"{fake.hosts.auth}/tokens",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token,
                "client_id": "test-client",
                "client_secret": "test-secret",
            },
        )
        assert status == 200
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        assert body["refresh_token_expires_in"] == 31536000
        assert body["refresh_token"] != tokens.refresh_token
        fresh = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await call(http, "GET", me, fresh))[0] == 200


@pytest.mark.asyncio
async def test_a_refresh_token_works_once_and_its_reuse_is_invalid_grant(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    tokens = fake.issue_token(companies=["c0ffee00-0000-4000-8000-000000000000"])
    grant = {
        "grant_type": "refresh_token",
        "refresh_token": tokens.refresh_token,
        "client_id": "test-client",
        "client_secret": "test-secret",
    }
    first = await call(http, "POST", f"{fake.hosts.auth}/tokens", json=grant)
    again = await call(http, "POST", f"{fake.hosts.auth}/token", data=grant)
    assert first[0] == 200
    assert first[1]["info"] == {"companies": [{"guid": "c0ffee00-0000-4000-8000-000000000000"}]}
    assert again[0] == 400
    assert again[1] == {
        "error": "invalid_grant",
        "error_description": "refresh token was already used",
    }
    assert fake.refresh_count == 2
    assert [(g.accepted, g.refresh_token) for g in fake.token_grants] == [
        (True, tokens.refresh_token),
        (False, tokens.refresh_token),
    ]
    assert tokens.refresh_token is not None
    assert tokens.refresh_token not in repr(fake.token_grants)


@pytest.mark.asyncio
async def test_the_token_endpoint_checks_the_client_credentials(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    tokens = fake.issue_token()
    grant = {
        "grant_type": "refresh_token",
        "refresh_token": tokens.refresh_token,
        "client_id": "test-client",
        "client_secret": "wrong",
    }
    status, body, _ = await call(http, "POST", f"{fake.hosts.auth}/tokens", data=grant)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "wrong" not in json.dumps(body)
    # The refused attempt did not burn the refresh token.
    grant["client_secret"] = "test-secret"
    assert (await call(http, "POST", f"{fake.hosts.auth}/tokens", data=grant))[0] == 200


@pytest.mark.asyncio
async def test_authorization_code_flow_redirects_then_exchanges_the_code_once(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    params = {
        "client_id": "test-client",
        "redirect_uri": "http://127.0.0.1:9/callback",
        "response_type": "code",
        "state": "xyz",
    }
    async with http.get(
        f"{fake.hosts.auth}/tokens/authorize", params=params, allow_redirects=False
    ) as response:
        assert response.status == 302
        location = urlsplit(response.headers["Location"])
    assert location.path == "/callback"
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    exchange = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": "http://127.0.0.1:9/callback",
        "client_id": "test-client",
        "client_secret": "test-secret",
    }
    status, body, _ = await call(http, "POST", f"{fake.hosts.auth}/tokens", data=exchange)
    assert status == 200
    assert body["info"]["companies"] == [{"guid": fake.company_guid}]
    status, body, _ = await call(http, "POST", f"{fake.hosts.auth}/tokens", data=exchange)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert [g.grant_type for g in fake.token_grants] == ["authorization_code"] * 2
    assert fake.refresh_count == 0


@pytest.mark.asyncio
async def test_expire_access_tokens_and_revoke(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    me = f"{fake.hosts.auth}/user/me"
    old, kept = fake.issue_token(), fake.issue_token()
    fake.expire_access_tokens()
    assert (await call(http, "GET", me, {"Authorization": f"Bearer {old.access_token}"}))[0] == 401
    new = fake.issue_token()
    assert (await call(http, "GET", me, {"Authorization": f"Bearer {new.access_token}"}))[0] == 200
    fake.revoke(new)
    assert (await call(http, "GET", me, {"Authorization": f"Bearer {new.access_token}"}))[0] == 401
    grant = {
        "grant_type": "refresh_token",
        "refresh_token": kept.refresh_token,
        "client_id": "test-client",
        "client_secret": "test-secret",
    }
    assert (await call(http, "POST", f"{fake.hosts.auth}/tokens", data=grant))[0] == 200


@pytest.mark.asyncio
async def test_users_me_answers_the_user_and_default_company(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    status, body, _ = await call(http, "GET", f"{fake.hosts.auth}/users/me", bearer(fake))
    assert status == 200
    assert body == {
        "guid": fake.user_guid,
        "email": "user@example.com",
        "default_company_id": fake.company_guid,
    }


# -- orders and payment methods -----------------------------------------------------


@pytest.mark.asyncio
async def test_payment_methods_lists_the_shop_methods(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ideal = fake.add_payment_method(shop)
    card = fake.add_payment_method(shop, name="Card")
    url = f"{fake.hosts.api}/shop/{shop.guid}/payment_methods"
    status, body, _ = await call(http, "GET", url, bearer(fake))
    assert status == 200
    assert body == [{"guid": ideal.guid, "name": "iDEAL"}, {"guid": card.guid, "name": "Card"}]


@pytest.mark.asyncio
async def test_an_order_consumes_its_live_reservations(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=2)
    method = fake.add_payment_method(shop)
    headers = bearer(fake)
    _, reservation, _ = await call(http, "GET", reserve_url(fake, shop, ticket), headers)
    body = order_body(fake, ticket, reservation["guid"], method.guid)

    status, order, _ = await call(
        http, "POST", f"{fake.hosts.shop}/{shop.guid}/order", headers, json=body
    )
    assert status == 201
    assert order["shop_guid"] == shop.guid
    assert order["status"] == "pending"
    assert order["currency"] == "EUR"
    assert order["receiver"] == body["receiver"]
    assert order["created_at"] == "2026-01-01T00:00:00Z"
    [line] = order["tickets"]
    assert (line["ticket_guid"], line["reservation_guid"]) == (ticket.guid, reservation["guid"])
    assert line["ticket_number"]
    assert fake.live_reservations() == []
    assert fake.stock_left(ticket) == 1
    [record] = fake.orders
    assert record.guid == order["guid"]
    assert record.payment_method == method.guid

    # Sold is sold: the TTL passing does not return the unit.
    await fake.clock.advance(480)
    assert fake.stock_left(ticket) == 1
    status, fetched, _ = await call(http, "GET", f"{fake.hosts.api}/order/{order['guid']}", headers)
    assert (status, fetched) == (200, order)


@pytest.mark.asyncio
async def test_an_order_with_a_dropped_reservation_is_410_and_changes_nothing(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=2)
    method = fake.add_payment_method(shop)
    headers = bearer(fake)
    _, dropped, _ = await call(http, "GET", reserve_url(fake, shop, ticket), headers)
    await fake.clock.advance(300)
    _, fresh, _ = await call(http, "GET", reserve_url(fake, shop, ticket), headers)
    await fake.clock.advance(180)  # the first has dropped, the second runs 5 more minutes

    body = order_body(fake, ticket, fresh["guid"], method.guid)
    body["tickets"].append(body["tickets"][0] | {"reservation": dropped["guid"]})
    status, error, _ = await call(
        http, "POST", f"{fake.hosts.shop}/{shop.guid}/order", headers, json=body
    )
    assert status == 410
    assert error["error"] == "reservation_expired"
    assert error["reservation"] == dropped["guid"]
    assert fake.orders == []
    assert [r.guid for r in fake.live_reservations()] == [fresh["guid"]]


@pytest.mark.asyncio
async def test_a_reservation_goes_into_one_order_only(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop)
    method = fake.add_payment_method(shop)
    headers = bearer(fake)
    _, reservation, _ = await call(http, "GET", reserve_url(fake, shop, ticket), headers)
    body = order_body(fake, ticket, reservation["guid"], method.guid)
    url = f"{fake.hosts.shop}/{shop.guid}/order"
    assert (await call(http, "POST", url, headers, json=body))[0] == 201
    status, error, _ = await call(http, "POST", url, headers, json=body)
    assert (status, error["error"]) == (410, "reservation_expired")
    assert "already in order" in error["message"]
    assert len(fake.orders) == 1


@pytest.mark.asyncio
async def test_the_same_idempotency_key_returns_the_same_order(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop)
    method = fake.add_payment_method(shop)
    headers = bearer(fake) | {"Idempotency-Key": "checkout-42"}
    _, reservation, _ = await call(http, "GET", reserve_url(fake, shop, ticket), headers)
    body = order_body(fake, ticket, reservation["guid"], method.guid)
    url = f"{fake.hosts.shop}/{shop.guid}/order"
    first = await call(http, "POST", url, headers, json=body)
    second = await call(http, "POST", url, headers, json=body)
    assert first[0] == second[0] == 201
    assert first[1] == second[1]
    assert [o.idempotency_key for o in fake.orders] == ["checkout-42"]
    assert fake.requests[-1].idempotency_key == "checkout-42"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "spoil",
    [
        lambda body: body.pop("receiver"),
        lambda body: body.update(paymentProvider="00000000-0000-0000-0000-000000000000"),
        lambda body: body.update(currency=""),
        lambda body: body.update(tickets=[]),
        lambda body: body["tickets"][0].update(guid="00000000-0000-0000-0000-000000000000"),
        lambda body: body["tickets"][0].update(products=["00000000-0000-0000-0000-000000000000"]),
        lambda body: body["tickets"].append(dict(body["tickets"][0])),
    ],
    ids=["receiver", "method", "currency", "no-tickets", "ticket", "product", "twice"],
)
async def test_an_invalid_order_body_is_422(
    openticket_fake: Fake, http: aiohttp.ClientSession, spoil: Any
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop)
    method = fake.add_payment_method(shop)
    headers = bearer(fake)
    _, reservation, _ = await call(http, "GET", reserve_url(fake, shop, ticket), headers)
    body = order_body(fake, ticket, reservation["guid"], method.guid)
    spoil(body)
    url = f"{fake.hosts.shop}/{shop.guid}/order"
    status, error, _ = await call(http, "POST", url, headers, json=body)
    assert (status, error["error"]) == (422, "invalid")
    assert fake.orders == []
    assert len(fake.live_reservations()) == 1


# -- inspection and lifecycle -------------------------------------------------------


@pytest.mark.asyncio
async def test_requests_are_recorded_with_route_auth_company_and_clock_time(
    openticket_fake: Fake, http: aiohttp.ClientSession
) -> None:
    fake = openticket_fake
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop)
    await fake.clock.advance(5)
    headers = bearer(fake) | {"Company": "a,b"}
    await call(http, "GET", reserve_url(fake, shop, ticket), headers)
    await call(http, "GET", f"{fake.hosts.api}/shop/{shop.guid}/payment_methods")
    first, second = fake.requests
    assert (first.method, first.route, first.had_auth, first.company, first.time) == (
        "GET",
        "reserve",
        True,
        "a,b",
        1005.0,
    )
    assert first.path == f"/shop/{shop.guid}/reserve/ticket/{ticket.guid}"
    assert (second.route, second.had_auth, second.company) == ("payment_methods", False, None)
    assert "Bearer" not in repr(fake.requests)


def test_settings_must_make_sense() -> None:
    with pytest.raises(InvalidArgument):
        FakeOpenTicket(FakeClock(), reservation_ttl=0)
    with pytest.raises(InvalidArgument):
        FakeOpenTicket(FakeClock(), access_token_ttl=-1)
    with pytest.raises(InvalidArgument):
        FakeOpenTicket(FakeClock(), style="kebab")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        FakeOpenTicket(FakeClock(), product_shape="deep")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_seeding_refuses_unknown_shops_and_tickets(openticket_fake: Fake) -> None:
    with pytest.raises(InvalidArgument):
        openticket_fake.add_ticket("no-such-shop")
    with pytest.raises(InvalidArgument):
        openticket_fake.add_ticket(openticket_fake.add_shop(), stock=-1)
    with pytest.raises(InvalidArgument):
        openticket_fake.stock_left("no-such-ticket")


@pytest.mark.asyncio
async def test_url_and_hosts_need_a_started_server() -> None:
    fake = FakeOpenTicket(FakeClock())
    with pytest.raises(UsageError):
        _ = fake.hosts
    async with fake:
        assert fake.hosts.shop == fake.url + "/shop"
        with pytest.raises(UsageError):
            await fake.start()
    await fake.close()
    with pytest.raises(UsageError):
        _ = fake.url


@pytest.mark.slow
@pytest.mark.asyncio
async def test_serve_runs_a_seeded_fake_in_its_own_process(http: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "openticket_async.testing",
        "serve",
        "--tickets",
        "2",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        info = json.loads(await process.stdout.readline())
        assert len(info["ticket_guids"]) == 2
        assert info["hosts"]["shop"] == info["url"] + "/shop"
        shop, ticket = info["shop_guid"], info["ticket_guids"][0]
        url = f"{info['hosts']['shop']}/{shop}/reserve/ticket/{ticket}"
        headers = {"Authorization": f"Bearer {info['access_token']}"}
        status, body, _ = await call(http, "GET", url, headers)
        assert (status, body["ticket_guid"]) == (200, ticket)
    finally:
        process.terminate()
        assert await process.wait() == 0
