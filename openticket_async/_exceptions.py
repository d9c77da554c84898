"""The one error hierarchy of openticket_async.

Split by what the caller can do about it::

    OpenTicketError                 root: catch this to catch everything we raise
    ├── InvalidArgument             misuse: bad input, caught before any request is sent
    ├── UsageError                  misuse: wrong event loop, closed client or manager
    ├── HoldsNotReady               checkout found holds it could not renew; no order made
    ├── CheckoutInProgress          the cart is being checked out already (here or by another
    │                               worker); .retry_after hints when to look again
    ├── TransportError              no usable HTTP answer (connection, timeout)
    │                               .may_have_reached_server says if the server may have acted
    ├── StoreUnavailable            the shared store's Redis is unreachable or refused a command
    │                               .refused says a retry will not help (a misconfiguration)
    ├── DecodeError                 an answer we could not read (not JSON, missing field)
    └── APIError                    the server answered with an error status
        ├── AuthenticationError     401, or the token endpoint refused a grant
        ├── NotFound                404
        ├── TicketUnavailable       409/410, or a sold-out body: try another ticket
        ├── RateLimited             429; .retry_after in seconds (or None)
        └── ServerError             5xx

No message, repr or attribute of these exceptions ever holds a secret: bodies are
truncated and passed through :func:`redact` before they are stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "APIError",
    "AuthenticationError",
    "CheckoutInProgress",
    "DecodeError",
    "HoldsNotReady",
    "InvalidArgument",
    "NotFound",
    "OpenTicketError",
    "RateLimited",
    "ServerError",
    "StoreUnavailable",
    "TicketUnavailable",
    "TransportError",
    "UsageError",
    "excerpt",
    "mask",
    "redact",
]

#: How much of a response body an exception keeps.
BODY_LIMIT = 512

# Values of these keys are secrets wherever they appear (JSON or form bodies).
_SECRET_KEYS = r"(?:access_token|refresh_token|client_secret|code|password|authorization)"  # noqa: S105 (key names, not a secret)
# a value cut off by a truncation has no closing quote: it is masked all the same
_JSON_SECRET = re.compile(r'("' + _SECRET_KEYS + r'"\s*:\s*)"[^"]*("|\Z)', re.IGNORECASE)
_FORM_SECRET = re.compile(r"(\b" + _SECRET_KEYS + r"=)[^&\s]*", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def _spellings(secret: str) -> set[str]:
    # an echoed secret may come back escaped the way a JSON string (PHP's json_encode
    # escapes "/" too) or a form writes it
    quoted = json.dumps(secret)[1:-1]
    return {secret, quoted, quoted.replace("/", "\\/"), quote_plus(secret), quote(secret, safe="")}


def mask(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every occurrence of each of ``secrets`` replaced by ``***``.

    Each secret is also found as a JSON string or a form would escape it. Longer
    secrets are masked first, so one that contains another leaves no part shown.
    """
    spellings = {spelling for secret in secrets if secret for spelling in _spellings(secret)}
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, "***")
    return text


def excerpt(body: bytes, limit: int, secrets: Sequence[str] = ()) -> str:
    """The first ``limit`` characters of ``body`` (UTF-8, errors replaced), ``secrets`` masked.

    They are masked before the cut, so a secret straddling it shows no part of itself.
    """
    # an escaped spelling of a secret is at most 12 characters per character
    reach = limit + 12 * max(map(len, secrets), default=0)
    return mask(body[: reach * 4].decode("utf-8", "replace")[:reach], secrets)[:limit]


