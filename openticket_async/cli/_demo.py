"""``openticket demo``: the whole product on an embedded fake shop, time sped up.

The script (deterministic up to the renewal jitter):

1. A fake OpenTicket server starts on 127.0.0.1 with a :class:`ScaledClock`; the
   client, the manager and the server share that clock.
2. The cart reserves one unit of each of ``--tickets`` tickets. The first,
   "Front row", has exactly one spare unit; the others have plenty.
3. A rival buyer takes that spare unit shortly before our first renewal of the
   Front row hold. A renewal needs a second unit while the old reservation still
   runs, so it is refused (sold out): the hold is AT_RISK. Just after the old
   reservation drops its unit returns to stock and the retry gets it back.
   The rival never buys: its reservation drops 8 minutes later.
4. Once every hold was renewed ``--cycles`` times, the cart checks out.

Margins are scaled with the speed: a loopback request that takes 1 ms of real
time takes ``speed`` ms of clock time, and the safety margin must cover it.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from .._auth import BearerToken
from .._cart import Cart
from .._client import OpenTicketClient
from .._config import HoldPolicy
from .._events import HoldEvent
from .._exceptions import HoldsNotReady, OpenTicketError
from .._hold import Hold
from .._manager import ReservationManager
from .._models import Order, Receiver
from .._planning import drop_time, earliest_renew_at
from ..testing import FakeOpenTicket, FakeTicket, ScaledClock
from ._output import Output, RunView, clock_text, short
from ._run import OK, CommandError, Interrupt, animated, make_output, wait_until

__all__ = ["TICKET_NAMES", "demo_policy", "run_demo"]

TICKET_NAMES = (
    "Front row",
    "Balcony",
    "Standing",
    "Backstage",
    "VIP lounge",
    "Parking",
    "Merch bundle",
    "Early entry",
    "Cloakroom",
    "Camping",
    "Afterparty",
    "Shuttle bus",
)
#: Units of the contested ticket: ours plus the one spare the rival takes.
CONTESTED_STOCK = 2
OTHER_STOCK = 50
#: Real seconds a loopback request may take before the safety margin stops covering it.
REAL_LATENCY_BUDGET = 0.05
#: Real seconds of slack before a renewal's deadline, and between the rival's reserve
#: and our earliest renewal: room for a loop stalled by a busy machine.
REAL_SLACK = 0.2
DEMO_BUYER = Receiver(email="demo@example.com", firstname="Dana", lastname="Demo")


def clock_slack(speed: float, at_least: float) -> float:
    """``REAL_SLACK`` of real time in clock seconds at ``speed``, but at least ``at_least``."""
    return max(at_least, speed * REAL_SLACK)


def demo_policy(speed: float, cycles: int, ttl: float) -> HoldPolicy:
    """Hold policy for the demo: the defaults, with margins that still hold at ``speed``.

    At 60x the defaults stand. Faster, a real millisecond is ``speed`` clock
    milliseconds, so the margins that cover latency and a stalled loop grow.
    ``warn_before`` is wider than ``renew_before`` so the log shows the warning
    before the renewal; ``max_hold`` lets the demo run its cycles.
    """
    renew_before = clock_slack(speed, 60.0)
    return HoldPolicy(
        warn_before=renew_before + 30.0,
        renew_before=renew_before,
        safety_margin=max(2.0, speed * REAL_LATENCY_BUDGET),
        max_hold=(cycles + 2) * ttl,
    )


class _Progress:
    """Done once every live hold was renewed ``cycles`` times (or none is left)."""

    def __init__(self, view: RunView, cycles: int) -> None:
        self.view = view
        self.cycles = cycles
        self.ready = False
        self.done = anyio.Event()

    def check(self) -> None:
        if not self.ready:
            return
        live = [hold for hold in self.view.holds if not hold.done]
        if all(hold.renewals >= self.cycles for hold in live):
            self.done.set()


async def _rival(
    manager: ReservationManager,
    rival: OpenTicketClient,
    hold: Hold,
    view: RunView,
    output: Output,
    ahead: float,
) -> None:
    """Take the contested ticket's spare unit ``ahead`` (clock s) before our first renewal."""
    policy, clock = manager.policy, manager.clock
    assert hold.reservation is not None
    # whatever the jitter draws, the manager does not renew before this
    first_renewal = earliest_renew_at(hold.reservation, policy, manager.latency.p99)
    await clock.sleep_until(first_renewal - ahead)
    label = view.label(hold)
    try:
        theirs = await rival.reserve_ticket(hold.shop_guid, hold.ticket_guid)
    except OpenTicketError as exc:
        message = f"a rival buyer tried to reserve {label} and failed: {exc}"
        output.emit(view.note("rival", ticket=label, reservation=None, message=message))
        return
    message = f"a rival buyer took the last free {label} unit ({short(theirs.guid)})"
    output.emit(view.note("rival", ticket=label, reservation=theirs.guid, message=message))
    await clock.sleep_until(drop_time(theirs, policy))
    message = f"the rival's {label} reservation {short(theirs.guid)} dropped: they never bought"
    output.emit(view.note("rival", ticket=label, reservation=theirs.guid, message=message))


