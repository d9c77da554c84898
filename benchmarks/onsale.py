"""Capacity model of an on-sale: OpenTicket calls per second, holds alive, lateness, memory.

Carts arrive over the first minutes of the sale, reserve their tickets, and then
either abandon (a share of the carts still open, every minute) or check out a
few minutes after they came. Meanwhile every hold is renewed before OpenTicket's
8-minute drop. The model answers what a shop must know before the sale: how many
calls per second to ask OpenTicket for, how many renewal workers it needs, and
how much memory the holds take.

What runs, and what is modelled
-------------------------------
The decisions are the SDK's own: every hold is a real ``Hold`` driven by the
manager's pure lifecycle (``_lifecycle.plan`` and ``step``, with the
``HoldPolicy`` given on the command line and the jitter drawn from a seeded
``random.Random``), its pending actions kept in the same ``DeadlineQueue`` the
``MemoryStore`` uses. What the manager would do with each action is done here:
a plan goes into the queue, a reserve into the renewal queue served by
``renewal_concurrency`` workers, an end takes the hold out of its cart.

The network is modelled, on virtual time: each OpenTicket call takes
``--latency-ms``, and ``--rate-limit`` (if given) spaces calls evenly at that
rate; a renewal that waits for a worker or for the limit is late, and the
lifecycle sees it as such (the lateness is measured exactly as the manager's
renewal worker does, from the time the renewal was planned). Running the
manager itself on a ``FakeClock`` against the fake server would take about an
hour of real time for the default sale (800,000 reserve calls over loopback
HTTP); this model runs it in seconds. Memory is the peak of holds alive times
the all-in bytes per hold that ``scheduler_scale.py`` measured.

    python benchmarks/onsale.py                      # the default sale, a report
    python benchmarks/onsale.py --carts 20000 --arrival-min 5 --rate-limit 300
    python benchmarks/onsale.py --json               # the same as one JSON object
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import sys
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openticket_async import HoldPolicy, Order, Reservation, RetryPolicy
from openticket_async._hold import Hold, HoldState
from openticket_async._lifecycle import (
    Answered,
    CheckoutFailed,
    CheckoutStarted,
    CheckoutSucceeded,
    Due,
    Emit,
    End,
    Linger,
    Plan,
    Remove,
    Reserve,
    Rules,
    not_before,
    plan,
    sending,
    step,
)
from openticket_async._schedule import DeadlineQueue

RESULTS = Path(__file__).resolve().parent / "results" / "scheduler_scale.json"
#: All-in bytes per hold when no scheduler_scale result is at hand (its 100k figure).
FALLBACK_BYTES_PER_HOLD = 800.0
#: Renewals per second one worker process is planned for: about 40 % of what one
#: process reached at full load in renewal_burst.py (2,600-2,750/s on a 2-core
#: test machine), leaving the rest to the application and to bursts.
WORKER_RENEWALS_PER_S = 1000.0
#: The rate limit to ask for is the peak rate over any 10 s window times this.
HEADROOM = 1.25
SHOP = "00000000-0000-4000-8000-000000000001"
TICKET = "00000000-0000-4000-8000-000000000002"
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_ORDER = Order(guid="00000000-0000-4000-8000-000000000003")


class Cart:
    """One customer: its holds, and what it will do next."""

    __slots__ = ("closed", "holds", "id", "ordering")

    def __init__(self, cart_id: str) -> None:
        self.id = cart_id
        self.holds: list[Hold] = []
        self.closed = False
        self.ordering = False  # a checkout waits for its renewals, then orders


class OnSale:
    """The sale on virtual time: an event heap beside the holds' deadline queue."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.policy = HoldPolicy(
            renew_before=args.renew_before,
            safety_margin=args.safety_margin,
            renew_jitter=args.renew_jitter,
            renewal_concurrency=args.concurrency,
            max_hold=args.max_hold_min * 60 if args.max_hold_min else None,
        )
        self.latency = args.latency_ms / 1e3
        self.rules = Rules(self.policy, RetryPolicy(), latency_p99=self.latency,
                           rng=random.Random(args.seed + 1))
        self.queue: DeadlineQueue[Hold, str] = DeadlineQueue()
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = itertools.count()
        self.renewals: deque[Hold] = deque()
        self.idle_workers = args.concurrency
        self.next_slot = 0.0  # the rate limit: when the next call may start
        self.calls: list[int] = []  # calls started in each second of the sale
        self.renewal_calls: list[int] = []  # ... of them, renewals (the workers' share)
        self.alive: list[int] = []  # holds alive at the start of each second
        self.live = 0
        self.peak_live = 0
        self.lateness: list[float] = []
        self.ended: dict[str, int] = {}
        self.checkouts = {"ordered": 0, "failed": 0, "abandoned": 0}
        self.second = 0
        self.carts: dict[str, Cart] = {}

    # -- time and calls --------------------------------------------------------------

    def at(self, when: float, kind: str, what: Any) -> None:
        heapq.heappush(self.events, (when, next(self.seq), kind, what))

    def call(self, now: float, renewal: bool = False) -> float:
        """Start one OpenTicket call at ``now`` or, under the rate limit, later; when."""
        start = now
        if self.args.rate_limit:
            start = max(now, self.next_slot)
            self.next_slot = start + 1.0 / self.args.rate_limit
        second = int(start)
        while len(self.calls) <= second:
            self.calls.append(0)
            self.renewal_calls.append(0)
        self.calls[second] += 1
        self.renewal_calls[second] += renewal
        return start

    def tick(self, now: float) -> None:
        """Sample the holds alive at every whole second up to ``now``."""
        while self.second <= now:
            self.alive.append(self.live)
            self.second += 1

    # -- what the manager does with the lifecycle's actions ---------------------------

    def apply(self, hold: Hold, actions: list[Any], now: float) -> None:
        for action in actions:
            if type(action) is Plan:
                if hold._entry is not None:
                    self.queue.cancel(hold._entry)  # type: ignore[arg-type]
                hold._entry = self.queue.push(action.at, hold, action.action)
            elif type(action) is Reserve:
                if action.first:
                    self.renewals.appendleft(hold)
                else:
                    self.renewals.append(hold)
            elif type(action) is Emit:
                if action.kind.__name__ == "Renewed":
                    self.lateness.append(action.lateness)
            elif type(action) is End:
                if hold._entry is not None:
                    self.queue.cancel(hold._entry)  # type: ignore[arg-type]
                    hold._entry = None
                self.live -= 1
                self.ended[hold.state.name] = self.ended.get(hold.state.name, 0) + 1
            elif type(action) is not Linger:  # a lingering unit costs no call
                raise AssertionError(f"the model does not expect {action!r}")
        self.work(now)

    def work(self, now: float) -> None:
        """Hand queued renewals to idle workers, as the manager's renewal workers do."""
        while self.renewals and self.idle_workers:
            hold = self.renewals.popleft()
            start = max(now, not_before(hold, self.rules))
            start = self.call(start, renewal=True)
            lateness = sending(hold, start)
            if lateness is None:  # no longer wanted: the worker takes the next one
                continue
            self.idle_workers -= 1
            self.at(start + self.latency, "answered", (hold, start, lateness))

    def reservation(self, sent: float) -> Reservation:
        # the lifecycle reads only ``deadline``; the rest is shared
        return Reservation(guid=TICKET, shop_guid=SHOP, ticket_guid=TICKET,
                           event_date_guid=None, products=(), reserved_at=_EPOCH,
                           expires_at=_EPOCH, deadline=sent + self.args.ttl)

    # -- the customers -------------------------------------------------------------------

    def arrive(self, cart: Cart, now: float) -> None:
        for _ in range(self.args.tickets):
            sent = self.call(now)
            self.at(sent + self.latency, "reserved", (cart, sent))
        a = self.args
        self.at(now + 60 * self.rng.uniform(a.checkout_min, a.checkout_max), "checkout", cart)
        if a.abandon > 0:
            # a share ``abandon`` of the open carts leaves every minute
            self.at(now + self.rng.expovariate(a.abandon / 60), "abandon", cart)

    def reserved(self, cart: Cart, sent: float, now: float) -> None:
        if cart.closed:
            return  # the unit lingers until its drop; no hold keeps it
        hold = Hold(id=f"{cart.id}-{len(cart.holds)}", cart_id=cart.id, shop_guid=SHOP,
                    ticket_guid=TICKET, reservation=self.reservation(sent), created_at=sent)
        cart.holds.append(hold)
        self.live += 1
        self.peak_live = max(self.peak_live, self.live)
        self.apply(hold, plan(hold, now, self.rules), now)

    def abandon(self, cart: Cart, now: float) -> None:
        if cart.closed or cart.ordering:
            return
        cart.closed = True
        self.checkouts["abandoned"] += 1
        for hold in cart.holds:
            self.apply(hold, step(hold, Remove(), now, self.rules), now)

    def checkout(self, cart: Cart, now: float) -> None:
        if cart.closed:
            return
        cart.ordering = True
        for hold in cart.holds:
            self.apply(hold, step(hold, CheckoutStarted(), now, self.rules), now)
        self.order_when_ready(cart, now)

    def order_when_ready(self, cart: Cart, now: float) -> None:
        if cart.closed or any(hold._wire for hold in cart.holds):
            return  # a renewal the checkout asked for is still out: its answer calls again
        cart.closed = True
        sent = self.call(now)
        self.at(sent + self.latency, "ordered", cart)

    def ordered(self, cart: Cart, now: float) -> None:
        live = [hold for hold in cart.holds if not hold.done]
        if all(hold.state is HoldState.ACTIVE for hold in live):
            self.checkouts["ordered"] += 1
            for hold in live:
                self.apply(hold, step(hold, CheckoutSucceeded(_ORDER), now, self.rules), now)
            return
        # HoldsNotReady: renewals resume, and this customer gives up
        self.checkouts["failed"] += 1
        for hold in live:
            self.apply(hold, step(hold, CheckoutFailed(), now, self.rules), now)
            self.apply(hold, step(hold, Remove(), now, self.rules), now)

    def answered(self, hold: Hold, sent: float, lateness: float, now: float) -> None:
        self.idle_workers += 1
        answer = Answered(self.reservation(sent), sent, lateness)
        self.apply(hold, step(hold, answer, now, self.rules), now)
        cart = self.carts[hold.cart_id]
        if cart.ordering and not cart.closed:
            self.order_when_ready(cart, now)

    # -- the run ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        a = self.args
        self.carts.update((str(i), Cart(str(i))) for i in range(a.carts))
        span = a.arrival_min * 60
        for i, cart in enumerate(self.carts.values()):
            self.at(span * i / a.carts, "arrive", cart)
        handlers = {"arrive": self.arrive, "abandon": self.abandon, "checkout": self.checkout,
                    "ordered": self.ordered}
        queue, events = self.queue, self.events
        while True:
            due = queue.next_deadline()
            if events and (due is None or events[0][0] < due):
                now, _, kind, what = heapq.heappop(events)
                self.tick(now)
                if kind == "answered":
                    hold, sent, lateness = what
                    self.answered(hold, sent, lateness, now)
                elif kind == "reserved":
                    cart, sent = what
                    self.reserved(cart, sent, now)
                else:
                    handlers[kind](what, now)
            elif due is not None:
                self.tick(due)
                for at, hold, action in queue.pop_due(due):
                    hold._entry = None
                    self.apply(hold, step(hold, Due(action, at), due, self.rules), due)
            else:
                break
        return self.report()

    def report(self) -> dict[str, Any]:
        calls, alive = self.calls, self.alive
        peak10 = peak_mean(calls, 10)
        renewals10 = peak_mean(self.renewal_calls, 10)
        # a worker process renews at most its CPU's rate, and at most
        # renewal_concurrency calls at a time, each taking the latency
        per_worker = min(self.args.worker_rate, self.args.concurrency / self.latency)
        # workers that fall behind cap the renewal rate measured; the demand is the
        # holds alive over the renewal interval
        interval = renewal_interval(self.policy, self.args.ttl)
        demand = max(renewals10, self.peak_live / interval)
        needed = peak10 + demand - renewals10
        lat = sorted(self.lateness)
        minutes = []
        for m in range(math.ceil(len(calls) / 60)):
            c = calls[m * 60:(m + 1) * 60]
            h = alive[m * 60:(m + 1) * 60] or [0]
            minutes.append({"minute": m, "calls_per_s_mean": round(sum(c) / 60, 1),
                            "calls_per_s_peak": max(c), "holds_alive_mean": round(sum(h) / len(h))})
        bytes_per_hold, source = bytes_per_hold_measured()
        ask = math.ceil(needed * HEADROOM / 10) * 10
        return {
            "scenario": {k: v for k, v in vars(self.args).items() if k not in ("json",)},
            "model": "SDK lifecycle (plan/step, DeadlineQueue) on virtual time; network "
                     "modelled: fixed latency, renewal_concurrency workers, optional rate limit",
            "renewal_interval_s": round(interval, 2),
            "calls": {"total": sum(calls), "peak_per_s": max(calls),
                      "peak_10s_mean_per_s": round(peak10, 1),
                      "mean_per_s": round(sum(calls) / len(calls), 1), "seconds": len(calls)},
            "holds": {"peak_alive": self.peak_live, "ended": self.ended},
            "checkouts": self.checkouts,
            "renewal_lateness_ms": {
                "renewals": len(lat),
                "p50": round(pct(lat, 0.50) * 1e3, 1), "p99": round(pct(lat, 0.99) * 1e3, 1),
                "max": round(lat[-1] * 1e3, 1) if lat else 0.0},
            "memory": {"peak_bytes": round(self.peak_live * bytes_per_hold),
                       "bytes_per_hold": bytes_per_hold, "bytes_per_hold_from": source},
            "advice": {
                "rate_limit_per_s": ask,
                "rate_limit_rule": f"the peak 10 s mean, plus the renewals the workers fell "
                                   f"behind on, x {HEADROOM}, rounded up to 10",
                "renewals_needed_per_s": round(demand, 1),
                "workers": max(1, math.ceil(demand * HEADROOM / per_worker)),
                "workers_rule": f"the renewals needed x {HEADROOM} / {per_worker:g} "
                                f"renewals/s per worker (the lower of --worker-rate and "
                                f"renewal_concurrency / latency)",
                "renewal_concurrency_for_one_worker": math.ceil(
                    demand * HEADROOM * self.latency),
            },
            "per_minute": minutes,
        }


