"""Rule criteria, evaluated exactly the way StackStorm evaluates them.

A rule's ``criteria`` maps a payload key to a comparison::

    criteria:
      trigger.body.repository.name:
        type: equals
        pattern: squall
      trigger.body.commits:
        type: search
        condition: any
        pattern:
          item.author:
            type: iequals
            pattern: "{{ st2kv.system.release_manager }}"

:func:`compile_criteria` checks criteria once, when a rule is loaded, and
prepares them (regexes compiled, key paths parsed); :meth:`Criteria.matches`
then answers whether a trigger payload satisfies every criterion, and
:meth:`Criteria.explain` says, criterion by criterion, why or why not.

Semantics follow StackStorm's rules engine, quirks included; each quirk is
pointed out in a comment where it is reproduced. In short:

* A key is a JSONPath (jsonpath-rw dialect) whose root is ``trigger``
  (``item`` inside a ``search``). Text after a ``#`` is ignored, so one field
  can be tested twice (``trigger.count#1``). Only the first value a path
  finds is compared; a missing key and a null value both read as None.
* Operators do no type coercion beyond decoding bytes: ``equals`` compares
  ``5`` and ``"5"`` as different, and ``lessthan`` between a number and a
  string fails.
* A criterion whose operator raises (a comparison of incompatible types, a
  date that does not parse...) fails; it never breaks the other criteria.
* A string pattern is a Jinja template. It is rendered by the caller's
  ``render`` function (this module does no I/O), first with
  ``| to_complex`` appended to its expressions so that a value keeps its
  JSON type (``"{{ trigger.count }}"`` gives the number), and as plain text
  when that result is not JSON.
* Inside a ``search``, patterns see ``item`` (the list item) and not
  ``trigger``.
* Criteria that are not empty never match an empty payload.

Where Squall knowingly differs from StackStorm, the code says so. In short:
problems StackStorm only meets when an event arrives (an invalid regex, an
unreadable key, an unknown nested operator) stop the rule from loading
here; ``timediff_*`` reads ISO 8601 and RFC 2822 dates only; JSONPath
filters and unions, and datastore roots, are not accepted in keys.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Final

import orjson

from squall.core.templating import is_template
from squall.errors import InvalidInput, SquallError

__all__ = [
    "OPERATORS",
    "Criteria",
    "CriteriaError",
    "Operator",
    "Render",
    "Verdict",
    "compile_criteria",
    "lookup",
    "operator_names",
]

Render = Callable[[Any], Any]
"""Renders one template string with the datastore and ``trigger`` context.

It may return text (what Jinja renders) or, for a template that is a single
expression, the expression's value; it raises when rendering fails.
"""

Test = Callable[[Any], bool]

TRIGGER_ROOT: Final = "trigger"
ITEM_ROOT: Final = "item"
SEARCH: Final = "search"
SEARCH_CONDITIONS: Final = ("any", "all", "any2any", "all2any")

# Roots that StackStorm resolves to datastore lookups rather than to payload data.
_DATASTORE_ROOTS = ("system", "st2kv")
_SHOW_LIMIT = 80


class CriteriaError(InvalidInput):
    """A criterion cannot be used: the rule does not load."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"criteria '{key}': {problem}")
        self.key = key
        self.problem = problem

    def to_dict(self) -> dict[str, object]:
        return {"faultstring": self.message, "key": self.key, "problem": self.problem}


