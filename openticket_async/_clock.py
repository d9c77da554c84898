"""Where time comes from.

Everything in the SDK that waits or timestamps goes through a :class:`Clock`, so
an 8-minute reservation lifecycle can run on virtual time in tests
(``openticket_async.testing.FakeClock``) and on real time in production
(:class:`SystemClock`). ``now()`` is monotonic seconds; ``wall()`` is the matching
aware UTC datetime, used only to stamp values shown to people.

Busy probes are the one seam between a clock and I/O it cannot see. A virtual
clock (``FakeClock``) moves time only once every task is blocked, but a task
awaiting a socket looks blocked while the other end is still working on its
request. Whoever does such I/O (the fake server, ``RedisStore``'s commands)
hands the clock a :class:`BusyProbe` through :meth:`Clock.add_busy_probe`, and
the virtual clock waits for it before moving on. It is declared on the protocol,
not probed for, so code that registers a probe needs no knowledge of the test
kit: a real clock, whose time moves anyway, accepts the probe and ignores it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["BusyProbe", "Clock", "SystemClock"]


class BusyProbe(Protocol):
    """Something outside the event loop's view that can still be working.

    The fake server implements it: ``busy()`` is true while it is serving a
    request (from receipt until the response is written), except while that
    request waits on the clock itself. So does RedisStore's link, while one of
    its commands is on the wire.
    """

    def busy(self) -> bool:
        """Whether work is in progress right now."""
        ...

    async def wait_idle(self) -> None:
        """Return once ``busy()`` is false."""
        ...


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

    def add_busy_probe(self, probe: BusyProbe) -> None:
        """Do not move time on while ``probe`` is busy (a real clock ignores it)."""
        ...

    def remove_busy_probe(self, probe: BusyProbe) -> None:
        """Undo :meth:`add_busy_probe`; unknown probes are ignored."""
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

    def add_busy_probe(self, probe: BusyProbe) -> None:
        del probe  # real time moves on whatever is on the wire: nothing to wait for

    def remove_busy_probe(self, probe: BusyProbe) -> None:
        del probe

    def __repr__(self) -> str:
        return "SystemClock()"
