"""Watching the client's requests: the request hooks and the HTTP client spans and metric.

The client builds a :class:`RequestObserver` only when something watches (a hook
was given, or :func:`~openticket_async._telemetry.resolve` found a provider);
otherwise it keeps None and sends as before, so watching costs nothing when off.

Each HTTP request (each try: a retry is a resend) gets

- ``on_request(method, url_template, attempt)`` before it is sent and
  ``on_response(method, url_template, attempt, status, elapsed)`` after (status
  None when no answer came), in the manner of httpx's event hooks: plain or async
  functions, awaited in turn, and a hook that raises is logged and ignored.
  Hooks see the route's template, never the URL, a header or a token;
- one CLIENT span ``{method} {url.template}`` and one ``http.client.request.duration``
  measurement, with OpenTelemetry's HTTP client semantic-convention attributes.

``url.full`` is left out on purpose: OpenTicket's paths carry the shop and
ticket GUIDs, given as their own ``openticket.*`` attributes, and the host and
port are ``server.address`` and ``server.port``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import attrs

from ._clock import Clock
from ._exceptions import InvalidArgument, TransportError
from ._models import Hosts
from ._protocol import Request, Response
from ._telemetry import DURATION_BUCKETS, Providers, Telemetry, resolve

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["OnRequest", "OnResponse", "RequestObserver", "observer_for", "url_template"]

logger = logging.getLogger("openticket_async")

#: ``on_request(method, url_template, attempt)``: sync or async; ``attempt`` counts from 1.
OnRequest: TypeAlias = Callable[[str, str, int], Awaitable[None] | None]
#: ``on_response(method, url_template, attempt, status, elapsed)``: status None when
#: no answer came back; ``elapsed`` in seconds on the client's clock.
OnResponse: TypeAlias = Callable[[str, str, int, int | None, float], Awaitable[None] | None]

#: How each route's path looks with its GUIDs as parameters (after the host's base path).
_TEMPLATES = {
    "reserve": "/{shop}/reserve/ticket/{ticket}",
    "order": "/{shop}/order",
    "payment_methods": "/shop/{shop}/payment_methods",
    "get_order": "/order/{order}",
}
_ATTRIBUTES_LIMIT = 1024
_ERROR_TYPE = f"{TransportError.__module__.split('.')[0]}.{TransportError.__name__}"


def url_template(request: Request, auth_base: str = "") -> str:
    """The low-cardinality template of ``request``'s path (``/{shop}/reserve/ticket/{ticket}``).

    Routes without parameters (the user and token paths, on the auth host whose
    base path is ``auth_base``) are their own template.
    """
    template = _TEMPLATES.get(request.route)
    if template is not None:
        return template
    path = request.path
    return path[len(auth_base) :] if auth_base and path.startswith(auth_base) else path


def _guids(request: Request) -> dict[str, str]:
    parts = request.path.split("/")
    if request.route == "reserve":
        return {"openticket.shop_guid": parts[-4], "openticket.ticket_guid": parts[-1]}
    if request.route == "order":
        return {"openticket.shop_guid": parts[-2]}
    if request.route == "payment_methods":
        return {"openticket.shop_guid": parts[-2]}
    return {}


@attrs.frozen
class _Shape:
    """What every try of one request URL shares: its template and its attributes."""

    template: str
    name: str
    span: Mapping[str, Any]
    metric: Mapping[str, Any]


def _shape(request: Request, auth_base: str) -> _Shape:
    template = url_template(request, auth_base)
    url = urlsplit(request.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    common = {
        "http.request.method": request.method,
        "url.template": template,
        "server.address": url.hostname or "",
        "server.port": port,
    }
    return _Shape(
        template, f"{request.method} {template}", {**common, **_guids(request)}, common
    )


async def _run_hook(hook: Callable[..., Any], *args: object) -> None:
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("request hook %r failed; ignored", hook)


class RequestObserver:
    """Sends through ``send`` with the hooks called and the span and metric recorded."""

    __slots__ = (
        "_auth_base",
        "_duration",
        "_now",
        "_on_request",
        "_on_response",
        "_propagate",
        "_send",
        "_shapes",
        "_tracer",
    )

    def __init__(
        self,
        send: Callable[[Request, int], Awaitable[Response]],
        now: Callable[[], float],
        providers: Providers | None,
        on_request: OnRequest | None,
        on_response: OnResponse | None,
        auth_base: str = "",
    ) -> None:
        """``send(request, attempt)`` sends one try; ``now`` reads the client's clock;
        ``auth_base`` is the auth host's base path (see :func:`url_template`)."""
        self._send = send
        self._auth_base = auth_base.rstrip("/")
        self._now = now
        self._on_request = on_request
        self._on_response = on_response
        self._tracer = None if providers is None else providers.tracer
        self._propagate = providers is not None and providers.propagate
        meter = None if providers is None else providers.meter
        self._duration = None if meter is None else meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._shapes: dict[str, _Shape] = {}

    async def send(self, request: Request, resends: int = 0) -> Response:
        """Send one try of ``request`` (``resends`` tries of it went before).

        Raises what the transport raises.
        """
        shape = self._shapes.get(request.url)
        if shape is None:
            if len(self._shapes) >= _ATTRIBUTES_LIMIT:
                self._shapes.clear()
            shape = self._shapes[request.url] = _shape(request, self._auth_base)
        attempt = resends + 1
        if self._on_request is not None:
            await _run_hook(self._on_request, request.method, shape.template, attempt)
        span = None if self._tracer is None else self._start_span(shape, resends)
        if span is not None and self._propagate:
            request = self._with_context(request, span)
        status: int | None = None
        error_type: str | None = None
        started = self._now()
        try:
            response = await self._send(request, attempt)
        except TransportError:
            error_type = _ERROR_TYPE
            raise
        else:
            status = response.status
            if status >= 400:
                error_type = str(status)
            return response
        finally:
            elapsed = self._now() - started
            self._record(shape, span, status, error_type, elapsed)
            if self._on_response is not None:
                await _run_hook(
                    self._on_response, request.method, shape.template, attempt, status, elapsed
                )

    def _start_span(self, shape: _Shape, resends: int) -> Span:
        from opentelemetry.trace import SpanKind

        assert self._tracer is not None
        attributes = dict(shape.span)
        if resends:
            attributes["http.request.resend_count"] = resends
        return self._tracer.start_span(shape.name, kind=SpanKind.CLIENT, attributes=attributes)

    def _with_context(self, request: Request, span: Span) -> Request:
        from opentelemetry import propagate
        from opentelemetry.trace import set_span_in_context

        headers = dict(request.headers)  # the factory's header maps are shared: copy
        propagate.inject(headers, context=set_span_in_context(span))
        return attrs.evolve(request, headers=headers)

    def _record(
        self,
        shape: _Shape,
        span: Span | None,
        status: int | None,
        error_type: str | None,
        elapsed: float,
    ) -> None:
        if span is not None:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if error_type is not None:
                from opentelemetry.trace import Status, StatusCode

                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        if self._duration is not None:
            attributes = dict(shape.metric)
            if status is not None:
                attributes["http.response.status_code"] = status
            if error_type is not None:
                attributes["error.type"] = error_type
            self._duration.record(elapsed, attributes)


def observer_for(
    send: Callable[[Request, int], Awaitable[Response]],
    clock: Clock,
    hosts: Hosts,
    telemetry: Telemetry | None,
    on_request: OnRequest | None,
    on_response: OnResponse | None,
) -> RequestObserver | None:
    """The client's observer, or None when no hook and no provider watches.

    Raises InvalidArgument for a hook that is not callable or a ``telemetry``
    that is not a Telemetry.
    """
    for name, hook in (("on_request", on_request), ("on_response", on_response)):
        if hook is not None and not callable(hook):
            raise InvalidArgument(f"{name} must be callable, got {type(hook).__name__}")
    if telemetry is not None and not isinstance(telemetry, Telemetry):
        raise InvalidArgument(f"telemetry must be a Telemetry, got {type(telemetry).__name__}")
    providers = resolve(telemetry)
    if providers is None and on_request is None and on_response is None:
        return None
    auth_base = urlsplit(hosts.auth).path
    return RequestObserver(send, clock.now, providers, on_request, on_response, auth_base)
