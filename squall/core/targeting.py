r"""Targeting expressions: which hosts of the inventory something runs on.

One grammar serves the CLI, the API, runners, rollouts and the UI. It reads
MCollective's ``-W``/``-S`` filters and Salt's compound matcher as they are
written, and adds globs, lists, inventory groups and dotted fact names.

Examples::

    all                                   every host (so does *)
    web-01                                one host by name
    web-* and not web-03                  a glob, minus one host
    web-01,web-02,db-*                    any of these names or globs
    ~^db\d+$                              a regex on the name
    @webservers env=prod                  no operator between terms: and
    @webservers && !(hagroup=c || cpus<8) MCollective's spelling
    os~^ubuntu and memory_mb>=4096        a regex and a number on facts
    packages.nginx~^1\.22                 a nested fact
    os_name="Debian GNU/Linux 12 (bookworm)"
    G@os:Ubuntu and S@10.0.0.0/8          Salt's compound matcher

Grammar (EBNF)::

    expression  = disjunction ;
    disjunction = conjunction , { ( "or" | "||" ) , conjunction } ;
    conjunction = negation , { [ "and" | "&&" ] , negation } ;
    negation    = { "not" | "!" } , primary ;
    primary     = "(" , disjunction , ")" | term ;
    term        = "all" | "*"
                | glob , { "," , glob }            (* names or globs: any of them *)
                | "~" , regex | "/" , regex , "/"  (* re.search on the name *)
                | "@" , group
                | fact , operator , value
                | "G@" , fact , ":" , glob         (* Salt prefixes *)
                | "P@" , fact , ":" , regex
                | "E@" , regex
                | "L@" , glob , { "," , glob }
                | "N@" , group
                | "S@" , ( network | address ) ;
    operator    = "=" | "==" | "!=" | "~" | "=~" | "!~"
                | ">" | ">=" | "=>" | "<" | "<=" | "=<" ;

Keywords (``and``, ``or``, ``not``) are case-insensitive; ``not`` binds
tighter than ``and``, which binds tighter than ``or``. Whitespace is free
between terms and not allowed inside one, unless quoted.

Names. A bare term is a case-sensitive glob (:func:`fnmatch.fnmatchcase`)
on the host name, as in Salt; ``~regex`` and MCollective's ``/regex/``
search the name.

Facts. ``fact`` is a fact name; dots reach into nested facts
(``packages.nginx``), and a key that itself contains dots is found too.

* ``=`` and ``!=`` compare as text, case-sensitively, with two exceptions:
  ``true``/``false`` compare case-insensitively with boolean facts, and
  a number fact equals a number however either is written (``cpus=8``
  matches ``8`` and ``8.0``), while a text fact compares as text
  (``kernel=5.10`` does not match ``"5.1"``). A value holding ``*`` or ``?`` is a glob
  (Salt's ``G@`` semantics; ``[seq]`` then works too). A value between
  slashes is a regex, as in MCollective: ``country=/uk/`` is
  ``country~uk``.
* ``~`` and ``!~`` search a regex (:func:`re.search`, case-sensitive);
  slashes around it are dropped, as MCollective does for ``=~``.
* ``>``, ``>=``, ``<``, ``<=`` need a number; a host whose fact is not a
  number does not match.
* A list fact matches ``=``, ``~`` and the comparisons when any element
  does (``ipv4=10.0.0.1``); ``!=`` and ``!~`` are their exact negations.
* A missing fact (or a null one) matches only ``!=`` and ``!~``: a host
  with no ``env`` is not ``env=prod``.

Quoting. Single or double quotes make the characters between them one
term and hide the operators, prefixes, commas, parentheses and keywords
among them: ``os_name="Debian GNU/Linux 12 (bookworm)"``, ``"and"`` (a
host named and), ``motd="a=b"``, ``path="/var/"`` (literal, not a regex).
Glob characters keep their meaning inside quotes. A backslash escapes the
quote character that opened the quote; every other backslash is kept, so
regexes need no doubling.

Salt. ``G@`` and ``P@`` behave as in Salt: they ignore case, reach nested
keys with ``:`` (``G@packages:nginx:1.22*``; as values may hold colons,
``G@ipv6:fe80::1``, every split is tried, longest fact name first), and a
nested mapping matches when one of its keys does (``G@packages:nginx``).
``P@`` and ``E@`` anchor their regex at the start (``re.match``).
``L@`` takes globs (Salt: exact names), ``N@`` is an inventory group, and
``S@`` matches the host's address or any address in its ``ipv4``/``ipv6``
facts. Other prefixes (``I@`` pillar, ``J@``, ``R@`` range...) are errors.

MCollective. Bare words in MCollective's ``-W`` are Puppet classes; here
they are host names. Data plugins (``fstatus(...)``) are not supported.

:func:`parse` compiles an expression once (regexes included);
:func:`select` then checks it against an inventory (unknown groups and
facts are errors, as they are nearly always typos) and returns the
matching hosts in inventory order; :func:`resolve` also refuses an empty
result. :func:`describe` gives the canonical text of an expression.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import ipaddress
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeAlias

from squall.core.inventory import Host, Inventory
from squall.errors import InvalidInput

__all__ = [
    "All",
    "And",
    "Fact",
    "Grain",
    "Group",
    "Name",
    "NameList",
    "NameRegex",
    "Node",
    "Not",
    "Or",
    "Subnet",
    "TargetError",
    "describe",
    "fact_names",
    "parse",
    "resolve",
    "select",
]

_KEYWORDS = frozenset({"and", "or", "not"})
# Two-character operators first: the first operator in a term wins, and
# "=~" must not be read as "=" followed by a value starting with "~".
_OPERATORS = ("==", "=~", "=>", "=<", "!=", "!~", ">=", "<=", "=", "~", ">", "<")
_CANONICAL_OP = {"==": "=", "=~": "~", "=>": ">=", "=<": "<="}
_FACT_OPS = frozenset({"=", "!=", "~", "!~", ">", ">=", "<", "<="})
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_ORDERING_OPS = frozenset(_COMPARE)
_SALT_PREFIXES = ("E", "G", "L", "N", "P", "S")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_FACT_KEY = re.compile(r"[\w/-]+(?:\.[\w/-]+)*")
_GLOB_CHARS = frozenset("*?[")
_ADDRESS_FACTS = ("ipv4", "ipv6")
_LISTED = 20  # known groups or facts shown in an error before "... more"
_MISSING: Any = object()


class TargetError(InvalidInput):
    """A targeting expression is wrong: a syntax error, an invalid regex, an
    unknown group or fact, or (from :func:`resolve`) no host at all.

    The message shows the expression with a caret under ``position`` when
    the problem has one.
    """

    def __init__(self, expression: str, reason: str, position: int | None = None) -> None:
        message = reason
        if position is not None:
            # Tabs and newlines would shift the caret off its character.
            line = "".join(" " if c.isspace() else c for c in expression)
            message += f"\n  {line}\n  {' ' * position}^"
        super().__init__(message)
        self.expression = expression
        self.reason = reason
        self.position = position

    def to_dict(self) -> dict[str, object]:
        return {"faultstring": self.message, "position": self.position}


# --- the AST -----------------------------------------------------------------
#
# Nodes are immutable and compare by meaning: positions (kept to point at
# a term in errors found by select) and compiled matchers are left out of
# equality, so parse("a  and b") == parse("a and b").


@dataclass(frozen=True, slots=True)
class All:
    """Every host: ``all`` or ``*``."""


@dataclass(frozen=True, slots=True)
class Name:
    """A host name or a glob on it."""

    pattern: str
    _regex: re.Pattern[str] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        glob = any(c in _GLOB_CHARS for c in self.pattern)
        regex = re.compile(fnmatch.translate(self.pattern)) if glob else None
        object.__setattr__(self, "_regex", regex)

    def _keep(self, hosts: list[Host]) -> list[Host]:
        if self._regex is None:
            name = self.pattern
            return [h for h in hosts if h.name == name]
        match = self._regex.match
        return [h for h in hosts if match(h.name)]


@dataclass(frozen=True, slots=True)
class NameList:
    """Any of several names or globs: ``a,b,c`` or ``L@a,b,c``."""

    items: tuple[str, ...]
    _exact: frozenset[str] = field(init=False, compare=False, repr=False)
    _globs: tuple[Name, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [Name(item) for item in self.items]
        object.__setattr__(self, "_exact", frozenset(n.pattern for n in names if not n._regex))
        object.__setattr__(self, "_globs", tuple(n for n in names if n._regex))

    def _keep(self, hosts: list[Host]) -> list[Host]:
        exact = self._exact
        globs = [g._regex.match for g in self._globs if g._regex is not None]
        return [h for h in hosts if h.name in exact or any(m(h.name) for m in globs)]


@dataclass(frozen=True, slots=True)
class NameRegex:
    """A regex on the host name: ``~re`` and ``/re/`` search, Salt's ``E@re``
    matches at the start (``anchored``)."""

    pattern: str
    anchored: bool = False
    _regex: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    def _keep(self, hosts: list[Host]) -> list[Host]:
        test = self._regex.match if self.anchored else self._regex.search
        return [h for h in hosts if test(h.name)]


@dataclass(frozen=True, slots=True)
class Group:
    """The hosts of an inventory group and of its children: ``@name``, ``N@name``."""

    name: str
    pos: int | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Fact:
    """A comparison of a fact with a value.

    ``op`` is canonical: one of ``= != ~ !~ > >= < <=``.
    """

    key: str
    op: str
    value: str
    pos: int | None = field(default=None, compare=False, repr=False, kw_only=True)
    _path: tuple[str, ...] = field(init=False, compare=False, repr=False)
    _regex: re.Pattern[str] | None = field(init=False, compare=False, repr=False)
    _test: Callable[[Any], bool] = field(init=False, compare=False, repr=False)
    _text: str | None = field(init=False, compare=False, repr=False)  # = on plain text
    _negate: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in _FACT_OPS:
            raise ValueError(f"unknown operator {self.op!r}")
        regex, test, text = _fact_test(self.op, self.value)
        object.__setattr__(self, "_path", tuple(self.key.split(".")))
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_test", test)
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "_negate", self.op in ("!=", "!~"))

    def _keep(self, hosts: list[Host]) -> list[Host]:
        # The hottest loop of select(): locals, and string facts (the
        # usual kind) tested without a call.
        key, path, test, text, negate = self.key, self._path, self._test, self._text, self._negate
        nested = len(path) > 1
        kept = []
        for host in hosts:
            value = host.facts.get(key, _MISSING)
            if value.__class__ is str:
                hit = value == text if text is not None else test(value)
            else:
                if value is _MISSING and nested:
                    value = _lookup(host.facts, key, path)
                hit = _any_value(value, test)
            if hit is not negate:
                kept.append(host)
        return kept


def _any_value(value: Any, test: Callable[[Any], bool]) -> bool:
    if value is _MISSING or value is None:
        return False
    if isinstance(value, list | tuple | set | frozenset):
        return any(test(v) for v in value if v is not None)
    return test(value)


def _fact_test(
    op: str, value: str
) -> tuple[re.Pattern[str] | None, Callable[[Any], bool], str | None]:
    """The compiled regex, if any, the test of one fact value for a
    comparison (!= and !~ use the tests of = and ~), and the text a string
    fact must equal when that is all the test does.

    Each test is specialised for its value because it runs once per host
    (and list element): the common cases cost one comparison.
    """
    number = _number(value)
    if op in ("~", "!~"):
        regex = re.compile(value)
        search = regex.search

        def searches(v: Any) -> bool:
            if v.__class__ is str:
                return search(v) is not None
            text = _text(v)
            return text is not None and search(text) is not None

        return regex, searches, None

    if op in _ORDERING_OPS:
        if number is None:
            raise ValueError(f"expected a number after {op!r}, found {value!r}")
        compare = _COMPARE[op]
        wanted = number

        def orders(v: Any) -> bool:
            # An int compares with a Decimal exactly, without converting it.
            n = v if v.__class__ is int else _number(v)
            return n is not None and compare(n, wanted)

        return None, orders, None

    glob = re.compile(fnmatch.translate(value)) if "*" in value or "?" in value else None
    low = value.lower()
    boolean = low if low in ("true", "false") else None
    if glob is None and number is None and boolean is None:

        def is_text(v: Any) -> bool:
            return v == value if v.__class__ is str else _text(v) == value

        return None, is_text, value

    def equals(v: Any) -> bool:
        if boolean is not None:
            if isinstance(v, bool):
                return boolean == ("true" if v else "false")
            if isinstance(v, str) and v.lower() in ("true", "false"):
                return v.lower() == boolean
        # Numbers compare as numbers (cpus=8 matches 8.0), but text stays
        # text: kernel=5.10 must not match the string "5.1".
        if number is not None and isinstance(v, int | float) and not isinstance(v, bool):
            n = _number(v)
            if n is not None:
                return n == number
        text = _text(v)
        if text is None:
            return False
        if glob is not None:
            return glob.match(text) is not None
        return text == value

    return glob, equals, None


@dataclass(frozen=True, slots=True)
class Grain:
    """Salt's ``G@key:glob`` and ``P@key:regex`` on facts, with Salt's semantics."""

    kind: Literal["G", "P"]
    expr: str
    pos: int | None = field(default=None, compare=False, repr=False, kw_only=True)
    # (fact name, path, pattern) for each way of splitting expr at a colon,
    # longest fact name first, as Salt tries them.
    _tests: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = field(
        init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        parts = self.expr.split(":")
        if len(parts) < 2:
            raise ValueError(f"{self.kind}@ needs fact:value, e.g. {self.kind}@os:ubuntu")
        tests = []
        error: re.error | None = None
        for cut in range(len(parts) - 1, 0, -1):
            key = ".".join(parts[:cut])
            if not _FACT_KEY.fullmatch(key):
                continue
            value = ":".join(parts[cut:])
            source = fnmatch.translate(value) if self.kind == "G" else value
            try:
                tests.append((key, tuple(key.split(".")), re.compile(source, re.IGNORECASE)))
            except re.error as e:
                error = e
        if not tests:
            if error is not None:
                raise error
            raise ValueError(f"invalid fact name {parts[0]!r}")
        object.__setattr__(self, "_tests", tuple(tests))

    @property
    def keys(self) -> tuple[str, ...]:
        """The fact names this term may read, longest first."""
        return tuple(key for key, _, _ in self._tests)

    def _keep(self, hosts: list[Host]) -> list[Host]:
        return [h for h in hosts if self._matches(h)]

    def _matches(self, host: Host) -> bool:
        facts = host.facts
        for key, path, pattern in self._tests:
            value = facts.get(key, _MISSING)
            if value is _MISSING and len(path) > 1:
                value = _lookup(facts, key, path)
            if value is _MISSING or value is None:
                continue
            if value.__class__ is str:
                if pattern.match(value):
                    return True
                continue
            if isinstance(value, Mapping):
                # Salt: G@packages:nginx asks whether nginx is installed.
                if any(pattern.match(str(k)) for k in value):
                    return True
                continue
            for v in _scalars(value):
                text = _text(v)
                if text is not None and pattern.match(text):
                    return True
        return False


@dataclass(frozen=True, slots=True)
class Subnet:
    """Salt's ``S@``: the host's address, or one in its ipv4/ipv6 facts, is in ``network``."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def _keep(self, hosts: list[Host]) -> list[Host]:
        network = self.network
        return [h for h in hosts if any(a in network for a in _addresses(h))]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node: TypeAlias = All | Name | NameList | NameRegex | Group | Fact | Grain | Subnet | Not | And | Or


