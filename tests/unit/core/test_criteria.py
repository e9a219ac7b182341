"""Tests for squall.core.criteria: StackStorm's rule criteria semantics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from squall.core import criteria as criteria_module
from squall.core import templating
from squall.core.criteria import (
    OPERATORS,
    Criteria,
    CriteriaError,
    Verdict,
    compile_criteria,
    lookup,
    operator_names,
)
from squall.errors import InvalidInput

PAYLOAD: dict[str, Any] = {
    "body": {
        "repository": {"name": "squall", "owner": {"login": "ops"}},
        "ref": "refs/heads/main",
        "commits": [
            {"id": 1, "author": "ann", "files": ["a.py"]},
            {"id": 2, "author": "bob", "files": []},
        ],
        "empty": [],
        "nothing": None,
        "text": "line one\nline two",
        "x.y": "dotted",
        "it's": "quoted",
        "where": "reserved",
        "x-github-event": "push",
    },
    "count": 5,
    "ratio": 0.5,
    "flag": True,
    "created": "2024-05-01T12:00:00Z",
}


def one(key: str, operator: str, pattern: Any, **extra: Any) -> Criteria:
    return compile_criteria({key: {"type": operator, "pattern": pattern, **extra}})


def matches(operator: str, value: Any, pattern: Any) -> bool:
    """Whether ``operator`` holds for a payload whose ``v`` is ``value``."""
    return one("trigger.v", operator, pattern).matches({"v": value, "other": 1})


def renderer(payload: Any, **kv: str) -> Callable[[Any], Any]:
    """A render function like the rules engine's: trigger and datastore context."""

    class Store:
        def get(self, scope: str, name: str) -> str | None:
            return kv.get(name)

    context = templating.build_context(kv=Store(), extra={"trigger": payload})
    return lambda source: templating.render_value(source, context, name="criteria pattern")


# --------------------------------------------------------------------------- operators

OPERATOR_CASES: list[tuple[str, Any, Any, bool]] = [
    # equals / eq: plain ==, no type coercion
    ("equals", "abc", "abc", True),
    ("equals", "abc", "ABC", False),
    ("eq", 5, 5, True),
    ("eq", 5, "5", False),
    ("eq", "5", 5, False),
    ("eq", True, 1, True),  # Python equality: True == 1
    ("eq", [1, 2], [1, 2], True),
    ("eq", {"a": 1}, {"a": 1}, True),
    ("eq", b"abc", "abc", True),  # bytes are decoded, the only coercion
    ("eq", None, "abc", False),
    # nequals / neq
    ("nequals", "abc", "abd", True),
    ("neq", "abc", "abc", False),
    ("neq", 5, "5", True),
    ("neq", None, "x", True),  # a missing value differs from any pattern
    # iequals / ieq
    ("iequals", "ABC", "abc", True),
    ("ieq", "abc", "abd", False),
    ("ieq", 5, "5", False),  # a number has no lower(): the criterion fails
    ("ieq", None, "x", False),
    # contains and friends: pattern in value
    ("contains", "abcdef", "cd", True),
    ("contains", "abcdef", "CD", False),
    ("contains", ["a", "b"], "b", True),  # membership in a list
    ("contains", ["ab"], "a", False),  # ... of whole items only
    ("contains", {"key": 1}, "key", True),  # a mapping's keys
    ("contains", 12345, "3", False),  # nothing is "in" a number
    ("contains", None, "x", False),
    ("icontains", "ABCDEF", "cd", True),
    ("icontains", ["CD"], "cd", False),  # lists have no lower()
    ("ncontains", "abcdef", "xy", True),
    ("ncontains", "abcdef", "cd", False),
    ("ncontains", ["a"], "b", True),
    ("ncontains", None, "x", False),  # fails on a missing value, not passes
    ("incontains", "ABCDEF", "xy", True),
    ("incontains", "ABCDEF", "cd", False),
    ("incontains", None, "x", False),
    # startswith / endswith
    ("startswith", "refs/heads/main", "refs/", True),
    ("startswith", "refs/heads/main", "REFS/", False),
    ("startswith", 123, "1", False),
    ("istartswith", "REFS/heads", "refs/", True),
    ("istartswith", "heads", "refs/", False),
    ("endswith", "file.py", ".py", True),
    ("endswith", "file.py", ".PY", False),
    ("iendswith", "FILE.PY", ".py", True),
    ("iendswith", "file.txt", ".py", False),
    # lessthan / lt and greaterthan / gt: Python ordering, no coercion
    ("lessthan", 3, 5, True),
    ("lt", 5, 5, False),
    ("lt", 2.5, 3, True),
    ("lt", "10", "9", True),  # strings compare as text
    ("lt", 3, "5", False),  # int < str raises: the criterion fails
    ("lt", None, 5, False),
    ("greaterthan", 6, 5, True),
    ("gt", 5, 5, False),
    ("gt", "b", "a", True),
    ("gt", 6, "5", False),
    # matchwildcard: fnmatch, case-sensitive, text only
    ("matchwildcard", "deploy-web-01", "deploy-*-0?", True),
    ("matchwildcard", "Deploy-web-01", "deploy-*", False),
    ("matchwildcard", "a.txt", "*.[tc]xt", True),
    ("matchwildcard", 123, "1*", False),
    ("matchwildcard", None, "*", False),
    # matchregex: re.match (anchored at the start) with DOTALL
    ("matchregex", "abc", "b", False),
    ("matchregex", "abc", "a.c", True),
    ("matchregex", "a\nc", "a.c", True),
    ("matchregex", "abcd", "abc", True),  # only the start is anchored
    # regex: re.search, no DOTALL; iregex ignores case
    ("regex", "abc", "b", True),
    ("regex", "abc", "^b", False),
    ("regex", "a\nc", "a.c", False),
    ("regex", "ABC", "b", False),
    ("regex", 123, "1", False),
    ("iregex", "ABC", "b", True),
    ("iregex", "ABC", "^x", False),
    # exists / nexists: a null value is the same as a missing key
    ("exists", "x", "ignored", True),
    ("exists", 0, "ignored", True),
    ("exists", "", "ignored", True),
    ("exists", None, "ignored", False),
    ("nexists", None, "ignored", True),
    ("nexists", False, "ignored", False),
    # inside / in and ninside / nin: value in pattern (the reverse of contains)
    ("inside", "b", ["a", "b"], True),
    ("in", "c", ["a", "b"], False),
    ("in", "bc", "abcd", True),  # a substring of a string pattern
    ("in", 5, [5, 6], True),
    ("in", 5, "5", False),  # int in str raises: the criterion fails
    ("in", None, [None], True),
    ("ninside", "c", ["a", "b"], True),
    ("nin", "b", ["a", "b"], False),
    ("nin", 5, "abc", False),
]