async def _checkout(client: OpenTicketClient, cart: Cart) -> Order:
    """Pay for the cart with the shop's first payment method; CommandError if it fails."""
    methods = await client.payment_methods(cart.shop_guid)
    if not cart.holds:
        raise CommandError("no order: every hold was lost")
    try:
        return await cart.checkout(
            receiver=DEMO_BUYER, payment_method=methods[0].guid, currency="EUR"
        )
    except HoldsNotReady as exc:
        raise CommandError(f"checkout failed: {exc}") from None


def _seed(fake: FakeOpenTicket[ScaledClock], count: int) -> tuple[str, list[FakeTicket]]:
    """A shop with a payment method and ``count`` tickets; the first is the contested one."""
    shop = fake.add_shop("Demo festival")
    fake.add_payment_method(shop)
    tickets = [
        fake.add_ticket(shop, stock=CONTESTED_STOCK if index == 0 else OTHER_STOCK, name=name)
        for index, name in enumerate(TICKET_NAMES[:count])
    ]
    return shop.guid, tickets


def _start_record(
    view: RunView,
    fake: FakeOpenTicket[ScaledClock],
    args: argparse.Namespace,
    shop: str,
    tickets: list[FakeTicket],
) -> dict[str, Any]:
    ttl, policy = view.ttl, view.policy
    return view.note(
        "start",
        command="demo",
        url=fake.url,
        speed=args.speed,
        cycles=args.cycles,
        reservation_ttl=ttl,
        shop=shop,
        tickets=[
            {"guid": ticket.guid, "name": ticket.name, "stock": fake.stock_left(ticket)}
            for ticket in tickets
        ],
        policy={
            "warn_before": policy.warn_before,
            "renew_before": policy.renew_before,
            "safety_margin": policy.safety_margin,
        },
        message=(
            f"fake shop on {fake.url}, clock {args.speed:g}x (a reservation's "
            f"{clock_text(ttl)} pass in {ttl / args.speed:.1f} s); {len(tickets)} ticket(s), "
            f"{args.cycles} renewal cycle(s); {tickets[0].name} has one spare unit and a rival"
        ),
    )


async def run_demo(args: argparse.Namespace, interrupt: Interrupt) -> int:
    """Run the demo (see the module docstring); return the exit code.

    Raises CommandError when the scenario cannot finish (holds not renewed in
    time, checkout refused), OpenTicketError for an unexpected API failure.
    The summary is shown in every case once the run started.
    """
    clock = ScaledClock(args.speed)
    async with FakeOpenTicket(clock) as fake:
        ttl = fake.reservation_ttl
        shop, tickets = _seed(fake, args.tickets)
        view = RunView(clock, demo_policy(args.speed, args.cycles, ttl), ttl)
        output = make_output(args.json, view, f"openticket demo · {args.speed:g}x")
        try:
            async with animated(output):
                view.begin()
                output.emit(_start_record(view, fake, args, shop, tickets))
                await _play(fake, shop, tickets, view, output, args, interrupt)
        finally:
            output.emit(view.summary_record(interrupted=interrupt.received))
    return OK


async def _play(
    fake: FakeOpenTicket[ScaledClock],
    shop: str,
    tickets: list[FakeTicket],
    view: RunView,
    output: Output,
    args: argparse.Namespace,
    interrupt: Interrupt,
) -> None:
    """Fill the cart, let the rival in, wait for the renewal cycles, check out."""
    clock, ttl = fake.clock, view.ttl
    progress = _Progress(view, args.cycles)

    def show(event: HoldEvent) -> None:
        output.emit(view.hold_record(event))
        progress.check()

    ours = BearerToken(fake.issue_token().access_token)
    theirs = BearerToken(fake.issue_token().access_token)
    async with (
        OpenTicketClient(auth=ours, hosts=fake.hosts, reservation_ttl=ttl, clock=clock) as client,
        OpenTicketClient(auth=theirs, hosts=fake.hosts, reservation_ttl=ttl, clock=clock) as rival,
        ReservationManager(client, policy=view.policy) as manager,
    ):
        manager.on(HoldEvent, show)
        with interrupt.scope:
            async with manager.cart(shop) as cart, anyio.create_task_group() as tg:
                for ticket in tickets:
                    for record in view.track(await cart.add(ticket.guid), ticket.name):
                        output.emit(record)
                ahead = clock_slack(args.speed, 30.0)
                tg.start_soon(_rival, manager, rival, view.holds[0], view, output, ahead)
                progress.ready = True
                progress.check()
                if not await wait_until(
                    progress.done, clock, view.origin + (args.cycles + 2) * ttl
                ):
                    raise CommandError(
                        f"the holds were not renewed {args.cycles} time(s) within "
                        f"{clock_text(view.virtual_time())} of clock time"
                    )
                output.emit(view.order_record(await _checkout(client, cart)))
                tg.cancel_scope.cancel()
