"""The floor of benchmarks/scheduler_scale.py: it does all its docstring says, and no less.

The floor stands for the least any async hold manager must do per add and cancel;
a floor that quietly skipped a step would make the manager's cost above it look
larger than it is. These tests run it on a real loop with deadlines an hour
ahead (nothing comes due, nothing is slept through).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> tuple[ModuleType, ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _alternatives
        import scheduler_scale
    finally:
        sys.path.remove(str(BENCHMARKS))
    return _alternatives, scheduler_scale


def floor_run(alts: ModuleType, n: int, cancel: bool) -> dict[str, Any]:
    """Add ``n`` holds through the floor (and cancel them all if ``cancel``); what it kept."""

    async def run() -> dict[str, Any]:
        floor = alts.Floor()
        deadlines = [time.monotonic() + 3600.0 + i for i in range(n)]
        floor.prepare(deadlines)
        prebuilt = list(floor._prebuilt)
        await floor.start(lambda kind, due: None)
        holds: list[Any] = []
        await floor.add_all(deadlines, holds)
        if cancel:
            await floor.cancel_all(holds)
        kept = {"holds": holds, "prebuilt": prebuilt, "cart": dict(floor._cart),
                "heap": [list(entry) for entry in floor._heap]}
        await floor.stop()
        return kept

    return asyncio.run(run())


def test_floor_add_keeps_each_reservation_in_its_cart_and_its_renewal_on_the_heap(
    bench: tuple[ModuleType, ModuleType],
) -> None:
    alts, _ = bench
    kept = floor_run(alts, 3, cancel=False)
    holds = kept["holds"]
    assert [hold.reservation for hold in holds] == kept["prebuilt"]
    assert kept["cart"] == {hold.id: hold for hold in holds}
    assert len({hold.id for hold in holds}) == 3
    # the deadlines are an hour and i seconds ahead: the heap's order is the adds' order
    assert [(due, hold) for due, _seq, hold in sorted(kept["heap"])] == [
        (r.deadline - alts.RENEW_BEFORE, hold)
        for r, hold in zip(kept["prebuilt"], holds, strict=True)
    ]


def test_floor_remove_cancels_the_heap_entry_and_empties_the_cart(
    bench: tuple[ModuleType, ModuleType],
) -> None:
    alts, _ = bench
    kept = floor_run(alts, 3, cancel=True)
    assert kept["cart"] == {}
    assert [payload for _due, _seq, payload in kept["heap"]] == [None, None, None]
    assert all(hold.entry is None for hold in kept["holds"])


def test_manager_over_floor_divides_each_figure_at_the_same_n(
    bench: tuple[ModuleType, ModuleType],
) -> None:
    _, scale = bench
    figures = dict.fromkeys(scale.FLOOR_KEYS, 1.0)
    run = {"scale": [
        {"scheduler": "manager", "n": 10, **dict.fromkeys(figures, 6.0)},
        {"scheduler": "floor", "n": 10, **figures, "add_cpu_us": 2.0},
        {"scheduler": "floor", "n": 20, **figures},
        {"scheduler": "manager", "n": 20, "skipped": "over the budget"},
    ]}
    (row,) = scale.over_floor(run)
    assert row["n"] == 10
    assert row["add_cpu_us"] == {"manager": 6.0, "floor": 2.0, "ratio": 3.0, "above_floor": 4.0}
    assert row["cancel_us"]["ratio"] == 6.0
