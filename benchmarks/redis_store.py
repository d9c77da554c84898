"""What the shared RedisStore costs per renewal, with 1, 2 and 4 workers, next to MemoryStore.

Two measurements, and the first again on a cluster.

*Fleet at saturation* (``fleet``): the whole renewal path. ``--fleet-holds`` holds
sit in Redis, all due at one moment; 1, 2 and 4 worker processes, each a
ReservationManager on a RedisStore with the real client, renew them through the
fake OpenTicket server, which runs in its own process (its CPU is not the
workers'). Reported: renewals per second (all workers, and per worker), client
CPU per renewal (the manager, the client and the store: everything the worker
does), Redis round trips per renewal (every command or pipeline the store
awaited, claims and heartbeats included), and the same burst with MemoryStore
in one process for the CPU ratio.

*Store side* (``redis``): a renewal, seen from the store, is what the manager does
around the reserve call:
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

The store-side run repeats with each ``--batches`` claim limit: the claim batch
size's effect.

*Cluster* (``--cluster``): the fleet at saturation again, on a Redis Cluster of
three primaries (``redis-server --cluster-enabled yes`` on free loopback ports,
joined by ``redis-cli --cluster create``), each worker's RedisStore split in its
default 16 shards. A cart's holds share a shard: give ``--cart-size 4`` (say) to
spread the burst over the shards, or it all lands on one primary.

    python benchmarks/redis_store.py            # full run, writes results/
    python benchmarks/redis_store.py --cluster --cart-size 4  # plus the fleet on a cluster
    python benchmarks/redis_store.py --quick    # seconds; asserts nothing (no cluster)
    python benchmarks/redis_store.py --instructions --holds 3000 --fleet-holds 600

The store side awaits each write-back before the next, so each is a round trip of
its own; the manager's renewals run concurrently and their write-backs share one
(the fleet's round trips per renewal). ``--together`` makes a claim's write-backs
at once, as the manager's renewals do.

``--instructions`` counts instead of timing, for figures other load on the machine
cannot move: one store-side worker and one fleet worker, each run under valgrind's
cachegrind with a third of ``--holds`` (``--fleet-holds``) and with all of them;
the difference per renewal (start, imports and warm-up cancel out).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import re
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

import _alternatives as alts
import _common as c

from openticket_async import HoldPolicy

NAME = "redis_store"
CLUSTER, CLUSTER_SHARDS = "redis+cluster", 16  # the store's URL scheme and default shards
WORKER_COUNTS = (1, 2, 4)
#: What runs a worker process: this Python, or (``--instructions``) it under cachegrind.
RUNNER = [sys.executable]
#: The fleet run's policy: the default lead, no jitter, so every renewal is due at once.
FLEET_POLICY = {"renew_before": 60.0, "safety_margin": 2.0, "renew_jitter": 0.0,
                "warn_before": 0.0, "max_hold": None, "min_server_ttl": 0.0}


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


async def renew_all(
    store: Any, clock: Any, batch: int, shared: bool, together: bool = False
) -> dict[str, Any]:
    """Claim and write back, as the manager does, until nothing is due; time it.

    Each write-back awaited before the next, or (``together``) a claim's all at once.
    """
    from openticket_async import HoldState

    async def renew(due: Any, now: float) -> None:
        hold = due.hold
        hold.state = HoldState.RENEWING
        await store.save(hold, "drop", now + 400.0, due.fence)  # the safety net
        hold.state = HoldState.ACTIVE
        hold.renewals += 1
        await store.save(hold, "renew", now + 3600.0, due.fence)  # the next plan

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
        if together:
            await asyncio.gather(*(renew(due, now) for due in claims))
        else:
            for due in claims:
                await renew(due, now)
        renewed += len(claims)
    return {
        "renewed": renewed,
        "wall": time.perf_counter() - started,
        "cpu": time.process_time() - cpu0,
        "claim_latencies": latencies,
    }


async def memory_side(holds: int, batch: int, together: bool) -> dict[str, Any]:
    from openticket_async import SystemClock
    from openticket_async.stores import MemoryStore

    clock = SystemClock()
    store = MemoryStore()
    store.bind(clock, HoldPolicy())
    for index in range(holds):
        await store.save(make_hold(clock, index), "renew", clock.now() - 1.0)
    with c.settled_gc():
        got = await renew_all(store, clock, batch, shared=False, together=together)
    return summarize(holds, [got], got["wall"])


async def preload(url: str, prefix: str, holds: int) -> None:
    from openticket_async import SystemClock
    from openticket_async.stores.redis import RedisStore

    clock = SystemClock()
    store = RedisStore(url, prefix=prefix, lease=30.0)
    store.bind(clock, HoldPolicy())
    due = clock.wall().timestamp() - 1.0
    for start in range(0, holds, 50):  # within the pool, on a busy machine too
        chunk = range(start, min(start + 50, holds))
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
        got = await renew_all(store, clock, args.batch, shared=True, together=args.together)
    await store.aclose()
    print(json.dumps(got), flush=True)


def redis_side(args: Any, url: str, server_pid: int | None, workers: int) -> dict[str, Any]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    c.run_on("asyncio", lambda: preload(url, prefix, args.holds))
    command = [*RUNNER, __file__, "--worker", "--redis", url, "--prefix", prefix,
               "--batch", str(args.batch), *(["--together"] if args.together else [])]
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


# -- the fleet at saturation: managers, the real client, the fake server apart ---------


async def load(
    url: str, prefix: str, server: c.ServerProcess, holds: int, cart_size: int = 0
) -> float:
    """Put ``holds`` holds in Redis, every renewal due at the returned moment (monotonic).

    In carts of ``cart_size`` holds (0: all in one cart; on a cluster, one shard).
    """
    from renewal_burst import BurstClient

    from openticket_async import (
        BearerToken,
        HoldPolicy,
        Hosts,
        OpenTicketClient,
        ReservationManager,
    )
    from openticket_async.stores.redis import RedisStore

    policy = HoldPolicy(**FLEET_POLICY)
    due = time.monotonic() + 2.0 + holds * 1e-3
    deadline = due + policy.renew_before + policy.safety_margin
    auth = BearerToken(server.token)
    async with OpenTicketClient(auth=auth, hosts=Hosts(**server.hosts)) as client:
        loader = BurstClient(client, alts.reservations([deadline] * holds, client.reservation_ttl))
        store = RedisStore(url, prefix=prefix, policy=policy)
        async with ReservationManager(loader, policy=policy, store=store) as manager:
            size = cart_size or holds
            for start in range(0, holds, size):
                cart = manager.cart(server.shop)
                for _ in range(min(size, holds - start)):
                    await cart.add(server.tickets[0])
    return due  # leaving a manager on a shared store releases nothing


async def fleet_worker(args: Any) -> None:
    """One worker process: a manager on the shared store renews what comes due; reports."""
    from openticket_async import (
        BearerToken,
        HoldPolicy,
        Hosts,
        OpenTicketClient,
        Renewed,
        ReservationManager,
    )
    from openticket_async.stores.redis import RedisStore

    server = json.loads(args.server)
    policy = HoldPolicy(**FLEET_POLICY)
    store = RedisStore(args.redis, prefix=args.prefix, policy=policy)
    renewed: list[float] = []
    auth = BearerToken(server["token"])
    # CPU time, not wall time: on a loaded machine a wall-clock profile charges the
    # time this process waited for a core to whatever it was running then.
    profile = cProfile.Profile(time.process_time) if args.profile else None
    async with (
        OpenTicketClient(auth=auth, hosts=Hosts(**server["hosts"])) as client,
        ReservationManager(client, policy=policy, store=store) as manager,
    ):
        manager.on(Renewed, lambda _event: renewed.append(time.monotonic()))
        print(json.dumps({"ready": True}), flush=True)
        read = asyncio.get_running_loop().run_in_executor
        await read(None, sys.stdin.readline)  # go: just before the burst is due
        cpu0, trips0 = time.process_time(), store.round_trips
        if profile is not None:
            profile.enable()
        await read(None, sys.stdin.readline)  # stop: every hold renewed
        cpu, trips = time.process_time() - cpu0, store.round_trips - trips0
        if profile is not None:
            profile.disable()
            profile.dump_stats(f"{args.profile}.{os.getpid()}")
    print(json.dumps({"renewed": len(renewed), "last": max(renewed, default=0.0), "cpu": cpu,
                      "round_trips": trips}), flush=True)


def fleet_side(args: Any, url: str, server: c.ServerProcess, workers: int) -> dict[str, Any]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    holds = args.fleet_holds
    due = c.run_on("asyncio", lambda: load(url, prefix, server, holds, args.cart_size))
    info = json.dumps({"token": server.token, "hosts": server.hosts})
    command = [*RUNNER, __file__, "--fleet-worker", "--redis", url, "--prefix", prefix,
               "--server", info, *(["--profile", args.profile] if args.profile else [])]
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for proc in procs:
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())  # ready
    time.sleep(max(due - 0.05 - time.monotonic(), 0))  # the processes idle till then
    tell(procs, "go")
    give_up = time.monotonic() + 300
    with due_soon(url, prefix) as left:
        # every hold renewed once: no entry left before its next renewal, 8 minutes on
        while time.monotonic() < due or left():
            if time.monotonic() > give_up:
                raise RuntimeError("the fleet did not renew every hold within 300 s")
            time.sleep(0.05)
    tell(procs, "stop")
    results = []
    for proc in procs:
        assert proc.stdout is not None
        results.append(json.loads(proc.stdout.readline()))
        proc.wait()
    renewed = sum(r["renewed"] for r in results)
    wall = max(r["last"] for r in results) - due
    return {
        "workers": workers,
        "holds": holds,
        "renewed": renewed,
        "renewals_per_s": round(renewed / wall, 1),
        "renewals_per_s_per_worker": round(renewed / wall / workers, 1),
        "client_cpu_us_per_renewal": round(sum(r["cpu"] for r in results) / renewed * 1e6, 1),
        "round_trips_per_renewal": round(sum(r["round_trips"] for r in results) / renewed, 3),
        "per_worker_renewed": [r["renewed"] for r in results],
    }


@contextmanager
def due_soon(url: str, prefix: str) -> Iterator[Any]:
    """A function counting the entries due within 30 s, over every shard's queue."""
    import redis
    from redis.cluster import ClusterNode, RedisCluster

    if url.startswith(CLUSTER + "://"):
        hosts = [host.rpartition(":") for host in url.split("//")[1].split(",")]
        nodes = [ClusterNode(host, int(port)) for host, _colon, port in hosts]
        watch: Any = RedisCluster(startup_nodes=nodes)
        queues = [f"{prefix}{{{shard}}}queue" for shard in range(CLUSTER_SHARDS)]
    else:
        watch, queues = redis.Redis.from_url(url), [f"{prefix}queue"]
    try:
        yield lambda: sum(watch.zcount(q, "-inf", time.time() + 30) for q in queues)
    finally:
        watch.close()


