"""Render benchmarks/results/*.json as the Markdown tables of benchmarks/README.md.

    python benchmarks/report.py           # print the Markdown
    python benchmarks/report.py --write   # replace the results section of the README

The README section between the ``results:start`` and ``results:end`` markers is
generated; everything else in the README is written by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_section(results: list[dict[str, Any]]) -> str:
    lines = ["### Machine", ""]
    for r in results:
        m = r["machine"]
        lines.append(f"- `{r['benchmark']}` finished {r['finished_at']} on `{m['uname']}`, "
                     f"CPU {m['cpu_model']} ({m['cpus']} cores), Python {m['python']}, "
                     f"load average {m.get('loadavg_at_start')} at start, "
                     f"{m.get('loadavg_at_end')} at end; pinning {r.get('pinning')}")
    pkgs = results[0]["machine"]["packages"]
    lines.append("- packages: " + ", ".join(f"{k} {v}" for k, v in pkgs.items()))
    return "\n".join(lines)


def targets_section(co: dict[str, Any] | None, ss: dict[str, Any] | None,
                    rb: dict[str, Any] | None) -> str:
    rows: list[list[Any]] = []
    if co:
        for run in co["runs"]:
            for key, t in run["targets"].items():
                where = f"; worst: {t['worst_at']}" if "worst_at" in t else ""
                rows.append([f"{key}: {t['target']} ({run['loop']}){where}", t["worst"],
                             t["met"], co["command"]])
    if ss:
        for run in ss["runs"]:
            for key, t in run["targets"].items():
                value = next((t[k] for k in ("value", "value_ms", "value_ms_per_s") if k in t),
                             None)
                label = f"{key}: {t['target']} ({run['loop']})"
                rows.append([label, value, t["met"], ss["command"]])
    if rb:
        for run in rb["runs"]:
            t = run["target"]
            met = "no verdict: " + t["disturbed"] if "disturbed" in t else t["met"]
            rows.append([f"renewal burst {t['target']} ({run['loop']})", t["value"], met,
                         rb["command"]])
    return "### Targets\n\n" + md_table(["target", "measured", "met", "command"], rows)


def overhead_section(co: dict[str, Any]) -> str:
    parts = [f"### Client overhead (`{co['command']}`)", ""]
    for run in co["runs"]:
        cases = run["cases"]
        rows = []
        for case in cases:
            for cell in case["cells"]:
                q = cell["ratio_sdk_over_raw"]
                cpu, rps = q["client_cpu_per_request_by_round"], q["requests_per_s_by_round"]
                rows.append([case["case"], cell["rotation"], cell["concurrency"],
                             cell["sdk"]["client_cpu_us_per_request"],
                             cell["raw"]["client_cpu_us_per_request"],
                             q["client_cpu_per_request_paired_median"],
                             f"{min(cpu):.2f}-{max(cpu):.2f}",
                             cell["sdk"]["requests_per_s"], cell["raw"]["requests_per_s"],
                             q["requests_per_s_paired_median"],
                             f"{min(rps):.2f}-{max(rps):.2f}"])
        busy = [cell for case in cases for cell in case["cells"] if cell["concurrency"] > 1]
        most = max(busy, key=lambda cell: cell["requests_per_side"], default=None)
        size = f"{most['requests_per_side'] // most['rounds']:,}" if most else "-"
        parts.append(f"loop `{run['loop']}`, {most['rounds'] if most else '-'} alternating "
                     f"rounds of {size} requests per side and cell (a third at concurrency 1); "
                     "ratios are SDK/raw, the median of the paired rounds with the lowest and "
                     "highest round")
        parts.append("")
        parts.append(md_table(["case", "tickets", "concurrency", "SDK CPU µs/req",
                               "raw CPU µs/req", "CPU ratio", "rounds", "SDK req/s", "raw req/s",
                               "req/s ratio", "rounds"], rows))
        parts.append("")
        shapes = [[case["case"], case["shape"]["product_shape"], case["shape"]["products"],
                   case["shape"]["style"], "yes" if case["shape"]["expiry"] else "no",
                   case["answer_bytes"]] for case in cases]
        parts.append("The cases (answer shapes of the fake server):")
        parts.append("")
        parts.append(md_table(["case", "product lines", "products", "keys", "expiry",
                               "answer bytes"], shapes))
        parts.append("")
        firsts = []
        for case in cases:
            sdk, raw = case["first_answer"]["sdk"], case["first_answer"]["raw"]
            firsts.append([case["case"], sdk["first_cpu_us"], raw["first_cpu_us"],
                           sdk["first_wall_us"], raw["first_wall_us"], sdk["second_cpu_us"],
                           raw["second_cpu_us"]])
        parts.append("First answers, apart (a fresh client or raw session reserving a ticket "
                     "never reserved before, then its second call; medians):")
        parts.append("")
        parts.append(md_table(["case", "SDK first CPU µs", "raw first CPU µs",
                               "SDK first wall µs", "raw first wall µs", "SDK second CPU µs",
                               "raw second CPU µs"], firsts))
        parts.append("")
    return "\n".join(parts)


def scale_section(ss: dict[str, Any]) -> str:
    d = ss["decoded_reservation"]
    parts = [f"### Scheduler scale (`{ss['command']}`)", "",
             f"A Reservation decoded by the real client keeps **{d['bytes_per_reservation']} B** "
             f"alive (fields: {d['fields_bytes_unless_shared']}). "
             f"MemoryStore alone: put {ss['store_micro']['put_us']:.2f} µs, "
             f"remove {ss['store_micro']['remove_us']:.2f} µs per hold "
             f"(N={ss['store_micro']['n']:,}).", ""]
    for run in ss["runs"]:
        rows = []
        for r in run["scale"]:
            if "skipped" in r:
                rows.append([r["n"], r["scheduler"], "skipped: " + r["skipped"], "", "", "", "",
                             ""])
                continue
            mem = "tracemalloc" if r.get("memory_method", "").startswith("trace") else "RSS"
            rows.append([r["n"], r["scheduler"], r["add_us"], r["cancel_us"],
                         f"{r['bytes_per_entry']:,.0f} ({mem})", r["tasks_alive"],
                         r["idle_cpu_ms_per_s"], r["idle_cpu_ms_per_s_empty_loop"]])
        parts.append(f"loop `{run['loop']}`")
        parts.append("")
        parts.append(md_table(["N", "scheduler", "add µs", "cancel µs", "bytes/entry",
                               "tasks", "idle CPU ms/s", "empty loop ms/s"], rows))
        parts.append("")
        floor = run.get("manager_over_floor")  # absent from results before the floor side
        if floor:
            parts.append(f"manager / floor, loop `{run['loop']}`: process CPU µs per hold "
                         "(of it the garbage collector's), the floor being the least any "
                         "async hold manager does (`_alternatives.Floor`)")
            parts.append("")
            frows = [[r["n"], r["add_cpu_us"]["manager"], r["add_cpu_us"]["floor"],
                      f"**{fmt(r['add_cpu_us']['ratio'])}**",
                      f"{fmt(r['add_gc_us']['manager'])} / {fmt(r['add_gc_us']['floor'])}",
                      r["cancel_cpu_us"]["manager"], r["cancel_cpu_us"]["floor"],
                      f"**{fmt(r['cancel_cpu_us']['ratio'])}**",
                      r["bytes_per_entry"]["manager"], r["bytes_per_entry"]["floor"]]
                     for r in floor]
            parts.append(md_table(["N", "manager add", "floor add", "add ratio",
                                   "add GC, manager / floor", "manager cancel", "floor cancel",
                                   "cancel ratio", "manager B/entry", "floor B/entry"], frows))
            parts.append("")
        prow = []
        for p in run["punctuality"]:
            if "skipped" in p:
                prow.append([p["scheduler"], "skipped: " + p["skipped"], "", "", "", ""])
                continue
            for kind, s in p["lateness"].items():
                prow.append([p["scheduler"], kind, s["p50_ms"], s["p99_ms"], s["max_ms"],
                             f"{p['fired'].get(kind, 0):,}/{p['n']:,}"])
        if prow:
            p0 = run["punctuality"][0]
            parts.append(f"lateness, {p0['n']:,} deadlines within {p0.get('spread_s')} s, "
                         f"loop `{run['loop']}`")
            parts.append("")
            parts.append(md_table(["scheduler", "event", "p50 ms", "p99 ms", "max ms",
                                   "fired"], prow))
            parts.append("")
    return "\n".join(parts)


def burst_section(rb: dict[str, Any]) -> str:
    parts = [f"### Renewal burst (`{rb['command']}`)", ""]
    for run in rb["runs"]:
        rows = []
        for side in ("manager", "raw", "floor"):
            s = run.get(side)
            if s is None:  # results from before the floor side
                continue
            rows.append([side, s["total_s_median"], s["renewals_per_s"],
                         s["client_cpu_us_per_renewal"], s["call_latency"]["p50_ms"],
                         s["call_latency"]["p99_ms"], s["server_cpu_us_per_renewal"]])
        for name in ("manager_over_raw", "floor_over_raw", "manager_over_floor"):
            r = run.get(f"ratio_{name}")
            if r is not None:
                label = name.replace("_over_", "/")
                rows.append([f"**{label}**", f"{r['total_time']} (paired "
                             f"{r.get('total_time_paired_median', '-')})", "",
                             r["client_cpu_per_renewal"], "", r["p99_call"], ""])
        q = run["ratio_manager_over_raw"]
        parts.append(f"loop `{run['loop']}`: {run['holds']:,} holds due at once, pool "
                     f"{run['concurrency']}, {run['rounds']} rounds per side (median); "
                     f"total time by round, manager/raw: {q['total_time_by_round']}")
        parts.append("")
        parts.append(md_table(["side", "total s", "renewals/s", "client CPU µs/renewal",
                               "p50 call ms", "p99 call ms", "server CPU µs/renewal"], rows))
        parts.append("")
    return "\n".join(parts)


def render() -> str:
    co, ss, rb = load("client_overhead"), load("scheduler_scale"), load("renewal_burst")
    present = [r for r in (co, ss, rb) if r]
    if not present:
        return "No results yet: run `python benchmarks/run_all.py`."
    parts = [machine_section(present), "", targets_section(co, ss, rb), ""]
    if co:
        parts.append(overhead_section(co))
    if ss:
        parts.append(scale_section(ss))
    if rb:
        parts.append(burst_section(rb))
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", action="store_true", help="update the README section in place")
    args = p.parse_args()
    text = render()
    if not args.write:
        print(text)
        return 0
    readme = README.read_text()
    if START not in readme or END not in readme:
        print(f"{README} lacks the {START} / {END} markers", file=sys.stderr)
        return 1
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