# --- fact values ---------------------------------------------------------------


def _lookup(facts: Mapping[str, Any], key: str, path: tuple[str, ...]) -> Any:
    """The value of a fact, or _MISSING; ``a.b`` is facts["a.b"] or facts["a"]["b"]."""
    value = facts.get(key, _MISSING)
    if value is not _MISSING or len(path) == 1:
        return value
    for cut in range(1, len(path)):
        inner = facts.get(".".join(path[:cut]), _MISSING)
        if isinstance(inner, Mapping):
            found = _lookup(inner, ".".join(path[cut:]), path[cut:])
            if found is not _MISSING:
                return found
    return _MISSING


def _scalars(value: Any) -> Iterable[Any]:
    if value is _MISSING or value is None:
        return ()
    if isinstance(value, list | tuple | set | frozenset):
        return [v for v in value if v is not None]
    return (value,)


def _text(value: Any) -> str | None:
    """A fact value as the text that = and ~ compare, or None for a mapping or list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return None
    return str(value)


def _number(value: Any) -> Decimal | None:
    # Decimal rather than float, so that 20-digit serial numbers stay exact.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return Decimal(value)
    return None


def _addresses(host: Host) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    texts: list[Any] = [host.address]
    for key in _ADDRESS_FACTS:
        texts.extend(_scalars(host.facts.get(key)))
    for text in texts:
        if isinstance(text, str):
            address = _address(text)
            if address is not None:
                yield address


# Parsing an address costs more than the test itself; fleets repeat theirs
# on every targeting.
@functools.lru_cache(maxsize=65536)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_interface(text).ip
    except ValueError:
        return None  # a DNS name, or not an address at all


# --- tokens --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(", ")", "and", "or", "not" or "term"
    pos: int
    text: str  # as written, for messages
    end: int
    chars: str = ""  # a term's characters, quotes removed
    offsets: tuple[int, ...] = ()  # the position of each of chars in the expression
    quoted: tuple[bool, ...] = ()  # whether each of chars was quoted
    quotes: tuple[int, ...] = ()  # where in chars each quote began, for ""


def _tokenize(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(expression)
    while i < n:
        c = expression[i]
        two = expression[i : i + 2]
        if c.isspace():
            i += 1
        elif c in "()":
            tokens.append(_Token(c, i, c, i + 1))
            i += 1
        elif two in ("&&", "||"):
            tokens.append(_Token("and" if two == "&&" else "or", i, two, i + 2))
            i += 2
        elif c == "!" and two not in ("!=", "!~"):
            tokens.append(_Token("not", i, c, i + 1))
            i += 1
        else:
            token = _read_term(expression, i)
            tokens.append(token)
            i = token.end
    return tokens


def _read_term(expression: str, start: int) -> _Token:
    chars: list[str] = []
    offsets: list[int] = []
    quoted: list[bool] = []
    quotes: list[int] = []
    depth = 0
    i, n = start, len(expression)
    while i < n:
        c = expression[i]
        if c in "'\"":
            quotes.append(len(chars))
            j = i + 1
            while True:
                if j >= n:
                    raise _syntax(expression, i, f"unclosed quote {c}")
                d = expression[j]
                if d == c:
                    break
                if d == "\\" and expression[j + 1 : j + 2] == c:
                    j += 1
                    d = c
                chars.append(d)
                offsets.append(j)
                quoted.append(True)
                j += 1
            i = j + 1
            continue
        if c.isspace():
            break
        if depth == 0 and expression.startswith(("&&", "||"), i):
            break
        if c == ")":
            # A term may hold balanced parentheses (a regex group); an
            # unbalanced one closes the group the term is in.
            if depth == 0:
                break
            depth -= 1
        elif c == "(":
            if not any(quoted) and "".join(chars).lower() in _KEYWORDS:
                break  # not(...), and(...)
            depth += 1
        chars.append(c)
        offsets.append(i)
        quoted.append(False)
        i += 1
    text = "".join(chars)
    kind = text.lower() if not any(quoted) and text.lower() in _KEYWORDS else "term"
    return _Token(
        kind, start, expression[start:i], i, text, tuple(offsets), tuple(quoted), tuple(quotes)
    )


# --- the parser ------------------------------------------------------------------


def _syntax(expression: str, position: int, problem: str) -> TargetError:
    return TargetError(expression, f"syntax error at position {position}: {problem}", position)


def parse(expression: str) -> Node:
    """The AST of ``expression``; a TargetError says where it is wrong."""
    return _Parser(expression).parse()


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.i = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Node:
        if not self.tokens:
            raise _syntax(self.expression, 0, "the expression is empty")
        node = self.disjunction(None)
        token = self.peek()
        if token is not None:  # only a ")" stops a disjunction early
            raise _syntax(self.expression, token.pos, "')' without a matching '('")
        return node

    def disjunction(self, after: _Token | None) -> Node:
        parts = [self.conjunction(after)]
        while (token := self.peek()) is not None and token.kind == "or":
            self.i += 1
            parts.append(self.conjunction(token))
        return parts[0] if len(parts) == 1 else Or(_flatten(Or, parts))

    def conjunction(self, after: _Token | None) -> Node:
        parts = [self.negation(after)]
        while (token := self.peek()) is not None and token.kind not in (")", "or"):
            if token.kind == "and":
                self.i += 1
                parts.append(self.negation(token))
            else:  # MCollective: terms side by side must all match
                parts.append(self.negation(None))
        return parts[0] if len(parts) == 1 else And(_flatten(And, parts))

    def negation(self, after: _Token | None) -> Node:
        token = self.peek()
        if token is not None and token.kind == "not":
            self.i += 1
            return Not(self.negation(token))
        return self.primary(after)

    def primary(self, after: _Token | None) -> Node:
        token = self.peek()
        if token is None or token.kind in (")", "and", "or"):
            problem = "expected a term" + (f" after {after.text!r}" if after else "")
            if token is None:
                raise _syntax(self.expression, len(self.expression), problem)
            raise _syntax(self.expression, token.pos, f"{problem}, found {token.text!r}")
        self.i += 1
        if token.kind == "(":
            node = self.disjunction(token)
            if self.peek() is None:
                raise _syntax(
                    self.expression,
                    len(self.expression),
                    f"expected ')' to close the '(' at position {token.pos}",
                )
            self.i += 1
            return node
        return _Term(self.expression, token).node()


def _flatten(kind: type[And] | type[Or], parts: list[Node]) -> tuple[Node, ...]:
    # (a and b) and c is a and b and c: one level keeps describe() simple.
    out: list[Node] = []
    for part in parts:
        out.extend(part.operands if isinstance(part, kind) else (part,))
    return tuple(out)


class _Term:
    """Turns one term token into a leaf node."""

    def __init__(self, expression: str, token: _Token) -> None:
        self.expression = expression
        self.token = token
        self.text = token.chars
        self.quoted = token.quoted

    def at(self, index: int) -> int:
        """The expression position of the term's character ``index``."""
        offsets = self.token.offsets
        return offsets[index] if index < len(offsets) else self.token.end

    def plain(self, index: int, char: str) -> bool:
        """Whether the character at ``index`` is ``char``, unquoted."""
        return (
            -len(self.text) <= index < len(self.text)
            and self.text[index] == char
            and not self.quoted[index]
        )

    def error(self, index: int, problem: str) -> TargetError:
        return _syntax(self.expression, self.at(index), problem)

    def regex_error(self, index: int, error: re.error) -> TargetError:
        position = self.at(index + (error.pos or 0))
        return TargetError(
            self.expression, f"invalid regex at position {position}: {error.msg}", position
        )

    def node(self) -> Node:
        text = self.text
        if not text:
            raise _syntax(self.expression, self.token.pos, "empty term")
        if not any(self.quoted) and text in ("all", "*"):
            return All()
        if len(text) >= 2 and text[0].isupper() and self.plain(1, "@") and not self.quoted[0]:
            return self.salt(text[0])
        if self.plain(0, "@"):
            return self.group(1)
        if self.plain(0, "~"):
            return self.name_regex(1, text[1:], anchored=False)
        if len(text) >= 2 and self.plain(0, "/") and self.plain(-1, "/"):
            return self.name_regex(1, text[1:-1], anchored=False)
        found = self.operator()
        if found is not None:
            return self.fact(*found)
        if any(c == "," and not q for c, q in zip(text, self.quoted, strict=True)):
            return self.names(0)
        return Name(text)

    def operator(self) -> tuple[int, str] | None:
        text, quoted = self.text, self.quoted
        for i, c in enumerate(text):
            if quoted[i] or c not in "=!~<>":
                continue
            for op in _OPERATORS:
                if text.startswith(op, i) and not any(quoted[i : i + len(op)]):
                    return i, op
        return None

    def fact(self, index: int, written: str) -> Node:
        key = self.text[:index]
        if not key:
            raise self.error(0, f"expected a fact name before {written!r}")
        if not _FACT_KEY.fullmatch(key):
            raise self.error(0, f"invalid fact name {key!r}")
        start = index + len(written)
        value = self.text[start:]
        if not value and not any(q >= start for q in self.token.quotes):
            raise self.error(start, f"expected a value after {written!r}")
        op = _CANONICAL_OP.get(written, written)
        # MCollective's /regex/ values; quoted slashes are literal.
        slashed = len(value) >= 2 and self.plain(start, "/") and self.plain(-1, "/")
        if slashed and op in ("=", "!=", "~", "!~"):
            op = "~" if op in ("=", "~") else "!~"
            value = value[1:-1]
            start += 1
        if op in _ORDERING_OPS and _number(value) is None:
            raise self.error(start, f"expected a number after {written!r}, found {value!r}")
        try:
            return Fact(key, op, value, pos=self.at(0))
        except re.error as e:
            raise self.regex_error(start, e) from None

    def names(self, start: int) -> NameList:
        items: list[str] = []
        begin = start
        for i in range(start, len(self.text) + 1):
            if i < len(self.text) and not self.plain(i, ","):
                continue
            item = self.text[begin:i]
            if not item and not any(self.quoted[begin:i]):
                raise self.error(begin, "empty name in a list")
            if item and not self.quoted[begin] and item[0] in "@~":
                raise self.error(
                    begin, "a list holds host names or globs; join groups and regexes with 'or'"
                )
            items.append(item)
            begin = i + 1
        return NameList(tuple(items))

    def group(self, start: int) -> Group:
        name = self.text[start:]
        if not name:
            raise self.error(start, "expected a group name after '@'")
        return Group(name, pos=self.at(0))

    def name_regex(self, start: int, pattern: str, *, anchored: bool) -> NameRegex:
        if not pattern:
            raise self.error(start, "expected a regex")
        try:
            return NameRegex(pattern, anchored)
        except re.error as e:
            raise self.regex_error(start, e) from None

    def salt(self, prefix: str) -> Node:
        if prefix not in _SALT_PREFIXES:
            supported = ", ".join(f"{p}@" for p in _SALT_PREFIXES)
            raise self.error(0, f"unsupported prefix '{prefix}@'; supported prefixes: {supported}")
        rest = self.text[2:]
        if not rest:
            raise self.error(2, f"expected something after '{prefix}@'")
        if prefix == "E":
            return self.name_regex(2, rest, anchored=True)
        if prefix == "L":
            return self.names(2)
        if prefix == "N":
            return self.group(2)
        if prefix == "S":
            try:
                return Subnet(ipaddress.ip_network(rest, strict=False))
            except ValueError:
                raise self.error(2, f"{rest!r} is not an IP address or network") from None
        kind: Literal["G", "P"] = "G" if prefix == "G" else "P"
        try:
            return Grain(kind, rest, pos=self.at(2))
        except re.error as e:
            # Only a regex that fails however the colons split reaches here,
            # so it is the one after the first colon.
            raise self.regex_error(2 + rest.index(":") + 1, e) from None
        except ValueError as e:
            raise self.error(2, str(e)) from None


