"""GUID validation: every GUID is checked and made canonical before it is used."""

from __future__ import annotations

import uuid

from ._exceptions import InvalidArgument

__all__ = ["canonical_guid"]

# A canonical GUID is 36 characters; braces or a urn prefix add a few. Anything
# much longer is refused before parsing, so a huge string costs nothing.
_MAX_LEN = 45


def canonical_guid(value: object, name: str = "guid") -> str:
    """Return ``value`` as a lowercase hyphenated UUID string.

    Raises InvalidArgument (naming ``name``) if ``value`` is not a str or UUID,
    or is not a well-formed UUID: empty, whitespace, path or query characters,
    percent-encoding, or too long.
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a GUID string, got {type(value).__name__}")
    if len(value) > _MAX_LEN or not value or value != value.strip():
        raise InvalidArgument(f"{name} is not a GUID: {value[:50]!r}")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(f"{name} is not a GUID: {value[:50]!r}") from None
    return str(parsed)
