"""Hold events as flat records: the one form an event takes outside its process.

A shared store's event stream (``stores.shared``) and the ``openticket``
command's output (``cli``) both write events as :func:`event_record` makes them,
so what each kind of event carries, and under which key, is decided here once.
A record is JSON-ready (strings, numbers, booleans, None), holds no live object
and no secret: GUIDs stand for reservations and orders, an error is its class
name, its HTTP status and its redacted message.
"""

from __future__ import annotations

from typing import Any

from ._events import AtRisk, CheckedOut, Expired, HoldEvent, Lost, RenewalFailed, Renewed
from ._exceptions import redact
from ._hold import Hold

__all__ = ["RECORD_KEYS", "event_record", "hold_fields"]

#: The keys of every event record; what a kind of event adds comes on top of them.
RECORD_KEYS = frozenset(
    {
        "type",
        "hold",
        "cart",
        "ticket_guid",
        "reservation",
        "state",
        "renewals",
        "time_left",
        "lateness",
    }
)

#: How much of an error's message a record keeps.
MESSAGE_LIMIT = 200


def hold_fields(hold: Hold) -> dict[str, Any]:
    """Who ``hold`` is and where it stands: the hold's part of a record.

    ``state`` is the state's name (``"AT_RISK"``); ``reservation`` the current
    reservation's GUID, or None. Raises nothing.
    """
    reservation = hold.reservation
    return {
        "hold": hold.id,
        "cart": hold.cart_id,
        "ticket_guid": hold.ticket_guid,
        "reservation": None if reservation is None else reservation.guid,
        "state": hold.state.name,
        "renewals": hold.renewals,
    }


def event_record(event: HoldEvent) -> dict[str, Any]:
    """``event`` flattened into one record, read right after the event fired.

    The keys of :data:`RECORD_KEYS` (``type`` is the event's class name), then
    what the kind adds: ``old_reservation`` and ``new_reservation`` (Renewed);
    ``reason`` (AtRisk, Lost, Expired); ``order`` (CheckedOut); ``error``,
    ``status``, ``message`` and ``will_retry`` (RenewalFailed). Raises nothing.
    """
    record: dict[str, Any] = {
        "type": type(event).__name__,
        **hold_fields(event.hold),
        "time_left": event.time_left,
        "lateness": event.lateness,
    }
    if isinstance(event, Renewed):
        record["old_reservation"] = event.old.guid
        record["new_reservation"] = event.new.guid
    elif isinstance(event, RenewalFailed):
        error = event.error
        status = getattr(error, "status", None)
        record["error"] = type(error).__name__
        record["status"] = status if isinstance(status, int) else None
        # Our exceptions never hold a secret, but a renewal can fail with a
        # foreign one (a store's, a bug's): the message is redacted all the same.
        record["message"] = redact(str(error), MESSAGE_LIMIT)
        record["will_retry"] = event.will_retry
    elif isinstance(event, AtRisk | Lost | Expired):
        record["reason"] = event.reason
    elif isinstance(event, CheckedOut):
        record["order"] = event.order.guid
    return record
