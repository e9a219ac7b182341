"""Tests for squall.core.templating: StackStorm-compatible sandboxed Jinja."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from squall.core.params import cast_parameters, merge_schemas, validate_parameters
from squall.core.templating import (
    SecretValue,
    TemplateError,
    TemplateSecurityError,
    TemplateSyntaxError,
    TemplateUndefinedError,
    build_context,
    filters,
    is_template,
    render_parameters,
    render_value,
    template_variables,
)
from squall.errors import InvalidInput, ParameterError


class FakeKV:
    """An in-memory KeyLookup that records every read."""

    def __init__(self, values: dict[tuple[str, str], str | SecretValue]) -> None:
        self.values = values
        self.reads: list[tuple[str, str]] = []

    def get(self, scope: str, name: str) -> str | SecretValue | None:
        self.reads.append((scope, name))
        return self.values.get((scope, name))


def kv_context(**extra: Any) -> tuple[FakeKV, dict[str, Any]]:
    kv = FakeKV(
        {
            ("system", "foo"): "bar",
            ("system", "a.b"): "dotted",
            ("system", "a.b.c"): "deeper",
            ("system", "num"): "41",
            ("system", "json"): '{"k": [1, 2]}',
            ("system", "pw"): SecretValue("CIPHER"),
            ("system", "plain"): "not-encrypted",
            ("user", "foo"): "mine",
        }
    )
    context = build_context(
        kv=kv,
        config={"region": "eu", "hosts": ["h1", "h2"]},
        action_context={"user": "stanley"},
        decrypt=lambda text: f"plain({text})",
        extra=extra,
    )
    return kv, context


# --------------------------------------------------------------------------- filters

FILTER_CASES: list[tuple[str, dict[str, Any], Any]] = [
    # st2's default separators are (",", ": "): no space after commas
    ("{{ v | to_json_string }}", {"v": {"a": 1, "b": [True, None]}}, '{"a": 1,"b": [true,null]}'),
    (
        "{{ v | to_json_string(indent=2, sort_keys=True) }}",
        {"v": {"b": 1, "a": 2}},
        '{\n  "a": 2,\n  "b": 1\n}',
    ),
    ("{{ v | to_json_string(separators=[',', ':']) }}", {"v": [1, {"a": 2}]}, '[1,{"a":2}]'),
    ("{{ v | to_complex }}", {"v": {"a": [1]}}, '{"a": [1]}'),
    ("{{ v | from_json_string }}", {"v": '{"a": [1, true]}'}, {"a": [1, True]}),
    ("{{ (v | from_json_string).a }}", {"v": '{"a": 7}'}, 7),
    ("{{ v | from_yaml_string }}", {"v": "---\na: b\nc:\n  - 1\n"}, {"a": "b", "c": [1]}),
    ("{{ v | json_escape }}", {"v": 'foo """ bar'}, 'foo \\"\\"\\" bar'),
    ("{{ v | json_escape }}", {"v": "a\\b\nc\td\b\f\r"}, "a\\\\b\\nc\\td\\b\\f\\r"),
    ("{{ v | regex_match('x') }}", {"v": "xyz"}, True),
    ("{{ v | regex_match('y') }}", {"v": "xyz"}, False),
    ("{{ v | regex_match('X', ignorecase=True) }}", {"v": "xyz"}, True),
    ("{{ v | regex_search('y') }}", {"v": "xyz"}, True),
    ("{{ v | regex_search('^v(\\d+\\.)?(\\d+\\.)?(\\*|\\d+)$') }}", {"v": "v0.10.1"}, True),
    ("{{ v | regex_match('5') }}", {"v": 567}, True),
    (
        "{{ v | regex_replace('(blue|red)', 'color') }}",
        {"v": "blue socks, red shoes"},
        "color socks, color shoes",
    ),
    ("{{ v | regex_replace('(\\w+)@', '\\\\1 at ') }}", {"v": "me@x"}, "me at x"),
    (
        "{{ v | regex_substring('([0-9]{3} \\w+ (?:Ave|Dr))') }}",
        {"v": "at 123 Main Ave. ok"},
        "123 Main Ave",
    ),
    (
        "{{ v | regex_substring('([0-9]{3} \\w+ (?:Ave|Dr))', 1) }}",
        {"v": "567 Else Dr. then 123 Main Ave."},
        "123 Main Ave",
    ),
    ("{{ v | to_human_time_from_seconds }}", {"v": 12345}, "3h25m45s"),
    ("{{ v | to_human_time_from_seconds }}", {"v": 0}, "0s"),
    ("{{ v | to_human_time_from_seconds }}", {"v": 59}, "59s"),
    ("{{ v | to_human_time_from_seconds }}", {"v": 60}, "1m0s"),
    ("{{ v | to_human_time_from_seconds }}", {"v": 90061}, "1d1h1m1s"),
    ("{{ v | to_human_time_from_seconds }}", {"v": 40 * 86400}, "40d0h0m0s"),
    ("{{ v | to_human_time_from_seconds }}", {"v": 365 * 86400 + 5}, "1y0d0h0m5s"),
    ("{{ v | to_human_time_from_seconds }}", {"v": 61.6}, "1m2s"),
    ("{{ v | to_human_time_from_seconds }}", {"v": 0.5}, "0.5\u03bcs"),
    ("{{ v | version_compare('0.10.0') }}", {"v": "0.9.0"}, -1),
    ("{{ v | version_compare('0.10.0') }}", {"v": "0.10.1"}, 1),
    ("{{ v | version_compare('0.10.0') }}", {"v": "0.10.0"}, 0),
    ("{{ v | version_compare('1.0.0') }}", {"v": "1.0.0-rc.1"}, -1),
    ("{{ v | version_compare('1.0.0-rc.2') }}", {"v": "1.0.0-rc.10"}, 1),
    ("{{ v | version_compare('1.0.0-alpha.beta') }}", {"v": "1.0.0-alpha.1"}, -1),
    ("{{ v | version_compare('1.0.0-alpha.1') }}", {"v": "1.0.0-alpha"}, -1),
    ("{{ v | version_compare('1.0.0+other') }}", {"v": "1.0.0+build.5"}, 0),
    ("{{ v | version_more_than('0.10.0') }}", {"v": "0.10.1"}, True),
    ("{{ v | version_more_than('0.10.0') }}", {"v": "0.10.0"}, False),
    ("{{ v | version_less_than('0.10.0') }}", {"v": "0.9.0"}, True),
    ("{{ v | version_less_than('0.10.0') }}", {"v": "0.10.1"}, False),
    ("{{ v | version_equal('0.10.0') }}", {"v": "0.10.0"}, True),
    ("{{ v | version_equal('0.10.0') }}", {"v": "0.10.1"}, False),
    ("{{ v | version_match('>0.10.0') }}", {"v": "0.10.1"}, True),
    ("{{ v | version_match('>0.10.0') }}", {"v": "0.1.1"}, False),
    ("{{ v | version_match('<0.10.0') }}", {"v": "0.1.0"}, True),
    ("{{ v | version_match('==0.10.0') }}", {"v": "0.10.0"}, True),
    ("{{ v | version_match('>=0.10.0') }}", {"v": "0.10.0"}, True),
    ("{{ v | version_match('<=0.9.9') }}", {"v": "0.10.0"}, False),
    ("{{ v | version_match('!=0.10.0') }}", {"v": "0.10.0"}, False),
    ("{{ v | version_match('0.10.0') }}", {"v": "0.10.0"}, True),
    ("{{ v | version_bump_major }}", {"v": "0.10.1"}, "1.0.0"),
    ("{{ v | version_bump_minor }}", {"v": "0.10.1"}, "0.11.0"),
    ("{{ v | version_bump_patch }}", {"v": "0.10.1"}, "0.10.2"),
    ("{{ v | version_bump_patch }}", {"v": "1.2.3-rc.1+b7"}, "1.2.4"),
    ("{{ v | version_strip_patch }}", {"v": "0.10.1"}, "0.10"),
    ("{{ v | use_none }}", {"v": None}, None),
    ("{{ v | use_none }}", {"v": "x"}, "x"),
    ("{{ v | basename }}", {"v": "/a/b/c.txt"}, "c.txt"),
    ("{{ v | dirname }}", {"v": "/a/b/c.txt"}, "/a/b"),
    (
        "{{ v | jsonpath_query('$.people[*].name') }}",
        {"v": {"people": [{"name": "a"}, {"name": "b"}]}},
        ["a", "b"],
    ),
    ("{{ v | jsonpath_query('people[0].name') }}", {"v": {"people": [{"name": "a"}]}}, ["a"]),
    (
        "{{ v | jsonpath_query('$..id') }}",
        {"v": {"id": 1, "kids": [{"id": 2}, {"x": {"id": 3}}]}},
        [1, 2, 3],
    ),
    ("{{ v | jsonpath_query('$.a[1:3]') }}", {"v": {"a": [0, 1, 2, 3]}}, [1, 2]),
    ("{{ v | jsonpath_query('$.a[-1]') }}", {"v": {"a": [0, 1, 2, 3]}}, [3]),
    ("{{ v | jsonpath_query(\"$['odd key'].x\") }}", {"v": {"odd key": {"x": 5}}}, [5]),
    ("{{ v | jsonpath_query('$.m.*') }}", {"v": {"m": {"a": 1, "b": 2}}}, [1, 2]),
    ("{{ v | jsonpath_query('$.nothing') }}", {"v": {"a": 1}}, None),
]


