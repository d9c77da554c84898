"""What the ``openticket`` command reports, and its two plain presentations.

Every happening of a run becomes one *record*: a flat JSON-ready dict with a
``type``. A hold event's record is the library's own
(:func:`~openticket_async._records.event_record`, type ``Renewed``,
``RenewalFailed``, ...), with the run's time and the hold's label added; the
command's own records are lower case (``start``, ``reserved``, ``rival``,
``order``, ``summary``). ``--json`` prints the records as they are,
one per line; plain output prints :func:`describe` of each; the live view
(``_live``) shows the same lines under a table of the holds.

Times in records are seconds on the run's clock: sped up in the demo, real in
``reserve``. ``virtual_time`` counts from the start of the run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from typing import Any, Protocol, TextIO

from .._clock import Clock
from .._config import HoldPolicy
from .._events import CheckedOut, Expired, HoldEvent, Lost, Released, RenewalFailed, Renewed
from .._hold import Hold, HoldState
from .._models import Order
from .._planning import local_deadline
from .._records import event_record, hold_fields

__all__ = [
    "JsonOutput",
    "Output",
    "PlainOutput",
    "Record",
    "RunView",
    "clock_text",
    "describe",
    "short",
]

Record = dict[str, Any]


def short(guid: str | None) -> str:
    """The first block of a GUID: enough to tell reservations apart on screen."""
    return "-" if guid is None else guid.split("-", 1)[0]


def clock_text(seconds: float) -> str:
    """``seconds`` as ``m:ss`` (``-m:ss`` when negative)."""
    sign = "-" if seconds < 0 else ""
    whole = int(abs(seconds))
    return f"{sign}{whole // 60}:{whole % 60:02d}"


def _round(value: float) -> float:
    return round(value, 3)


class RunView:
    """The state of one run as the command shows it: its holds, their labels, the tallies.

    Fed with every hold event (:meth:`hold_record`); builds the records and the
    final summary. Reads time only from ``clock``.
    """

    def __init__(self, clock: Clock, policy: HoldPolicy, ttl: float) -> None:
        """Start a view at ``clock.now()``; ``ttl`` is the reservation lifetime (seconds)."""
        self.clock = clock
        self.policy = policy
        self.ttl = ttl
        self.origin = clock.now()
        self._real_origin = time.monotonic()
        self.holds: list[Hold] = []
        self._labels: dict[str, str] = {}
        self._at_risk: set[str] = set()
        self._recovered: set[str] = set()
        self._counts: dict[str, int] = {}
        self.order: Order | None = None

    def begin(self) -> None:
        """Count time from now (call it when the run's work starts)."""
        self.origin = self.clock.now()
        self._real_origin = time.monotonic()

    def virtual_time(self) -> float:
        """Seconds on the run's clock since the run started."""
        return self.clock.now() - self.origin

    def track(self, holds: Iterable[Hold], label: str) -> list[Record]:
        """Show ``holds`` under ``label`` (numbered when there are several).

        Returns a ``reserved`` record for each: the holds' first reservations.
        """
        batch = list(holds)
        records = []
        for number, hold in enumerate(batch, start=1):
            self._labels[hold.id] = label if len(batch) == 1 else f"{label} #{number}"
            self.holds.append(hold)
            time_left = _round(self.time_left(hold) or 0.0)
            fields = {**hold_fields(hold), "time_left": time_left, "lateness": 0.0}
            records.append(self.note("reserved", ticket=self.label(hold), **fields))
        return records

    def label(self, hold: Hold) -> str:
        """The name the run gives ``hold`` on screen."""
        return self._labels.get(hold.id, short(hold.ticket_guid))

    def time_left(self, hold: Hold) -> float | None:
        """Seconds until the hold's reservation drops locally; None without one."""
        if hold.reservation is None or hold.state in (HoldState.LOST, HoldState.EXPIRED):
            return None
        return local_deadline(hold.reservation, self.policy) - self.clock.now()

    def count(self, kind: str) -> int:
        """How many records of type ``kind`` the view has built."""
        return self._counts.get(kind, 0)

    def note(self, kind: str, **fields: Any) -> Record:
        """A record of the command's own (``start``, ``rival``...), stamped with the time."""
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return {"type": kind, "virtual_time": _round(self.virtual_time()), **fields}

    def hold_record(self, event: HoldEvent) -> Record:
        """The record of one hold event, with the hold's label; also updates the tallies."""
        hold = event.hold
        fields = event_record(event)
        fields["time_left"] = _round(event.time_left)
        fields["lateness"] = _round(event.lateness)
        record = self.note(fields.pop("type"), ticket=self.label(hold), **fields)
        if hold.state is HoldState.AT_RISK:
            self._at_risk.add(hold.id)
        if isinstance(event, Renewed):
            # positive: renewed before the old reservation dropped
            old_deadline = local_deadline(event.old, self.policy)
            record["old_time_left"] = _round(old_deadline - self.clock.now())
            if hold.id in self._at_risk:
                self._recovered.add(hold.id)
        return record

    def order_record(self, order: Order) -> Record:
        """The record of the order a checkout created."""
        self.order = order
        tickets = [
            {
                "guid": line.guid,
                "ticket_guid": line.ticket_guid,
                "reservation": line.reservation_guid,
                "ticket_number": line.ticket_number,
            }
            for line in order.tickets
        ]
        return self.note(
            "order",
            guid=order.guid,
            status=order.status,
            currency=order.currency,
            tickets=tickets,
        )

    def summary_record(self, *, interrupted: bool) -> Record:
        """The closing record: what was kept, released, renewed, put at risk and lost.

        A released hold is not counted as kept: OpenTicket cannot release a
        reservation early, so its unit stays taken until the reservation drops,
        but it is no longer ours to keep or to check out.
        """
        lost = self.count(Lost.__name__)
        expired = self.count(Expired.__name__)
        released = self.count(Released.__name__)
        return self.note(
            "summary",
            holds=len(self.holds),
            kept=len(self.holds) - lost - expired - released,
            renewals=self.count(Renewed.__name__),
            renewal_failures=self.count(RenewalFailed.__name__),
            at_risk=len(self._at_risk),
            recovered=len(self._recovered),
            lost=lost,
            expired=expired,
            released=released,
            checked_out=self.count(CheckedOut.__name__),
            order=None if self.order is None else self.order.guid,
            real_seconds=_round(time.monotonic() - self._real_origin),
            interrupted=interrupted,
        )


def _describe_hold(record: Record) -> str:
    # The wording per kind of record; the fields it reads are event_record's.
    kind = record["type"]
    who = record["ticket"]
    left = f"{clock_text(record['time_left'])} left"
    if kind == "Renewed":
        swap = f"{short(record['old_reservation'])} -> {short(record['new_reservation'])}"
        when = (
            f"{clock_text(record['old_time_left'])} before the drop"
            if record["old_time_left"] > 0
            else "after the drop"
        )
        return f"renewed {who}: {swap}, {when}; {left}"
    if kind == "RenewalFailed":
        plan = "retry after the drop" if record["state"] == "AT_RISK" else "retrying"
        if not record["will_retry"]:
            plan = "giving up"
        status = "" if record["status"] is None else f" (HTTP {record['status']})"
        why = f"{record['error']}{status}"
        return f"renewal failed for {who}: {why}; {record['state']}, {left}, {plan}"
    if kind == "reserved":
        return f"reserved {who}: reservation {short(record['reservation'])}, {left}"
    if kind == "Expiring":
        return f"expiring soon: {who}, reservation {short(record['reservation'])}, {left}"
    if kind == "AtRisk":
        return f"at risk {who}: {record['reason']}; {left}"
    if kind == "Lost":
        return f"LOST {who}: {record['reason']}"
    if kind == "Expired":
        return f"expired {who}: {record['reason']}"
    if kind == "Released":
        return f"released {who}"
    if kind == "CheckedOut":
        return f"checked out {who} into order {short(record['order'])}"
    return f"{kind} {who}"


def describe(record: Record) -> str:
    """One human line for ``record`` (the summary takes a few)."""
    kind = record["type"]
    stamp = f"[{clock_text(record['virtual_time']):>6}]"
    if "hold" in record:
        return f"{stamp} {_describe_hold(record)}"
    if kind == "start":
        return f"{stamp} {record['message']}"
    if kind == "rival":
        return f"{stamp} {record['message']}"
    if kind == "order":
        return (
            f"{stamp} order {record['guid']} created: {len(record['tickets'])} ticket(s), "
            f"status {record['status']}"
        )
    if kind == "summary":
        return _describe_summary(record)
    return f"{stamp} {kind}"


def _describe_summary(record: Record) -> str:
    head = "Interrupted. Summary" if record["interrupted"] else "Summary"
    lines = [
        f"{head}: {record['kept']} of {record['holds']} hold(s) kept, "
        f"{record['renewals']} renewal(s), {record['at_risk']} at risk "
        f"({record['recovered']} recovered), {record['lost']} lost",
        f"  clock time {clock_text(record['virtual_time'])} in "
        f"{record['real_seconds']:.1f} s real time",
    ]
    if record["released"]:
        # not "kept": the unit is no longer ours, yet nobody else can have it before its drop
        note = "the unit stays taken at OpenTicket until its drop"
        lines.insert(1, f"  {record['released']} released ({note})")
    if record["order"] is not None:
        lines.append(f"  order {record['order']} ({record['checked_out']} ticket(s))")
    return "\n".join(lines)


class Output(Protocol):
    """Where the records of a run go."""

    def emit(self, record: Record) -> None:
        """Show one record. Never raises for a closed stdout."""

    async def animate(self) -> None:
        """Redraw until cancelled (only the live view has anything to redraw)."""

    def close(self) -> None:
        """Finish the output (the live view stops redrawing)."""


class _LineOutput:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._broken = False

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            # the reader went away (`| head`): keep the run going, stop writing
            self._broken = True

    async def animate(self) -> None:
        """Nothing to redraw."""

    def close(self) -> None:
        """Nothing to finish."""


class JsonOutput(_LineOutput):
    """One JSON object per line, for scripts and tests."""

    def emit(self, record: Record) -> None:
        """Write ``record`` as one line of JSON."""
        self._write(json.dumps(record, separators=(",", ":")))


class PlainOutput(_LineOutput):
    """One readable line per record, for logs and pipes."""

    def emit(self, record: Record) -> None:
        """Write :func:`describe` of ``record``."""
        self._write(describe(record))
