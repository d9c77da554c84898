"""A fleet renewing for minutes on end: duplicates per 10,000 renewals, holds lost, takeovers.

A real fleet on loopback, on real time: one ``redis-server``, the fake OpenTicket
server in its own process (reservations live ``--ttl`` seconds) and ``--workers``
worker processes (``tests/redis_worker.py``), each a ReservationManager on a
RedisStore. ``--holds`` holds (one per ticket, in carts of 30 spread over one
renewal interval) are made, then renewed by whichever worker claims them until
``--renewals`` renewals happened or ``--duration`` seconds passed; then the carts
are closed. Faults, if asked for: ``--reserve-delay`` makes every reserve wait
at the server (renewals are on the wire when a kill comes), ``--kill-every``
SIGKILLs a random worker every so many seconds and starts a new one in its place.

Reported, judged as the multi-process tests judge (``benchmarks/_fleet.py``):

- renewals, and renewals/s over the run;
- duplicate reserves (two reserves of one hold closer than half a renewal
  window) per 10,000 renewals, and how many of them a kill explains (the dead
  worker's reserve was on the wire and the worker taking over reserved again);
- holds lost: holds whose chain of reservations left the unit free at some
  moment, or that saw Lost or Expired (must be 0);
- takeover after each kill: from the kill to the first reserve of every hold the
  dead worker's lease still protected (worst per kill; worst and median over
  the kills), next to the lease;
- the workers' RSS and Redis's memory, sampled every ``--sample-every`` seconds.

    python benchmarks/fleet_soak.py --renewals 10000 --label fault-free
    python benchmarks/fleet_soak.py --renewals 10000 --kill-every 15 --reserve-delay 0.4 \\
        --label kills
    python benchmarks/fleet_soak.py --duration 600 --kill-every 20 --reserve-delay 0.4 \\
        --label soak
    python benchmarks/fleet_soak.py --quick     # a 15-second run; writes nothing

A full run adds (or replaces) its ``--label``'s entry in ``results/fleet_soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import _common as c
import _fleet as f

NAME = "fleet_soak"
CART = 30
MIB = 2**20


class Fleet:
    """The worker processes of one run: the live one of each slot, and every one started."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.live: list[f.Worker] = []
        self.everyone: list[f.Worker] = []
        self.owners: dict[str, str] = {}

    async def start(self, slot: int) -> f.Worker:
        name = f"w{slot}.{sum(w.name.startswith(f'w{slot}.') for w in self.everyone)}"
        worker = await f.Worker.start(name, self.config)
        ready = await worker.expect(lambda r: r["ev"] == "ready", timeout=60)
        self.owners[name] = ready["owner"]
        self.everyone.append(worker)
        if slot < len(self.live):
            self.live[slot] = worker
        else:
            self.live.append(worker)
        return worker

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for w in self.everyone for e in w.events() if e["kind"] == kind]

    def renewals(self) -> int:
        return sum(1 for w in self.everyone for r in w.records if r.get("kind") == "Renewed")


async def fill(fleet: Fleet, shop: str, tickets: list[str], interval: float) -> list[Any]:
    """Make one hold per ticket, a cart at a time, the carts spread over ``interval`` s so
    their renewals are too; returns the ``added`` records."""
    carts = [tickets[i:i + CART] for i in range(0, len(tickets), CART)]
    begin = time.monotonic()
    for number, cart in enumerate(carts):
        await asyncio.sleep(max(begin + number * interval / len(carts) - time.monotonic(), 0))
        worker = fleet.live[number % len(fleet.live)]
        await worker.send({"cmd": "add", "shop": shop, "cart": f"cart-{number}", "tickets": cart})
    return [
        await fleet.live[n % len(fleet.live)].expect(
            lambda r, c=f"cart-{n}": r["ev"] == "added" and r["cart"] == c, timeout=60)
        for n in range(len(carts))
    ]


async def kill_one(fleet: Fleet, rng: random.Random, watch: Any, prefix: str) -> dict[str, Any]:
    """SIGKILL a random worker, note what its leases still protect, start a new one."""
    slot = rng.randrange(len(fleet.live))
    victim = fleet.live[slot]
    victim.kill()
    killed_at = time.monotonic()
    await victim.process.wait()
    in_hand = await f.holds_in_hand(watch, prefix, fleet.owners[victim.name])
    await fleet.start(slot)
    return {"at": killed_at, "worker": victim.name, "in_hand": in_hand}