class _PatternError(ValueError):
    """A pattern that the operator can never use; the message is for the user."""


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one criterion for one payload."""

    key: str
    operator: str
    pattern: Any  # after rendering; the template itself when rendering failed
    value: Any  # what the key found in the payload; None when nothing
    passed: bool
    reason: str


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def _problem(exc: BaseException) -> str:
    if isinstance(exc, SquallError):
        return exc.message  # already written for the user
    if isinstance(exc, _PatternError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- operators


@dataclass(frozen=True, slots=True)
class Operator:
    """One comparison of StackStorm's criteria.

    ``prepare(pattern)`` returns a test of a payload value; it raises when
    the pattern can never work with this operator (an invalid regex...).
    ``search`` has no ``prepare``: its pattern holds nested criteria.
    """

    name: str  # the long name; aliases map to the same Operator
    prepare: Callable[[Any], Test] | None
    passes: str  # how a passing verdict reads, with {v} (value) and {p} (pattern)
    fails: str


def _never(value: Any) -> bool:
    return False


def _decoded(value: Any) -> Any:
    # The only coercion StackStorm does: bytes become text, nothing else changes.
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _string_pattern(name: str, pattern: Any) -> str:
    pattern = _decoded(pattern)
    if not isinstance(pattern, str):
        raise _PatternError(f"{name} needs a string pattern, not {type(pattern).__name__}")
    return pattern


# Nearly every operator fails outright on a null pattern (nequals, exists and
# nexists do not), whatever the value: as in StackStorm.


def _prepare_equals(pattern: Any) -> Test:
    if pattern is None:
        return _never
    pattern = _decoded(pattern)
    return lambda value: bool(_decoded(value) == pattern)


def _prepare_nequals(pattern: Any) -> Test:
    # No null check here in StackStorm: a null pattern passes for any value found.
    pattern = _decoded(pattern)
    return lambda value: bool(_decoded(value) != pattern)


def _prepare_iequals(pattern: Any) -> Test:
    if pattern is None:
        return _never
    folded = _string_pattern("iequals", pattern).lower()
    return lambda value: bool(_decoded(value).lower() == folded)


def _prepare_contains(pattern: Any) -> Test:
    if pattern is None:
        return _never
    pattern = _decoded(pattern)
    # "in" works on lists and dicts too: contains on a list is membership.
    return lambda value: pattern in _decoded(value)


def _prepare_ncontains(pattern: Any) -> Test:
    if pattern is None:
        return _never
    pattern = _decoded(pattern)
    # A missing value raises (nothing is "in" None), so ncontains fails on a
    # missing key rather than passing, as in StackStorm.
    return lambda value: pattern not in _decoded(value)


def _prepare_icontains(pattern: Any) -> Test:
    if pattern is None:
        return _never
    folded = _string_pattern("icontains", pattern).lower()
    return lambda value: folded in _decoded(value).lower()


def _prepare_incontains(pattern: Any) -> Test:
    if pattern is None:
        return _never
    folded = _string_pattern("incontains", pattern).lower()
    return lambda value: folded not in _decoded(value).lower()


def _prepare_startswith(pattern: Any) -> Test:
    if pattern is None:
        return _never
    prefix = _string_pattern("startswith", pattern)
    return lambda value: bool(_decoded(value).startswith(prefix))


def _prepare_istartswith(pattern: Any) -> Test:
    if pattern is None:
        return _never
    prefix = _string_pattern("istartswith", pattern).lower()
    return lambda value: bool(_decoded(value).lower().startswith(prefix))


def _prepare_endswith(pattern: Any) -> Test:
    if pattern is None:
        return _never
    suffix = _string_pattern("endswith", pattern)
    return lambda value: bool(_decoded(value).endswith(suffix))


def _prepare_iendswith(pattern: Any) -> Test:
    if pattern is None:
        return _never
    suffix = _string_pattern("iendswith", pattern).lower()
    return lambda value: bool(_decoded(value).lower().endswith(suffix))


def _prepare_lessthan(pattern: Any) -> Test:
    if pattern is None:
        return _never
    # No decoding and no number parsing: 3 < "5" raises, so the criterion fails.
    return lambda value: bool(value < pattern)


def _prepare_greaterthan(pattern: Any) -> Test:
    if pattern is None:
        return _never
    return lambda value: bool(value > pattern)


def _prepare_matchwildcard(pattern: Any) -> Test:
    if pattern is None:
        return _never
    # fnmatch on Linux is case-sensitive, and rejects anything but text.
    compiled = re.compile(fnmatch.translate(_string_pattern("matchwildcard", pattern)))

    def test(value: Any) -> bool:
        value = _decoded(value)
        if not isinstance(value, str):
            raise TypeError(f"matchwildcard needs a string value, not {type(value).__name__}")
        return compiled.match(value) is not None

    return test


def _compile_regex(name: str, pattern: Any, flags: int) -> re.Pattern[str]:
    text = _string_pattern(name, pattern)
    try:
        return re.compile(text, flags)
    except re.error as exc:
        raise _PatternError(f"invalid regular expression {text!r}: {exc}") from None


def _prepare_matchregex(pattern: Any) -> Test:
    if pattern is None:
        return _never
    # The deprecated matchregex anchors at the start (re.match) and lets "."
    # match newlines; regex and iregex search anywhere without DOTALL.
    compiled = _compile_regex("matchregex", pattern, re.DOTALL)
    return lambda value: compiled.match(_decoded(value)) is not None


def _prepare_regex(pattern: Any) -> Test:
    if pattern is None:
        return _never
    compiled = _compile_regex("regex", pattern, 0)
    return lambda value: compiled.search(_decoded(value)) is not None


def _prepare_iregex(pattern: Any) -> Test:
    if pattern is None:
        return _never
    compiled = _compile_regex("iregex", pattern, re.IGNORECASE)
    return lambda value: compiled.search(_decoded(value)) is not None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_date(value: Any) -> datetime:
    # StackStorm reads str(value) with ciso8601 (ISO 8601 / RFC 3339) and falls
    # back to dateutil's guessing parser. Squall reads ISO 8601 and RFC 2822
    # dates ("Tue, 15 Nov 1994 08:12:31 GMT"); other free-form dates fail.
    text = str(value)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            raise ValueError(f"{text!r} is not a date") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)  # a date without a zone is UTC
    return parsed.astimezone(UTC)


def _seconds(name: str, pattern: Any) -> float:
    try:
        # float() like StackStorm: "60" is as good as 60.
        return float(pattern)
    except (TypeError, ValueError):
        raise _PatternError(f"{name} needs a number of seconds, not {pattern!r}") from None


def _prepare_timediff_lt(pattern: Any) -> Test:
    if pattern is None:
        return _never
    limit = _seconds("timediff_lt", pattern)
    return lambda value: (_utcnow() - _parse_date(value)).total_seconds() < limit


def _prepare_timediff_gt(pattern: Any) -> Test:
    if pattern is None:
        return _never
    limit = _seconds("timediff_gt", pattern)
    return lambda value: (_utcnow() - _parse_date(value)).total_seconds() > limit


def _prepare_exists(pattern: Any) -> Test:
    # A null value and a missing key are the same thing to StackStorm.
    return lambda value: value is not None


def _prepare_nexists(pattern: Any) -> Test:
    return lambda value: value is None


def _prepare_inside(pattern: Any) -> Test:
    if pattern is None:
        return _never
    pattern = _decoded(pattern)
    # The reverse of contains: the payload value is looked for in the pattern
    # (a list, or a string it must be a substring of).
    return lambda value: _decoded(value) in pattern


def _prepare_ninside(pattern: Any) -> Test:
    if pattern is None:
        return _never
    pattern = _decoded(pattern)
    return lambda value: _decoded(value) not in pattern


def _operators() -> dict[str, Operator]:
    table: list[tuple[tuple[str, ...], Callable[[Any], Test] | None, str, str]] = [
        (("equals", "eq"), _prepare_equals, "{v} equals {p}", "{v} does not equal {p}"),
        (("nequals", "neq"), _prepare_nequals, "{v} differs from {p}", "{v} equals {p}"),
        (
            ("iequals", "ieq"),
            _prepare_iequals,
            "{v} equals {p} ignoring case",
            "{v} differs from {p} even ignoring case",
        ),
        (("contains",), _prepare_contains, "{v} contains {p}", "{v} does not contain {p}"),
        (("ncontains",), _prepare_ncontains, "{v} does not contain {p}", "{v} contains {p}"),
        (
            ("icontains",),
            _prepare_icontains,
            "{v} contains {p} ignoring case",
            "{v} does not contain {p} even ignoring case",
        ),
        (
            ("incontains",),
            _prepare_incontains,
            "{v} does not contain {p} even ignoring case",
            "{v} contains {p} ignoring case",
        ),
        (
            ("startswith",),
            _prepare_startswith,
            "{v} starts with {p}",
            "{v} does not start with {p}",
        ),
        (
            ("istartswith",),
            _prepare_istartswith,
            "{v} starts with {p} ignoring case",
            "{v} does not start with {p} even ignoring case",
        ),
        (("endswith",), _prepare_endswith, "{v} ends with {p}", "{v} does not end with {p}"),
        (
            ("iendswith",),
            _prepare_iendswith,
            "{v} ends with {p} ignoring case",
            "{v} does not end with {p} even ignoring case",
        ),
        (("lessthan", "lt"), _prepare_lessthan, "{v} is less than {p}", "{v} is not less than {p}"),
        (
            ("greaterthan", "gt"),
            _prepare_greaterthan,
            "{v} is greater than {p}",
            "{v} is not greater than {p}",
        ),
        (
            ("matchwildcard",),
            _prepare_matchwildcard,
            "{v} matches the wildcard {p}",
            "{v} does not match the wildcard {p}",
        ),
        (
            ("matchregex",),
            _prepare_matchregex,
            "{v} matches the regex {p} from its start",
            "{v} does not match the regex {p} from its start",
        ),
        (
            ("regex",),
            _prepare_regex,
            "{v} matches the regex {p}",
            "{v} does not match the regex {p}",
        ),
        (
            ("iregex",),
            _prepare_iregex,
            "{v} matches the regex {p} ignoring case",
            "{v} does not match the regex {p} even ignoring case",
        ),
        (
            ("timediff_lt", "td_lt"),
            _prepare_timediff_lt,
            "{v} is less than {p} seconds ago",
            "{v} is not less than {p} seconds ago",
        ),
        (
            ("timediff_gt", "td_gt"),
            _prepare_timediff_gt,
            "{v} is more than {p} seconds ago",
            "{v} is not more than {p} seconds ago",
        ),
        (("exists",), _prepare_exists, "the key has the value {v}", "the key has no value"),
        (("nexists",), _prepare_nexists, "the key has no value", "the key has the value {v}"),
        (("inside", "in"), _prepare_inside, "{v} is in {p}", "{v} is not in {p}"),
        (("ninside", "nin"), _prepare_ninside, "{v} is not in {p}", "{v} is in {p}"),
        ((SEARCH,), None, "", ""),
    ]
    found: dict[str, Operator] = {}
    for names, prepare, passes, fails in table:
        operator = Operator(names[0], prepare, passes, fails)
        for name in names:
            found[name] = operator
    return found


OPERATORS: Final[Mapping[str, Operator]] = MappingProxyType(_operators())
"""Every operator name StackStorm knows, aliases included (``eq`` and ``equals``...)."""


def operator_names() -> list[str]:
    """All operator names and aliases, sorted."""
    return sorted(OPERATORS)


# --------------------------------------------------------------------------- key paths
#
# StackStorm resolves a criteria key with jsonpath-rw against a context whose
# only payload entry is the root ("trigger", or "item" in a search). This is
# that dialect: dotted names, quoted names, "*", comma lists of names, "..",
# [index] (negative too), [*], [start:end], ['name'] and a leading "$.".
# Its filters, unions, named operators and groups (where, |, &, `this`,
# parentheses) are rejected when the rule loads.


class _PathSyntaxError(ValueError):
    pass


_TOKEN_RE = re.compile(
    r"""
    (?P<space>[ \t\n]+)
  | (?P<dots>\.\.)
  | (?P<name>[A-Za-z_@][A-Za-z0-9_@\-]*)
  | (?P<number>-?\d+)
  | (?P<quoted>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<operator>`(?:[^`\\]|\\.)*`)
  | (?P<char>[*.\[\]()$,:|&])
    """,
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "name", "number", "dots" or the character itself
    text: str
    value: Any
    column: int


def _tokens(path: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(path):
        match = _TOKEN_RE.match(path, position)
        if match is None:
            if path[position] in "'\"`":
                raise _PathSyntaxError(f"the quote at column {position + 1} is not closed")
            raise _PathSyntaxError(
                f"unexpected {path[position]!r} at column {position + 1}"
                " (quote a name with other characters: trigger.body.'x:y')"
            )
        kind = match.lastgroup or ""
        text = match.group()
        column = position + 1
        position = match.end()
        if kind == "space":
            continue
        if kind == "name" and text == "where":
            # jsonpath-rw reserves "where"; a field of that name must be quoted.
            raise _PathSyntaxError(
                f"'where' at column {column} is a JSONPath filter, which criteria keys do not"
                " support (quote it, 'where', if it is a field name)"
            )
        if kind == "operator":
            raise _PathSyntaxError(f"{text} at column {column} is not supported in criteria keys")
        if kind == "quoted":
            found.append(_Token("name", text, _UNESCAPE_RE.sub(r"\1", text[1:-1]), column))
        elif kind == "number":
            found.append(_Token("number", text, int(text), column))
        elif kind == "char":
            found.append(_Token(text, text, text, column))
        else:
            found.append(_Token(kind, text, text, column))
    return found