@pytest.mark.parametrize(("template", "context", "expected"), FILTER_CASES)
def test_filters(template: str, context: dict[str, Any], expected: Any) -> None:
    assert render_value(template, context) == expected


def test_filter_to_yaml_string_round_trips() -> None:
    value = {"a": "b", "c": {"d": "é", "f": 1, "g": True}}
    text = render_value("{{ v | to_yaml_string }}", {"v": value})
    assert yaml.safe_load(text) == value
    assert "é" in text  # allow_unicode


def test_filter_text_results_stay_text_inside_larger_templates() -> None:
    assert render_value("v={{ x | version_compare('1.0.0') }}", {"x": "2.0.0"}) == "v=1"
    assert render_value("{{ x | regex_match('a') }}!", {"x": "a"}) == "True!"


def test_every_st2_filter_is_registered() -> None:
    st2_filters = {
        "decrypt_kv", "from_json_string", "from_yaml_string", "json_escape", "jsonpath_query",
        "to_complex", "to_json_string", "to_yaml_string", "regex_match", "regex_replace",
        "regex_search", "regex_substring", "to_human_time_from_seconds", "version_compare",
        "version_more_than", "version_less_than", "version_equal", "version_match",
        "version_bump_major", "version_bump_minor", "version_bump_patch", "version_strip_patch",
        "use_none", "basename", "dirname",
    }  # fmt: skip
    assert st2_filters <= set(filters)


