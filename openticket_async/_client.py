"""OpenTicketClient: the API calls, made of protocol + auth + transport + retries.

Every call runs through :meth:`OpenTicketClient._call`, the one retry loop:

1. Ask the auth for a header (it may refresh a token first), build the request,
   read the clock, send.
2. A 401 gets one refresh-and-replay, which does not count as a retry.
3. Any other failure is tried again only while ``RetryPolicy.attempts`` allows
   and :func:`~openticket_async._answers.should_retry` says the server surely
   did not act on it (or acting twice is harmless). Waits are planned by the
   policy (full jitter, or the server's ``Retry-After``) and slept on the
   client's clock, never on the real one directly, so tests take no time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar

from ._answers import (
    KnownSecrets,
    Replay,
    error_for,
    no_secrets,
    read_json,
    should_retry,
    with_context,
)
from ._auth import Auth, known_secrets, ready_authorization
from ._clock import Clock, SystemClock
from ._config import RetryPolicy, Timeouts, seconds
from ._exceptions import DecodeError, InvalidArgument, OpenTicketError, TransportError, UsageError
from ._log import (
    DEBUG,
    ENABLED,
    debug_enabled,
    log_failure,
    log_request,
    log_response,
    log_retry,
)
from ._models import Hosts, Order, PaymentMethod, Receiver, Reservation, TokenSet, User
from ._observe import OnRequest, OnResponse, RequestObserver, observer_for
from ._protocol import (
    Request,
    RequestFactory,
    Response,
    encode_order,
    guid,
    idempotency_header,
    route_path,
)
from ._reserve_decoder import decode_reservation
from ._telemetry import Telemetry
from ._token_decoder import decode_token_set
from ._transport import AiohttpTransport, Session, Transport
from ._wire import CONVERTER

__all__ = ["OpenTicketClient", "exchange_code"]

_M = TypeVar("_M")


async def _send_logged(
    transport: Transport, clock: Clock, request: Request, attempt: int, known: KnownSecrets
) -> Response:
    secrets = tuple(known())
    log_request(request, attempt, secrets)
    started = clock.now()
    try:
        response = await transport.send(request)
    except TransportError as error:
        log_failure(request, error, clock.now() - started)
        raise
    log_response(request, response, clock.now() - started, secrets)
    return response


class _TokenEndpoint:
    """The token endpoint as an :class:`~openticket_async._auth.TokenEndpoint`.

    ``known`` gives the secrets to mask in its errors and log lines beyond those
    of the grant itself (the client's Auth's).
    """

    __slots__ = ("_clock", "_factory", "_known", "_transport")

    def __init__(
        self,
        transport: Transport,
        factory: RequestFactory,
        clock: Clock,
        known: KnownSecrets = no_secrets,
    ) -> None:
        self._transport = transport
        self._factory = factory
        self._clock = clock
        self._known = known

    @property
    def clock(self) -> Clock:
        return self._clock

    async def grant(self, token_path: str, form: Mapping[str, str]) -> TokenSet:
        # sent once: a grant spends its code or refresh token, so a second try
        # after an unclear failure could only be refused
        request = self._factory.token(token_path, form)
        transport = self._transport
        known = self._known
        if debug_enabled():
            response = await _send_logged(transport, self._clock, request, 1, known)
        else:
            response = await transport.send(request)
        if response.status >= 300:
            raise error_for(request, response, self._clock.wall(), known)
        data = read_json(request, response, known)
        try:
            return decode_token_set(data, now=self._clock.wall())
        except DecodeError as error:
            raise with_context(error, request, response, known) from None


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


class OpenTicketClient:
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
        self._auth = auth
        self._ready = ready_authorization(auth)
        self._hosts = hosts
        self._company = _company_header(company)
        self._ttl = ttl
        self._ttl_delta = timedelta(seconds=ttl)
        self._retry = _policy(retry) or RetryPolicy()
        self._clock: Clock = SystemClock() if clock is None else clock
        self._factory = RequestFactory(
            hosts, company=self._company, user_path=route_path(user_path, "user_path")
        )
        self._owns_transport = transport is None
        self._transport: Transport = (
            AiohttpTransport(session, timeouts=timeouts) if transport is None else transport
        )
        # the auth's secrets, masked in every error and log line (asked for only then)
        self._known: KnownSecrets = partial(known_secrets, auth)
        self._endpoint = _TokenEndpoint(self._transport, self._factory, self._clock, self._known)
        self._closed = False
        # None unless a hook or an OpenTelemetry provider watches: then _call's one check
        self._observer: RequestObserver | None = observer_for(
            self._send_try, self._clock, hosts, telemetry, on_request, on_response
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

    async def _call(
        self, build: Callable[[str], Request], replay: Replay, retry: RetryPolicy | None
    ) -> tuple[Request, Response, float, datetime]:
        if self._closed:
            raise UsageError("the client is closed; create a new one")
        ready = self._ready
        clock = self._clock
        failures = 0
        replayed = False
        while True:
            # the send times are read before the request goes out; a header that
            # needs no refresh comes without awaiting anything
            authorization = None
            if ready is not None:
                sent_wall = clock.wall()
                authorization = ready(sent_wall)
            if authorization is None:
                authorization = await self._auth.authorization(self._endpoint)
                sent_wall = clock.wall()
            sent_at = clock.now()
            request = build(authorization)
            error: OpenTicketError
            try:
                if self._observer is not None:
                    response = await self._observer.send(request, failures + replayed)
                elif ENABLED.get(DEBUG) is not False and debug_enabled():
                    response = await _send_logged(
                        self._transport, clock, request, failures + 1, self._known
                    )
                else:
                    response = await self._transport.send(request)
            except TransportError as failure:
                error = failure
            else:
                if response.status < 300:
                    return request, response, sent_at, sent_wall
                error = error_for(request, response, clock.wall(), self._known)
                if response.status == 401 and not replayed:
                    replayed = True
                    if await self._auth.unauthorized(authorization, self._endpoint) is not None:
                        continue
            failures += 1
            policy = self._retry if retry is None else retry
            if failures >= policy.attempts or not should_retry(replay, error, policy):
                raise error
            wait = policy.backoff(failures, getattr(error, "retry_after", None))
            if debug_enabled():
                log_retry(request, error, wait, failures + 1)
            await clock.sleep_until(clock.now() + wait)

    async def _send_try(self, request: Request, attempt: int) -> Response:
        """Send one try (the observer's way out), logged when DEBUG is on."""
        if debug_enabled():
            return await _send_logged(self._transport, self._clock, request, attempt, self._known)
        return await self._transport.send(request)

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
        # Nothing is kept per ticket: a manager may renew thousands of tickets in
        # rotation, and objects kept per ticket would outlive their call and wake
        # the garbage collector; checked GUIDs are found in one lookup each.
        shop = guid(shop_guid, "shop_guid")
        ticket = guid(ticket_guid, "ticket_guid")
        request, response, sent_at, sent_wall = await self._call(
            partial(self._factory.reserve, shop, ticket),
            Replay.IF_REFUSED,
            retry if retry is None else _policy(retry),
        )
        data = read_json(request, response, self._known)
        try:
            return decode_reservation(
                data,
                shop_guid=shop,
                ticket_guid=ticket,
                sent_at=sent_at,
                sent_wall=sent_wall,
                ttl=self._ttl_delta,
            )
        except DecodeError as error:
            raise with_context(error, request, response, self._known) from None

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
    endpoint = _TokenEndpoint(
        transport, RequestFactory(hosts), SystemClock() if clock is None else clock
    )
    try:
        return await endpoint.grant(route_path(token_path, "token_path"), form)
    finally:
        await transport.aclose()
