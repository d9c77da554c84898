"""The values the hold lifecycle (``_lifecycle``) takes and gives: inputs and actions.

Plain frozen values, so a test can write a whole history down as data. What
each one means for a hold is in the table at the head of ``_lifecycle``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeAlias

import attrs

from ._events import HoldEvent
from ._exceptions import (
    APIError,
    DecodeError,
    RateLimited,
    ServerError,
    TicketUnavailable,
    TransportError,
)
from ._hold import HoldState
from ._models import Order, Reservation

__all__ = [
    "INPUTS",
    "Action",
    "Answered",
    "CheckoutFailed",
    "CheckoutStarted",
    "CheckoutSucceeded",
    "ClockJumped",
    "Close",
    "Due",
    "Emit",
    "End",
    "Failure",
    "Input",
    "Linger",
    "NO_FIELDS",
    "Plan",
    "Refused",
    "Remove",
    "Reserve",
    "Uncertain",
    "classify",
]

#: The fields of an event that has none of its own: one read-only mapping for all,
#: so an ``Emit`` without fields allocates nothing more (one per released hold).
NO_FIELDS: Mapping[str, object] = MappingProxyType({})


# -- inputs --------------------------------------------------------------------------


@attrs.frozen
class Due:
    """The pending ``action`` planned for ``at`` came due (or was claimed)."""

    action: str
    at: float


@attrs.frozen
class Answered:
    """The renewal reserve sent at ``sent``, ``lateness`` after its plan, returned
    ``reservation``."""

    reservation: Reservation
    sent: float
    lateness: float = 0.0


@attrs.frozen
class Failure:
    """Why a reserve failed, as the lifecycle needs to know it (see :func:`classify`).

    ``kind`` is one of ``sold_out``, ``rate_limited``, ``server``, ``timed_out``,
    ``undecodable``, ``failed`` (any other API error) and ``unexpected`` (an
    exception of no known kind: a closed client, a store error, a bug).
    ``uncertain`` says the server may have reserved a unit we never saw.
    """

    kind: str
    error: BaseException
    retry_after: float | None = None
    uncertain: bool = False


def classify(error: BaseException) -> Failure:
    """Map what a reserve raised to the :class:`Failure` the lifecycle acts on."""
    if isinstance(error, TicketUnavailable):
        return Failure("sold_out", error)
    if isinstance(error, RateLimited):
        return Failure("rate_limited", error, error.retry_after)
    if isinstance(error, ServerError):
        return Failure("server", error, error.retry_after)
    if isinstance(error, TransportError):
        return Failure("timed_out", error, uncertain=error.may_have_reached_server)
    if isinstance(error, DecodeError):
        # a 2xx the decoder could not read: the server acted, a unit is taken
        return Failure("undecodable", error, uncertain=error.status is None or error.status < 300)
    if isinstance(error, APIError):
        return Failure("failed", error)
    return Failure("unexpected", error)



@attrs.frozen
class Refused:
    """The renewal reserve sent at ``sent`` failed with ``failure``."""

    failure: Failure
    sent: float


@attrs.frozen
class CheckoutStarted:
    """The hold's cart began a checkout: renewals pause; renew first if needed."""


@attrs.frozen
class CheckoutSucceeded:
    """The hold went into ``order``."""

    order: Order


@attrs.frozen
class CheckoutFailed:
    """The checkout failed or was cancelled: renewals resume."""


@attrs.frozen
class Remove:
    """The application removed the hold or closed its cart."""


@attrs.frozen
class Close:
    """The manager closes with a store no other process shares: the hold is released."""


@attrs.frozen
class ClockJumped:
    """The clock moved in a way plans did not foresee (a stall, a jump): plan again."""


Input: TypeAlias = (
    Due
    | Answered
    | Refused
    | CheckoutStarted
    | CheckoutSucceeded
    | CheckoutFailed
    | Remove
    | Close
    | ClockJumped
)

#: Every input type, for the exhaustive table test.
INPUTS: tuple[type[Any], ...] = (
    Due,
    Answered,
    Refused,
    CheckoutStarted,
    CheckoutSucceeded,
    CheckoutFailed,
    Remove,
    Close,
    ClockJumped,
)


# -- actions -------------------------------------------------------------------------


@attrs.frozen
class Reserve:
    """Send one reserve for this hold now (through :func:`sending`); ``first``: ahead
    of the other renewals, because a checkout waits for it."""

    first: bool = False


@attrs.frozen
class Plan:
    """Make ``action`` at ``at`` the hold's one pending action."""

    action: str
    at: float


@attrs.frozen
class Emit:
    """Tell the application: an event of ``kind`` with ``fields``, ``lateness`` late."""

    kind: type[HoldEvent]
    lateness: float = 0.0
    fields: Mapping[str, object] = NO_FIELDS


@attrs.frozen
class Linger:
    """The server keeps ``reservation``'s unit until its drop; no live hold counts on it."""

    reservation: Reservation


@attrs.frozen
class Uncertain:
    """A reserve sent at ``sent`` may have taken a unit that no answer showed."""

    sent: float


@attrs.frozen
class End:
    """The hold reached a terminal state: forget it. ``previous`` is the live state
    it left, for a shared store that refuses (see :func:`disowned`)."""

    previous: HoldState


Action: TypeAlias = Reserve | Plan | Emit | Linger | Uncertain | End
