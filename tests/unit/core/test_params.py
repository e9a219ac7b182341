"""Tests for squall.core.params: StackStorm action parameter semantics."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from squall.core.params import (
    MASK,
    NONE_MARKER,
    ParameterSchema,
    RenderedParameters,
    cast_parameters,
    cast_value,
    mask_secrets,
    merge_schemas,
    named_args,
    positional_args,
    script_arguments,
    secret_parameters,
    secret_values,
    validate_parameters,
)
from squall.errors import InvalidInput, ParameterError

RUNNER = {
    "cmd": {"type": "string", "description": "command", "required": True},
    "timeout": {"type": "integer", "default": 60},
    "sudo": {"type": "boolean", "default": False},
    "env": {"type": "object"},
    "locked": {"type": "string", "default": "runner", "immutable": True},
}


# --------------------------------------------------------------------------- merge_schemas


def test_merge_keeps_runner_then_action_order_and_remembers_runner_names() -> None:
    merged = merge_schemas(RUNNER, {"name": {"type": "string"}, "timeout": {"default": 5}})
    assert list(merged) == ["cmd", "timeout", "sudo", "env", "locked", "name"]
    assert merged.runner_names == frozenset(RUNNER)
    assert isinstance(merged, ParameterSchema)


@pytest.mark.parametrize(
    ("action", "param", "expected"),
    [
        ({"timeout": {"default": 5}}, "timeout", {"type": "integer", "default": 5}),
        # falsy override still wins (st2's "timeout: 0" case)
        ({"timeout": {"default": 0}}, "timeout", {"type": "integer", "default": 0}),
        (
            {"cmd": {"default": "ls", "immutable": True}},
            "cmd",
            {
                "type": "string",
                "description": "command",
                "required": True,
                "default": "ls",
                "immutable": True,
            },
        ),
        (
            {"cmd": {"required": False, "description": "what to run"}},
            "cmd",
            {"type": "string", "description": "what to run", "required": False},
        ),
        # an action cannot make a runner-immutable parameter mutable again
        (
            {"locked": {"immutable": False, "default": "x"}},
            "locked",
            {"type": "string", "default": "x", "immutable": True},
        ),
        # restating a non-overridable attribute with the same value is fine
        (
            {"sudo": {"type": "boolean", "default": True}},
            "sudo",
            {"type": "boolean", "default": True},
        ),
        ({"extra": {"type": "array"}}, "extra", {"type": "array"}),
    ],
)
def test_merge_overrides(action: dict[str, Any], param: str, expected: dict[str, Any]) -> None:
    assert merge_schemas(RUNNER, action)[param] == expected


@pytest.mark.parametrize(
    ("action", "attribute"),
    [
        ({"timeout": {"type": "string"}}, "type"),
        ({"cmd": {"position": 0}}, "position"),
        ({"env": {"secret": True}}, "secret"),
    ],
)
def test_merge_rejects_overriding_other_attributes(action: dict[str, Any], attribute: str) -> None:
    with pytest.raises(ParameterError) as info:
        merge_schemas(RUNNER, action)
    assert info.value.parameter == next(iter(action))
    assert f"'{attribute}'" in info.value.rule


def test_merge_does_not_share_or_mutate_inputs() -> None:
    runner = copy.deepcopy(RUNNER)
    action = {"env": {"default": {"A": "1"}}}
    merged = merge_schemas(runner, action)
    merged["env"]["default"]["A"] = "changed"
    merged["timeout"]["default"] = 1
    assert runner == RUNNER
    assert action == {"env": {"default": {"A": "1"}}}


def test_merge_accepts_missing_sides() -> None:
    assert merge_schemas(None, None) == {}
    assert merge_schemas(None, {"a": {}}).runner_names == frozenset()


# --------------------------------------------------------------------------- cast_parameters (CLI)

CAST_SCHEMA: dict[str, dict[str, Any]] = {
    "i": {"type": "integer"},
    "n": {"type": "number"},
    "b": {"type": "boolean"},
    "a": {"type": "array"},
    "ai": {"type": "array", "items": {"type": "integer"}},
    "o": {"type": "object"},
    "s": {"type": "string"},
    "u": {},
}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("i", "42", 42),
        ("i", " -7 ", -7),
        ("n", "1.5", 1.5),
        ("n", "3", 3.0),
        ("n", "1e3", 1000.0),
        ("b", "true", True),
        ("b", "False", False),
        ("b", "TRUE", True),
        ("a", "a,b , c", ["a", "b", "c"]),
        ("a", '["x", 1]', ["x", 1]),
        ("a", "51", [51]),
        ("a", "", []),
        ("a", "single", ["single"]),
        ("ai", "1,2,3", [1, 2, 3]),
        ("o", '{"k": [1, 2]}', {"k": [1, 2]}),
        ("o", "k1=v1,k2=v=2", {"k1": "v1", "k2": "v=2"}),
        ("o", "k1=v1,junk", {"k1": "v1"}),
        ("s", "123", "123"),
        ("u", "anything", "anything"),
    ],
)
def test_cast_parameters_from_cli_text(name: str, text: str, expected: Any) -> None:
    result = cast_parameters(CAST_SCHEMA, {name: text})
    assert result == {name: expected}
    assert type(result[name]) is type(expected)


@pytest.mark.parametrize(
    ("name", "text", "rule"),
    [
        ("i", "abc", "expected integer, got 'abc'"),
        ("i", "1.5", "expected integer, got '1.5'"),
        ("i", "1_000", "expected integer, got '1_000'"),
        ("n", "ten", "expected number, got 'ten'"),
        ("b", "yes", "expected boolean (true or false), got 'yes'"),
        ("b", "1", "expected boolean (true or false), got '1'"),
        ("o", "{not json", "expected object"),
        ("ai", "1,x", "expected integer, got 'x'"),
    ],
)
def test_cast_parameters_errors(name: str, text: str, rule: str) -> None:
    with pytest.raises(ParameterError) as info:
        cast_parameters(CAST_SCHEMA, {name: text})
    assert info.value.parameter == name
    assert rule in info.value.rule


def test_cast_parameters_keeps_typed_unknown_and_template_values() -> None:
    given = {
        "i": 5,
        "b": False,
        "a": ["x"],
        "unknown": "7",
        "s": None,
        "n": "{{ st2kv.system.n }}",
        "o": "{% if x %}{}{% endif %}",
    }
    assert cast_parameters(CAST_SCHEMA, given) == given


# ---------------------------------------------------------- cast_value (API and rendered text)


@pytest.mark.parametrize(
    ("meta", "value", "expected"),
    [
        ({"type": "array"}, "['a', 'b']", ["a", "b"]),
        ({"type": "array"}, '["a", "b"]', ["a", "b"]),
        ({"type": "object"}, "{'a': None, 'b': True}", {"a": None, "b": True}),
        ({"type": "integer"}, "12", 12),
        ({"type": "boolean"}, "True", True),
        ({"type": "string"}, "12", "12"),
        ({}, "12", "12"),
        ({"type": "integer"}, 12.5, 12.5),  # non-strings are left for validation
        ({"type": "string"}, NONE_MARKER, None),
        ({}, NONE_MARKER, None),
    ],
)
def test_cast_value(meta: dict[str, Any], value: Any, expected: Any) -> None:
    assert cast_value("p", value, meta) == expected


@pytest.mark.parametrize(
    ("meta", "value"),
    [({"type": "array"}, "a,b"), ({"type": "object"}, "{oops"), ({"type": "integer"}, "x")],
)
def test_cast_value_errors(meta: dict[str, Any], value: str) -> None:
    with pytest.raises(ParameterError, match=rf"parameter 'p': expected {meta['type']}"):
        cast_value("p", value, meta)


# --------------------------------------------------------------------------- validate_parameters

ACTION = {
    "host": {"type": "string", "required": True, "position": 0},
    "count": {"type": "integer", "default": 1, "minimum": 1, "maximum": 10},
    "mode": {"type": "string", "enum": ["fast", "slow"]},
    "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2, "uniqueItems": True},
    "password": {"type": "string", "secret": True, "enum": ["a", "b"]},
    "opts": {
        "type": "object",
        "properties": {
            "user": {"type": "string", "required": True},
            "port": {"type": "integer", "default": 22},
            "flags": {"type": "array", "items": {"type": "integer"}},
        },
        "additionalProperties": False,
    },
    "anything": {},
}
SCHEMA = merge_schemas(RUNNER, ACTION)


def test_validate_applies_defaults_fills_none_and_splits() -> None:
    action, runner = validate_parameters(SCHEMA, {"host": "h1", "cmd": "ls"})
    assert runner == {"cmd": "ls", "timeout": 60, "sudo": False, "env": None, "locked": "runner"}
    assert action == {
        "host": "h1",
        "count": 1,
        "mode": None,
        "ratio": None,
        "name": None,
        "tags": None,
        "password": None,
        "opts": None,
        "anything": None,
    }


def test_validate_none_means_default_and_nested_defaults_apply() -> None:
    action, _ = validate_parameters(
        SCHEMA, {"host": "h", "cmd": "ls", "count": None, "opts": {"user": "u", "port": None}}
    )
    assert action["count"] == 1
    assert action["opts"] == {"user": "u", "port": 22}


def test_validate_does_not_mutate_input_or_share_defaults() -> None:
    schema = {"o": {"type": "object", "default": {"k": []}}}
    given: dict[str, Any] = {}
    action, _ = validate_parameters(schema, given)
    action["o"]["k"].append(1)
    assert schema["o"]["default"] == {"k": []}
    assert given == {}


@pytest.mark.parametrize(
    ("given", "parameter", "rule"),
    [
        ({"cmd": "ls"}, "host", "is required"),
        ({"cmd": "ls", "host": None}, "host", "is required"),
        ({"host": "h"}, "cmd", "is required"),
        ({"cmd": "ls", "host": "h", "bogus": 1}, "bogus", "is not a parameter of this action"),
        (
            {"cmd": "ls", "host": "h", "locked": "runner"},
            "locked",
            "is immutable and cannot be set",
        ),
        ({"cmd": "ls", "host": 5}, "host", "expected string, got 5"),
        ({"cmd": "ls", "host": "h", "count": "abc"}, "count", "expected integer, got 'abc'"),
        ({"cmd": "ls", "host": "h", "count": 2.0}, "count", "expected integer, got 2.0"),
        ({"cmd": "ls", "host": "h", "count": True}, "count", "expected integer, got True"),
        ({"cmd": "ls", "host": "h", "count": 0}, "count", "must be at least 1, got 0"),
        ({"cmd": "ls", "host": "h", "count": 11}, "count", "must be at most 10, got 11"),
        ({"cmd": "ls", "host": "h", "ratio": 0}, "ratio", "must be greater than 0"),
        (
            {"cmd": "ls", "host": "h", "mode": "medium"},
            "mode",
            "must be one of ['fast', 'slow'], got 'medium'",
        ),
        ({"cmd": "ls", "host": "h", "name": "a"}, "name", "at least 2 characters"),
        ({"cmd": "ls", "host": "h", "name": "abcdef"}, "name", "at most 5 characters"),
        ({"cmd": "ls", "host": "h", "name": "AB"}, "name", "must match the pattern '^[a-z]+$'"),
        ({"cmd": "ls", "host": "h", "tags": "a"}, "tags", "expected array, got 'a'"),
        ({"cmd": "ls", "host": "h", "tags": ["a", 1]}, "tags", "field '[1]' expected string"),
        ({"cmd": "ls", "host": "h", "tags": ["a", "b", "c"]}, "tags", "at most 2 items"),
        ({"cmd": "ls", "host": "h", "tags": ["a", "a"]}, "tags", "same item twice"),
        ({"cmd": "ls", "host": "h", "opts": {}}, "opts", "field 'user' is required"),
        (
            {"cmd": "ls", "host": "h", "opts": {"user": "u", "port": "22"}},
            "opts",
            "field 'port' expected integer, got '22'",
        ),
        (
            {"cmd": "ls", "host": "h", "opts": {"user": "u", "flags": [1, "x"]}},
            "opts",
            "field 'flags[1]' expected integer, got 'x'",
        ),
        (
            {"cmd": "ls", "host": "h", "opts": {"user": "u", "zzz": 1}},
            "opts",
            "has unexpected field(s) 'zzz'",
        ),
        ({"cmd": "ls", "host": "h", "env": []}, "env", "expected object, got []"),
    ],
)
def test_validate_errors(given: dict[str, Any], parameter: str, rule: str) -> None:
    with pytest.raises(ParameterError) as info:
        validate_parameters(SCHEMA, given)
    assert info.value.parameter == parameter
    assert rule in info.value.rule
    assert info.value.message == f"parameter '{parameter}': {info.value.rule}"
    assert isinstance(info.value, InvalidInput)


def test_validate_does_not_echo_secret_values() -> None:
    with pytest.raises(ParameterError) as info:
        validate_parameters(SCHEMA, {"cmd": "ls", "host": "h", "password": "hunter2"})
    assert info.value.parameter == "password"
    assert "hunter2" not in info.value.message
    assert "must be one of" in info.value.rule


def test_validate_reports_first_error_in_schema_order() -> None:
    with pytest.raises(ParameterError) as info:
        validate_parameters(SCHEMA, {"cmd": "ls", "host": "h", "tags": 1, "count": "x"})
    assert info.value.parameter == "count"


def test_validate_untyped_accepts_any_value() -> None:
    for value in ("s", 1, [1], {"a": 1}, True):
        action, _ = validate_parameters(SCHEMA, {"cmd": "ls", "host": "h", "anything": value})
        assert action["anything"] == value


def test_validate_optional_nested_property_may_be_null() -> None:
    action, _ = validate_parameters(
        SCHEMA, {"cmd": "ls", "host": "h", "opts": {"user": "u", "flags": None}}
    )
    assert action["opts"] == {"user": "u", "port": 22, "flags": None}


def test_validate_required_with_null_default_accepts_none() -> None:
    schema = {"p": {"type": "string", "required": True, "default": None}}
    assert validate_parameters(schema, {}) == ({"p": None}, {})


def test_validate_draft4_list_required_inside_object() -> None:
    schema = {"o": {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}}
    with pytest.raises(ParameterError, match="field 'a' is required"):
        validate_parameters(schema, {"o": {}})
    assert validate_parameters(schema, {}) == ({"o": None}, {})


def test_validate_immutable_from_rendered_defaults_is_allowed() -> None:
    schema = merge_schemas(RUNNER, {"cmd": {"immutable": True, "default": "echo {{ x }}"}})
    rendered = RenderedParameters({"cmd": "echo hi"}, from_defaults={"cmd"})
    _, runner = validate_parameters(schema, rendered)
    assert runner["cmd"] == "echo hi"
    with pytest.raises(ParameterError, match="is immutable"):
        validate_parameters(schema, {"cmd": "echo hi"})


def test_validate_plain_dict_schema_means_all_action_params() -> None:
    action, runner = validate_parameters({"a": {"type": "string", "default": "x"}}, {})
    assert (action, runner) == ({"a": "x"}, {})


# --------------------------------------------------------------------------- secrets

SECRET_SCHEMA: dict[str, dict[str, Any]] = {
    "user": {"type": "string"},
    "password": {"type": "string", "secret": True},
    "token": {"type": "string", "secret": True},
    "creds": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "key": {"type": "string", "secret": True}},
    },
    "hosts": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"addr": {"type": "string"}, "pin": {"type": "integer", "secret": True}},
        },
    },
    "vault": {"type": "object", "secret": True},
    "headers": {"type": "object", "additionalProperties": {"type": "string", "secret": True}},
}


def test_secret_parameters_lists_top_level_secrets() -> None:
    assert secret_parameters(SECRET_SCHEMA) == {"password", "token", "vault"}
    assert secret_parameters({}) == set()


def test_mask_secrets_nested() -> None:
    params = {
        "user": "bob",
        "password": "p4ss",
        "token": None,
        "creds": {"name": "n", "key": "k3y"},
        "hosts": [{"addr": "a1", "pin": 1234}, {"addr": "a2"}],
        "vault": {"x": "y"},
        "headers": {"Authorization": "Bearer z"},
        "unknown": "kept",
    }
    original = copy.deepcopy(params)
    assert mask_secrets(params, SECRET_SCHEMA) == {
        "user": "bob",
        "password": MASK,
        "token": MASK,
        "creds": {"name": "n", "key": MASK},
        "hosts": [{"addr": "a1", "pin": MASK}, {"addr": "a2"}],
        "vault": MASK,
        "headers": {"Authorization": MASK},
        "unknown": "kept",
    }
    assert params == original
    assert mask_secrets({"password": "x"}, SECRET_SCHEMA, mask="***")["password"] == "***"


def test_secret_values_collects_every_secret_leaf() -> None:
    params = {
        "user": "bob",
        "password": "p4ss",
        "token": "",
        "creds": {"name": "n", "key": "k3y"},
        "hosts": [{"addr": "a1", "pin": 1234}],
        "vault": {"x": "y", "deep": ["z", True]},
    }
    assert secret_values(params, SECRET_SCHEMA) == ["p4ss", "k3y", "1234", "y", "z", "true"]


# --------------------------------------------------------------------------- script arguments

# The same parameter set st2 uses to test positional serialization.
POSITIONAL = {
    "actionint": {"type": "integer", "position": 0},
    "actionfloat": {"type": "float", "position": 1},
    "actionstr": {"type": "string", "position": 2},
    "actionbool": {"type": "boolean", "position": 3},
    "actionarray": {"type": "array", "position": 4},
    "actionlist": {"type": "list", "position": 5},
    "actionobject": {"type": "object", "position": 6},
    "actionnull": {"type": "null", "position": 7},
    "named": {"type": "string"},
}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {
                "actionint": 1,
                "actionfloat": 1.5,
                "actionstr": "string value",
                "actionbool": True,
                "actionarray": ["foo", "bar", "baz", "qux"],
                "actionlist": ["foo", "bar", "baz"],
                "actionobject": {"a": 1, "b": "2"},
            },
            [
                "1",
                "1.5",
                "string value",
                "1",
                "foo,bar,baz,qux",
                "foo,bar,baz",
                '{"a":1,"b":"2"}',
                "",
            ],
        ),
        (
            {"actionbool": False, "actionarray": [], "actionlist": [], "actionobject": {}},
            ["", "", "", "0", "", "", "", ""],
        ),
        ({}, ["", "", "", "", "", "", "", ""]),
        (
            {"actionarray": [None, False, 1, 4.2e1, "1e3", "foo"], "actionstr": "č š 💩"},
            ["", "", "č š 💩", "", "None,False,1,42.0,1e3,foo", "", "", ""],
        ),
        ({"actionint": 0, "actionobject": {"ü": "é"}}, ["0", "", "", "", "", "", '{"ü":"é"}', ""]),
    ],
)
def test_positional_args(params: dict[str, Any], expected: list[str]) -> None:
    assert positional_args(POSITIONAL, params) == expected


def test_positional_args_sort_numerically_even_for_string_positions() -> None:
    schema = {
        "c": {"type": "string", "position": "10"},
        "a": {"type": "string", "position": 2},
        "b": {"type": "string", "position": "3"},
    }
    assert positional_args(schema, {"a": "A", "b": "B", "c": "C"}) == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"s": "v a l"}, ["--s=v a l"]),
        ({"flag": True, "off": False}, ["--flag"]),
        ({"s": "", "n": None}, []),
        ({"n": 0, "f": 1.5}, ["--n=0", "--f=1.5"]),
        ({"lst": ["a", "b"], "obj": {"k": 1}}, ["--lst=['a', 'b']", "--obj={'k': 1}"]),
        ({"zz": "x", "s": "y"}, ["--s=y", "--zz=x"]),  # schema order, then unknown names
    ],
)
def test_named_args(params: dict[str, Any], expected: list[str]) -> None:
    schema = {
        "s": {"type": "string"},
        "flag": {"type": "boolean"},
        "off": {"type": "boolean"},
        "n": {"type": "integer"},
        "f": {"type": "number"},
        "lst": {"type": "array"},
        "obj": {"type": "object"},
    }
    assert named_args(schema, params) == expected


def test_script_arguments_named_then_positional_without_runner_params() -> None:
    schema = merge_schemas(
        {"sudo": {"type": "boolean", "default": False}, "kwarg_op": {"type": "string"}},
        {
            "dest": {"type": "string", "position": 1},
            "src": {"type": "string", "position": 0},
            "verbose": {"type": "boolean"},
            "level": {"type": "integer"},
        },
    )
    params = {"src": "a", "dest": "b", "verbose": True, "level": 3, "sudo": True}
    assert script_arguments(schema, params) == ["--verbose", "--level=3", "a", "b"]
    assert script_arguments(schema, params, kwarg_op="-") == ["-verbose", "-level=3", "a", "b"]


def test_pipeline_validate_then_arguments() -> None:
    schema = merge_schemas(
        {"timeout": {"type": "integer", "default": 60}},
        {"name": {"type": "string", "position": 0, "required": True}, "loud": {"type": "boolean"}},
    )
    given = cast_parameters(schema, {"name": "world", "loud": "true", "timeout": "5"})
    action, runner = validate_parameters(schema, given)
    assert runner == {"timeout": 5}
    assert script_arguments(schema, action) == ["--loud", "world"]


def test_validate_tolerates_parameters_without_metadata() -> None:
    # ``param:`` with nothing under it in YAML loads as None
    schema: dict[str, Any] = {"bare": None, "n": {"type": "integer"}}
    assert validate_parameters(schema, {"bare": [1]}) == ({"bare": [1], "n": None}, {})
