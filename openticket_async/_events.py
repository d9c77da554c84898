"""Hold events and the dispatcher that delivers them safely.

Events are frozen values. Each carries the very :class:`~openticket_async.Hold`
object the application holds (events compare by identity, like the hold), the time
the hold's current reservation has left and how late the event fired.

The :class:`EventDispatcher` hands every event to the subscribed callbacks and to
every open :class:`EventStream`. Its one promise to the scheduler that emits: emit
never raises, never blocks and never awaits. Sync callbacks run inline with their
errors logged; async callbacks run as tasks in the manager's task group, each
wrapped so its error is logged and never reaches the group; streams are bounded
and drop their oldest event rather than wait for a slow reader.
"""

from __future__ import annotations

import collections
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import anyio
import attrs

from ._exceptions import InvalidArgument
from ._hold import Hold
from ._models import Order, Reservation

__all__ = [
    "TERMINAL_EVENTS",
    "AtRisk",
    "Callback",
    "CheckedOut",
    "Event",
    "EventDispatcher",
    "EventStream",
    "Expired",
    "Expiring",
    "HoldEvent",
    "Lost",
    "Released",
    "Renewed",
    "RenewalFailed",
    "Spawn",
    "StreamOverflow",
]


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _guid(value: Reservation | Order) -> str:
    return repr(value.guid)


# eq=False: an event is a one-off occurrence, equal only to itself, and comparing
# field by field would compare holds, which are handles, not values.
@attrs.frozen(eq=False)
class HoldEvent:
    """Something happened to ``hold``; the base of every hold event.

    ``time_left`` is the seconds until the hold's current reservation drops (its
    local deadline; zero or less once it has). ``lateness`` is the seconds between
    when the event was due and when it fired (never negative).
    """

    hold: Hold
    time_left: float = attrs.field(repr=_seconds)
    lateness: float = attrs.field(repr=_seconds)


@attrs.frozen(eq=False)
class Expiring(HoldEvent):
    """The hold's reservation drops within ``warn_before``."""


@attrs.frozen(eq=False)
class Renewed(HoldEvent):
    """The hold moved from reservation ``old`` to the fresh reservation ``new``."""

    old: Reservation = attrs.field(repr=_guid)
    new: Reservation = attrs.field(repr=_guid)


@attrs.frozen(eq=False)
class RenewalFailed(HoldEvent):
    """A renewal attempt failed with ``error``; ``will_retry`` says if another follows."""

    error: BaseException
    will_retry: bool


@attrs.frozen(eq=False)
class AtRisk(HoldEvent):
    """The hold turned ``AT_RISK``: its reservation may drop before a renewal succeeds.

    ``reason`` says why (``"sold_out"``, ``"deadline"``, ``"renewal in flight at
    the deadline"``, ``"retry would pass the deadline"``). One more try follows just
    after the old reservation drops; it ends in ``Renewed`` or ``Lost``.
    """

    reason: str


@attrs.frozen(eq=False)
class Lost(HoldEvent):
    """Terminal: the ticket could not be reserved again; ``reason`` says why."""

    reason: str


@attrs.frozen(eq=False)
class Expired(HoldEvent):
    """Terminal: the hold ran out on purpose (``"max_hold"``, ``"idle"``, ``"not_renewed"``)."""

    reason: str


@attrs.frozen(eq=False)
class Released(HoldEvent):
    """Terminal: the application removed the hold, or closed its cart or the manager.

    Closing the manager releases holds only with the in-memory store: on a
    shared store they stay for the other workers.
    """


@attrs.frozen(eq=False)
class CheckedOut(HoldEvent):
    """Terminal: the hold went into ``order``."""

    order: Order = attrs.field(repr=_guid)


@attrs.frozen
class StreamOverflow:
    """Told to a stream's reader: ``dropped`` oldest events were lost since the last read."""

    dropped: int


#: The events that end a hold: exactly one of them is emitted per hold.
TERMINAL_EVENTS: tuple[type[HoldEvent], ...] = (Lost, Expired, Released, CheckedOut)

#: What callbacks receive.
Event: TypeAlias = HoldEvent

E = TypeVar("E", bound=HoldEvent)

#: A subscriber: a plain function or an async function taking the event.
#: One callable type (not a union of two), so that type checkers infer a lambda's
#: parameter as the event type the subscription names.
Callback: TypeAlias = Callable[[E], Awaitable[None] | None]

#: Starts an async function as a task in the owner's task group; what it returns is
#: ignored, so ``TaskGroup.start_soon`` itself fits.
Spawn: TypeAlias = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]


