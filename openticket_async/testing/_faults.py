"""Scripted faults: what can go wrong between a client and OpenTicket, on demand.

Faults are queued per route and applied in the order they were scripted: each
matching request takes the head of its route's queue, which counts down its
``times`` (``None``: forever) and leaves the queue when spent. A request takes at
most one fault.

Some faults act for the server and only spoil the answer (``reset``,
``malformed_json``, ``act_then_garbage``, ``drip``, ``act_then_fail``,
``expiry_offset``): the reservation or order really exists afterwards, which is
exactly the case a client must not retry blindly. The others (``status``,
``html``, ``hang``) stand in front of the server, which never sees the request;
``delay`` waits and then serves normally.
"""

from __future__ import annotations

import email.utils
import http
import json
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import attrs
from aiohttp import web

from .._exceptions import InvalidArgument
from ._routes import ROUTES, Handler

__all__ = ["Fault", "FaultHost", "Faults"]

#: Real seconds a stalled request waits for the server to close before giving up.
STALL_CAP = 30.0

# The `error` word of a default fault body, per docs/wire.md.
_ERROR_WORDS = {
    401: "unauthenticated",
    404: "not_found",
    409: "sold_out",
    410: "reservation_expired",
    422: "invalid",
    429: "rate_limited",
}


class FaultHost(Protocol):
    """What faults need from the server: waiting, in the right bookkeeping."""

    async def wait(self, seconds: float, *, on_clock: bool, busy: bool) -> None:
        """Wait ``seconds`` on the fake's clock (``on_clock``) or in real time.

        ``busy`` says whether the request counts as in flight meanwhile. Every
        wait ends early (cancelled) when the server closes.
        """
        ...


class Fault(Protocol):
    """One kind of fault: serves a request its own way."""

    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """Answer ``request``, calling ``handler`` if the server is to act."""
        ...


def _body_of(response: web.StreamResponse) -> bytes:
    body = response.body if isinstance(response, web.Response) else None
    return body if isinstance(body, bytes) else b""


def _copy_head(response: web.StreamResponse, length: int) -> web.StreamResponse:
    stream = web.StreamResponse(status=response.status, reason=response.reason)
    stream.headers.update(response.headers)
    stream.content_length = length
    return stream


@attrs.frozen
class _Status:
    status: int
    retry_after: str | None
    body: bytes
    content_type: str

    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
        return web.Response(
            status=self.status, body=self.body, content_type=self.content_type, headers=headers
        )


@attrs.frozen
class _Delay:
    seconds: float
    real: bool

    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        # A virtual delay waits on the clock, so it must not count as in flight:
        # the clock could never be advanced past it otherwise.
        await host.wait(self.seconds, on_clock=not self.real, busy=self.real)
        return await handler(request)


@attrs.frozen
class _Reset:
    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        response = await handler(request)
        body = _body_of(response)
        stream = _copy_head(response, len(body))
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.abort()
        return stream


@attrs.frozen
class _MalformedJson:
    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        response = await handler(request)
        body = _body_of(response)
        return web.Response(
            status=response.status,
            body=body[: len(body) // 2] or b"{",
            content_type="application/json",
        )


@attrs.frozen
class _Garbage:
    body: bytes
    content_type: str

    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        response = await handler(request)
        return web.Response(status=response.status, body=self.body, content_type=self.content_type)


@attrs.frozen
class _Hang:
    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        # Not busy, like a stall: the clock must move on while the client waits.
        await host.wait(STALL_CAP, on_clock=False, busy=False)
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=504, content_type="application/json")


@attrs.frozen
class _Html:
    status: int

    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        try:
            title = f"{self.status} {http.HTTPStatus(self.status).phrase}"
        except ValueError:
            title = f"{self.status} Error"
        page = (
            f"<html><head><title>{title}</title></head><body>"
            f"<center><h1>{title}</h1></center><hr><center>nginx</center></body></html>"
        )
        return web.Response(status=self.status, text=page, content_type="text/html")