class _Node:
    """One step of a path: from the values found so far, the values found next."""

    __slots__ = ()

    def find(self, values: list[Any]) -> list[Any]:
        raise NotImplementedError


class _Fields(_Node):
    __slots__ = ("names",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find(self, values: list[Any]) -> list[Any]:
        found: list[Any] = []
        for value in values:
            names: tuple[Any, ...] = self.names
            if "*" in names:
                try:
                    names = tuple(value.keys())
                except AttributeError:
                    names = ()
            for name in names:
                try:  # noqa: SIM105 (contextlib.suppress is slower)
                    found.append(value[name])
                except (TypeError, KeyError, AttributeError):
                    pass  # not a mapping, or no such key: no match
        return found


class _Index(_Node):
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def find(self, values: list[Any]) -> list[Any]:
        found: list[Any] = []
        for value in values:
            # Like jsonpath-rw: too short gives no match, but a value without a
            # length (null, a number) or a mapping without that key raises,
            # and a raising lookup fails the criterion.
            if len(value) > self.index:
                found.append(value[self.index])
        return found


class _Slice(_Node):
    __slots__ = ("end", "start")

    def __init__(self, start: int | None, end: int | None) -> None:
        self.start = start
        self.end = end

    def find(self, values: list[Any]) -> list[Any]:
        found: list[Any] = []
        for value in values:
            # jsonpath-rw treats a single mapping, integer or string as a list of one.
            if isinstance(value, (dict, int, str)):
                value = [value]
            found.extend(value[i] for i in range(len(value))[self.start : self.end])
        return found


class _Child(_Node):
    __slots__ = ("left", "right")

    def __init__(self, left: _Node, right: _Node) -> None:
        self.left = left
        self.right = right

    def find(self, values: list[Any]) -> list[Any]:
        return self.right.find(self.left.find(values))


class _Descendants(_Node):
    __slots__ = ("left", "right")

    def __init__(self, left: _Node, right: _Node) -> None:
        self.left = left
        self.right = right

    def find(self, values: list[Any]) -> list[Any]:
        found: list[Any] = []
        for value in self.left.find(values):
            self._walk(value, found)
        return found

    def _walk(self, value: Any, found: list[Any]) -> None:
        # Matches at a node come before matches below it, depth first.
        found.extend(self.right.find([value]))
        if isinstance(value, list):
            for item in value:
                self._walk(item, found)
        elif isinstance(value, dict):
            for item in value.values():
                self._walk(item, found)


class _PathParser:
    """Recursive descent over jsonpath-rw's grammar, for the supported part.

    ``..`` binds looser than ``.``, and brackets bind tightest, as in
    jsonpath-rw's precedence table.
    """

    def __init__(self, path: str) -> None:
        self.tokens = _tokens(path)
        self.position = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self, kind: str) -> _Token:
        token = self._peek()
        if token is None or token.kind != kind:
            raise self._unexpected(token, f"'{kind}'" if len(kind) == 1 else f"a {kind}")
        self.position += 1
        return token

    def _unexpected(self, token: _Token | None, wanted: str) -> _PathSyntaxError:
        if token is None:
            return _PathSyntaxError(f"the path ends where {wanted} was expected")
        hint = ""
        if token.kind == "number":
            hint = " (a list index goes in brackets: trigger.items[0])"
        elif token.kind in "$()|&":
            hint = f" ({token.text!r} is not supported in criteria keys)"
        return _PathSyntaxError(
            f"unexpected {token.text!r} at column {token.column}, {wanted} was expected{hint}"
        )

    def parse(self) -> list[list[_Node]]:
        """The path as terms joined by ``..``, each a list of ``.``-joined steps."""
        token = self._peek()
        if token is not None and token.kind == "$":
            # "$.trigger.a" is "trigger.a": the root is the lookup context itself.
            self.position += 1
            token = self._peek()
            if token is not None and token.kind == ".":
                self.position += 1
            elif token is None or token.kind != "[":
                raise self._unexpected(token, "'.' after '$'")
        terms = [self._term()]
        while (token := self._peek()) is not None and token.kind == "dots":
            self.position += 1
            terms.append(self._term())
        token = self._peek()
        if token is not None:
            raise self._unexpected(token, "'.', '..' or '['")
        return terms

    def _term(self) -> list[_Node]:
        steps = self._step()
        while (token := self._peek()) is not None and token.kind == ".":
            self.position += 1
            steps.extend(self._step())
        return steps

    def _step(self) -> list[_Node]:
        token = self._peek()
        steps: list[_Node]
        if token is not None and token.kind == "*":
            self.position += 1
            steps = [_Fields(("*",))]
        elif token is not None and token.kind == "name":
            steps = [_Fields(self._names())]
        elif token is not None and token.kind == "[":
            steps = [self._bracket()]
        else:
            raise self._unexpected(token, "a name")
        while (token := self._peek()) is not None and token.kind == "[":
            steps.append(self._bracket())
        return steps

    def _names(self) -> tuple[str, ...]:
        names = [self._take("name").value]
        while (token := self._peek()) is not None and token.kind == ",":
            self.position += 1
            names.append(self._take("name").value)
        return tuple(names)

    def _bracket(self) -> _Node:
        self._take("[")
        token = self._peek()
        node: _Node
        if token is not None and token.kind == "*":
            self.position += 1
            node = _Slice(None, None)
        elif token is not None and token.kind == "name":
            node = _Fields(self._names())
        else:
            start = self._take("number").value if token and token.kind == "number" else None
            token = self._peek()
            if token is not None and token.kind == ":":
                self.position += 1
                token = self._peek()
                end = self._take("number").value if token and token.kind == "number" else None
                node = _Slice(start, end)
            elif start is not None:
                node = _Index(start)
            else:
                raise self._unexpected(token, "an index, '*', a slice or a name")
        self._take("]")
        return node


