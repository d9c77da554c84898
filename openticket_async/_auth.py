"""Credentials: a fixed bearer token, or OAuth2 tokens that refresh themselves.

Theory of operation for :class:`OAuth2`:

- An access token lives 3 days; the refresh token lives a year but is
  **single-use**: each refresh returns a new one, and two refreshes with the
  same refresh token lose the session. So refreshing is single-flight: every
  refresh goes through a :class:`TokenStore`, which runs the grant under a lock
  unless the token it holds already differs from the stale one the caller saw
  (someone refreshed first: the caller takes theirs). The in-process default is
  :class:`MemoryTokenStore`; a shared store (Redis, ...) implements the same one
  method to make several processes refresh once between them.
- A token is refreshed ``refresh_margin`` before it expires (by the client's
  clock), and once more on a 401, after which the request is replayed once.
- ``on_refresh(new_token_set)`` runs, and is awaited, before the new access
  token is used, so the application can persist the new refresh token first.
- A refused refresh raises AuthenticationError and is remembered: that refresh
  token is spent, so nothing asks the server with it again (no refresh loops).
- A refresh whose answer was lost (the connection dropped or timed out after
  sending, a 5xx but 503, an unreadable answer) probably spent its refresh
  token without handing over the new one. The next refresh with it is refused
  (``invalid_grant``); that refusal says so, and that only signing in again
  (``authorization_url``, then ``exchange_code``) gets a new token set.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlencode

import attrs

from ._clock import Clock
from ._config import seconds
from ._exceptions import (
    AuthenticationError,
    DecodeError,
    InvalidArgument,
    OpenTicketError,
    ServerError,
    TransportError,
)
from ._log import logger
from ._models import Hosts, TokenSet
from ._protocol import header_value, route_path

__all__ = [
    "Auth",
    "BearerToken",
    "Grant",
    "MemoryTokenStore",
    "OAuth2",
    "TokenEndpoint",
    "TokenStore",
    "authorization_url",
    "known_secrets",
    "ready_authorization",
]

#: Turns a stale token set into a fresh one by asking the token endpoint.
Grant = Callable[[TokenSet], Awaitable[TokenSet]]
OnRefresh = Callable[[TokenSet], Awaitable[None] | None]


class TokenEndpoint(Protocol):
    """What the client lends an :class:`Auth`: its clock and a way to ask for tokens."""

    @property
    def clock(self) -> Clock:
        """The client's clock."""
        ...

    async def grant(self, token_path: str, form: Mapping[str, str]) -> TokenSet:
        """POST ``form`` to the token endpoint; AuthenticationError if refused."""
        ...


class Auth(Protocol):
    """How the client authorizes requests (BearerToken, OAuth2)."""

    async def authorization(self, endpoint: TokenEndpoint) -> str:
        """The ``Authorization`` header value for the next request."""
        ...

    async def unauthorized(self, rejected: str, endpoint: TokenEndpoint) -> str | None:
        """After a 401 for ``rejected``: a header value to replay with once, or None."""
        ...


def _bearer(token: object, name: str) -> str:
    return "Bearer " + header_value(token, name)


class BearerToken:
    """A fixed access token. Its repr never shows the token.

    Raises InvalidArgument if the token is empty or holds control characters
    (CR/LF would let it forge headers).
    """

    __slots__ = ("_header",)

    def __init__(self, access_token: str) -> None:
        self._header = _bearer(access_token, "access_token")

    async def authorization(self, endpoint: TokenEndpoint) -> str:
        """The header value; a fixed token never needs the endpoint."""
        return self._header

    def _ready(self, now: datetime) -> str:
        return self._header

    async def unauthorized(self, rejected: str, endpoint: TokenEndpoint) -> str | None:
        """A fixed token cannot be renewed: None, so the 401 stands."""
        return None

    def __repr__(self) -> str:
        return "BearerToken(access_token='***')"


class TokenStore(Protocol):
    """Where refreshed tokens live, and the lock that makes refreshing single-flight."""

    async def refresh(self, stale: TokenSet, grant: Grant) -> TokenSet:
        """Return a fresh token set for ``stale``.

        Runs ``grant(stale)`` under the store's lock, unless the stored token
        already differs from ``stale`` (it was refreshed meanwhile): then return
        the stored one without a grant. Exceptions from ``grant`` propagate.
        """
        ...