@pytest.mark.parametrize(("operator", "value", "pattern", "expected"), OPERATOR_CASES)
def test_operator(operator: str, value: Any, pattern: Any, expected: bool) -> None:
    assert matches(operator, value, pattern) is expected


def test_every_operator_and_alias_is_exercised() -> None:
    tested = {case[0] for case in OPERATOR_CASES} | {
        "timediff_lt",
        "td_lt",
        "timediff_gt",
        "td_gt",
        "search",
    }
    assert tested == set(OPERATORS)


def test_operator_names_are_stackstorms_with_aliases() -> None:
    assert operator_names() == sorted(
        [
            "contains", "endswith", "eq", "equals", "exists", "greaterthan", "gt",
            "icontains", "iendswith", "ieq", "iequals", "in", "incontains", "inside",
            "iregex", "istartswith", "lessthan", "lt", "matchregex", "matchwildcard",
            "ncontains", "neq", "nequals", "nexists", "nin", "ninside", "regex", "search",
            "startswith", "td_gt", "td_lt", "timediff_gt", "timediff_lt",
        ]
    )  # fmt: skip
    assert OPERATORS["eq"] is OPERATORS["equals"]
    assert OPERATORS["td_lt"].name == "timediff_lt"
    assert OPERATORS["nin"].name == "ninside"
    assert "ne" not in OPERATORS  # st2 has neq, not ne
    with pytest.raises(TypeError):
        OPERATORS["x"] = OPERATORS["eq"]  # type: ignore[index]


# --------------------------------------------------------------------------- timediff

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(criteria_module, "_utcnow", lambda: NOW)


