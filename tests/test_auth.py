"""BearerToken, OAuth2 and the token helpers, against the fake OpenTicket server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import attrs
import pytest
import pytest_asyncio

from openticket_async import (
    AuthenticationError,
    BearerToken,
    Hosts,
    InvalidArgument,
    MemoryTokenStore,
    OAuth2,
    OpenTicketClient,
    RetryPolicy,
    ServerError,
    Timeouts,
    TokenSet,
    TransportError,
    authorization_url,
    exchange_code,
)
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenTicket[FakeClock]]:
    async with FakeOpenTicket(FakeClock(), access_token_ttl=3600.0) as server:
        yield server


@pytest.fixture
def shop(fake: FakeOpenTicket[FakeClock]) -> FakeShop:
    return fake.add_shop()


@pytest.fixture
def ticket(fake: FakeOpenTicket[FakeClock], shop: FakeShop) -> FakeTicket:
    return fake.add_ticket(shop, stock=100)


def oauth(token: TokenSet, **options: Any) -> OAuth2:
    return OAuth2(CLIENT_ID, CLIENT_SECRET, token, **options)


def client_for(fake: FakeOpenTicket[FakeClock], auth: Any, **options: Any) -> OpenTicketClient:
    return OpenTicketClient(auth=auth, hosts=fake.hosts, clock=fake.clock, **options)


# -- plain values ---------------------------------------------------------------------


def test_bearer_token_repr_hides_the_token() -> None:
    assert "s3cret" not in repr(BearerToken("s3cret"))


def test_oauth2_repr_hides_tokens_and_the_client_secret() -> None:
    fake: FakeOpenTicket[FakeClock] = FakeOpenTicket(FakeClock())
    token = fake.issue_token()
    shown = repr(oauth(token)) + str(oauth(token)) + repr(token)
    assert CLIENT_SECRET not in shown
    assert token.access_token not in shown
    assert token.refresh_token is not None
    assert token.refresh_token not in shown
    assert CLIENT_ID in shown


@pytest.mark.parametrize(
    "arguments",
    [
        ("", CLIENT_SECRET),
        (CLIENT_ID, ""),
        (CLIENT_ID, None),
    ],
)
def test_oauth2_needs_client_credentials(arguments: tuple[Any, Any]) -> None:
    token = FakeOpenTicket(FakeClock()).issue_token()
    with pytest.raises(InvalidArgument):
        OAuth2(*arguments, token)


@pytest.mark.parametrize(
    "options",
    [
        {"token_path": "tokens"},
        {"token_path": "/../tokens"},
        {"refresh_margin": -1},
        {"on_refresh": "not callable"},
    ],
)
def test_oauth2_rejects_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        oauth(FakeOpenTicket(FakeClock()).issue_token(), **options)


def test_oauth2_rejects_a_token_with_a_newline() -> None:
    token = attrs.evolve(FakeOpenTicket(FakeClock()).issue_token(), access_token="at\r\nX-Evil: 1")
    with pytest.raises(InvalidArgument):
        oauth(token)


def test_authorization_url_has_the_documented_query() -> None:
    url = authorization_url(
        CLIENT_ID, "https://app.example/cb?x=1", "state-1", hosts=Hosts(auth="https://a.example")
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://a.example/tokens/authorize"
    assert parse_qs(parts.query) == {
        "client_id": [CLIENT_ID],
        "redirect_uri": ["https://app.example/cb?x=1"],
        "response_type": ["code"],
        "state": ["state-1"],
    }


def test_authorization_url_path_is_configurable_for_older_deployments() -> None:
    url = authorization_url(CLIENT_ID, "https://app/cb", "s", path="/token/authorize")
    assert url.startswith("https://auth.openticket.tech/token/authorize?")


@pytest.mark.parametrize(
    "arguments", [("", "https://cb", "s"), (CLIENT_ID, "", "s"), (CLIENT_ID, "https://cb", "")]
)
def test_authorization_url_needs_every_argument(arguments: tuple[str, str, str]) -> None:
    with pytest.raises(InvalidArgument):
        authorization_url(*arguments)


# -- the single-flight store ----------------------------------------------------------


@pytest.mark.asyncio
async def test_memory_store_runs_one_grant_for_many_concurrent_refreshes() -> None:
    fake: FakeOpenTicket[FakeClock] = FakeOpenTicket(FakeClock())
    stale, fresh = fake.issue_token(), fake.issue_token()
    store = MemoryTokenStore()
    grants: list[TokenSet] = []
    gate = asyncio.Event()

    async def grant(token: TokenSet) -> TokenSet:
        grants.append(token)
        await gate.wait()
        return fresh

    refreshes = [asyncio.create_task(store.refresh(stale, grant)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*refreshes)
    assert grants == [stale]
    assert all(result is fresh for result in results)


@pytest.mark.asyncio
async def test_memory_store_refreshes_again_once_the_new_token_is_stale() -> None:
    fake: FakeOpenTicket[FakeClock] = FakeOpenTicket(FakeClock())
    first, second, third = (fake.issue_token() for _ in range(3))
    store = MemoryTokenStore()
    answers = iter([second, third])

    async def grant(token: TokenSet) -> TokenSet:
        return next(answers)

    assert await store.refresh(first, grant) is second
    assert await store.refresh(first, grant) is second
    assert await store.refresh(second, grant) is third


# -- OAuth2 against the fake server ---------------------------------------------------


@pytest.mark.asyncio
async def test_token_is_refreshed_ahead_of_expiry(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    auth = oauth(fake.issue_token(), refresh_margin=60)
    async with client_for(fake, auth) as client:
        await client.reserve_ticket(shop.guid, ticket.guid)
        await fake.clock.advance(3600 - 61)
        await client.reserve_ticket(shop.guid, ticket.guid)
        assert fake.refresh_count == 0
        await fake.clock.advance(2)
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert fake.refresh_count == 1
    assert auth.token.expires_at == fake.clock.wall() + timedelta(seconds=3600)
    assert [r.route for r in fake.requests] == ["reserve", "reserve", "token", "reserve"]


@pytest.mark.asyncio
async def test_fifty_requests_crossing_expiry_refresh_exactly_once(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    auth = oauth(fake.issue_token())
    async with client_for(fake, auth) as client:
        await fake.clock.advance(3600)
        reservations = await asyncio.gather(
            *(client.reserve_ticket(shop.guid, ticket.guid) for _ in range(50))
        )
    assert len({r.guid for r in reservations}) == 50
    assert fake.refresh_count == 1
    assert all(grant.accepted for grant in fake.token_grants)


@pytest.mark.asyncio
async def test_a_401_refreshes_once_and_replays_the_request_once(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    auth = oauth(fake.issue_token())
    async with client_for(fake, auth, retry=RetryPolicy(attempts=1)) as client:
        fake.expire_access_tokens()
        reservation = await client.reserve_ticket(shop.guid, ticket.guid)
    assert fake.refresh_count == 1
    assert [r.route for r in fake.requests] == ["reserve", "token", "reserve"]
    assert [r.guid for r in fake.live_reservations(ticket.guid)] == [reservation.guid]


@pytest.mark.asyncio
async def test_fifty_concurrent_401s_refresh_exactly_once(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    auth = oauth(fake.issue_token())
    async with client_for(fake, auth) as client:
        fake.expire_access_tokens()
        await asyncio.gather(*(client.reserve_ticket(shop.guid, ticket.guid) for _ in range(50)))
    assert fake.refresh_count == 1
    assert len(fake.live_reservations(ticket.guid)) == 50


@pytest.mark.asyncio
async def test_a_second_401_after_the_replay_raises_authentication_error(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.status("reserve", 401, times=2)
    auth = oauth(fake.issue_token())
    async with client_for(fake, auth) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.reserve_ticket(shop.guid, ticket.guid)
    assert caught.value.status == 401
    assert fake.refresh_count == 1
    assert [r.route for r in fake.requests] == ["reserve", "token", "reserve"]


@pytest.mark.asyncio
async def test_a_refused_refresh_raises_and_is_never_retried(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    token = fake.issue_token()
    fake.revoke(token)
    async with client_for(fake, oauth(token)) as client:
        await fake.clock.advance(3600)
        with pytest.raises(AuthenticationError) as first:
            await client.reserve_ticket(shop.guid, ticket.guid)
        with pytest.raises(AuthenticationError) as second:
            await client.reserve_ticket(shop.guid, ticket.guid)
        results = await asyncio.gather(
            *(client.reserve_ticket(shop.guid, ticket.guid) for _ in range(10)),
            return_exceptions=True,
        )
    assert first.value.status == 400
    assert "invalid_grant" in str(first.value)
    assert "refused before" in str(second.value)
    assert all(isinstance(result, AuthenticationError) for result in results)
    assert fake.refresh_count == 1
    assert [r.route for r in fake.requests] == ["token"]


LOST_ANSWER = "the refresh token was probably spent by an earlier refresh whose answer was lost"


@pytest.mark.asyncio
async def test_a_refresh_refused_after_one_whose_answer_was_reset_says_to_sign_in_again(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    async with client_for(fake, oauth(fake.issue_token()), retry=RetryPolicy(attempts=1)) as c:
        fake.expire_access_tokens()  # the next call's 401 makes the client refresh
        fake.faults.reset("token")  # the server rotates the refresh token; its answer is cut
        with pytest.raises(TransportError):
            await c.reserve_ticket(shop.guid, ticket.guid)
        with pytest.raises(AuthenticationError) as caught:
            await c.reserve_ticket(shop.guid, ticket.guid)
    assert str(caught.value).startswith(
        f"invalid_grant: refresh token was already used ({LOST_ANSWER}: its connection broke;"
        " sign in again (authorization_url, then exchange_code) to get a new token set)"
    )
    assert [grant.accepted for grant in fake.token_grants] == [True, False]


@pytest.mark.asyncio
async def test_a_refresh_refused_after_one_that_timed_out_says_to_sign_in_again(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    timeouts = Timeouts(read=0.2, total=5)
    auth = oauth(fake.issue_token())
    async with client_for(fake, auth, retry=RetryPolicy(attempts=1), timeouts=timeouts) as c:
        fake.expire_access_tokens()
        fake.faults.act_then_fail("token", stall=True)  # rotated, then silence
        with pytest.raises(TransportError):
            await asyncio.wait_for(c.reserve_ticket(shop.guid, ticket.guid), 10)
        with pytest.raises(AuthenticationError) as caught:
            await c.reserve_ticket(shop.guid, ticket.guid)
    assert f"{LOST_ANSWER}: it timed out;" in str(caught.value)


@pytest.mark.asyncio
async def test_a_refresh_refused_after_one_answered_502_says_to_sign_in_again(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    async with client_for(fake, oauth(fake.issue_token()), retry=RetryPolicy(attempts=1)) as c:
        fake.expire_access_tokens()
        fake.faults.act_then_fail("token", status=502)
        with pytest.raises(ServerError):
            await c.reserve_ticket(shop.guid, ticket.guid)
        with pytest.raises(AuthenticationError) as caught:
            await c.reserve_ticket(shop.guid, ticket.guid)
    assert f"{LOST_ANSWER}: it got HTTP 502;" in str(caught.value)


@pytest.mark.asyncio
async def test_a_refused_refresh_with_no_lost_answer_before_blames_none(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    token = fake.issue_token()
    fake.revoke(token)
    async with client_for(fake, oauth(token), retry=RetryPolicy(attempts=1)) as client:
        fake.expire_access_tokens()
        with pytest.raises(AuthenticationError) as caught:
            await client.reserve_ticket(shop.guid, ticket.guid)
    assert str(caught.value).startswith("invalid_grant: unknown refresh token (HTTP 400")


@pytest.mark.asyncio
async def test_without_a_refresh_token_a_401_stands(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    token = attrs.evolve(fake.issue_token(), refresh_token=None)
    async with client_for(fake, oauth(token)) as client:
        fake.expire_access_tokens()
        with pytest.raises(AuthenticationError):
            await client.reserve_ticket(shop.guid, ticket.guid)
    assert fake.refresh_count == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("asynchronous", [False, True])
async def test_on_refresh_gets_the_new_tokens_before_they_are_used(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket, asynchronous: bool
) -> None:
    saved: list[tuple[TokenSet, int]] = []

    def save(token: TokenSet) -> None:
        saved.append((token, len(fake.requests)))

    async def save_async(token: TokenSet) -> None:
        await asyncio.sleep(0)
        save(token)

    auth = oauth(fake.issue_token(), on_refresh=save_async if asynchronous else save)
    async with client_for(fake, auth) as client:
        fake.expire_access_tokens()
        await client.reserve_ticket(shop.guid, ticket.guid)
    [(token, requests_by_then)] = saved
    assert token == auth.token
    assert [r.route for r in fake.requests[:requests_by_then]] == ["reserve", "token"]


@pytest.mark.asyncio
async def test_requests_wait_for_a_slow_on_refresh(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    persisted = asyncio.Event()
    started = asyncio.Event()

    async def persist(token: TokenSet) -> None:
        started.set()
        await persisted.wait()

    auth = oauth(fake.issue_token(), on_refresh=persist)
    async with client_for(fake, auth) as client:
        await fake.clock.advance(3600)
        call = asyncio.create_task(client.reserve_ticket(shop.guid, ticket.guid))
        await started.wait()
        await fake.clock.settle()
        assert [r.route for r in fake.requests] == ["token"]
        persisted.set()
        await call
    assert [r.route for r in fake.requests] == ["token", "reserve"]


@pytest.mark.asyncio
async def test_a_failing_on_refresh_is_logged_and_the_new_tokens_still_used(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(token: TokenSet) -> None:
        raise OSError("disk full")

    auth = oauth(fake.issue_token(), on_refresh=broken)
    async with client_for(fake, auth) as client:
        await fake.clock.advance(3600)
        await client.reserve_ticket(shop.guid, ticket.guid)
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert fake.refresh_count == 1
    assert "on_refresh failed" in caplog.text


@pytest.mark.asyncio
async def test_a_refresh_blip_before_expiry_keeps_using_the_current_token(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    fake.faults.status("token", 503)
    auth = oauth(fake.issue_token(), refresh_margin=600)
    async with client_for(fake, auth) as client:
        await fake.clock.advance(3600 - 300)
        await client.reserve_ticket(shop.guid, ticket.guid)
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert [r.route for r in fake.requests] == ["token", "reserve", "token", "reserve"]
    assert fake.refresh_count == 1


@pytest.mark.asyncio
async def test_the_older_token_path_works(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    auth = oauth(fake.issue_token(), token_path="/token")
    async with client_for(fake, auth) as client:
        await fake.clock.advance(3600)
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert fake.requests[0].path == "/auth/token"
    assert fake.refresh_count == 1


@pytest.mark.asyncio
async def test_a_shared_store_lets_a_second_client_take_the_first_ones_refresh(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    token = fake.issue_token()
    store = MemoryTokenStore()
    first, second = oauth(token, store=store), oauth(token, store=store)
    async with client_for(fake, first) as one, client_for(fake, second) as two:
        await fake.clock.advance(3600)
        await one.reserve_ticket(shop.guid, ticket.guid)
        await two.reserve_ticket(shop.guid, ticket.guid)
    assert fake.refresh_count == 1
    assert first.token == second.token


# -- the authorization-code grant -----------------------------------------------------


async def authorize(fake: FakeOpenTicket[FakeClock], redirect_uri: str) -> str:
    url = authorization_url(CLIENT_ID, redirect_uri, "state-9", hosts=fake.hosts)
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(url, allow_redirects=False) as answer,
    ):
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["state"] == ["state-9"]
    return query["code"][0]


@pytest.mark.asyncio
async def test_a_code_is_exchanged_for_a_token_set(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    code = await authorize(fake, "https://app.example/callback")
    token = await exchange_code(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        code=code,
        redirect_uri="https://app.example/callback",
        hosts=fake.hosts,
        clock=fake.clock,
    )
    assert token.expires_at == fake.clock.wall() + timedelta(seconds=3600)
    assert token.refresh_expires_at == fake.clock.wall() + timedelta(days=365)
    assert token.companies == (fake.company_guid,)
    assert token.raw["token_type"] == "Bearer"
    async with client_for(fake, oauth(token)) as client:
        await client.reserve_ticket(shop.guid, ticket.guid)
    assert [g.grant_type for g in fake.token_grants] == ["authorization_code"]


@pytest.mark.asyncio
async def test_a_used_code_is_refused(fake: FakeOpenTicket[FakeClock]) -> None:
    code = await authorize(fake, "https://app.example/cb")
    arguments: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "code": code,
        "redirect_uri": "https://app.example/cb",
        "hosts": fake.hosts,
    }
    await exchange_code(**arguments)
    with pytest.raises(AuthenticationError) as caught:
        await exchange_code(**arguments)
    assert code not in str(caught.value) + repr(caught.value)
    assert CLIENT_SECRET not in str(caught.value) + caught.value.body


@pytest.mark.asyncio
async def test_exchange_code_with_a_wrong_secret_is_refused(
    fake: FakeOpenTicket[FakeClock],
) -> None:
    code = await authorize(fake, "https://app.example/cb")
    with pytest.raises(AuthenticationError):
        await exchange_code(
            client_id=CLIENT_ID,
            client_secret="wrong",
            code=code,
            redirect_uri="https://app.example/cb",
            hosts=fake.hosts,
        )


@pytest.mark.asyncio
async def test_exchange_code_uses_a_given_session_and_leaves_it_open(
    fake: FakeOpenTicket[FakeClock],
) -> None:
    code = await authorize(fake, "https://app.example/cb")
    async with aiohttp.ClientSession() as session:
        await exchange_code(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            code=code,
            redirect_uri="https://app.example/cb",
            hosts=fake.hosts,
            token_path="/token",
            session=session,
        )
        assert not session.closed


@pytest.mark.asyncio
async def test_exchange_code_validates_before_sending(fake: FakeOpenTicket[FakeClock]) -> None:
    with pytest.raises(InvalidArgument):
        await exchange_code(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            code="",
            redirect_uri="https://app.example/cb",
            hosts=fake.hosts,
        )
    assert fake.requests == []


@pytest.mark.asyncio
async def test_exchange_code_on_a_dead_host_raises_transport_error() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        await exchange_code(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            code="c",
            redirect_uri="https://app.example/cb",
            hosts=Hosts(auth=f"http://127.0.0.1:{port}/auth"),
        )
    assert caught.value.may_have_reached_server is False
