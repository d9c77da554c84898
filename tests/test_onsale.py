"""The on-sale capacity model (benchmarks/onsale.py) on small sales.

Its figures must follow from the lifecycle's rules: with every hold alive and
renewal capacity to spare, the calls per second are the holds alive divided by
the renewal interval (the TTL less the safety margin, the renewal lead and half
the jitter).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def onsale() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import onsale as module
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def plateau_sale(onsale: ModuleType, *extra: str) -> tuple[Any, dict[str, Any]]:
    """1,000 carts of 2 tickets arriving over one renewal interval (so renewals are
    spread evenly), nobody leaving before minute 40: 2,000 holds renewed for half an hour."""
    interval_min = (480 - 2 - 60 - 5 / 2) / 60
    args = onsale.arguments([
        "--carts", "1000", "--arrival-min", str(interval_min), "--abandon", "0",
        "--checkout-min", "40", "--checkout-max", "41", "--max-hold-min", "0",
        "--latency-ms", "50", *extra,
    ])
    sale = onsale.OnSale(args)
    return sale, sale.run()


def test_call_rate_matches_holds_over_renewal_interval(onsale: ModuleType) -> None:
    sale, result = plateau_sale(onsale)
    interval = result["renewal_interval_s"]
    # from the end of the arrivals (plus the first answers) to just before checkout
    start, end = 480, 2340
    calls = sum(sale.calls[start:end]) / (end - start)
    alive = sum(sale.alive[start:end]) / (end - start)
    assert alive == 2000
    assert calls == pytest.approx(alive / interval, rel=0.03)


def test_holds_renewed_in_time_when_capacity_is_ample(onsale: ModuleType) -> None:
    _sale, result = plateau_sale(onsale)
    assert result["renewal_lateness_ms"]["max"] == 0.0
    assert result["holds"]["ended"] == {"ORDERED": 2000}
    assert result["checkouts"] == {"ordered": 1000, "failed": 0, "abandoned": 0}


def test_rate_limit_below_the_renewal_rate_makes_renewals_late(onsale: ModuleType) -> None:
    # 2,000 holds need ~4.8 renewals/s; OpenTicket allowing 4 calls/s cannot keep up
    _sale, result = plateau_sale(onsale, "--rate-limit", "4")
    assert result["renewal_lateness_ms"]["p99"] > 1000
    assert result["calls"]["peak_per_s"] <= 4


def test_command_prints_its_figures_as_json() -> None:
    done = subprocess.run(  # noqa: S603 (our own command)
        [sys.executable, str(BENCHMARKS / "onsale.py"), "--carts", "300", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    result = json.loads(done.stdout)
    assert result["calls"]["total"] >= 600  # at least one reserve per ticket
    assert result["advice"]["rate_limit_per_s"] >= result["calls"]["peak_10s_mean_per_s"]
