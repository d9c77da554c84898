"""The fleet's clock: Redis's own ``TIME``, seen from one store.

Workers on several hosts read several wall clocks, and a worker whose clock runs
ahead would see the others' leases as lapsed and their due times as past. So
every time a RedisStore writes to Redis (due times, leases, a record's deadline)
is on *Redis's* clock, and a lease is checked against it inside the scripts:

- The scripts read ``TIME`` themselves for every lease (claims, heartbeats,
  checkout claims): a lease's start and its lapse are judged by one clock, so a
  worker's own skew cannot steal or keep a claim.
- Due times come from the manager's clock; the store shifts them by its
  *skew* (Redis's time minus this process's wall time). Every poll's read of
  the queues (``next_due``) and every claim's answer carry Redis's ``TIME``,
  and the skew is taken from it and the local wall time halfway through the
  call, so it is off by at most half a round trip, and follows a stepped local
  clock within one poll. On a cluster it is the clock of shard 0's primary.

Bound to a clock that is not real time (a FakeClock in tests, or real time sped
up) there is no shared clock to follow: the store's own wall time is the lease
clock and the skew stays 0, as the scripts' ``lease now`` argument then says.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..._clock import Clock, SystemClock
from ..._exceptions import UsageError
from ._link import Client, Link

__all__ = ["FleetClock"]


class FleetClock:
    """One store's view of Redis's clock; ``bind`` it to the manager's clock first."""

    def __init__(self, client: Client, link: Link) -> None:
        self._client = client
        self._link = link
        self._clock: Clock | None = None
        #: Whether the bound clock is real time (then Redis's TIME is the lease clock).
        self.real = False
        #: Redis's time minus this process's wall time, in seconds.
        self.skew = 0.0
        self._synced = False
        self._syncing = asyncio.Lock()  # many first saves at once measure once

    def bind(self, clock: Clock) -> None:
        """Follow ``clock``: Redis's TIME if it is real time, its own wall time otherwise."""
        self._clock = clock
        self.real = isinstance(clock, SystemClock)
        self._synced = not self.real
        self.skew = 0.0

    def times(self) -> tuple[float, float]:
        """(now on Redis's clock in epoch seconds, offset from the bound clock to it).

        Raises UsageError until the store is bound.
        """
        if self._clock is None:
            raise UsageError("bind the RedisStore to a clock first (the manager does)")
        wall, mono = self._clock.wall().timestamp(), self._clock.now()
        return wall + self.skew, wall + self.skew - mono

    def lease_now(self, now: float | None = None) -> str:
        """The scripts' ``lease now`` argument: empty for Redis's TIME.

        On a virtual clock, ``now`` (a claim's time; None: the clock's now).
        """
        if self.real:
            return ""
        return repr(self.times()[0] if now is None else now)

    def local_wall(self) -> float:
        """This process's wall time (epoch seconds), for :meth:`observe`."""
        return self.times()[0] - self.skew

    def observe(self, redis_now: Any, sent: float, answered: float) -> None:
        """Take the skew from Redis's time read by a call sent and answered at these walls."""
        if self.real:
            self.skew = float(redis_now) - (sent + answered) / 2
            self._synced = True

    async def sync(self) -> None:
        """Measure the skew once if no call did yet (before a first write).

        Raises StoreUnavailable if Redis is unreachable.
        """
        if self._synced:
            return
        async with self._syncing:
            if not self.real or self.skew_known():  # another first save measured it
                return
            sent = self.local_wall()
            seconds, micros = await self._link.call(self._client.time())
            self.observe(seconds + micros / 1e6, sent, self.local_wall())

    def skew_known(self) -> bool:
        """Whether a call has measured the skew yet (always, off real time)."""
        return self._synced
