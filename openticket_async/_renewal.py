"""Renewal execution: the reserve calls the lifecycle asks for, and what came of them.

The lifecycle (``_lifecycle``) decides that a hold needs a reserve and returns a
``Reserve`` action; the manager hands the hold to :meth:`Renewals.enqueue`.
At most ``renewal_concurrency`` worker tasks exist, only while there is work;
each takes the next hold, asks :func:`~openticket_async._lifecycle.sending`
whether that reserve is still wanted (checkout may have made it already, the
hold may have ended), sends one try, and feeds the outcome back: a failure as a
``Refused`` input, an answer to the executor's ``renewed`` (the ``Answered`` input,
taken by the lifecycle's shortcut when it can). Whatever a reserve raises is contained here:
a closed client, a store error or a bug fails that hold's attempt, is logged
once with its traceback, and never reaches the task group.

:meth:`Renewals.reserve` is the one place a reserve is sent, for a cart's first
reserve as for renewals: it records the latency, counts a unit the server may
hold although no answer showed it (``lingering``), and replaces an implausible
server expiry by the local TTL (``_planning.plausible``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import anyio

from ._clock import Clock
from ._config import HoldPolicy, RetryPolicy
from ._events import Spawn
from ._exceptions import DecodeError, TransportError
from ._hold import Hold
from ._lifecycle import Input, Refused, Rules, classify, not_before, sending
from ._lingering import LingeringUnits
from ._models import Reservation
from ._pending import Pending
from ._planning import LatencyTracker, local_deadline, plausible
from ._ports import ReservingClient
from ._stats import LatenessWindow
from ._telemetry import HoldMetrics

__all__ = ["ONE_TRY", "Renewals"]

logger = logging.getLogger("openticket_async.manager")

#: Renewals plan their own retries against the hold's deadline: one try per call.
ONE_TRY = RetryPolicy(attempts=1)
#: A failed renewal's kind (``_steps.classify``) as the ``openticket.renewals`` outcome.
_OUTCOMES = {
    "sold_out": "sold_out",
    "rate_limited": "rate_limited",
    "timed_out": "timed_out",
    "unexpected": "error",
}


class Renewals:
    """The renewal queue, its worker tasks, and the reserve call itself."""

    def __init__(
        self,
        client: ReservingClient,
        clock: Clock,
        policy: HoldPolicy,
        lingering: LingeringUnits,
        finish: Callable[[Hold, Input], Pending],
        renewed: Callable[[Hold, Reservation, float, float], Pending],
        rules: Rules,
        metrics: HoldMetrics | None = None,
    ) -> None:
        """``finish`` applies a reserve's outcome to its hold (the manager's step),
        ``renewed`` a successful one (the same, cheaper);
        ``metrics`` spans and counts each renewal when OpenTelemetry is on."""
        self._rules = rules
        self._client = client
        self._clock = clock
        self._policy = policy
        self._lingering = lingering
        self._finish = finish
        self._renewed = renewed
        self.latency = LatencyTracker()
        self.lateness = LatenessWindow()
        self._metrics = metrics
        self._queue: deque[Hold] = deque()
        self._workers = 0
        self._spawn: Spawn | None = None
        self._skew_logged = False

    def bind(self, spawn: Spawn | None) -> None:
        """Start worker tasks through ``spawn`` (None: stop starting them)."""
        self._spawn = spawn

    @property
    def in_flight(self) -> int:
        """Renewal reserves queued or on the wire."""
        return len(self._queue) + self._workers

    def enqueue(self, hold: Hold, first: bool = False) -> None:
        """Queue ``hold``'s reserve (``first``: ahead of the others, for a checkout)."""
        if first:
            self._queue.appendleft(hold)
        else:
            self._queue.append(hold)
        if self._workers < self._policy.renewal_concurrency and self._spawn is not None:
            self._workers += 1
            self._spawn(self._work)

    async def reserve(
        self,
        shop_guid: str,
        ticket_guid: str,
        retry: RetryPolicy | None,
        sent: float,
        *,
        count: bool = True,
    ) -> Reservation:
        """Reserve once (sent at ``sent``): the one place a reserve goes out.

        Raises what the client raises. A unit the server may hold although no
        answer showed it is counted in ``lingering`` first: always when the call
        is cancelled, and for a failed answer when ``count`` (a renewal leaves
        that to the lifecycle's ``Uncertain`` action).
        """
        try:
            reservation = await self._client.reserve_ticket(shop_guid, ticket_guid, retry=retry)
        except (TransportError, DecodeError) as exc:
            if count and classify(exc).uncertain:
                self.uncertain(ticket_guid, sent)
            raise
        except anyio.get_cancelled_exc_class():
            self.uncertain(ticket_guid, sent)
            raise
        now = self._clock.now()
        self.latency.record(now - sent)
        fixed = plausible(reservation, sent, self._client.reservation_ttl, self._policy)
        if fixed is None:
            return reservation
        if not self._skew_logged:
            self._skew_logged = True
            logger.warning(
                "the server's reservation expiry leaves %.1f s (under %.1f s): taken for"
                " clock skew, holds run on the local TTL (logged once)",
                reservation.deadline - sent,
                self._policy.min_server_ttl,
            )
        return fixed

    def uncertain(self, ticket_guid: str, sent: float) -> None:
        """Count a unit a reserve sent at ``sent`` may have taken without telling us."""
        until = sent + self._client.reservation_ttl + self._policy.safety_margin
        self._lingering.add(ticket_guid, None, until, self._clock.now())

    async def _work(self) -> None:
        try:
            queue, clock, rules = self._queue, self._clock, self._rules
            while queue:
                hold = queue.popleft()
                now = clock.now()
                floor = not_before(hold, rules)
                if floor > now:
                    await clock.sleep_until(floor)
                    now = clock.now()
                lateness = sending(hold, now)
                if lateness is None:
                    continue
                self.lateness.record(lateness)
                if self._metrics is None:
                    await self._renew(hold, lateness)
                else:
                    await self._renew_observed(hold, lateness, self._metrics)
        finally:
            self._workers -= 1

    async def _renew_observed(self, hold: Hold, lateness: float, metrics: HoldMetrics) -> None:
        """:meth:`_renew` inside its ``openticket.renewal`` span, counted."""
        old = hold.reservation
        left = 0.0 if old is None else local_deadline(old, self._policy) - hold._last_sent
        with metrics.renewal(hold.id, hold.cart_id, lateness, left) as outcome:
            outcome(await self._renew(hold, lateness))

    async def _renew(self, hold: Hold, lateness: float) -> str:
        """Send ``hold``'s reserve and feed the outcome back; raises only cancellation.

        Returns the outcome as the ``openticket.renewals`` metric names it.
        """
        sent = hold._last_sent
        refused: Refused | None = None
        reservation: Reservation | None
        try:
            reservation = await self.reserve(
                hold.shop_guid, hold.ticket_guid, ONE_TRY, sent, count=False
            )
        except Exception as exc:
            failure = classify(exc)
            if failure.kind == "unexpected":
                logger.exception("renewal of hold %s failed unexpectedly", hold.id)
            refused, reservation = Refused(failure, sent), None
            result = _OUTCOMES.get(failure.kind, "failed")
        else:
            result = "renewed"
        try:
            if reservation is not None:  # the common answer: the executor's cheap path
                pending = self._renewed(hold, reservation, sent, lateness)
            else:
                assert refused is not None
                pending = self._finish(hold, refused)
            if pending is not None:
                await pending
        except Exception:
            logger.exception("recording the renewal of hold %s failed", hold.id)
        return result