class _Subscription:
    __slots__ = ("callback", "event_type")

    def __init__(self, event_type: type[HoldEvent], callback: Callable[[Any], object]) -> None:
        self.event_type = event_type
        self.callback = callback


class _Targets(dict[type[HoldEvent], tuple[Callable[[Any], object], ...]]):
    """Event type -> the callbacks its events reach, found once per type.

    A plain dict lookup on every emit (no isinstance per subscription per event,
    no Python call once a type was seen); a type not seen yet is looked up in
    the subscriptions the table was made from.
    """

    __slots__ = ("_subscriptions",)

    def __init__(self, subscriptions: list[_Subscription]) -> None:
        super().__init__()
        self._subscriptions = subscriptions

    def __missing__(self, event_type: type[HoldEvent]) -> tuple[Callable[[Any], object], ...]:
        found = self[event_type] = tuple(
            s.callback for s in self._subscriptions if issubclass(event_type, s.event_type)
        )
        return found


class EventDispatcher:
    """Delivers hold events to callbacks and streams without ever stalling the emitter.

    Order: events reach each sync callback and each stream in the order they were
    emitted, and async callbacks are started in that order. An event emitted from
    inside a callback is queued and delivered after the event being delivered, so
    the order holds even then.
    """

    def __init__(self, logger: logging.Logger) -> None:
        """Create a dispatcher that reports callback failures to ``logger``."""
        self._logger = logger
        self._subscriptions: list[_Subscription] = []
        self._streams: dict[EventStream, None] = {}
        self._spawn: Spawn | None = None
        self._pending: collections.deque[HoldEvent] = collections.deque()
        self._delivering = False
        self._closed = False
        self._running = 0  # async callbacks started and not yet finished
        self._finished: anyio.Event | None = None  # set when _running drops to 0
        # event type -> the callbacks its events reach, in subscription order;
        # replaced (never changed in place) when the subscriptions change
        self._targets = _Targets(self._subscriptions)

    def on(self, event_type: type[E], callback: Callback[E]) -> Callable[[], None]:
        """Call ``callback`` with every event that is an instance of ``event_type``.

        Subscribe to :class:`HoldEvent` to get every event. ``callback`` may be a
        plain or an async function. Returns a function that unsubscribes (calling
        it again does nothing). Raises :class:`InvalidArgument` if ``event_type``
        is not a :class:`HoldEvent` class or ``callback`` is not callable.
        """
        if not (isinstance(event_type, type) and issubclass(event_type, HoldEvent)):
            raise InvalidArgument(f"event_type must be a HoldEvent class, got {event_type!r}")
        if not callable(callback):
            raise InvalidArgument(f"callback must be callable, got {callback!r}")
        subscription = _Subscription(event_type, callback)
        # The list is replaced, never changed in place, so a delivery in progress
        # keeps the subscribers it started with.
        self._subscriptions = [*self._subscriptions, subscription]
        self._targets = _Targets(self._subscriptions)

        def unsubscribe() -> None:
            self._subscriptions = [s for s in self._subscriptions if s is not subscription]
            self._targets = _Targets(self._subscriptions)

        return unsubscribe

    def bind(self, spawn: Spawn | None) -> None:
        """Run async callbacks through ``spawn`` from now on; None stops running them.

        Raises nothing.
        """
        self._spawn = spawn

    def wants(self, event_type: type[HoldEvent]) -> bool:
        """Whether an event of ``event_type`` would reach a callback or an open stream.

        Lets the emitter skip building events nobody receives. Raises nothing.
        """
        return bool(self._streams) or bool(self._targets[event_type])

    def emit(self, event: HoldEvent) -> None:
        """Deliver ``event`` to the matching callbacks, then to every open stream.

        Never blocks or awaits, and raises nothing a callback raises: failures are
        logged. Async callbacks are skipped, with a warning, while no spawn is bound.
        """
        if self._delivering:
            self._pending.append(event)  # delivered by the emit already running
            return
        self._delivering = True
        try:
            self._deliver(event)
            while self._pending:
                self._deliver(self._pending.popleft())
        finally:
            self._delivering = False

    def stream(self, maxlen: int = 1024) -> EventStream:
        """Open a stream of the events emitted from now on, holding at most ``maxlen``.

        After :meth:`close` the stream returned is already ended. Raises
        :class:`InvalidArgument` if ``maxlen`` is less than 1.
        """
        stream = EventStream(self, maxlen)
        if self._closed:
            stream._end()
        else:
            self._streams[stream] = None
        return stream

    def close(self) -> None:
        """End every open stream; readers get what the streams hold, then the end.

        Callbacks stay subscribed. Raises nothing.
        """
        self._closed = True
        streams, self._streams = self._streams, {}
        for stream in streams:
            stream._end()

    def _detach(self, stream: EventStream) -> None:
        self._streams.pop(stream, None)

    def _deliver(self, event: HoldEvent) -> None:
        for callback in self._targets[type(event)]:
            self._call(callback, event)
        if self._streams:
            for stream in list(self._streams):
                stream._put(event)

    def _call(self, callback: Callable[[Any], object], event: HoldEvent) -> None:
        try:
            result = callback(event)
        except Exception:
            self._logger.exception("event callback %r failed on %r", callback, event)
            return
        if result is None or not inspect.isawaitable(result):
            return
        spawn = self._spawn
        if spawn is None:
            _discard(result)
            self._logger.warning(
                "async event callback %r skipped for %r: the dispatcher is not running",
                callback,
                event,
            )
            return
        try:
            spawn(functools.partial(self._run_async, callback, event, result))
            self._running += 1
        except Exception:
            _discard(result)
            self._logger.exception("could not start event callback %r for %r", callback, event)

    async def _run_async(
        self, callback: Callable[[Any], object], event: HoldEvent, awaitable: Awaitable[object]
    ) -> None:
        try:
            await awaitable
        except Exception:
            self._logger.exception("event callback %r failed on %r", callback, event)
        finally:
            self._running -= 1
            if self._running == 0 and self._finished is not None:
                self._finished.set()

    async def drain(self, within: float) -> int:
        """Wait up to ``within`` seconds for the async callbacks already started.

        Returns how many had not finished (and logs them); raises nothing.
        """
        with anyio.move_on_after(within):
            while self._running:
                self._finished = anyio.Event()
                await self._finished.wait()
        self._finished = None
        if self._running:
            self._logger.warning(
                "%d async event callback(s) still running after %.1f s; abandoned",
                self._running,
                within,
            )
        return self._running


