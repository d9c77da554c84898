"""The raw aiohttp side of the network benchmarks, and the request driver both sides use.

The raw reserve is the leanest fair equivalent of the SDK's call: the same
connector limits, timeouts and cookie handling as the SDK's own session (read
from its transport), the same headers, a prebuilt URL, ``resp.read()`` and
``json.loads``, and a status check. It never does more work than the SDK's
session setup would make it do.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
from yarl import URL

Call = Callable[[], Awaitable[Any]]
T = TypeVar("T")


def sdk_session_settings(client: Any) -> dict[str, Any]:
    """The SDK client's connection limits and timeouts, for the raw side to copy."""
    from openticket_async._transport import DEFAULT_CONNECTIONS_PER_HOST

    transport = getattr(client, "_transport", None)
    per_host = getattr(transport, "_connections_per_host", DEFAULT_CONNECTIONS_PER_HOST)
    timeout = getattr(transport, "_timeout", None)
    if not isinstance(timeout, aiohttp.ClientTimeout):
        from openticket_async import Timeouts

        t = Timeouts()
        timeout = aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.read)
    return {"limit": 0, "limit_per_host": per_host, "timeout": timeout}


def raw_session(settings: dict[str, Any]) -> aiohttp.ClientSession:
    """A session set up like the SDK's own (same connector limits, timeouts, no cookies)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings["limit"],
                                       limit_per_host=settings["limit_per_host"]),
        timeout=settings["timeout"],
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def raw_reserve(session: aiohttp.ClientSession, url: str | Sequence[str], token: str) -> Call:
    """GET the reserve URL and ``json.loads`` the answer; raise on a non-200 status.

    Given several URLs, each call takes the next one, round and round (as
    :func:`rotate` hands tickets to the SDK side).
    """
    targets = [URL(u) for u in ([url] if isinstance(url, str) else url)]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    next_target = rotate(targets)

    async def reserve() -> Any:
        async with session.get(next_target(), headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"raw reserve answered {resp.status}")
            return json.loads(body)

    return reserve


def rotate(items: Sequence[T]) -> Callable[[], T]:
    """A function returning ``items`` one after the other, round and round.

    Both sides of a benchmark take their next ticket through one of these, so the
    rotation costs them the same.
    """
    return itertools.cycle(items).__next__


async def drive(call: Call, requests: int, concurrency: int) -> dict[str, Any]:
    """Run ``requests`` calls spread over ``concurrency`` worker tasks; time them.

    Returns wall seconds, this process's CPU seconds and each call's latency.
    """
    latencies: list[float] = []
    record = latencies.append
    perf = time.perf_counter

    async def worker(count: int) -> None:
        for _ in range(count):
            start = perf()
            await call()
            record(perf() - start)

    share, extra = divmod(requests, concurrency)
    counts = [share + (1 if i < extra else 0) for i in range(concurrency)]
    cpu0, t0 = time.process_time(), perf()
    await asyncio.gather(*(worker(n) for n in counts))
    wall, cpu = perf() - t0, time.process_time() - cpu0
    return {"wall": wall, "cpu": cpu, "latencies": latencies}
