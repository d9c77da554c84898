"""read_json reads every body as json does, with orjson (the ``fast`` extra) or without.

json's reading (``load_json``) is the contract; ``load_fast`` is the orjson path.
Each test holds the two to the same outcome: the same value with the same types
(floats by repr, so -0.0, NaN and infinities count; objects in key order), or the
same exception type. orjson is in the ``test`` extra, so these run on it in CI.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from json_helpers import shape

from openticket_async import _answers, _json
from openticket_async._answers import read_json
from openticket_async._exceptions import DecodeError
from openticket_async._json import JSON_PARSER, load_json
from openticket_async._protocol import Request, Response

assert _json.load_fast is not None, "orjson is in the test extra"
load_fast: Callable[[bytes], Any] = _json.load_fast


def outcome(load: Callable[[bytes], Any], body: bytes) -> Any:
    """A comparable account of what ``load`` makes of ``body``: its value or its error type."""
    try:
        value = load(body)
    except (ValueError, RecursionError) as error:
        # UnicodeDecodeError and JSONDecodeError are both read_json's DecodeError
        return ("error", "RecursionError" if isinstance(error, RecursionError) else "ValueError")
    return ("value", shape(value))


def assert_read_as_json_does(body: bytes) -> None:
    assert outcome(load_fast, body) == outcome(load_json, body)


def a_request() -> Request:
    url = "http://127.0.0.1:1/api/v1/shops/s1/tickets/t1/reserve"
    return Request("GET", url, "/api/v1/shops/s1/tickets/t1/reserve", "reserve", {})


def answer(body: bytes) -> Response:
    return Response(200, {"Content-Type": "application/json"}, body, None)


# -- which parser ----------------------------------------------------------------------


def test_read_json_uses_orjson_when_it_is_installed() -> None:
    assert importlib.util.find_spec("orjson") is not None
    assert JSON_PARSER == "orjson"


def test_without_orjson_there_is_no_fast_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # what an import finds when it is absent
    assert _json._fast_loader() is None


# -- generated bodies --------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@given(json_values, st.booleans())
def test_any_dumped_value_reads_as_json_reads_it(value: Any, ascii_only: bool) -> None:
    # ensure_ascii=False writes a lone surrogate raw: invalid UTF-8, which both refuse
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert_read_as_json_does(body)


number_literals = st.from_regex(
    r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,4})?\Z", fullmatch=True
)


@given(number_literals)
def test_any_number_literal_reads_as_json_reads_it(literal: str) -> None:
    # float rounding, -0, underflow to 0.0, overflow (json: inf), 64-bit edges
    assert_read_as_json_does(literal.encode())


@given(json_values, st.text(alphabet=" \t\n\r\x0b\x0c\x1c\xa0\u2028\ufeff", max_size=3),
       st.text(alphabet=" \t\n\r\x0b\x0c\x1c\xa0\u2028\ufeff", max_size=3))
def test_whitespace_around_a_value_reads_as_json_reads_it(
    value: Any, before: str, after: str
) -> None:
    assert_read_as_json_does(f"{before}{json.dumps(value)}{after}".encode())


@given(st.binary(max_size=40) | st.text(alphabet='[]{}",:0123456789.eE+-tfnulrsa\\ ').map(
    str.encode))
def test_any_bytes_read_as_json_reads_them(body: bytes) -> None:
    assert_read_as_json_does(body)


# -- hand-picked bodies ------------------------------------------------------------------

ACCEPTED_BODIES = [
    pytest.param(b'{"a": 1, "b": 2, "a": 3}', id="duplicate-keys"),
    pytest.param(b"18446744073709551615", id="2**64-1"),
    pytest.param(b"18446744073709551616", id="2**64"),
    pytest.param(b"-9223372036854775808", id="-2**63"),
    pytest.param(b"-9223372036854775809", id="-2**63-1"),
    pytest.param(b'{"n": 123456789012345678901234567890}', id="30-digit-int"),
    pytest.param(b"NaN", id="nan"),
    pytest.param(b"[Infinity, -Infinity]", id="infinities"),
    pytest.param(b"1e400", id="1e400"),
    pytest.param(b"-1e400", id="-1e400"),
    pytest.param(b"1e-400", id="1e-400"),
    pytest.param(b"-0", id="-0"),
    pytest.param(b"-0.0", id="-0.0"),
    pytest.param(b"0.30000000000000004", id="float-rounding"),
    pytest.param(b"9007199254740993.0", id="float-halfway"),
    pytest.param(b"1.7976931348623159e308", id="float-above-max"),
    pytest.param(b"2.4703282292062328e-324", id="float-below-min"),
    pytest.param(b'"\\ud800"', id="lone-high-surrogate"),
    pytest.param(b'{"\\udc00": 1}', id="lone-low-surrogate-key"),
    pytest.param(b'"\\ud800\\udc00"', id="surrogate-pair"),
    pytest.param(b'"\xef\xbf\xbf"', id="noncharacter-U+FFFF"),
    pytest.param(b' \t\n\r{"a": 1}\r\n ', id="surrounding-whitespace"),
    pytest.param(b"[" * 256 + b"]" * 256, id="depth-256"),
    pytest.param(b"[" + b"{}," * 300 + b"{}]", id="301-brackets-in-900-bytes"),
    pytest.param(b"[" + b"{}," * 600 + b"{}]", id="601-brackets-in-1800-bytes"),
]

REFUSED_BODIES = [
    pytest.param(b"1" * 5000, id="int-over-4300-digits"),
    pytest.param(b'"\xff"', id="invalid-utf8"),
    pytest.param(b'"\xed\xa0\x80"', id="utf8-encoded-surrogate"),
    pytest.param(b"\xef\xbb\xbf{}", id="utf8-bom"),
    pytest.param(b"\x0c1", id="form-feed"),
    pytest.param(b'"\x1f"', id="raw-control-character"),
    pytest.param(b"", id="empty"),
    pytest.param(b'{"a": 1} {"b": 2}', id="two-values"),
    pytest.param(b"[" * 1000 + b"]" * 1000, id="depth-1000"),
    pytest.param(b"[" * 1024 + b"]" * 1024, id="depth-1024"),
    pytest.param(b"[" * 1025 + b"]" * 1025, id="depth-1025"),
    pytest.param(b"[" * 100_000, id="depth-100000-cut"),
]


@pytest.mark.parametrize("body", ACCEPTED_BODIES + REFUSED_BODIES)
def test_an_edge_body_reads_as_json_reads_it(body: bytes) -> None:
    assert_read_as_json_does(body)


@pytest.mark.parametrize("body", REFUSED_BODIES)
def test_a_body_json_refuses_raises_the_same_decode_error_on_both_paths(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = []
    for load in (load_fast, load_json):
        monkeypatch.setattr(_answers, "_load", load)
        with pytest.raises(DecodeError) as caught:
            read_json(a_request(), answer(body))
        error = caught.value
        errors.append((str(error), error.snippet, error.status, error.content_type))
    assert errors[0] == errors[1]


# -- where orjson alone would differ ----------------------------------------------------


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30, -(10**40)])
def test_an_integer_beyond_64_bits_reads_as_an_exact_int(number: int) -> None:
    # orjson alone makes it a float (github.com/ijl/orjson/issues/308)
    value = load_fast(json.dumps({"n": number}).encode())["n"]
    assert (type(value), value) == (int, number)


def test_nesting_json_refuses_for_recursion_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # orjson alone reads up to depth 1024; json stops at the recursion limit
    body = b"[" * 1000 + b"]" * 1000
    assert orjson.loads(body) is not None
    monkeypatch.setattr(_answers, "_load", load_fast)
    with pytest.raises(DecodeError, match="not valid JSON"):
        read_json(a_request(), answer(body))


def test_nesting_json_refuses_under_a_lowered_recursion_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 150 deep: orjson alone reads it, json cannot with 100 frames to spare
    body = b"[" * 150 + b"]" * 150
    monkeypatch.setattr(_answers, "_load", load_fast)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)
    try:
        with pytest.raises(DecodeError, match="not valid JSON"):
            read_json(a_request(), answer(body))
    finally:
        sys.setrecursionlimit(limit)