@pytest.mark.usefixtures("frozen_now")
@pytest.mark.parametrize(
    ("operator", "value", "seconds", "expected"),
    [
        ("timediff_lt", "2024-05-01T11:59:30Z", 60, True),  # 30 s ago
        ("td_lt", "2024-05-01T11:58:00Z", 60, False),  # 120 s ago
        ("timediff_gt", "2024-05-01T11:58:00Z", 60, True),
        ("td_gt", "2024-05-01T11:59:30Z", 60, False),
        ("td_lt", "2024-05-01T11:59:30Z", "60", True),  # float("60") like st2
        ("td_lt", "2024-05-01 11:59:30", 60, True),  # no zone: UTC
        ("td_lt", "2024-05-01T13:59:30+02:00", 60, True),  # converted to UTC
        ("td_gt", "2024-05-01T11:59:30-01:00", 60, False),  # that is in the future
        ("td_lt", "Wed, 01 May 2024 11:59:30 GMT", 60, True),  # RFC 2822
        ("td_lt", "2024-05-01T12:00:30Z", 60, True),  # future dates are "recent"
        ("td_gt", "2024-05-01", 3600, True),  # midnight
        ("td_lt", "not a date", 60, False),
        ("td_gt", "not a date", 60, False),
        ("td_lt", None, 60, False),
        ("td_gt", 1714564800, 60, False),  # epoch numbers are not dates
    ],
)
def test_timediff(operator: str, value: Any, seconds: Any, expected: bool) -> None:
    assert matches(operator, value, seconds) is expected


@pytest.mark.usefixtures("frozen_now")
def test_timediff_explains_an_unreadable_date() -> None:
    (verdict,) = one("trigger.created", "td_lt", 60).explain({"created": "yesterday"})
    assert not verdict.passed
    assert verdict.reason == "td_lt failed: ValueError: 'yesterday' is not a date"


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("trigger.count", 5),
        ("trigger.body.repository.name", "squall"),
        ("trigger.body.repository.owner.login", "ops"),
        ("trigger.body.commits[0].author", "ann"),
        ("trigger.body.commits[1].id", 2),
        ("trigger.body.commits[-1].author", "bob"),
        ("trigger.body.commits[5].author", None),  # past the end: nothing
        ("trigger.body.commits[*].author", "ann"),  # only the first match counts
        ("trigger.body.commits[1:].author", "bob"),
        ("trigger.body.commits[0].files[0]", "a.py"),
        ("trigger.body.commits.author", None),  # a list has no fields
        ("trigger.body..author", "ann"),  # descendants, depth first
        ("trigger..login", "ops"),
        ("trigger.body.'x.y'", "dotted"),
        ('trigger.body."x.y"', "dotted"),
        ("trigger.body['x.y']", "dotted"),
        ("trigger.body.'it\\'s'", "quoted"),
        ("trigger.body.'where'", "reserved"),
        ("trigger.body.x-github-event", "push"),
        ("trigger.body.nope,ref", "refs/heads/main"),  # first of several names
        ("trigger.body.repository.*", "squall"),
        ("trigger.count#1", 5),  # "#..." is ignored
        ("trigger.body.ref#x#y", "refs/heads/main"),
        ("trigger. body . ref", "refs/heads/main"),  # spaces are ignored
        ("$.trigger.count", 5),
        ("trigger.body.nothing", None),
        ("trigger.body.nothing.deeper", None),
        ("trigger.missing.deeper", None),
        ("trigger.count.deeper", None),
        ("trigger.body.text[0]", "l"),  # strings index by character
        ("trigger.count[*]", 5),  # [*] wraps a single value in a list
        ("payload.count", None),  # only "trigger" is in the context
        ("item.count", None),
    ],
)
def test_lookup_paths(key: str, expected: Any) -> None:
    assert lookup(PAYLOAD, key) == expected
    criteria = compile_criteria({key: {"type": "exists", "pattern": "-"}})
    assert criteria.explain(PAYLOAD)[0].value == expected
    assert criteria.matches(PAYLOAD) is (expected is not None)


@pytest.mark.parametrize(
    "key",
    [
        "trigger.body.nothing[0]",  # indexing null raises
        "trigger.count[0]",  # indexing a number raises
        "trigger.body.repository[0]",  # a mapping has no key 0
        "trigger.body.empty[-1]",  # negative index into an empty list
    ],
)
def test_a_lookup_that_raises_fails_the_criterion_even_for_nexists(key: str) -> None:
    criteria = compile_criteria({key: {"type": "nexists", "pattern": "-"}})
    assert criteria.matches(PAYLOAD) is False
    (verdict,) = criteria.explain(PAYLOAD)
    assert verdict.reason.startswith("the key could not be read: ")
    assert lookup(PAYLOAD, key) is None  # the helper answers None instead


def test_every_match_is_computed_so_a_later_error_fails_the_lookup() -> None:
    payload = {"items": [{"l": [1]}, {"l": None}]}
    assert one("trigger.items[*].l[0]", "eq", 1).matches(payload) is False
    assert one("trigger.items[0].l[0]", "eq", 1).matches(payload) is True


