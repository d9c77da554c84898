"""Worker processes for the multi-process RedisStore tests, and what the tests watch.

:class:`Worker` runs ``tests/redis_worker.py`` in its own Python process and
talks JSON lines with it; :class:`Sampler` keeps every reservation the fake
server held, so a test can tell afterwards which reserves happened and when;
:func:`assert_no_gap` and :func:`close_pairs` judge what it kept.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from openticket_async import SystemClock
from openticket_async.testing import FakeOpenTicket, ReservationRecord

__all__ = ["Sampler", "Worker", "assert_no_gap", "close_pairs"]

WORKER = Path(__file__).with_name("redis_worker.py")


class Worker:
    """One worker process: JSON commands in, JSON records out."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.records: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, name: str, config: dict[str, Any]) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(name, process)
        await worker.send(config)
        return worker

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            record = json.loads(line)
            record["worker"] = self.name
            self.records.append(record)
            self._changed.set()
        self._changed.set()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def expect(self, check: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> Any:
        """The first record that passes ``check``, waiting for it up to ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while True:
                for record in self.records:
                    if check(record):
                        return record
                if self._reader.done():
                    raise AssertionError(f"worker {self.name} ended: {self.records[-3:]}")
                self._changed.clear()
                await self._changed.wait()

    def events(self) -> list[dict[str, Any]]:
        return [record for record in self.records if record["ev"] == "event"]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            try:
                await self.send({"cmd": "quit"})
                async with asyncio.timeout(10):
                    await self.process.wait()
            except (TimeoutError, ConnectionError):
                self.process.kill()
                await self.process.wait()
        await self._reader


class Sampler:
    """Every reservation the fake server held, read often enough that none is missed."""

    def __init__(self, fake: FakeOpenTicket[SystemClock]) -> None:
        self.seen: dict[str, ReservationRecord] = {}
        self._fake = fake
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            for record in self._fake.live_reservations():
                self.seen[record.guid] = record
            await asyncio.sleep(0.1)  # a reservation lives 6 s: every one is seen

    async def stop(self) -> None:
        for record in self._fake.live_reservations():
            self.seen[record.guid] = record
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def assert_no_gap(chain: list[ReservationRecord], until: float) -> None:
    """Some reservation of ``chain`` held the unit at every moment up to ``until``."""
    ordered = sorted(chain, key=lambda record: record.reserved_at)
    covered = ordered[0].expires_at
    for record in ordered[1:]:
        assert record.reserved_at < covered, f"gap before {record.guid}"
        covered = max(covered, record.expires_at)
    assert covered > until


def close_pairs(times_by_key: dict[str, list[float]], apart: float = 1.75) -> int:
    """Pairs of consecutive times of one key less than ``apart`` seconds apart.

    With a 6 s TTL a renewal window is ~3.5 s (TTL - margin - renew_before); one
    hold's reserves (or Renewed events) closer than half of it are a duplicate.
    """
    count = 0
    for times in times_by_key.values():
        ordered = sorted(times)
        count += sum(1 for a, b in itertools.pairwise(ordered) if b - a < apart)
    return count
