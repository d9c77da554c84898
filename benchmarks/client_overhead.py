"""What OpenTicketClient.reserve_ticket costs on top of raw aiohttp + json.loads.

Measured on the answers users meet, not only the leanest: each *case* is a
fake server (a separate process, 127.0.0.1) answering in one shape (see
``CASES``: lean, flat and nested product lines; snake_case and camelCase keys;
with and without ``reserved_at``/``expires_at``). In each case the calls rotate
over 1, 100 and 10,000 tickets (a manager renewing that many holds) at
concurrency 1, 16 and 64.

Both sides reserve the same tickets in the same order on the same server, with
the same headers (Authorization, Accept), the same connection limit and
timeouts, in alternating rounds (SDK first in even rounds, raw first in odd
ones). The SDK side decodes into a Reservation; the raw side does
``json.loads`` of the body. Client CPU per request is this process's
``time.process_time`` over the side's requests; the server's CPU is reported
too, from /proc, to show when the server is the bottleneck. Ratios are given
over the totals and as the median of the per-round paired ratios, with their
spread (lowest and highest round); the targets are judged on the medians,
which other work on the machine (hitting one side of one round) moves least.

Before its timed rounds, each side reserves every ticket of the rotation once
(at least 300 calls), so that the timed calls are renewals of tickets seen
before, as a manager's are. The *first answer* is shown apart: a fresh client
(or raw session) reserving a ticket the process never reserved, so it pays for
its session, its connection and the decoder's first look at the ticket; then the
same client's second call.

    python benchmarks/client_overhead.py            # full run, writes results/
    python benchmarks/client_overhead.py --quick    # seconds (rotations 1, 100); asserts nothing
    python benchmarks/client_overhead.py --cases lean flat --rotations 1 --no-write
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any, NamedTuple

import _common as c
import _raw

NAME = "client_overhead"
CONCURRENCY = (1, 16, 64)
ROTATIONS = (1, 100, 10_000)
TARGET_CPU_RATIO = 1.15
TARGET_THROUGHPUT_RATIO = 0.9
#: tickets kept apart for the first-answer samples (never reserved before them)
FIRST_SAMPLES = 5


class Case(NamedTuple):
    """One shape of the reserve answer, as the fake server's ``serve`` options."""

    style: str  # "snake" or "camel" keys
    product_shape: str  # "lean", "flat" or "nested" product lines
    products: int  # product lines per answer
    expiry: bool  # whether reserved_at/expires_at are sent

    def options(self, tickets: int) -> list[str]:
        """The ``serve`` arguments of this case, with ``tickets`` tickets."""
        extra = [] if self.expiry else ["--no-expiry"]
        return ["--tickets", str(tickets), "--products", str(self.products),
                "--style", self.style, "--product-shape", self.product_shape, *extra]


#: The answer shapes measured: each differs from ``lean`` in one or two ways.
CASES = {
    "lean": Case("snake", "lean", 1, True),
    "lean-camel": Case("camel", "lean", 1, True),
    "lean-no-expiry": Case("snake", "lean", 1, False),
    "flat": Case("snake", "flat", 3, True),
    "flat-camel": Case("camel", "flat", 3, True),
    "nested": Case("snake", "nested", 3, True),
    "nested-camel-no-expiry": Case("camel", "nested", 3, False),
}


def new_client(server: c.ServerProcess) -> Any:
    from openticket_async import BearerToken, Hosts, OpenTicketClient

    return OpenTicketClient(auth=BearerToken(server.token), hosts=Hosts(**server.hosts))


