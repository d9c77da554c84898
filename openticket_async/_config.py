"""Frozen policy values with named defaults.

Durations are accepted as seconds (int or float) or :class:`datetime.timedelta`
and stored as float seconds. Policies compute waits; they never sleep.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Literal

import attrs

from ._exceptions import InvalidArgument

__all__ = ["HoldPolicy", "RetryPolicy", "Timeouts", "seconds"]


def seconds(value: float | timedelta) -> float:
    """Convert a duration given as seconds or ``timedelta`` to float seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"a duration must be seconds or a timedelta, got {value!r}")
    return float(value)


def _optional_seconds(value: float | timedelta | None) -> float | None:
    return None if value is None else seconds(value)


def _statuses(value: Iterable[int]) -> frozenset[int]:
    # a named converter, so type checkers see the constructor take Iterable[int]
    return frozenset(value)


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:  # also refuses NaN
        raise InvalidArgument(f"{attribute.name} must be >= 0, got {value!r}")


def _positive_or_none(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise InvalidArgument(f"{attribute.name} must be > 0 or None, got {value!r}")


@attrs.frozen
class Timeouts:
    """Network timeouts in seconds. ``read`` bounds the wait for each chunk of a response."""

    connect: float = attrs.field(default=5.0, converter=seconds, validator=_non_negative)
    read: float = attrs.field(default=15.0, converter=seconds, validator=_non_negative)
    total: float = attrs.field(default=30.0, converter=seconds, validator=_non_negative)


@attrs.frozen
class RetryPolicy:
    """When and how long to wait before trying a request again.

    ``attempts`` counts every try, the first included (1 means never retry).
    Backoff is exponential with full jitter: attempt *n* (1-based, counting
    failures) waits a uniform random time in ``[0, min(backoff_max,
    backoff_base * 2**(n-1))]``. A server's ``Retry-After`` replaces that wait.
    Whether a request may be retried at all depends on whether the server may
    have acted on it (see the client).

    ``retry_after_over_max`` says what a call does when the server asks for a
    wait longer than ``retry_after_max``:

    - ``"raise"`` (the default): raise the error at once (``RateLimited``, or a
      503's ``ServerError``), its ``retry_after`` the server's own value, so that
      no call sits in a wait longer than ``retry_after_max`` (inside a web
      request, say); the caller decides what to do with the hint.
    - ``"cap"``: wait ``retry_after_max`` and try again.

    The ReservationManager's renewals never wait inside a call: they plan their
    next try with :meth:`backoff` (capped at ``retry_after_max`` either way) and
    never past the reservation's drop.
    """

    attempts: int = attrs.field(default=3)
    backoff_base: float = attrs.field(default=0.25, converter=seconds, validator=_non_negative)
    backoff_max: float = attrs.field(default=8.0, converter=seconds, validator=_non_negative)
    retry_after_max: float = attrs.field(default=30.0, converter=seconds, validator=_non_negative)
    retry_statuses: frozenset[int] = attrs.field(
        default=frozenset({429, 503}), converter=_statuses
    )
    retry_after_over_max: Literal["raise", "cap"] = attrs.field(default="raise")

    @attempts.validator
    def _check_attempts(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"attempts must be an int >= 1, got {value!r}")

    @retry_after_over_max.validator
    def _check_over_max(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ("raise", "cap"):
            raise InvalidArgument(f"retry_after_over_max must be 'raise' or 'cap', got {value!r}")

    def backoff(
        self, failures: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after ``failures`` failed tries (1 after the first failure).

        A ``retry_after`` (the server's hint) replaces the jittered wait, capped
        at ``retry_after_max``.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** max(failures - 1, 0)))
        return (rng or random).uniform(0.0, ceiling)


@attrs.frozen
class HoldPolicy:
    """How the ReservationManager keeps holds alive.

    - ``warn_before``: ``Expiring`` fires this long before a hold's deadline.
    - ``renew_before``: renewal starts at least this long before the deadline; the
      lead grows with the observed reserve latency (a few times its p99).
    - ``safety_margin``: the local deadline is the server's drop time minus this.
    - ``auto_renew``: False means warn and let holds expire.
    - ``max_hold``: total time one hold may be kept alive by renewals (None: no cap).
    - ``idle_timeout``: a cart untouched this long stops renewing (None: never).
    - ``renew_jitter``: renewals are moved *earlier* by a random time up to this,
      so holds made together do not all renew in the same instant.
    - ``renewal_concurrency``: how many reserve calls renewals may run at once.
    - ``min_renew_interval``: never two reserves for one hold closer than this,
      whatever the server answers (the floor that makes a renewal storm impossible).
    - ``min_server_ttl``: a server expiry leaving less than this after the send
      (or one in the past) is taken for clock skew: the hold runs on the local TTL.
    - ``close_timeout``: how long closing the manager waits for the callbacks of
      the events it emits (``Released``) before it logs and abandons them.

    ``warn_before`` is shorter than ``renew_before`` by default, so ``Expiring``
    means "the renewal has not succeeded and the drop is near".
    """

    warn_before: float = attrs.field(default=30.0, converter=seconds, validator=_non_negative)
    renew_before: float = attrs.field(default=60.0, converter=seconds, validator=_non_negative)
    safety_margin: float = attrs.field(default=2.0, converter=seconds, validator=_non_negative)
    auto_renew: bool = True
    max_hold: float | None = attrs.field(
        default=1800.0, converter=_optional_seconds, validator=_positive_or_none
    )
    idle_timeout: float | None = attrs.field(
        default=None, converter=_optional_seconds, validator=_positive_or_none
    )
    renew_jitter: float = attrs.field(default=5.0, converter=seconds, validator=_non_negative)
    renewal_concurrency: int = attrs.field(default=32)
    min_renew_interval: float = attrs.field(
        default=1.0, converter=seconds, validator=_non_negative
    )
    min_server_ttl: float = attrs.field(default=120.0, converter=seconds, validator=_non_negative)
    close_timeout: float = attrs.field(default=5.0, converter=seconds, validator=_non_negative)

    @renewal_concurrency.validator
    def _check_concurrency(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"renewal_concurrency must be an int >= 1, got {value!r}")
