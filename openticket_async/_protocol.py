"""Sans-I/O: OpenTicket requests as values, built and checked before anything is sent.

Nothing here waits or touches the network; everything is a plain function of its
inputs, so the whole protocol is tested without an event loop. The client feeds
:class:`Request` values to a transport and hands the :class:`Response` values
to :mod:`~openticket_async._answers`, which reads them.

Invariants the rest of the SDK relies on:

1. A GUID reaches a URL only after :func:`guid` parsed it as a UUID and wrote it
   canonically, so no input can change the path, add a query or escape a route.
2. Header values never contain CR or LF (:func:`header_value`).
3. The shape of the order body lives in :func:`encode_order` alone.
4. Every secret a request carries (the bearer token; a grant's refresh token,
   code and client secret) is found by :func:`request_secrets`, so an error or a
   log line about the request can mask it wherever the answer echoes it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import attrs

from ._exceptions import InvalidArgument
from ._models import Hosts, Receiver, Reservation
from ._version import __version__

__all__ = [
    "TICKETS_IN_ROTATION",
    "USER_AGENT",
    "Request",
    "RequestFactory",
    "ReserveRequests",
    "Response",
    "encode_order",
    "guid",
    "header_value",
    "idempotency_header",
    "request_secrets",
    "route_path",
]

USER_AGENT = f"openticket-async/{__version__}"


# attrs.define, not frozen: a frozen init costs three times as much, and these
# are made on every call; nothing mutates them after creation.
@attrs.define
class Request:
    """One HTTP request, ready to send (a value: never mutated after creation).

    ``path`` is the URL's path (what errors and logs show); ``route`` names the
    endpoint (``"reserve"``, ``"token"``, ...). ``replayable`` is False for a
    request that must never be sent twice behind our back, such as reserve: a
    GET that is not idempotent.
    """

    method: str
    url: str
    path: str
    route: str
    headers: Mapping[str, str]
    body: bytes | None = None
    replayable: bool = True


@attrs.define
class Response:
    """One HTTP answer: status, headers (case-insensitive lookups), the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    request_id: str | None = None


# -- validation ---------------------------------------------------------------------

_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_ANY_GUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\Z"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: How many tickets a client may renew in rotation and still find each one in its
#: per-ticket tables (checked GUIDs here, the client's reserve requests, the
#: transport's URLs, the decoder's products): each table is bounded by it, and
#: emptied when full.
TICKETS_IN_ROTATION = 16_384
# GUIDs seen before, mapped to their canonical form: renewals reserve the same
# tickets over and over, and a lookup is far cheaper than parsing again. Room for
# the tickets in rotation and as many other GUIDs (shops, orders, raw spellings)
_KNOWN_GUIDS: dict[str, str] = {}
_KNOWN_GUIDS_LIMIT = 2 * TICKETS_IN_ROTATION
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})*\Z")
_TOKEN68 = re.compile(r"[\x21-\x7e]{1,255}\Z")


def _shown(value: object) -> str:
    # enough of a bad value to recognise it, never a 10 kB wall of text
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def guid(value: object, name: str = "guid") -> str:
    """Return ``value`` as a canonical GUID (lowercase, hyphenated).

    Accepts a :class:`uuid.UUID` or a string of 32 hex digits, hyphenated or not,
    in any case. Raises InvalidArgument for anything else.
    """
    if type(value) is str:
        known = _KNOWN_GUIDS.get(value)
        if known is not None:
            return known
        if _CANONICAL_GUID.match(value):
            known = value
        elif len(value) <= 36 and _ANY_GUID.match(value):
            known = str(uuid.UUID(value))
        if known is not None:
            if len(_KNOWN_GUIDS) >= _KNOWN_GUIDS_LIMIT:
                _KNOWN_GUIDS.clear()
            _KNOWN_GUIDS[value] = known
            return known
    elif isinstance(value, uuid.UUID):
        return str(value)
    raise InvalidArgument(f"{name} must be a GUID (UUID), got {_shown(value)}")


def header_value(value: object, name: str) -> str:
    """Check that ``value`` may go into an HTTP header; raises InvalidArgument if not."""
    if type(value) is not str or not value or _CONTROL.search(value):
        raise InvalidArgument(f"{name} must be a non-empty string without control characters")
    return value


def idempotency_header(value: object) -> str:
    """Check an ``Idempotency-Key``: 1-255 visible ASCII characters; raises InvalidArgument."""
    if type(value) is not str or not _TOKEN68.match(value):
        raise InvalidArgument("idempotency_key must be 1-255 visible ASCII characters")
    return value