@pytest.mark.parametrize(
    ("template", "context", "problem"),
    [
        ("{{ v | to_human_time_from_seconds }}", {"v": "stuff"}, "needs a number of seconds"),
        ("{{ v | regex_substring('[0-3]{3}') }}", {"v": "986"}, "no match number 0"),
        ("{{ v | regex_substring('(\\d)', 1) }}", {"v": "a1"}, "no match number 1"),
        ("{{ v | regex_match('(') }}", {"v": "x"}, "invalid regular expression"),
        ("{{ v | version_compare('1.0.0') }}", {"v": "1.0"}, "not a semantic version"),
        ("{{ v | version_match('~1.0.0') }}", {"v": "1.0.0"}, "version_match needs"),
        ("{{ v | from_json_string }}", {"v": "{bad"}, "not valid JSON"),
        ("{{ v | from_yaml_string }}", {"v": "a: [1"}, "not valid YAML"),
        (
            "{{ v | jsonpath_query('$[?(@.a)]') }}",
            {"v": []},
            "filter expressions are not supported",
        ),
    ],
)
def test_filter_errors(template: str, context: dict[str, Any], problem: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_value(template, context, name="p")
    assert problem in info.value.problem
    assert info.value.message.startswith("p: ")


# --------------------------------------------------------------------------- datastore


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ st2kv.system.foo }}", "bar"),
        ("{{ st2kv.system.a.b }}", "dotted"),
        ("{{ st2kv.system.a.b.c }}", "deeper"),
        ("{{ st2kv.system['a']['b'] }}", "dotted"),
        ("{{ st2kv.system.a }}", ""),
        ("[{{ st2kv.system.missing }}]", "[]"),
        ("{{ st2kv.user.foo }}", "mine"),
        ("{{ st2kv.system.num | int + 1 }}", 42),
        ("{{ st2kv.system.num | float }}", 41.0),
        ("{{ st2kv.system.foo | upper }}", "BAR"),
        ("{{ st2kv.system.foo == 'bar' }}", True),
        ("{{ st2kv.system.foo | length }}", 3),
        ("{{ 'yes' if st2kv.system.missing else 'no' }}", "no"),
        ("{{ (st2kv.system.json | from_json_string).k }}", [1, 2]),
        ("{{ st2kv.system.pw }}", "CIPHER"),
        ("{{ st2kv.system.pw | decrypt_kv }}", "plain(CIPHER)"),
        ("{{ st2kv.system.plain | decrypt_kv }}", "plain(not-encrypted)"),
        ("{{ 'ABC' | decrypt_kv }}", "plain(ABC)"),
        ("{{ config_context.region }}-{{ action_context.user }}", "eu-stanley"),
        ("{{ config_context.hosts }}", ["h1", "h2"]),
    ],
)
def test_datastore_and_context(template: str, expected: Any) -> None:
    _, context = kv_context()
    assert render_value(template, context) == expected


