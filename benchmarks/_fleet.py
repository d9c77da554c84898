"""A real fleet for the fleet benchmarks: the fake server in its own process, and the verdict.

The parts come from the multi-process tests, so a benchmark and a test judge a
run alike: ``tests/conftest.py``'s :class:`RedisServer` (a redis-server started
and stopped by PID), ``tests/redis_worker.py`` worker processes driven through
``tests/redis_processes.py``'s :class:`Worker`, its :class:`Sampler` (every
reservation the fake server held), :func:`assert_no_gap` (no hold lost) and
:func:`close_pairs` (the duplicate reserves).

The fake OpenTicket server runs on the system clock in a process of its own
(``python benchmarks/_fleet.py TTL TICKETS``, started by :class:`FakeServer`),
so the workers' load does not slow its answers and its CPU is not theirs. It
talks JSON lines: one line of connection details, then one answer per command.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from conftest import RedisServer  # noqa: E402
from redis_processes import Sampler, Worker, assert_no_gap, close_pairs  # noqa: E402

from openticket_async import SystemClock  # noqa: E402
from openticket_async.testing import FakeOpenTicket, ReservationRecord  # noqa: E402

__all__ = [
    "FakeServer",
    "RedisServer",
    "Worker",
    "duplicates",
    "holds_in_hand",
    "lost_holds",
    "rss_bytes",
]


# -- the fake server's process -------------------------------------------------------


async def serve(ttl: float, tickets: int) -> None:
    """Serve one shop of ``tickets`` tickets; answer ``delay``, ``dump`` and ``quit``."""
    async with FakeOpenTicket(SystemClock(), reservation_ttl=ttl) as fake:
        shop = fake.add_shop()
        guids = [fake.add_ticket(shop, stock=3).guid for _ in range(tickets)]
        sampler = Sampler(fake)
        hosts = fake.hosts
        # A throwaway token of this fake server: handing it to the workers is the point.
        print(json.dumps({
            "hosts": {"auth": hosts.auth, "api": hosts.api, "shop": hosts.shop},
            "shop": shop.guid, "tickets": guids, "token": fake.issue_token().access_token,
        }), flush=True)
        read = asyncio.get_running_loop().run_in_executor
        while (command := json.loads(await read(None, sys.stdin.readline)))["cmd"] != "quit":
            if command["cmd"] == "delay":  # every reserve waits, real seconds, from now on
                fake.faults.delay("reserve", command["seconds"], real=True, times=None)
                print(json.dumps({"ok": True}), flush=True)
            else:  # dump: what the server saw, once the run is over
                await sampler.stop()
                print(json.dumps({
                    "reservations": [
                        [r.guid, r.ticket_guid, r.reserved_at, r.expires_at]
                        for r in sampler.seen.values()
                    ],
                    "reserves": [  # the path ends in the ticket's GUID
                        [request.path.rsplit("/", 1)[1], request.time]
                        for request in fake.requests if request.route == "reserve"
                    ],
                }), flush=True)


class FakeServer:
    """The fake server's process, seen from the benchmark."""

    def __init__(self, process: asyncio.subprocess.Process, info: dict[str, Any]) -> None:
        self.process = process
        self.info = info

    @classmethod
    async def start(cls, ttl: float, tickets: int) -> FakeServer:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, str(ttl), str(tickets),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**30,
        )
        server = cls(process, {})
        server.info = await server._answer()
        return server

    async def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError("the fake server's process ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, **command: Any) -> dict[str, Any]:
        """Send one command; its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        return await self._answer()

    async def stop(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.write(b'{"cmd": "quit"}\n')
            await self.process.stdin.drain()
            await self.process.wait()


# -- what the benchmark reads during the run ------------------------------------------


async def holds_in_hand(redis: Any, prefix: str, owner: str) -> dict[str, float]:
    """The holds ``owner``'s claims still protect, and for how long (s): a dead
    worker's, which no other worker may renew before those leases lapse."""
    seconds, micros = await redis.time()
    now = seconds + micros / 1e6
    found = {}
    async for key in redis.scan_iter(match=f"{prefix}hold:*", count=1000):
        holder, lease = await redis.hmget(key, "owner", "lease")
        if holder is not None and holder.decode() == owner and float(lease or 0) > now:
            found[key.decode().removeprefix(f"{prefix}hold:")] = float(lease) - now
    return found


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` now (0 once it is gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


# -- the verdict -----------------------------------------------------------------------


def lost_holds(
    chains: dict[str, list[str]], seen: dict[str, ReservationRecord], until: dict[str, float]
) -> list[str]:
    """The holds whose chain of reservations (the first, then each Renewed one) left
    the unit free at some moment before their ``until`` (their cart's close): the
    tests' no-gap rule."""
    lost = []
    for hold, guids in chains.items():
        try:
            assert_no_gap([seen[guid] for guid in guids], until=until[hold])
        except (AssertionError, KeyError):  # a gap, or a reservation the server never held
            lost.append(hold)
    return lost


def duplicates(
    times_by_key: dict[str, list[float]], apart: float,
    kills: list[tuple[float, set[str]]], after_kill: float,
) -> tuple[int, int]:
    """(duplicate pairs, the ones a kill explains), by the tests' ``close_pairs``.

    A kill explains a pair of one of the keys the dead worker had in hand, with
    its second time within ``after_kill`` s after the kill: the dead worker's
    reserve was on the wire and the worker that took over reserved again.
    """
    explained = 0
    for killed_at, keys in kills:
        low, high = killed_at - apart, killed_at + after_kill
        around = {key: [t for t in times_by_key.get(key, []) if low < t < high] for key in keys}
        explained += close_pairs(around, apart)
    return close_pairs(times_by_key, apart), explained


def records(dumped: list[list[Any]]) -> dict[str, ReservationRecord]:
    """The sampler's reservations back from the server's dump, by GUID."""
    return {
        guid: ReservationRecord(guid=guid, ticket_guid=ticket, shop_guid="",
                                reserved_at=reserved_at, expires_at=expires_at)
        for guid, ticket, reserved_at, expires_at in dumped
    }


if __name__ == "__main__":
    asyncio.run(serve(float(sys.argv[1]), int(sys.argv[2])))