def _text(value: object, name: str, limit: int) -> str:
    if type(value) is not str or not value.strip() or len(value) > limit:
        raise InvalidArgument(f"{name} must be a non-empty string of at most {limit} characters")
    if _CONTROL.search(value):
        raise InvalidArgument(f"{name} must not contain control characters (CR, LF, ...)")
    return value


def _receiver(receiver: object) -> dict[str, str]:
    if not isinstance(receiver, Receiver):
        raise InvalidArgument(f"receiver must be a Receiver, got {type(receiver).__name__}")
    email = _text(receiver.email, "receiver.email", 254)
    local, _, domain = email.partition("@")
    if not local or not domain or " " in email:
        raise InvalidArgument("receiver.email must be an email address (name@domain)")
    locale = _text(receiver.locale, "receiver.locale", 16)
    if not _LOCALE.match(locale):
        raise InvalidArgument(f"receiver.locale must look like en_GB, got {_shown(locale)}")
    return {
        "locale": locale,
        "email": email,
        "firstname": _text(receiver.firstname, "receiver.firstname", 200),
        "lastname": _text(receiver.lastname, "receiver.lastname", 200),
    }


def encode_order(
    shop_guid: str,
    reservations: Sequence[Reservation],
    *,
    receiver: Receiver,
    payment_method: str,
    currency: str,
) -> bytes:
    """Encode the body of ``POST {shop}/{shopGUID}/order`` (shape: docs/wire.md).

    The real shape is unverified: this function is the one place to correct it.
    Raises InvalidArgument for an invalid receiver, currency, payment method or
    reservation list (empty, or a reservation from another shop).
    """
    candidates: object = reservations
    if isinstance(candidates, str | bytes) or not isinstance(candidates, Sequence):
        raise InvalidArgument("reservations must be a sequence of Reservation")
    if not candidates:
        raise InvalidArgument("an order needs at least one reservation")
    tickets = []
    for reservation in candidates:
        if not isinstance(reservation, Reservation):
            raise InvalidArgument(
                f"reservations must hold Reservation values, got {type(reservation).__name__}"
            )
        if reservation.shop_guid.lower() != shop_guid:
            raise InvalidArgument("every reservation of an order must belong to its shop")
        tickets.append(
            {
                "guid": reservation.ticket_guid,
                "reservation": reservation.guid,
                "products": [product.guid for product in reservation.products],
            }
        )
    if type(currency) is not str or not _CURRENCY.match(currency):
        raise InvalidArgument(f"currency must be 3 uppercase letters (EUR), got {_shown(currency)}")
    body = {
        "receiver": _receiver(receiver),
        "paymentProvider": guid(payment_method, "payment_method"),
        "currency": currency,
        "tickets": tickets,
    }
    return json.dumps(body, separators=(",", ":")).encode()


# -- building requests --------------------------------------------------------------


def _encoded_base(base: str) -> str:
    # base URLs are encoded once here, so every URL we build is already valid as
    # sent and the transport can skip quoting it again on each request
    parts = urlsplit(base)
    netloc = parts.netloc if parts.netloc.isascii() else parts.netloc.encode("idna").decode()
    path = quote(parts.path, safe="/%!$&'()*+,;=:@-._~")
    return f"{parts.scheme}://{netloc}{path}"