def test_lookup_rejects_a_malformed_path() -> None:
    with pytest.raises(InvalidInput, match=r"payload path 'trigger\.a\.0'"):
        lookup(PAYLOAD, "trigger.a.0")


def test_the_same_field_can_be_tested_twice_with_hash_suffixes() -> None:
    criteria = compile_criteria(
        {
            "trigger.count#low": {"type": "gt", "pattern": 1},
            "trigger.count#high": {"type": "lt", "pattern": 10},
        }
    )
    assert criteria.matches({"count": 5}) is True
    assert criteria.matches({"count": 50}) is False
    assert [v.key for v in criteria.explain({"count": 5})] == [
        "trigger.count#low",
        "trigger.count#high",
    ]


# --------------------------------------------------------------------------- search

ITEMS = [
    {"field": "Status", "to": "Approved", "n": 45},
    {"field": "Owner", "to": "bob", "n": 10},
]
STATUS_APPROVED = {
    "item.field": {"type": "equals", "pattern": "Status"},
    "item.to": {"type": "equals", "pattern": "Approved"},
}
STATUS_OR_BOB = {
    "item.field": {"type": "equals", "pattern": "Status"},
    "item.to": {"type": "equals", "pattern": "bob"},
}


@pytest.mark.parametrize(
    ("condition", "nested", "value", "expected"),
    [
        ("any", STATUS_APPROVED, ITEMS, True),  # one item matches every criterion
        ("all", STATUS_APPROVED, ITEMS, False),  # the second item does not
        ("all", STATUS_APPROVED, ITEMS[:1], True),
        ("any", STATUS_OR_BOB, ITEMS, False),  # no item matches both
        ("any2any", STATUS_OR_BOB, ITEMS, True),  # some item matches one
        ("any2any", STATUS_APPROVED, ITEMS, True),  # though "Owner"/"bob" matches none
        ("all2any", STATUS_OR_BOB, ITEMS, True),  # every item matches one
        ("all2any", STATUS_APPROVED, ITEMS, False),  # "Owner"/"bob" matches neither
        ("any2any", {"item.n": {"type": "gt", "pattern": 100}}, ITEMS, False),
        ("any", STATUS_APPROVED, [], False),  # any() of nothing
        ("all", STATUS_APPROVED, [], True),  # all() of nothing
        ("any", STATUS_APPROVED, ITEMS[0], True),  # a mapping is a list of one
        ("any", STATUS_APPROVED, None, False),  # null cannot be searched
        ("any", STATUS_APPROVED, 5, False),
        ("any", {"item": {"type": "eq", "pattern": "b"}}, "abc", True),  # by character
        (
            "any",
            {
                "item.n#1": {"type": "greaterthan", "pattern": 40},
                "item.n#2": {"type": "lessthan", "pattern": 50},
            },
            ITEMS,
            True,
        ),
        ("any", {"item.field": {"type": "Equals", "pattern": "Status"}}, ITEMS, True),
        ("any", {"item.field": {"type": "exists"}}, ITEMS, True),  # nested pattern optional
        ("any", {"item.field": {"type": "equals"}}, ITEMS, False),  # null pattern
        ("all", {"item.field": {"type": "nequals"}}, ITEMS, True),
        ("all", {"trigger.flag": {"type": "nexists"}}, ITEMS, True),  # no trigger inside
    ],
)
def test_search(condition: str, nested: dict[str, Any], value: Any, expected: bool) -> None:
    criteria = one("trigger.fields", "search", nested, condition=condition)
    payload = {"fields": value, "flag": True}
    assert criteria.matches(payload) is expected
    (verdict,) = criteria.explain(payload)
    assert verdict.passed is expected


def test_search_inside_search() -> None:
    inner = {"item.k": {"type": "eq", "pattern": 2}}
    outer = {"item.sub": {"type": "search", "condition": "any", "pattern": inner}}
    criteria = one("trigger.l", "search", outer, condition="any")
    assert criteria.matches({"l": [{"sub": [{"k": 1}]}, {"sub": [{"k": 2}]}]}) is True
    assert criteria.matches({"l": [{"sub": [{"k": 1}]}, {"sub": []}]}) is False


def test_search_verdict_counts_matching_items() -> None:
    criteria = one("trigger.fields", "search", STATUS_APPROVED, condition="all")
    (verdict,) = criteria.explain({"fields": ITEMS})
    assert verdict == Verdict(
        key="trigger.fields",
        operator="search",
        pattern=STATUS_APPROVED,
        value=ITEMS,
        passed=False,
        reason="1 of 2 items match all of the nested criteria; condition 'all' needs every item",
    )
    (verdict,) = criteria.explain({"other": 1})
    assert verdict.reason == (
        "search failed: TypeError: 'NoneType' object is not iterable"
        " (nothing found at trigger.fields)"
    )


