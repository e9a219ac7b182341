"""Script argument building for local-shell-script (StackStorm semantics)."""

from __future__ import annotations

from typing import Any

from squall.runners.local import build_script_args


def test_named_arguments() -> None:
    params = {"name": "bob", "count": 3, "flag": True, "off": False, "none": None, "empty": ""}
    assert build_script_args(params, {}) == ["--name=bob", "--count=3", "--flag"]


def test_kwarg_op() -> None:
    assert build_script_args({"v": 1, "q": True}, {}, kwarg_op="-") == ["-v=1", "-q"]


def test_positional_after_named_in_position_order() -> None:
    schema: dict[str, dict[str, Any]] = {
        "second": {"type": "string", "position": 1},
        "first": {"type": "string", "position": 0},
        "named": {"type": "string"},
    }
    params = {"first": "a b", "second": "c", "named": "n"}
    assert build_script_args(params, schema) == ["--named=n", "a b", "c"]


def test_positional_serialization() -> None:
    schema = {
        "b": {"type": "boolean", "position": 0},
        "l": {"type": "array", "position": 1},
        "o": {"type": "object", "position": 2},
        "i": {"type": "integer", "position": 3},
        "missing": {"type": "string", "position": 4},
        "n": {"type": "number", "position": 5},
    }
    params = {"b": True, "l": ["x", 1], "o": {"k": "v"}, "i": 0, "n": 1.5}
    args = build_script_args(params, schema)
    assert args[:2] == ["1", "x,1"]
    assert args[2].replace(" ", "") == '{"k":"v"}'
    assert args[3:] == ["0", "", "1.5"]


def test_false_positional_boolean_is_zero() -> None:
    schema = {"b": {"type": "boolean", "position": 0}}
    assert build_script_args({"b": False}, schema) == ["0"]


def test_list_and_dict_named_use_python_str() -> None:
    assert build_script_args({"l": ["a", "b"]}, {}) == ["--l=['a', 'b']"]


def test_no_schema_means_all_named() -> None:
    assert build_script_args({"a": 1}, None) == ["--a=1"]
