"""Loading, checking and graphing Orquesta workflow definitions."""

from __future__ import annotations

import textwrap

import pytest

from squall.core.orquesta import spec as orquesta_spec
from squall.core.orquesta.spec import Problem, WorkflowInvalid, inspect, load
from squall.errors import InvalidInput


def _load(text: str) -> orquesta_spec.WorkflowSpec:
    return load(textwrap.dedent(text), source="test.yaml")


def _paths(text: str) -> dict[str, str]:
    return {p.path: p.message for p in inspect(_load(text))}


# --------------------------------------------------------------------------- the model


def test_inline_action_parameters_become_the_input() -> None:
    wf = _load(
        """
        version: 1.0
        tasks:
          t1:
            action: core.echo message=<% ctx().name %> count=3 flag=true quoted="a b" none=null
            input:
              ignored: yes
        """
    )
    task = wf.tasks["t1"]
    assert task.action == "core.echo"
    assert task.input == {
        "message": "<% ctx().name %>",
        "count": 3,
        "flag": True,
        "quoted": "a b",
        "none": None,
    }


def test_inputs_vars_and_outputs_keep_their_order_and_defaults() -> None:
    wf = _load(
        """
        version: 1.0
        input:
          - name
          - greeting: hello
        vars:
          - a: 1
          - b: <% ctx(a) %>
        output:
          - out: <% ctx(b) %>
        tasks:
          t1:
            action: core.noop
        """
    )
    assert wf.input == (("name", None), ("greeting", "hello"))
    assert wf.vars == (("a", 1), ("b", "<% ctx(a) %>"))
    assert wf.output == (("out", "<% ctx(b) %>"),)


def test_transitions_publish_and_do_forms() -> None:
    wf = _load(
        """
        version: 1.0
        tasks:
          t1:
            action: core.noop
            next:
              - when: <% succeeded() %>
                publish: greeting=<% result() %> other="x y"
                do: t2, t3
              - publish:
                  - a: 1
                  - b: <% ctx(a) %>
                do:
                  - t3
              - when: <% failed() %>
          t2:
            action: core.noop
          t3:
            action: core.noop
        """
    )
    first, second, third = wf.tasks["t1"].next
    assert first.when == "<% succeeded() %>"
    assert first.publish == (("greeting", "<% result() %>"), ("other", "x y"))
    assert first.do == ("t2", "t3")
    assert second.publish == (("a", 1), ("b", "<% ctx(a) %>"))
    assert second.do == ("t3",)
    assert third.do == ("continue",)  # no ``do``: continue


@pytest.mark.parametrize(
    ("text", "expression", "names"),
    [
        ("<% ctx(xs) %>", "<% ctx(xs) %>", None),
        ("x in <% ctx(xs) %>", "<% ctx(xs) %>", ("x",)),
        ("x, y in <% zip(ctx(xs), ctx(ys)) %>", "<% zip(ctx(xs), ctx(ys)) %>", ("x", "y")),
        ("  i in {{ ctx('xs') }} ", "{{ ctx('xs') }}", ("i",)),
    ],
)
def test_with_items_forms(text: str, expression: str, names: tuple[str, ...] | None) -> None:
    wf = load({"tasks": {"t": {"action": "core.echo", "with": text}}})
    items = wf.tasks["t"].items
    assert items is not None
    assert (items.expression, items.names, items.concurrency) == (expression, names, None)


def test_with_items_mapping_with_concurrency_and_retry_and_join() -> None:
    wf = _load(
        """
        version: 1.0
        tasks:
          t1:
            action: core.noop
            next:
              - do: t2
          t2:
            join: all
            delay: <% 1 + 1 %>
            with:
              items: x in <% [1, 2] %>
              concurrency: 2
            action: core.echo message=<% item(x) %>
            retry:
              when: <% failed() %>
              count: 3
              delay: 5
        """
    )
    task = wf.tasks["t2"]
    assert task.items is not None and task.items.concurrency == 2
    assert task.retry == orquesta_spec.RetrySpec("<% failed() %>", 3, 5)
    assert task.join == "all" and task.delay == "<% 1 + 1 %>"