# --------------------------------------------------------------------------- templates


def test_template_pattern_is_rendered_with_the_callers_context() -> None:
    criteria = one("trigger.level", "gt", "{{ st2kv.system.threshold | int }}")
    render = renderer({"level": 12}, threshold="10")
    assert criteria.matches({"level": 12}, render) is True
    assert criteria.matches({"level": 8}, renderer({"level": 8}, threshold="10")) is False


def test_datastore_values_render_as_text_like_in_stackstorm() -> None:
    criteria = one("trigger.level", "gt", "{{ st2kv.system.threshold }}")
    payload = {"level": 12}
    # The datastore holds text, and 12 > "10" cannot be compared: no match.
    assert criteria.matches(payload, renderer(payload, threshold="10")) is False
    (verdict,) = criteria.explain(payload, renderer(payload, threshold="10"))
    assert verdict.pattern == "10"
    assert verdict.reason.startswith("gt failed: TypeError: '>' not supported")
    equal = one("trigger.name", "equals", "{{ st2kv.system.name }}")
    assert equal.matches({"name": "web"}, renderer({"name": "web"}, name="web")) is True


@pytest.mark.parametrize(
    ("pattern", "rendered"),
    [
        ("{{ trigger.n }}", 5),  # a single expression keeps its type
        ("{{trigger.n}} ", 5),  # JSON allows the space around it
        ("{{ trigger.l }}", [1, 2]),
        ("{{ trigger.m }}", {"k": "v"}),
        ("{{ trigger.s }}", "text"),
        ("{{ trigger.none }}", None),
        ("{{ (trigger.n + 1) }}", 6),
        ("n={{ trigger.n }}", "n=5"),  # not JSON: rendered again as text
        ("{{ trigger.s }}-{{ trigger.n }}", "text-5"),
        ("{{ trigger.s }}\n", "text"),  # Jinja drops the trailing newline
        ("{% if trigger.n > 1 %}big{% endif %}", "big"),  # no {{ }}: text
        ("{{ '5' }}", "5"),
    ],
)
def test_rendered_patterns_keep_json_types(pattern: str, rendered: Any) -> None:
    payload = {"n": 5, "l": [1, 2], "m": {"k": "v"}, "s": "text", "none": None}
    (verdict,) = one("trigger.n", "exists", pattern).explain(payload, renderer(payload))
    assert verdict.pattern == rendered
    assert type(verdict.pattern) is type(rendered)


def test_a_typed_pattern_compares_with_numbers_and_lists() -> None:
    payload = {"n": 5, "limit": 3, "allowed": ["a", "b"], "v": "b"}
    render = renderer(payload)
    assert one("trigger.n", "gt", "{{ trigger.limit }}").matches(payload, render) is True
    assert one("trigger.v", "in", "{{ trigger.allowed }}").matches(payload, render) is True
    assert one("trigger.n", "eq", "{{ (trigger.limit + 2) }}").matches(payload, render) is True


def test_to_complex_binds_to_the_last_term_of_an_expression() -> None:
    # StackStorm appends "| to_complex" inside the braces, so in "a + 2" it
    # applies to 2 alone, the sum adds a number and a string, and the
    # criterion fails; parentheses avoid it.
    payload = {"n": 5, "limit": 3}
    criteria = one("trigger.n", "eq", "{{ trigger.limit + 2 }}")
    assert criteria.matches(payload, renderer(payload)) is False
    (verdict,) = criteria.explain(payload, renderer(payload))
    assert "unsupported operand type(s) for +: 'int' and 'str'" in verdict.reason


def test_render_receives_the_to_complex_rewrite_first() -> None:
    seen: list[str] = []

    def render(source: Any) -> Any:
        seen.append(source)
        return '"json"' if "to_complex" in source else "plain"

    (verdict,) = one("trigger.a", "eq", "{{ x }} and {{ y }}").explain({"a": 1}, render)
    assert seen == ["{{x }} and {{ y  | to_complex}}"]  # per line, first {{ to last }}
    assert verdict.pattern == "json"
    seen.clear()

    def text_render(source: Any) -> Any:
        seen.append(source)
        return "not json"

    (verdict,) = one("trigger.a", "eq", "{{ x }}").explain({"a": 1}, text_render)
    assert seen == ["{{x  | to_complex}}", "{{ x }}"]
    assert verdict.pattern == "not json"


