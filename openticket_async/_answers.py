"""Sans-I/O: OpenTicket answers read into values, errors and retry decisions.

Split from :mod:`~openticket_async._protocol`, which builds requests: reading
an answer is a job of its own (JSON, the error mapping of docs/wire.md,
``Retry-After``, whether a failure may be retried), with its own reasons to
change. Like the request side, nothing here waits or touches the network.

Invariant the rest of the SDK relies on: an exception built here carries the
path only (never a query or a token), and its message and body went through
:func:`~openticket_async._exceptions.redact` with every secret the request
carried and the caller knows (``known``), so a server that echoes a token shows
none. Those secrets are gathered only when an error is built.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

from ._config import RetryPolicy
from ._exceptions import (
    APIError,
    AuthenticationError,
    DecodeError,
    NotFound,
    OpenTicketError,
    RateLimited,
    ServerError,
    TicketUnavailable,
    TransportError,
    excerpt,
    redact,
)
from ._json import load
from ._protocol import Request, Response, request_secrets

__all__ = [
    "KnownSecrets",
    "Replay",
    "error_for",
    "no_secrets",
    "parse_retry_after",
    "read_json",
    "should_retry",
    "with_context",
]

_UNAVAILABLE = frozenset({"sold_out", "reservation_expired", "unavailable"})
_JSON_ERROR_LIMIT = 65536


#: the secrets a caller knows beyond the request (an Auth's tokens and client
#: secret), asked for only when an error is built
KnownSecrets = Callable[[], Iterable[str]]


def no_secrets() -> tuple[str, ...]:
    """The :data:`KnownSecrets` of a caller that knows none beyond the request."""
    return ()


def _secrets(request: Request, known: KnownSecrets) -> list[str]:
    return [*request_secrets(request), *known()]


#: the reader of answers: orjson's with the ``fast`` extra, json's results always
#: (see :mod:`~openticket_async._json`)
_load = load


def read_json(request: Request, response: Response, known: KnownSecrets = no_secrets) -> Any:
    """Parse a JSON body; raises DecodeError (status, content type, snippet) if it is not.

    The snippet masks the request's secrets and those ``known`` returns.
    """
    try:
        return _load(response.body)
    except (ValueError, RecursionError):
        raise DecodeError(
            "the answer is not valid JSON",
            status=response.status,
            content_type=response.headers.get("Content-Type"),
            snippet=_decodeexcerpt(request, response, known),
            method=request.method,
            path=request.path,
        ) from None


def _decodeexcerpt(request: Request, response: Response, known: KnownSecrets) -> str:
    # token answers hold secrets in shapes redact() may not recognise: none is shown
    if request.route == "token":
        return ""
    return excerpt(response.body, 200, _secrets(request, known))


def with_context(
    error: DecodeError, request: Request, response: Response, known: KnownSecrets = no_secrets
) -> DecodeError:
    """Return ``error`` (from a decoder) with the request and response it came from.

    The snippet masks the request's secrets and those ``known`` returns.
    """
    return DecodeError(
        str(error.args[0]),
        field=error.field,
        status=response.status,
        content_type=response.headers.get("Content-Type"),
        snippet=_decodeexcerpt(request, response, known),
        method=request.method,
        path=request.path,
    )


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    text = value.strip()
    try:
        delay = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        delay = (moment - now).total_seconds()
    if delay != delay or delay == float("inf"):  # NaN or infinity
        return None
    return max(delay, 0.0)


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    if not body or len(body) > _JSON_ERROR_LIMIT:
        return None, None
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    if type(payload) is not dict:
        return None, None
    code = payload.get("error")
    message = payload.get("message") or payload.get("error_description")
    return (
        code if type(code) is str else None,
        message if type(message) is str else None,
    )


def error_for(
    request: Request, response: Response, now: datetime, known: KnownSecrets = no_secrets
) -> APIError:
    """Map an error answer (status >= 300) to the exception for it (see docs/wire.md).

    ``now`` is the wall time, used to read a ``Retry-After`` given as a date.
    On the token route every refused grant (4xx but 429) is an AuthenticationError.
    The message and body mask the request's secrets and those ``known`` returns,
    wherever the server echoed them.
    """
    status = response.status
    code, message = _error_fields(response.body)
    token_route = request.route == "token"
    summary = f"{code}: {message}" if code and message else code or message or _phrase(status)
    secrets = _secrets(request, known)
    fields: dict[str, Any] = {
        "status": status,
        "method": request.method,
        "path": request.path,
        "request_id": response.request_id,
        "body": "" if token_route else excerpt(response.body, 2048, secrets),
    }
    summary = redact(summary, 200, secrets)
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        if status == 429:
            return RateLimited(summary, retry_after=retry_after, **fields)
        return ServerError(summary, retry_after=retry_after if status == 503 else None, **fields)
    if status == 401 or (token_route and 400 <= status < 500):
        return AuthenticationError(summary, **fields)
    if status == 404:
        return NotFound(summary, **fields)
    if status in (409, 410) or code in _UNAVAILABLE:
        return TicketUnavailable(summary, **fields)
    return APIError(summary, **fields)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unexpected status"


# -- when to try again --------------------------------------------------------------


class Replay(enum.Enum):
    """How safely a request may be sent again after a failure."""

    #: an idempotent read: retry timeouts, resets and the policy's statuses
    ALWAYS = "always"
    #: reserve: retry only if the server surely did not act, that is the request
    #: never reached it (connection refused, DNS) or it refused with 429/503
    IF_REFUSED = "if_refused"
    #: an order without idempotency key: retry only if it surely never left
    IF_NOT_SENT = "if_not_sent"


_REFUSALS = frozenset({429, 503})


def should_retry(replay: Replay, error: OpenTicketError, policy: RetryPolicy) -> bool:
    """Whether ``error`` allows another try of a request sent with ``replay`` rules.

    Does not count attempts: the caller stops at ``policy.attempts``. A
    ``Retry-After`` longer than ``policy.retry_after_max`` allows none when the
    policy's ``retry_after_over_max`` is ``"raise"``.
    """
    if isinstance(error, TransportError):
        return replay is Replay.ALWAYS or not error.may_have_reached_server
    if not isinstance(error, APIError) or replay is Replay.IF_NOT_SENT:
        return False
    if error.status not in policy.retry_statuses:
        return False
    retry_after = getattr(error, "retry_after", None)
    if (
        retry_after is not None
        and retry_after > policy.retry_after_max
        and policy.retry_after_over_max == "raise"
    ):
        return False
    return replay is Replay.ALWAYS or error.status in _REFUSALS