def test_datastore_reads_lazily_and_once() -> None:
    kv, context = kv_context()
    assert kv.reads == []
    render_value("{{ st2kv.system.a.b }} {{ st2kv.system.a.b }} {{ st2kv.user.foo }}", context)
    assert kv.reads == [("system", "a.b"), ("user", "foo")]


def test_datastore_list_of_refs_comes_out_as_text() -> None:
    _, context = kv_context()
    assert render_value("{{ [st2kv.system.foo, st2kv.user.foo] }}", context) == ["bar", "mine"]


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ st2kv.system.missing | decrypt_kv }}", "'st2kv.system.missing' does not exist"),
        ("{{ st2kv.user.nope | decrypt_kv }}", "'st2kv.user.nope' does not exist"),
        ("{{ 5 | decrypt_kv }}", "needs an encrypted value"),
        ("{{ st2kv.system }}", "needs a key name"),
    ],
)
def test_datastore_errors(template: str, problem: str) -> None:
    _, context = kv_context()
    with pytest.raises(TemplateError) as info:
        render_value(template, context)
    assert problem in info.value.problem


def test_decrypt_kv_without_decrypt_function() -> None:
    context = build_context(kv=FakeKV({("system", "pw"): SecretValue("C")}))
    with pytest.raises(TemplateError, match="no decryption is available"):
        render_value("{{ st2kv.system.pw | decrypt_kv }}", context)


def test_decrypt_kv_reports_decrypt_failures() -> None:
    def refuse(text: str) -> str:
        raise ValueError("bad key")

    context = build_context(kv=FakeKV({("system", "pw"): SecretValue("C")}), decrypt=refuse)
    with pytest.raises(TemplateError, match="could not be decrypted \\(bad key\\)"):
        render_value("{{ st2kv.system.pw | decrypt_kv }}", context)


def test_decrypt_function_is_not_reachable_from_templates() -> None:
    _, context = kv_context()
    assert "squall:decrypt" in context
    for template in ("{{ decrypt }}", "{{ squall }}"):
        with pytest.raises(TemplateUndefinedError):
            render_value(template, context)


def test_without_kv_lookup_st2kv_is_undefined() -> None:
    with pytest.raises(TemplateUndefinedError, match="'st2kv' is undefined"):
        render_value("{{ st2kv.system.x }}", build_context())


# --------------------------------------------------------------------------- render_value