def test_a_failing_render_fails_only_that_criterion_with_its_message() -> None:
    criteria = compile_criteria(
        {
            "trigger.a": {"type": "eq", "pattern": "{{ trigger.nope.deeper }}"},
            "trigger.b": {"type": "eq", "pattern": 2},
        }
    )
    payload = {"a": 1, "b": 2}
    assert criteria.matches(payload, renderer(payload)) is False
    first, second = criteria.explain(payload, renderer(payload))
    assert first.passed is False
    assert first.pattern == "{{ trigger.nope.deeper }}"
    assert first.reason.startswith("the pattern could not be rendered: criteria pattern:")
    assert "undefined" in first.reason
    assert second.passed is True


def test_a_render_function_that_raises_anything_does_not_escape() -> None:
    def broken(source: Any) -> Any:
        raise RuntimeError("datastore down")

    criteria = one("trigger.a", "eq", "{{ st2kv.system.x }}")
    assert criteria.matches({"a": 1}, broken) is False
    (verdict,) = criteria.explain({"a": 1}, broken)
    assert verdict.reason == "the pattern could not be rendered: RuntimeError: datastore down"


def test_a_template_without_a_renderer_fails() -> None:
    criteria = one("trigger.a", "eq", "{{ trigger.a }}")
    assert criteria.matches({"a": 1}) is False
    (verdict,) = criteria.explain({"a": 1})
    assert verdict.reason == (
        "the pattern could not be rendered: the pattern is a template and no renderer was given"
    )


def test_nested_search_patterns_render_with_item_and_without_trigger() -> None:
    payload = {"items": [{"name": "a", "copy": "a"}, {"name": "b", "copy": "x"}], "limit": 1}
    same = {"item.copy": {"type": "eq", "pattern": "{{ item.name }}"}}
    assert one("trigger.items", "search", same, condition="any").matches(payload, renderer(payload))
    assert not one("trigger.items", "search", same, condition="all").matches(
        payload, renderer(payload)
    )
    uses_trigger = {"item.name": {"type": "exists", "pattern": "{{ trigger.limit }}"}}
    criteria = one("trigger.items", "search", uses_trigger, condition="any")
    assert criteria.matches(payload, renderer(payload)) is False  # as in StackStorm


def test_a_regex_from_a_template_is_compiled_when_rendered() -> None:
    criteria = one("trigger.a", "regex", "{{ trigger.re }}")  # not checked at load time
    assert criteria.matches({"a": "abc", "re": "^a"}, renderer({"a": "abc", "re": "^a"}))
    payload = {"a": "abc", "re": "("}
    (verdict,) = criteria.explain(payload, renderer(payload))
    assert verdict.passed is False
    assert verdict.reason.startswith("regex failed: invalid regular expression '(':")


def test_literal_patterns_lose_line_breaks_like_a_jinja_render() -> None:
    # A YAML block scalar ends with a newline; StackStorm's render drops it.
    assert matches("equals", "abc", "abc\n") is True
    assert matches("equals", "a\nb", "a\r\nb") is True
    assert matches("equals", "abc\n", "abc\n") is False
    assert matches("equals", "abc\n", "abc\n\n") is True


# --------------------------------------------------------------------------- whole criteria


def test_empty_criteria_match_everything() -> None:
    empty = compile_criteria({})
    for payload in ({}, None, {"a": 1}, [], "x"):
        assert empty.matches(payload) is True
        assert empty.explain(payload) == []
    assert len(compile_criteria(None)) == 0


@pytest.mark.parametrize("payload", [{}, None, [], ""])
def test_criteria_never_match_an_empty_payload(payload: Any) -> None:
    criteria = one("trigger.a", "nexists", "-")  # would pass on any missing key
    assert criteria.matches(payload) is False
    (verdict,) = criteria.explain(payload)
    assert verdict.passed is False
    assert "payload is empty" in verdict.reason


def test_matches_needs_every_criterion_and_explain_reports_each() -> None:
    criteria = compile_criteria(
        {
            "trigger.body.repository.name": {"type": "equals", "pattern": "squall"},
            "trigger.body.ref": {"type": "regex", "pattern": "^refs/tags/"},
            "trigger.body.commits[0].author": {"type": "iequals", "pattern": "ANN"},
            "trigger.body.missing": {"type": "contains", "pattern": "x"},
        }
    )
    assert criteria.matches(PAYLOAD) is False
    verdicts = criteria.explain(PAYLOAD)
    assert [v.passed for v in verdicts] == [True, False, True, False]
    assert verdicts[0].reason == "'squall' equals 'squall'"
    assert verdicts[1] == Verdict(
        key="trigger.body.ref",
        operator="regex",
        pattern="^refs/tags/",
        value="refs/heads/main",
        passed=False,
        reason="'refs/heads/main' does not match the regex '^refs/tags/'",
    )
    assert verdicts[2].reason == "'ann' equals 'ANN' ignoring case"
    assert verdicts[3].value is None
    assert verdicts[3].reason == (
        "contains failed: TypeError: argument of type 'NoneType' is not iterable"
        " (nothing found at trigger.body.missing)"
    )


