"""The fake API's HTTP face: the route table and one handler per route.

:data:`ROUTE_TABLE` is the one list of what the fake serves: each row's name is
how faults (:mod:`._faults`), request records and docs/testing.md call the
route. Handlers are thin: read the request, ask the state (:mod:`._inventory`,
:mod:`._tokens`), render with :mod:`._shapes`. A :class:`Refusal` raised anywhere
below becomes the JSON error answer of docs/wire.md.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from aiohttp import web
from yarl import URL

from ._inventory import Inventory
from ._shapes import Shapes, json_response
from ._tokens import TokenBook
from ._values import Refusal

__all__ = ["ROUTES", "ROUTE_TABLE", "Handler", "Route", "Routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Endpoint = Callable[[web.Request], Awaitable[web.Response]]

#: The email ``users/me`` answers with.
USER_EMAIL = "user@example.com"


class Routes:
    """Serves the auth, api and shop roles over the fake's state."""

    def __init__(
        self,
        inventory: Inventory,
        tokens: TokenBook,
        shapes: Shapes,
        *,
        user_guid: str,
        company_guid: str,
    ) -> None:
        self._inventory = inventory
        self._tokens = tokens
        self._shapes = shapes
        self._user_guid = user_guid
        self._company_guid = company_guid

    def mount(self, router: web.UrlDispatcher) -> dict[object, str]:
        """Add every route of :data:`ROUTE_TABLE` to ``router``.

        Returns each aiohttp route's name, which the server's middleware looks up
        to record a request and to find its faults.
        """
        return {
            router.add_route(
                route.method, route.path, _answer_refusals(functools.partial(route.serve, self))
            ): route.name
            for route in ROUTE_TABLE
        }

    def _check_bearer(self, request: web.Request) -> tuple[str, ...]:
        return self._tokens.check_bearer(request.headers.get("Authorization"))

    async def _token(self, request: web.Request) -> web.Response:
        form: Any
        if request.content_type == "application/json":
            try:
                form = await request.json()
            except ValueError:
                raise Refusal(
                    400, "invalid_request", "the body is not valid JSON", oauth=True
                ) from None
        else:
            form = dict(await request.post())
        if not isinstance(form, dict):
            raise Refusal(400, "invalid_request", "the body must be an object", oauth=True)
        return json_response(200, self._tokens.grant(form))

    async def _authorize(self, request: web.Request) -> web.Response:
        code = self._tokens.authorize(request.query)
        answer = {"code": code}
        if "state" in request.query:
            answer["state"] = request.query["state"]
        location = URL(request.query["redirect_uri"]).update_query(answer)
        return web.Response(status=302, headers={"Location": str(location)})

    async def _me(self, request: web.Request) -> web.Response:
        companies = self._check_bearer(request)
        default = companies[0] if companies else self._company_guid
        return json_response(200, self._shapes.user(self._user_guid, USER_EMAIL, default))

    async def _reserve(self, request: web.Request) -> web.Response:
        self._check_bearer(request)
        info = request.match_info
        reservation, product_names = self._inventory.reserve(info["shop"], info["ticket"])
        return json_response(200, self._shapes.reservation(reservation, product_names))

    async def _order(self, request: web.Request) -> web.Response:
        self._check_bearer(request)
        try:
            body = await request.json()
        except ValueError:
            raise Refusal(422, "invalid", "the order body is not valid JSON") from None
        order = self._inventory.create_order(
            request.match_info["shop"], body, request.headers.get("Idempotency-Key")
        )
        return json_response(201, self._shapes.order(order))

    async def _payment_methods(self, request: web.Request) -> web.Response:
        self._check_bearer(request)
        methods = self._inventory.payment_methods(request.match_info["shop"])
        return json_response(200, self._shapes.payment_methods(methods))

    async def _get_order(self, request: web.Request) -> web.Response:
        self._check_bearer(request)
        order = self._inventory.order(request.match_info["order"])
        return json_response(200, self._shapes.order(order))


class Route(NamedTuple):
    """One route: ``method`` and ``path``, the ``name`` it goes by, the handler that serves it."""

    method: str
    path: str
    name: str
    serve: Callable[[Routes, web.Request], Awaitable[web.Response]]


#: Every route of the fake API. OpenTicket spells some paths two ways; both serve.
ROUTE_TABLE: tuple[Route, ...] = (
    Route("POST", "/auth/tokens", "token", Routes._token),
    Route("POST", "/auth/token", "token", Routes._token),
    Route("GET", "/auth/tokens/authorize", "authorize", Routes._authorize),
    Route("GET", "/auth/token/authorize", "authorize", Routes._authorize),
    Route("GET", "/auth/users/me", "me", Routes._me),
    Route("GET", "/auth/user/me", "me", Routes._me),
    Route("GET", "/shop/{shop}/reserve/ticket/{ticket}", "reserve", Routes._reserve),
    Route("POST", "/shop/{shop}/order", "order", Routes._order),
    Route("GET", "/api/shop/{shop}/payment_methods", "payment_methods", Routes._payment_methods),
    Route("GET", "/api/order/{order}", "get_order", Routes._get_order),
)

#: The route names faults (and request records) use.
ROUTES = frozenset(route.name for route in ROUTE_TABLE)


def _answer_refusals(endpoint: _Endpoint) -> Handler:
    """Wrap an endpoint so a :class:`Refusal` becomes its JSON error answer."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await endpoint(request)
        except Refusal as refusal:
            headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
            return json_response(refusal.status, refusal.body(), headers)

    return answer
