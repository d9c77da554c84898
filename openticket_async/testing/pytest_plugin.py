"""pytest fixtures for testing code that uses openticket_async.

Registered automatically (``pytest11`` entry point ``openticket``). All three are
function-scoped async fixtures for pytest-asyncio (strict mode works: mark the
tests with ``@pytest.mark.asyncio``):

- ``openticket_clock``: a fresh :class:`FakeClock`.
- ``openticket_fake``: a started :class:`FakeOpenTicket` on 127.0.0.1 (a free
  port) driven by ``openticket_clock``. It is seeded with **nothing**: add the
  shops, tickets and payment methods your test needs. Closed after the test.
- ``openticket_client``: an ``OpenTicketClient`` entered as an async context
  manager, with a fresh bearer token of ``openticket_fake``, its ``hosts`` and
  ``openticket_clock``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

from ._clock import FakeClock
from ._server import FakeOpenTicket

if TYPE_CHECKING:
    from .._client import OpenTicketClient

__all__ = ["openticket_client", "openticket_clock", "openticket_fake"]

F = TypeVar("F", bound=Callable[..., Any])


def _async_fixture(func: F) -> F:
    """``pytest_asyncio.fixture``, or a fixture that explains what is missing.

    This module is loaded into every pytest run where openticket_async is
    installed, so it must import even without pytest-asyncio.
    """
    try:
        import pytest_asyncio
    except ImportError:

        def missing() -> None:
            pytest.fail("the openticket fixtures need pytest-asyncio (pip install pytest-asyncio)")

        missing.__name__ = func.__name__
        return cast(F, pytest.fixture(name=func.__name__)(missing))
    return cast(F, pytest_asyncio.fixture(func))


@_async_fixture
async def openticket_clock() -> FakeClock:
    """A fresh :class:`FakeClock` (virtual time starting at 1000.0)."""
    return FakeClock()


@_async_fixture
async def openticket_fake(openticket_clock: FakeClock) -> AsyncIterator[FakeOpenTicket[FakeClock]]:
    """A started, empty :class:`FakeOpenTicket` on 127.0.0.1, closed after the test."""
    async with FakeOpenTicket(openticket_clock) as fake:
        yield fake


@_async_fixture
async def openticket_client(
    openticket_fake: FakeOpenTicket[FakeClock], openticket_clock: FakeClock
) -> AsyncIterator[OpenTicketClient]:
    """An ``OpenTicketClient`` on ``openticket_fake`` with a fresh bearer token."""
    # Imported here: the test kit must not make the client a hard import of pytest.
    from openticket_async import BearerToken, OpenTicketClient

    token = openticket_fake.issue_token()
    async with OpenTicketClient(
        auth=BearerToken(token.access_token),
        hosts=openticket_fake.hosts,
        clock=openticket_clock,
    ) as client:
        yield client
