"""What the JSON tests compare: a value with every type spelled out.

tests/test_answers_json.py holds orjson's reading to json's, tests/test_json_dump.py
its writing; both compare values through :func:`shape`.
"""

from __future__ import annotations

from typing import Any


def shape(value: Any) -> Any:
    """``value`` with every type spelled out, floats by repr and objects in order."""
    if isinstance(value, dict):
        return ("dict", [(shape(key), shape(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [shape(item) for item in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)
