"""dump_own writes json's values for what the SDK builds, by orjson (the ``fast`` extra) or not.

json's writing (``dump``) is the contract. Each test holds ``dump_own`` to it:
the text read back (by json) gives the same value with the same types (floats by
repr, objects in key order), or both raise the same exception type. orjson is in
the ``test`` extra, so these run on it in CI.
"""

from __future__ import annotations

import enum
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from json_helpers import shape

from openticket_async import _json
from openticket_async._json import dump, dump_own, json_plain


class Kind(enum.IntEnum):
    A = 1


def outcome(write: Any, value: Any) -> Any:
    """What ``write`` makes of ``value``, comparably: what json reads back, or the error."""
    try:
        text = write(value)
    except (TypeError, ValueError) as error:  # UnicodeEncodeError is a ValueError
        return ("error", type(error).__name__)
    assert isinstance(text, bytes)
    return ("value", shape(json.loads(text)))


#: What the SDK builds itself: dict keys are strings, floats are finite. Integers
#: and strings reach beyond what orjson writes (64 bits, lone surrogates).
own_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


def test_dump_own_is_written_by_orjson_when_it_is_installed() -> None:
    assert _json.JSON_PARSER == "orjson"
    assert dump_own is not dump


def test_without_orjson_dump_own_is_json_s_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # what an import finds when it is absent
    assert _json._fast_own_dumper() is None


@given(own_values)
def test_any_value_the_sdk_builds_is_written_as_json_writes_it(value: Any) -> None:
    assert outcome(dump_own, value) == outcome(dump, value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"cart": "\ud800"}, id="lone-surrogate"),
        pytest.param({"n": 2**64}, id="2**64"),
        pytest.param({"n": -(2**63) - 1}, id="-2**63-1"),
        pytest.param({"x": 1e16, "y": 1e-7, "z": -0.0}, id="floats-spelt-otherwise"),
        pytest.param({"é": "ü\u2028"}, id="non-ascii"),
    ],
)
def test_an_edge_value_is_written_as_json_writes_it(value: Any) -> None:
    assert outcome(dump_own, value) == outcome(dump, value)


def test_dump_writes_compact_utf8_without_escapes() -> None:
    assert dump({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_dump_refuses_what_json_cannot_read_back(value: float) -> None:
    with pytest.raises(ValueError):
        dump({"x": value})


# -- which values dump_own may take -----------------------------------------------------

any_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text() | st.integers(), inner, max_size=5),
    max_leaves=20,
)


@given(own_values)
def test_json_plain_clears_every_value_of_json_s_own_types(value: Any) -> None:
    assert json_plain(value)


@given(any_values)
def test_a_value_json_plain_clears_is_written_as_json_writes_it(value: Any) -> None:
    if json_plain(value):  # the rest: json_plain's refusals, tested above and below
        assert outcome(dump_own, value) == outcome(dump, value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"a": [1, {"b": float("nan")}]}, id="nan-deep"),
        pytest.param([float("-inf")], id="infinity"),
        pytest.param({1: "a"}, id="int-key"),
        pytest.param({"when": datetime(2026, 1, 1, tzinfo=UTC)}, id="datetime"),
        pytest.param({"n": Decimal("1.5")}, id="decimal"),
        pytest.param({"kind": Kind.A}, id="int-enum"),
        pytest.param(("a", "b"), id="tuple"),
    ],
)
def test_json_plain_refuses_what_orjson_would_write_otherwise(value: Any) -> None:
    assert not json_plain(value)


def test_json_plain_walks_any_depth() -> None:
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = [deep]
    assert json_plain({"deep": deep})


def test_json_plain_refuses_a_cycle_rather_than_walking_it_for_ever() -> None:
    cycle: dict[str, Any] = {"a": []}
    cycle["a"].append(cycle)
    assert not json_plain(cycle)
