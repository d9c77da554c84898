"""``openticket holds``: a read-only view of a Redis fleet's carts and holds.

Each refresh is one :func:`~openticket_async.stores.redis._fleet.fleet_snapshot`:
every live hold under the prefix with its state, time left, renewals, owning
worker and lease, at-risk first, then by time left. A terminal gets a rich
table; a pipe gets one plain line per hold under a header line per refresh;
``--json`` one JSON object per hold per line (with the snapshot's ``at``).
``--watch`` refreshes every second until Ctrl-C (exit 130, as every command).

Nothing is written to Redis, and a hold record holds no token, so none can be
shown. The Redis URL's password never appears either: the store names its
server by host, port and database only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import StoreUnavailable
from .._hold import HoldState
from ._output import clock_text, short
from ._run import OK, USAGE, CommandError, Interrupt

if TYPE_CHECKING:
    from rich.table import Table

    from ..stores.redis._fleet import FleetHold, FleetSnapshot

__all__ = ["describe_hold", "fleet_table", "header", "run_holds"]

#: Real seconds between two snapshots with ``--watch``.
REFRESH_EVERY = 1.0
#: Hex digits of a worker's store name shown in the table (the JSON has it all).
OWNER_DIGITS = 8


def _seconds(value: float | None) -> str:
    return "-" if value is None else clock_text(value)


def _lease(hold: FleetHold) -> str:
    if hold.owner is None:
        return "-"
    return f"{hold.lease_left:.1f}s" if hold.lease_left > 0 else "lapsed"


def _columns(hold: FleetHold) -> list[str]:
    return [
        hold.cart_id,
        hold.ticket_guid,
        hold.reservation_guid or "-",
        hold.state.name,
        _seconds(hold.time_left),
        str(hold.renewals),
        "-" if hold.owner is None else hold.owner[:OWNER_DIGITS],
        _lease(hold),
    ]


def header(snapshot: FleetSnapshot, where: str) -> str:
    """The line over a refresh: how many holds and carts, where, and at-risk count."""
    risky = sum(hold.at_risk for hold in snapshot.holds)
    return (
        f"{len(snapshot.holds)} hold(s) in {len(snapshot.carts)} cart(s) on Redis {where}, "
        f"{risky} at risk"
    )


def describe_hold(hold: FleetHold) -> str:
    """One plain line for ``hold``: cart, ticket, reservation, state, time left, renewals,
    owner and lease."""
    cart, ticket, reservation, state, left, renewals, owner, lease = _columns(hold)
    risk = " AT RISK" if hold.at_risk and hold.state is not HoldState.AT_RISK else ""
    return (
        f"cart {cart} ticket {ticket} reservation {reservation} {state}{risk} "
        f"left {left} renewals {renewals} owner {owner} lease {lease}"
    )


def fleet_table(snapshot: FleetSnapshot, title: str) -> Table:
    """The rich table of ``snapshot``: one row per hold, at-risk rows highlighted.

    Raises ImportError when rich is missing (the ``[cli]`` extra).
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, expand=True)
    for name in ("Cart", "Ticket", "Reservation", "State", "Time left", "Renewals",
                 "Owner", "Lease"):
        table.add_column(name, no_wrap=True, justify="right" if name == "Renewals" else "left")
    for hold in snapshot.holds:
        cells = _columns(hold)
        cells[1], cells[2] = short(hold.ticket_guid), short(hold.reservation_guid)
        style = "bold yellow" if hold.at_risk else ""
        table.add_row(*cells[:3], Text(cells[3], style=style or "green"), *cells[4:],
                      style=style)
    return table


class _Screen:
    """Where refreshes go: JSON lines, plain lines, or a rich table (live with ``--watch``)."""

    def __init__(self, args: argparse.Namespace, where: str) -> None:
        self._json = args.json
        self._where = where
        self._rich: Any = None
        self._live: Any = None
        if args.json or not sys.stdout.isatty():
            return
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError as exc:
            if not (exc.name or "").startswith("rich"):
                raise
            raise CommandError(
                "the table needs rich: pip install 'openticket-async[cli]' (or use --json)"
            ) from None
        self._rich = Console()
        if args.watch:
            self._live = Live(console=self._rich, auto_refresh=False)
            self._live.start()

    def show(self, snapshot: FleetSnapshot) -> None:
        """Show one refresh."""
        if self._json:
            for hold in snapshot.holds:
                print(json.dumps({"at": round(snapshot.at, 3), **hold.record()},
                                 separators=(",", ":")), flush=True)
        elif self._rich is None:
            print(header(snapshot, self._where), flush=True)
            for hold in snapshot.holds:
                print(describe_hold(hold), flush=True)
        else:
            table = fleet_table(snapshot, header(snapshot, self._where))
            if self._live is not None:
                self._live.update(table, refresh=True)
            else:
                self._rich.print(table)

    def close(self) -> None:
        """Stop redrawing; the last table stays on screen."""
        if self._live is not None:
            self._live.stop()


async def run_holds(args: argparse.Namespace, interrupt: Interrupt) -> int:
    """Run ``openticket holds`` with the parsed ``args``; return the exit code.

    Raises CommandError when the redis extra is missing or Redis cannot be read.
    """
    try:
        from ..stores.redis import RedisStore
        from ..stores.redis._fleet import fleet_snapshot
    except ImportError as exc:
        if not (exc.name or "").startswith("redis"):
            raise
        raise CommandError("reading a fleet needs redis: pip install 'openticket-async[redis]'"
                           ) from None
    try:
        # the store checks the options before it connects: a bad one never reaches Redis
        store = RedisStore(args.redis, prefix=args.prefix, shards=args.shards)
    except ValueError as error:  # InvalidArgument included: an empty prefix, bad shards
        raise CommandError(f"bad --redis, --prefix or --shards: {error}", USAGE) from None
    screen = _Screen(args, store._link.where)
    try:
        with interrupt.scope:
            while True:
                screen.show(await fleet_snapshot(store))
                if not args.watch:
                    break
                await anyio.sleep(REFRESH_EVERY)
    except StoreUnavailable as error:
        raise CommandError(f"cannot read the fleet: {error}") from None
    finally:
        screen.close()
        await store.aclose()
    return OK