# --- describe --------------------------------------------------------------------


def describe(node: Node) -> str:
    """The canonical text of an expression: what it means, in one spelling
    that parses back to the same node (lowercase keywords, explicit ``and``,
    ``=``/``~``/``>=`` rather than MCollective's ``==``/``=~``/``=>``)."""
    if isinstance(node, All):
        return "all"
    if isinstance(node, Name):
        return node.pattern if _plain_name(node.pattern) else _quote(node.pattern)
    if isinstance(node, NameList):
        items = ",".join(i if _plain_name(i) else _quote(i) for i in node.items)
        return items if len(node.items) > 1 else "L@" + items
    if isinstance(node, NameRegex):
        prefix = "E@" if node.anchored else "~"
        return prefix + (node.pattern if _plain(node.pattern) else _quote(node.pattern))
    if isinstance(node, Group):
        return "@" + (node.name if _plain(node.name) else _quote(node.name))
    if isinstance(node, Fact):
        return node.key + node.op + _fact_value(node.op, node.value)
    if isinstance(node, Grain):
        return f"{node.kind}@" + (node.expr if _plain(node.expr) else _quote(node.expr))
    if isinstance(node, Subnet):
        net = node.network
        return "S@" + (str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
    if isinstance(node, Not):
        inner = describe(node.operand)
        return "not " + (f"({inner})" if isinstance(node.operand, And | Or) else inner)
    if isinstance(node, And):
        return " and ".join(
            f"({describe(o)})" if isinstance(o, Or) else describe(o) for o in node.operands
        )
    return " or ".join(describe(o) for o in node.operands)


def _plain(text: str) -> bool:
    """Whether ``text`` reads back as one term without quotes."""
    if not text or "&&" in text or "||" in text:
        return False
    depth = 0
    for c in text:
        if c.isspace() or c in "'\"":
            return False
        depth += (c == "(") - (c == ")")
        if depth < 0:
            return False
    return depth == 0


def _plain_name(text: str) -> bool:
    return (
        _plain(text)
        and text not in ("all", "*")
        and text.lower() not in _KEYWORDS
        and text[0] not in "!@~/"
        and not (len(text) >= 2 and text[1] == "@")
        and not any(c in ",=~<>" for c in text)
    )


def _fact_value(op: str, value: str) -> str:
    slashed = len(value) >= 2 and value[0] == "/" and value[-1] == "/"
    if not _plain(value) or slashed or (op == "=" and value[0] in "=~<>"):
        return _quote(value)
    return value


def _quote(text: str) -> str:
    q = "'" if '"' in text and "'" not in text else '"'
    return q + text.replace(q, "\\" + q) + q


# --- selecting hosts -----------------------------------------------------------------


def fact_names(inventory: Inventory) -> set[str]:
    """Every fact name any host has; nested mappings give dotted names too
    (``packages`` and ``packages.nginx``)."""
    names: set[str] = set()
    for host in inventory.hosts.values():
        _collect(host.facts, "", names)
    return names


def _collect(facts: Mapping[Any, Any], prefix: str, names: set[str]) -> None:
    for key, value in facts.items():
        name = f"{prefix}{key}"
        names.add(name)
        if isinstance(value, Mapping):
            _collect(value, name + ".", names)


def select(expression: str | Node, inventory: Inventory) -> list[Host]:
    """The hosts of ``inventory`` that ``expression`` matches, in inventory
    order; possibly none. Naming a group the inventory lacks, or a fact no
    host has, is a TargetError."""
    if isinstance(expression, str):
        text, node, located = expression, parse(expression), True
    else:
        text, node, located = describe(expression), expression, False
    _check(node, inventory, text, located)
    return _filter(node, list(inventory.hosts.values()), inventory)


def resolve(expression: str | Node, inventory: Inventory) -> list[Host]:
    """:func:`select`, for callers that must act on at least one host."""
    hosts = select(expression, inventory)
    if not hosts:
        text = expression if isinstance(expression, str) else describe(expression)
        count = len(inventory.hosts)
        raise TargetError(
            text,
            f"target '{text}' matches no host "
            f"({count} host{'' if count == 1 else 's'} in the inventory)",
        )
    return hosts


def _leaves(node: Node) -> Iterator[Node]:
    if isinstance(node, Not):
        yield from _leaves(node.operand)
    elif isinstance(node, And | Or):
        for operand in node.operands:
            yield from _leaves(operand)
    else:
        yield node


def _check(node: Node, inventory: Inventory, text: str, located: bool) -> None:
    hosts = list(inventory.hosts.values())
    known: dict[str, bool] = {}

    def exists(key: str) -> bool:
        if key not in known:
            path = tuple(key.split("."))
            known[key] = any(_lookup(h.facts, key, path) is not _MISSING for h in hosts)
        return known[key]

    for leaf in _leaves(node):
        if isinstance(leaf, Group) and leaf.name != "all" and leaf.name not in inventory.groups:
            reason = f"unknown group '{leaf.name}'" + _choices(
                leaf.name, list(inventory.groups), "groups", "the inventory defines no groups"
            )
            raise TargetError(text, reason, leaf.pos if located else None)
        # With no hosts there is nothing to learn fact names from; the
        # empty result says more than an unknown fact would.
        if not hosts:
            continue
        if isinstance(leaf, Fact):
            missing = None if exists(leaf.key) else leaf.key
        elif isinstance(leaf, Grain):
            missing = None if any(exists(k) for k in leaf.keys) else leaf.keys[-1]
        else:
            continue
        if missing is not None:
            reason = f"unknown fact '{missing}'" + _choices(
                missing, fact_names(inventory), "facts", "no host in the inventory has facts"
            )
            raise TargetError(text, reason, leaf.pos if located else None)


def _choices(wrong: str, known: Iterable[str], what: str, none: str) -> str:
    names = sorted(known)
    if not names:
        return f"; {none}"
    shown = ", ".join(names[:_LISTED])
    if len(names) > _LISTED:
        shown += f", ... ({len(names) - _LISTED} more)"
    close = difflib.get_close_matches(wrong, names, n=1)
    return f"; known {what}: {shown}" + (f"; did you mean '{close[0]}'?" if close else "")


def _filter(node: Node, hosts: list[Host], inventory: Inventory) -> list[Host]:
    """The hosts of ``hosts`` that ``node`` matches, in their order.

    Whole lists go through each node rather than hosts through the tree, so
    a group is looked up once and an ``and`` narrows what its later
    operands examine.
    """
    if isinstance(node, And):
        for operand in node.operands:
            if not hosts:
                break
            hosts = _filter(operand, hosts, inventory)
        return hosts
    if isinstance(node, Or):
        chosen: set[str] = set()
        rest = hosts
        for operand in node.operands:
            chosen.update(h.name for h in _filter(operand, rest, inventory))
            rest = [h for h in rest if h.name not in chosen]
            if not rest:
                break
        return [h for h in hosts if h.name in chosen]
    if isinstance(node, Not):
        excluded = {h.name for h in _filter(node.operand, hosts, inventory)}
        return [h for h in hosts if h.name not in excluded]
    if isinstance(node, All):
        return hosts
    if isinstance(node, Group):
        members = inventory.members(node.name)
        return [h for h in hosts if h.name in members]
    return node._keep(hosts)