def test_verdict_reasons_for_exists_and_nexists() -> None:
    present, absent = compile_criteria(
        {
            "trigger.count": {"type": "nexists", "pattern": "-"},
            "trigger.nope": {"type": "exists", "pattern": "-"},
        }
    ).explain(PAYLOAD)
    assert (present.passed, present.reason) == (False, "the key has the value 5")
    assert (absent.passed, absent.reason) == (False, "the key has no value")


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equals", None, False),  # even a missing value does not equal null
        ("contains", "x", False),
        ("lt", 1, False),
        ("nequals", "x", True),  # nequals has no null check
        ("nequals", None, False),
        ("exists", "x", True),  # exists and nexists ignore the pattern
        ("nexists", None, True),
    ],
)
def test_a_pattern_that_renders_to_null(operator: str, value: Any, expected: bool) -> None:
    payload = {"v": value, "none": None}
    criteria = one("trigger.v", operator, "{{ trigger.none }}")
    assert criteria.matches(payload, renderer(payload)) is expected
    (verdict,) = criteria.explain(payload, renderer(payload))
    assert verdict.pattern is None
    assert verdict.passed is expected
    if operator in ("equals", "contains", "lt"):
        assert verdict.reason == "a null pattern never matches"


def test_verdict_is_frozen() -> None:
    (verdict,) = one("trigger.count", "eq", 5).explain(PAYLOAD)
    assert verdict.passed is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.passed = False  # type: ignore[misc]


def test_long_values_are_shortened_in_reasons() -> None:
    (verdict,) = one("trigger.s", "eq", "x").explain({"s": "y" * 500})
    assert len(verdict.reason) < 200
    assert verdict.value == "y" * 500  # the verdict keeps the whole value