CTX = {"n": 5, "s": "text", "l": [1, "two"], "d": {"k": "v"}, "t": True, "none": None}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ n }}", 5),
        ("{{n}}", 5),
        ("{{- n -}}", 5),
        ("{{ l }}", [1, "two"]),
        ("{{ d }}", {"k": "v"}),
        ("{{ t }}", True),
        ("{{ none }}", None),
        ("{{ n }} ", "5 "),
        ("n={{ n }}", "n=5"),
        ("{{ n }}{{ n }}", "55"),
        ("{{ l }}!", "[1, 'two']!"),
        ("{{ '}}' }}", "}}"),
        ("{% if t %}yes{% endif %}", "yes"),
        ("{% for i in l %}{{ i }},{% endfor %}", "1,two,"),
        ("{{ l | map('string') | join('-') }}", "1-two"),
        ("{{ range(3) | list }}", [0, 1, 2]),
        ("no template", "no template"),
        ("a { b } {# c", "a { b } {# c"),
        (7, 7),
        (None, None),
        (["{{ n }}", "x{{ s }}", 3], [5, "xtext", 3]),
        ({"a": "{{ l }}", "b": {"c": ["{{ d.k }}"]}}, {"a": [1, "two"], "b": {"c": ["v"]}}),
        ({"{{ s }}": "{{ n }}"}, {"text": 5}),
        (("{{ n }}",), [5]),
    ],
)
def test_render_value_keeps_types(value: Any, expected: Any) -> None:
    assert render_value(value, CTX) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ n }}", "5"),
        ("{{ l }}", "[1, 'two']"),
        ({"a": ["{{ t }}"]}, {"a": ["True"]}),
        ("{{ none | use_none }}", None),
    ],
)
def test_render_value_as_text(value: Any, expected: Any) -> None:
    assert render_value(value, CTX, keep_types=False) == expected


def test_render_value_does_not_render_twice() -> None:
    context = {"h1": "{", "h2": "{ missing }}"}
    assert render_value("{{ h1 }}{{ h2 }}", context) == "{{ missing }}"


def test_render_value_allow_undefined() -> None:
    assert render_value("[{{ nope }}]", {}, allow_undefined=True) == "[]"
    assert render_value("{{ nope }}", {}, allow_undefined=True) == ""
    assert render_value("{{ nope | default('d') }}", {}) == "d"


def test_render_value_does_not_mutate_input() -> None:
    value = {"a": ["{{ n }}"]}
    render_value(value, CTX)
    assert value == {"a": ["{{ n }}"]}


@pytest.mark.parametrize(
    ("value", "error", "problem"),
    [
        ("{{ nope }}", TemplateUndefinedError, "'nope' is undefined"),
        ("{{ d.missing }}", TemplateUndefinedError, "has no attribute 'missing'"),
        ("{{ d.k.x.y }}", TemplateUndefinedError, "has no attribute 'x'"),
        ("{{ [nope] }}", TemplateUndefinedError, "'nope' is undefined"),
        ("{{ n ", TemplateSyntaxError, "template syntax error"),
        ("{% if %}", TemplateSyntaxError, "template syntax error"),
        ("a\n{{ n | }}", TemplateSyntaxError, "on line 2"),
        ("{% for x in l %}", TemplateSyntaxError, "template syntax error"),
        ("{{ s.__class__ }}", TemplateSecurityError, "__class__"),
        ("{{ s.__class__.__mro__ }}", TemplateSecurityError, "unsafe"),
        ("{{ (lipsum).__globals__ }}", TemplateSecurityError, "__globals__"),
        ("{{ 'x' * 2000000 }}", TemplateSecurityError, "too large"),
        ("{{ [0] * 2000000 }}", TemplateSecurityError, "too large"),
        ("{{ 9 ** 99999999 }}", TemplateSecurityError, "too large"),
        ("{{ range(10**7) | list }}", TemplateSecurityError, "Range too big"),
        ("{{ 1 / 0 }}", TemplateError, "ZeroDivisionError"),
        ("{{ n | nofilter }}", TemplateError, "nofilter"),
    ],
)
def test_render_value_errors(value: str, error: type[TemplateError], problem: str) -> None:
    with pytest.raises(error) as info:
        render_value({"field": value}, CTX, name="rule action")
    assert problem in info.value.problem
    assert info.value.where == "rule action.field"
    assert isinstance(info.value, InvalidInput)
    assert info.value.http_status == 400


def test_error_message_names_place_problem_and_template() -> None:
    with pytest.raises(TemplateUndefinedError) as info:
        render_value({"a": ["ok", "{{ nope }}"]}, {})
    assert (
        info.value.message
        == "template at a[1]: undefined value: 'nope' is undefined (in '{{ nope }}')"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ x }}", True),
        ("{% if x %}{% endif %}", True),
        ("{# c #}", False),
        ("x", False),
        (5, False),
    ],
)
def test_is_template(value: Any, expected: bool) -> None:
    assert is_template(value) is expected


