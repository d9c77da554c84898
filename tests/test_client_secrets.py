"""Secrets the server echoes back: every one the client knows is masked, wherever it shows.

The fake server answers with bodies that quote a token, a refresh token, the client
secret or an authorization code (as a careless or hostile server might), and no
error message, body, repr or debug log line may show it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from openticket_async import (
    APIError,
    AuthenticationError,
    BearerToken,
    DecodeError,
    Hosts,
    OAuth2,
    OpenTicketClient,
    OpenTicketError,
    RetryPolicy,
    exchange_code,
)
from openticket_async._exceptions import excerpt, mask, redact
from openticket_async._protocol import RequestFactory
from openticket_async._transport import transport_error
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
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
    return fake.add_ticket(shop, stock=5)


def shown(error: OpenTicketError) -> str:
    """Everything an error lets a user or a logger see."""
    return "\n".join([str(error), repr(error), str(error.args), str(vars(error))])


async def raised(call: object) -> OpenTicketError:
    with pytest.raises(OpenTicketError) as caught:
        await call  # type: ignore[misc]
    return caught.value


# -- against the fake server ------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_access_token_echoed_in_an_error_message_is_masked(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    token = fake.issue_token().access_token
    echo = {"error": "invalid", "message": f"token {token} may not reserve here"}
    fake.faults.status("reserve", 422, body=echo)
    async with OpenTicketClient(
        auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock, retry=NO_RETRY
    ) as client:
        error = await raised(client.reserve_ticket(shop.guid, ticket.guid))
    assert isinstance(error, APIError)
    assert str(error).startswith("invalid: token *** may not reserve here (HTTP 422")
    assert token not in shown(error)


@pytest.mark.asyncio
async def test_an_access_token_echoed_in_an_error_body_is_masked_in_the_debug_log(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="openticket_async")
    token = fake.issue_token().access_token
    fake.faults.status("reserve", 400, body=f"bad request from {token}")
    async with OpenTicketClient(
        auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock, retry=NO_RETRY
    ) as client:
        await raised(client.reserve_ticket(shop.guid, ticket.guid))
    answered = [r.getMessage() for r in caplog.records if r.getMessage().startswith("<-")]
    assert answered == [answered[0]]
    assert answered[0].endswith("body='bad request from ***'")
    assert token not in caplog.text


@pytest.mark.asyncio
async def test_an_access_token_echoed_in_an_unreadable_answer_is_masked_in_the_snippet(
    fake: FakeOpenTicket[FakeClock],
) -> None:
    token = fake.issue_token().access_token
    fake.faults.status("me", 200, body=f"<html>hello {token}</html>", content_type="text/html")
    async with OpenTicketClient(
        auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock, retry=NO_RETRY
    ) as client:
        error = await raised(client.me())
    assert isinstance(error, DecodeError)
    assert error.snippet == "<html>hello ***</html>"
    assert token not in shown(error)


@pytest.mark.asyncio
async def test_the_refresh_token_and_client_secret_echoed_on_an_api_call_are_masked(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    issued = fake.issue_token()
    assert issued.refresh_token is not None
    echo = f"session {issued.refresh_token} of client {CLIENT_SECRET} is locked"
    fake.faults.status("reserve", 423, body={"error": "locked", "message": echo})
    auth = OAuth2(CLIENT_ID, CLIENT_SECRET, issued)
    async with OpenTicketClient(
        auth=auth, hosts=fake.hosts, clock=fake.clock, retry=NO_RETRY
    ) as client:
        error = await raised(client.reserve_ticket(shop.guid, ticket.guid))
    assert str(error).startswith("locked: session *** of client *** is locked")
    assert issued.refresh_token not in shown(error)
    assert CLIENT_SECRET not in shown(error)


@pytest.mark.asyncio
async def test_a_refresh_token_echoed_by_a_refused_refresh_is_masked(
    fake: FakeOpenTicket[FakeClock], shop: FakeShop, ticket: FakeTicket
) -> None:
    issued = fake.issue_token()
    assert issued.refresh_token is not None
    echo = {"error": "invalid_grant", "error_description": f"{issued.refresh_token} is revoked"}
    fake.faults.status("token", 400, body=echo)
    auth = OAuth2(CLIENT_ID, CLIENT_SECRET, issued)
    async with OpenTicketClient(
        auth=auth, hosts=fake.hosts, clock=fake.clock, retry=NO_RETRY
    ) as client:
        fake.expire_access_tokens()  # the call's 401 makes the client refresh
        error = await raised(client.reserve_ticket(shop.guid, ticket.guid))
    assert isinstance(error, AuthenticationError)
    assert str(error).startswith("invalid_grant: *** is revoked")
    assert issued.refresh_token not in shown(error)


@pytest.mark.asyncio
async def test_an_authorization_code_echoed_by_a_refused_exchange_is_masked(
    fake: FakeOpenTicket[FakeClock],
) -> None:
    code = "cd_3f9a0c2e-echoed"
    echo = {"error": "invalid_grant", "error_description": f"code {code} was already used"}
    fake.faults.status("token", 400, body=echo)
    error = await raised(
        exchange_code(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            code=code,
            redirect_uri="https://app.example/cb",
            hosts=fake.hosts,
            clock=fake.clock,
        )
    )
    assert str(error).startswith("invalid_grant: code *** was already used")
    assert code not in shown(error)


# -- the masking itself -----------------------------------------------------------------


def test_a_secret_is_masked_as_json_and_forms_escape_it() -> None:
    secret = "at_a/b+c"
    text = mask('{"m": "at_a\\/b+c"} x=at_a%2Fb%2Bc y=at_a/b+c', [secret])
    assert text == '{"m": "***"} x=*** y=***'


def test_a_secret_containing_another_is_masked_whole() -> None:
    assert mask("token rt_abc_rt_abc_long", ["rt_abc", "rt_abc_rt_abc_long"]) == "token ***"


def test_a_secret_straddling_the_cut_shows_no_part_of_itself() -> None:
    secret = "rt_0123456789abcdef"
    body = ("x" * 195 + secret + " and more").encode()
    snippet = excerpt(body, 200, [secret])
    assert snippet == "x" * 195 + "*** a"


def test_a_secret_keys_value_cut_off_by_the_limit_is_masked() -> None:
    assert redact('{"access_token": "at_cut-off-mid') == '{"access_token": "***'


def test_a_transport_error_masks_the_token_its_request_carried() -> None:
    request = RequestFactory(Hosts()).me("Bearer at_sent-token")
    error = transport_error(OSError("peer said: at_sent-token is unknown"), request)
    assert "at_sent-token" not in shown(error)
    assert "*** is unknown" in str(error)
