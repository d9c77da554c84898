"""Hold events and the dispatcher: callbacks, error isolation and bounded streams."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from openticket_async import InvalidArgument, Order, Reservation
from openticket_async._events import (
    TERMINAL_EVENTS,
    CheckedOut,
    EventDispatcher,
    EventStream,
    Expired,
    Expiring,
    HoldEvent,
    Lost,
    Released,
    RenewalFailed,
    Renewed,
    StreamOverflow,
)
from openticket_async._hold import Hold

LOGGER_NAME = "tests.events"


def make_hold(hold_id: str = "h1") -> Hold:
    return Hold(
        id=hold_id,
        cart_id="c1",
        shop_guid="11111111-1111-1111-1111-111111111111",
        ticket_guid="22222222-2222-2222-2222-222222222222",
        reservation=None,
        created_at=0.0,
    )


def make_reservation(guid: str) -> Reservation:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    return Reservation(
        guid=guid,
        shop_guid="11111111-1111-1111-1111-111111111111",
        ticket_guid="22222222-2222-2222-2222-222222222222",
        event_date_guid=None,
        products=(),
        reserved_at=moment,
        expires_at=moment,
        deadline=480.0,
    )


def expiring(hold: Hold, time_left: float = 60.0) -> Expiring:
    return Expiring(hold=hold, time_left=time_left, lateness=0.0)


@pytest.fixture
def dispatcher() -> EventDispatcher:
    return EventDispatcher(logging.getLogger(LOGGER_NAME))


async def next_item(stream: EventStream) -> HoldEvent | StreamOverflow:
    with anyio.fail_after(5):
        return await anext(stream)


async def drain(stream: EventStream) -> list[HoldEvent | StreamOverflow]:
    with anyio.fail_after(5):
        return [item async for item in stream]


# ---- event values -------------------------------------------------------------


def test_events_carry_the_same_hold_object() -> None:
    hold = make_hold()
    event = Lost(hold=hold, time_left=-1.0, lateness=0.5, reason="sold_out")

    assert event.hold is hold
    assert (event.time_left, event.lateness, event.reason) == (-1.0, 0.5, "sold_out")


def test_events_compare_by_identity() -> None:
    hold = make_hold()
    first = Released(hold=hold, time_left=1.0, lateness=0.0)
    same_fields = Released(hold=hold, time_left=1.0, lateness=0.0)

    assert first == first
    assert first != same_fields
    assert len({first, same_fields}) == 2


def test_events_are_frozen() -> None:
    event = expiring(make_hold())
    with pytest.raises(AttributeError):
        event.time_left = 0.0  # type: ignore[misc]


def test_event_fields_can_be_given_positionally_or_by_keyword() -> None:
    hold = make_hold()
    error = TimeoutError("reserve timed out")

    assert RenewalFailed(hold, 10.0, 0.0, error, True).will_retry is True
    keyword = RenewalFailed(hold=hold, time_left=10.0, lateness=0.0, error=error, will_retry=False)
    assert keyword.error is error


def test_event_repr_is_short() -> None:
    hold = make_hold()
    old, new = make_reservation("r-old"), make_reservation("r-new")
    renewed = Renewed(hold=hold, time_left=419.123456, lateness=0.0, old=old, new=new)
    checked_out = CheckedOut(hold=hold, time_left=5.0, lateness=0.0, order=Order(guid="o-1"))

    assert repr(renewed) == (
        f"Renewed(hold={hold!r}, time_left=419.123, lateness=0.000, old='r-old', new='r-new')"
    )
    assert repr(checked_out).endswith("order='o-1')")


def test_terminal_events_are_the_four_endings() -> None:
    assert set(TERMINAL_EVENTS) == {Lost, Expired, Released, CheckedOut}
    assert all(issubclass(kind, HoldEvent) for kind in TERMINAL_EVENTS)
    assert Expiring not in TERMINAL_EVENTS


# ---- callbacks ----------------------------------------------------------------


def test_sync_callback_receives_events_inline(dispatcher: EventDispatcher) -> None:
    received: list[HoldEvent] = []
    dispatcher.on(Expiring, received.append)
    event = expiring(make_hold())

    dispatcher.emit(event)

    assert received == [event]


def test_subscribing_to_hold_event_receives_every_kind(dispatcher: EventDispatcher) -> None:
    everything: list[HoldEvent] = []
    only_lost: list[Lost] = []
    dispatcher.on(HoldEvent, everything.append)
    dispatcher.on(Lost, only_lost.append)
    hold = make_hold()
    events: list[HoldEvent] = [
        expiring(hold),
        Lost(hold=hold, time_left=0.0, lateness=0.0, reason="sold_out"),
        Expired(hold=hold, time_left=0.0, lateness=0.0, reason="max_hold"),
    ]

    for event in events:
        dispatcher.emit(event)

    assert everything == events
    assert only_lost == [events[1]]


def test_unsubscribe_stops_delivery(dispatcher: EventDispatcher) -> None:
    received: list[HoldEvent] = []
    unsubscribe = dispatcher.on(HoldEvent, received.append)
    hold = make_hold()
    dispatcher.emit(expiring(hold))

    unsubscribe()
    unsubscribe()
    dispatcher.emit(expiring(hold))

    assert len(received) == 1


def test_unsubscribe_removes_only_that_subscription(dispatcher: EventDispatcher) -> None:
    received: list[HoldEvent] = []
    first = dispatcher.on(HoldEvent, received.append)
    dispatcher.on(HoldEvent, received.append)

    first()
    dispatcher.emit(expiring(make_hold()))

    assert len(received) == 1


def test_raising_sync_callback_is_logged_and_the_next_one_runs(
    dispatcher: EventDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: HoldEvent) -> None:
        raise RuntimeError("callback bug")

    received: list[HoldEvent] = []
    dispatcher.on(HoldEvent, broken)
    dispatcher.on(HoldEvent, received.append)
    event = expiring(make_hold())

    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        dispatcher.emit(event)

    assert received == [event]
    [record] = caplog.records
    assert record.name == LOGGER_NAME
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_event_emitted_from_a_callback_is_delivered_after_the_current_one(
    dispatcher: EventDispatcher,
) -> None:
    hold = make_hold()
    warning = expiring(hold)
    released = Released(hold=hold, time_left=60.0, lateness=0.0)
    seen_by_first: list[HoldEvent] = []
    seen_by_second: list[HoldEvent] = []

    def release_on_warning(event: HoldEvent) -> None:
        seen_by_first.append(event)
        if isinstance(event, Expiring):
            dispatcher.emit(released)

    dispatcher.on(HoldEvent, release_on_warning)
    dispatcher.on(HoldEvent, seen_by_second.append)
    dispatcher.emit(warning)

    assert seen_by_first == [warning, released]
    assert seen_by_second == [warning, released]


def test_subscribing_during_delivery_takes_effect_from_the_next_event(
    dispatcher: EventDispatcher,
) -> None:
    late: list[HoldEvent] = []

    def subscribe_another(event: HoldEvent) -> None:
        dispatcher.on(HoldEvent, late.append)

    unsubscribe = dispatcher.on(HoldEvent, subscribe_another)
    dispatcher.emit(expiring(make_hold()))
    unsubscribe()
    second = expiring(make_hold())
    dispatcher.emit(second)

    assert late == [second]


def test_on_rejects_a_type_that_is_not_a_hold_event(dispatcher: EventDispatcher) -> None:
    with pytest.raises(InvalidArgument):
        dispatcher.on(StreamOverflow, print)  # type: ignore[type-var]


@pytest.mark.asyncio
async def test_async_callback_runs_in_the_bound_task_group(dispatcher: EventDispatcher) -> None:
    received: list[HoldEvent] = []

    async def record(event: HoldEvent) -> None:
        await anyio.lowlevel.checkpoint()
        received.append(event)

    dispatcher.on(HoldEvent, record)
    event = expiring(make_hold())
    async with anyio.create_task_group() as tg:
        dispatcher.bind(tg.start_soon)
        dispatcher.emit(event)
        assert received == []  # emit only started it

    assert received == [event]


@pytest.mark.asyncio
async def test_async_callbacks_start_in_emission_order(dispatcher: EventDispatcher) -> None:
    started: list[float] = []

    async def record(event: HoldEvent) -> None:
        started.append(event.time_left)

    dispatcher.on(HoldEvent, record)
    hold = make_hold()
    async with anyio.create_task_group() as tg:
        dispatcher.bind(tg.start_soon)
        for n in range(20):
            dispatcher.emit(expiring(hold, time_left=float(n)))

    assert started == [float(n) for n in range(20)]


@pytest.mark.asyncio
async def test_raising_async_callback_is_logged_and_spares_the_task_group(
    dispatcher: EventDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    sibling_finished = anyio.Event()
    gate = anyio.Event()
    after: list[HoldEvent] = []

    async def broken(event: HoldEvent) -> None:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("async callback bug")

    async def opens_gate(event: HoldEvent) -> None:
        await anyio.lowlevel.checkpoint()
        after.append(event)
        gate.set()

    async def sibling() -> None:
        await gate.wait()
        sibling_finished.set()

    dispatcher.on(HoldEvent, broken)
    dispatcher.on(HoldEvent, opens_gate)
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME), anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sibling)
            dispatcher.bind(tg.start_soon)
            dispatcher.emit(expiring(make_hold()))

    assert sibling_finished.is_set()
    assert len(after) == 1
    [record] = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


@pytest.mark.asyncio
async def test_async_callback_without_a_bound_spawn_is_skipped_with_a_warning(
    dispatcher: EventDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[HoldEvent] = []
    synced: list[HoldEvent] = []

    async def record(event: HoldEvent) -> None:
        ran.append(event)

    dispatcher.on(HoldEvent, record)
    dispatcher.on(HoldEvent, synced.append)
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        dispatcher.emit(expiring(make_hold()))
    await anyio.lowlevel.checkpoint()

    assert ran == []
    assert len(synced) == 1
    [record_] = caplog.records
    assert record_.levelno == logging.WARNING


def test_failing_spawn_is_logged_and_emit_returns(
    dispatcher: EventDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    def closed_group(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        raise RuntimeError("This task group is not active")

    async def record(event: HoldEvent) -> None:
        raise AssertionError("must not run")

    dispatcher.on(HoldEvent, record)
    dispatcher.bind(closed_group)
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        dispatcher.emit(expiring(make_hold()))

    [record_] = caplog.records
    assert isinstance(record_.exc_info and record_.exc_info[1], RuntimeError)


# ---- streams ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_stream_yields_events_in_emission_order(dispatcher: EventDispatcher) -> None:
    stream = dispatcher.stream()
    hold = make_hold()
    events = [expiring(hold, time_left=float(n)) for n in range(10)]
    for event in events:
        dispatcher.emit(event)

    assert [await next_item(stream) for _ in events] == events


@pytest.mark.asyncio
async def test_stream_only_sees_events_emitted_after_it_opened(
    dispatcher: EventDispatcher,
) -> None:
    hold = make_hold()
    dispatcher.emit(expiring(hold, 1.0))
    stream = dispatcher.stream()
    later = expiring(hold, 2.0)
    dispatcher.emit(later)
    dispatcher.close()

    assert await drain(stream) == [later]


@pytest.mark.asyncio
async def test_waiting_reader_wakes_on_emit(dispatcher: EventDispatcher) -> None:
    stream = dispatcher.stream()
    received: list[HoldEvent | StreamOverflow] = []

    async def read_one() -> None:
        received.append(await next_item(stream))

    event = expiring(make_hold())
    async with anyio.create_task_group() as tg:
        tg.start_soon(read_one)
        await anyio.wait_all_tasks_blocked()
        assert received == []
        dispatcher.emit(event)

    assert received == [event]


@pytest.mark.asyncio
async def test_overflow_drops_the_oldest_and_reports_the_exact_count(
    dispatcher: EventDispatcher,
) -> None:
    stream = dispatcher.stream(maxlen=3)
    hold = make_hold()
    events = [expiring(hold, time_left=float(n)) for n in range(8)]
    for event in events:
        dispatcher.emit(event)
    dispatcher.close()

    assert await drain(stream) == [StreamOverflow(dropped=5), *events[5:]]


@pytest.mark.asyncio
async def test_overflow_count_resets_after_it_is_reported(dispatcher: EventDispatcher) -> None:
    stream = dispatcher.stream(maxlen=2)
    hold = make_hold()
    for n in range(4):
        dispatcher.emit(expiring(hold, float(n)))
    assert await next_item(stream) == StreamOverflow(dropped=2)
    assert await next_item(stream) is not None

    more = [expiring(hold, float(n)) for n in range(10, 13)]
    for event in more:
        dispatcher.emit(event)
    dispatcher.close()

    assert await drain(stream) == [StreamOverflow(dropped=2), *more[1:]]


def test_emit_never_blocks_on_a_reader_that_never_reads(dispatcher: EventDispatcher) -> None:
    stream = dispatcher.stream(maxlen=8)
    hold = make_hold()

    # No event loop runs here: if emit waited for the reader, this would hang.
    for n in range(10_000):
        dispatcher.emit(expiring(hold, float(n)))

    assert repr(stream) == "<EventStream open queued=8 dropped=9992>"


@pytest.mark.asyncio
async def test_close_ends_streams_after_they_drain(dispatcher: EventDispatcher) -> None:
    stream = dispatcher.stream()
    hold = make_hold()
    events = [expiring(hold, 1.0), Released(hold=hold, time_left=1.0, lateness=0.0)]
    for event in events:
        dispatcher.emit(event)

    dispatcher.close()
    dispatcher.emit(expiring(hold, 0.5))

    assert await drain(stream) == events


@pytest.mark.asyncio
async def test_close_wakes_a_waiting_reader(dispatcher: EventDispatcher) -> None:
    stream = dispatcher.stream()
    finished = anyio.Event()

    async def read_all() -> None:
        await drain(stream)
        finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_all)
        await anyio.wait_all_tasks_blocked()
        dispatcher.close()

    assert finished.is_set()


@pytest.mark.asyncio
async def test_stream_opened_after_close_is_already_ended(dispatcher: EventDispatcher) -> None:
    dispatcher.close()

    assert await drain(dispatcher.stream()) == []


@pytest.mark.asyncio
async def test_leaving_the_stream_block_detaches_it(dispatcher: EventDispatcher) -> None:
    hold = make_hold()
    async with dispatcher.stream() as stream:
        first = expiring(hold, 1.0)
        dispatcher.emit(first)
        assert await next_item(stream) is first
        dispatcher.emit(expiring(hold, 2.0))

    dispatcher.emit(expiring(hold, 3.0))

    assert await drain(stream) == []


def test_stream_rejects_a_maxlen_below_one(dispatcher: EventDispatcher) -> None:
    with pytest.raises(InvalidArgument):
        dispatcher.stream(maxlen=0)


@pytest.mark.asyncio
async def test_every_stream_gets_every_event(dispatcher: EventDispatcher) -> None:
    streams = [dispatcher.stream(), dispatcher.stream()]
    hold = make_hold()
    events = [expiring(hold, float(n)) for n in range(3)]
    for event in events:
        dispatcher.emit(event)
    dispatcher.close()

    for stream in streams:
        assert await drain(stream) == events


@pytest.mark.asyncio
async def test_wants_says_whether_an_event_kind_would_reach_anyone(
    dispatcher: EventDispatcher,
) -> None:
    assert not dispatcher.wants(Released)
    stop_terminal = dispatcher.on(Lost, lambda event: None)
    assert dispatcher.wants(Lost)
    assert not dispatcher.wants(Released)
    stop_all = dispatcher.on(HoldEvent, lambda event: None)
    assert dispatcher.wants(Released)  # a subscription to the base class takes every kind
    stop_all()
    assert not dispatcher.wants(Released)
    stop_terminal()
    assert not dispatcher.wants(Lost)
    async with dispatcher.stream() as _stream:
        assert dispatcher.wants(Released)  # an open stream takes every event
    assert not dispatcher.wants(Released)
