"""Where time comes from.

Everything in the SDK that waits or timestamps goes through a :class:`Clock`, so
an 8-minute reservation lifecycle can run on virtual time in tests
(``openticket_async.testing.FakeClock``) and on real time in production
(:class:`SystemClock`). ``now()`` is monotonic seconds; ``wall()`` is the matching
aware UTC datetime, used only to stamp values shown to people.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """The time source the client, the manager and the fake server share.

    ``resolution`` is how finely ``sleep_until`` can wake (seconds): a deadline
    within that distance of ``now()`` counts as due, so a scheduler on a coarse
    timer (uvloop: 1 ms) never spins on it.
    """

    resolution: float

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> datetime:
        """The current time as an aware UTC datetime."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline`` (at once if it already is)."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic`` and the event loop's timers."""

    resolution = 0.001

    #: Monotonic seconds (``time.monotonic`` itself: read on every hold operation).
    now = staticmethod(time.monotonic)

    def wall(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        # sleep(0) still yields, so a caller in a loop never starves the event loop
        await anyio.sleep(delay if delay > 0 else 0)

    def __repr__(self) -> str:
        return "SystemClock()"