# --------------------------------------------------------------------------- compile errors


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        (
            {"trigger.a": {"type": "equal", "pattern": 1}},
            "criteria 'trigger.a': unknown operator 'equal'; did you mean 'equals'",
        ),
        (
            {"trigger.a": {"type": "Equals", "pattern": 1}},
            "unknown operator 'Equals'; did you mean 'equals'",  # top level: exact names
        ),
        (
            {"trigger.a": {"type": "frobnicate", "pattern": 1}},
            "unknown operator 'frobnicate'; the operators are: contains, endswith, eq,",
        ),
        ({"trigger.a": {"type": 5, "pattern": 1}}, "must be a name such as equals, not 5"),
        ({"trigger.a": {"pattern": 1}}, "criteria 'trigger.a': no operator: add 'type'"),
        ({"trigger.a": {"type": None, "pattern": 1}}, "no operator"),
        ({"trigger.a": "equals"}, "criteria 'trigger.a': must be a mapping with 'type'"),
        (
            {"trigger.a": {"type": "exists"}},
            "criteria 'trigger.a': no pattern for operator 'exists' (any value will do)",
        ),
        ({"trigger.a": {"type": "eq", "pattern": None}}, "no pattern for operator 'eq'"),
        (
            {"trigger.a": {"type": "regex", "pattern": "(unclosed"}},
            "criteria 'trigger.a': invalid regular expression '(unclosed': missing )",
        ),
        ({"trigger.a": {"type": "iregex", "pattern": "[z-a]"}}, "invalid regular expression"),
        ({"trigger.a": {"type": "matchregex", "pattern": "*"}}, "invalid regular expression"),
        ({"trigger.a": {"type": "regex", "pattern": 5}}, "regex needs a string pattern, not int"),
        ({"trigger.a": {"type": "iequals", "pattern": 5}}, "iequals needs a string pattern"),
        ({"trigger.a": {"type": "matchwildcard", "pattern": ["*"]}}, "needs a string pattern"),
        (
            {"trigger.a": {"type": "td_lt", "pattern": "soon"}},
            "timediff_lt needs a number of seconds, not 'soon'",
        ),
        (
            {"trigger.a": {"type": "search", "pattern": STATUS_APPROVED}},
            "criteria 'trigger.a': search has no condition; use one of any, all, any2any, all2any",
        ),
        (
            {"trigger.a": {"type": "search", "condition": "some", "pattern": STATUS_APPROVED}},
            "search has condition 'some'; use one of",
        ),
        (
            {"trigger.a": {"type": "search", "condition": "any", "pattern": "item.x"}},
            "search needs a pattern of nested criteria",
        ),
        (
            {"trigger.a": {"type": "search", "condition": "any", "pattern": {}}},
            "search needs a pattern of nested criteria",
        ),
        (
            {
                "trigger.a": {
                    "type": "search",
                    "condition": "any",
                    "pattern": {"item.x": {"type": "equalz", "pattern": 1}},
                }
            },
            "criteria 'trigger.a > item.x': unknown operator 'equalz'; did you mean 'equals'",
        ),
        (
            {
                "trigger.a": {
                    "type": "search",
                    "condition": "any",
                    "pattern": {"item.x": {"pattern": 1}},
                }
            },
            "criteria 'trigger.a > item.x': no operator",
        ),
        (
            {
                "trigger.a": {
                    "type": "search",
                    "condition": "any",
                    "pattern": {"item.x": {"type": "Search", "condition": "any", "pattern": {}}},
                }
            },
            "unknown operator 'Search'",  # StackStorm can never run a nested "Search"
        ),
        (
            {
                "trigger.a": {
                    "type": "search",
                    "condition": "any",
                    "pattern": {"item.x": {"type": "regex", "pattern": "("}},
                }
            },
            "criteria 'trigger.a > item.x': invalid regular expression",
        ),
        ({"trigger.a.0": {"type": "eq", "pattern": 1}}, "a list index goes in brackets"),
        ({"trigger.a.where": {"type": "eq", "pattern": 1}}, "quote it, 'where'"),
        ({"trigger.'a": {"type": "eq", "pattern": 1}}, "the quote at column 9 is not closed"),
        ({"trigger.a:b": {"type": "eq", "pattern": 1}}, "unexpected ':' at column 10"),
        ({"trigger.a|b": {"type": "eq", "pattern": 1}}, "'|' is not supported"),
        ({"trigger.a.`this`": {"type": "eq", "pattern": 1}}, "`this` at column 11 is not"),
        ({"trigger.a.": {"type": "eq", "pattern": 1}}, "the path ends where a name"),
        ({"trigger[": {"type": "eq", "pattern": 1}}, "the path ends where"),
        ({"": {"type": "eq", "pattern": 1}}, "the key is empty"),
        ({"#note": {"type": "eq", "pattern": 1}}, "the key is empty"),
        ({"*.a": {"type": "eq", "pattern": 1}}, "must start with a name such as trigger"),
        ({"system.key": {"type": "eq", "pattern": 1}}, "datastore values cannot be criteria"),
        ({"st2kv.system.key": {"type": "eq", "pattern": 1}}, "datastore values cannot be"),
        ({5: {"type": "eq", "pattern": 1}}, "criteria '5': a criteria key must be text"),
    ],
)
def test_compile_errors(criteria: dict[Any, Any], message: str) -> None:
    with pytest.raises(CriteriaError) as caught:
        compile_criteria(criteria)
    assert message in caught.value.message
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.http_status == 400
    assert caught.value.to_dict()["key"] == caught.value.key


def test_compile_error_names_the_key() -> None:
    with pytest.raises(CriteriaError) as caught:
        compile_criteria({"trigger.ok": {"type": "eq", "pattern": 1}, "trigger.bad": {}})
    assert caught.value.key == "trigger.bad"
    assert caught.value.problem.startswith("no operator")


def test_criteria_must_be_a_mapping() -> None:
    with pytest.raises(InvalidInput, match="criteria must be a mapping"):
        compile_criteria(["trigger.a"])  # type: ignore[arg-type]


def test_nested_operator_names_are_looked_up_lowercased() -> None:
    nested = {"item.a": {"type": "IEquals", "pattern": "X"}}
    criteria = one("trigger.l", "search", nested, condition="any")
    assert criteria.matches({"l": [{"a": "x"}]}) is True
    (verdict,) = criteria.explain({"l": [{"a": "x"}]})
    assert verdict.passed is True


def test_criteria_repr_lists_keys_and_operators() -> None:
    criteria = compile_criteria(
        {"trigger.a": {"type": "eq", "pattern": 1}, "trigger.b": {"type": "in", "pattern": [1]}}
    )
    assert repr(criteria) == "Criteria(trigger.a eq, trigger.b in)"
    assert len(criteria) == 2
