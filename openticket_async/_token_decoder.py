"""The token endpoint's answer -> :class:`~openticket_async.TokenSet`, decoded by hand.

Not through the converter: the expiries come as lifetimes (``expires_in``,
seconds) relative to the moment the answer arrived, which the caller passes in,
and the company GUIDs sit nested in ``info``. Keys and values follow the
converter's rules (``_wire``): any casing, numbers as strings, unknown keys kept
in ``raw``. Token values never appear in an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from ._exceptions import DecodeError
from ._models import EMPTY_RAW, TokenSet
from ._wire import field_error, json_kind, known_fields, structure_float, structure_str

__all__ = ["decode_token_set"]

_TOKEN_FIELDS = frozenset(
    ("access_token", "refresh_token", "expires_in", "refresh_token_expires_in")
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def decode_token_set(data: Any, *, now: datetime) -> TokenSet:
    """Decode a token endpoint answer; ``now`` is the wall time it arrived.

    ``expires_in``/``refresh_token_expires_in`` (seconds, numbers or strings)
    become ``expires_at``/``refresh_expires_at``; ``info.companies[].guid`` become
    ``companies``. Every other key (``token_type``, ``info``, ...) is kept in ``raw``.

    Raises DecodeError naming the field if the answer has no usable access token
    or expiry.
    """
    if type(data) is not dict:
        raise DecodeError(f"expected an object for TokenSet, got {json_kind(data)}")
    values, raw = known_fields(data, _TOKEN_FIELDS)
    access = _token_string(values.get("access_token"), "access_token")
    if access is None:
        raise DecodeError("the token answer is missing a required field", field="access_token")
    refresh = _token_string(values.get("refresh_token"), "refresh_token")
    try:
        lifetime = structure_float(values.get("expires_in"))
    except DecodeError as error:
        raise field_error(error, "expires_in") from None
    refresh_lifetime = values.get("refresh_token_expires_in")
    refresh_expires_at = None
    if refresh_lifetime is not None:
        try:
            refresh_expires_at = now + timedelta(seconds=structure_float(refresh_lifetime))
        except DecodeError as error:
            raise field_error(error, "refresh_token_expires_in") from None
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        expires_at=now + timedelta(seconds=lifetime),
        refresh_expires_at=refresh_expires_at,
        companies=_companies(data),
        raw=MappingProxyType(raw) if raw else EMPTY_RAW,
    )


def _token_string(value: Any, field: str) -> str | None:
    if value is None:
        return None
    # a token goes into a header: control characters would split or corrupt it
    if type(value) is not str or not value or _CONTROL.search(value):
        raise DecodeError(f"expected a token string, got {json_kind(value)}", field=field)
    return value


def _companies(data: Mapping[str, Any]) -> tuple[str, ...]:
    info = data.get("info")
    if type(info) is not dict:
        return ()
    companies = info.get("companies")
    if type(companies) is not list:
        return ()
    guids = []
    for index, company in enumerate(companies):
        guid = company.get("guid") if type(company) is dict else None
        if guid is None:
            continue
        try:
            guids.append(structure_str(guid))
        except DecodeError as error:
            raise field_error(error, f"info.companies[{index}].guid") from None
    return tuple(guids)