def _chain(steps: list[_Node]) -> _Node:
    node = steps[0]
    for step in steps[1:]:
        node = _Child(node, step)
    return node


_MISSING: Final = object()


def _fast_lookup(steps: tuple[str | int, ...]) -> Callable[[Any], Any]:
    """A lookup for the usual path of plain names and indexes, without lists of matches."""

    def find(value: Any) -> Any:
        for step in steps:
            if isinstance(step, str):
                if type(value) is dict:
                    value = value.get(step, _MISSING)
                    if value is _MISSING:
                        return None
                else:
                    try:
                        value = value[step]
                    except (TypeError, KeyError, AttributeError):
                        return None
            elif len(value) > step:  # raises like _Index does
                value = value[step]
            else:
                return None
        return value

    return find


def _missing(value: Any) -> Any:
    return None


@functools.lru_cache(maxsize=4096)
def _compile_path(key: str, root: str) -> Callable[[Any], Any]:
    """A function from the root's data to the first value ``key`` finds (None if none).

    Raises :class:`_PathSyntaxError` for a key that cannot be read.
    """
    # As in StackStorm, everything from the first "#" is dropped, so a rule can
    # test one field twice: trigger.count#1, trigger.count#2.
    path = key.split("#", 1)[0]
    if not path.strip():
        raise _PathSyntaxError("the key is empty; it should look like trigger.body.name")
    terms = _PathParser(path).parse()
    first = terms[0][0]
    if not isinstance(first, _Fields) or len(first.names) != 1 or first.names[0] == "*":
        raise _PathSyntaxError(f"the path must start with a name such as {root}")
    if first.names[0] in _DATASTORE_ROOTS:
        # StackStorm would hand back a datastore lookup object here, which no
        # operator compares sensibly; a pattern template is the way to read the datastore.
        raise _PathSyntaxError(
            "datastore values cannot be criteria keys; use them in the pattern,"
            " e.g. pattern: '{{ st2kv.system.my_key }}'"
        )
    plain = len(terms) == 1 and all(
        isinstance(step, _Index)
        or (isinstance(step, _Fields) and len(step.names) == 1 and step.names[0] != "*")
        for step in terms[0]
    )
    if plain:
        if first.names[0] != root:
            return _missing  # only the root is in the lookup context
        steps: list[str | int] = []
        for step in terms[0][1:]:
            if isinstance(step, _Fields):
                steps.append(step.names[0])
            elif isinstance(step, _Index):
                steps.append(step.index)
        return _fast_lookup(tuple(steps))
    node = _chain(terms[0])
    for term in terms[1:]:
        node = _Descendants(node, _chain(term))

    def find(value: Any) -> Any:
        # Every match is computed, although only the first is used, because a
        # later one that raises makes StackStorm fail the whole lookup.
        found = node.find([{root: value}])
        return found[0] if found else None

    return find