async def measure_case(args: Any, name: str, server: c.ServerProcess) -> dict[str, Any]:
    """Every rotation and concurrency of one case, and its first answers."""
    most = max(args.rotations)
    tickets, spare = server.tickets[:most], server.tickets[most:]
    first = await first_answers(server, spare)
    client = new_client(server)
    cells = []
    async with client:
        await client.reserve_ticket(server.shop, tickets[0])  # the SDK makes its session now
        settings = _raw.sdk_session_settings(client)
        async with _raw.raw_session(settings) as session:
            for rotation in args.rotations:
                chosen = tickets[:rotation]
                sides: dict[str, _raw.Call] = {
                    "sdk": sdk_reserve(client, server.shop, chosen),
                    "raw": _raw.raw_reserve(session, server.reserve_urls(chosen), server.token),
                }
                for conc in args.concurrency:
                    cell = await measure_cell(args, server, sides, conc, rotation)
                    cells.append({"case": name, "rotation": rotation, **cell})
                    print(f"  {name} rotation {rotation} concurrency {conc}: cpu "
                          f"{cell['ratio_sdk_over_raw']['client_cpu_per_request_paired_median']}"
                          f" rps {cell['ratio_sdk_over_raw']['requests_per_s_paired_median']}",
                          file=sys.stderr, flush=True)
    limits = {"limit": settings["limit"], "limit_per_host": settings["limit_per_host"],
              "timeout": repr(settings["timeout"])}
    return {"case": name, "shape": CASES[name]._asdict(), "answer_bytes": first["answer_bytes"],
            "first_answer": first["samples"], "session_settings_both_sides": limits,
            "cells": cells}


def sdk_reserve(client: Any, shop: str, tickets: list[str]) -> _raw.Call:
    """``client.reserve_ticket`` of each of ``tickets`` in turn, round and round."""
    next_ticket = _raw.rotate(tickets)

    async def reserve() -> Any:
        return await client.reserve_ticket(shop, next_ticket())

    return reserve


async def first_answers(server: c.ServerProcess, spare: list[str]) -> dict[str, Any]:
    """A fresh client's first and second reserve, against a fresh raw session's.

    Each sample uses a ticket nobody reserved before; medians of the samples.
    """
    got: dict[str, list[dict[str, float]]] = {"sdk": [], "raw": []}
    settings = _raw.sdk_session_settings(new_client(server))
    for index, ticket in enumerate(spare):
        for side in (("sdk", "raw") if index % 2 == 0 else ("raw", "sdk")):
            if side == "sdk":
                client = new_client(server)
                async with client:
                    sample = await _timed_pair(sdk_reserve(client, server.shop, [ticket]))
            else:
                async with _raw.raw_session(settings) as session:
                    call = _raw.raw_reserve(session, server.reserve_url(ticket), server.token)
                    sample = await _timed_pair(call)
                    answer = await call()
            got[side].append(sample)
    # the fake writes its answers with json.dumps' default separators
    size = len(json.dumps(answer).encode())
    samples = {side: {key: round(statistics.median(s[key] for s in rows), 1)
                      for key in rows[0]} for side, rows in got.items()}
    return {"answer_bytes": size, "samples": samples}


async def _timed_pair(call: _raw.Call) -> dict[str, float]:
    out: dict[str, float] = {}
    for label in ("first", "second"):
        cpu0, t0 = time.process_time(), time.perf_counter()
        await call()
        out[f"{label}_cpu_us"] = (time.process_time() - cpu0) * 1e6
        out[f"{label}_wall_us"] = (time.perf_counter() - t0) * 1e6
    return out