@attrs.frozen
class _Drip:
    interval: float
    chunk_size: int

    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        response = await handler(request)
        body = _body_of(response)
        stream = _copy_head(response, len(body))
        await stream.prepare(request)
        for start in range(0, len(body), self.chunk_size):
            if start:
                await host.wait(self.interval, on_clock=False, busy=True)
            await stream.write(body[start : start + self.chunk_size])
        await stream.write_eof()
        return stream


@attrs.frozen
class _ExpiryOffset:
    seconds: float

    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        response = await handler(request)
        body = _body_of(response)
        try:
            answer = json.loads(body)
        except ValueError:
            return response
        for key in ("expires_at", "expiresAt"):
            if isinstance(answer, dict) and isinstance(answer.get(key), str):
                moment = datetime.fromisoformat(answer[key].replace("Z", "+00:00"))
                answer[key] = (moment + timedelta(seconds=self.seconds)).isoformat()
        body = json.dumps(answer).encode()
        return web.Response(status=response.status, body=body, content_type="application/json")


@attrs.frozen
class _ActThenFail:
    status: int
    stall: bool

    async def run(
        self, host: FaultHost, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        await handler(request)
        if self.stall:
            # Not busy: a stalled request must not hold the clock up; the client's
            # own (real) timeout is what the test is about.
            await host.wait(STALL_CAP, on_clock=False, busy=False)
            if request.transport is not None:
                request.transport.abort()
        return web.Response(
            status=self.status,
            body=_default_body(self.status, "injected fault after the server acted"),
            content_type="application/json",
        )


class _Rule:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault, remaining: int | None) -> None:
        self.fault = fault
        self.remaining = remaining