@contextmanager
def redis_cluster() -> Iterator[str]:
    """A fresh three-primary Redis Cluster on free loopback ports; its URL."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        sys.exit("redis_store: --cluster needs redis-server and redis-cli")
    ports = [free_port() for _ in range(3)]
    with tempfile.TemporaryDirectory() as directory:
        procs = [subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
             "--cluster-port", str(free_port()), "--save", "", "--appendonly", "no",
             "--loglevel", "warning"], stdout=subprocess.DEVNULL) for port in ports]
        try:
            addresses = [f"127.0.0.1:{port}" for port in ports]
            for _ in range(500):  # every node answers, then the cluster is made
                if subprocess.run([cli, "-p", str(ports[-1]), "ping"], capture_output=True,
                                  check=False).returncode == 0:
                    break
                time.sleep(0.02)
            subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
                            "--cluster-yes"], capture_output=True, check=True)
            while any(b"cluster_state:ok" not in subprocess.run(
                    [cli, "-p", str(port), "cluster", "info"], capture_output=True,
                    check=False).stdout for port in ports):
                time.sleep(0.05)
            yield f"{CLUSTER}://" + ",".join(addresses)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tell(procs: list[subprocess.Popen[str]], line: str) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(line + "\n")
        proc.stdin.flush()


def fleet_memory(server: c.ServerProcess, holds: int) -> dict[str, Any]:
    """The same burst with MemoryStore in one process (renewal_burst's manager round)."""
    from renewal_burst import manager_round

    from openticket_async import BearerToken, Hosts, OpenTicketClient

    async def run() -> dict[str, Any]:
        auth = BearerToken(server.token)
        async with OpenTicketClient(auth=auth, hosts=Hosts(**server.hosts)) as client:
            return await manager_round(client, server, holds, 32)

    got = c.run_on("asyncio", run)
    return {"workers": 1, "holds": holds, "renewed": got["renewed"],
            "renewals_per_s": round(got["renewed"] / got["total_s"], 1),
            "client_cpu_us_per_renewal": round(got["cpu_us_per_renewal"], 1)}


def render(result: dict[str, Any]) -> str:
    run = result["runs"][0]
    memory = run["fleet_memory"]
    rows = [["MemoryStore", 1, memory["renewals_per_s"], memory["renewals_per_s"],
             memory["client_cpu_us_per_renewal"], "-", "1.00"]]
    for side in run["fleet"]:
        rows.append(["RedisStore", side["workers"], side["renewals_per_s"],
                     side["renewals_per_s_per_worker"], side["client_cpu_us_per_renewal"],
                     side["round_trips_per_renewal"], side["cpu_vs_memory"]])
    for side in run.get("cluster", []):
        rows.append(["RedisStore, cluster", side["workers"], side["renewals_per_s"],
                     side["renewals_per_s_per_worker"], side["client_cpu_us_per_renewal"],
                     side["round_trips_per_renewal"], side["cpu_vs_memory"]])
    fleet = c.table(["fleet at saturation", "workers", "renewals/s", "per worker",
                     "client cpu us/renewal", "redis round trips/renewal", "cpu x memory"], rows)
    rows = []
    for batch, store in run["store"].items():
        memory = store["memory"]
        rows.append(["MemoryStore", batch, 1, memory["renewals_per_s"],
                     memory["claim_latency"]["p50_ms"], memory["claim_latency"]["p99_ms"],
                     memory["client_cpu_us_per_renewal"], "-"])
        for side in store["redis"]:
            rows.append(["RedisStore", batch, side["workers"], side["renewals_per_s"],
                         side["claim_latency"]["p50_ms"], side["claim_latency"]["p99_ms"],
                         side["client_cpu_us_per_renewal"], side["redis_cpu_us_per_renewal"]])
    store_side = c.table(["store side", "batch", "workers", "renewals/s", "claim p50 ms",
                          "claim p99 ms", "client cpu us/renewal", "redis cpu us/renewal"], rows)
    return fleet + "\n\n" + store_side


def main() -> None:
    p = c.parser(__doc__.split("\n")[0], default_loop="asyncio")
    p.add_argument("--holds", type=int, default=20_000, help="holds per store-side measurement")
    p.add_argument("--batches", default="64,512", help="claim_due limits of the store side")
    p.add_argument("--fleet-holds", type=int, default=4_000, help="holds in the fleet burst")
    p.add_argument("--redis", help="measure against this Redis URL instead of a fresh server")
    p.add_argument("--profile",
                   help="fleet workers write cProfile stats (CPU time) to PROFILE.<pid>")
    p.add_argument("--cluster", action="store_true",
                   help="also run the fleet on a fresh three-primary Redis Cluster")
    p.add_argument("--cart-size", type=int, default=0,
                   help="fleet holds per cart (default 0: all in one cart, one shard)")
    p.add_argument("--together", action="store_true",
                   help="store side: a claim's write-backs at once, as the manager's renewals")
    p.add_argument("--instructions", action="store_true",
                   help="count instructions per renewal under cachegrind (one worker) instead")
    for hidden in ("--worker", "--fleet-worker"):
        p.add_argument(hidden, action="store_true", help=argparse_hidden())
    for hidden in ("--prefix", "--server"):
        p.add_argument(hidden, help=argparse_hidden())
    p.add_argument("--batch", type=int, default=512, help=argparse_hidden())
    args = p.parse_args()
    if args.worker:
        asyncio.run(worker_main(args))
        return
    if args.fleet_worker:
        asyncio.run(fleet_worker(args))
        return
    if args.instructions:
        count_instructions(args)
        return
    counts = WORKER_COUNTS
    if args.quick:
        args.holds, args.fleet_holds = min(args.holds, 1_000), min(args.fleet_holds, 200)
        args.batches, counts, args.cluster = "512", (1,), False
    store: dict[int, Any] = {}
    with redis_server(args.redis) as (url, pid):
        for batch in (int(b) for b in args.batches.split(",")):
            args.batch = batch
            memory = c.run_on("asyncio",
                              lambda: memory_side(args.holds, args.batch, args.together))
            sides = [redis_side(args, url, pid, n) for n in counts]
            store[batch] = {"memory": memory, "redis": sides}
        with c.fake_server() as server:
            fleet_memory_side = fleet_memory(server, args.fleet_holds)
            fleet = [fleet_side(args, url, server, n) for n in counts]
            cluster = []
            if args.cluster:
                with redis_cluster() as cluster_url:
                    cluster = [fleet_side(args, cluster_url, server, n) for n in counts]
    for side in fleet + cluster:
        side["cpu_vs_memory"] = c.ratio(side["client_cpu_us_per_renewal"],
                                        fleet_memory_side["client_cpu_us_per_renewal"])
    result: dict[str, Any] = {
        "benchmark": NAME,
        "what": "fleet: the renewal path at saturation (managers, real client, fake server in "
                "its own process), RedisStore with 1, 2, 4 worker processes vs MemoryStore; "
                "store: the store's side of a renewal without HTTP, per claim batch size",
        "holds": args.holds,
        "fleet_holds": args.fleet_holds,
        "cpus": os.cpu_count(),
        "runs": [{"loop": "asyncio", "fleet_memory": fleet_memory_side, "fleet": fleet,
                  "store": store, **({"cluster": cluster} if cluster else {})}],
    }
    c.emit(NAME, result, render(result), args)


def count_instructions(args: Any) -> None:
    """``--instructions``: one worker of each side under cachegrind, at two sizes; prints
    the instructions per renewal."""
    with redis_server(args.redis) as (url, pid), c.fake_server() as server, \
            tempfile.TemporaryDirectory() as out:
        RUNNER[:0] = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--log-file=/dev/null",
                      f"--cachegrind-out-file={out}/%p"]

        def counted(side: Any) -> tuple[int, int]:
            renewed = side()["renewed"]
            [path] = [os.path.join(out, name) for name in os.listdir(out)]
            with open(path) as counts:
                found = re.search(r"^summary: (\d+)", counts.read(), re.M)
            os.remove(path)
            assert found is not None, "cachegrind wrote no summary"
            return renewed, int(found.group(1))

        sides = {"store side": ("holds", lambda: redis_side(args, url, pid, 1)),
                 "fleet": ("fleet_holds", lambda: fleet_side(args, url, server, 1))}
        for name, (size, side) in sides.items():
            runs = []
            for holds in (getattr(args, size) // 3, getattr(args, size)):
                setattr(args, size, holds)
                runs.append(counted(side))
            (few, low), (many, high) = runs
            print(f"{name}: {(high - low) / (many - few):,.0f} instructions per renewal "
                  f"({few} and {many} renewals, one worker)")


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
