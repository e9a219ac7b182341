"""Tests for squall.core.orquesta.expressions: Orquesta's YAQL and Jinja expressions."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from squall.core import templating
from squall.core.orquesta import expressions
from squall.core.orquesta.expressions import (
    NO_ITEM,
    ExpressionError,
    Scope,
    check,
    evaluate,
    has_expression,
    referenced_vars,
)
from squall.core.templating import SecretValue
from squall.errors import InvalidInput


def ev(value: Any, ctx: dict[str, Any] | None = None, **scope: Any) -> Any:
    return evaluate(value, Scope(ctx=ctx or {}, **scope))


def error_of(value: Any, ctx: dict[str, Any] | None = None, **scope: Any) -> ExpressionError:
    with pytest.raises(ExpressionError) as raised:
        ev(value, ctx, **scope)
    return raised.value


TYPES: dict[str, Any] = {
    "k1": 101,
    "k2": 1.999,
    "k3": True,
    "k4": [1, 2],
    "k5": {"k": "v"},
    "k6": None,
}

CHAIN: dict[str, Any] = {
    "fum": "fee-fi-fo-fum!",
    "hungry": "i'm hungry!",
}

VMS = [
    {"name": "vmweb1", "region": "us-east", "role": "web"},
    {"name": "vmdb1", "region": "us-east", "role": "db"},
    {"name": "vmweb2", "region": "us-west", "role": "web"},
    {"name": "vmdb2", "region": "us-west", "role": "db"},
]


def yaql_and_jinja(yaql: str, jinja: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("expr", [yaql, jinja], ids=["yaql", "jinja"])


# --------------------------------------------------------------------------- both languages


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("<% ctx().foo %>", "bar"),
        ("<% ctx(foo) %>", "bar"),
        ("<% ctx('foo') %>", "bar"),
        ('<% ctx("foo") %>', "bar"),
        ("{{ ctx().foo }}", "bar"),
        ("{{ ctx('foo') }}", "bar"),
        ('{{ ctx("foo") }}', "bar"),
        ("foo<% ctx().foo %>", "foobar"),
        ("foo{{ ctx().foo }}", "foobar"),
        ("<% ctx().nested.foo %>", "bar"),
        ("<% ctx(nested).foo %>", "bar"),
        ("{{ ctx().nested.foo }}", "bar"),
        ("{{ ctx('nested').foo }}", "bar"),
        ("<% ctx(ctx().name) %>", "foobar"),
        ("<% ctx(ctx(name)) %>", "foobar"),
        ("{{ ctx(ctx().name) }}", "foobar"),
        ("<% ctx().foo %> and <% ctx().marco %>", "bar and polo"),
        ("{{ ctx().foo }} and {{ ctx().marco }}", "bar and polo"),
        ("<% ctx().n1 %> -> <% ctx().n2 %>", "101 -> 201"),
        ("{{ ctx().n1 }} -> {{ ctx().n2 }}", "101 -> 201"),
    ],
)
def test_basic_evaluation(expr: str, expected: Any) -> None:
    ctx = {
        "foo": "bar",
        "marco": "polo",
        "nested": {"foo": "bar"},
        "name": "bar_key",
        "bar_key": "foobar",
        "n1": 101,
        "n2": 201,
    }
    assert ev(expr, ctx) == expected


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
@pytest.mark.parametrize("name", list(TYPES))
def test_a_single_expression_keeps_its_type(lang: str, name: str) -> None:
    expr = f"<% ctx().{name} %>" if lang == "yaql" else f"{{{{ ctx().{name} }}}}"
    result = ev(expr, TYPES)
    assert result == TYPES[name]
    assert type(result) is type(TYPES[name])


@yaql_and_jinja("<% ctx().k6 %>", "{{ ctx().k6 }}")
def test_none_alone_is_none(expr: str) -> None:
    assert ev(expr, TYPES) is None


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("a <% ctx().k6 %> b", "a None b"),
        ("a {{ ctx().k6 }} b", "a None b"),
        ("<% ctx().k3 %>!", "True!"),
        ("{{ ctx().k3 }}!", "True!"),
        ("<% ctx().k4 %>.", "[1, 2]."),
        ("{{ ctx().k4 }}.", "[1, 2]."),
        ("<% ctx().k5 %> ", "{'k': 'v'} "),
        ("{{ ctx().k5 }} ", "{'k': 'v'} "),
        (" <% ctx().k1 %>", " 101"),
        (" {{ ctx().k1 }}", " 101"),
        ("<% ctx().k1 %><% ctx().k1 %>", "101101"),
        ("{{ ctx().k1 }}{{ ctx().k1 }}", "101101"),
    ],
)
def test_expressions_inside_text_render_as_text(expr: str, expected: str) -> None:
    assert ev(expr, TYPES) == expected


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_values_holding_expressions_are_evaluated_again(lang: str) -> None:
    def wrap(name: str) -> str:
        return f"<% ctx().{name} %>" if lang == "yaql" else f"{{{{ ctx().{name} }}}}"

    ctx = {"fee": wrap("fi"), "fi": wrap("fo"), "fo": wrap("fum"), "im": wrap("hungry"), **CHAIN}
    assert ev(wrap("fee"), ctx) == "fee-fi-fo-fum!"
    assert ev(f"{wrap('fee')} {wrap('im')}", ctx) == "fee-fi-fo-fum! i'm hungry!"


def test_evaluating_again_keeps_the_language() -> None:
    # A YAQL value holding Jinja (and the other way round) is text, as in Orquesta.
    ctx = {"j": "{{ ctx().x }}", "y": "<% ctx().x %>", "x": 1}
    assert ev("<% ctx().j %>", ctx) == "{{ ctx().x }}"
    assert ev("{{ ctx().y }}", ctx) == "<% ctx().x %>"


def test_a_nested_expression_can_yield_a_native_value() -> None:
    ctx = {"alias": "<% ctx().k4 %>", "jalias": "{{ ctx().k4 }}", **TYPES}
    assert ev("<% ctx().alias %>", ctx) == [1, 2]
    assert ev("{{ ctx().jalias }}", ctx) == [1, 2]
    assert ev("list: <% ctx().alias %>", ctx) == "list: [1, 2]"


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_a_variable_referring_to_itself_is_an_error(lang: str) -> None:
    expr = "<% ctx().me %>" if lang == "yaql" else "{{ ctx().me }}"
    err = error_of(expr, {"me": expr})
    assert "refer to itself" in err.message
    assert expr in err.message


def test_strings_without_expressions_and_other_values_pass_through() -> None:
    assert ev("plain text") == "plain text"
    assert ev("100% <sure>") == "100% <sure>"
    assert ev("{ not: jinja }") == "{ not: jinja }"
    for value in (1, 2.5, True, None):
        assert ev(value) is value


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_an_expression_spanning_lines_is_text_as_in_orquesta(lang: str) -> None:
    text = "<% ctx().a\n %>" if lang == "yaql" else "{{ ctx().a\n }}"
    assert ev(text, {"a": 1}) == text
    assert not has_expression(text)


# --------------------------------------------------------------------------- structures


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_structures_are_evaluated_recursively_keys_included(lang: str) -> None:
    def e(body: str) -> str:
        return f"<% {body} %>" if lang == "yaql" else f"{{{{ {body} }}}}"

    ctx = {"foo": "bar", "marco": "polo", "bar": "bar", "k4": [1, 2]}
    value = {
        "foo": e("ctx().bar"),
        e("ctx().marco"): "polo",
        "foobar": f"foo{e('ctx().bar')}",
        "nested": {"list": [e("ctx().foo"), [e("ctx().k4")]], e("ctx().foo"): 1},
        "items": [{"x": e("ctx().marco")}],
        "untouched": [1, None, True],
    }
    assert ev(value, ctx) == {
        "foo": "bar",
        "polo": "polo",
        "foobar": "foobar",
        "nested": {"list": ["bar", [[1, 2]]], "bar": 1},
        "items": [{"x": "polo"}],
        "untouched": [1, None, True],
    }


def test_evaluation_returns_new_structures_and_leaves_the_input_alone() -> None:
    value = {"a": ["<% ctx().x %>"]}
    ctx = {"x": [1]}
    result = ev(value, ctx)
    assert result == {"a": [[1]]}
    assert value == {"a": ["<% ctx().x %>"]}
    result["a"][0].append(2)
    assert ctx == {"x": [1]}


def test_tuples_are_evaluated_like_lists() -> None:
    assert ev(("<% 1 %>", "x"), {}) == [1, "x"]


def test_a_key_that_evaluates_to_an_unhashable_value_is_an_error() -> None:
    err = error_of({"<% ctx().k4 %>": 1}, TYPES)
    assert "<% ctx().k4 %>" in err.message
    assert "cannot be a key" in err.message


# --------------------------------------------------------------------------- YAQL


class TestYaql:
    def test_the_standard_library(self) -> None:
        ctx = {"vms": VMS, "n": [3, 1, 2], "s": "Hello"}
        assert ev("<% ctx(vms).select($.name) %>", ctx) == [v["name"] for v in VMS]
        assert ev("<% ctx().vms.where($.role = web).select($.name) %>", ctx) == [
            "vmweb1",
            "vmweb2",
        ]
        assert ev("<% ctx(vms)[0] %>", ctx) == VMS[0]
        assert ev("<% ctx().vms[-1].name %>", ctx) == "vmdb2"
        assert ev("<% len(ctx().n) %>", ctx) == 3
        assert ev("<% ctx().n.sum() %>", ctx) == 6
        assert ev("<% ctx().n.orderBy($) %>", ctx) == [1, 2, 3]
        assert ev("<% list(range(3)) %>", ctx) == [0, 1, 2]
        assert ev("<% range(2) %>", ctx) == [0, 1]
        assert ev("<% ctx().s.toUpper() %>", ctx) == "HELLO"
        assert ev("<% ctx().s + ' world' %>", ctx) == "Hello world"
        assert ev("<% dict(a => 1, b => [1, 2]) %>", ctx) == {"a": 1, "b": [1, 2]}
        assert ev("<% ctx().n.len() > 2 and true %>", ctx) is True
        assert ev("<% let(x => 2) -> $x * 3 %>", ctx) == 6
        assert ev("<% abc %>", ctx) == "abc"

    def test_list_to_dict_transform(self) -> None:
        expected = {"vms": {v["name"]: v for v in VMS}}
        for path in ("ctx(vms)", "ctx().vms"):
            expr = f"<% dict(vms=>dict({path}.select([$.name, $]))) %>"
            assert check(expr) == []
            assert ev(expr, {"vms": VMS}) == expected

    def test_dict_get_and_indexing(self) -> None:
        ctx = {"vms": {v["name"]: v for v in VMS}}
        for expr in (
            "<% ctx(vms).get(vmweb1) %>",
            "<% ctx().vms.get(vmweb1) %>",
            "<% ctx(vms)[vmweb1] %>",
            "<% ctx().vms['vmweb1'] %>",
        ):
            assert ev(expr, ctx) == VMS[0]
        assert ev("<% ctx().vms.get(nope) %>", ctx) is None
        assert ev("<% ctx().get(nope, 5) %>", ctx) == 5

    @pytest.mark.parametrize(
        ("expr", "values", "expected"),
        [
            ("<% ctx(val).distinct() %>", [1, 2, 3, 1], [1, 2, 3]),
            ("<% ctx(val).distinct() %>", [{"a": 1}, {"b": 2}, {"a": 1}], [{"a": 1}, {"b": 2}]),
            (
                "<% ctx(val).distinct($[1]) %>",
                [["a", 1], ["b", 2], ["c", 1], ["a", 3]],
                [["a", 1], ["b", 2], ["a", 3]],
            ),
        ],
    )
    def test_distinct_works_on_unhashable_data(
        self, expr: str, values: list[Any], expected: list[Any]
    ) -> None:
        assert ev(expr, {"val": values}) == expected

    def test_results_are_plain_python(self) -> None:
        result = ev("<% dict(a => [1, dict(b => 2)], s => set(1, 2)) %>")
        assert result == {"a": [1, {"b": 2}], "s": [1, 2]}
        assert type(result) is dict
        assert type(result["a"]) is list
        assert type(result["a"][1]) is dict
        assert type(result["s"]) is list
        assert ev("<% ctx().t %>", {"t": (1, (2, 3))}) == [1, [2, 3]]
        assert ev("<% ctx().t.select($) %>", {"t": (1, 2)}) == [1, 2]

    def test_ctx_without_a_name_hides_internal_variables(self) -> None:
        ctx = {"a": 1, "__state": {"x": 1}}
        assert ev("<% ctx() %>", ctx) == {"a": 1}
        assert ev("<% ctx().keys() %>", ctx) == ["a"]
        assert ev("<% len(ctx()) %>", ctx) == 1
        assert ev("<% ctx().a %>", ctx) == 1
        err = error_of("<% ctx('__state') %>", ctx)
        assert "internal use" in err.message
        err = error_of("<% ctx()['__state'] %>", ctx)
        assert "Unable to resolve key '__state'" in err.message

    def test_ctx_with_an_empty_name_is_every_variable(self) -> None:
        assert ev("<% ctx('') %>", {"a": 1}) == {"a": 1}

    def test_ctx_of_the_whole_context_is_hashable(self) -> None:
        assert ev("<% [ctx(), ctx()].distinct().len() %>", {"a": [1]}) == 1

    def test_zip(self) -> None:
        ctx = {"a": [1, 2, 3], "b": ["x", "y"]}
        assert ev("<% zip(ctx().a, ctx().b) %>", ctx) == [[1, "x"], [2, "y"], [3, None]]
        assert ev("<% zip(ctx().a, ctx().b, pad => 0) %>", ctx) == [[1, "x"], [2, "y"], [3, 0]]
        assert ev("<% zip(ctx().a) %>", ctx) == [1, 2, 3]
        assert ev("<% zip(null) %>", ctx) == []
        assert ev("<% zip() %>", ctx) == []
        assert ev("<% zip([1], [2], [3]) %>", ctx) == [[1, 2, 3]]
        # yaql's own method form still works.
        assert ev("<% [1, 2].zip([3, 4]) %>", ctx) == [[1, 3], [2, 4]]

    def test_json_and_yaml(self) -> None:
        assert ev("""<% json('{"a": 123}') %>""") == {"a": 123}
        assert ev("<% json(ctx().d) %>", {"d": {"a": 1}}) == {"a": 1}
        assert ev("<% json(ctx().s) %>", {"s": "[5, 3]"}) == [5, 3]
        assert ev("<% yaml(ctx().s) %>", {"s": "a: [1, 2]\n"}) == {"a": [1, 2]}
        err = error_of("<% json(int(123)) %>")
        assert err.message.startswith("Unable to evaluate expression '<% json(int(123)) %>'.")
        assert "TypeError" in err.message

    def test_an_unknown_function_is_an_error(self) -> None:
        err = error_of("<% nope(1) %>")
        assert "<% nope(1) %>" in err.message
        assert "nope" in err.message

    def test_yaql_variables_are_not_the_context(self) -> None:
        # Orquesta sets no $ data: workflow variables are only reachable with ctx().
        assert ev("<% $ %>", {"a": 1}) is None


# --------------------------------------------------------------------------- Jinja


class TestJinja:
    def test_blocks(self) -> None:
        ctx = {"x": ["a", "b", "c"], "y": ["d", "e", "f"], "z": "->"}
        assert ev("{% for i in ctx().x %}{{ i }}{% endfor %}", ctx) == "abc"
        assert ev("{% for i in ctx().x %}{{ i }}{{ ctx().z }}{% endfor %}", ctx) == "a->b->c->"
        two_loops = (
            "{% for i in ctx().x %}{{ i }}{% endfor %}{% for i in ctx().y %}{{ i }}{% endfor %}"
        )
        assert ev(two_loops, ctx) == "abcdef"
        assert ev("{% if ctx().x %}yes{% else %}no{% endif %}", ctx) == "yes"
        assert ev("{% set n = ctx().x | length %}{{ n }}", ctx) == "3"

    def test_block_output_is_expanded_again(self) -> None:
        ctx = {
            "x": [
                "{{ ctx().a }}",
                "{{ ctx().b }}",
                "{{ ctx().c }}{% for j in ctx().y %}{{ j }}{% endfor %}",
            ],
            "a": "a",
            "b": "b",
            "c": "c",
            "y": ["d", "e", "f"],
        }
        assert ev("{% for i in ctx().x %}{{ i }}{% endfor %}", ctx) == "abcdef"

    def test_blocks_mixed_with_inline_expressions(self) -> None:
        ctx = {"x": ["b", "c"], "a": "a", "d": "d"}
        expr = "{{ ctx().a }}{% for i in ctx().x %}{{ i }}{% endfor %}{{ ctx().d }}"
        assert ev(expr, ctx) == "abcd"

    def test_raw_blocks_are_kept_literally(self) -> None:
        ctx = {"foo": "bar", "x": ["b", "c"], "a": "a", "d": "d"}
        assert ev("{% raw %}{{ ctx().foo }}{% endraw %}", ctx) == "{{ ctx().foo }}"
        assert (
            ev(
                "{% raw %}{{ ctx().foo }}{% endraw %} and "
                "{% raw %}{{ ctx().bar }}{% endraw %} and "
                "{% raw %}foobar{% endraw %}",
                ctx,
            )
            == "{{ ctx().foo }} and {{ ctx().bar }} and foobar"
        )
        expr = (
            "{{ ctx().a }}{% for i in ctx().x %}{{ i }}{% endfor %}{{ ctx().d }} and "
            "{% raw %}{{ 1234 }}{% endraw %}"
        )
        assert ev(expr, ctx) == "abcd and {{ 1234 }}"
        assert ev("{{ ctx().foo }} {% raw %}{% if %}{% endraw %}", ctx) == "bar {% if %}"

    def test_builtin_and_st2_filters(self) -> None:
        ctx = {"names": ["b", "a"], "d": {"foo": {"bar": "foobar"}}, "s": '{"a": 1}'}
        assert ev("{{ ctx().names | sort | join(',') }}", ctx) == "a,b"
        assert ev("{{ ctx().names | map('upper') }}", ctx) == ["B", "A"]
        assert ev("{{ ctx().d | to_json_string }}", ctx) == '{"foo": {"bar": "foobar"}}'
        assert ev("{{ ctx().s | from_json_string }}", ctx) == {"a": 1}
        assert ev("{{ ctx().s | json }}", ctx) == {"a": 1}
        pipe = (
            "{{ ctx('s') | from_json_string() | to_yaml_string() "
            "| from_yaml_string() | to_json_string() }}"
        )
        assert ev(pipe, ctx) == '{"a": 1}'

    def test_the_functions_are_globals_too(self) -> None:
        assert ev("""{{ json('{"a": 123}') }}""") == {"a": 123}
        assert ev("{{ zip([1, 2], ['a']) }}") == [[1, "a"], [2, None]]
        assert ev("{{ zip([1], [2], pad=0) }}") == [[1, 2]]
        err = error_of("{{ json(123) }}")
        assert "TypeError" in err.message
        assert "{{ json(123) }}" in err.message

    def test_results_are_plain_python(self) -> None:
        assert ev("{{ (1, 2) }}") == [1, 2]
        assert ev("{{ range(3) }}") == [0, 1, 2]
        assert ev("{{ ctx().d.keys() }}", {"d": {"a": 1}}) == ["a"]
        assert ev("{{ ctx().d.values() | list }}", {"d": {"a": (1,)}}) == [[1]]
        result = ev("{{ ctx() }}", {"a": 1, "__internal": 2})
        assert result == {"a": 1}
        assert type(result) is dict

    def test_a_template_cannot_change_the_variables(self) -> None:
        ctx: dict[str, Any] = {"a": 1}
        ev("{% set _ = ctx().update({'a': 2, 'b': 3}) %}", ctx)
        assert ctx == {"a": 1}

    def test_templates_are_sandboxed(self) -> None:
        err = error_of("{{ ctx().__class__ }}")
        assert "SecurityError" in err.message
        err = error_of("{{ 'x' * 10000000 }}")
        assert "SecurityError" in err.message

    def test_undefined_names_are_errors(self) -> None:
        err = error_of("{{ nope }}")
        assert err.message == (
            "Unable to evaluate expression '{{ nope }}'. UndefinedError: 'nope' is undefined"
        )
        err = error_of("{{ ctx().d.nope }}", {"d": {}})
        assert "UndefinedError" in err.message
        assert "nope" in err.message

    def test_defined_tests_and_defaults_still_work(self) -> None:
        assert ev("{{ ctx().nope is defined }}") is False
        assert ev("{{ ctx().nope | default('d') }}") == "d"

    def test_a_dict_method_name_reads_like_in_orquesta(self) -> None:
        # ctx() is a dict, so its methods win over variables of the same name.
        assert ev("{{ ctx().values is callable }}", {"values": 1}) is True
        assert ev("{{ ctx('values') }}", {"values": 1}) == 1


# --------------------------------------------------------------------------- workflow functions


@yaql_and_jinja("<% result() %>", "{{ result() }}")
def test_result(expr: str) -> None:
    current = {"id": "t1", "route": 0, "result": {"stdout": "hi"}, "status": "succeeded"}
    assert ev(expr, current=current) == {"stdout": "hi"}
    assert ev("<% result().stdout %>", current=current) == "hi"
    assert ev("{{ result().stdout }}", current=current) == "hi"


@yaql_and_jinja("<% result() %>", "{{ result() }}")
def test_result_without_a_current_task_is_an_error(expr: str) -> None:
    err = error_of(expr)
    assert expr in err.message
    assert "current task" in err.message


@pytest.mark.parametrize(
    ("status", "succeeded", "failed", "completed"),
    [
        ("succeeded", True, False, True),
        ("failed", False, True, True),
        ("expired", False, False, True),
        ("timeout", False, False, True),
        ("abandoned", False, False, True),
        ("canceled", False, False, True),
        ("running", False, False, False),
        ("pending", False, False, False),
    ],
)
def test_status_functions(status: str, succeeded: bool, failed: bool, completed: bool) -> None:
    current = {"id": "t1", "route": 0, "result": None, "status": status}
    for name, expected in (("succeeded", succeeded), ("failed", failed), ("completed", completed)):
        assert ev(f"<% {name}() %>", current=current) is expected
        assert ev(f"{{{{ {name}() }}}}", current=current) is expected
    assert ev("<% succeeded() and not failed() %>", current=current) is succeeded


def test_status_functions_need_a_current_task() -> None:
    for expr in ("<% succeeded() %>", "{{ failed() }}", "<% completed() %>"):
        assert "current task" in error_of(expr).message


def test_task_status() -> None:
    statuses = {"t1": "succeeded", "t2": "failed"}

    def lookup(name: str) -> str:
        return statuses.get(name, "unset")

    assert ev("<% task_status(t1) %>", task_status=lookup) == "succeeded"
    assert ev("<% task_status('t2') %>", task_status=lookup) == "failed"
    assert ev("{{ task_status('t2') }}", task_status=lookup) == "failed"
    assert ev("{{ task_status('t3') }}", task_status=lookup) == "unset"
    assert ev("<% task_status(t1) = succeeded %>", task_status=lookup) is True
    assert ev("<% task_status(t1) %>") == "unset"  # nothing ran yet
    assert "task name" in error_of("{{ task_status(1) }}", task_status=lookup).message


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_item(lang: str) -> None:
    def e(body: str) -> str:
        return f"<% {body} %>" if lang == "yaql" else f"{{{{ {body} }}}}"

    assert ev(e("item()"), item="foobar") == "foobar"
    assert ev(e("item()"), item=None) is None
    assert ev(e("item()"), item={"foo": "bar"}) == {"foo": "bar"}
    assert ev(e("item('foo')"), item={"foo": "bar"}) == "bar"
    assert ev(e("item()['foo']"), item={"foo": "bar"}) == "bar"
    assert ev(e("item('x')") + "-" + e("item('y')"), item={"x": 1, "y": 2}) == "1-2"
    assert "to be a dict" in error_of(e("item('foo')"), item="foobar").message
    assert 'does not have key "baz"' in error_of(e("item('baz')"), item={"foo": "bar"}).message
    assert "with items" in error_of(e("item()")).message
    assert "with items" in error_of(e("item()"), item=NO_ITEM).message


def test_item_by_bare_name_in_yaql() -> None:
    assert ev("<% item(x) %>", item={"x": [1]}) == [1]


@yaql_and_jinja("<% ctx().nope %>", "{{ ctx().nope }}")
def test_an_undefined_variable_is_an_error(expr: str) -> None:
    err = error_of(expr, {"a": 1})
    assert err.message == f"Unable to resolve key 'nope' in expression '{expr}' from context."
    assert err.expression == expr
    assert isinstance(err, InvalidInput)
    assert err.to_dict() == {"faultstring": err.message, "expression": expr}


@pytest.mark.parametrize(
    "expr", ["<% ctx(nope) %>", "<% ctx('nope') %>", "{{ ctx('nope') }}", '{{ ctx("nope") }}']
)
def test_an_undefined_variable_by_name_is_an_error(expr: str) -> None:
    err = error_of(expr, {"a": 1})
    assert err.message == f"Unable to resolve key 'nope' in expression '{expr}' from context."


def test_an_undefined_key_deeper_in_yaql_reads_the_same() -> None:
    err = error_of("<% ctx().a.b %>", {"a": {}})
    assert err.message == "Unable to resolve key 'b' in expression '<% ctx().a.b %>' from context."


def test_an_undefined_variable_in_a_block_names_the_template() -> None:
    expr = "{% for i in ctx().x %}{{ ctx().y }}{% endfor %}"
    err = error_of(expr, {"x": ["a"]})
    assert err.message == f"Unable to resolve key 'y' in expression '{expr}' from context."


def test_an_undefined_variable_deep_in_a_chain_is_an_error() -> None:
    ctx = {"fee": "{{ ctx().fi }}", "fi": "{{ ctx().fo }}", "fo": "{{ ctx().fum }}"}
    err = error_of("{{ ctx().fee }}", ctx)
    assert err.expression == "{{ ctx().fum }}"


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("<% 1 / 0 %>", "ZeroDivisionError"),
        ("<% int(abc) %>", "ValueError"),
        ("<% 1 + 'a' %>", "NoMatchingFunctionException"),
        ("<% 1 +/ 2 %>", "Parse error"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ 1 +/ 2 }}", "TemplateSyntaxError"),
        ("x {{ 1 + 'a' }}", "TypeError"),
        ("{{ regex_substring('abc', 'z') }}", "regex_substring"),
    ],
)
def test_errors_name_the_expression_and_the_problem(expr: str, problem: str) -> None:
    err = error_of(expr)
    inner = expr[expr.index("<%") if "<%" in expr else expr.index("{{") :]
    assert f"Unable to evaluate expression '{inner}'." in err.message
    assert problem in err.message


def test_the_failing_expression_is_named_in_text() -> None:
    err = error_of("<% ctx().a %> and <% ctx().b %>", {"a": 1})
    assert err.expression == "<% ctx().b %>"


# --------------------------------------------------------------------------- st2 functions


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_st2_data_functions(lang: str) -> None:
    def e(body: str) -> str:
        return f"<% {body} %>" if lang == "yaql" else f"{{{{ {body} }}}}"

    obj = {"foo": {"bar": "foobar"}}
    text = '{"foo": {"bar": "foobar"}}'
    ctx = {
        "data_json_str_1": text,
        "data_json_obj_1": obj,
        "data_yaml_str_1": "foo:\n  bar: foobar\n",
        "none": None,
        "path": "/path/to/some/file.txt",
    }
    assert ev(e('from_json_string(ctx("data_json_str_1"))'), ctx) == obj
    assert ev(e('json_parse(ctx("data_json_str_1"))'), ctx) == obj
    assert ev(e('to_yaml_string(ctx("data_json_obj_1"))'), ctx) == "foo:\n  bar: foobar\n"
    assert ev(e('yaml_dump(ctx("data_json_obj_1"))'), ctx) == "foo:\n  bar: foobar\n"
    assert ev(e('from_yaml_string(ctx("data_yaml_str_1"))'), ctx) == obj
    assert ev(e('yaml_parse(ctx("data_yaml_str_1"))'), ctx) == obj
    assert ev(e('to_json_string(ctx("data_json_obj_1"))'), ctx) == text
    assert ev(e('json_dump(ctx("data_json_obj_1"))'), ctx) == text
    assert ev(e('jsonpath_query(ctx("data_json_obj_1"), "$.foo.bar")'), ctx) == ["foobar"]
    assert ev(e('use_none(ctx("none"))'), ctx) == templating.filters["use_none"](None)
    assert ev(e('use_none("foobar")'), ctx) == "foobar"
    assert ev(e("basename(ctx().path)"), ctx) == "file.txt"
    assert ev(e("dirname(ctx().path)"), ctx) == "/path/to/some"
    assert ev(e("to_human_time_from_seconds(3725)"), ctx) == "1h2m5s"
    assert ev(e("json_escape('a\"b')"), ctx) == 'a\\"b'


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_st2_regex_and_version_functions(lang: str) -> None:
    def e(body: str) -> str:
        return f"<% {body} %>" if lang == "yaql" else f"{{{{ {body} }}}}"

    assert ev(e('regex_match("xyz", "x")')) is True
    assert ev(e('regex_replace("xyz", "x", "wx")')) == "wxyz"
    assert ev(e('regex_search("xyz", "y")')) is True
    substring = e(r'regex_substring("I live at 668 Infinite Dr", "([0-9]{3} \w+ (?:Ave|St|Dr))")')
    assert ev(substring) == "668 Infinite Dr"
    assert ev(e('version_compare("0.10.0", "0.10.0")')) == 0
    assert ev(e('version_compare("0.10.0", "0.10.1")')) == -1
    assert ev(e('version_more_than("0.9.0", "0.10.0")')) is False
    assert ev(e('version_less_than("0.10.0", "0.9.0")')) is False
    assert ev(e('version_equal("0.10.0", "0.10.0")')) is True
    assert ev(e('version_match("0.10.1", ">0.10.0")')) is True
    assert ev(e('version_bump_major("0.10.0")')) == "1.0.0"
    assert ev(e('version_bump_minor("0.10.0")')) == "0.11.0"
    assert ev(e('version_bump_patch("0.10.0")')) == "0.10.1"
    assert ev(e('version_strip_patch("0.10.0")')) == "0.10"


def test_decrypt_kv_is_not_offered() -> None:
    # st2's Orquesta decrypts with st2kv(key, decrypt=true) instead.
    assert "decrypt_kv" in error_of("{{ 'x' | decrypt_kv }}").message


class FakeKV:
    """An in-memory datastore (a KeyValueLookup) that records its reads."""

    def __init__(self, values: dict[tuple[str, str], Any]) -> None:
        self.values = values
        self.reads: list[tuple[str, str]] = []

    def get(self, scope: str, name: str) -> Any:
        self.reads.append((scope, name))
        if name == "broken":
            raise RuntimeError("store down")
        return self.values.get((scope, name))

    def decrypt(self, value: str) -> str:
        if not value.startswith("enc:"):
            raise ValueError("bad ciphertext")
        return value[len("enc:") :]


def make_kv() -> FakeKV:
    return FakeKV(
        {
            ("system", "foo"): "bar",
            ("system", "a.b"): "dotted",
            ("system", "empty"): "",
            ("system", "secret"): SecretValue("enc:s3cr3t"),
            ("system", "garbled"): SecretValue("garbage"),
            ("user", "mine"): "own",
            ("user", "token"): SecretValue("enc:t0k3n"),
        }
    )


class TestSt2kv:
    @pytest.mark.parametrize(
        ("expr", "expected", "read"),
        [
            ("<% st2kv('system.foo') %>", "bar", ("system", "foo")),
            ("{{ st2kv('system.foo') }}", "bar", ("system", "foo")),
            ("<% st2kv('system.a.b') %>", "dotted", ("system", "a.b")),
            ("<% st2kv('system.empty') %>", "", ("system", "empty")),
            ("<% st2kv('mine') %>", "own", ("user", "mine")),
            ("<% st2kv('user.mine') %>", "own", ("user", "mine")),
            ("{{ st2kv('user.mine') }}", "own", ("user", "mine")),
        ],
    )
    def test_reads_system_and_user_keys(
        self, expr: str, expected: str, read: tuple[str, str]
    ) -> None:
        kv = make_kv()
        assert ev(expr, kv=kv) == expected
        assert kv.reads == [read]

    def test_secrets_stay_encrypted_unless_decrypted(self) -> None:
        kv = make_kv()
        assert ev("<% st2kv('system.secret') %>", kv=kv) == "enc:s3cr3t"
        assert ev("<% st2kv('system.secret', decrypt => false) %>", kv=kv) == "enc:s3cr3t"
        assert ev("<% st2kv('system.secret', decrypt => true) %>", kv=kv) == "s3cr3t"
        assert ev("{{ st2kv('system.secret', decrypt=true) }}", kv=kv) == "s3cr3t"
        assert ev("{{ st2kv('token', decrypt=true) }}", kv=kv) == "t0k3n"
        # A value stored in clear reads the same with or without decrypt.
        assert ev("<% st2kv('system.foo', decrypt => true) %>", kv=kv) == "bar"

    def test_defaults(self) -> None:
        kv = make_kv()
        assert ev("<% st2kv('system.nope', default => 'x') %>", kv=kv) == "x"
        assert ev("<% st2kv('system.nope', default => null) %>", kv=kv) is None
        assert ev("{{ st2kv('system.nope', default='') }}", kv=kv) == ""
        assert ev("{{ st2kv('system.foo', default='x') }}", kv=kv) == "bar"

    @pytest.mark.parametrize(
        ("expr", "problem"),
        [
            ("<% st2kv('system.nope') %>", 'The key "system.nope" does not exist'),
            ("{{ st2kv('nope') }}", 'The key "nope" does not exist'),
            ("<% st2kv(123) %>", "as a string"),
            ("{{ st2kv('system.foo', decrypt='yes') }}", "decrypt must be true or false"),
            ("<% st2kv('system.') %>", "key name is missing"),
            ("<% st2kv('system.broken') %>", "store down"),
            ("<% st2kv('system.garbled', decrypt => true) %>", "could not be decrypted"),
            ("<% st2kv('system.foo', decrypt => 1) %>", "decrypt must be true or false"),
            ("<% st2kv('system.foo', decrypted => true) %>", "not decrypted"),
        ],
    )
    def test_errors(self, expr: str, problem: str) -> None:
        err = error_of(expr, kv=make_kv())
        assert problem in err.message
        assert expr in err.message

    def test_without_a_datastore(self) -> None:
        assert "datastore is not available" in error_of("<% st2kv('system.foo') %>").message

    def test_a_value_holding_an_expression_is_evaluated_like_any_string(self) -> None:
        kv = FakeKV({("system", "expr"): "<% ctx().a %>"})
        assert ev("<% st2kv('system.expr') %>", {"a": 5}, kv=kv) == 5


# --------------------------------------------------------------------------- mixed languages


def test_yaql_wins_when_a_string_mixes_languages() -> None:
    assert ev("<% ctx().a %> and {{ ctx().a }}", {"a": 1}) == "1 and {{ ctx().a }}"


# --------------------------------------------------------------------------- has_expression


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<% ctx().foo %> and {{ ctx().foo }}", True),
        ("foo <% ctx().foo %> bar", True),
        ("foo {{ ctx().foo }} bar", True),
        ("{% if true %}x{% endif %}", True),
        ("{% raw %}x{% endraw %}", True),
        ("foobar", False),
        ("", False),
        ({"a": ["<% 1 %>"]}, True),
        ({"<% 1 %>": "x"}, True),
        ({"a": ["b", {"c": 1}]}, False),
        (1, False),
        (None, False),
    ],
)
def test_has_expression(value: Any, expected: bool) -> None:
    assert has_expression(value) is expected


# --------------------------------------------------------------------------- check


class TestCheck:
    @pytest.mark.parametrize(
        "expr",
        [
            "<% 1 %>",
            "<% abc %>",
            "<% 1 + 2 %>",
            "<% ctx().foo %>",
            "<% ctx(foo) %>",
            "<% ctx().a1 + ctx(a2) %>",
            "{{ 1 }}",
            "{{ abc }}",
            "{{ 1 + 2 }}",
            "{{ ctx().foo }}",
            '{{ ctx("foo") }}',
            '{{ ctx().a1 + ctx("a2") }}',
            "{% for i in ctx().x %}{{ i }}{% endfor %}",
            "{% raw %}{{ 1 +/ 2 }}{% endraw %}",
            "no expression at all",
        ],
    )
    def test_valid_expressions(self, expr: str) -> None:
        assert check(expr) == []

    def test_yaql_parse_error(self) -> None:
        problems = check("<% <% ctx().foo %> %>")
        assert len(problems) == 1
        assert "Parse error" in problems[0]
        assert "<% <% ctx().foo %>" in problems[0]

    def test_yaql_lexical_error(self) -> None:
        problems = check('<% {"a": 123} %>')
        assert len(problems) == 1
        assert "Lexical error" in problems[0]

    def test_several_yaql_errors(self) -> None:
        problems = check('<% 1 +/ 2 %> and <% {"a": 123} %>')
        assert len(problems) == 2
        assert "Parse error" in problems[0]
        assert "<% 1 +/ 2 %>" in problems[0]
        assert "Lexical error" in problems[1]
        assert '<% {"a": 123} %>' in problems[1]

    def test_jinja_parse_errors(self) -> None:
        problems = check("{{ {{ ctx().foo }} }}")
        assert len(problems) == 2
        assert "expected token ':', got '}'" in problems[0]
        assert "unexpected end of template" in problems[1]

    def test_several_jinja_errors(self) -> None:
        problems = check("{{ 1 +/ 2 }} and {{ * }}")
        assert len(problems) == 3
        assert all("unexpected" in p for p in problems)
        assert "{{ 1 +/ 2 }}" in problems[1]
        assert "{{ * }}" in problems[2]

    def test_jinja_block_errors(self) -> None:
        problems = check("{% for i in ctx().x %}{{ i }}{% foobar %}")
        assert len(problems) == 1
        assert "unknown tag" in problems[0]
        problems = check("{% for i in ctx().x %}{{ i }}{{ foobar %}")
        assert len(problems) == 1
        assert "unexpected '}'" in problems[0]

    def test_mixed_languages(self) -> None:
        text = "<% ctx().foo %> and {{ ctx().foo }}"
        problems = check(text)
        assert len(problems) == 1
        assert text in problems[0]
        assert "YAQL and Jinja" in problems[0]

    def test_structures_keys_included(self) -> None:
        problems = check({"<% ( %>": ["ok", {"x": "{{ ) }}"}], "n": 1})
        assert len(problems) == 2
        assert "<% ( %>" in problems[0]
        assert "{{ ) }}" in problems[1]
        assert check([1, None, {"a": True}]) == []


# --------------------------------------------------------------------------- referenced_vars


class TestReferencedVars:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("<% just_text and $not_a_var and notctx().bar %>", set()),
            ("{{ just_text and notctx(foo) and notctx('bar') }}", set()),
            ("<% ctx().foobar  %>", {"foobar"}),
            ("<% ctx().foo.bar %>", {"foo"}),
            ("<% ctx().foo[0] %>", {"foo"}),
            ("<% ctx().foo.get(bar) %>", {"foo"}),
            (
                "<%ctx().fubar ctx().foobar ctx().foo.get(bar) ctx().fu.bar ctx().foobaz.bar[0] %>",
                {"fubar", "foobar", "foo", "fu", "foobaz"},
            ),
            ("<% Why the ctx().foobar are you so ctx().fu.bar serious? %>", {"foobar", "fu"}),
            ("<% ctx(foobar) %>", {"foobar"}),
            ("<% ctx('foobar') %>", {"foobar"}),
            ('<% ctx("foobar") %>', {"foobar"}),
            ("<% ctx(foo).bar %>", {"foo"}),
            ("<% ctx(ctx(foobar)) %>", {"foobar"}),
            ("<% ctx(ctx('foobar')) %>", {"foobar"}),
            ("<% ctx()['foo'] %>", {"foo"}),
            ('<% ctx()["foo"] %>', {"foo"}),
            ("{{ ctx().foo }}", {"foo"}),
            ("{{ ctx('foo') }}", {"foo"}),
            ('{{ ctx("foo") }}', {"foo"}),
            ("{{ ctx()['my var'] }}", {"my var"}),
            ("{{ ctx(foo).get(bar) }}", {"foo"}),
            ("{% for x in ctx().items_ %}{{ x }}{% endfor %}", {"items_"}),
            ("{% raw %}{{ ctx().hidden }}{% endraw %}{{ ctx().shown }}", {"shown"}),
            ("<% ctx().keys() %>", set()),
            ("<% ctx().a-1 %>", {"a"}),
            ("ctx().not_in_an_expression", set()),
            ("text <% ctx().a %> text {{ ctx().b }}", {"a", "b"}),
            ({"<% ctx(k) %>": ["{{ ctx().v }}", 1]}, {"k", "v"}),
            (None, set()),
        ],
    )
    def test_forms(self, value: Any, expected: set[str]) -> None:
        assert referenced_vars(value) == expected


# --------------------------------------------------------------------------- shortcuts and caches


# Plain data paths are read without yaql; these must give what yaql gives.
SHORTCUT_CASES = [
    "<% ctx().a %>",
    "<% ctx().a.b %>",
    "<% ctx(a).b %>",
    "<% ctx('a')['b'] %>",
    "<% ctx().l[0] %>",
    "<% ctx().l[1].x %>",
    "<% ctx().l %>",
    "<% ctx().t %>",
    "<% ctx().s %>",
    "<% ctx().n %>",
    "<% ctx().e %>",
    "<% ctx() %>",
    "<% (ctx().a) %>",
    "<% result() %>",
    "<% result().out[0] %>",
    "<% item() %>",
    "<% item(k) %>",
    "<% item('k') %>",
    "<% 1 %>",
    "<% 'text' %>",
    "<% null %>",
    "<% true %>",
    "<% word %>",
]
SHORTCUT_ERRORS = [
    "<% ctx().nope %>",
    "<% ctx().a.nope %>",
    "<% ctx(nope) %>",
    "<% ctx('__hidden') %>",
    "<% ctx()['__hidden'] %>",
    "<% ctx().l[5] %>",
    "<% ctx().l['x'] %>",
    "<% ctx().s.x %>",
    "<% ctx().s[0] %>",
    "<% ctx().n.x %>",
    "<% item(nope) %>",
]
SHORTCUT_SCOPE: dict[str, Any] = {
    "ctx": {
        "a": {"b": [1, {"c": 2}]},
        "l": [{"x": 1}, {"x": 2}],
        "t": (1, (2, {3, 4})),
        "s": "str",
        "n": None,
        "e": {},
        "__hidden": 1,
    },
    "current": {"id": "t", "route": 0, "result": {"out": ["x"]}, "status": "succeeded"},
    "item": {"k": {"v": [1]}},
}


def _outcome(expr: str) -> Any:
    try:
        return ("ok", evaluate(expr, Scope(**SHORTCUT_SCOPE)))
    except ExpressionError as exc:
        return ("error", exc.message)


@pytest.mark.parametrize("expr", SHORTCUT_CASES + SHORTCUT_ERRORS)
def test_shortcuts_give_what_yaql_gives(expr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _outcome(expr)
    monkeypatch.setattr(
        expressions._Run, "_yaql_shortcut", lambda self, shortcut: expressions._NOT_DONE
    )
    slow = _outcome(expr)
    assert fast == slow
    assert fast[0] == ("error" if expr in SHORTCUT_ERRORS else "ok")


def test_a_cached_yaql_expression_is_fast() -> None:
    scope = Scope(ctx={"x": 1, **{f"v{i}": {"n": i} for i in range(100)}})
    evaluate("<% ctx().x %>", scope)
    start = time.perf_counter()
    for _ in range(10_000):
        evaluate("<% ctx().x %>", scope)
    assert time.perf_counter() - start < 1.0


def test_evaluation_does_not_copy_the_context() -> None:
    # Reading one variable must not touch the others.
    class Untouchable:
        def __iter__(self) -> Any:
            raise AssertionError("the whole context was copied")

    ctx = {"x": 1, "big": Untouchable()}
    assert ev("<% ctx().x + 1 %>", ctx) == 2
    assert ev("<% ctx(x) * 2 %>", ctx) == 2


def test_parsing_is_safe_from_several_threads() -> None:
    results: dict[int, Any] = {}

    def work(n: int) -> None:
        results[n] = [ev(f"<% {n} + {i} * 2 %>") for i in range(20)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: [n + i * 2 for i in range(20)] for n in range(8)}


def test_templating_offers_fresh_environments() -> None:
    first = templating.make_environment()
    second = templating.make_environment()
    assert first is not second
    assert "to_json_string" in first.filters
    first.globals["only_here"] = 1
    assert "only_here" not in second.globals