def lookup(payload: Any, path: str) -> Any:
    """The value at ``path`` (``trigger.body.name``) in a trigger payload, or None.

    Paths are read as criteria keys are (first match of a JSONPath). A
    lookup that StackStorm would fail, such as an index into null, gives
    None here. Raises :class:`InvalidInput` for a path that cannot be read.
    """
    try:
        find = _compile_path(path, TRIGGER_ROOT)
    except _PathSyntaxError as exc:
        raise InvalidInput(f"payload path {path!r}: {exc}") from None
    try:
        return find(payload)
    except Exception:
        return None


# --------------------------------------------------------------------------- patterns

# StackStorm's rewrite of a pattern so that its expressions keep their types:
# per line, from the first "{{" to the last "}}", "| to_complex" (JSON) is
# appended before the closing braces.
_COMPLEX_RE = re.compile(r"({{)\s*(.*)\s*(}})")
_NEWLINES_RE = re.compile(r"\r\n|\r|\n")


def _as_jinja_text(text: str) -> str:
    # StackStorm renders every string pattern, and Jinja turns any line break
    # into "\n" and drops one trailing newline (a YAML block scalar's). A
    # "{#" in a plain pattern stays text here, where Jinja would see a comment.
    lines = _NEWLINES_RE.split(text)
    if lines[-1] == "":
        lines.pop()
    return "\n".join(lines)


