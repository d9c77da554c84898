"""The ``openticket_async`` logger: DEBUG traffic lines, masked credentials, the
``OPENTICKET_LOG`` switch."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from openticket_async import BearerToken, OpenTicketClient, RetryPolicy
from openticket_async._log import configure_from_environment, logger, safe_headers
from openticket_async.testing import FakeClock, FakeOpenTicket, FakeShop, FakeTicket


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenTicket[FakeClock]]:
    async with FakeOpenTicket(FakeClock()) as server:
        yield server


@pytest.fixture
def shop(fake: FakeOpenTicket[FakeClock]) -> FakeShop:
    return fake.add_shop()


@pytest.fixture
def ticket(fake: FakeOpenTicket[FakeClock], shop: FakeShop) -> FakeTicket:
    return fake.add_ticket(shop)


@pytest.mark.asyncio
async def test_debug_logs_each_request_and_answer_with_the_token_masked(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="openticket_async")
    token = fake.issue_token().access_token
    async with OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock) as c:
        await c.reserve_ticket(shop.guid, ticket.guid)
    sent, answered = (r.getMessage() for r in caplog.records if r.name == "openticket_async")
    path = f"/shop/{shop.guid}/reserve/ticket/{ticket.guid}"
    assert sent.startswith(f"-> GET {path} attempt=1")
    assert "'Authorization': 'Bearer ***'" in sent
    assert answered.startswith(f"<- GET {path} status=200 request_id=req-")
    assert '"status": "reserved"' in answered
    assert token not in caplog.text


@pytest.mark.asyncio
async def test_retries_and_failures_are_logged_at_debug(
    fake: FakeOpenTicket[FakeClock], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="openticket_async")
    fake.faults.reset("me")
    token = fake.issue_token().access_token
    async with OpenTicketClient(
        auth=BearerToken(token),
        hosts=fake.hosts,
        clock=fake.clock,
        retry=RetryPolicy(backoff_base=0),
    ) as client:
        await client.me()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("<- GET /auth/users/me failed after") for m in messages)
    assert any(m.startswith("retrying GET /auth/users/me in 0.000s (attempt 2)") for m in messages)


@pytest.mark.asyncio
async def test_nothing_is_logged_below_debug(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="openticket_async")
    token = fake.issue_token().access_token
    async with OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock) as c:
        await c.reserve_ticket(shop.guid, ticket.guid)
    assert [r for r in caplog.records if r.name == "openticket_async"] == []


@pytest.mark.asyncio
async def test_debug_turned_on_and_off_between_requests_applies_to_the_next_one(
    fake: FakeOpenTicket[FakeClock],
    shop: FakeShop,
    ticket: FakeTicket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="openticket_async")
    token = fake.issue_token().access_token
    async with OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock) as c:
        for level in (logging.INFO, logging.DEBUG, logging.INFO):
            caplog.set_level(level, logger="openticket_async")
            await c.reserve_ticket(shop.guid, ticket.guid)
    sent, answered = (r.getMessage() for r in caplog.records if r.name == "openticket_async")
    assert sent.startswith("-> GET")
    assert answered.startswith("<- GET")
    assert "request_id=req-00000002" in answered


def test_safe_headers_masks_credentials_only() -> None:
    shown = safe_headers(
        {"Authorization": "Bearer abc", "cookie": "s=1", "Company": "c", "Accept": "x"}
    )
    assert shown == {"Authorization": "Bearer ***", "cookie": "***", "Company": "c", "Accept": "x"}


@pytest.mark.parametrize(("value", "level"), [("debug", logging.DEBUG), (" INFO ", logging.INFO)])
def test_configure_from_environment_attaches_one_handler(value: str, level: int) -> None:
    before = logger.level
    handler = configure_from_environment({"OPENTICKET_LOG": value})
    try:
        assert handler is not None
        assert handler in logger.handlers
        assert logger.level == level
    finally:
        if handler is not None:
            logger.removeHandler(handler)
        logger.setLevel(before)


@pytest.mark.parametrize("environ", [{}, {"OPENTICKET_LOG": ""}, {"OPENTICKET_LOG": "loud"}])
def test_configure_from_environment_does_nothing_without_a_level(environ: dict[str, str]) -> None:
    handlers = list(logger.handlers)
    assert configure_from_environment(environ) is None
    assert logger.handlers == handlers


def run_python(code: str, **environ: str) -> str:
    env = {key: value for key, value in os.environ.items() if key != "OPENTICKET_LOG"}
    env.update(environ)
    done = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


PROBE = (
    "import logging, openticket_async; "
    "log = logging.getLogger('openticket_async'); "
    "print(len(log.handlers), logging.getLevelName(log.level))"
)


@pytest.mark.realtime
def test_openticket_log_debug_turns_logging_on_at_import() -> None:
    assert run_python(PROBE, OPENTICKET_LOG="debug") == "1 DEBUG"


@pytest.mark.realtime
def test_without_openticket_log_the_library_adds_no_handler() -> None:
    assert run_python(PROBE) == "0 NOTSET"
