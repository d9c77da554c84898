"""The fake OpenTicket API: one aiohttp.web app serving the auth, api and shop roles.

Every request passes one middleware that (1) counts it as in flight until its
answer is fully written, so a :class:`FakeClock` never moves time while the
server is still answering; (2) records it; (3) applies the next scripted fault of
its route. The handlers are in :mod:`._routes`; state lives in
:mod:`._inventory` (shops, stock, reservations, orders) and :mod:`._tokens`
(OAuth2); shapes in :mod:`._shapes`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, cast, overload

from aiohttp import web
from yarl import URL

from .._clock import Clock, SystemClock
from .._config import seconds
from .._exceptions import InvalidArgument, UsageError
from .._models import Hosts, TokenSet
from ._clock import FakeClock
from ._faults import Faults
from ._inventory import Inventory, new_guid
from ._routes import Handler, Routes
from ._shapes import ProductShape, Shapes, Style, json_response
from ._tokens import TokenBook
from ._values import (
    FakePaymentMethod,
    FakeShop,
    FakeTicket,
    OrderRecord,
    RequestRecord,
    ReservationRecord,
    TokenGrant,
)

__all__ = ["FakeOpenTicket"]

C = TypeVar("C", bound=Clock)


class _InFlight:
    """Counts requests being served; the :class:`FakeClock` busy probe."""

    __slots__ = ("count", "waiters")

    def __init__(self) -> None:
        self.count = 0
        self.waiters: list[asyncio.Future[None]] = []

    def begin(self) -> None:
        self.count += 1

    def end(self) -> None:
        self.count -= 1
        if self.count == 0 and self.waiters:
            for waiter in self.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self.waiters.clear()

    def busy(self) -> bool:
        return self.count > 0

    async def wait_idle(self) -> None:
        if self.count > 0:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter


class FakeOpenTicket(Generic[C]):
    """A fake OpenTicket API on one port: ``/auth``, ``/api`` and ``/shop``.

    Seed it (:meth:`add_shop`, :meth:`add_ticket`, :meth:`add_payment_method`,
    :meth:`issue_token`), :meth:`start` it, point a client at :attr:`hosts`, and
    inspect what happened (:attr:`requests`, :meth:`live_reservations`,
    :attr:`orders`, :attr:`token_grants`). Reservations hold a unit for
    ``reservation_ttl`` seconds of ``clock`` time; access tokens live
    ``access_token_ttl`` (both seconds or timedelta;
    :class:`~openticket_async.InvalidArgument` unless positive). Answers use
    ``style`` keys (``"snake"`` or ``"camel"``); ``send_expiry=False`` leaves
    ``reserved_at``/``expires_at`` out. ``product_shape`` (``"lean"``, ``"flat"``
    or ``"nested"``) sets what each product line carries beside its ``guid`` and
    ``name``: nothing, flat price fields, or nested price lines (see
    ``testing._shapes``). ``record_requests=False`` keeps no
    request log (for long benchmarks).

    Without a ``clock`` the fake runs on real time (:class:`SystemClock`), as a
    client and a manager do by default, so code that gives none of them a clock
    sees reservations that last ``reservation_ttl`` real seconds. For virtual
    time give it a :class:`FakeClock`, and the same clock to the client (the
    manager takes the client's).
    """

    @overload
    def __init__(
        self: FakeOpenTicket[SystemClock],
        clock: None = None,
        *,
        reservation_ttl: float | timedelta = 480.0,
        style: Style = "snake",
        send_expiry: bool = True,
        product_shape: ProductShape = "lean",
        access_token_ttl: float | timedelta = 259200.0,
        client_id: str = "test-client",
        client_secret: str = "test-secret",  # noqa: S107 (a fixed test credential)
        record_requests: bool = True,
    ) -> None: ...

    @overload
    def __init__(
        self: FakeOpenTicket[C],
        clock: C,
        *,
        reservation_ttl: float | timedelta = 480.0,
        style: Style = "snake",
        send_expiry: bool = True,
        product_shape: ProductShape = "lean",
        access_token_ttl: float | timedelta = 259200.0,
        client_id: str = "test-client",
        client_secret: str = "test-secret",  # noqa: S107 (a fixed test credential)
        record_requests: bool = True,
    ) -> None: ...

    def __init__(
        self,
        clock: C | None = None,
        *,
        reservation_ttl: float | timedelta = 480.0,
        style: Style = "snake",
        send_expiry: bool = True,
        product_shape: ProductShape = "lean",
        access_token_ttl: float | timedelta = 259200.0,
        client_id: str = "test-client",
        client_secret: str = "test-secret",  # noqa: S107 (a fixed test credential)
        record_requests: bool = True,
    ) -> None:
        # Real time by default: a FakeClock nobody else shares would put the fake
        # in 2026-01-01 while the client's SystemClock is in the present, and the
        # manager would see every reservation long expired.
        self._clock: C = clock if clock is not None else cast(C, SystemClock())
        self._reservation_ttl = _positive(reservation_ttl, "reservation_ttl")
        self._user_guid = new_guid()
        self._company_guid = new_guid()
        self._inventory = Inventory(self._clock, self._reservation_ttl)
        self._tokens = TokenBook(
            self._clock,
            access_token_ttl=_positive(access_token_ttl, "access_token_ttl"),
            client_id=client_id,
            client_secret=client_secret,
            default_companies=(self._company_guid,),
        )
        self._routes = Routes(
            self._inventory,
            self._tokens,
            Shapes(self._clock, style, send_expiry, product_shape),
            user_guid=self._user_guid,
            company_guid=self._company_guid,
        )
        self._faults = Faults()
        self._record = record_requests
        self._requests: list[RequestRecord] = []
        self._in_flight = _InFlight()
        self._parked: set[asyncio.Task[Any]] = set()
        self._request_ids = itertools.count(1)
        self._route_names: dict[object, str] = {}
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- seeding ---------------------------------------------------------------

    def add_shop(self, name: str = "Test shop") -> FakeShop:
        """Create an empty shop."""
        return self._inventory.add_shop(name)

    def add_ticket(
        self, shop: FakeShop | str, stock: int = 3, name: str = "Regular", products: int = 1
    ) -> FakeTicket:
        """Create a ticket with ``stock`` units and ``products`` products.

        Raises :class:`~openticket_async.InvalidArgument` for an unknown shop or a
        negative count.
        """
        return self._inventory.add_ticket(_guid(shop), stock, name, products)

    def add_payment_method(self, shop: FakeShop | str, name: str = "iDEAL") -> FakePaymentMethod:
        """Add a payment method to a shop.

        Raises :class:`~openticket_async.InvalidArgument` for an unknown shop.
        """
        return self._inventory.add_payment_method(_guid(shop), name)

    def issue_token(self, companies: Iterable[str] = ()) -> TokenSet:
        """Mint tokens valid from now, as if the user had just logged in."""
        return self._tokens.issue(tuple(companies))

    def revoke(self, token: TokenSet | str) -> None:
        """Revoke an access token (a ``TokenSet`` also loses its refresh token)."""
        self._tokens.revoke(token)

    def expire_access_tokens(self) -> None:
        """Expire every access token issued so far; refresh tokens keep working."""
        self._tokens.expire_access_tokens()

    # -- inspection ------------------------------------------------------------

    @property
    def clock(self) -> C:
        """The clock reservations and tokens expire on."""
        return self._clock

    @property
    def faults(self) -> Faults:
        """Where faults are scripted."""
        return self._faults

    @property
    def reservation_ttl(self) -> float:
        """Seconds (clock time) a reservation holds its unit."""
        return self._reservation_ttl

    @property
    def user_guid(self) -> str:
        """The GUID ``users/me`` answers with."""
        return self._user_guid

    @property
    def company_guid(self) -> str:
        """The user's default company (and the company of code-grant tokens)."""
        return self._company_guid

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far, oldest first (a copy)."""
        return list(self._requests)

    @property
    def orders(self) -> list[OrderRecord]:
        """Every order created, oldest first."""
        return self._inventory.orders

    @property
    def token_grants(self) -> list[TokenGrant]:
        """Every token-endpoint request, accepted or refused, oldest first."""
        return list(self._tokens.grants)

    @property
    def refresh_count(self) -> int:
        """How many refresh-token grants were asked for (accepted or not)."""
        return sum(1 for grant in self._tokens.grants if grant.grant_type == "refresh_token")

    def live_reservations(
        self, ticket_guid: FakeTicket | str | None = None
    ) -> list[ReservationRecord]:
        """Reservations still holding a unit now, oldest first (of one ticket or all).

        Raises :class:`~openticket_async.InvalidArgument` for an unknown ticket.
        """
        return self._inventory.live_reservations(
            None if ticket_guid is None else _guid(ticket_guid)
        )

    def stock_left(self, ticket_guid: FakeTicket | str) -> int:
        """Units neither sold nor held now.

        Raises :class:`~openticket_async.InvalidArgument` for an unknown ticket.
        """
        return self._inventory.stock_left(_guid(ticket_guid))

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``; :class:`UsageError` before start."""
        if self._url is None:
            raise UsageError("FakeOpenTicket is not started")
        return self._url

    @property
    def hosts(self) -> Hosts:
        """The three roles' base URLs on this server; :class:`UsageError` before start."""
        base = self.url
        return Hosts(auth=base + "/auth", api=base + "/api", shop=base + "/shop")

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0: any free port). :class:`UsageError` if running."""
        if self._runner is not None:
            raise UsageError("FakeOpenTicket is already started")
        runner = web.AppRunner(
            self._build_app(),
            access_log=None,
            handle_signals=False,
            # A client that gives up cancels its handler: real delays and stalls end.
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._url = str(URL.build(scheme="http", host=host, port=runner.addresses[0][1]))
        if isinstance(self._clock, FakeClock):
            self._clock.add_busy_probe(self._in_flight)

    async def close(self) -> None:
        """Stop serving; waiting requests are cancelled. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if isinstance(self._clock, FakeClock):
            self._clock.remove_busy_probe(self._in_flight)
        for task in list(self._parked):
            task.cancel()
        await runner.cleanup()
        self._url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"FakeOpenTicket(url={self._url!r}, clock={self._clock!r})"

    # -- the app ---------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._serve])
        app.on_response_prepare.append(self._stamp)
        self._route_names = self._routes.mount(app.router)
        return app

    @web.middleware
    async def _serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._in_flight.begin()
        try:
            route = self._route_names.get(request.match_info.route)
            if self._record:
                self._requests.append(_record(request, route, self._clock.now()))
            fault = self._faults.take(route) if route is not None else None
            try:
                if fault is None:
                    response = await handler(request)
                else:
                    response = await fault.run(self, request, handler)
            except web.HTTPException as exc:  # the router's 404 and 405
                word = "not_found" if exc.status == 404 else "invalid"
                response = json_response(exc.status, {"error": word, "message": exc.reason})
            if not response.prepared:
                # Written here, not after returning, so "in flight" lasts until the
                # answer has left; aiohttp sees a finished response and adds nothing.
                try:
                    await response.prepare(request)
                    await response.write_eof()
                except ConnectionError:
                    pass
            return response
        finally:
            self._in_flight.end()

    async def _stamp(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Request-Id"] = f"req-{next(self._request_ids):08d}"

    async def wait(self, seconds: float, *, on_clock: bool, busy: bool) -> None:
        """Wait for a fault (see :class:`~._faults.FaultHost`); cancelled by :meth:`close`."""
        task = asyncio.current_task()
        assert task is not None  # always inside a request handler
        self._parked.add(task)
        if not busy:
            self._in_flight.end()
        try:
            if on_clock:
                await self._clock.sleep_until(self._clock.now() + seconds)
            else:
                await asyncio.sleep(seconds)
        finally:
            if not busy:
                self._in_flight.begin()
            self._parked.discard(task)


def _record(request: web.Request, route: str | None, now: float) -> RequestRecord:
    headers = request.headers
    companies = headers.getall("Company", [])
    return RequestRecord(
        method=request.method,
        path=request.path,
        route=route,
        had_auth=headers.get("Authorization", "").startswith("Bearer "),
        company=",".join(companies) if companies else None,
        idempotency_key=headers.get("Idempotency-Key"),
        time=now,
    )


def _positive(value: float | timedelta, name: str) -> float:
    duration = seconds(value)
    if not duration > 0:
        raise InvalidArgument(f"{name} must be > 0, got {value!r}")
    return duration


def _guid(value: FakeShop | FakeTicket | str) -> str:
    return value if isinstance(value, str) else value.guid