async def measure_cell(
    args: Any, server: c.ServerProcess, sides: dict[str, _raw.Call], conc: int, rotation: int
) -> dict[str, Any]:
    if args.quick:
        per_round, rounds, warmup = 50 * min(conc, 4), 1, 20
    else:
        per_round = args.requests if conc > 1 else max(args.requests // 3, 300)
        rounds, warmup = args.rounds, 300
    # Each side reserves every ticket of the rotation at least once before its timed
    # rounds: a manager renews tickets it reserved before, so the timed calls meet
    # what renewals meet, whichever cell came before (a ticket's first answer is
    # measured apart, in first_answers)
    for call in sides.values():
        await _raw.drive(call, max(warmup, rotation), conc)
    acc: dict[str, dict[str, Any]] = {
        name: {"wall": 0.0, "cpu": 0.0, "server_cpu": 0.0, "n": 0, "lat": [], "rounds": []}
        for name in sides
    }
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            with c.settled_gc():
                s0 = server.cpu_seconds()
                got = await _raw.drive(sides[name], per_round, conc)
                s1 = server.cpu_seconds()
            a = acc[name]
            a["wall"] += got["wall"]
            a["cpu"] += got["cpu"]
            a["server_cpu"] += s1 - s0
            a["n"] += per_round
            a["lat"].extend(got["latencies"])
            a["rounds"].append({"rps": per_round / got["wall"],
                                "cpu_us": got["cpu"] / per_round * 1e6})
    out: dict[str, Any] = {"concurrency": conc, "requests_per_side": per_round * rounds,
                           "rounds": rounds}
    for name, a in acc.items():
        out[name] = {
            "requests_per_s": round(a["n"] / a["wall"], 1),
            "client_cpu_us_per_request": round(a["cpu"] / a["n"] * 1e6, 2),
            "server_cpu_us_per_request": round(a["server_cpu"] / a["n"] * 1e6, 2),
            "client_cpu_share_of_wall": round(a["cpu"] / a["wall"], 3),
            "latency": c.summary_ms(a["lat"]),
            "per_round": [{k: round(v, 2) for k, v in x.items()} for x in a["rounds"]],
        }
    sdk, raw = out["sdk"], out["raw"]
    out["ratio_sdk_over_raw"] = {
        "client_cpu_per_request": c.ratio(sdk["client_cpu_us_per_request"],
                                          raw["client_cpu_us_per_request"]),
        "requests_per_s": c.ratio(sdk["requests_per_s"], raw["requests_per_s"]),
        "p50_latency": c.ratio(sdk["latency"]["p50_ms"], raw["latency"]["p50_ms"]),
        "p99_latency": c.ratio(sdk["latency"]["p99_ms"], raw["latency"]["p99_ms"]),
    }
    q = out["ratio_sdk_over_raw"]
    pairs = list(zip(sdk["per_round"], raw["per_round"], strict=True))
    q["client_cpu_per_request_by_round"] = [c.ratio(s["cpu_us"], w["cpu_us"]) for s, w in pairs]
    q["requests_per_s_by_round"] = [c.ratio(s["rps"], w["rps"]) for s, w in pairs]
    # Other work on the machine hits one side of a round at random: the median of
    # the paired per-round ratios is what the targets are judged on.
    q["client_cpu_per_request_paired_median"] = round(
        statistics.median(q["client_cpu_per_request_by_round"]), 3)
    q["requests_per_s_paired_median"] = round(
        statistics.median(q["requests_per_s_by_round"]), 3)
    return out


def targets(cases: list[dict[str, Any]]) -> dict[str, Any]:
    # The target is about the work the SDK adds, which shows at load: judged at the
    # concurrency levels where the client is busy (16 and 64); 1 is reported too.
    busy = [cell for case in cases for cell in case["cells"] if cell["concurrency"] > 1]
    if not busy:
        return {}

    def where(cell: dict[str, Any]) -> str:
        return f"{cell['case']}, rotation {cell['rotation']}, concurrency {cell['concurrency']}"

    cpu = [(cell["ratio_sdk_over_raw"]["client_cpu_per_request_paired_median"], where(cell))
           for cell in busy]
    rps = [(cell["ratio_sdk_over_raw"]["requests_per_s_paired_median"], where(cell))
           for cell in busy]
    cpu_worst, rps_worst = max(cpu), min(rps)
    return {
        "client_cpu_per_reserve_vs_raw": {
            "target": f"<= {TARGET_CPU_RATIO}x on every shape and rotation at concurrency 16 "
                      "and 64 (median of paired rounds)",
            "worst": cpu_worst[0], "worst_at": cpu_worst[1],
            "met": cpu_worst[0] <= TARGET_CPU_RATIO,
            "missed_at": [w for v, w in cpu if v > TARGET_CPU_RATIO],
        },
        "throughput_vs_raw": {
            "target": f">= {TARGET_THROUGHPUT_RATIO}x on every shape and rotation at "
                      "concurrency 16 and 64 (median of paired rounds)",
            "worst": rps_worst[0], "worst_at": rps_worst[1],
            "met": rps_worst[0] >= TARGET_THROUGHPUT_RATIO,
            "missed_at": [w for v, w in rps if v < TARGET_THROUGHPUT_RATIO],
        },
    }


def spread(values: list[float]) -> str:
    """The lowest and highest of the per-round ratios, as ``low-high``."""
    return f"{min(values):.2f}-{max(values):.2f}"


def render(result: dict[str, Any]) -> str:
    parts = []
    for run in result["runs"]:
        rows = []
        for case in run["cases"]:
            for cell in case["cells"]:
                q = cell["ratio_sdk_over_raw"]
                rows.append([case["case"], cell["rotation"], cell["concurrency"],
                             cell["sdk"]["client_cpu_us_per_request"],
                             cell["raw"]["client_cpu_us_per_request"],
                             q["client_cpu_per_request_paired_median"],
                             spread(q["client_cpu_per_request_by_round"]),
                             cell["sdk"]["requests_per_s"], cell["raw"]["requests_per_s"],
                             q["requests_per_s_paired_median"],
                             spread(q["requests_per_s_by_round"])])
        parts.append(f"loop: {run['loop']}\n" + c.table(
            ["case", "tickets", "conc", "sdk cpu us", "raw cpu us", "cpu ratio", "spread",
             "sdk req/s", "raw req/s", "req/s ratio", "spread"], rows))
        first = [[case["case"], case["answer_bytes"], s["sdk"]["first_cpu_us"],
                  s["raw"]["first_cpu_us"], s["sdk"]["second_cpu_us"], s["raw"]["second_cpu_us"]]
                 for case in run["cases"] for s in [case["first_answer"]]]
        parts.append("first answers (median CPU us)\n" + c.table(
            ["case", "bytes", "sdk first", "raw first", "sdk second", "raw second"], first))
        if not result["quick"]:
            for key, t in run["targets"].items():
                parts.append(f"  {key}: {t['target']}: worst {t['worst']} ({t['worst_at']}) "
                             f"-> {c.verdict(t['met'])}")
    return "\n".join(parts)


def main() -> None:
    p = c.parser(__doc__.split("\n")[0], default_loop="asyncio")
    p.add_argument("--requests", type=int, default=2_000,
                   help="requests per side per round at concurrency 16 and 64 (1: a third)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per side")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--rotations", nargs="+", type=int, choices=ROTATIONS,
                   help="tickets the calls rotate over (default: all; --quick: 1 and 100)")
    p.add_argument("--concurrency", nargs="+", type=int, choices=CONCURRENCY,
                   default=CONCURRENCY)
    args = p.parse_args()
    if args.rotations is None:  # a quick run proves every case runs, in seconds
        args.rotations = ROTATIONS[:2] if args.quick else ROTATIONS
    loops, notes = c.loops_for(args.loop)
    pinning = c.pin_cpus(not args.no_pin)
    runs = []
    for kind in loops:
        cases = []
        for name in args.cases:
            options = CASES[name].options(max(args.rotations) + FIRST_SAMPLES)
            with c.fake_server(options=options) as server:
                cases.append(c.run_on(kind, lambda n=name, s=server: measure_case(args, n, s)))
        runs.append({"loop": kind, "cases": cases, "targets": targets(cases)})
    result: dict[str, Any] = {
        "benchmark": NAME,
        "what": "reserve_ticket via the SDK (decoded Reservation) vs raw aiohttp GET + "
                "json.loads; per answer shape, tickets rotating over 1, 100 and 10,000; "
                "same server process, headers, connection limit, timeouts, concurrency; "
                "alternating rounds",
        "server": "python -m openticket_async.testing serve (separate process, one per case)",
        "cases": {name: CASES[name]._asdict() for name in args.cases},
        "notes": notes,
        "pinning": pinning,
        "runs": runs,
    }
    result["quick"] = args.quick
    c.emit(NAME, result, render(result), args)


if __name__ == "__main__":
    main()
