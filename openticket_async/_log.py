"""Logging: the ``openticket_async`` logger, and log lines that never hold a secret.

Requests and responses are logged at DEBUG. Callers check :func:`debug_enabled`
first, so nothing is formatted on the hot path unless someone listens.
``Authorization`` (and cookie) header values are masked; bodies pass through
:func:`~openticket_async._exceptions.redact` with every secret the request
carries and the ones the caller passes (an Auth's tokens and client secret), so
an echoed token shows nowhere; token requests and answers never have their
bodies logged at all.

Setting ``OPENTICKET_LOG=debug`` (or ``info``, ``warning``, ...) in the
environment attaches a stderr handler to the logger at import time, so a user
can watch the traffic without touching code. Without the variable the library
adds no handler, as libraries should.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping

from ._exceptions import OpenTicketError, excerpt, redact
from ._protocol import Request, Response, request_secrets

__all__ = [
    "DEBUG",
    "ENABLED",
    "ENV_VAR",
    "configure_from_environment",
    "debug_enabled",
    "log_failure",
    "log_request",
    "log_response",
    "log_retry",
    "logger",
    "safe_headers",
]

ENV_VAR = "OPENTICKET_LOG"
logger = logging.getLogger("openticket_async")

_MASKED = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
_BODY_LIMIT = 512


def configure_from_environment(environ: Mapping[str, str] = os.environ) -> logging.Handler | None:
    """Attach a stderr handler at the level named by ``OPENTICKET_LOG``, if it is set.

    Returns the handler, or None when the variable is unset or names no level.
    """
    name = environ.get(ENV_VAR, "").strip().upper()
    level = logging.getLevelName(name) if name else None
    if not isinstance(level, int):
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


DEBUG = logging.DEBUG
#: logging's own memo of the logger's ``isEnabledFor`` answers, which it clears on
#: every level change: ``ENABLED.get(DEBUG) is False`` is a sure "no" without a call
#: (any other answer: ask :func:`debug_enabled`)
ENABLED: dict[int, bool] = getattr(logger, "_cache", {})


def debug_enabled() -> bool:
    """True when DEBUG records of the ``openticket_async`` logger go somewhere."""
    if ENABLED.get(DEBUG) is False:
        return False
    return logger.isEnabledFor(DEBUG)


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` fit for a log line: credentials masked."""
    shown = {}
    for name, value in headers.items():
        if name.lower() in _MASKED:
            scheme, _, rest = value.partition(" ")
            shown[name] = f"{scheme} ***" if rest else "***"
        else:
            shown[name] = value
    return shown


def _body(request: Request, body: bytes | None, secrets: Iterable[str]) -> str:
    if not body:
        return ""
    if request.route == "token":
        return f" body=<{len(body)} bytes, not logged>"
    text = excerpt(body, _BODY_LIMIT * 4, [*request_secrets(request), *secrets])
    return " body=" + repr(redact(text, _BODY_LIMIT))


def log_request(request: Request, attempt: int, secrets: Iterable[str] = ()) -> None:
    """Log a request about to be sent (DEBUG); ``secrets`` are masked beyond the request's."""
    logger.debug(
        "-> %s %s attempt=%d headers=%s%s",
        request.method,
        request.path,
        attempt,
        safe_headers(request.headers),
        _body(request, request.body, secrets),
    )


def log_response(
    request: Request, response: Response, elapsed: float, secrets: Iterable[str] = ()
) -> None:
    """Log the answer to a request (DEBUG); ``secrets`` are masked beyond the request's."""
    logger.debug(
        "<- %s %s status=%d request_id=%s elapsed=%.3fs%s",
        request.method,
        request.path,
        response.status,
        response.request_id,
        elapsed,
        _body(request, response.body, secrets),
    )


def log_failure(request: Request, error: OpenTicketError, elapsed: float) -> None:
    """Log a request that got no usable answer (DEBUG)."""
    logger.debug("<- %s %s failed after %.3fs: %s", request.method, request.path, elapsed, error)


def log_retry(request: Request, error: OpenTicketError, wait: float, attempt: int) -> None:
    """Log that a request will be tried again (DEBUG)."""
    logger.debug(
        "retrying %s %s in %.3fs (attempt %d) after: %s",
        request.method,
        request.path,
        wait,
        attempt,
        error,
    )


configure_from_environment()