class MemoryTokenStore:
    """The in-process :class:`TokenStore`: one lock, the latest token set in memory."""

    __slots__ = ("_latest", "_lock")

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._latest: TokenSet | None = None

    async def refresh(self, stale: TokenSet, grant: Grant) -> TokenSet:
        """See :meth:`TokenStore.refresh`."""
        async with self._lock:
            latest = self._latest
            if latest is not None and (
                latest.access_token != stale.access_token
                or latest.refresh_token != stale.refresh_token
            ):
                return latest
            fresh = await grant(stale)
            self._latest = fresh
            return fresh

    def __repr__(self) -> str:
        return "MemoryTokenStore()"


class OAuth2:
    """OAuth2 tokens for one client application, refreshed as needed.

    ``token`` is the current :class:`TokenSet` (from :func:`exchange_code`, or
    loaded from where ``on_refresh`` saved it). ``on_refresh(new_token_set)``,
    sync or async, is awaited before a refreshed access token is used; if it
    raises, the error is logged and the new tokens are used anyway, because the
    old refresh token is already spent. ``token_path`` is ``/tokens`` (older
    deployments: ``/token``). ``store`` makes refreshing single-flight across
    processes (default: in this process only).

    Requests raise AuthenticationError when a refresh is refused; the repr never
    shows a token or the client secret. The constructor raises InvalidArgument
    for malformed arguments.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        token: TokenSet,
        on_refresh: OnRefresh | None = None,
        *,
        refresh_margin: float | timedelta = 60.0,
        token_path: str = "/tokens",  # noqa: S107 (a URL path, not a password)
        store: TokenStore | None = None,
    ) -> None:
        if type(client_id) is not str or not client_id:
            raise InvalidArgument("client_id must be a non-empty string")
        if type(client_secret) is not str or not client_secret:
            raise InvalidArgument("client_secret must be a non-empty string")
        if not isinstance(token, TokenSet):
            raise InvalidArgument(f"token must be a TokenSet, got {type(token).__name__}")
        if on_refresh is not None and not callable(on_refresh):
            raise InvalidArgument("on_refresh must be callable")
        margin = seconds(refresh_margin)
        if margin < 0:
            raise InvalidArgument("refresh_margin must be >= 0")
        self._client_id = client_id
        self._client_secret = client_secret
        self._on_refresh = on_refresh
        self._margin = timedelta(seconds=margin)
        self._token_path = route_path(token_path, "token_path")
        self._store: TokenStore = MemoryTokenStore() if store is None else store
        # (spent refresh token, the refusal) once the server refused a refresh
        self._refused: tuple[str, AuthenticationError] | None = None
        # (refresh token, what went wrong) of the last refresh whose answer was lost
        self._unanswered: tuple[str, str] | None = None
        self._adopt(token)

    @property
    def token(self) -> TokenSet:
        """The current token set (changes at each refresh)."""
        return self._token

    @property
    def client_id(self) -> str:
        """The OAuth2 client id (not a secret)."""
        return self._client_id

    def _adopt(self, token: TokenSet) -> None:
        self._header = _bearer(token.access_token, "access_token")
        self._token = token
        self._refresh_at = token.expires_at - self._margin

    async def authorization(self, endpoint: TokenEndpoint) -> str:
        """The header value, refreshing first when the token is due.

        Raises AuthenticationError if a due refresh is refused. A refresh that
        fails for another reason (network, 5xx) while the access token is still
        valid is logged and the current token used; once it has expired, the
        error propagates.
        """
        token = self._token
        if token.refresh_token is not None:
            now = endpoint.clock.wall()
            if now >= self._refresh_at:
                try:
                    await self._refresh(token, endpoint)
                except (TransportError, ServerError) as error:
                    if now >= token.expires_at:
                        raise
                    logger.warning("token refresh failed, using the current token: %s", error)
        return self._header

    def _ready(self, now: datetime) -> str | None:
        # what authorization() returns without awaiting anything, if no refresh is due
        if now < self._refresh_at or self._token.refresh_token is None:
            return self._header
        return None

    async def unauthorized(self, rejected: str, endpoint: TokenEndpoint) -> str | None:
        """After a 401: refresh (unless that already happened) and return the new header.

        Returns None when there is no refresh token. Raises AuthenticationError
        if the refresh is refused.
        """
        if rejected != self._header:
            return self._header
        if self._token.refresh_token is None:
            return None
        await self._refresh(self._token, endpoint)
        return self._header

    async def _refresh(self, stale: TokenSet, endpoint: TokenEndpoint) -> None:
        async def grant(current: TokenSet) -> TokenSet:
            return await self._grant(current, endpoint)

        self._adopt(await self._store.refresh(stale, grant))

    async def _grant(self, stale: TokenSet, endpoint: TokenEndpoint) -> TokenSet:
        refresh_token = stale.refresh_token
        if refresh_token is None:
            raise InvalidArgument("this token set has no refresh token")
        refused = self._refused
        if refused is not None and refused[0] == refresh_token:
            raise _copy(refused[1])
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        try:
            fresh = await endpoint.grant(self._token_path, form)
        except AuthenticationError as error:
            unanswered = self._unanswered
            if unanswered is None or unanswered[0] != refresh_token:
                self._refused = (refresh_token, error)
                raise
            explained = _explained(error, _spent_by_a_lost_answer(unanswered[1]))
            self._refused = (refresh_token, explained)
            raise explained from None
        except (TransportError, DecodeError, ServerError) as error:
            lost = _how_lost(error)
            if lost is not None:
                self._unanswered = (refresh_token, lost)
            raise
        if fresh.refresh_token is None:
            # the server did not rotate it: the old one stays valid
            fresh = attrs.evolve(
                fresh, refresh_token=refresh_token, refresh_expires_at=stale.refresh_expires_at
            )
        logger.info("access token refreshed; it expires at %s", fresh.expires_at.isoformat())
        if self._on_refresh is not None:
            try:
                outcome = self._on_refresh(fresh)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # noqa: BLE001 (a failing hook must not lose the new tokens)
                logger.exception("on_refresh failed; the new tokens are used anyway")
        return fresh

    def __repr__(self) -> str:
        return f"OAuth2(client_id={self._client_id!r}, token={self._token!r})"


def ready_authorization(auth: Auth) -> Callable[[datetime], str | None] | None:
    """A synchronous ``auth.authorization`` for the request hot path, if ``auth`` has one.

    Given the client's wall time, it returns the header when ``authorization``
    would return it without awaiting anything, and None when a refresh is due
    (then await ``authorization``). Only the built-in auths have one: a subclass
    may change what ``authorization`` does. Raises nothing.
    """
    if type(auth) is BearerToken or type(auth) is OAuth2:
        return auth._ready
    return None


def known_secrets(auth: Auth) -> tuple[str, ...]:
    """The secrets ``auth`` holds now (tokens, client secret), to mask in errors and logs.

    Only the built-in auths tell theirs; another Auth's header is still masked
    from the request it authorized. Called only to build an error or a log line.
    Raises nothing.
    """
    if isinstance(auth, BearerToken):
        return (auth._header.partition(" ")[2],)
    if isinstance(auth, OAuth2):
        token = auth._token
        return (auth._client_secret, token.access_token, token.refresh_token or "")
    return ()


def _how_lost(error: OpenTicketError) -> str | None:
    """How a refresh that may have spent its refresh token lost the new one, or None.

    None when the server surely did not act: the request never reached it, or it
    refused with a 503.
    """
    if isinstance(error, TransportError):
        if not error.may_have_reached_server:
            return None
        return "it timed out" if error.timed_out else "its connection broke"
    if isinstance(error, ServerError):
        return None if error.status == 503 else f"it got HTTP {error.status}"
    return "its answer was unreadable"


def _spent_by_a_lost_answer(lost: str) -> str:
    return (
        "the refresh token was probably spent by an earlier refresh whose answer was"
        f" lost: {lost}; sign in again (authorization_url, then exchange_code) to get"
        " a new token set"
    )


def _copy(error: AuthenticationError) -> AuthenticationError:
    # a fresh exception per caller: one shared instance would pile up tracebacks
    return _explained(error, "the refresh token was refused before")


def _explained(error: AuthenticationError, why: str) -> AuthenticationError:
    return AuthenticationError(
        f"{error.args[0]} ({why})",
        status=error.status,
        method=error.method,
        path=error.path,
        request_id=error.request_id,
        body=error.body,
    )


def authorization_url(
    client_id: str,
    redirect_uri: str,
    state: str,
    *,
    hosts: Hosts = Hosts(),  # noqa: B008 (frozen value)
    path: str = "/tokens/authorize",
) -> str:
    """The URL to send a user to for the authorization-code grant.

    ``state`` is your CSRF token; check it when the user comes back with
    ``code`` and ``state``, then call :func:`exchange_code`. ``path`` is
    ``/token/authorize`` on older deployments. Raises InvalidArgument for an
    empty argument or an unsafe path.
    """
    for name, value in (("client_id", client_id), ("redirect_uri", redirect_uri), ("state", state)):
        if type(value) is not str or not value:
            raise InvalidArgument(f"{name} must be a non-empty string")
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "state": state,
        }
    )
    return f"{hosts.auth}{route_path(path, 'path')}?{query}"
