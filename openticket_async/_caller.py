"""The one retry loop every API call runs through, and the token endpoint's one send.

Kept apart from :class:`~openticket_async._client.OpenTicketClient`'s endpoint
methods because this is where a call's policy lives (auth, retries, hooks,
telemetry, log lines), and the endpoints only say what to send and how to read
the answer. The client *is* a :class:`Caller` (a base class, not a member) so
that the reserve path, the hot one, costs no call more than when they were one.

Every call runs through :meth:`Caller._call`:

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

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial

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
from ._clock import Clock
from ._config import RetryPolicy
from ._exceptions import DecodeError, OpenTicketError, TransportError, UsageError
from ._log import (
    DEBUG,
    ENABLED,
    debug_enabled,
    log_failure,
    log_request,
    log_response,
    log_retry,
)
from ._models import Hosts, TokenSet
from ._observe import OnRequest, OnResponse, RequestObserver, observer_for
from ._protocol import Request, RequestFactory, Response
from ._telemetry import Telemetry
from ._token_decoder import decode_token_set
from ._transport import Transport

__all__ = ["Caller", "HttpTokenEndpoint"]


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


class HttpTokenEndpoint:
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


class Caller:
    """Sends requests for the API calls: auth, the one retry loop, hooks, telemetry, logs.

    Takes its parts already checked (OpenTicketClient checks the user's
    options). Raises InvalidArgument for a hook that is not callable or a
    ``telemetry`` that is not a Telemetry.
    """

    def __init__(
        self,
        *,
        auth: Auth,
        factory: RequestFactory,
        transport: Transport,
        clock: Clock,
        retry: RetryPolicy,
        hosts: Hosts,
        telemetry: Telemetry | None,
        on_request: OnRequest | None,
        on_response: OnResponse | None,
    ) -> None:
        self._auth = auth
        self._ready = ready_authorization(auth)
        self._retry = retry
        self._clock = clock
        self._factory = factory
        self._transport = transport
        # the auth's secrets, masked in every error and log line (asked for only then)
        self._known: KnownSecrets = partial(known_secrets, auth)
        self._endpoint = HttpTokenEndpoint(transport, factory, clock, self._known)
        self._closed = False
        # None unless a hook or an OpenTelemetry provider watches: then _call's one check
        self._observer: RequestObserver | None = observer_for(
            self._send_try, clock, hosts, telemetry, on_request, on_response
        )

    async def _call(
        self, build: Callable[[str], Request], replay: Replay, retry: RetryPolicy | None
    ) -> tuple[Request, Response, float, datetime]:
        """Send what ``build`` makes of a header until it succeeds or may not be tried again.

        Returns the request and answer of the try that succeeded, with its send
        times (the clock's ``now`` and ``wall``). ``retry`` overrides the
        client's policy; ``replay`` says whether the request may be sent again.
        """
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