def _jinja_literal(value: Any) -> str:
    """JSON-like ``value`` written as a Jinja expression."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    if isinstance(value, str):
        # Jinja reads backslash escapes in string literals, and non-ASCII as is.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_jinja_literal(item) for item in value) + "]"
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        pairs = (f"{_jinja_literal(k)}: {_jinja_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise TypeError(f"a {type(value).__name__} cannot be handed to a template")


@dataclass(frozen=True, slots=True)
class _Template:
    source: str
    typed_source: str | None  # the "| to_complex" rewrite, when the pattern has {{ }}
    nested: bool  # a pattern inside a search, rendered for each item

    def render(self, render: Render | None, data: Any) -> Any:
        if render is None:
            raise _PatternError("the pattern is a template and no renderer was given")
        prefix = ""
        if self.nested:
            # StackStorm renders a nested pattern with "item" (the list item)
            # and without "trigger". The caller's render function only knows
            # the trigger context, so the item is written into the template.
            prefix = f"{{% set item = {_jinja_literal(data)} %}}{{% set trigger = none %}}"
        if self.typed_source is not None:
            text = render(prefix + self.typed_source)
            if not isinstance(text, str):
                return text
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                pass  # not JSON (e.g. text around the expression): render as text
        return render(prefix + self.source)


# --------------------------------------------------------------------------- criteria


class _Criterion:
    __slots__ = (
        "condition",
        "find",
        "key",
        "literal",
        "nested",
        "operator",
        "spec",
        "template",
        "test",
    )

    def __init__(
        self,
        key: str,
        operator: str,
        spec: Operator,
        find: Callable[[Any], Any],
        literal: Any,
        *,
        template: _Template | None = None,
        test: Test | None = None,
        condition: str = "",
        nested: tuple[_Criterion, ...] = (),
    ) -> None:
        self.key = key
        self.operator = operator  # as the rule spells it
        self.spec = spec
        self.find = find
        self.literal = literal  # the pattern as written (line breaks as Jinja leaves them)
        self.template = template
        self.test = test  # prepared once when the pattern is not a template
        self.condition = condition  # search only
        self.nested = nested  # search only

    def _prepared(self, data: Any, render: Render | None) -> Test:
        if self.test is not None:
            return self.test
        if self.template is None or self.spec.prepare is None:
            raise RuntimeError(f"criterion {self.key} was not compiled")
        return self.spec.prepare(self.template.render(render, data))

    def passes(self, data: Any, render: Render | None) -> bool:
        try:
            test = self.test
            if test is not None:
                return test(self.find(data))
            if self.nested:
                return self._search(self.find(data), render)
            test = self._prepared(data, render)
            return bool(test(self.find(data)))
        except Exception:
            # Whatever goes wrong, as in StackStorm, this criterion does not hold.
            return False

    def _items(self, value: Any) -> Any:
        # A single mapping is searched as a list of one; anything else is
        # iterated as it is (a string by character; null raises).
        return [value] if isinstance(value, dict) else value

    def _item_passes(self, item: Any, render: Render | None) -> bool:
        if self.condition in ("any", "all"):
            return all(child.passes(item, render) for child in self.nested)
        return any(child.passes(item, render) for child in self.nested)

    def _search(self, value: Any, render: Render | None) -> bool:
        # Empty lists follow any() and all(): "any" fails and "all" passes.
        items = (self._item_passes(item, render) for item in self._items(value))
        if self.condition in ("any", "any2any"):
            return any(items)
        return all(items)

    def explain(self, data: Any, render: Render | None) -> Verdict:
        # Same order as StackStorm: render the pattern, look the key up, compare.
        pattern = self.literal
        if self.template is not None:
            try:
                pattern = self.template.render(render, data)
            except Exception as exc:
                return self._verdict(self.literal, None, False, _render_failure(exc))
        try:
            value = self.find(data)
        except Exception as exc:
            reason = f"the key could not be read: {_problem(exc)}"
            return self._verdict(pattern, None, False, reason)
        if self.nested:
            return self._explain_search(pattern, value, render)
        try:
            test = self.test
            if test is None and self.spec.prepare is not None:
                test = self.spec.prepare(pattern)
            passed = bool(test(value)) if test is not None else False
        except Exception as exc:
            reason = f"{self.operator} failed: {_problem(exc)}{self._nothing_found(value)}"
            return self._verdict(pattern, value, False, reason)
        if pattern is None and not passed and self.spec.name not in _NULL_PATTERN_OK:
            return self._verdict(pattern, value, False, "a null pattern never matches")
        text = self.spec.passes if passed else self.spec.fails
        reason = text.format(v=_show(value), p=_show(pattern))
        if not passed and self.spec.name not in ("exists", "nexists"):
            reason += self._nothing_found(value)
        return self._verdict(pattern, value, passed, reason)

    def _explain_search(self, pattern: Any, value: Any, render: Render | None) -> Verdict:
        try:
            outcomes = [self._item_passes(item, render) for item in self._items(value)]
        except Exception as exc:
            reason = f"search failed: {_problem(exc)}{self._nothing_found(value)}"
            return self._verdict(pattern, value, False, reason)
        every_item = self.condition in ("all", "all2any")
        every_child = self.condition in ("any", "all")
        passed = all(outcomes) if every_item else any(outcomes)
        reason = (
            f"{sum(outcomes)} of {len(outcomes)} items match"
            f" {'all' if every_child else 'any'} of the nested criteria;"
            f" condition {self.condition!r} needs {'every' if every_item else 'at least one'} item"
        )
        return self._verdict(pattern, value, passed, reason)

    def _nothing_found(self, value: Any) -> str:
        return f" (nothing found at {self.key})" if value is None else ""

    def _verdict(self, pattern: Any, value: Any, passed: bool, reason: str) -> Verdict:
        return Verdict(self.key, self.operator, pattern, value, passed, reason)


_NULL_PATTERN_OK = ("nequals", "exists", "nexists")


def _render_failure(exc: BaseException) -> str:
    return f"the pattern could not be rendered: {_problem(exc)}"


class Criteria:
    """A rule's compiled criteria; build it with :func:`compile_criteria`."""

    __slots__ = ("_criteria",)

    def __init__(self, criteria: tuple[_Criterion, ...]) -> None:
        self._criteria = criteria

    def __len__(self) -> int:
        return len(self._criteria)

    def __repr__(self) -> str:
        keys = ", ".join(f"{c.key} {c.operator}" for c in self._criteria)
        return f"Criteria({keys})"

    def matches(self, payload: Any, render: Render | None = None) -> bool:
        """True if ``payload`` satisfies every criterion (stops at the first that fails).

        ``render`` renders template patterns with the caller's context
        (datastore, ``trigger``); without it a template pattern fails.
        """
        criteria = self._criteria
        if not criteria:
            return True
        if not payload:
            return False  # StackStorm matches no criteria against an empty payload
        return all(criterion.passes(payload, render) for criterion in criteria)

    def explain(self, payload: Any, render: Render | None = None) -> list[Verdict]:
        """Every criterion's verdict on ``payload``, in the rule's order.

        The payload matches when every verdict passed (and there is none for
        empty criteria).
        """
        if self._criteria and not payload:
            reason = "the trigger payload is empty, and criteria never match an empty payload"
            return [
                Verdict(c.key, c.operator, c.literal, None, False, reason) for c in self._criteria
            ]
        return [criterion.explain(payload, render) for criterion in self._criteria]


