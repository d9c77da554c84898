"""What OpenTicketClient.reserve_ticket costs on top of raw aiohttp + json.loads.

Both sides reserve the same ticket on the same fake server (a separate process,
127.0.0.1), with the same headers (Authorization, Accept), the same connection
limit and timeouts, at the same concurrency, in alternating rounds (SDK first in
even rounds, raw first in odd ones). The SDK side decodes into a Reservation;
the raw side does ``json.loads`` of the body. Client CPU per request is this
process's ``time.process_time`` over the side's requests; the server's CPU is
reported too, from /proc, to show when the server is the bottleneck. Ratios are
given over the totals and as the median of the per-round paired ratios; the
targets are judged on the latter, which other work on the machine (hitting one
side of one round) moves least.

    python benchmarks/client_overhead.py            # full run, writes results/
    python benchmarks/client_overhead.py --quick    # seconds; asserts nothing
"""

from __future__ import annotations

import statistics
from typing import Any

import _common as c
import _raw

NAME = "client_overhead"
CONCURRENCY = (1, 16, 64)
TARGET_CPU_RATIO = 1.15
TARGET_THROUGHPUT_RATIO = 0.9

async def measure(args: Any, server: c.ServerProcess) -> dict[str, Any]:
    from openticket_async import BearerToken, Hosts, OpenTicketClient

    client = OpenTicketClient(auth=BearerToken(server.token), hosts=Hosts(**server.hosts))
    shop, ticket = server.shop, server.tickets[0]

    async def sdk() -> Any:
        return await client.reserve_ticket(shop, ticket)

    async with client:
        await sdk()  # the SDK makes its session on first use: then read its settings
        settings = _raw.sdk_session_settings(client)
        async with _raw.raw_session(settings) as session:
            sides: dict[str, _raw.Call] = {
                "sdk": sdk, "raw": _raw.raw_reserve(session, server.reserve_url(), server.token)
            }
            rows = [await measure_concurrency(args, server, sides, conc) for conc in CONCURRENCY]
    limits = {"limit": settings["limit"], "limit_per_host": settings["limit_per_host"],
              "timeout": repr(settings["timeout"])}
    return {"session_settings_both_sides": limits, "by_concurrency": rows}


async def measure_concurrency(
    args: Any, server: c.ServerProcess, sides: dict[str, _raw.Call], conc: int
) -> dict[str, Any]:
    if args.quick:
        per_round, rounds, warmup = 100 * min(conc, 4), 1, 50
    else:
        per_round = args.requests if conc > 1 else max(args.requests // 3, 500)
        rounds, warmup = args.rounds, 500
    for call in sides.values():
        await _raw.drive(call, warmup, conc)
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


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    # The target is about the work the SDK adds, which shows at load: judged at the
    # concurrency levels where the client is busy (16 and 64); 1 is reported too.
    busy = [r for r in rows if r["concurrency"] > 1]
    cpu_worst = max(r["ratio_sdk_over_raw"]["client_cpu_per_request_paired_median"]
                    for r in busy)
    rps_worst = min(r["ratio_sdk_over_raw"]["requests_per_s_paired_median"] for r in busy)
    return {
        "client_cpu_per_reserve_vs_raw": {
            "target": f"<= {TARGET_CPU_RATIO}x at concurrency 16 and 64 (median of paired "
                      "rounds)",
            "worst": cpu_worst, "met": cpu_worst <= TARGET_CPU_RATIO,
        },
        "throughput_vs_raw": {
            "target": f">= {TARGET_THROUGHPUT_RATIO}x at concurrency 16 and 64 (median of "
                      "paired rounds)",
            "worst": rps_worst, "met": rps_worst >= TARGET_THROUGHPUT_RATIO,
        },
    }


def render(result: dict[str, Any]) -> str:
    parts = []
    for run in result["runs"]:
        rows = []
        for r in run["by_concurrency"]:
            for side in ("sdk", "raw"):
                s = r[side]
                rows.append([r["concurrency"], side, s["requests_per_s"],
                             s["client_cpu_us_per_request"], s["latency"]["p50_ms"],
                             s["latency"]["p99_ms"], s["server_cpu_us_per_request"]])
            q = r["ratio_sdk_over_raw"]
            rows.append([r["concurrency"], "sdk/raw", q["requests_per_s"],
                         q["client_cpu_per_request"], q["p50_latency"], q["p99_latency"], ""])
            rows.append([r["concurrency"], "paired median", q["requests_per_s_paired_median"],
                         q["client_cpu_per_request_paired_median"], "", "", ""])
        parts.append(f"loop: {run['loop']}\n" + c.table(
            ["conc", "side", "req/s", "client cpu us/req", "p50 ms", "p99 ms",
             "server cpu us/req"], rows))
        if not result["quick"]:
            for key, t in run["targets"].items():
                parts.append(f"  {key}: {t['target']}: worst {t['worst']} -> {c.verdict(t['met'])}")
    return "\n".join(parts)


def main() -> None:
    p = c.parser(__doc__.split("\n")[0], default_loop="asyncio")
    p.add_argument("--requests", type=int, default=6_000,
                   help="requests per side per round at concurrency 16 and 64 (1: a third)")
    p.add_argument("--rounds", type=int, default=10, help="alternating rounds per side")
    args = p.parse_args()
    loops, notes = c.loops_for(args.loop)
    pinning = c.pin_cpus(not args.no_pin)
    runs = []
    with c.fake_server() as server:
        for kind in loops:
            got = c.run_on(kind, lambda: measure(args, server))
            got = {"loop": kind, **got}
            got["targets"] = targets(got["by_concurrency"])
            runs.append(got)
    result: dict[str, Any] = {
        "benchmark": NAME,
        "what": "reserve_ticket via the SDK (decoded Reservation) vs raw aiohttp GET + "
                "json.loads; same server process, headers, connection limit, timeouts, "
                "concurrency; alternating rounds",
        "server": "python -m openticket_async.testing serve (separate process)",
        "notes": notes,
        "pinning": pinning,
        "runs": runs,
    }
    result["quick"] = args.quick
    c.emit(NAME, result, render(result), args)


if __name__ == "__main__":
    main()