def test_load_does_not_change_the_callers_mapping() -> None:
    data = {"tasks": {"t": {"action": "core.echo", "with": "<% [1] %>"}}}
    load(data)
    assert data == {"tasks": {"t": {"action": "core.echo", "with": "<% [1] %>"}}}


def test_text_that_is_not_yaml_or_not_a_mapping_raises() -> None:
    with pytest.raises(WorkflowInvalid, match="line 3"):
        load("tasks:\n  t1: [a\n  t2: }\n", source="bad.yaml")
    with pytest.raises(WorkflowInvalid, match="must be a mapping"):
        load("- a\n- b\n")
    assert issubclass(WorkflowInvalid, InvalidInput)


def test_workflow_invalid_lists_every_problem_one_per_line() -> None:
    exc = WorkflowInvalid(
        [Problem("tasks.a", "one"), Problem("tasks.b.next[0].do", "two")], "w.yaml"
    )
    lines = exc.message.splitlines()
    assert lines[0] == "workflow w.yaml has 2 problems:"
    assert lines[1:] == ["  tasks.a: one", "  tasks.b.next[0].do: two"]


# --------------------------------------------------------------------------- checks


def test_a_valid_workflow_has_no_problems() -> None:
    assert (
        _paths(
            """
            version: 1.0
            input:
              - name
            vars:
              - greeting: null
            tasks:
              t1:
                action: core.echo message=<% ctx().name %>
                next:
                  - when: <% succeeded() %>
                    publish: greeting=<% result() %>
                    do: t2
              t2:
                action: core.echo message=<% ctx(greeting) %> user=<% ctx().st2.user %>
            output:
              - greeting: <% ctx().greeting %>
            """
        )
        == {}
    )


def test_undefined_task_in_next_do() -> None:
    problems = _paths(
        """
        version: 1.0
        tasks:
          deploy:
            action: core.noop
            next:
              - when: <% succeeded() %>
                do: notify, nowhere
          notify:
            action: core.noop
        """
    )
    assert problems == {"tasks.deploy.next[0].do": 'the task "nowhere" is not defined'}


def test_expression_syntax_errors_name_the_field() -> None:
    problems = _paths(
        """
        version: 1.0
        tasks:
          deploy:
            action: core.noop
            next:
              - when: <% succeeded( %>
                do: t2
          t2:
            action: core.echo message="{{ ctx().x + }}"
        """
    )
    assert set(problems) >= {"tasks.deploy.next[0].when", "tasks.t2.input"}


def test_missing_fields_wrong_types_and_unknown_fields() -> None:
    problems = _paths(
        """
        version: 2.0
        bogus: 1
        input: name
        vars:
          - plain_name
        tasks:
          t1:
            action: 42
            join: some
            delay: -1
            retry:
              when: <% failed() %>
            with: not an expression
            next:
              - when: <% succeeded() %>
                what: ever
            colour: red
        """
    )
    for path in (
        "version",
        "bogus",
        "input",
        "vars[0]",
        "tasks.t1.action",
        "tasks.t1.join",
        "tasks.t1.delay",
        "tasks.t1.retry.count",
        "tasks.t1.with.items",
        "tasks.t1.next[0].what",
        "tasks.t1.colour",
    ):
        assert path in problems, path
    assert _paths("version: 1.0\n") == {"tasks": "is required"}


def test_with_items_needs_an_action_and_reserved_names_are_refused() -> None:
    problems = _paths(
        """
        version: 1.0
        tasks:
          t1:
            with: <% [1, 2] %>
            next:
              - do: fail
          noop:
            action: core.noop
        """
    )
    assert problems["tasks.t1"] == "a task with items needs an action"
    assert "reserved" in problems["tasks.noop"]


