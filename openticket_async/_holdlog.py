"""Lifecycle log lines on the ``openticket_async.manager`` logger, with their fields in ``extra``.

- WARNING when a hold turns ``AT_RISK``, is ``Lost``, or a renewal failed;
- INFO for a checkout (ordered or not) and for a shared store's outages and
  their end;
- DEBUG for each ``Renewed``.

Every field also goes in ``extra`` (``openticket_event``, ``hold_id``,
``cart_id``, ``shop_guid``, ``ticket_guid``, ``time_left``, ``cause``, ...), so
a JSON formatter (python-json-logger, structlog's stdlib bridge) writes them as
fields of their own. Causes come from the SDK's exceptions, whose messages never
hold a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._events import AtRisk, HoldEvent, Lost, RenewalFailed, Renewed
from ._hold import Hold
from ._steps import Emit
from ._telemetry import HoldMetrics

__all__ = ["WATCHED", "HoldWatch", "log_checkout", "log_store", "logger"]

logger = logging.getLogger("openticket_async.manager")

#: The events :class:`HoldWatch` looks at; the manager skips it for the others.
WATCHED: frozenset[type[HoldEvent]] = frozenset({AtRisk, Lost, RenewalFailed, Renewed})
_CAUSE_LIMIT = 200


def _fields(hold: Hold, event: str, time_left: float, cause: str | None) -> dict[str, Any]:
    return {
        "openticket_event": event,
        "hold_id": hold.id,
        "cart_id": hold.cart_id,
        "shop_guid": hold.shop_guid,
        "ticket_guid": hold.ticket_guid,
        "time_left": round(time_left, 3),
        "cause": cause,
    }


def _error_text(error: object) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _CAUSE_LIMIT else text[: _CAUSE_LIMIT - 3] + "..."


class HoldWatch:
    """Logs the hold events in :data:`WATCHED`, and counts lost holds when metrics are on.

    ``time_left`` gives a hold's time left at a given "now" (the manager's).
    """

    def __init__(
        self, time_left: Callable[[Hold, float], float], metrics: HoldMetrics | None
    ) -> None:
        self._time_left = time_left
        self._metrics = metrics

    def __call__(self, hold: Hold, emit: Emit, now: float) -> None:
        """Log what ``emit`` says happened to ``hold`` at ``now``."""
        kind = emit.kind
        if kind is Renewed:
            if logger.isEnabledFor(logging.DEBUG):
                left = self._time_left(hold, now)
                logger.debug(
                    "hold %s renewed (%d so far): %.1f s left",
                    hold.id, hold.renewals, left,
                    extra=_fields(hold, "Renewed", left, None) | {"renewals": hold.renewals},
                )
            return
        left = self._time_left(hold, now)
        if kind is AtRisk:
            cause = str(emit.fields["reason"])
            logger.warning(
                "hold %s of cart %s is at risk (%s): %.1f s left",
                hold.id, hold.cart_id, cause, left,
                extra=_fields(hold, "AtRisk", left, cause),
            )
        elif kind is Lost:
            cause = str(emit.fields["reason"])
            logger.warning(
                "hold %s of cart %s is lost (%s): ticket %s",
                hold.id, hold.cart_id, cause, hold.ticket_guid,
                extra=_fields(hold, "Lost", left, cause),
            )
            if self._metrics is not None:
                self._metrics.lost("sold_out" if cause == "sold_out" else "renewal_failed")
        else:  # RenewalFailed
            cause = _error_text(emit.fields["error"])
            logger.warning(
                "renewal of hold %s of cart %s failed (%s): %.1f s left",
                hold.id, hold.cart_id, cause, left,
                extra=_fields(hold, "RenewalFailed", left, cause)
                | {"will_retry": bool(emit.fields["will_retry"])},
            )


def log_checkout(cart_id: str, shop_guid: str, holds: int, order_guid: str | None,
                 error: BaseException | None) -> None:
    """Log a checkout's outcome (INFO): the order made, or why none was."""
    fields = {"openticket_event": "Checkout", "cart_id": cart_id, "shop_guid": shop_guid,
              "holds": holds, "order_guid": order_guid}
    if order_guid is not None:
        logger.info("cart %s checked out: order %s with %d hold(s)", cart_id, order_guid, holds,
                    extra=fields | {"cause": None})
    else:
        cause = "no order" if error is None else _error_text(error)
        logger.info("checkout of cart %s made no order (%s)", cart_id, cause,
                    extra=fields | {"cause": cause})


def log_store(available: bool, down_for: float | None) -> None:
    """Log that the shared store became unreachable, or reachable again (INFO)."""
    if available:
        logger.info("the store is reachable again after %.1f s; due work resumes",
                    down_for or 0.0,
                    extra={"openticket_event": "StoreAvailable", "down_for": down_for})
    else:
        logger.info("the store is unreachable: no due work can be claimed until it answers",
                    extra={"openticket_event": "StoreUnavailable"})
