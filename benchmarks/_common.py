"""What every benchmark shares: arguments, loops, the fake server process, output.

Each benchmark prints exactly one JSON object to stdout and a short human table
to stderr (or after the JSON with ``--table-stdout``). Full runs also write the
JSON to ``benchmarks/results/<name>.json``; ``--quick`` runs never do, so a quick
run in CI cannot overwrite measured figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent
LOOP_CHOICES = ("asyncio", "uvloop", "both")


def parser(description: str, *, default_loop: str = "both") -> argparse.ArgumentParser:
    """The arguments every benchmark takes; callers add their own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small N, one round: checks it runs")
    p.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        default=default_loop,
        help="event loop(s) to measure on; uvloop is skipped (and said so) if missing",
    )
    p.add_argument(
        "--table-stdout",
        action="store_true",
        help="print the human table after the JSON on stdout instead of on stderr",
    )
    p.add_argument(
        "--no-write", action="store_true", help="do not write benchmarks/results/<name>.json"
    )
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin this process to the first CPU and the server to the last one",
    )
    return p


def pin_cpus(enabled: bool) -> dict[str, Any]:
    """Pin this process to the first CPU, leaving the last one to the server.

    With two cores, client and server otherwise migrate between them and the
    rounds of a side swing by a factor of two. Returns what was done.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not enabled or len(cpus) < 2:
        return {"pinned": False, "cpus": cpus}
    os.sched_setaffinity(0, {cpus[0]})
    PINNING["server"] = {cpus[-1]}
    return {"pinned": True, "client_cpu": cpus[0], "server_cpu": cpus[-1]}


#: The CPU set the fake server process is pinned to, once ``pin_cpus`` chose one.
PINNING: dict[str, set[int]] = {}


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loops_for(choice: str) -> tuple[list[str], list[str]]:
    """The loops to run for a ``--loop`` choice, and notes on any left out."""
    wanted = ["asyncio", "uvloop"] if choice == "both" else [choice]
    notes = []
    if "uvloop" in wanted and not uvloop_available():
        wanted.remove("uvloop")
        notes.append("uvloop is not installed: measured on asyncio only")
    return wanted, notes


def run_on(loop_kind: str, main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a fresh event loop of the given kind."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop_kind == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())  # type: ignore[arg-type]


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews figures."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


LOAD_AT_START = loadavg()


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("openticket-async", "aiohttp", "attrs", "cattrs", "anyio", "uvloop",
                 "APScheduler", "orjson", "redis", "hiredis"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "uname": " ".join(platform.uname()),
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": versions,
        "json_parser": _json_parser(),
        "loadavg_at_start": LOAD_AT_START,
        "loadavg_at_end": loadavg(),
    }


def _json_parser() -> str | None:
    """The parser the SDK reads answers with here ("orjson" with the fast extra)."""
    import importlib

    # where it lives now, then where it lived before 2026-12-07 (an older library
    # first on PYTHONPATH, for a before/after run); None: from before the fast extra
    for module in ("openticket_async._json", "openticket_async._answers"):
        try:
            return str(importlib.import_module(module).JSON_PARSER)
        except (ImportError, AttributeError):
            continue
    return None


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` by nearest rank; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of seconds, in milliseconds, rounded."""
    ordered = sorted(values)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {
        "p50_ms": round(pct(ordered, 0.50) * 1e3, 3),
        "p99_ms": round(pct(ordered, 0.99) * 1e3, 3),
        "max_ms": round(ordered[-1] * 1e3, 3),
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def rss_bytes() -> int:
    """Resident set size of this process now (from /proc), in bytes."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize()
    return 0


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds another process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextlib.contextmanager
def settled_gc() -> Iterator[None]:
    """Collect garbage before a measurement so an old cycle is not billed to it."""
    gc.collect()
    yield


# The fake OpenTicket server, in its own process so this process's CPU time is the
# client's alone.


class ServerProcess:
    """A running fake server: its URLs, GUIDs and token, and its process."""

    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info
        self.url: str = info["url"].rstrip("/")
        hosts = info.get("hosts") or {}
        self.hosts = {
            "auth": hosts.get("auth", self.url + "/auth"),
            "api": hosts.get("api", self.url + "/api"),
            "shop": hosts.get("shop", self.url + "/shop"),
        }
        self.shop: str = info.get("shop") or info.get("shop_guid") or info["shops"][0]
        tickets = info.get("tickets") or info.get("ticket_guids") or [info.get("ticket")]
        self.tickets: list[str] = [t if isinstance(t, str) else t["guid"] for t in tickets]
        self.token: str = info.get("token") or info["access_token"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def reserve_url(self, ticket: str | None = None) -> str:
        return f"{self.hosts['shop']}/{self.shop}/reserve/ticket/{ticket or self.tickets[0]}"

    def reserve_urls(self, tickets: Sequence[str]) -> list[str]:
        """The reserve URL of each of ``tickets``, in order."""
        return [self.reserve_url(ticket) for ticket in tickets]


def server_command(stock: int, ttl: float, options: Sequence[str] = ()) -> list[str]:
    """How to start the project's fake server with one ticket of ``stock`` units.

    ``options`` are more ``serve`` arguments (a later ``--tickets`` wins).
    """
    return [sys.executable, "-m", "openticket_async.testing", "serve", "--host", "127.0.0.1",
            "--port", "0", "--tickets", "1", "--stock", str(stock), "--ttl", str(ttl),
            *options]


@contextlib.contextmanager
def fake_server(
    stock: int = 100_000_000, ttl: float = 480.0, options: Sequence[str] = ()
) -> Iterator[ServerProcess]:
    """Start the fake OpenTicket server in a separate process; stop it on exit.

    ``options`` are more ``serve`` arguments (``--tickets``, ``--product-shape``...).
    Raises RuntimeError if it does not start and print its JSON line within 20 s.
    """
    server_cpus = PINNING.get("server")
    proc = subprocess.Popen(
        server_command(stock, ttl, options),
        preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_DIR,
        start_new_session=True,
    )
    try:
        line = _first_line(proc, timeout=20.0)
        server = ServerProcess(proc, json.loads(line))
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            if line.strip():
                return line
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"fake server exited with {proc.returncode}: {err[-2000:]}")
    raise RuntimeError("fake server printed no JSON line within the timeout")


# Output


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if value is None:
        return "-"
    return str(value)


def emit(name: str, result: dict[str, Any], text: str, args: argparse.Namespace) -> None:
    """Print the JSON (stdout) and the table; write the results file on full runs."""
    result.setdefault("benchmark", name)
    result.setdefault("quick", bool(args.quick))
    result.setdefault("command", "python " + " ".join([f"benchmarks/{name}.py", *sys.argv[1:]]))
    result.setdefault("arguments", vars(args))
    result.setdefault("machine", machine())
    result.setdefault("finished_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    payload = json.dumps(result, indent=2, sort_keys=False, allow_nan=True)
    print(payload, flush=True)
    if args.table_stdout:
        print(text, flush=True)
    else:
        print(text, file=sys.stderr, flush=True)
    if not args.quick and not args.no_write:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{name}.json").write_text(payload + "\n")


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "MISSED")
