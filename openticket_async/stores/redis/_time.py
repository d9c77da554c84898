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
  the queues (``next_due``) and every claim's answer carry Redis's ``TIME``:
  each is a *sample* of the skew, taken halfway through the call, so off by at
  most half that call's round trip. A slow round trip (a loaded Redis, a long
  pipeline, a GC pause) gives a worse sample, so the skew follows the best
  recent one (:class:`SkewFilter`, NTP's clock filter made small): the sample
  with the shortest round trip of the last ``WINDOW`` seconds, a newer one
  taking over when it is nearly as fast. The skew is thus off by at most half
  the fastest round trip of the last 8 s, plus the clocks' drift in that time.
  A stepped local clock (NTP) is followed at the first sample that contradicts
  the older ones, which are then dropped: on a LAN, any step over a few
  milliseconds at the next poll; and any step within ``WINDOW`` (8 s), once
  the samples from before it have left the window. On a cluster it is the
  clock of shard 0's primary.

Bound to a clock that is not real time (a FakeClock in tests, or real time sped
up) there is no shared clock to follow: the store's own wall time is the lease
clock and the skew stays 0, as the scripts' ``lease now`` argument then says.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, NamedTuple

from ..._clock import Clock, SystemClock
from ..._exceptions import UsageError
from ._link import Client, Link

__all__ = ["FleetClock", "Sample", "SkewFilter"]

#: Seconds a sample may stay the best. Long enough to span many samples (a poll
#: every 0.5 s reads TIME, and its claims do too), so that a few seconds of slow
#: round trips still leave a fast sample to keep; short enough that two clocks
#: drifting apart at 100 ppm (an undisciplined quartz clock) move by under
#: ``MARGIN`` meanwhile, so a kept sample is still as good as its round trip says.
WINDOW = 8.0
#: The window is kept as this many slots of ``WINDOW / SLOTS`` seconds, each the
#: best sample of its slot (NTP keeps eight): memory stays bounded however
#: often samples come, and the best of a slot outlives the slower ones after it.
SLOTS = 8
#: A newer sample at most this much slower than the best one replaces it: its
#: offset is at most a quarter millisecond less certain, and it has drifted less.
NEAR = 0.0005
#: How far two samples of one unmoved pair of clocks may disagree beyond their
#: round trips: TIME's microseconds and ``WINDOW`` of drift at 100 ppm (0.8 ms).
MARGIN = 0.001


class Sample(NamedTuple):
    """One reading of the skew: a call's ``round_trip`` (s), the ``offset`` (Redis's
    time minus the local wall time halfway through the call) and the local
    monotonic time ``at`` at which it was taken."""

    round_trip: float
    offset: float
    at: float

    def agrees(self, other: Sample) -> bool:
        """Whether both can be right about one pair of clocks.

        Redis read its time somewhere inside the call, so the true offset is
        within half a round trip of each sample's; two samples whose ranges
        are apart (beyond ``MARGIN``) mean that a clock stepped in between.
        """
        return abs(self.offset - other.offset) <= (
            (self.round_trip + other.round_trip) / 2 + MARGIN
        )


def _slot(sample: Sample) -> int:
    return int(sample.at // (WINDOW / SLOTS))


class SkewFilter:
    """The skew from the best recent sample: pure, it reads no clock.

    :meth:`add` keeps, per slot of the last ``WINDOW`` seconds, the sample with
    the shortest round trip, and chooses the newest kept sample within ``NEAR``
    of the shortest one. Samples that the newest one contradicts are dropped:
    a clock stepped since they were taken.
    """

    def __init__(self) -> None:
        """No sample yet."""
        self._kept: deque[Sample] = deque(maxlen=SLOTS)
        self._best: Sample | None = None

    def __len__(self) -> int:
        """How many samples are kept (at most ``SLOTS``)."""
        return len(self._kept)

    @property
    def best(self) -> Sample | None:
        """The sample the skew comes from (None before the first)."""
        return self._best

    def add(self, sample: Sample) -> Sample | None:
        """Take ``sample`` into account; return :attr:`best` after it.

        A sample with a negative round trip (the local clock stepped back
        during its call) says nothing and is ignored.
        """
        if not sample.round_trip >= 0:
            return self._best
        kept = [old for old in self._kept
                if sample.at - old.at < WINDOW and old.agrees(sample)]
        if kept and _slot(kept[-1]) == _slot(sample):
            if sample.round_trip <= kept[-1].round_trip:
                kept[-1] = sample
        else:
            kept.append(sample)
        self._kept = deque(kept, maxlen=SLOTS)
        fastest = min(old.round_trip for old in kept)
        self._best = next(old for old in reversed(kept) if old.round_trip <= fastest + NEAR)
        return self._best


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
        self._samples = SkewFilter()
        self._synced = False
        self._syncing = asyncio.Lock()  # many first saves at once measure once

    def bind(self, clock: Clock) -> None:
        """Follow ``clock``: Redis's TIME if it is real time, its own wall time otherwise."""
        self._clock = clock
        self.real = isinstance(clock, SystemClock)
        self._synced = not self.real
        self.skew = 0.0
        self._samples = SkewFilter()

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
        """Sample the skew from Redis's time read by a call sent and answered at these
        walls; the skew follows the best recent sample (see :class:`SkewFilter`)."""
        if not self.real or self._clock is None:
            return
        best = self._samples.add(
            Sample(answered - sent, float(redis_now) - (sent + answered) / 2, self._clock.now())
        )
        if best is not None:
            self.skew = best.offset
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