def _discard(awaitable: Awaitable[object]) -> None:
    # An un-awaited coroutine warns when collected; closing it says it is dropped on purpose.
    if inspect.iscoroutine(awaitable):
        awaitable.close()


class EventStream:
    """A bounded, ordered stream of events; iterate it with ``async for``.

    When the stream is full, a new event pushes out the oldest one. The next read
    then first yields :class:`StreamOverflow` with the number of events lost, then
    the remaining events in order. The stream ends once it is closed and drained.
    """

    def __init__(self, dispatcher: EventDispatcher, maxlen: int) -> None:
        """Create a stream fed by ``dispatcher``; use :meth:`EventDispatcher.stream`.

        Raises :class:`InvalidArgument` if ``maxlen`` is less than 1.
        """
        if maxlen < 1:
            raise InvalidArgument(f"maxlen must be at least 1, got {maxlen}")
        self._dispatcher = dispatcher
        self._buffer: collections.deque[HoldEvent] = collections.deque(maxlen=maxlen)
        self._dropped = 0
        self._ended = False
        self._wakeup: anyio.Event | None = None

    def __aiter__(self) -> EventStream:
        """Return the stream itself."""
        return self

    async def __anext__(self) -> HoldEvent | StreamOverflow:
        """Wait for and return the next item.

        Raises :class:`StopAsyncIteration` once the stream is ended and drained.
        """
        while True:
            if self._dropped:
                overflow = StreamOverflow(dropped=self._dropped)
                self._dropped = 0
                return overflow
            if self._buffer:
                return self._buffer.popleft()
            if self._ended:
                raise StopAsyncIteration
            if self._wakeup is None:
                self._wakeup = anyio.Event()
            await self._wakeup.wait()

    async def aclose(self) -> None:
        """Stop receiving events and discard those not yet read. Raises nothing."""
        self._buffer.clear()
        self._dropped = 0
        self._dispatcher._detach(self)
        self._end()

    async def __aenter__(self) -> EventStream:
        """Return the stream; leaving the block closes it with :meth:`aclose`."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the stream. Raises nothing."""
        await self.aclose()

    def __repr__(self) -> str:
        state = "ended" if self._ended else "open"
        return f"<EventStream {state} queued={len(self._buffer)} dropped={self._dropped}>"

    def _put(self, event: HoldEvent) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            # the deque pushes out the oldest on append; count it for the reader
            self._dropped += 1
        self._buffer.append(event)
        self._wake()

    def _end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            wakeup.set()
