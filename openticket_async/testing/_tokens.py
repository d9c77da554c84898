"""The fake server's OAuth2 state: authorization codes, access and refresh tokens.

Mirrors what openticket-api.md says of the real API: access tokens expire (on the
injected clock), refresh tokens are single-use (a second use is refused with
``invalid_grant``), codes are single-use and bound to their redirect URI.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from .._clock import Clock
from .._models import TokenSet
from ._values import Refusal, TokenGrant

__all__ = ["TokenBook"]

#: How long a refresh token stays valid: 365 days, like the real API.
REFRESH_TTL = 365 * 24 * 3600.0
#: How long an authorization code may wait for its exchange.
CODE_TTL = 600.0


class _AccessGrant:
    __slots__ = ("companies", "expires_at", "refresh_token")

    def __init__(self, expires_at: float, companies: tuple[str, ...], refresh_token: str) -> None:
        self.expires_at = expires_at
        self.companies = companies
        self.refresh_token = refresh_token


class _RefreshGrant:
    __slots__ = ("companies", "expires_at", "used")

    def __init__(self, expires_at: float, companies: tuple[str, ...]) -> None:
        self.expires_at = expires_at
        self.companies = companies
        self.used = False


class _Code:
    __slots__ = ("expires_at", "redirect_uri")

    def __init__(self, expires_at: float, redirect_uri: str) -> None:
        self.expires_at = expires_at
        self.redirect_uri = redirect_uri


class TokenBook:
    """Issues and checks tokens. Every refusal is a :class:`Refusal` carrying its status."""

    def __init__(
        self,
        clock: Clock,
        *,
        access_token_ttl: float,
        client_id: str,
        client_secret: str,
        default_companies: tuple[str, ...],
    ) -> None:
        self._clock = clock
        self._access_ttl = access_token_ttl
        self._client_id = client_id
        self._client_secret = client_secret
        self._default_companies = default_companies
        self._access: dict[str, _AccessGrant] = {}
        self._refresh: dict[str, _RefreshGrant] = {}
        self._codes: dict[str, _Code] = {}
        self.grants: list[TokenGrant] = []

    def issue(self, companies: tuple[str, ...]) -> TokenSet:
        """Mint an access and refresh token pair, valid from now."""
        now = self._clock.now()
        access = "at_" + secrets.token_urlsafe(24)
        refresh = "rt_" + secrets.token_urlsafe(24)
        self._access[access] = _AccessGrant(now + self._access_ttl, companies, refresh)
        self._refresh[refresh] = _RefreshGrant(now + REFRESH_TTL, companies)
        wall = self._clock.wall()
        return TokenSet(
            access_token=access,
            refresh_token=refresh,
            expires_at=wall + timedelta(seconds=self._access_ttl),
            refresh_expires_at=wall + timedelta(seconds=REFRESH_TTL),
            companies=companies,
        )

    def check_bearer(self, authorization: str | None) -> tuple[str, ...]:
        """Return the companies of a valid ``Bearer`` header; refuse with 401 otherwise."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Refusal(401, "unauthenticated", "missing bearer token")
        grant = self._access.get(authorization[7:].strip())
        if grant is None:
            raise Refusal(401, "unauthenticated", "unknown or revoked access token")
        if self._clock.now() >= grant.expires_at:
            raise Refusal(401, "unauthenticated", "access token expired")
        return grant.companies

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired; refresh tokens stay valid."""
        now = self._clock.now()
        for grant in self._access.values():
            grant.expires_at = min(grant.expires_at, now)

    def revoke(self, token: TokenSet | str) -> None:
        """Forget an access token (and the refresh token issued with it)."""
        access = token.access_token if isinstance(token, TokenSet) else token
        grant = self._access.pop(access, None)
        if grant is not None:
            self._refresh.pop(grant.refresh_token, None)
        if isinstance(token, TokenSet) and token.refresh_token is not None:
            self._refresh.pop(token.refresh_token, None)

    def authorize(self, query: Mapping[str, str]) -> str:
        """Approve an authorization request at once; return the new code."""
        if query.get("response_type") != "code":
            raise _refused("unsupported_response_type", "response_type must be 'code'")
        if query.get("client_id") != self._client_id:
            raise _refused("invalid_client", "unknown client_id")
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            raise _refused("invalid_request", "redirect_uri is required")
        code = "code_" + secrets.token_urlsafe(18)
        self._codes[code] = _Code(self._clock.now() + CODE_TTL, redirect_uri)
        return code

    def grant(self, form: Mapping[str, Any]) -> dict[str, Any]:
        """Handle a token-endpoint request; return the JSON answer or raise :class:`Refusal`.

        Every attempt is recorded in :attr:`grants`, accepted or not.
        """
        grant_type = str(form.get("grant_type", ""))
        refresh_token = form.get("refresh_token") if grant_type == "refresh_token" else None
        try:
            self._check_client(form)
            companies = self._use_grant(grant_type, form)
        except Refusal as refusal:
            self._record(grant_type, refresh_token, refusal.message)
            raise
        self._record(grant_type, refresh_token, None)
        return self._answer(self.issue(companies))

    def _use_grant(self, grant_type: str, form: Mapping[str, Any]) -> tuple[str, ...]:
        if grant_type == "refresh_token":
            return self._use_refresh(form.get("refresh_token"))
        if grant_type == "authorization_code":
            return self._use_code(form.get("code"), form.get("redirect_uri"))
        raise _refused("unsupported_grant_type", f"unknown grant_type {grant_type!r}")

    def _check_client(self, form: Mapping[str, Any]) -> None:
        client_id = str(form.get("client_id", ""))
        client_secret = str(form.get("client_secret", ""))
        if client_id != self._client_id or not hmac.compare_digest(
            client_secret.encode(), self._client_secret.encode()
        ):
            raise _refused("invalid_grant", "client authentication failed")

    def _use_refresh(self, token: object) -> tuple[str, ...]:
        grant = self._refresh.get(token) if isinstance(token, str) else None
        if grant is None:
            raise _refused("invalid_grant", "unknown refresh token")
        if grant.used:
            raise _refused("invalid_grant", "refresh token was already used")
        if self._clock.now() >= grant.expires_at:
            raise _refused("invalid_grant", "refresh token expired")
        grant.used = True
        return grant.companies

    def _use_code(self, code: object, redirect_uri: object) -> tuple[str, ...]:
        entry = self._codes.pop(code, None) if isinstance(code, str) else None
        if entry is None:
            raise _refused("invalid_grant", "unknown or already used authorization code")
        if self._clock.now() >= entry.expires_at:
            raise _refused("invalid_grant", "authorization code expired")
        if redirect_uri != entry.redirect_uri:
            raise _refused("invalid_grant", "redirect_uri does not match the authorization")
        return self._default_companies

    def _record(self, grant_type: str, refresh_token: object, reason: str | None) -> None:
        self.grants.append(
            TokenGrant(
                grant_type=grant_type,
                accepted=reason is None,
                reason=reason,
                time=self._clock.now(),
                refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            )
        )

    def _answer(self, tokens: TokenSet) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "access_token": tokens.access_token,
            "expires_in": _number(self._access_ttl),
            "refresh_token": tokens.refresh_token,
            "refresh_token_expires_in": _number(REFRESH_TTL),
            "info": {"companies": [{"guid": guid} for guid in tokens.companies]},
        }


def _refused(error: str, description: str) -> Refusal:
    return Refusal(400, error, description, oauth=True)


def _number(value: float) -> int | float:
    """Whole seconds as an int, like the real API; fractions stay floats."""
    return int(value) if value == int(value) else value
