"""Hold events across processes: a Redis stream per cart, written in the background.

Why streams, not pub/sub: a pub/sub message reaches only the subscribers
connected at that instant, so a watcher that reconnects (a network blip, a
Redis restart) silently misses events. A stream keeps the last ``maxlen``
events of each cart for ``ttl`` seconds; a watcher resumes after the id of the
last event it saw (``CartEvent.id``) and misses nothing still kept. The cost is
a little memory per active cart, bounded by ``maxlen`` and the key's TTL.

The relay is the store's ``event_sink``. The manager emits from its scheduler
and must never wait on the network, so :meth:`EventRelay.publish` only encodes
the event, appends it to an in-memory outbox and wakes one publisher task the
relay owns; the task writes each batch in one round trip (one EVENTS script call
per shard). While Redis is unreachable the outbox keeps the newest ``outbox``
events and the task retries; :meth:`EventRelay.aclose` flushes what it can in a bounded time and
then stops the task, so no task outlives the store. The task stops on a flag
and is cancelled only as a last resort: redis-py can absorb a cancellation that
arrives while it runs a command, and a task blocked on its next wake-up after
that would never end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..._clock import Clock
from ..._events import HoldEvent
from ..._exceptions import StoreUnavailable
from ..shared import CartEvent, decode_event, encode_event
from ._link import Client, Link
from ._scripting import Script, run_scripts

__all__ = ["EventRelay"]

logger = logging.getLogger("openticket_async.stores.redis")

#: Events written per pipeline round trip.
BATCH = 256
#: Real seconds between tries while Redis is unreachable (doubling up to the cap).
RETRY_FIRST, RETRY_CAP = 0.05, 1.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EventRelay:
    """Writes hold events to their cart's stream; reads a cart's stream back.

    ``origin`` names the store in the events it writes. ``clock`` is the
    store's clock once it is bound (events carry its wall time); until then,
    and once the relay is closed, :meth:`publish` drops events.
    """

    def __init__(
        self,
        client: Client,
        link: Link,
        stream_key: Callable[[str], str],
        *,
        script: Script,
        shard_of: Callable[[str], int],
        origin: str,
        maxlen: int,
        ttl: int,
        outbox: int = 10_000,
    ) -> None:
        self.clock: Clock | None = None
        self._origin = origin
        self._closed = False
        self._client = client
        self._link = link
        self._key = stream_key
        self._script = script
        self._shard_of = shard_of
        self._limits = [str(maxlen).encode(), str(ttl).encode()]  # EVENTS' first arguments
        self._limit = outbox
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def publish(self, event: HoldEvent) -> None:
        """Queue ``event`` for its cart's stream; never blocks.

        Starts the publisher task if needed. Drops the event before the store
        is bound and once it is closed.
        """
        if self._closed or self.clock is None:
            return
        text = encode_event(event, self.clock.wall(), self._origin)
        if len(self._outbox) >= self._limit:
            self._outbox.popleft()
            self._dropped += 1
        self._outbox.append((event.hold.cart_id, text))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="openticket-redis-events"
            )

    async def _run(self) -> None:
        delay = RETRY_FIRST
        while not (self._stopping and not self._outbox):
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                if self._dropped:
                    logger.warning("Redis unreachable: %d hold events were dropped", self._dropped)
                    self._dropped = 0
                batch = [self._outbox.popleft() for _ in range(min(BATCH, len(self._outbox)))]
                try:
                    await self._write(batch)
                except StoreUnavailable as error:
                    if error.refused:
                        logger.exception("hold events dropped")
                        continue
                    self._outbox.extendleft(reversed(batch))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_CAP)
                    continue
                delay = RETRY_FIRST

    async def _write(self, batch: list[tuple[str, bytes]]) -> None:
        # One EVENTS call per shard (its streams share a cluster slot) carries all
        # of the shard's events, as bytes: redis-py packs each argument in Python.
        by_shard: dict[int, tuple[list[bytes], list[bytes]]] = {}
        for cart_id, text in batch:
            shard = self._shard_of(cart_id)
            if shard not in by_shard:
                by_shard[shard] = ([], [*self._limits])
            keys, args = by_shard[shard]
            keys.append(self._key(cart_id).encode())
            args.append(text)
        calls = [(self._script, keys, args) for keys, args in by_shard.values()]
        await run_scripts(self._client, self._link, calls)

    async def aclose(self, grace: float) -> None:
        """Write what is queued (for at most ``grace`` real seconds), then stop."""
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.shield(task)
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=0.1)
        if self._outbox:
            logger.warning("%d hold events were not published before close", len(self._outbox))

    async def watch(
        self, cart_id: str, since: str | None, block: float
    ) -> AsyncIterator[CartEvent]:
        """Yield the cart's events after ``since`` (None: from now on), forever.

        Raises StoreUnavailable when Redis cannot be reached; resume with the
        ``id`` of the last event seen.
        """
        key = self._key(cart_id)
        last = since
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        if last is None:
            newest = await self._link.call(self._client.xrevrange(key, count=1))
            last = _text(newest[0][0]) if newest else "0-0"
        while True:
            answer = await self._link.call(
                self._client.xread({key: last}, count=BATCH, block=max(int(block * 1000), 1)),
                busy=False,
            )
            if task is not None and task.cancelling() > cancels:
                raise asyncio.CancelledError  # redis-py absorbed it; the caller asked for it
            for entry_id, fields in _entries(answer):
                last = entry_id
                try:
                    event = decode_event(entry_id, fields)
                except (ValueError, KeyError, TypeError):
                    logger.exception("unreadable hold event %s in %s", entry_id, key)
                    continue
                yield event


def _entries(answer: Any) -> list[tuple[str, str]]:
    # XREAD answers {stream: [[id, {field: value}], ...]} (RESP3) or
    # [[stream, [[id, {field: value}], ...]]] (RESP2).
    streams = answer.values() if isinstance(answer, dict) else [item[1] for item in answer or ()]
    found = []
    for entries in streams:
        for entry_id, fields in entries:
            value = fields.get("e", fields.get(b"e")) if fields else None
            if value is not None:
                found.append((_text(entry_id), _text(value)))
    return found
