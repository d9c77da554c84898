"""FakeClock and ScaledClock: virtual time, wake order, settling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from openticket_async import Clock, InvalidArgument, SystemClock, UsageError
from openticket_async.testing import FakeClock, FakeOpenTicket, ScaledClock


def test_fake_clock_starts_at_its_start_and_wall_start() -> None:
    clock = FakeClock(start=50.0, wall_start=datetime(2030, 5, 1, 12, tzinfo=UTC))
    assert clock.now() == 50.0
    assert clock.wall() == datetime(2030, 5, 1, 12, tzinfo=UTC)
    assert isinstance(clock, Clock)


def test_fake_clock_refuses_a_naive_wall_start() -> None:
    with pytest.raises(InvalidArgument):
        FakeClock(wall_start=datetime(2026, 1, 1))  # naive on purpose


@pytest.mark.asyncio
async def test_advance_moves_now_and_wall_together() -> None:
    clock = FakeClock()
    await clock.advance(timedelta(minutes=8))
    assert clock.now() == 1480.0
    assert clock.wall() == datetime(2026, 1, 1, 0, 8, tzinfo=UTC)
    await clock.advance_to(1500.5)
    assert clock.now() == 1500.5


@pytest.mark.asyncio
async def test_sleep_until_a_due_deadline_still_yields_to_the_loop() -> None:
    clock = FakeClock()
    ran: list[str] = []
    asyncio.get_running_loop().call_soon(ran.append, "other")
    await clock.sleep_until(clock.now())
    assert ran == ["other"]


@pytest.mark.asyncio
async def test_sleepers_wake_in_deadline_order_seeing_their_deadline() -> None:
    clock = FakeClock(start=0.0)
    woken: list[tuple[str, float]] = []

    async def sleeper(name: str, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woken.append((name, clock.now()))

    tasks = [
        asyncio.create_task(sleeper(name, deadline))
        for name, deadline in [("c", 30.0), ("a", 10.0), ("b", 20.0), ("late", 99.0)]
    ]
    await clock.advance(60)
    assert woken == [("a", 10.0), ("b", 20.0), ("c", 30.0)]
    assert clock.now() == 60.0
    assert not tasks[3].done()
    await clock.advance_to(99.0)
    assert woken[-1] == ("late", 99.0)
    await asyncio.gather(*tasks)


@pytest.mark.asyncio
async def test_sleepers_with_the_same_deadline_wake_in_the_order_they_slept() -> None:
    clock = FakeClock(start=0.0)
    woken: list[int] = []

    async def sleeper(index: int) -> None:
        await clock.sleep_until(5.0)
        woken.append(index)

    tasks = [asyncio.create_task(sleeper(index)) for index in range(5)]
    await clock.advance(5)
    assert woken == [0, 1, 2, 3, 4]
    await asyncio.gather(*tasks)


@pytest.mark.asyncio
async def test_a_task_sleeping_again_inside_the_window_is_woken_in_the_same_advance() -> None:
    clock = FakeClock(start=0.0)
    seen: list[float] = []

    async def renewer() -> None:
        deadline = 10.0
        while deadline <= 100.0:
            await clock.sleep_until(deadline)
            seen.append(clock.now())
            deadline = clock.now() + 25.0

    async def other() -> None:
        await clock.sleep_until(40.0)
        seen.append(-clock.now())

    tasks = [asyncio.create_task(renewer()), asyncio.create_task(other())]
    await clock.advance(70)
    # 35 fires before 40, and 60 (scheduled at 35) fires within this advance too.
    assert seen == [10.0, 35.0, -40.0, 60.0]
    assert clock.now() == 70.0
    await clock.advance(100)
    assert seen[-1] == 85.0
    await asyncio.gather(*tasks)


@pytest.mark.asyncio
async def test_a_cancelled_sleeper_is_never_woken() -> None:
    clock = FakeClock(start=0.0)
    woken: list[str] = []

    async def sleeper(name: str) -> None:
        await clock.sleep_until(10.0)
        woken.append(name)

    doomed = asyncio.create_task(sleeper("doomed"))
    kept = asyncio.create_task(sleeper("kept"))
    await clock.settle()
    doomed.cancel()
    await clock.advance(20)
    assert woken == ["kept"]
    assert doomed.cancelled()
    await kept


@pytest.mark.asyncio
async def test_many_cancelled_sleepers_do_not_disturb_the_wake_order() -> None:
    clock = FakeClock(start=0.0)
    woken: list[float] = []

    async def sleeper(deadline: float) -> None:
        await clock.sleep_until(deadline)
        woken.append(deadline)

    doomed = [asyncio.create_task(sleeper(1000.0 + i)) for i in range(200)]
    kept = [asyncio.create_task(sleeper(d)) for d in (3.0, 1.0, 2.0)]
    await clock.settle()
    for task in doomed:
        task.cancel()
    await clock.advance(5000)
    assert woken == [1.0, 2.0, 3.0]
    await asyncio.gather(*kept)


@pytest.mark.asyncio
async def test_advance_refuses_going_back_and_running_twice_at_once() -> None:
    clock = FakeClock(start=0.0)
    with pytest.raises(InvalidArgument):
        await clock.advance(-1)
    with pytest.raises(InvalidArgument):
        await clock.advance_to(-5.0)

    async def waker() -> None:
        await clock.sleep_until(1.0)
        await clock.advance(1)

    task = asyncio.create_task(waker())
    await clock.advance(2)
    with pytest.raises(UsageError, match="already running"):
        await task


@pytest.mark.asyncio
async def test_settle_raises_when_a_task_never_blocks() -> None:
    clock = FakeClock(max_settle_passes=200)

    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    spinner = asyncio.create_task(spin())
    try:
        with pytest.raises(UsageError, match="did not settle"):
            await clock.settle()
    finally:
        spinner.cancel()


class StuckProbe:
    """A busy probe that never becomes idle."""

    def busy(self) -> bool:
        return True

    async def wait_idle(self) -> None:
        await asyncio.Event().wait()


@pytest.mark.asyncio
async def test_settle_raises_when_a_busy_probe_never_becomes_idle() -> None:
    clock = FakeClock(settle_timeout=0.01)
    probe = StuckProbe()
    clock.add_busy_probe(probe)
    with pytest.raises(UsageError, match="stayed busy"):
        await clock.advance(1)
    clock.remove_busy_probe(probe)
    await clock.advance(1)
    assert clock.now() == 1001.0


@pytest.mark.asyncio
@pytest.mark.parametrize("make", [SystemClock, ScaledClock], ids=["system", "scaled"])
async def test_a_real_clock_accepts_a_busy_probe_and_never_waits_for_it(
    make: Callable[[], Clock],
) -> None:
    clock = make()
    probe = StuckProbe()
    clock.add_busy_probe(probe)
    await clock.sleep_until(clock.now())  # returns although the probe never becomes idle
    clock.remove_busy_probe(probe)
    clock.remove_busy_probe(probe)  # an unknown probe is ignored
    assert isinstance(clock, Clock)


@pytest.mark.asyncio
async def test_settle_waits_for_a_request_the_fake_server_is_still_serving() -> None:
    clock = FakeClock()
    async with FakeOpenTicket(clock) as fake, aiohttp.ClientSession() as http:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop)
        token = fake.issue_token()
        # A real delay keeps the request in flight on the server for real time.
        fake.faults.delay("reserve", 0.05, real=True)
        url = f"{fake.hosts.shop}/{shop.guid}/reserve/ticket/{ticket.guid}"
        headers = {"Authorization": f"Bearer {token.access_token}"}

        async def reserve() -> int:
            async with http.get(url, headers=headers) as response:
                await response.read()
                return response.status

        request = asyncio.create_task(reserve())
        await clock.settle()
        assert request.done()
        assert request.result() == 200


@pytest.mark.asyncio
async def test_advance_completes_a_request_started_by_a_woken_task() -> None:
    clock = FakeClock()
    async with FakeOpenTicket(clock) as fake, aiohttp.ClientSession() as http:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop, stock=5)
        token = fake.issue_token()
        url = f"{fake.hosts.shop}/{shop.guid}/reserve/ticket/{ticket.guid}"
        statuses: list[int] = []

        async def renew_at(deadline: float) -> None:
            await clock.sleep_until(deadline)
            async with http.get(
                url, headers={"Authorization": f"Bearer {token.access_token}"}
            ) as r:
                statuses.append(r.status)

        task = asyncio.create_task(renew_at(clock.now() + 420))
        await clock.advance(420)
        # The whole round trip happened inside the advance, at the deadline.
        assert statuses == [200]
        assert [r.reserved_at for r in fake.live_reservations()] == [1420.0]
        await task


@pytest.mark.asyncio
async def test_scaled_clock_runs_speed_times_faster_than_its_real_source() -> None:
    real = [100.0]
    wall_start = datetime(2026, 3, 1, tzinfo=UTC)
    clock = ScaledClock(speed=60.0, start=0.0, wall_start=wall_start, real_time=lambda: real[0])
    assert clock.now() == 0.0
    real[0] = 102.0
    assert clock.now() == 120.0
    assert clock.wall() == wall_start + timedelta(minutes=2)
    assert clock.resolution == pytest.approx(0.06)
    assert isinstance(clock, Clock)


@pytest.mark.asyncio
async def test_scaled_clock_sleep_until_returns_once_the_scaled_deadline_passed() -> None:
    clock = ScaledClock(speed=2000.0)
    deadline = clock.now() + 40.0  # 20 ms of real time
    await clock.sleep_until(deadline)
    assert clock.now() >= deadline


def test_scaled_clock_refuses_a_speed_that_is_not_positive() -> None:
    with pytest.raises(InvalidArgument):
        ScaledClock(speed=0)