# --------------------------------------------------------------------------- compiling


def _unknown_operator(name: Any) -> str:
    if not isinstance(name, str):
        return f"the operator must be a name such as equals, not {name!r}"
    close = difflib.get_close_matches(name.lower(), operator_names(), n=3, cutoff=0.6)
    if close:
        names = " or ".join(repr(c) for c in close)
        return f"unknown operator {name!r}; did you mean {names}?"
    return f"unknown operator {name!r}; the operators are: {', '.join(operator_names())}"


def _compile_one(key: Any, spec: Any, root: str, parent: str | None) -> _Criterion:
    shown = key if parent is None else f"{parent} > {key}"
    if not isinstance(key, str):
        raise CriteriaError(str(shown), "a criteria key must be text such as trigger.body.name")
    if not isinstance(spec, Mapping):
        raise CriteriaError(shown, "must be a mapping with 'type' and 'pattern'")
    operator = spec.get("type")
    if operator is None:
        raise CriteriaError(shown, "no operator: add 'type', e.g. type: equals")
    if not isinstance(operator, str):
        raise CriteriaError(shown, _unknown_operator(operator))
    if parent is not None and operator.lower() != SEARCH and operator.lower() in OPERATORS:
        # StackStorm checks operator names only at the top; nested ones are
        # looked up lowercased (except "search", which must be spelled so).
        operator_spec = OPERATORS[operator.lower()]
    elif operator in OPERATORS:
        operator_spec = OPERATORS[operator]
    else:
        raise CriteriaError(shown, _unknown_operator(operator))
    pattern = spec.get("pattern")
    if pattern is None and parent is None:
        # StackStorm refuses a rule without a pattern, even for exists and nexists.
        raise CriteriaError(shown, f"no pattern for operator {operator!r} (any value will do)")
    try:
        find = _compile_path(key, root)
    except _PathSyntaxError as exc:
        raise CriteriaError(shown, f"cannot read the key: {exc}") from None

    if operator_spec.name == SEARCH:
        return _compile_search(shown, key, operator, operator_spec, spec, find)

    if isinstance(pattern, str) and is_template(pattern):
        typed = _COMPLEX_RE.sub(r"\1\2 | to_complex\3", pattern)
        template = _Template(pattern, typed if typed != pattern else None, root == ITEM_ROOT)
        return _Criterion(key, operator, operator_spec, find, pattern, template=template)
    if isinstance(pattern, str):
        pattern = _as_jinja_text(pattern)
    if operator_spec.prepare is None:
        raise CriteriaError(shown, f"operator {operator!r} cannot be prepared")
    try:
        test = operator_spec.prepare(pattern)
    except Exception as exc:
        # A literal pattern that can never work (say an invalid regex) is an
        # error now; StackStorm would load the rule and never match it.
        raise CriteriaError(shown, _problem(exc)) from None
    return _Criterion(key, operator, operator_spec, find, pattern, test=test)