def renewal_interval(policy: HoldPolicy, ttl: float) -> float:
    """Seconds between two renewals of one hold, on average (jitter is uniform)."""
    return ttl - policy.safety_margin - policy.renew_before - policy.renew_jitter / 2


def peak_mean(per_second: list[int], width: int) -> float:
    """The highest mean over ``width`` consecutive seconds."""
    if len(per_second) <= width:
        return sum(per_second) / width
    running = best = sum(per_second[:width])
    for i in range(width, len(per_second)):
        running += per_second[i] - per_second[i - width]
        best = max(best, running)
    return best / width


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def bytes_per_hold_measured() -> tuple[float, str]:
    """The all-in bytes per hold scheduler_scale.py measured at 100k, if it ran."""
    try:
        result = json.loads(RESULTS.read_text())
        target = result["runs"][0]["targets"]["bytes_per_hold_all_in_100k"]
        return float(target["value"]), "benchmarks/results/scheduler_scale.json (100k holds)"
    except (OSError, KeyError, ValueError, TypeError, IndexError):
        return FALLBACK_BYTES_PER_HOLD, "fallback figure (no scheduler_scale result)"


def render(r: dict[str, Any], elapsed: float) -> str:
    s, c, adv = r["scenario"], r["calls"], r["advice"]
    lines = [
        f"On-sale model: {s['carts']:,} carts over {s['arrival_min']:g} min, {s['tickets']} "
        f"ticket(s) each, {s['abandon']:.0%} of open carts abandon per minute, checkout "
        f"after {s['checkout_min']:g}-{s['checkout_max']:g} min; latency {s['latency_ms']:g} "
        f"ms, {s['concurrency']} renewal workers"
        + (f", rate limit {s['rate_limit']:g}/s" if s["rate_limit"] else ", no rate limit"),
        "",
        "minute  calls/s mean  calls/s peak  holds alive",
    ]
    for m in r["per_minute"]:
        lines.append(f"{m['minute']:>6}  {m['calls_per_s_mean']:>12,.1f}  "
                     f"{m['calls_per_s_peak']:>12,}  {m['holds_alive_mean']:>11,}")
    lat = r["renewal_lateness_ms"]
    lines += [
        "",
        f"OpenTicket calls: {c['total']:,} in {c['seconds']:,} s; peak {c['peak_per_s']:,}/s "
        f"(1 s), {c['peak_10s_mean_per_s']:,}/s (10 s mean); mean {c['mean_per_s']:,}/s",
        f"holds alive at peak: {r['holds']['peak_alive']:,}; ended: {r['holds']['ended']}",
        f"checkouts: {r['checkouts']}",
        f"renewal lateness: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms "
        f"over {lat['renewals']:,} renewals (interval {r['renewal_interval_s']} s)",
        f"memory at peak: {r['memory']['peak_bytes'] / 1e6:,.0f} MB "
        f"({r['memory']['bytes_per_hold']:g} B per hold, {r['memory']['bytes_per_hold_from']})",
        "",
        f"ask OpenTicket for: {adv['rate_limit_per_s']:,} calls/s ({adv['rate_limit_rule']})",
        f"renewals needed at peak: {adv['renewals_needed_per_s']:,}/s (the larger of the "
        f"peak 10 s renewal rate and peak holds / interval); renewal "
        f"workers: {adv['workers']} ({adv['workers_rule']}), or one worker with "
        f"renewal_concurrency >= {adv['renewal_concurrency_for_one_worker']}",
        f"(model run in {elapsed:.1f} s)",
    ]
    return "\n".join(lines)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = p.add_argument
    add("--carts", type=int, default=100_000, help="carts over the whole sale")
    add("--arrival-min", type=float, default=10.0, help="minutes over which carts arrive")
    add("--tickets", type=int, default=2, help="tickets (holds) per cart")
    add("--abandon", type=float, default=0.02,
        help="share of the open carts that abandon every minute (0.02: 2 %%)")
    add("--checkout-min", type=float, default=3.0, help="earliest checkout, minutes after arrival")
    add("--checkout-max", type=float, default=25.0, help="latest checkout, minutes after arrival")
    add("--latency-ms", type=float, default=100.0, help="OpenTicket's answer time per call")
    add("--rate-limit", type=float, default=0.0, help="calls/s OpenTicket allows (0: none)")
    add("--concurrency", type=int, default=32, help="HoldPolicy.renewal_concurrency")
    add("--renew-before", type=float, default=60.0, help="HoldPolicy.renew_before (s)")
    add("--safety-margin", type=float, default=2.0, help="HoldPolicy.safety_margin (s)")
    add("--renew-jitter", type=float, default=5.0, help="HoldPolicy.renew_jitter (s)")
    add("--max-hold-min", type=float, default=30.0, help="HoldPolicy.max_hold (min; 0: none)")
    add("--ttl", type=float, default=480.0, help="OpenTicket's reservation TTL (s)")
    add("--worker-rate", type=float, default=WORKER_RENEWALS_PER_S,
        help="renewals/s planned per worker process")
    add("--seed", type=int, default=7)
    add("--json", action="store_true", help="print the result as one JSON object")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = arguments(argv)
    t0 = time.process_time()
    result = OnSale(args).run()
    elapsed = time.process_time() - t0
    result["model_cpu_s"] = round(elapsed, 2)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result, elapsed))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
