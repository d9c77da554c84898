"""JSON with json's results, read and written by orjson where the two agree (pure).

Theory of operation
-------------------
json (the standard library) is the contract: every value this SDK reads from
JSON, and every JSON text it writes, is what json would read or write. orjson
(the ``fast`` extra) does the same work in a fraction of the instructions, so it
is used wherever it is known to give json's result, and json everywhere else.
The decision lives here, for the client's answers and the shared stores' records
alike; without the extra every function is json's own.

Reading (:data:`load`). orjson gives json's value for every text it accepts
but two kinds (tests/test_answers_json.py): an integer beyond 64 bits becomes a
float, and nesting to depth 1024 is read where json stops at Python's recursion
limit (1000 frames by default, the caller's included). A text that may hold
either goes to json: one with a run of 19 digits, or one nested deeper than
half the recursion limit (a text shorter than the limit in bytes cannot be, so
only a longer one has its brackets counted). So does every text orjson refuses
(NaN, 1e400, a lone surrogate...): the value or the error is always json's, as
long as the caller has not used half the recursion limit already.

Writing (:data:`dump_own`). For what the SDK builds itself (strings, integers
within 64 bits, finite floats, booleans, None, lists, dicts with string keys)
orjson writes json's values (tests/test_json_dump.py); its text differs only in
how some floats are spelt (``1e16`` for ``1e+16``), which read back the same.
Elsewhere it differs in values: NaN and infinities become ``null`` (json
refuses them), and it writes types json refuses (datetimes, UUIDs, enums,
dataclasses). So :data:`dump_own` is only for values the SDK made (a hold
record without the application's metadata, an event record) and for values
:func:`json_plain` clears (a server's unknown keys, as json parsed them: JSON's
own types, where NaN or an infinity is all that could tell orjson from json).
Whatever else an application handed in goes through :func:`dump` or
:data:`dump_text`, which are json's. What orjson refuses (a lone
surrogate, an integer beyond 64 bits) is written by json as well.

To turn orjson off, install without the extra (or uninstall orjson):
:data:`JSON_PARSER` then says ``"json"``.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable
from sys import getrecursionlimit
from typing import Any, Final, cast

__all__ = [
    "JSON_PARSER",
    "dump",
    "dump_own",
    "dump_text",
    "json_plain",
    "load",
    "load_fast",
    "load_json",
]

# json's scanner, as a JSONDecoder makes it: raw_decode minus its Python frame
_SCAN = json.scanner.make_scanner(cast(Any, json.JSONDecoder()))

#: json's compact text of a value (no spaces, no escapes of non-ASCII, no NaN), by
#: one encoder made once: ``json.dumps`` with options builds one per call
dump_text: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def load_json(body: bytes) -> Any:
    """json's reading of a UTF-8 JSON text: the contract :func:`load` keeps.

    Raises ValueError (UnicodeDecodeError included) or RecursionError if json does.
    """
    # JSON on the wire is UTF-8, so decode first and skip json's encoding
    # detection; the scanner skips its two whitespace scans. A text with
    # whitespace around the value, or none at all (StopIteration), takes the
    # slower, complete json.loads, which raises the error to report.
    text = body.decode()
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


_DIGITS_AND_OPENS = bytes.maketrans(b"0123456789{", b"0000000000[")
_LONG_DIGITS = b"0" * 19  # 18 digits always fit in 64 bits (10**18 < 2**63)


def _fast_loader() -> Callable[[bytes], Any] | None:
    try:
        from orjson import loads
    except ImportError:
        return None

    def load_fast(body: bytes) -> Any:
        """:func:`load_json`'s value or error, read by orjson where it agrees."""
        marks = body.translate(_DIGITS_AND_OPENS)
        limit = getrecursionlimit()
        if _LONG_DIGITS in marks or (len(body) > limit and marks.count(b"[") > limit // 2):
            return load_json(body)
        try:
            return loads(body)
        except ValueError:  # orjson.JSONDecodeError
            return load_json(body)

    return load_fast


def dump(value: Any) -> bytes:
    """json's compact UTF-8 text of ``value`` (no spaces, no escapes of non-ASCII).

    Raises TypeError for a type json cannot write, ValueError for NaN or an
    infinity, and UnicodeEncodeError for a lone surrogate.
    """
    return dump_text(value).encode()


_SCALARS = frozenset({str, int, bool, type(None)})


def json_plain(value: Any) -> bool:
    """Whether ``value`` holds only JSON's own types, at any depth, and no NaN or infinity.

    JSON's own types: dicts with string keys, lists, strings, integers, floats,
    booleans, None, each of exactly that type (no subclass). Such a value is
    written by :data:`dump_own` with json's values. Walks the value without
    recursion, so no nesting is too deep for it; a container met twice (a
    cycle, or one shared) is refused too, and left to json to judge.
    """
    pending = [value]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict or kind is list:
            if id(item) in seen:
                return False
            seen.add(id(item))
            if kind is list:
                pending.extend(item)
                continue
            for key in item:
                if type(key) is not str:
                    return False
            pending.extend(item.values())
        elif kind is float:
            if item - item != 0.0:  # NaN and the infinities
                return False
        elif kind not in _SCALARS:
            return False
    return True


def _fast_own_dumper() -> Callable[[Any], bytes] | None:
    try:
        from orjson import JSONEncodeError, dumps
    except ImportError:
        return None

    def dump_own(value: Any) -> bytes:
        """:func:`dump`'s values for a value the SDK built, written by orjson."""
        try:
            return dumps(value)
        except JSONEncodeError:  # a lone surrogate, an integer beyond 64 bits
            return dump(value)

    return dump_own


#: orjson's reader with json's results (:func:`load_json` for what orjson would
#: read otherwise), or None when the ``fast`` extra is not installed
load_fast = _fast_loader()
#: the reader every JSON text of the SDK goes through: ``load_fast`` or ``load_json``
load: Final = load_json if load_fast is None else load_fast
#: the parser :func:`load` uses: ``"orjson"`` with the ``fast`` extra, else ``"json"``
JSON_PARSER: Final = "json" if load_fast is None else "orjson"
#: :func:`dump` for values the SDK built itself (see the module's docstring):
#: the same JSON values, written by orjson with the ``fast`` extra
dump_own: Final = _fast_own_dumper() or dump
