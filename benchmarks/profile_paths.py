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

``add-cancel --instructions`` counts the manager's add and cancel per hold the same
way (``--side floor``: the floor of ``scheduler_scale.py``), four runs of up to 12,000
holds, the collector off; ``--stub NAME`` takes one piece of the manager out of the
counted process (see ``STUBS``), so the difference is what that piece costs.
About a minute per run:

    python benchmarks/profile_paths.py add-cancel --instructions
    python benchmarks/profile_paths.py add-cancel --instructions --stub plan
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import functools
import gc
import os
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


async def add_cancel_counted(side: str, holds: int, adds: int, cancels: int) -> None:
    """One ``--instructions`` run of ``add-cancel``: ``holds`` Reservations prebuilt, the
    first ``adds`` added through ``side`` and the first ``cancels`` of those removed, the
    collector off; then the process ends at once, so that no teardown depends on N."""
    alt = alts.ALL[side]()
    deadlines = scheduler_scale.parked(holds)
    alt.prepare(deadlines)
    await alt.start(lambda kind, due: None)
    for name in STUBS_ON:
        STUBS[name]()
    kept: list[Any] = []
    gc.collect()
    gc.disable()
    await alt.add_all(deadlines[:adds], kept)
    await alt.cancel_all(kept[:cancels])
    sys.stdout.flush()
    os._exit(0)


def _stub_checks() -> None:
    from openticket_async import _cart

    _cart.guid = lambda value, name: value  # type: ignore[assignment]
    _cart.Cart._check_usable = lambda self: None  # type: ignore[method-assign]


def _stub_reserve_layer() -> None:
    from openticket_async import ReservationManager

    def reserve(self: Any, shop_guid: str, ticket_guid: str, sent: float) -> Any:
        return self.client.reserve_ticket(shop_guid, ticket_guid)

    ReservationManager._reserve = reserve  # type: ignore[method-assign]


def _stub_latency() -> None:
    from openticket_async import _planning, _renewal

    _planning.LatencyTracker.record = lambda self, seconds: None  # type: ignore[method-assign]
    _renewal.plausible = lambda *args: None  # type: ignore[assignment]


def _stub_plan() -> None:
    from openticket_async import _executor

    def track(self: Any, hold: Any) -> None:
        self._memory.put(hold, "renew", hold.reservation.deadline - 60.0)

    _executor.Executor.track = track  # type: ignore[method-assign]


def _stub_wake() -> None:
    from openticket_async import _scheduler

    _scheduler.Wakeup.wake_for = lambda self, due: None  # type: ignore[method-assign]


def _stub_linger() -> None:
    from openticket_async import _executor

    _executor.Executor._linger = lambda self, hold, reservation, now: None  # type: ignore


def _stub_announce() -> None:
    from openticket_async import _executor

    _executor.Executor._announce = lambda self, hold, emit, now: None  # type: ignore


def _stub_step() -> None:
    from openticket_async import _executor

    def step(self: Any, hold: Any, inp: Any) -> None:
        self._memory.remove(hold)

    _executor.Executor.step = step  # type: ignore[method-assign]


#: ``--stub NAME``: one piece of the manager's add or cancel taken out, in the counted
#: process only, to count what it costs (the difference against a run without it)
STUBS = {
    "checks": _stub_checks,  # add: the ticket GUID check, the cart and manager open checks
    "reserve-layer": _stub_reserve_layer,  # add: the renewals' reserve coroutine (and 2 below)
    "latency": _stub_latency,  # add: the latency record and the stated-deadline check
    "plan": _stub_plan,  # add: plan() and its Plan value, put through _apply
    "wake": _stub_wake,  # add: the scheduler's wake check
    "linger": _stub_linger,  # cancel: the released unit recorded as lingering
    "announce": _stub_announce,  # cancel: the Released event's listener check
    "step": _stub_step,  # cancel: the lifecycle step and its actions, but the store removal
}
STUBS_ON: list[str] = []


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


def count_add_cancel(argv: list[str], side: str, small: int, large: int) -> None:
    """Count the instructions of ``side``'s add and cancel per hold under cachegrind.

    Four runs, each with ``large`` Reservations prebuilt: ``small`` and ``large`` adds,
    then ``large`` adds with ``small`` and ``large`` cancels; the differences over
    ``large - small`` holds are the add and the cancel (start-up, imports and the
    prebuilding cancel out). The garbage collector is off in the counted part.
    """
    base = [arg for arg in argv[1:] if arg != "--instructions"]
    runs = {}
    for adds, cancels in ((small, 0), (large, 0), (large, small), (large, large)):
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                   "--cachegrind-out-file=/dev/null", sys.executable, __file__, *base,
                   "--counted", str(large), str(adds), str(cancels)]
        err = subprocess.run(command, capture_output=True, text=True, check=True).stderr
        found = re.search(r"I\s+refs:\s+([\d,]+)", err)
        assert found is not None, err
        runs[adds, cancels] = int(found.group(1).replace(",", ""))
    holds = large - small
    add = (runs[large, 0] - runs[small, 0]) / holds
    cancel = (runs[large, large] - runs[large, small]) / holds
    stubs = f", without {', '.join(STUBS_ON)}" if STUBS_ON else ""
    print(f"{side}{stubs}: instructions per hold over {holds:,} holds (collector off): "
          f"add {add:,.0f}, cancel {cancel:,.0f}")


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
    p.add_argument("--side", choices=("manager", "floor"), default="manager",
                   help="add-cancel: the manager, or the floor of scheduler_scale.py")
    p.add_argument("--holds", type=int, nargs=2, default=(2_000, 12_000),
                   metavar=("SMALL", "LARGE"),
                   help="add-cancel --instructions: the two numbers of holds counted")
    p.add_argument("--stub", action="append", choices=sorted(STUBS), default=[],
                   help="add-cancel --instructions: take this piece of the manager out "
                        "(repeatable), to count what it costs")
    p.add_argument("--counted", type=int, nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    STUBS_ON.extend(args.stub)
    if args.counted:
        asyncio.run(add_cancel_counted(args.side, *args.counted))
        return
    if args.instructions and args.path == "add-cancel":
        count_add_cancel(sys.argv, args.side, *args.holds)
        return
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