def test_context_inspection_flags_variables_read_before_assignment() -> None:
    problems = _paths(
        """
        version: 1.0
        input:
          - a
        tasks:
          t1:
            action: core.echo message=<% ctx().a %>
            next:
              - when: <% ctx(b) %>
                publish: c=<% ctx().a %> d=<% ctx(c) %>
                do: t2
          t2:
            action: core.echo message=<% ctx('c') %> other=<% ctx().e %>
        output:
          - out: <% ctx(d) %>
          - bad: <% ctx(__secret) %>
        """
    )
    assert problems == {
        "tasks.t1.next[0].when": 'the variable "b" is referenced before assignment',
        "tasks.t2.input": 'the variable "e" is referenced before assignment',
        "output[1]": 'the variable "__secret" is private (it starts with "__")',
    }


def test_a_workflow_without_a_first_task() -> None:
    problems = _paths(
        """
        version: 1.0
        tasks:
          a:
            action: core.noop
            next: [{do: b}]
          b:
            action: core.noop
            next: [{do: a}]
        """
    )
    assert "no task to start with" in problems["tasks"]


def test_a_cycle_into_a_join_is_refused() -> None:
    problems = _paths(
        """
        version: 1.0
        tasks:
          start:
            action: core.noop
            next: [{do: j}]
          j:
            join: all
            action: core.noop
            next: [{do: later}]
          later:
            action: core.noop
            next:
              - when: <% failed() %>
                do: j
        """
    )
    assert "later only run after it" in problems["tasks.j.join"]


def test_a_join_of_nested_splits_is_unreachable() -> None:
    problems = _paths(
        """
        version: 1.0
        tasks:
          t1:
            action: core.noop
            next: [{do: "t2, t3"}]
          t2:
            action: core.noop
            next: [{do: t4}]
          t3:
            action: core.noop
            next: [{do: "t4, t5"}]
          t4:
            action: core.noop
            next: [{do: t6}]
          t5:
            action: core.noop
            next: [{do: t6}]
          t6:
            join: all
            action: core.noop
        """
    )
    assert "unreachable" in problems["tasks.t6"]


# --------------------------------------------------------------------------- the graph


def test_graph_transitions_barriers_splits_cycles_and_roots() -> None:
    wf = _load(
        """
        version: 1.0
        tasks:
          a:
            action: core.noop
            next:
              - when: <% succeeded() %>
                do: c
              - when: <% failed() %>
                do: c
              - do: retry
          b:
            action: core.noop
            next: [{do: c}]
          c:
            action: core.noop
            next: [{do: d}]
          d:
            join: 1
            action: core.noop
            next:
              - when: <% failed() %>
                do: c
          orphan_loop:
            action: core.noop
            next: [{do: orphan_loop}]
        """
    )
    graph = wf.graph
    assert graph.roots == ["a", "b"]
    assert "orphan_loop" not in graph.nodes
    edges = graph.next_transitions("a")
    assert [(e.target, e.key, e.ref, e.criteria) for e in edges] == [
        ("c", 0, 0, ("<% succeeded() %>",)),
        ("c", 1, 1, ("<% failed() %>",)),
    ]
    assert [e.id for e in edges] == ["c__t0", "c__t1"]
    assert [e.backref for e in graph.prev_transitions("c")] == ["a__t0", "a__t1", "b__t0", "d__t0"]
    assert graph.retries["a"] == {"when": "<% completed() %>", "count": 3, "delay": None}
    assert graph.barriers == {"d": 1}
    assert graph.in_cycle("c") and graph.in_cycle("d") and not graph.in_cycle("a")
    assert "c" in graph.splits and "d" not in graph.splits


def test_inline_parameters_follow_orquesta() -> None:
    parse = orquesta_spec.parse_inline_params
    assert parse("a=1 b=-2.5 c=[1, 2] d='x y' e={{ ctx().e }} f=plain") == [
        ("a", 1),
        ("b", -2.5),
        ("c", [1, 2]),
        ("d", "x y"),
        ("e", "{{ ctx().e }}"),
    ]
    assert parse("j='{\"k\": 1}'") == [("j", {"k": 1})]
    assert parse("nothing here") == []
