"""OpenTicketClient, the façade: its options, its life (open, close) and its endpoints.

Each endpoint method checks its arguments, says how to build its request and
whether it may be sent again, hands that to the one retry loop it inherits
(:meth:`~openticket_async._caller.Caller._call`, where auth, retries, hooks and
telemetry live) and reads the answer into a model. ``get_order`` is the
template: a new endpoint should read as plainly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

from ._answers import Replay, read_json, with_context
from ._auth import Auth
from ._caller import Caller, HttpTokenEndpoint
from ._clock import Clock, SystemClock
from ._config import RetryPolicy, Timeouts, seconds
from ._exceptions import DecodeError, InvalidArgument, UsageError
from ._models import Hosts, Order, PaymentMethod, Receiver, Reservation, TokenSet, User
from ._observe import OnRequest, OnResponse
from ._protocol import (
    TICKETS_IN_ROTATION,
    Request,
    RequestFactory,
    ReserveRequests,
    Response,
    encode_order,
    guid,
    idempotency_header,
    route_path,
)
from ._reserve_decoder import decode_reservation
from ._telemetry import Telemetry
from ._transport import AiohttpTransport, Session, Transport
from ._wire import CONVERTER

__all__ = ["OpenTicketClient", "exchange_code"]

_M = TypeVar("_M")


def _company_header(company: object) -> str | None:
    if company is None:
        return None
    if isinstance(company, str):
        return guid(company, "company")
    if not isinstance(company, Sequence):
        raise InvalidArgument("company must be a GUID or a sequence of GUIDs")
    guids = [guid(item, "company") for item in company]
    return ",".join(guids) if guids else None


def _policy(retry: object) -> RetryPolicy | None:
    if retry is None or isinstance(retry, RetryPolicy):
        return retry
    raise InvalidArgument(f"retry must be a RetryPolicy, got {type(retry).__name__}")


class OpenTicketClient(Caller):
    """An async client for the OpenTicket API (auth, api and shop roles).

    Use it as ``async with OpenTicketClient(auth=...) as client:`` or call
    :meth:`aclose`. ``company`` (one GUID or several) narrows the token to those
    companies. ``reservation_ttl`` (seconds or timedelta) is how long the server
    keeps a reservation. ``session`` is an aiohttp session to use (never closed
    by the client); ``transport`` replaces aiohttp altogether (an object with an
    async ``send``, which the caller closes). ``clock`` is the time source for
    send times and retry waits (default: :class:`SystemClock`). ``user_path`` is
    the current-user path (``/user/me`` on older deployments). ``telemetry``
    says where OpenTelemetry spans and metrics go (default: the providers the
    application configured; none, nothing); ``on_request`` and ``on_response``
    are request hooks (see docs/observability.md). The constructor
    raises InvalidArgument for a malformed option, such as a company that is not
    a GUID.

    A client belongs to the event loop it first runs on. Every method raises
    UsageError once the client is closed or from another event loop,
    InvalidArgument before sending anything when an argument is malformed,
    TransportError when no answer came back, DecodeError for an answer it cannot
    read, and an APIError subclass for an error status (see docs/wire.md).
    """

    def __init__(
        self,
        *,
        auth: Auth,
        hosts: Hosts = Hosts(),  # noqa: B008 (frozen value)
        company: str | Sequence[str] | None = None,
        reservation_ttl: float | timedelta = 480.0,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 (frozen value)
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen value)
        session: Session | None = None,
        clock: Clock | None = None,
        transport: Transport | None = None,
        user_path: str = "/users/me",
        telemetry: Telemetry | None = None,
        on_request: OnRequest | None = None,
        on_response: OnResponse | None = None,
    ) -> None:
        if not callable(getattr(auth, "authorization", None)) or not callable(
            getattr(auth, "unauthorized", None)
        ):
            raise InvalidArgument("auth must be a BearerToken, an OAuth2 or another Auth")
        if not isinstance(hosts, Hosts):
            raise InvalidArgument(f"hosts must be a Hosts, got {type(hosts).__name__}")
        if not isinstance(timeouts, Timeouts):
            raise InvalidArgument(f"timeouts must be a Timeouts, got {type(timeouts).__name__}")
        ttl = seconds(reservation_ttl)
        if not ttl > 0:
            raise InvalidArgument(f"reservation_ttl must be > 0, got {reservation_ttl!r}")
        if session is not None and transport is not None:
            raise InvalidArgument("pass a session or a transport, not both")
        self._hosts = hosts
        self._company = _company_header(company)
        self._ttl = ttl
        self._ttl_delta = timedelta(seconds=ttl)
        # (shop, ticket) as given -> their checked GUIDs and requests; see reserve_ticket
        self._reserves: dict[tuple[str, str], ReserveRequests] = {}
        policy = _policy(retry) or RetryPolicy()
        factory = RequestFactory(
            hosts, company=self._company, user_path=route_path(user_path, "user_path")
        )
        self._owns_transport = transport is None
        super().__init__(
            auth=auth,
            factory=factory,
            transport=(
                AiohttpTransport(session, timeouts=timeouts) if transport is None else transport
            ),
            clock=SystemClock() if clock is None else clock,
            retry=policy,
            hosts=hosts,
            telemetry=telemetry,
            on_request=on_request,
            on_response=on_response,
        )

    @property
    def clock(self) -> Clock:
        """The clock this client reads send times from and sleeps on."""
        return self._clock

    @property
    def reservation_ttl(self) -> float:
        """How long the server keeps a reservation, in seconds."""
        return self._ttl

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of every call that does not pass its own."""
        return self._retry

    @property
    def hosts(self) -> Hosts:
        """The base URLs in use."""
        return self._hosts

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran."""
        return self._closed

    async def __aenter__(self) -> Self:
        if self._closed:
            raise UsageError("the client is closed; create a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client and the connections it opened. Idempotent.

        Raises UsageError when called from another event loop than the one the
        client ran on (while that loop is still open).
        """
        if self._closed:
            return
        if self._owns_transport and isinstance(self._transport, AiohttpTransport):
            await self._transport.aclose()
        self._closed = True

    def __repr__(self) -> str:
        return (
            f"OpenTicketClient(hosts={self._hosts!r}, company={self._company!r}, "
            f"auth={self._auth!r}, closed={self._closed})"
        )

    async def reserve_ticket(
        self, shop_guid: str, ticket_guid: str, *, retry: RetryPolicy | None = None
    ) -> Reservation:
        """Reserve one ticket; the reservation drops ``reservation_ttl`` after it is made.

        Reserve is not idempotent (each call holds one more unit), so it is
        retried only when the server surely did not act: the connection failed
        or the server answered 429/503. ``retry`` overrides the client's policy
        for this call. Raises TicketUnavailable when sold out, NotFound for an
        unknown shop or ticket, plus the errors listed on the class.
        """
        # A manager may renew thousands of tickets in rotation: what is kept per
        # ticket (its checked GUIDs and requests, the transport's URL, the
        # decoder's product) sits in bounded tables large enough for all of them,
        # found in one lookup each.
        requests = None
        if type(shop_guid) is str and type(ticket_guid) is str:
            requests = self._reserves.get((shop_guid, ticket_guid))
        if requests is None:
            requests = self._reserve_requests(shop_guid, ticket_guid)
        request, response, sent_at, sent_wall = await self._call(
            requests.__getitem__,
            Replay.IF_REFUSED,
            retry if retry is None else _policy(retry),
        )
        data = read_json(request, response, self._known)
        try:
            return decode_reservation(
                data,
                shop_guid=requests.shop,
                ticket_guid=requests.ticket,
                sent_at=sent_at,
                sent_wall=sent_wall,
                ttl=self._ttl_delta,
            )
        except DecodeError as error:
            raise with_context(error, request, response, self._known) from None

    def _reserve_requests(self, shop_guid: object, ticket_guid: object) -> ReserveRequests:
        """Check the GUIDs (InvalidArgument before any request) and keep their requests."""
        requests = self._factory.reserver(
            guid(shop_guid, "shop_guid"), guid(ticket_guid, "ticket_guid")
        )
        if type(shop_guid) is str and type(ticket_guid) is str:
            table = self._reserves
            if len(table) >= TICKETS_IN_ROTATION:  # emptied when full: no eviction order
                table.clear()
            table[shop_guid, ticket_guid] = requests
        return requests

    async def payment_methods(
        self, shop_guid: str, *, retry: RetryPolicy | None = None
    ) -> list[PaymentMethod]:
        """The payment methods of a shop; pass one's ``guid`` to :meth:`create_order`.

        Raises NotFound for an unknown shop, plus the errors listed on the class.
        """
        shop = guid(shop_guid, "shop_guid")
        factory = self._factory

        def build(authorization: str) -> Request:
            return factory.payment_methods(shop, authorization)

        request, response, _, _ = await self._call(build, Replay.ALWAYS, _policy(retry))
        data = read_json(request, response, self._known)
        if isinstance(data, dict) and "data" in data:
            data = data["data"]
        return list(self._decode(data, tuple[PaymentMethod, ...], request, response))

    async def create_order(
        self,
        shop_guid: str,
        reservations: Sequence[Reservation],
        *,
        receiver: Receiver,
        payment_method: str,
        currency: str,
        idempotency_key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Order:
        """Create an order from live reservations (one per ticket).

        Without ``idempotency_key`` the order is sent at most once, unless the
        connection surely failed before it left: a second POST could create a
        second order. With a key (sent as ``Idempotency-Key``, the same on every
        try) it is retried like a read. Raises TicketUnavailable when a
        reservation dropped, InvalidArgument for a bad receiver, currency or
        reservation list, plus the errors listed on the class.
        """
        shop = guid(shop_guid, "shop_guid")
        body = encode_order(
            shop, reservations, receiver=receiver, payment_method=payment_method, currency=currency
        )
        key = None if idempotency_key is None else idempotency_header(idempotency_key)
        factory = self._factory

        def build(authorization: str) -> Request:
            return factory.create_order(shop, body, authorization, key)

        replay = Replay.IF_NOT_SENT if key is None else Replay.ALWAYS
        request, response, _, _ = await self._call(build, replay, _policy(retry))
        return self._decode(read_json(request, response, self._known), Order, request, response)

    async def get_order(self, order_guid: str, *, retry: RetryPolicy | None = None) -> Order:
        """One order with its tickets. Raises NotFound for an unknown order, plus the
        errors listed on the class."""
        order = guid(order_guid, "order_guid")
        factory = self._factory

        def build(authorization: str) -> Request:
            return factory.get_order(order, authorization)

        request, response, _, _ = await self._call(build, Replay.ALWAYS, _policy(retry))
        return self._decode(read_json(request, response, self._known), Order, request, response)

    async def me(self, *, retry: RetryPolicy | None = None) -> User:
        """The user the token belongs to. Raises the errors listed on the class."""
        factory = self._factory
        request, response, _, _ = await self._call(factory.me, Replay.ALWAYS, _policy(retry))
        return self._decode(read_json(request, response, self._known), User, request, response)

    def _decode(self, data: Any, model: type[_M], request: Request, response: Response) -> _M:
        try:
            return CONVERTER.structure(data, model)
        except DecodeError as error:
            raise with_context(error, request, response, self._known) from None


async def exchange_code(
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    hosts: Hosts = Hosts(),  # noqa: B008 (frozen value)
    token_path: str = "/tokens",  # noqa: S107 (a URL path, not a password)
    session: Session | None = None,
    timeouts: Timeouts = Timeouts(),  # noqa: B008 (frozen value)
    clock: Clock | None = None,
) -> TokenSet:
    """Exchange an authorization code (see ``authorization_url``) for a TokenSet.

    Pass the result to ``OAuth2(client_id, client_secret, token)``. The code is
    single-use, so the request is sent once. Raises AuthenticationError if the
    code, redirect URI or client credentials are refused, TransportError or
    DecodeError as the client does, InvalidArgument for an empty argument.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    for name, value in form.items():
        if type(value) is not str or not value:
            raise InvalidArgument(f"{name} must be a non-empty string")
    transport = AiohttpTransport(session, timeouts=timeouts)
    endpoint = HttpTokenEndpoint(
        transport, RequestFactory(hosts), SystemClock() if clock is None else clock
    )
    try:
        return await endpoint.grant(route_path(token_path, "token_path"), form)
    finally:
        await transport.aclose()