def redact(text: str, limit: int = BODY_LIMIT, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` truncated to ``limit`` characters with secret values masked.

    Masked are the values of known secret keys (JSON or form), bearer tokens, and
    each of ``secrets`` (the tokens and client secret the caller knows) wherever
    it appears.
    """
    text = mask(text, secrets)
    text = _JSON_SECRET.sub(r'\1"***\2', text)
    text = _FORM_SECRET.sub(r"\1***", text)
    text = _BEARER.sub(r"\1***", text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return text


class OpenTicketError(Exception):
    """Root of every exception raised by openticket_async.

    Every one pickles with all its fields (for error reporters and process
    pools): what is pickled is what the exception holds, already redacted.
    """

    def __reduce__(self) -> tuple[object, ...]:
        # Exception's own reduce calls ``cls(*args)``, which fails for the
        # subclasses whose fields are keyword-only. Rebuild without __init__
        # instead: ``__new__`` restores ``args``, the state restores the fields
        # (and ``__notes__``), so nothing is validated or redacted twice.
        cls = type(self)
        return (cls.__new__, (cls, *self.args), self.__getstate__())


class InvalidArgument(OpenTicketError, ValueError):
    """An argument is invalid; raised before any request is sent."""


class UsageError(OpenTicketError, RuntimeError):
    """The object is used in a way it does not support (closed, wrong event loop)."""


class HoldsNotReady(OpenTicketError):
    """Checkout could not renew some holds in time; no order was created.

    ``holds`` are the holds that were not ready (now at risk or lost).
    """

    def __init__(self, message: str, *, holds: Sequence[object]) -> None:
        super().__init__(message)
        self.holds = list(holds)

    def __getstate__(self) -> dict[str, object]:
        # A Hold is the manager's live handle: its bookkeeping means nothing in
        # another process, and its read-only metadata (a mappingproxy) does not
        # pickle. Pickle each hold's class (by reference) with its public fields;
        # __setstate__ makes detached Holds of them again. Carrying the class keeps
        # this module from importing _hold, which sits above it (_hold imports the
        # models, which import us): the floor plan has no import cycle.
        holds: list[Any] = self.holds
        state = dict(self.__dict__)
        state["holds"] = [
            (
                type(hold),
                {
                    "id": hold.id,
                    "cart_id": hold.cart_id,
                    "shop_guid": hold.shop_guid,
                    "ticket_guid": hold.ticket_guid,
                    "reservation": hold.reservation,
                    "created_at": hold.created_at,
                    "metadata": None if hold.metadata is None else dict(hold.metadata),
                    "state": hold.state,
                    "renewals": hold.renewals,
                },
            )
            for hold in holds
        ]
        return state

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        holds = []
        for hold_type, fields in state.get("holds", ()):
            metadata = fields["metadata"]
            if metadata is not None:
                fields = {**fields, "metadata": MappingProxyType(metadata)}
            holds.append(hold_type(**fields))
        super().__setstate__({**state, "holds": holds})


class CheckoutInProgress(OpenTicketError):
    """The cart is being checked out already; this checkout did nothing.

    Another checkout of cart ``cart_id`` (in this process or in another worker
    sharing the store) holds its claim and the order's outcome is not known
    yet. A web backend answers it as a conflict (HTTP 409) and lets the client
    look at the cart again later: the holds end ``ORDERED`` if that order
    succeeds and stay kept if it fails. ``retry_after`` is the most seconds the
    claim lasts unless its holder extends it (None when not known).
    """

    def __init__(self, message: str, *, cart_id: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.cart_id = cart_id
        self.retry_after = retry_after


class TransportError(OpenTicketError):
    """The request got no usable HTTP answer: connection failure or timeout.

    ``may_have_reached_server`` is False only when the request surely never left
    (connection refused, DNS failure); then it is safe to retry even a request
    that is not idempotent.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        may_have_reached_server: bool,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.may_have_reached_server = may_have_reached_server
        self.timed_out = timed_out

    def __str__(self) -> str:
        return f"{self.args[0]} ({self.method} {self.path})"


class StoreUnavailable(OpenTicketError):
    """The shared store's Redis could not be reached, or refused a command.

    Not a TransportError: no OpenTicket request is involved, and the API never
    saw anything. ``refused`` is True when Redis answered with an error (a
    misconfiguration, such as a key of the wrong type under the store's prefix):
    retrying will not help. Otherwise the connection failed or timed out, and a
    later try may work. Importable from ``openticket_async.stores.redis`` (the
    ``[redis]`` extra), not from the top-level package.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class DecodeError(OpenTicketError):
    """A response (or a field in it) could not be decoded into a model."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        content_type: str | None = None,
        snippet: str = "",
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.status = status
        self.content_type = content_type
        self.snippet = redact(snippet, 200)
        self.method = method
        self.path = path

    def __str__(self) -> str:
        parts = [str(self.args[0])]
        if self.field:
            parts.append(f"field={self.field!r}")
        if self.method and self.path:
            parts.append(f"{self.method} {self.path}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.content_type:
            parts.append(f"content-type={self.content_type!r}")
        if self.snippet:
            parts.append(f"body={self.snippet!r}")
        return "; ".join(parts)


class APIError(OpenTicketError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        path: str,
        request_id: str | None = None,
        body: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.request_id = request_id
        self.body = redact(body)

    def __str__(self) -> str:
        text = f"{self.args[0]} (HTTP {self.status}, {self.method} {self.path}"
        if self.request_id:
            text += f", request id {self.request_id}"
        return text + ")"


class AuthenticationError(APIError):
    """The credentials were refused (401), or a token grant or refresh was rejected."""


class NotFound(APIError):
    """The shop, ticket or order does not exist (404)."""


class TicketUnavailable(APIError):
    """The ticket cannot be reserved or ordered now: sold out, or its reservation dropped."""


class _RetryAfter(APIError):
    """An error status that may come with the server's ``Retry-After`` hint (seconds)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        path: str,
        request_id: str | None = None,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status=status, method=method, path=path, request_id=request_id, body=body
        )
        self.retry_after = retry_after


class RateLimited(_RetryAfter):
    """Too many requests (429). ``retry_after`` is the server's hint in seconds, if any."""


class ServerError(_RetryAfter):
    """The server failed (5xx). ``retry_after`` carries a 503's hint, if any."""
