"""``openticket reserve``: keep real tickets reserved until Ctrl-C or ``--hold-for``.

Reserves ``--quantity`` units of one ticket and lets a ReservationManager renew
them before every drop. The run ends at ``--hold-for``, on Ctrl-C (SIGINT) or
SIGTERM, or when no hold is left (lost, or past the manager's ``max_hold``
fair-use cap); leaving releases the holds and prints a summary. Ctrl-C is the
normal way to stop: the run exits 130, like any command stopped by Ctrl-C. A
lost hold exits 1.

OpenTicket has no call to release a reservation early: a released hold's unit
stays taken on the server until its reservation drops, up to 8 minutes later,
so the summary counts released holds apart from kept ones.
"""

from __future__ import annotations

import argparse
import os
import sys

import anyio

from .._client import OpenTicketClient
from .._clock import SystemClock
from .._config import HoldPolicy
from .._events import HoldEvent, Lost
from .._manager import ReservationManager
from ._credentials import credentials, resolve_hosts
from ._output import RunView, short
from ._run import OK, CommandError, Interrupt, animated, make_output, wait_until

__all__ = ["reserve_policy", "run_reserve"]


def reserve_policy(hold_for: float | None) -> HoldPolicy:
    """The default policy, its ``max_hold`` stretched to cover ``hold_for`` if longer."""
    policy = HoldPolicy()
    if hold_for is None or policy.max_hold is None or hold_for <= policy.max_hold:
        return policy
    return HoldPolicy(max_hold=hold_for)


async def run_reserve(args: argparse.Namespace, interrupt: Interrupt) -> int:
    """Run ``openticket reserve`` with the parsed ``args``; return the exit code.

    Raises CommandError for missing or unusable credentials or hosts (usage) and
    when a hold was lost; OpenTicketError when reserving fails (unreachable host,
    refused token, unknown or sold-out ticket).
    """
    auth, source, caution = credentials(os.environ)
    hosts = resolve_hosts(
        {"auth": args.auth_host, "api": args.api_host, "shop": args.shop_host}, os.environ
    )
    if caution is not None:
        print(f"openticket reserve: note: {caution}", file=sys.stderr, flush=True)
    clock = SystemClock()
    policy = reserve_policy(args.hold_for)
    label = f"ticket {short(args.ticket)}"
    async with OpenTicketClient(auth=auth, hosts=hosts, clock=clock) as client:
        view = RunView(clock, policy, client.reservation_ttl)
        output = make_output(args.json, view, f"openticket reserve · {label}")
        all_ended = anyio.Event()

        def show(event: HoldEvent) -> None:
            output.emit(view.hold_record(event))
            if view.holds and all(hold.done for hold in view.holds):
                all_ended.set()

        try:
            async with animated(output), ReservationManager(client, policy=policy) as manager:
                manager.on(HoldEvent, show)
                view.begin()
                until = "Ctrl-C" if args.hold_for is None else f"{args.hold_for:g} s or Ctrl-C"
                output.emit(
                    view.note(
                        "start",
                        command="reserve",
                        shop=args.shop,
                        ticket_guid=args.ticket,
                        quantity=args.quantity,
                        hold_for=args.hold_for,
                        shop_host=hosts.shop,
                        message=(
                            f"reserving {args.quantity} x {label} in shop {short(args.shop)} "
                            f"on {hosts.shop} with {source}; keeping them until {until}"
                        ),
                    )
                )
                with interrupt.scope:
                    async with manager.cart(args.shop) as cart:
                        for record in view.track(await cart.add(args.ticket, args.quantity), label):
                            output.emit(record)
                        end = None if args.hold_for is None else clock.now() + args.hold_for
                        await wait_until(all_ended, clock, end)
        finally:
            if view.holds or interrupt.received:
                output.emit(view.summary_record(interrupted=interrupt.received))
    lost = view.count(Lost.__name__)
    if lost:
        raise CommandError(f"{lost} of {len(view.holds)} hold(s) lost")
    return OK
