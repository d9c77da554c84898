"""Clocks for tests and demos: virtual time you move by hand, and real time sped up.

Theory of operation of :class:`FakeClock`
-----------------------------------------
Time stands still until a test calls :meth:`FakeClock.advance`. Each
``sleep_until`` parks a future in a heap keyed by ``(deadline, seq)``. ``advance``
pops the earliest due sleeper, sets ``now()`` to exactly its deadline, wakes it
(and every other sleeper due at that same instant, in the order they went to
sleep), then *settles*: lets the woken tasks run until everything is blocked
again. Only then does it look at the heap again, so a woken task that goes back to
sleep before the target is woken within the same ``advance``, at its own deadline.

"Everything is blocked" is judged in two ways:

1. the event loop has no ready callbacks for several passes in a row, and
2. no registered :class:`BusyProbe` (the fake server registers one) reports work
   in progress.

The second matters because a task waiting on a loopback socket looks blocked to
the event loop while its request is still being served. Without the probe, time
would jump past a renewal that is still on the wire. A server must not count a
request that waits on *this* clock (a virtual delay) as busy, or time could never
move on.

Invariants: ``now()`` never decreases; a sleeper is woken at most once and never
before its deadline; sleepers are woken in ``(deadline, seq)`` order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio.lowlevel

from .._clock import BusyProbe
from .._config import seconds
from .._exceptions import InvalidArgument, UsageError

__all__ = ["BusyProbe", "FakeClock", "ScaledClock"]

#: Passes in a row with nothing ready before the loop counts as settled. Loopback
#: I/O (a request reaching the server, a response reaching the client) shows up as
#: ready callbacks within a pass or two; the margin makes that robust.
_QUIET_PASSES = 5
#: Without access to the loop's ready queue (uvloop), settle on pass count alone.
_BLIND_PASSES = 50
#: Heap entries left behind by cancelled sleepers before the heap is rebuilt.
_COMPACT_AFTER = 64


class _Sleeper:
    __slots__ = ("deadline", "future", "seq")

    def __init__(self, deadline: float, seq: int, future: asyncio.Future[None]) -> None:
        self.deadline = deadline
        self.seq = seq
        self.future = future

    def __lt__(self, other: _Sleeper) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)


class FakeClock:
    """Virtual time for tests: it only moves when you :meth:`advance` it.

    Satisfies :class:`openticket_async.Clock`. ``now()`` starts at ``start``;
    ``wall()`` is ``wall_start`` plus the virtual time elapsed since then. Give the
    same instance to the fake server, the client and the manager, and an 8-minute
    reservation lifecycle runs in milliseconds.

    ``settle_timeout`` bounds (in real seconds) how long settling waits for a busy
    probe; ``max_settle_passes`` bounds how many event-loop passes one settle may
    take. Past either, settling raises :class:`~openticket_async.UsageError`
    instead of hanging.
    """

    resolution = 1e-6

    def __init__(
        self,
        start: float = 1000.0,
        wall_start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        *,
        settle_timeout: float = 15.0,
        max_settle_passes: int = 100_000,
    ) -> None:
        if wall_start.tzinfo is None:
            raise InvalidArgument("wall_start must be an aware datetime")
        self._start = float(start)
        self._now = float(start)
        self._wall_start = wall_start.astimezone(UTC)
        self._settle_timeout = settle_timeout
        self._max_settle_passes = max_settle_passes
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()
        self._cancelled = 0
        self._probes: list[BusyProbe] = []
        self._advancing = False

    def now(self) -> float:
        """The current virtual time in seconds."""
        return self._now

    def wall(self) -> datetime:
        """``wall_start`` plus the virtual time elapsed since ``start``."""
        return self._wall_start + timedelta(seconds=self._now - self._start)

    async def sleep_until(self, deadline: float) -> None:
        """Return once the clock has been advanced to ``deadline``.

        Always yields to the event loop at least once, even when the deadline is
        already due. Raises :class:`~openticket_async.InvalidArgument` for a NaN
        deadline.
        """
        if math.isnan(deadline):
            raise InvalidArgument("deadline must be a number, got NaN")
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(deadline, next(self._seq), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.cancelled():
                self._forget_cancelled()
            raise

    async def advance(self, duration: float | timedelta) -> None:
        """Move time forward by ``duration`` (seconds or timedelta); see :meth:`advance_to`.

        Raises :class:`~openticket_async.InvalidArgument` for a negative duration.
        """
        step = seconds(duration)
        if step < 0:
            raise InvalidArgument(f"cannot advance by a negative duration ({step})")
        await self.advance_to(self._now + step)

    async def advance_to(self, target: float) -> None:
        """Move time forward to ``target``, waking due sleepers in deadline order.

        First settles; then, for each sleeper due by ``target`` (including those
        that fall asleep during this call), steps ``now()`` to its deadline, wakes
        it and settles again. Ends with ``now() == target``.

        Raises :class:`~openticket_async.InvalidArgument` if ``target`` is in the
        past, :class:`~openticket_async.UsageError` if another advance is running
        or the system never settles.
        """
        if math.isnan(target) or target < self._now:
            raise InvalidArgument(f"cannot move time back from {self._now} to {target}")
        if self._advancing:
            raise UsageError("FakeClock.advance is already running in another task")
        self._advancing = True
        try:
            await self.settle()
            while self._wake_next(target):
                await self.settle()
            self._now = target
        finally:
            self._advancing = False

    async def settle(self) -> None:
        """Let every task run until all are blocked and no probe is busy.

        Raises :class:`~openticket_async.UsageError` if that does not happen
        within ``max_settle_passes`` loop passes, or a probe stays busy for
        ``settle_timeout`` real seconds.
        """
        loop = asyncio.get_running_loop()
        # The ready queue is private to asyncio's loop; without it (uvloop) we fall
        # back to a fixed number of passes.
        ready = getattr(loop, "_ready", None)
        needed = _QUIET_PASSES if ready is not None else _BLIND_PASSES
        quiet = 0
        for _ in range(self._max_settle_passes):
            await asyncio.sleep(0)
            busy = [probe for probe in self._probes if probe.busy()]
            if busy:
                quiet = 0
                await self._wait_probes(busy)
            elif ready:
                quiet = 0
            else:
                quiet += 1
                if quiet >= needed:
                    return
        raise UsageError(
            f"the event loop did not settle within {self._max_settle_passes} passes: "
            "some task keeps running without blocking"
        )

    def add_busy_probe(self, probe: BusyProbe) -> None:
        """Make settling also wait until ``probe`` is idle (the fake server does this)."""
        self._probes.append(probe)

    def remove_busy_probe(self, probe: BusyProbe) -> None:
        """Undo :meth:`add_busy_probe`; unknown probes are ignored."""
        if probe in self._probes:
            self._probes.remove(probe)

    async def _wait_probes(self, probes: list[BusyProbe]) -> None:
        try:
            async with asyncio.timeout(self._settle_timeout):
                for probe in probes:
                    await probe.wait_idle()
        except TimeoutError:
            raise UsageError(
                f"a busy probe stayed busy for {self._settle_timeout} s of real time "
                "(for the fake server: a request was still being served)"
            ) from None

    def _wake_next(self, target: float) -> bool:
        """Step to the earliest sleeper due by ``target`` and wake all due at that instant."""
        heap = self._sleepers
        while heap and heap[0].future.done():
            heapq.heappop(heap)
            self._cancelled = max(self._cancelled - 1, 0)
        if not heap or heap[0].deadline > target:
            return False
        deadline = heap[0].deadline
        self._now = max(self._now, deadline)
        while heap and heap[0].deadline == deadline:
            sleeper = heapq.heappop(heap)
            if sleeper.future.done():
                self._cancelled = max(self._cancelled - 1, 0)
            else:
                sleeper.future.set_result(None)
        return True

    def _forget_cancelled(self) -> None:
        # Cancelled sleepers stay in the heap until popped; rebuild it when they
        # pile up (a scheduler that re-plans often cancels many sleeps).
        self._cancelled += 1
        if self._cancelled > _COMPACT_AFTER and self._cancelled * 2 > len(self._sleepers):
            self._sleepers = [s for s in self._sleepers if not s.future.done()]
            heapq.heapify(self._sleepers)
            self._cancelled = 0

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleepers={len(self._sleepers) - self._cancelled})"


class ScaledClock:
    """Real time sped up by ``speed``, for demos: an 8-minute drop in 8 seconds at 60x.

    ``now()`` is ``start`` plus the real time elapsed since creation times
    ``speed``; ``sleep_until`` sleeps the matching (shorter) real time.
    ``real_time`` is the underlying monotonic source (a seam for tests).
    Raises :class:`~openticket_async.InvalidArgument` if ``speed`` is not positive.
    """

    def __init__(
        self,
        speed: float = 60.0,
        *,
        start: float = 1000.0,
        wall_start: datetime | None = None,
        real_time: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0 or math.isinf(speed):
            raise InvalidArgument(f"speed must be a positive number, got {speed!r}")
        self.speed = float(speed)
        # A real timer wakes about 1 ms late at worst; that is `speed` ms here.
        self.resolution = 0.001 * self.speed
        self._start = float(start)
        self._real_time = real_time
        self._origin = real_time()
        self._wall_start = (wall_start or datetime.now(UTC)).astimezone(UTC)

    def now(self) -> float:
        """``start`` plus the scaled real time elapsed since creation."""
        return self._start + (self._real_time() - self._origin) * self.speed

    def wall(self) -> datetime:
        """``wall_start`` plus the scaled time elapsed."""
        return self._wall_start + timedelta(seconds=self.now() - self._start)

    async def sleep_until(self, deadline: float) -> None:
        """Sleep the real time it takes this clock to reach ``deadline``.

        Always yields at least once. Raises
        :class:`~openticket_async.InvalidArgument` for a NaN deadline.
        """
        if math.isnan(deadline):
            raise InvalidArgument("deadline must be a number, got NaN")
        await anyio.lowlevel.checkpoint()
        # Timers may fire a hair early; loop until the scaled time has truly passed.
        while (remaining := deadline - self.now()) > 0:  # noqa: ASYNC110 (no event to wait on)
            await anyio.sleep(remaining / self.speed)

    def add_busy_probe(self, probe: BusyProbe) -> None:
        """Accept ``probe`` and ignore it: real time moves on whatever is on the wire."""
        del probe

    def remove_busy_probe(self, probe: BusyProbe) -> None:
        """Undo :meth:`add_busy_probe` (nothing to undo)."""
        del probe

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self.speed!r})"