def _compile_search(
    shown: str,
    key: str,
    operator: str,
    operator_spec: Operator,
    spec: Mapping[str, Any],
    find: Callable[[Any], Any],
) -> _Criterion:
    condition = spec.get("condition")
    if condition not in SEARCH_CONDITIONS:
        choices = ", ".join(SEARCH_CONDITIONS)
        got = "no condition" if condition is None else f"condition {condition!r}"
        raise CriteriaError(shown, f"search has {got}; use one of {choices}")
    pattern = spec.get("pattern")
    if not isinstance(pattern, Mapping) or not pattern:
        raise CriteriaError(
            shown,
            "search needs a pattern of nested criteria on each item,"
            " e.g. pattern: {item.name: {type: equals, pattern: x}}",
        )
    nested = tuple(
        _compile_one(child_key, child, ITEM_ROOT, shown) for child_key, child in pattern.items()
    )
    return _Criterion(
        key, operator, operator_spec, find, dict(pattern), condition=condition, nested=nested
    )


def compile_criteria(criteria: Mapping[str, Any] | None) -> Criteria:
    """Check a rule's criteria and prepare them for matching.

    Raises :class:`CriteriaError` (an ``InvalidInput``) naming the criterion
    and its problem: an unknown operator, no ``type`` or ``pattern``, a key
    that is not a payload path, a regex that does not compile, a search
    without a valid ``condition`` or nested criteria. Patterns that are
    templates are checked only when rendered.
    """
    if criteria is None:
        return Criteria(())
    if not isinstance(criteria, Mapping):
        raise InvalidInput("criteria must be a mapping of payload keys to {type, pattern}")
    return Criteria(
        tuple(_compile_one(key, spec, TRIGGER_ROOT, None) for key, spec in criteria.items())
    )