class RequestFactory:
    """Builds the :class:`Request` of each endpoint for one set of hosts and companies.

    GUID arguments must already be canonical (see :func:`guid`). Header maps are
    built once per role and access token and reused: requests never mutate them.
    """

    __slots__ = ("_bases", "_cache", "_common", "_user_path")

    def __init__(
        self, hosts: Hosts, *, company: str | None = None, user_path: str = "/users/me"
    ) -> None:
        self._bases = {
            role: (url, urlsplit(url).path)
            for role, url in (
                ("auth", _encoded_base(hosts.auth)),
                ("api", _encoded_base(hosts.api)),
                ("shop", _encoded_base(hosts.shop)),
            )
        }
        common = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        scoped = dict(common)
        if company is not None:
            scoped["Company"] = header_value(company, "company")
        self._common = {"auth": common, "api": scoped, "shop": scoped}
        self._cache: dict[str, dict[str, Mapping[str, str]]] = {"auth": {}, "api": {}, "shop": {}}
        self._user_path = route_path(user_path, "user_path")

    def _headers(self, role: str, authorization: str) -> Mapping[str, str]:
        cache = self._cache[role]
        headers = cache.get(authorization)
        if headers is None:
            if len(cache) >= 4:  # old tokens are never used again
                cache.clear()
            headers = {**self._common[role], "Authorization": authorization}
            cache[authorization] = headers
        return headers

    def _get(self, role: str, route: str, path: str, authorization: str) -> Request:
        base, base_path = self._bases[role]
        return Request(
            "GET", base + path, base_path + path, route, self._headers(role, authorization)
        )

    def reserve(self, shop_guid: str, ticket_guid: str, authorization: str) -> Request:
        """``GET {shop}/{shopGUID}/reserve/ticket/{ticketGUID}``: not idempotent."""
        base, base_path = self._bases["shop"]
        path = f"/{shop_guid}/reserve/ticket/{ticket_guid}"
        return Request(
            "GET",
            base + path,
            base_path + path,
            "reserve",
            self._headers("shop", authorization),
            None,
            False,
        )

    def reserver(self, shop_guid: str, ticket_guid: str) -> ReserveRequests:
        """The reserve requests of one shop and ticket, by authorization (see the class)."""
        return ReserveRequests(self, shop_guid, ticket_guid)

    def payment_methods(self, shop_guid: str, authorization: str) -> Request:
        """``GET {api}/shop/{shopGUID}/payment_methods``."""
        path = f"/shop/{shop_guid}/payment_methods"
        return self._get("api", "payment_methods", path, authorization)

    def get_order(self, order_guid: str, authorization: str) -> Request:
        """``GET {api}/order/{orderGUID}``."""
        return self._get("api", "get_order", f"/order/{order_guid}", authorization)

    def me(self, authorization: str) -> Request:
        """``GET {auth}/users/me`` (the path is configurable)."""
        return self._get("auth", "me", self._user_path, authorization)

    def create_order(
        self, shop_guid: str, body: bytes, authorization: str, key: str | None = None
    ) -> Request:
        """``POST {shop}/{shopGUID}/order`` with a JSON body and an optional idempotency key."""
        base, base_path = self._bases["shop"]
        path = f"/{shop_guid}/order"
        headers = {**self._headers("shop", authorization), "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return Request("POST", base + path, base_path + path, "order", headers, body, False)

    def token(self, token_path: str, form: Mapping[str, str]) -> Request:
        """``POST {auth}/tokens`` (or the configured path), form-encoded, without a bearer."""
        base, base_path = self._bases["auth"]
        path = route_path(token_path, "token_path")
        headers = {
            **self._common["auth"],
            "Content-Type": "application/x-www-form-urlencoded",
        }
        return Request(
            "POST", base + path, base_path + path, "token", headers, urlencode(form).encode(), False
        )


class ReserveRequests(dict[str, Request]):
    """The reserve request of one shop and ticket for each authorization, made on first use.

    A manager renews the same tickets over and over: a client that keeps one of
    these per ticket it reserves (bounded by :data:`TICKETS_IN_ROTATION`) finds
    a renewal's request, its URL and headers already built, by a lookup:
    ``__getitem__`` is the builder :meth:`Caller._call` takes, a C-level call on
    a hit. Requests are values, never mutated, so one serves every try.
    ``shop`` and ``ticket`` are the canonical GUIDs. About 0.7 kB per ticket,
    half of it the URL and path texts (the transport keys its parsed URLs by the
    same URL text).
    """

    __slots__ = ("_factory", "shop", "ticket")

    def __init__(self, factory: RequestFactory, shop: str, ticket: str) -> None:
        super().__init__()
        self._factory = factory
        self.shop = shop
        self.ticket = ticket

    def __missing__(self, authorization: str) -> Request:
        if len(self) >= 2:  # a refreshed token: the old one is never sent again
            self.clear()
        request = self[authorization] = self._factory.reserve(self.shop, self.ticket, authorization)
        return request


_ROUTE_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)+\Z")


def route_path(path: object, name: str) -> str:
    """Check a configurable endpoint path (`/users/me`); raises InvalidArgument if unsafe."""
    if (
        type(path) is not str
        or not _ROUTE_PATH.match(path)
        or any(segment in (".", "..") for segment in path.split("/"))
    ):
        raise InvalidArgument(f"{name} must be a plain path such as /users/me, got {_shown(path)}")
    return path


# the form fields of a token grant whose values are secrets (client_id is not)
_GRANT_SECRETS = frozenset({"refresh_token", "code", "client_secret"})


def request_secrets(request: Request) -> list[str]:
    """The secrets ``request`` carries: its bearer token, and a grant's secret fields.

    Called only to build an error or a log line, never on the success path.
    """
    secrets = []
    authorization = request.headers.get("Authorization")
    if authorization:
        secrets.append(authorization.partition(" ")[2] or authorization)
    if request.route == "token" and request.body:
        form = parse_qsl(request.body.decode("utf-8", "replace"))
        secrets += [value for name, value in form if name in _GRANT_SECRETS]
    return secrets
