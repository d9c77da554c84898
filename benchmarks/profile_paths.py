"""Run one hot path of the SDK in a loop for a sampling profiler, and summarize its output.

The paths the benchmarks found costly, each alone:

- ``add-cancel``: 100k ``cart.add`` then 100k ``cart.remove`` with the instant
  stand-in client (the manager's own add and cancel paths), three times;
- ``fire``: 100k deadlines within 2 s firing ``Expiring`` then ``Expired``;
- ``reserve``: 30k ``OpenTicketClient.reserve_ticket`` at concurrency 16 against
  the fake server (its own process); ``reserve-raw`` is the raw aiohttp equivalent;
  ``--case`` picks the answer shape and ``--rotation`` the tickets the calls
  rotate over (as in ``client_overhead.py``);
- ``burst``: two rounds of 10k renewals due at once through the manager.

    .venv/bin/py-spy record -r 500 -f raw -o /tmp/add.txt -- \\
        .venv/bin/python benchmarks/profile_paths.py add-cancel
    python benchmarks/profile_paths.py --summarize /tmp/add.txt --under Cart.add

Without py-spy, ``--cprofile FILE`` profiles the timed reserve calls (or the whole
``add-cancel`` path) with cProfile (deterministic, so it inflates small functions;
compare ``reserve`` with ``reserve-raw`` under it, or one commit with another,
never with an unprofiled run):

    python benchmarks/profile_paths.py reserve --case flat --rotation 10000 \\
        --requests 20000 --cprofile /tmp/sdk.pstats

``--summarize`` prints each function's share of the samples (inclusive and self),
optionally only of the stacks that pass through ``--under``.

``--instructions`` counts instead of timing, for figures that other work on the
machine cannot move: it runs the reserve path twice under valgrind's cachegrind
(``--requests`` calls, and 200), and prints the difference per call of the
instructions executed and of the simulated cache misses of this process
(the server is not counted). About two minutes per run:

    python benchmarks/profile_paths.py reserve --case lean --rotation 10000 \\
        --requests 1700 --instructions

The timed calls of that run meet each ticket for the first time (1,700 calls
over 10,000 tickets). A manager renews the same tickets round and round: with
``--warmup 10000`` every ticket was seen once before the timed calls (about
five minutes under cachegrind).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import functools
import gc
import pstats
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import _alternatives as alts
import _common as c
import _raw
import client_overhead
import renewal_burst
import scheduler_scale


async def add_cancel() -> None:
    for _ in range(3):
        manager = alts.Manager()
        deadlines = scheduler_scale.parked(100_000)
        manager.prepare(deadlines)
        await manager.start(lambda kind, due: None)
        holds: list[Any] = []
        await manager.add_all(deadlines, holds)
        await manager.cancel_all(holds)
        await manager.stop()


async def fire() -> None:
    make = functools.partial(alts.Manager, warn_before=3.0)
    print(await scheduler_scale.punctuality(make, 100_000, 2.0, 6.0, 3.0))


async def reserve(
    server: c.ServerProcess, side: str, rotation: int, requests: int, warmup: int
) -> None:
    from openticket_async import BearerToken, Hosts, OpenTicketClient

    client = OpenTicketClient(auth=BearerToken(server.token), hosts=Hosts(**server.hosts))
    async with client:
        shop, tickets = server.shop, server.tickets[:rotation]
        next_ticket = _raw.rotate(tickets)

        async def sdk() -> Any:
            return await client.reserve_ticket(shop, next_ticket())

        await sdk()
        async with _raw.raw_session(_raw.sdk_session_settings(client)) as session:
            raw = _raw.raw_reserve(session, server.reserve_urls(tickets), server.token)
            if side == "burst":
                for _ in range(2):
                    await renewal_burst.manager_round(client, server, 10_000, 16)
                return
            call = sdk if side == "reserve" else raw
            await _raw.drive(call, warmup, 16)
            if PROFILE is not None:
                PROFILE.enable()
            with collector_watch() as collections:
                got = await _raw.drive(call, requests, 16)
            if PROFILE is not None:
                PROFILE.disable()
            print(f"{side}: {got['cpu'] / requests * 1e6:.1f} us CPU per request; garbage "
                  f"collections per 1,000 requests: " + ", ".join(
                      f"gen{g} {n * 1000 / requests:.1f}" for g, n in enumerate(collections[:3]))
                  + f"; {collections[3] / requests * 1e6:.2f} us per request in them")


@contextlib.contextmanager
def collector_watch() -> Iterator[list[float]]:
    """Count the garbage collections per generation while the block runs, and their CPU
    seconds: ``[gen0, gen1, gen2, seconds]``, filled in when the block ends.

    A young collection walks every young object, the requests in flight included,
    so what a client leaves in its tables per request shows here.
    """
    counts: list[float] = [0, 0, 0, 0.0]
    started = [0.0]

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            counts[info["generation"]] += 1
            counts[3] += time.process_time() - started[0]

    gc.collect()
    gc.callbacks.append(watch)
    try:
        yield counts
    finally:
        gc.callbacks.remove(watch)


#: the cProfile profiler of a ``--cprofile`` run (it profiles the timed calls only)
PROFILE: cProfile.Profile | None = None


#: cachegrind's summary lines counted by ``--instructions``, and their short names
_COUNTED = {"I   refs": "instructions", "I1  misses": "I1 misses", "D1  misses": "D1 misses",
            "LL misses": "LL misses"}


def count_instructions(argv: list[str], requests: int) -> None:
    """Run this script's path under cachegrind with ``requests`` and 200 calls; print the
    difference per call (warm-up, imports and server start cancel out)."""
    base = [arg for arg in argv if arg != "--instructions"]
    totals = []
    for n in (requests, 200):
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=yes",
                   "--cachegrind-out-file=/dev/null", sys.executable, *base, "--requests", str(n)]
        err = subprocess.run(command, capture_output=True, text=True, check=True).stderr
        totals.append({name: int(re.search(re.escape(line) + r":\s+([\d,]+)", err)
                                 .group(1).replace(",", ""))  # type: ignore[union-attr]
                       for line, name in _COUNTED.items()})
    calls = requests - 200
    print(f"per call, over {calls} calls: " + ", ".join(
        f"{name} {(totals[0][name] - totals[1][name]) / calls:,.0f}" for name in totals[0]))


def summarize(path: str, under: str | None, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as samples:
        lines = samples.read().splitlines()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \(.*", "", f) for f in stack.split(";")]
        if under is not None:
            if under not in frames:
                continue
            frames = frames[frames.index(under):]
        n = int(count)
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    print(f"{total} samples" + (f" through {under}" if under else ""))
    print("inclusive:")
    for name, n in inclusive.most_common(top):
        print(f"  {n / total * 100:5.1f}%  {name}")
    print("self:")
    for name, n in own.most_common(top):
        print(f"  {n / total * 100:5.1f}%  {name}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("path", nargs="?",
                   choices=("add-cancel", "fire", "reserve", "reserve-raw", "burst"))
    p.add_argument("--summarize", metavar="RAW_FILE", help="py-spy raw output to summarize")
    p.add_argument("--under", help="only stacks through this function (e.g. Cart.add)")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--case", choices=list(client_overhead.CASES), default="lean",
                   help="reserve paths: the answer shape (see client_overhead.CASES)")
    p.add_argument("--rotation", type=int, default=1,
                   help="reserve paths: how many tickets the calls rotate over")
    p.add_argument("--requests", type=int, default=30_000, help="reserve paths: timed calls")
    p.add_argument("--warmup", type=int, default=500,
                   help="reserve paths: calls before the timed ones; as many as --rotation "
                        "for a client that has seen every ticket (a manager renewing them)")
    p.add_argument("--cprofile", metavar="FILE",
                   help="reserve paths: profile the timed calls with cProfile, write the stats "
                        "to FILE and print the top functions by own time (add-cancel too)")
    p.add_argument("--instructions", action="store_true",
                   help="reserve paths: count instructions per call under cachegrind instead")
    args = p.parse_args()
    if args.instructions:
        if args.path not in ("reserve", "reserve-raw") or args.requests <= 200:
            p.error("--instructions counts a reserve path, with --requests over 200")
        count_instructions(sys.argv, args.requests)
        return
    if args.summarize:
        summarize(args.summarize, args.under, args.top)
        return
    global PROFILE
    started = time.monotonic()
    if args.path == "add-cancel":
        if args.cprofile:
            PROFILE = cProfile.Profile()
            PROFILE.enable()
        asyncio.run(add_cancel())
        if PROFILE is not None:
            PROFILE.disable()
            PROFILE.dump_stats(args.cprofile)
            pstats.Stats(args.cprofile).sort_stats("tottime").print_stats(args.top)
    elif args.path == "fire":
        asyncio.run(fire())
    elif args.path is not None:
        c.pin_cpus(True)
        if args.cprofile:
            PROFILE = cProfile.Profile()
        options = client_overhead.CASES[args.case].options(max(args.rotation, 1))
        with c.fake_server(options=options) as server:
            asyncio.run(reserve(server, args.path, args.rotation, args.requests, args.warmup))
        if PROFILE is not None:
            PROFILE.dump_stats(args.cprofile)
            pstats.Stats(args.cprofile).sort_stats("tottime").print_stats(args.top)
    else:
        p.error("name a path or --summarize a file")
    print(f"ran {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
