"""Sending one request: the Transport protocol and its aiohttp implementation.

This is the only module that imports aiohttp. Everything above it speaks in
:class:`~openticket_async._protocol.Request` and
:class:`~openticket_async._protocol.Response` values, so a test (or another
HTTP library) can stand in with any object that has an async ``send``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, TypedDict

import aiohttp
from yarl import URL

from ._config import Timeouts
from ._exceptions import InvalidArgument, TransportError, UsageError, redact
from ._protocol import TICKETS_IN_ROTATION, Request, Response, request_secrets

__all__ = [
    "DEFAULT_CONNECTIONS_PER_HOST",
    "URL_CACHE_LIMIT",
    "AiohttpTransport",
    "Session",
    "Transport",
    "transport_error",
]

#: The session type a caller may lend the client (named here: no other module
#: imports aiohttp).
Session = aiohttp.ClientSession

#: How many connections the client opens to one host at most (the rest queue).
DEFAULT_CONNECTIONS_PER_HOST = 100
#: Parsed URLs the transport keeps for reuse, one per reserve URL (that is, per
#: ticket) in use. A manager renews each of its tickets every few minutes, round
#: and round: a table smaller than the tickets in rotation, emptied when full,
#: would never hit, and each request would then pay for a new URL and for
#: aiohttp's first look at it (host, port, path and host header, computed and
#: cached on the URL), about 5 % of the request, and leave both behind as young
#: objects for the garbage collector. About 0.6 kB per URL once aiohttp has used
#: it, 10 MB when full.
URL_CACHE_LIMIT = TICKETS_IN_ROTATION


class Transport(Protocol):
    """Sends one request and returns its whole answer."""

    async def send(self, request: Request) -> Response:
        """Send ``request``; raise TransportError if no HTTP answer came back."""
        ...


class _SentAndLost(Exception):
    """The connection broke after a non-replayable request went out."""


async def _no_silent_replay(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    # aiohttp resends an "idempotent" method once when a kept-alive connection
    # drops before the answer. Reserve is a GET that is not idempotent: the server
    # may have made a hold already, so that resend could make a second one. The
    # wrapped error is not one aiohttp retries. Connect failures pass through as
    # they are: the request never left, and they must stay recognisable as such.
    # Used on sessions the caller passed in; our own session has the resend off.
    try:
        return await handler(request)
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
        raise
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
        raise _SentAndLost(type(error).__name__) from error


_NO_SILENT_REPLAY = (_no_silent_replay,)


class _Options(TypedDict, total=False):
    timeout: aiohttp.ClientTimeout
    middlewares: tuple[aiohttp.ClientMiddlewareType, ...]


def transport_error(error: BaseException, request: Request) -> TransportError:
    """Map an exception from aiohttp (or the OS) to a TransportError.

    ``may_have_reached_server`` is False only when the request surely never left:
    the connection could not be opened (refused, DNS, TLS, connect timeout).
    """
    reached = True
    timed_out = False
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        reached, timed_out, what = False, True, "connecting timed out"
    elif isinstance(error, aiohttp.ClientConnectorError | aiohttp.InvalidURL):
        reached, what = False, "cannot connect"
    elif isinstance(error, aiohttp.ServerTimeoutError):
        timed_out, what = True, "the server stopped sending (read timeout)"
    elif isinstance(error, TimeoutError):
        timed_out, what = True, "the request timed out"
    elif isinstance(error, _SentAndLost | aiohttp.ServerDisconnectedError):
        what = "the connection closed before the answer"
    elif isinstance(error, aiohttp.ClientPayloadError):
        what = "the answer was cut off"
    else:
        what = "the request failed"
    # an error's text may quote what the server sent back: mask what the request carried
    detail = redact(str(error), 200, request_secrets(request))
    message = f"{what} ({type(error).__name__}: {detail})" if detail else what
    return TransportError(
        message,
        method=request.method,
        path=request.path,
        may_have_reached_server=reached,
        timed_out=timed_out,
    )


class AiohttpTransport:
    """The production transport, on one ``aiohttp.ClientSession``.

    Without a ``session`` one is created lazily, on the event loop of the first
    request, with up to ``connections_per_host`` connections per host, and closed
    by :meth:`aclose`. A session passed in is used as it is and never closed.
    Either way the transport belongs to one event loop: a request from another
    loop raises UsageError instead of failing deep inside aiohttp. The
    constructor raises InvalidArgument if ``session`` is not a ClientSession.
    """

    __slots__ = (
        "_closed",
        "_connections_per_host",
        "_loop",
        "_options",
        "_origins",
        "_owns_session",
        "_session",
        "_timeout",
        "_urls",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 (frozen value)
        connections_per_host: int = DEFAULT_CONNECTIONS_PER_HOST,
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise InvalidArgument("session must be an aiohttp.ClientSession")
        self._session = session
        self._owns_session = session is None
        self._connections_per_host = connections_per_host
        # connect bounds the TCP connect only: aiohttp's own `connect` also counts the
        # wait for a free pooled connection, which under a burst of renewals is
        # queueing, not a failure to reach the server (total still bounds it)
        self._timeout = aiohttp.ClientTimeout(
            total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.read
        )
        # the request options beyond the session's own, by request.replayable
        self._options: tuple[_Options, _Options] = (
            {"timeout": self._timeout, "middlewares": _NO_SILENT_REPLAY},
            {"timeout": self._timeout},
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._urls: dict[str, URL] = {}
        self._origins: dict[str, URL] = {}

    def _bind(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        if self._closed:
            raise UsageError("the client is closed; create a new one")
        if self._loop is not None:
            raise UsageError(
                "the client is bound to the event loop it first ran on; "
                "create one client per event loop (and close it on that loop)"
            )
        if self._session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0, limit_per_host=self._connections_per_host
                ),
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp's silent resend (see _no_silent_replay) has no public switch.
            # Turning it off on our own session keeps the reserve hot path free of
            # the per-request middleware; every retry is then the client's own,
            # planned with its knowledge of what may be sent twice.
            session._retry_connection = False
            self._options = ({}, {})  # and its timeouts are this transport's
            self._session = session
        self._loop = loop
        return self._session

    async def send(self, request: Request) -> Response:
        """Send ``request`` and read the whole answer.

        Raises TransportError when no HTTP answer came back, UsageError on a
        closed transport or from a second event loop.
        """
        session = self._session
        loop = asyncio.get_running_loop()
        if loop is not self._loop or session is None:
            session = self._bind(loop)
        url = self._urls.get(request.url)
        if url is None:
            url = self._url(request.url, request.path)
        try:
            # `await`, then release by hand: what `async with` does, without the
            # coroutines of its enter and exit on every request
            answer = await session.request(
                request.method,
                url,
                headers=request.headers,
                data=request.body,
                allow_redirects=False,
                **self._options[request.replayable],
            )
            try:
                body = await answer.read()
            except BaseException:
                # stop sending a request body and let go of the connection
                answer.release()
                await answer.wait_for_close()
                raise
            # read() waited for the request body to be sent and let go of the
            # connection: what is left of leaving `async with` needs no await
            answer.release()
        except (aiohttp.ClientError, OSError, TimeoutError, _SentAndLost) as error:
            raise transport_error(error, request) from None
        headers = answer.headers
        return Response(answer.status, headers, body, headers.get("X-Request-Id"))

    def _url(self, text: str, path: str) -> URL:
        """The parsed URL of ``text``, whose path is ``path``, kept for reuse.

        The protocol builds every URL already encoded, as an origin followed by
        the request's path: its origin's parsed URL with that path is less than
        half the work of parsing the whole again, which matters to a client
        renewing more tickets than the cache holds.
        """
        urls = self._urls
        if len(urls) >= URL_CACHE_LIMIT:
            urls.clear()
        origin = text[: len(text) - len(path)]
        if path.startswith("/") and text.endswith(path) and origin.count("/") == 2:
            base = self._origins.get(origin)
            if base is None:
                if len(self._origins) >= URL_CACHE_LIMIT:
                    self._origins.clear()
                base = self._origins[origin] = URL(origin, encoded=True)
            url = urls[text] = base.with_path(path, encoded=True)
        else:  # a URL with a query, or from elsewhere: parsed whole, quoted as it is
            url = urls[text] = URL(text, encoded=True)
        return url

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran."""
        return self._closed

    async def aclose(self) -> None:
        """Close the session if this transport created it. Idempotent.

        Raises UsageError when called from another event loop while the one the
        transport ran on is still open: its connections belong to that loop. If
        that loop is closed already, there is nothing left to close properly and
        the transport just lets go of the session.
        """
        if self._closed:
            return
        owner = self._loop
        foreign = owner is not None and asyncio.get_running_loop() is not owner
        if foreign and owner is not None and not owner.is_closed():
            raise UsageError("close the client on the event loop it ran on")
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not foreign:
            await session.close()