class Faults:
    """Scripts faults per route. Reach it as ``FakeOpenTicket.faults``.

    Routes: ``"token"``, ``"authorize"``, ``"me"``, ``"reserve"``, ``"order"``,
    ``"payment_methods"``, ``"get_order"``. ``times`` is how many requests the
    fault applies to (``None``: every one, for good). Faults on one route apply
    in the order scripted. Every method raises
    :class:`~openticket_async.InvalidArgument` for an unknown route or a bad count.
    """

    def __init__(self) -> None:
        self._rules: dict[str, deque[_Rule]] = {}

    def status(
        self,
        route: str,
        status: int,
        *,
        retry_after: float | datetime | str | None = None,
        body: Any = None,
        content_type: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer ``status`` without acting; optional ``Retry-After`` and body.

        ``retry_after``: seconds (``86400``: a day), an aware ``datetime`` sent as
        an HTTP date (a past one included), or a ``str`` sent as is (``"soon"``:
        a value a client cannot read).
        ``body``: ``None`` for the error body docs/wire.md gives that status;
        ``str`` or ``bytes`` sent as is (``text/plain`` unless ``content_type``);
        anything else is sent as JSON.
        """
        _check_status(status)
        if body is None:
            raw, kind = _default_body(status, "injected fault"), "application/json"
        elif isinstance(body, str | bytes):
            raw = body.encode() if isinstance(body, str) else body
            kind = "text/plain"
        else:
            raw, kind = json.dumps(body).encode(), "application/json"
        header = None if retry_after is None else _retry_after(retry_after)
        self._add(route, _Status(status, header, raw, content_type or kind), times)

    def delay(
        self, route: str, seconds: float, *, real: bool = False, times: int | None = 1
    ) -> None:
        """Wait ``seconds`` before serving: on the fake's clock, or real seconds if ``real``."""
        if not seconds >= 0:
            raise InvalidArgument(f"seconds must be >= 0, got {seconds!r}")
        self._add(route, _Delay(float(seconds), real), times)

    def reset(self, route: str, times: int | None = 1) -> None:
        """Serve, send the headers and half the body, then cut the connection."""
        self._add(route, _Reset(), times)

    def malformed_json(self, route: str, times: int | None = 1) -> None:
        """Serve, but answer with the body cut in half (not valid JSON)."""
        self._add(route, _MalformedJson(), times)

    def hang(self, route: str, times: int | None = 1) -> None:
        """Never answer and never act: the server does not see the request, the
        connection stays silent until the client gives up, the server closes, or
        30 real seconds pass. The clock moves on meanwhile."""
        self._add(route, _Hang(), times)

    def act_then_garbage(
        self,
        route: str,
        body: bytes = b"\x00\xff<garbage>",
        *,
        content_type: str = "application/json",
        times: int | None = 1,
    ) -> None:
        """Serve (the reservation or order really happens), then answer the server's
        status with ``body`` instead of its JSON: garbage after the server acted."""
        if not isinstance(body, bytes):
            raise InvalidArgument("body must be bytes")
        self._add(route, _Garbage(body, content_type), times)

    def html(self, route: str, times: int | None = 1, *, status: int = 502) -> None:
        """Answer a proxy's text/html page (``status`` 502, or 200) without acting."""
        _check_status(status)
        self._add(route, _Html(status), times)

    def drip(
        self, route: str, interval: float, times: int | None = 1, *, chunk_size: int = 8
    ) -> None:
        """Serve, writing the body ``chunk_size`` bytes at a time, ``interval`` real s apart."""
        if not interval >= 0 or chunk_size < 1:
            raise InvalidArgument("interval must be >= 0 and chunk_size >= 1")
        self._add(route, _Drip(float(interval), chunk_size), times)

    def act_then_fail(
        self, route: str, *, status: int = 503, stall: bool = False, times: int | None = 1
    ) -> None:
        """Serve (the reservation or order really happens), then answer ``status``.

        With ``stall`` the answer never comes: the connection stays silent until
        the client gives up, the server closes, or 30 real seconds pass.
        """
        _check_status(status)
        self._add(route, _ActThenFail(status, stall), times)

    def expiry_offset(self, seconds: float, *, times: int | None = 1) -> None:
        """Serve reserves, but state an expiry ``seconds`` off the true one.

        A negative offset past the TTL (``-600``) states an expiry in the past, as
        a server whose clock runs minutes behind would. The reservation itself
        still drops after the true TTL. Needs the default ``send_expiry=True``.
        """
        if seconds != seconds:
            raise InvalidArgument("seconds must be a number")
        self._add("reserve", _ExpiryOffset(float(seconds)), times)

    def clear(self, route: str | None = None) -> None:
        """Drop the scripted faults of one route, or of all routes."""
        if route is None:
            self._rules.clear()
        else:
            self._rules.pop(_known(route), None)

    def take(self, route: str) -> Fault | None:
        """The fault the next request on ``route`` gets (counting it), or None."""
        rules = self._rules.get(route)
        if not rules:
            return None
        rule = rules[0]
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining == 0:
                rules.popleft()
        return rule.fault

    def _add(self, route: str, fault: Fault, times: int | None) -> None:
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise InvalidArgument(f"times must be an int >= 1 or None, got {times!r}")
        self._rules.setdefault(_known(route), deque()).append(_Rule(fault, times))

    def __repr__(self) -> str:
        scripted = {route: len(rules) for route, rules in self._rules.items() if rules}
        return f"Faults({scripted})"


def _known(route: str) -> str:
    if route not in ROUTES:
        raise InvalidArgument(f"unknown route {route!r}; routes are {sorted(ROUTES)}")
    return route


def _check_status(status: int) -> None:
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidArgument(f"status must be an HTTP status code, got {status!r}")


def _default_body(status: int, message: str) -> bytes:
    error = _ERROR_WORDS.get(status, "server_error" if status >= 500 else "error")
    return json.dumps({"error": error, "message": f"{message} (HTTP {status})"}).encode()


def _retry_after(value: float | datetime | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidArgument("retry_after must be an aware datetime")
        return email.utils.format_datetime(value.astimezone(UTC), usegmt=True)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidArgument(f"retry_after must be seconds >= 0, got {value!r}")
    return str(int(value)) if value == int(value) else str(value)