async def sample(fleet: Fleet, server: f.FakeServer, watch: Any, started: float) -> dict[str, Any]:
    memory = await watch.info("memory")
    seconds, micros = await watch.time()
    return {
        # due times and leases are epoch seconds on Redis's clock: a step of the host's
        # wall clock (against the monotonic one) moves every due time at once
        "wall_minus_monotonic_s": round(time.time() - time.monotonic(), 4),
        "redis_minus_wall_s": round(seconds + micros / 1e6 - time.time(), 4),
        "t": round(time.monotonic() - started, 1),
        "renewals": fleet.renewals(),
        "worker_rss_mib": [round(f.rss_bytes(w.process.pid) / MIB, 1) for w in fleet.live],
        "server_rss_mib": round(f.rss_bytes(server.process.pid) / MIB, 1),
        "redis_used_memory_mib": round(memory["used_memory"] / MIB, 2),
        "redis_rss_mib": round(memory["used_memory_rss"] / MIB, 2),
        "redis_keys": await watch.dbsize(),
        "loadavg": c.loadavg(),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import redis.asyncio

    from openticket_async import HoldPolicy
    from openticket_async._scheduler import SHARED_POLL
    from openticket_async.stores.redis import lease_for

    policy = {"renew_before": args.renew_before, "warn_before": args.renew_before + 1.0,
              "safety_margin": 0.3, "renew_jitter": 0.2, "max_hold": None}
    lease = lease_for(HoldPolicy(**policy))  # type: ignore[arg-type]
    window = args.ttl - policy["safety_margin"] - args.renew_before - policy["renew_jitter"]
    rng = random.Random(args.seed)
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("fleet_soak: redis-server is not installed")
    directory = Path(tempfile.mkdtemp(prefix="fleet-soak-"))
    redis_server = f.RedisServer(binary, directory)
    await asyncio.to_thread(redis_server.start)
    server = await f.FakeServer.start(args.ttl, args.holds)
    info, prefix = server.info, "soak:"
    watch = redis.asyncio.Redis.from_url(redis_server.url)
    fleet = Fleet({"mode": "holds", "redis": redis_server.url, "prefix": prefix,
                   "ttl": args.ttl, "policy": policy, "token": info["token"],
                   "hosts": info["hosts"]})
    kills: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    try:
        for slot in range(args.workers):
            await fleet.start(slot)
        added = await fill(fleet, info["shop"], info["tickets"], window)
        if args.reserve_delay:
            await server.ask(cmd="delay", seconds=args.reserve_delay)
        started = time.monotonic()
        next_kill = started + args.kill_every if args.kill_every else math.inf
        next_sample = started
        duration = math.inf if args.duration is None else args.duration
        renewals = math.inf if args.renewals is None else args.renewals
        while time.monotonic() - started < duration and fleet.renewals() < renewals:
            now = time.monotonic()
            if now >= next_sample:
                samples.append(await sample(fleet, server, watch, started))
                next_sample += args.sample_every
            if now >= next_kill:
                kills.append(await kill_one(fleet, rng, watch, prefix))
                next_kill += args.kill_every
            await asyncio.sleep(0.2)  # real time runs the fleet; this only looks and acts
        ended = time.monotonic()
        samples.append(await sample(fleet, server, watch, started))
        closer = fleet.live[0]
        closed = {}
        for record in added:
            await closer.send({"cmd": "close", "shop": info["shop"], "cart": record["cart"]})
            closed[record["cart"]] = (await closer.expect(
                lambda r, c=record["cart"]: r["ev"] == "closed" and r["cart"] == c, timeout=60
            ))["t"]
    finally:
        for worker in fleet.everyone:
            await worker.stop()
        dump = await server.ask(cmd="dump")
        await server.stop()
        await watch.aclose()
        await asyncio.to_thread(redis_server.stop)
        shutil.rmtree(directory, ignore_errors=True)
    if args.raw:
        raw = {"added": added, "closed": closed, "dump": dump, "started": started,
               "records": {w.name: w.records for w in fleet.everyone},
               "kills": kills}
        Path(args.raw).write_text(json.dumps(raw))
    return judge(args, fleet, added, dump, kills, samples, started, ended, closed,
                 lease=lease, poll=SHARED_POLL, apart=window / 2)


def judge(args: argparse.Namespace, fleet: Fleet, added: list[Any], dump: dict[str, Any],
          kills: list[dict[str, Any]], samples: list[dict[str, Any]], started: float,
          ended: float, closed: dict[str, float], *, lease: float, poll: float,
          apart: float) -> dict[str, Any]:
    holds = [hold for record in added for hold in record["holds"]]
    until = {hold["id"]: closed[record["cart"]] for record in added for hold in record["holds"]}
    ticket_of = {hold["id"]: hold["ticket"] for hold in holds}
    chains = {hold["id"]: [hold["reservation"]] for hold in holds}
    renewed = fleet.events("Renewed")
    by_hold: dict[str, list[float]] = defaultdict(list)
    for event in renewed:
        chains[event["hold"]].append(event["new"])
        by_hold[event["hold"]].append(event["t"])
    seen = f.records(dump["reservations"])
    by_ticket: dict[str, list[float]] = defaultdict(list)
    for record in seen.values():
        by_ticket[record.ticket_guid].append(record.reserved_at)
    reserves: dict[str, list[float]] = defaultdict(list)
    for ticket, at in dump["reserves"]:
        reserves[ticket].append(at)
    after_kill = lease + poll + 1.0
    in_hand = [(k["at"], set(k["in_hand"])) for k in kills]
    dup_reserves, by_kill = f.duplicates(
        by_ticket, apart, [(at, {ticket_of[h] for h in hs}) for at, hs in in_hand], after_kill)
    dup_renewals, renewals_by_kill = f.duplicates(by_hold, apart, in_hand, after_kill)
    takeovers = []
    for kill in kills:
        # the first reserve after the kill comes from a live worker (or the run ended first)
        later = [[t for t in reserves[ticket_of[h]] if t > kill["at"]] for h in kill["in_hand"]]
        waits = [min(times) - kill["at"] for times in later if times]
        kill["takeover_s"] = round(max(waits), 3) if waits else None
        kill["lease_left_s"] = round(max(kill["in_hand"].values()), 3) if waits else None
        if waits:
            takeovers.append(max(waits))
    gaps = f.lost_holds(chains, seen, until)
    ended_badly = {e["hold"] for e in fleet.events("Lost") + fleet.events("Expired")}
    during = sum(1 for e in renewed if started <= e["t"] <= ended)
    return {
        "label": args.label,
        "workers": args.workers,
        "holds": len(holds),
        "ttl_s": args.ttl,
        "renew_before_s": args.renew_before,
        "lease_s": lease,
        "reserve_delay_s": args.reserve_delay,
        "kill_every_s": args.kill_every or None,
        "seconds": round(ended - started, 1),
        "renewals": len(renewed),
        "renewals_per_s": round(during / (ended - started), 1),
        "reserves": len(seen),
        "duplicate_within_s": round(apart, 3),
        "duplicate_reserves": dup_reserves,
        "duplicate_reserves_per_10k": round(dup_reserves / max(len(renewed), 1) * 1e4, 2),
        "duplicate_reserves_a_kill_explains": by_kill,
        "duplicate_renewals": dup_renewals,
        "duplicate_renewals_a_kill_explains": renewals_by_kill,
        "holds_lost": len(set(gaps) | ended_badly),
        "holds_with_a_gap": len(gaps),
        "holds_lost_or_expired": len(ended_badly),
        "kills": len(kills),
        "holds_in_hand_at_kills": sum(len(k["in_hand"]) for k in kills),
        "takeover_s": {
            "worst": round(max(takeovers), 3) if takeovers else None,
            "median": round(statistics.median(takeovers), 3) if takeovers else None,
            "within_lease": sum(1 for t in takeovers if t <= lease),
            "within_lease_and_poll": sum(1 for t in takeovers if t <= lease + poll),
            "kills_with_holds_in_hand": len(takeovers),
        },
        "kill_log": [{"t": round(k["at"] - started, 1), "worker": k["worker"],
                      "holds_in_hand": len(k["in_hand"]), "takeover_s": k["takeover_s"],
                      "lease_left_s": k["lease_left_s"]} for k in kills],
        "memory": memory_summary(samples),
        "samples": samples,
    }


def memory_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = samples[0], samples[-1]
    return {
        "worker_rss_mib_first": first["worker_rss_mib"],
        "worker_rss_mib_last": last["worker_rss_mib"],
        "worker_rss_mib_max": max(max(s["worker_rss_mib"]) for s in samples),
        "redis_used_memory_mib_first": first["redis_used_memory_mib"],
        "redis_used_memory_mib_last": last["redis_used_memory_mib"],
        "redis_used_memory_mib_max": max(s["redis_used_memory_mib"] for s in samples),
        "redis_rss_mib_max": max(s["redis_rss_mib"] for s in samples),
        "loadavg": [s["loadavg"] for s in (first, last)],
    }


def render(run: dict[str, Any]) -> str:
    takeover = run["takeover_s"]
    memory = run["memory"]
    rows = [
        ["renewals", run["renewals"]],
        ["renewals/s", run["renewals_per_s"]],
        ["duplicate reserves (per 10,000)",
         f"{run['duplicate_reserves']} ({run['duplicate_reserves_per_10k']})"],
        ["  of which a kill explains", run["duplicate_reserves_a_kill_explains"]],
        ["holds lost", run["holds_lost"]],
        ["kills (holds in hand)", f"{run['kills']} ({run['holds_in_hand_at_kills']})"],
        ["takeover worst / median s", f"{takeover['worst']} / {takeover['median']}"
                                      f" (lease {run['lease_s']})"],
        ["worker RSS MiB first -> last",
         f"{memory['worker_rss_mib_first']} -> {memory['worker_rss_mib_last']}"],
        ["Redis used MiB first -> last (max)",
         f"{memory['redis_used_memory_mib_first']} -> {memory['redis_used_memory_mib_last']}"
         f" ({memory['redis_used_memory_mib_max']})"],
    ]
    return c.table([f"{run['label']}: {run['workers']} workers, {run['holds']} holds", ""], rows)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="15 s, 48 holds, a kill every 6 s: checks it runs; writes nothing")
    p.add_argument("--no-write", action="store_true", help="do not write results/")
    p.add_argument("--table-stdout", action="store_true",
                   help="print the human table after the JSON on stdout instead of on stderr")
    p.add_argument("--label", default="run", help="the run's name in results/fleet_soak.json")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--holds", type=int, default=240, help="holds (one ticket each)")
    p.add_argument("--ttl", type=float, default=6.0, help="the fake server's reservation TTL, s")
    p.add_argument("--renew-before", type=float, default=2.0, help="the policy's renewal lead, s")
    p.add_argument("--renewals", type=int, help="stop after this many renewals")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--kill-every", type=float, default=0.0, help="SIGKILL a worker every N s")
    p.add_argument("--reserve-delay", type=float, default=0.0, help="every reserve waits N s")
    p.add_argument("--sample-every", type=float, default=10.0, help="memory sampled every N s")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--raw", help="also write every record of the run (JSON) to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.holds, args.kill_every = 15.0, 48, 6.0
        args.reserve_delay, args.sample_every, args.label = 0.4, 5.0, "quick"
    if args.renewals is None and args.duration is None:
        p.error("give --renewals or --duration (or both)")
    return args


def main() -> None:
    args = arguments()
    started = time.monotonic()
    fleet_run = c.run_on("asyncio", lambda: run(args))
    fleet_run["wall_s"] = round(time.monotonic() - started, 1)
    fleet_run["command"] = "python " + " ".join(["benchmarks/fleet_soak.py", *sys.argv[1:]])
    fleet_run["machine"] = c.machine()
    path = c.RESULTS_DIR / f"{NAME}.json"
    writes = not (args.quick or args.no_write)
    earlier = json.loads(path.read_text())["runs"] if writes and path.exists() else []
    result = {
        "benchmark": NAME,
        "what": "a fleet of worker processes on one Redis renewing holds at the fake server "
                "(its own process) on real time: duplicates, holds lost, takeovers after kills",
        "runs": [r for r in earlier if r["label"] != args.label] + [fleet_run],
    }
    c.emit(NAME, result, render(fleet_run), args)


if __name__ == "__main__":
    main()
