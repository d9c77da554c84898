"""Run every benchmark, each as its own process, and check that each produced its JSON.

    python benchmarks/run_all.py --quick   # seconds each: proves they still run (CI)
    python benchmarks/run_all.py           # the full measurements (minutes; not in CI)

Quick runs check only that each benchmark runs and prints one JSON object with
the expected keys; they assert no target. Exits non-zero if any benchmark fails
to run, times out or prints something else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS = ("client_overhead", "scheduler_scale", "renewal_burst", "redis_store")
#: keys every benchmark's JSON has; "runs" holds one entry per event loop measured
EXPECTED_KEYS = ("benchmark", "quick", "command", "machine", "runs")
QUICK_TIMEOUT = 180.0
FULL_TIMEOUT = 1800.0


def check(name: str, stdout: str, quick: bool) -> str | None:
    """Why the output of benchmark ``name`` is not acceptable, or None if it is."""
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError as error:
        return f"stdout is not one JSON object: {error}"
    if not isinstance(result, dict):
        return "stdout is JSON but not an object"
    missing = [key for key in EXPECTED_KEYS if key not in result]
    if missing:
        return f"JSON lacks keys {missing}"
    if result["benchmark"] != name or result["quick"] != quick:
        return f"JSON says benchmark={result['benchmark']!r} quick={result['quick']!r}"
    if not result["runs"]:
        return "JSON has no runs"
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small N, one round, no targets")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run just these")
    p.add_argument("extra", nargs=argparse.REMAINDER,
                   help="after --, arguments passed to every benchmark (e.g. -- --loop asyncio)")
    args = p.parse_args()
    extra = [a for a in args.extra if a != "--"]
    failures = []
    chosen = list(args.only or BENCHMARKS)
    if "redis_store" in chosen and not shutil.which("redis-server") and not os.environ.get("CI"):
        # same rule as the tests: outside CI a missing redis-server is said, not failed
        print("== redis_store: not run (redis-server is not installed)", file=sys.stderr)
        chosen.remove("redis_store")
    for name in chosen:
        command = [sys.executable, str(BENCH_DIR / f"{name}.py"), *extra]
        if args.quick:
            command.append("--quick")
        started = time.monotonic()
        print(f"== {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        try:
            done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False,
                                  timeout=QUICK_TIMEOUT if args.quick else FULL_TIMEOUT)
        except subprocess.TimeoutExpired:
            failures.append(f"{name}: timed out")
            continue
        took = time.monotonic() - started
        if done.returncode != 0:
            failures.append(f"{name}: exit status {done.returncode}")
            continue
        problem = check(name, done.stdout, args.quick)
        if problem:
            failures.append(f"{name}: {problem}")
            continue
        print(f"== {name}: ok in {took:.1f} s", file=sys.stderr, flush=True)
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    ran = len(chosen)
    print(f"benchmarks: {ran - len(failures)} ran, {len(failures)} failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
