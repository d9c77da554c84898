"""The fleet clock's skew follows the best recent sample, not the latest one.

The rules are those of :class:`SkewFilter`, fed plain numbers: round trips,
offsets and local monotonic times, no clock. One test then runs them through
a RedisStore on a real redis-server, with a slow round trip made on purpose.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from types import TracebackType
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from openticket_async import Hold, HoldPolicy, SystemClock
from openticket_async.stores.redis import RedisStore
from openticket_async.stores.redis._time import NEAR, SLOTS, WINDOW, Sample, SkewFilter

#: A fast round trip on a LAN, and one of a loaded Redis (seconds).
FAST, SLOW = 0.0002, 0.040
#: The skew before the tests' clock steps, and the step (seconds).
OFFSET, STEP = 3.0, 20.0


def started(*samples: Sample) -> SkewFilter:
    """A filter that has taken ``samples``, in order."""
    skew = SkewFilter()
    for sample in samples:
        skew.add(sample)
    return skew


def test_a_slow_sample_does_not_move_the_skew() -> None:
    skew = started(Sample(FAST, OFFSET, at=100.0))
    # Redis read its time early in a slow call: the midpoint is off by most of half of it
    best = skew.add(Sample(SLOW, OFFSET + SLOW / 2 - FAST, at=101.5))
    assert best is not None
    assert best.offset == OFFSET


def test_a_faster_sample_moves_the_skew() -> None:
    skew = started(Sample(SLOW, OFFSET + 0.01, at=100.0))
    best = skew.add(Sample(FAST, OFFSET, at=100.5))
    assert best is not None
    assert best.offset == OFFSET


def test_a_newer_sample_nearly_as_fast_as_the_best_takes_over() -> None:
    skew = started(Sample(FAST, OFFSET, at=100.0))
    best = skew.add(Sample(FAST + NEAR, OFFSET + 0.0001, at=103.0))
    assert best is not None
    assert best.offset == OFFSET + 0.0001


def test_a_step_is_followed_at_the_first_sample_that_contradicts_the_kept_ones() -> None:
    skew = started(Sample(FAST, OFFSET, at=100.0), Sample(FAST, OFFSET, at=100.5))
    # the local clock stepped 20 s ahead: Redis is now 20 s less ahead of it;
    # the first sample after the step is a slow one, and still wins
    best = skew.add(Sample(SLOW, OFFSET - STEP, at=101.0))
    assert best is not None
    assert best.offset == OFFSET - STEP


def test_a_step_within_the_slow_samples_uncertainty_is_followed_within_the_window() -> None:
    small_step = SLOW / 4  # slow samples cannot tell it from their own error
    before = Sample(FAST, OFFSET, at=100.0)
    skew = started(before, *(Sample(SLOW, OFFSET - small_step, at=100.0 + n)
                             for n in range(1, int(WINDOW))))
    best = skew.add(Sample(SLOW, OFFSET - small_step, at=before.at + WINDOW))
    assert best is not None
    assert best.offset == OFFSET - small_step


def test_the_kept_samples_stay_bounded_however_many_come() -> None:
    skew = SkewFilter()
    # a thousand samples a second for 20 s, their round trips all over the place
    for n in range(20_000):
        skew.add(Sample(FAST * (1 + n * 7919 % 13), OFFSET, at=100.0 + n / 1000))
    assert len(skew) <= SLOTS


def test_a_sample_whose_round_trip_is_negative_is_ignored() -> None:
    skew = started(Sample(FAST, OFFSET, at=100.0))
    # the local clock stepped back while the call ran: its midpoint means nothing
    best = skew.add(Sample(-STEP, OFFSET + STEP / 2, at=100.5))
    assert best is not None
    assert best.offset == OFFSET


# -- through a RedisStore on a real redis-server ------------------------------------------


class LateClock(SystemClock):
    """Real time whose wall clock reads ``late`` seconds behind until reset; its
    monotonic time stands still, so no window passes however slow the machine is."""

    def __init__(self) -> None:
        self.late = 0.0
        self._monotonic = time.monotonic()

    def now(self) -> float:  # type: ignore[override]
        return self._monotonic

    def wall(self) -> datetime:
        return super().wall() - timedelta(seconds=self.late)


class Relay:
    """A TCP relay on 127.0.0.1 to the test's redis-server that runs a hook once,
    just before it forwards the next request."""

    def __init__(self, redis_url: str) -> None:
        self._target = urlsplit(redis_url)
        self._hook: Callable[[], None] | None = None
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}{self._target.path}"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def before_next_request(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the next request arrives, before Redis gets it."""
        self._hook = hook

    async def _serve(self, client: asyncio.StreamReader, answer: asyncio.StreamWriter) -> None:
        upstream, ask = await asyncio.open_connection(self._target.hostname, self._target.port)
        await asyncio.gather(self._pipe(client, ask, requests=True),
                             self._pipe(upstream, answer, requests=False))

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *,
                    requests: bool) -> None:
        try:
            while data := await source.read(65536):
                if requests and self._hook is not None:
                    hook, self._hook = self._hook, None
                    hook()
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass  # the other side went away: the store closed
        finally:
            sink.close()


def a_hold() -> Hold:
    now = time.monotonic()
    return Hold(id=uuid.uuid4().hex, cart_id="cart-clock", shop_guid="shop",
                ticket_guid="ticket", reservation=None, created_at=now)


@pytest_asyncio.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    async with Relay(redis_url) as made:
        yield made


@pytest.mark.redis
@pytest.mark.asyncio
async def test_a_slow_round_trip_leaves_the_due_times_where_the_fast_ones_put_them(
    relay: Relay, redis_prefix: str,
) -> None:
    clock = LateClock()
    store = RedisStore(relay.url, prefix=redis_prefix)
    store.bind(clock, HoldPolicy())
    try:
        await store.save(a_hold(), "warn", clock.wall().timestamp() + 60.0)
        fast = await store.next_due()
        # the next poll's read is sent at a wall time 2 s late and reaches Redis
        # at the true one: to this store, a 2 s round trip with TIME read at its end
        clock.late = 2.0
        relay.before_next_request(lambda: setattr(clock, "late", 0.0))
        slow = await store.next_due()
    finally:
        await store.aclose()
    assert clock.late == 0.0  # the slow read did go through the relay
    assert fast is not None
    assert slow == fast
