"""What the shared RedisStore costs per renewal, with 1, 2 and 4 workers, next to MemoryStore.

A renewal, seen from the store, is what the manager does around the reserve call:
a claim (one Lua call hands out up to ``--batch`` due holds), a save of the
safety net while the renewal is on the wire (the hold RENEWING), and a save of
the next plan once the renewal came back. This benchmark does exactly that,
without the HTTP call, for ``--holds`` holds that are all due at once:

- MemoryStore: one process, the in-memory queue.
- RedisStore: 1, 2 and 4 worker processes, each with its own store, sharing one
  Redis (a ``redis-server`` started on a free 127.0.0.1 port, or ``--redis``),
  all started together; every hold is renewed exactly once between them.

Reported: renewals per second (all workers together), the latency of one
``claim_due`` call (p50/p99/max), and Redis's CPU time per renewal.

    python benchmarks/redis_store.py            # full run, writes results/
    python benchmarks/redis_store.py --quick    # seconds; asserts nothing
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import _common as c

from openticket_async import HoldPolicy

NAME = "redis_store"
WORKER_COUNTS = (1, 2, 4)


def make_hold(clock: Any, index: int) -> Any:
    from openticket_async import Hold, Product, Reservation

    wall = clock.wall()
    reservation = Reservation(
        guid=str(uuid.uuid4()), shop_guid=SHOP, ticket_guid=TICKET, event_date_guid=DATE,
        products=(Product(guid=str(uuid.uuid4()), name="Entrance"),),
        reserved_at=wall, expires_at=wall + timedelta(seconds=480),
        deadline=clock.now() + 478.0,
    )
    return Hold(id=f"bench-{index}", cart_id=f"cart-{index // 4}", shop_guid=SHOP,
                ticket_guid=TICKET, reservation=reservation, created_at=clock.now())


SHOP, TICKET, DATE = (str(uuid.uuid4()) for _ in range(3))


async def renew_all(store: Any, clock: Any, batch: int, shared: bool) -> dict[str, Any]:
    """Claim and write back, as the manager does, until nothing is due; time it."""
    from openticket_async import HoldState

    latencies, renewed = [], 0
    empty = 0
    started = time.perf_counter()
    cpu0 = time.process_time()
    while empty < 2:  # twice empty: the other workers' leases did not hide any work
        now = clock.wall().timestamp() if shared else clock.now()
        t0 = time.perf_counter()
        claims = await store.claim_due(now, batch)
        latencies.append(time.perf_counter() - t0)
        if not claims:
            empty += 1
            await asyncio.sleep(0.01)
            continue
        empty = 0
        for due in claims:
            hold = due.hold
            hold.state = HoldState.RENEWING
            await store.save(hold, "drop", now + 400.0, due.fence)  # the safety net
            hold.state = HoldState.ACTIVE
            hold.renewals += 1
            await store.save(hold, "renew", now + 3600.0, due.fence)  # the next plan
            renewed += 1
    return {
        "renewed": renewed,
        "wall": time.perf_counter() - started,
        "cpu": time.process_time() - cpu0,
        "claim_latencies": latencies,
    }


async def memory_side(holds: int, batch: int) -> dict[str, Any]:
    from openticket_async import SystemClock
    from openticket_async.stores import MemoryStore

    clock = SystemClock()
    store = MemoryStore()
    store.bind(clock, HoldPolicy())
    for index in range(holds):
        await store.save(make_hold(clock, index), "renew", clock.now() - 1.0)
    with c.settled_gc():
        got = await renew_all(store, clock, batch, shared=False)
    return summarize(holds, [got], got["wall"])


async def preload(url: str, prefix: str, holds: int) -> None:
    from openticket_async import SystemClock
    from openticket_async.stores.redis import RedisStore

    clock = SystemClock()
    store = RedisStore(url, prefix=prefix, lease=30.0)
    store.bind(clock, HoldPolicy())
    due = clock.wall().timestamp() - 1.0
    for start in range(0, holds, 200):
        chunk = range(start, min(start + 200, holds))
        await asyncio.gather(*(store.save(make_hold(clock, i), "renew", due) for i in chunk))
    await store.aclose()


async def worker_main(args: Any) -> None:
    """One worker process: wait for "go" on stdin, renew what it can claim, report."""
    from openticket_async import SystemClock
    from openticket_async.stores.redis import RedisStore

    clock = SystemClock()
    store = RedisStore(args.redis, prefix=args.prefix, lease=30.0)
    store.bind(clock, HoldPolicy())
    await store.next_due()  # connected before the start
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    with c.settled_gc():
        got = await renew_all(store, clock, args.batch, shared=True)
    await store.aclose()
    print(json.dumps(got), flush=True)


def redis_side(args: Any, url: str, server_pid: int | None, workers: int) -> dict[str, Any]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    c.run_on("asyncio", lambda: preload(url, prefix, args.holds))
    command = [sys.executable, __file__, "--worker", "--redis", url, "--prefix", prefix,
               "--batch", str(args.batch)]
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for proc in procs:
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())  # ready
    server_cpu0 = c.proc_cpu_seconds(server_pid) if server_pid else float("nan")
    started = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        assert proc.stdout is not None
        results.append(json.loads(proc.stdout.readline()))
        proc.wait()
    wall = time.perf_counter() - started
    server_cpu = (c.proc_cpu_seconds(server_pid) if server_pid else float("nan")) - server_cpu0
    out = summarize(args.holds, results, wall)
    out["workers"] = workers
    out["redis_cpu_us_per_renewal"] = round(server_cpu / args.holds * 1e6, 2)
    return out


def summarize(holds: int, results: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    renewed = sum(r["renewed"] for r in results)
    latencies = [x for r in results for x in r["claim_latencies"]]
    return {
        "holds": holds,
        "renewed": renewed,
        "renewals_per_s": round(renewed / wall, 1),
        "claim_latency": c.summary_ms(latencies),
        "client_cpu_us_per_renewal": round(sum(r["cpu"] for r in results) / renewed * 1e6, 2),
        "per_worker_renewed": [r["renewed"] for r in results],
    }


@contextmanager
def redis_server(url: str | None) -> Iterator[tuple[str, int | None]]:
    """The Redis to measure against: ``url``, or a fresh redis-server on a free port."""
    if url:
        yield url, None
        return
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis_store: redis-server is not installed and no --redis URL was given")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
             "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL)
        try:
            for _ in range(500):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                        conn.sendall(b"PING\r\n")
                        if conn.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0", proc.pid
        finally:
            proc.terminate()
            proc.wait()


def render(result: dict[str, Any]) -> str:
    run = result["runs"][0]
    memory = run["memory"]
    rows = [["MemoryStore", 1, memory["renewals_per_s"], memory["claim_latency"]["p50_ms"],
             memory["claim_latency"]["p99_ms"], memory["client_cpu_us_per_renewal"], "-", "-"]]
    for side in run["redis"]:
        rows.append(["RedisStore", side["workers"], side["renewals_per_s"],
                     side["claim_latency"]["p50_ms"], side["claim_latency"]["p99_ms"],
                     side["client_cpu_us_per_renewal"], side["redis_cpu_us_per_renewal"],
                     side["ratio_to_memory"]])
    return c.table(["store", "workers", "renewals/s", "claim p50 ms", "claim p99 ms",
                    "client cpu us/renewal", "redis cpu us/renewal", "x memory"], rows)


def main() -> None:
    p = c.parser(__doc__.split("\n")[0], default_loop="asyncio")
    p.add_argument("--holds", type=int, default=20_000, help="holds renewed per measurement")
    p.add_argument("--batch", type=int, default=512, help="claim_due limit (the manager's)")
    p.add_argument("--redis", help="measure against this Redis URL instead of a fresh server")
    p.add_argument("--worker", action="store_true", help=argparse_hidden())
    p.add_argument("--prefix", help=argparse_hidden())
    args = p.parse_args()
    if args.worker:
        asyncio.run(worker_main(args))
        return
    if args.quick:
        args.holds = min(args.holds, 1_000)
    memory = c.run_on("asyncio", lambda: memory_side(args.holds, args.batch))
    with redis_server(args.redis) as (url, pid):
        sides = [redis_side(args, url, pid, n) for n in WORKER_COUNTS]
    for side in sides:
        side["ratio_to_memory"] = c.ratio(side["renewals_per_s"], memory["renewals_per_s"])
    result: dict[str, Any] = {
        "benchmark": NAME,
        "what": "the store's side of a renewal (claim, safety-net save, next-plan save), "
                "no HTTP; MemoryStore in one process vs RedisStore with 1, 2, 4 worker "
                "processes on one Redis; all holds due at once, each renewed exactly once",
        "holds": args.holds,
        "batch": args.batch,
        "cpus": os.cpu_count(),
        "runs": [{"loop": "asyncio", "memory": memory, "redis": sides}],
    }
    c.emit(NAME, result, render(result), args)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