def test_template_variables() -> None:
    assert template_variables("{{ a.b }} {% for i in c %}{{ i }}{{ range(2) }}{% endfor %}") == {
        "a",
        "c",
    }
    with pytest.raises(TemplateSyntaxError):
        template_variables("{{ a")


# --------------------------------------------------------------------------- render_parameters


def render(
    runner: dict[str, Any],
    action: dict[str, Any],
    given: dict[str, Any],
    context: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    return dict(render_parameters(merge_schemas(runner, action), given, context, **kwargs))


@pytest.mark.parametrize(
    ("runner", "action", "given", "expected"),
    [
        # untyped parameters render as text (st2 "no cast")
        (
            {"r1": {}, "r2": {}},
            {"a1": {}, "a2": {}},
            {"r1": "{{r2}}", "r2": 1, "a1": True, "a2": "{{r1}} {{a1}}"},
            {"r1": "1", "r2": 1, "a1": True, "a2": "1 True"},
        ),
        # typed parameters are cast (st2 "with cast")
        (
            {"r1": {"type": "integer"}, "r2": {"type": "integer"}},
            {"a1": {"type": "boolean"}, "a2": {"type": "boolean"}, "a3": {"type": "string"}},
            {"r1": "{{r2}}", "r2": 1, "a1": True, "a2": "{{a1}}", "a3": "{{ r2 }}"},
            {"r1": 1, "r2": 1, "a1": True, "a2": True, "a3": "1"},
        ),
        # dict and list values: single expressions keep their types
        (
            {"r1": {"type": "object"}, "r2": {"type": "object"}},
            {
                "a1": {"type": "boolean"},
                "a3": {"type": "object"},
                "a4": {"type": "integer"},
                "a5": {"type": "array"},
            },
            {
                "r1": "{{r2}}",
                "r2": {"r2.1": 1},
                "a1": True,
                "a3": {"test": "{{a1}}", "test1": "{{a4}}", "test2": "{{a5}}"},
                "a4": 3,
                "a5": ["1", "{{a1}}"],
            },
            {
                "r1": {"r2.1": 1},
                "r2": {"r2.1": 1},
                "a1": True,
                "a3": {"test": True, "test1": 3, "test2": ["1", True]},
                "a4": 3,
                "a5": ["1", True],
            },
        ),
        (
            {},
            {
                "a2": {"type": "string"},
                "a7": {"type": "integer"},
                "a6": {"type": "array"},
            },
            {
                "a2": "Test",
                "a7": 5,
                "a6": [["{{ a2 }}"], ["{{a7}}", "as text {{a7}}", "{{a7}} too"]],
            },
            {"a2": "Test", "a7": 5, "a6": [["Test"], [5, "as text 5", "5 too"]]},
        ),
        # defaults that are templates, referencing given values and each other
        (
            {},
            {
                "host": {"type": "string"},
                "port": {"type": "integer"},
                "url": {"type": "string", "default": "http://{{ host }}:{{ port }}"},
                "params": {"type": "object", "default": {"host": "{{host}}", "port": "{{port}}"}},
                "next": {"type": "integer", "default": "{{ port + 1 }}"},
            },
            {"host": "lolcathost", "port": 5555},
            {
                "host": "lolcathost",
                "port": 5555,
                "url": "http://lolcathost:5555",
                "params": {"host": "lolcathost", "port": 5555},
                "next": 5556,
            },
        ),
        # rendered text is cast: an array from a Python-literal rendering, a string as-is
        (
            {},
            {
                "src": {"type": "array"},
                "arr": {"type": "array", "default": "{{ src }} "},
                "txt": {"type": "string", "default": "{{ src }}"},
                "num": {"type": "number", "default": "{{ src | length }}.5"},
                "flag": {"type": "boolean", "default": "{{ src | length > 1 }}"},
            },
            {"src": ["a", "b"]},
            {
                "src": ["a", "b"],
                "arr": ["a", "b"],
                "txt": "['a', 'b']",
                "num": 2.5,
                "flag": True,
            },
        ),
        # given strings are cast too
        (
            {},
            {"n": {"type": "integer"}, "o": {"type": "object"}},
            {"n": "7", "o": '{"a": 1}'},
            {"n": 7, "o": {"a": 1}},
        ),
        # use_none yields a real None
        ({}, {"x": {"type": "string", "default": "{{ y | use_none }}"}, "y": {}}, {}, {"x": None}),
        # non-template defaults are reported, None defaults are not
        ({}, {"a": {"default": "plain"}, "b": {"default": None}, "c": {}}, {}, {"a": "plain"}),
        # a given None takes the default
        ({}, {"a": {"type": "integer", "default": 3}}, {"a": None}, {"a": 3}),
    ],
)
def test_render_parameters(
    runner: dict[str, Any], action: dict[str, Any], given: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert render(runner, action, given) == expected


def test_render_parameters_immutable_default_uses_other_params_and_validates() -> None:
    schema = merge_schemas(
        {
            "cmd": {"type": "string", "required": True},
            "timeout": {"type": "integer", "default": 60},
        },
        {"cmd": {"immutable": True, "default": "echo {{ msg }}"}, "msg": {"type": "string"}},
    )
    rendered = render_parameters(schema, {"msg": "hi"})
    assert dict(rendered) == {"cmd": "echo hi", "timeout": 60, "msg": "hi"}
    assert rendered.from_defaults == {"cmd", "timeout"}
    action, runner = validate_parameters(schema, rendered)
    assert action == {"msg": "hi"}
    assert runner == {"cmd": "echo hi", "timeout": 60}


def test_render_parameters_with_context() -> None:
    kv, context = kv_context(trigger={"body": {"n": 3}})
    result = render(
        {},
        {
            "a": {"type": "string", "default": "{{ st2kv.system.foo }}"},
            "b": {"type": "integer", "default": "{{ st2kv.system.num }}"},
            "c": {"type": "string", "default": "{{ st2kv.user.foo }}/{{ config_context.region }}"},
            "d": {"type": "integer"},
            "e": {
                "type": "string",
                "secret": True,
                "default": "{{ st2kv.system.pw | decrypt_kv }}",
            },
        },
        {"d": "{{ trigger.body.n * 2 }}"},
        context,
    )
    assert result == {"a": "bar", "b": 41, "c": "mine/eu", "d": 6, "e": "plain(CIPHER)"}
    assert ("system", "foo") in kv.reads


def test_render_parameters_params_shadow_context_names() -> None:
    result = render(
        {}, {"region": {}, "x": {"default": "{{ region }}"}}, {"region": "mine"}, {"region": "ctx"}
    )
    assert result == {"region": "mine", "x": "mine"}


@pytest.mark.parametrize(
    ("action", "given", "parameter", "rule"),
    [
        ({"a": {}, "b": {}}, {"a": "{{ b }}", "b": "{{ a }}"}, "a", "depends on itself through"),
        ({"a": {}}, {"a": "{{ a }}"}, "a", "refers to itself"),
        (
            {
                "a": {"default": "{{ b }}"},
                "b": {"default": "x{{ c }}"},
                "c": {"default": "{{ a }}"},
            },
            {},
            None,
            "depends on itself through",
        ),
        ({"a": {}}, {"zzz": 1}, "zzz", "is not a parameter of this action"),
        ({"a": {"immutable": True, "default": 1}}, {"a": 1}, "a", "is immutable and cannot be set"),
        ({"a": {"type": "integer"}}, {"a": "{{ 'x' }}"}, "a", "expected integer, got 'x'"),
        ({"a": {"type": "array"}}, {"a": "{{ 'x,y' }}"}, "a", "expected array, got 'x,y'"),
        ({"a": {"type": "boolean"}}, {"a": "maybe"}, "a", "expected boolean"),
    ],
)
def test_render_parameters_parameter_errors(
    action: dict[str, Any], given: dict[str, Any], parameter: str | None, rule: str
) -> None:
    with pytest.raises(ParameterError) as info:
        render({}, action, given)
    assert rule in info.value.rule
    if parameter is not None:
        assert info.value.parameter == parameter


def test_render_parameters_cycle_message_lists_the_loop() -> None:
    with pytest.raises(ParameterError) as info:
        render(
            {},
            {"a": {}, "b": {}, "c": {}},
            {"a": "{{ b }}", "b": "{{ c }}", "c": "{{ a }} {{ x }}"},
        )
    loop = info.value.rule.removeprefix("depends on itself through ").split(" -> ")
    assert loop[0] == loop[-1] == info.value.parameter
    assert sorted(loop[:-1]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("given", "error", "problem"),
    [
        ({"a": "{{ nope }}"}, TemplateUndefinedError, "'nope' is undefined"),
        ({"a": "{{ b.foo }}", "b": "test"}, TemplateUndefinedError, "has no attribute 'foo'"),
        ({"a": "{{ action_context.lorem }}"}, TemplateUndefinedError, "has no attribute 'lorem'"),
        ({"a": "{{ b.__class__ }}", "b": "x"}, TemplateSecurityError, "__class__"),
        ({"a": ["{{ 1 // 0 }}"]}, TemplateError, "ZeroDivisionError"),
    ],
)
def test_render_parameters_template_errors(
    given: dict[str, Any], error: type[TemplateError], problem: str
) -> None:
    with pytest.raises(error) as info:
        render({}, {"a": {}, "b": {}}, given, build_context())
    assert problem in info.value.problem
    assert info.value.where.startswith("parameter 'a'")


def test_render_parameters_keeps_unparsable_text_unless_strict() -> None:
    action = {"cmd": {"type": "string"}, "x": {"type": "string", "default": "{{ cmd }}"}}
    given = {"cmd": "docker ps --format '{{.Names}}'"}
    assert render({}, action, given) == {"cmd": given["cmd"], "x": given["cmd"]}
    with pytest.raises(TemplateSyntaxError) as info:
        render({}, action, given, strict_syntax=True)
    assert info.value.where == "parameter 'cmd'"


def test_render_parameters_does_not_show_secret_templates() -> None:
    with pytest.raises(TemplateUndefinedError) as info:
        render({}, {"pw": {"type": "string", "secret": True}}, {"pw": "s3cr3t{{ nope }}"})
    assert "s3cr3t" not in info.value.message
    assert info.value.template is None


def test_render_parameters_does_not_mutate_inputs() -> None:
    action = {"o": {"type": "object", "default": {"a": "{{ n }}"}}, "n": {"type": "integer"}}
    given = {"n": 1}
    schema = merge_schemas({}, action)
    render_parameters(schema, given)
    assert schema["o"]["default"] == {"a": "{{ n }}"}
    assert given == {"n": 1}


def test_full_pipeline_for_a_shell_script_action() -> None:
    runner = {
        "timeout": {"type": "integer", "default": 60},
        "kwarg_op": {"type": "string", "default": "--"},
    }
    action = {
        "target": {"type": "string", "required": True, "position": 0},
        "count": {"type": "integer", "default": "{{ config_context.count }}"},
        "token": {
            "type": "string",
            "secret": True,
            "default": "{{ st2kv.system.pw | decrypt_kv }}",
        },
        "verbose": {"type": "boolean", "default": False},
    }
    schema = merge_schemas(runner, action)
    _, context = kv_context()
    context["config_context"] = {"count": 3}
    rendered = render_parameters(schema, {"target": "{{ config_context.count * 2 }}x"}, context)
    action_params, runner_params = validate_parameters(schema, rendered)
    assert action_params == {"target": "6x", "count": 3, "token": "plain(CIPHER)", "verbose": False}
    assert runner_params == {"timeout": 60, "kwarg_op": "--"}


def test_build_context_keeps_extra_unless_overridden() -> None:
    context = build_context(extra={"config_context": {"a": 1}, "trigger": {"t": 2}})
    assert context["config_context"] == {"a": 1}
    assert context["action_context"] == {}
    assert build_context(config={"b": 2}, extra={"config_context": {"a": 1}})["config_context"] == {
        "b": 2
    }
    assert "st2kv" not in context


def test_render_parameters_tolerates_parameters_without_metadata() -> None:
    schema: dict[str, Any] = {"bare": None, "x": {"default": "{{ bare }}!"}}
    assert dict(render_parameters(schema, {"bare": "v"})) == {"bare": "v", "x": "v!"}


def test_cli_cast_leaves_templates_for_rendering() -> None:
    schema = merge_schemas({}, {"n": {"type": "integer"}, "m": {"type": "integer"}})
    given = cast_parameters(schema, {"n": "{{ m * 2 }}", "m": "21"})
    assert given == {"n": "{{ m * 2 }}", "m": 21}
    assert dict(render_parameters(schema, given)) == {"n": 42, "m": 21}
