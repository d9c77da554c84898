"""Credentials and hosts of ``openticket reserve``, from options and the environment.

The token comes from ``OPENTICKET_TOKEN`` (a bearer token), or from OAuth2
settings: ``OPENTICKET_CLIENT_ID``, ``OPENTICKET_CLIENT_SECRET`` and
``OPENTICKET_REFRESH_TOKEN``. A refresh token is single-use, so a run that
refreshes spends it; with ``OPENTICKET_TOKEN_FILE`` set, the new tokens are
saved there (mode 0600) and read back by the next run. No value read here is
ever printed: messages name the variable, never its content.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from .._auth import Auth, BearerToken, OAuth2
from .._exceptions import InvalidArgument
from .._models import Hosts, TokenSet
from ._run import USAGE, CommandError

__all__ = [
    "ENV_HOSTS",
    "ENV_OAUTH",
    "ENV_TOKEN",
    "ENV_TOKEN_FILE",
    "Credentials",
    "credentials",
    "resolve_hosts",
    "secret_values",
]

ENV_TOKEN = "OPENTICKET_TOKEN"  # noqa: S105 (the variable's name, not a secret)
ENV_CLIENT_ID = "OPENTICKET_CLIENT_ID"
ENV_CLIENT_SECRET = "OPENTICKET_CLIENT_SECRET"  # noqa: S105 (a name)
ENV_REFRESH_TOKEN = "OPENTICKET_REFRESH_TOKEN"  # noqa: S105 (a name)
ENV_TOKEN_FILE = "OPENTICKET_TOKEN_FILE"  # noqa: S105 (a name)
ENV_OAUTH = (ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_REFRESH_TOKEN)
ENV_HOSTS = {
    "auth": "OPENTICKET_AUTH_URL",
    "api": "OPENTICKET_API_URL",
    "shop": "OPENTICKET_SHOP_URL",
}
#: An access token never used: an OAuth2 run starting from a refresh token
#: refreshes before its first request, because this "token" expired long ago.
_NO_ACCESS_TOKEN = "none"  # noqa: S105 (a placeholder, never sent)
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The secrets in ``environ``, to mask in anything printed."""
    names = (ENV_TOKEN, ENV_CLIENT_SECRET, ENV_REFRESH_TOKEN)
    return [value for name in names if len(value := environ.get(name, "").strip()) >= 4]


def resolve_hosts(options: Mapping[str, str | None], environ: Mapping[str, str]) -> Hosts:
    """Hosts from ``options`` (role -> URL or None), else the environment, else OpenTicket's.

    Raises CommandError (usage) naming the option or variable of a malformed URL.
    """
    chosen: dict[str, str] = {}
    for role, variable in ENV_HOSTS.items():
        option = options.get(role)
        value = option or environ.get(variable, "").strip()
        if not value:
            continue
        try:
            Hosts(**{role: value})
        except InvalidArgument as exc:
            source = f"--{role}-host" if option else variable
            raise CommandError(f"{source}: {exc}", USAGE) from None
        chosen[role] = value
    return Hosts(**chosen)


class Credentials(NamedTuple):
    """The client's auth, where it came from (never the token), and a caution, if any."""

    auth: Auth
    source: str
    caution: str | None = None


def credentials(environ: Mapping[str, str]) -> Credentials:
    """The credentials set in ``environ`` (see the module docstring).

    Raises CommandError (usage) when no credentials are set, OAuth2 settings are
    incomplete, a value is not usable as a token, or ``OPENTICKET_TOKEN_FILE``
    is in a directory that does not exist or cannot be written.
    """
    token = environ.get(ENV_TOKEN, "").strip()
    if token:
        try:
            return Credentials(BearerToken(token), f"the bearer token in {ENV_TOKEN}")
        except InvalidArgument:
            raise CommandError(f"{ENV_TOKEN} is not a usable token", USAGE) from None
    present = [name for name in ENV_OAUTH if environ.get(name, "").strip()]
    token_file = environ.get(ENV_TOKEN_FILE, "").strip()
    if not present:
        raise CommandError(
            f"no credentials: set {ENV_TOKEN}, or {', '.join(ENV_OAUTH)} for OAuth2", USAGE
        )
    if token_file:
        _check_writable(Path(token_file))
    saved = _load(Path(token_file)) if token_file else None
    needed = (ENV_CLIENT_ID, ENV_CLIENT_SECRET) if saved else ENV_OAUTH
    missing = [name for name in needed if name not in present]
    if missing:
        raise CommandError(f"incomplete OAuth2 settings: {', '.join(missing)} not set", USAGE)
    start = saved or TokenSet(
        access_token=_NO_ACCESS_TOKEN,
        refresh_token=environ[ENV_REFRESH_TOKEN].strip(),
        expires_at=_LONG_AGO,
    )
    try:
        auth = OAuth2(
            environ[ENV_CLIENT_ID].strip(),
            environ[ENV_CLIENT_SECRET].strip(),
            start,
            on_refresh=(lambda fresh: _save(Path(token_file), fresh)) if token_file else None,
        )
    except InvalidArgument:
        raise CommandError("the OAuth2 settings are not usable as credentials", USAGE) from None
    if saved:
        return Credentials(auth, f"OAuth2 (tokens saved in {ENV_TOKEN_FILE})")
    caution = (
        None
        if token_file
        else f"{ENV_REFRESH_TOKEN} is single-use and this run spends it; "
        f"set {ENV_TOKEN_FILE} to keep the new one"
    )
    return Credentials(auth, f"OAuth2 ({ENV_REFRESH_TOKEN})", caution)


def _check_writable(path: Path) -> None:
    """Raise CommandError (usage) unless new tokens can be saved at ``path``.

    Checked before any request: the first refresh spends the single-use refresh
    token, so a save that fails only then would lose the only one left.
    """
    directory = path.parent
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise CommandError(
            f"{ENV_TOKEN_FILE}: cannot save tokens in {directory} "
            "(no such directory, or not writable)",
            USAGE,
        )


def _load(path: Path) -> TokenSet | None:
    """The token set saved at ``path``; None if there is no file yet.

    Raises CommandError (usage) for a file that is not a saved token set.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TokenSet(
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
            expires_at=datetime.fromisoformat(data["expires_at"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise CommandError(
            f"{ENV_TOKEN_FILE}: cannot read saved tokens from {path}", USAGE
        ) from None


def _save(path: Path, token: TokenSet) -> None:
    """Write ``token`` to ``path`` atomically, readable by the owner only (mkstemp's 0600)."""
    data = {
        "access_token": token.access_token,
        "refresh_token": token.refresh_token,
        "expires_at": token.expires_at.isoformat(),
    }
    fd, temporary = tempfile.mkstemp(prefix=".openticket-", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
