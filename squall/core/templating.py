"""Sandboxed Jinja rendering, compatible with StackStorm templates.

Templates run in :class:`jinja2.sandbox.SandboxedEnvironment` with
``StrictUndefined`` (using an undefined name is an error, as in st2),
``trim_blocks`` and ``lstrip_blocks``, and with StackStorm's custom filters
(``to_json_string``, ``regex_replace``, ``version_compare``, ``decrypt_kv``...).

The renderer does no I/O. Datastore values come through a caller-supplied
:class:`KeyLookup`, read lazily when a template uses ``st2kv.system.KEY`` or
``st2kv.user.KEY``; decryption goes through a caller-supplied function. Build
the context with :func:`build_context`.

Every template problem raises a :class:`TemplateError` (an ``InvalidInput``)
that names what was being rendered and what went wrong.
"""

from __future__ import annotations

import copy
import functools
import graphlib
import json
import posixpath
import re
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import jinja2
import jinja2.meta
import jinja2.nodes
import yaml
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from squall.core.params import (
    IMMUTABLE_RULE,
    NONE_MARKER,
    RenderedParameters,
    cast_value,
)
from squall.core.shellquote import Insertion, join_command
from squall.errors import InvalidInput, ParameterError

__all__ = [
    "ACTION_CONTEXT",
    "CONFIG_CONTEXT",
    "DATASTORE",
    "Decryptor",
    "KeyLookup",
    "RawText",
    "SecretValue",
    "TemplateError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TemplateUndefinedError",
    "build_context",
    "filters",
    "is_template",
    "make_environment",
    "render_parameters",
    "render_shell_template",
    "render_value",
    "template_variables",
]

DATASTORE = "st2kv"
CONFIG_CONTEXT = "config_context"
ACTION_CONTEXT = "action_context"
SYSTEM_SCOPE = "system"
USER_SCOPE = "user"

# Context key of the decrypt function. It is not a valid Jinja name, so a
# template cannot reach it; only the decrypt_kv filter reads it.
_DECRYPT_KEY = "squall:decrypt"

_MARKERS = ("{{", "{%")
_MAX_SEQUENCE = 1_000_000  # longest string or list a template may build by repetition
_MAX_EXPONENT = 10_000


# --------------------------------------------------------------------------- errors


class TemplateError(InvalidInput):
    """A template could not be rendered."""

    def __init__(self, where: str, problem: str, template: str | None = None) -> None:
        message = f"{where}: {problem}"
        if template is not None:
            message += f" (in {_snippet(template)!r})"
        super().__init__(message)
        self.where = where
        self.problem = problem
        self.template = template

    def to_dict(self) -> dict[str, object]:
        return {"faultstring": self.message, "where": self.where, "problem": self.problem}


class TemplateSyntaxError(TemplateError):
    """The template is not valid Jinja."""


class TemplateUndefinedError(TemplateError):
    """The template used a name or attribute that does not exist."""


class TemplateSecurityError(TemplateError):
    """The template tried something the sandbox forbids."""


class _FilterError(Exception):
    """A filter refused its input; the message is meant for the user."""


def _snippet(template: str, limit: int = 80) -> str:
    return template if len(template) <= limit else template[: limit - 3] + "..."


# --------------------------------------------------------------------------- datastore


@dataclass(frozen=True)
class SecretValue:
    """An encrypted datastore value, as a :class:`KeyLookup` returns it.

    Rendered as is, it shows its ciphertext (as st2 does); the ``decrypt_kv``
    filter turns it into plain text with the caller's decrypt function.
    """

    ciphertext: str

    def __str__(self) -> str:
        return self.ciphertext


class KeyLookup(Protocol):
    """Where datastore values come from; supplied by the caller.

    ``scope`` is ``"system"`` or ``"user"`` (the lookup knows which user);
    ``name`` is the full key name, dotted names included (``a.b``). Return
    None when there is no such key.
    """

    def get(self, scope: str, name: str) -> str | SecretValue | None: ...


Decryptor = Callable[[str], str]


class _KeyRef:
    """A lazy datastore reference: ``st2kv.system.a.b`` names key ``a.b``.

    Reading it as text looks the key up (once per context); a missing key
    reads as "" like in st2. Every public attribute name is a key name, so
    this class keeps all of its own names private.
    """

    __slots__ = ("_cache", "_lookup", "_name", "_scope")

    def __init__(
        self, lookup: KeyLookup, scope: str, name: str, cache: dict[tuple[str, str], Any]
    ) -> None:
        self._lookup = lookup
        self._scope = scope
        self._name = name
        self._cache = cache

    def _child(self, part: str) -> _KeyRef:
        name = f"{self._name}.{part}" if self._name else part
        return _KeyRef(self._lookup, self._scope, name, self._cache)

    def _full_name(self) -> str:
        return f"{DATASTORE}.{self._scope}.{self._name}"

    def _resolve(self) -> str | SecretValue | None:
        if not self._name:
            raise _FilterError(
                f"{DATASTORE}.{self._scope} needs a key name, e.g. ...{self._scope}.my_key"
            )
        key = (self._scope, self._name)
        if key not in self._cache:
            self._cache[key] = self._lookup.get(self._scope, self._name)
        value: str | SecretValue | None = self._cache[key]
        return value

    def _text(self) -> str:
        value = self._resolve()
        return "" if value is None else str(value)

    def __getattr__(self, part: str) -> _KeyRef:
        if part.startswith("_"):
            raise AttributeError(part)
        return self._child(part)

    def __getitem__(self, part: object) -> _KeyRef:
        return self._child(str(part))

    def __str__(self) -> str:
        return self._text()

    def __repr__(self) -> str:
        return f"<datastore key {self._full_name()}>"

    def __int__(self) -> int:
        return int(float(self._text()))

    def __float__(self) -> float:
        return float(self._text())

    def __bool__(self) -> bool:
        return self._text() != ""

    def __len__(self) -> int:
        return len(self._text())

    def __iter__(self) -> Iterator[str]:
        return iter(self._text())

    def __contains__(self, item: object) -> bool:
        return str(item) in self._text()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _KeyRef):
            return self._text() == other._text()
        if isinstance(other, str):
            return self._text() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._text())


def build_context(
    *,
    kv: KeyLookup | None = None,
    config: Mapping[str, Any] | None = None,
    action_context: Mapping[str, Any] | None = None,
    decrypt: Decryptor | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A rendering context with StackStorm's names.

    * ``st2kv.system.KEY`` / ``st2kv.user.KEY`` (only when ``kv`` is given),
    * ``config_context``: the pack's config,
    * ``action_context``: the execution's context (user, parent, ...),
    * ``extra``: anything else, e.g. ``{"trigger": payload}`` for rules.

    ``decrypt`` is what the ``decrypt_kv`` filter calls.
    """
    context: dict[str, Any] = dict(extra or {})
    if kv is not None:
        cache: dict[tuple[str, str], Any] = {}
        context[DATASTORE] = {
            SYSTEM_SCOPE: _KeyRef(kv, SYSTEM_SCOPE, "", cache),
            USER_SCOPE: _KeyRef(kv, USER_SCOPE, "", cache),
        }
    if config is not None or CONFIG_CONTEXT not in context:
        context[CONFIG_CONTEXT] = dict(config or {})
    if action_context is not None or ACTION_CONTEXT not in context:
        context[ACTION_CONTEXT] = dict(action_context or {})
    if decrypt is not None:
        context[_DECRYPT_KEY] = decrypt
    return context


def _plain(value: Any) -> Any:
    """Replace template-only objects (datastore references, markup) with plain data."""
    if isinstance(value, _KeyRef):
        return value._text()
    if isinstance(value, (SecretValue, Markup)):
        return str(value)
    if isinstance(value, jinja2.Undefined):
        return str(value)  # StrictUndefined raises here
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, types.GeneratorType)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- filters


def _to_text(value: Any) -> str:
    return value if isinstance(value, str) else str(_plain(value))


def _from_json_string(value: Any) -> Any:
    try:
        return json.loads(_to_text(value))
    except ValueError as exc:
        raise _FilterError(f"from_json_string: not valid JSON ({exc})") from None


def _from_yaml_string(value: Any) -> Any:
    try:
        return yaml.safe_load(_to_text(value))
    except yaml.YAMLError as exc:
        raise _FilterError(f"from_yaml_string: not valid YAML ({exc})") from None


def _to_json_string(
    value: Any,
    indent: int | None = None,
    sort_keys: bool = False,
    separators: tuple[str, str] | list[str] | None = (",", ": "),
) -> str:
    seps = tuple(separators) if separators is not None else None
    return json.dumps(
        _plain(value),
        indent=indent,
        sort_keys=bool(sort_keys),
        separators=seps,  # type: ignore[arg-type]
        default=str,
    )


def _to_yaml_string(value: Any, indent: int | None = None, allow_unicode: bool = True) -> str:
    return yaml.safe_dump(
        _plain(value), default_flow_style=False, indent=indent, allow_unicode=allow_unicode
    )


def _to_complex(value: Any) -> str:
    return json.dumps(_plain(value), default=str)


def _json_escape(value: Any) -> str:
    return json.dumps(_plain(value), default=str).strip('"')


def _use_none(value: Any) -> Any:
    return NONE_MARKER if value is None else value


def _regex_flags(ignorecase: bool) -> int:
    return re.IGNORECASE if ignorecase else 0


def _compile_regex(pattern: str, ignorecase: bool, filter_name: str) -> re.Pattern[str]:
    try:
        return re.compile(_to_text(pattern), _regex_flags(ignorecase))
    except re.error as exc:
        raise _FilterError(f"{filter_name}: invalid regular expression ({exc})") from None


def _regex_match(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return _compile_regex(pattern, ignorecase, "regex_match").match(_to_text(value)) is not None


def _regex_search(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return _compile_regex(pattern, ignorecase, "regex_search").search(_to_text(value)) is not None


def _regex_replace(value: Any, pattern: str, replacement: str, ignorecase: bool = False) -> str:
    regex = _compile_regex(pattern, ignorecase, "regex_replace")
    try:
        return regex.sub(_to_text(replacement), _to_text(value))
    except re.error as exc:
        raise _FilterError(f"regex_replace: invalid replacement ({exc})") from None


def _regex_substring(
    value: Any, pattern: str, result_index: int = 0, ignorecase: bool = False
) -> Any:
    found = _compile_regex(pattern, ignorecase, "regex_substring").findall(_to_text(value))
    try:
        return found[int(result_index)]
    except IndexError:
        raise _FilterError(
            f"regex_substring: no match number {result_index} for {pattern!r} "
            f"({len(found)} match(es))"
        ) from None


def _to_human_time_from_seconds(seconds: Any) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise _FilterError(
            f"to_human_time_from_seconds needs a number of seconds, got {type(seconds).__name__}"
        )
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds}\u03bcs"  # st2 labels anything under a second this way
    remaining = round(seconds) if isinstance(seconds, float) else seconds
    parts: list[tuple[int, str]] = []
    for size, label in ((365 * 86400, "y"), (86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        count, remaining = divmod(remaining, size)
        parts.append((count, label))
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return "".join(f"{count}{label}" for count, label in parts)


def _basename(path: Any) -> str:
    return posixpath.basename(_to_text(path))


def _dirname(path: Any) -> str:
    return posixpath.dirname(_to_text(path))


@jinja2.pass_context
def _decrypt_kv(context: jinja2.runtime.Context, value: Any) -> str:
    if isinstance(value, _KeyRef):
        resolved = value._resolve()
        if resolved is None or resolved == "":
            raise _FilterError(
                f"decrypt_kv: datastore key '{value._full_name()}' does not exist or is empty"
            )
        value = resolved
    if isinstance(value, SecretValue):
        ciphertext = value.ciphertext
    elif isinstance(value, str):
        ciphertext = value
    else:
        raise _FilterError(f"decrypt_kv needs an encrypted value, got {type(value).__name__}")
    decrypt = context.get(_DECRYPT_KEY)
    if decrypt is None:
        raise _FilterError("decrypt_kv: no decryption is available in this context")
    try:
        return str(decrypt(ciphertext))
    except Exception as exc:
        raise _FilterError(f"decrypt_kv: the value could not be decrypted ({exc})") from None


# ---- semantic versions (SemVer 2.0.0 precedence)

_SEMVER_RE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


@dataclass(frozen=True)
class _Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...]

    @classmethod
    def parse(cls, value: Any) -> _Version:
        text = _to_text(value)
        match = _SEMVER_RE.fullmatch(text.strip())
        if match is None:
            raise _FilterError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        pre = tuple(match.group(4).split(".")) if match.group(4) else ()
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre)

    def compare(self, other: _Version) -> int:
        mine = (self.major, self.minor, self.patch)
        theirs = (other.major, other.minor, other.patch)
        if mine != theirs:
            return -1 if mine < theirs else 1
        if self.prerelease == other.prerelease:
            return 0
        if not self.prerelease:
            return 1
        if not other.prerelease:
            return -1
        for a, b in zip(self.prerelease, other.prerelease, strict=False):
            if a == b:
                continue
            if a.isdigit() and b.isdigit():
                return -1 if int(a) < int(b) else 1
            if a.isdigit() != b.isdigit():
                return -1 if a.isdigit() else 1
            return -1 if a < b else 1
        return -1 if len(self.prerelease) < len(other.prerelease) else 1


def _version_compare(value: Any, pattern: Any) -> int:
    return _Version.parse(value).compare(_Version.parse(pattern))


def _version_more_than(value: Any, pattern: Any) -> bool:
    return _version_compare(value, pattern) == 1


def _version_less_than(value: Any, pattern: Any) -> bool:
    return _version_compare(value, pattern) == -1


def _version_equal(value: Any, pattern: Any) -> bool:
    return _version_compare(value, pattern) == 0


_MATCH_OPS: dict[str, Callable[[int], bool]] = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
}


def _version_match(value: Any, expression: Any) -> bool:
    text = _to_text(expression).strip()
    for op in (">=", "<=", "==", "!=", ">", "<"):
        if text.startswith(op):
            target = text[len(op) :]
            break
    else:
        if not text[:1].isdigit():
            raise _FilterError(
                f"version_match needs <op><version> with op one of < > <= >= == !=, got {text!r}"
            )
        op, target = "==", text
    return _MATCH_OPS[op](_Version.parse(value).compare(_Version.parse(target)))


def _version_bump_major(value: Any) -> str:
    v = _Version.parse(value)
    return f"{v.major + 1}.0.0"


def _version_bump_minor(value: Any) -> str:
    v = _Version.parse(value)
    return f"{v.major}.{v.minor + 1}.0"


def _version_bump_patch(value: Any) -> str:
    v = _Version.parse(value)
    return f"{v.major}.{v.minor}.{v.patch + 1}"


def _version_strip_patch(value: Any) -> str:
    v = _Version.parse(value)
    return f"{v.major}.{v.minor}"


# ---- JSONPath (the common subset: $ . .. * [n] [a:b] ['key'] [n,m])

_JP_STEP = re.compile(
    r"""\s*(?:
        (?P<deep>\.\.)(?P<deep_name>[A-Za-z_][\w-]*|\*)?
      | \.(?P<name>[A-Za-z_][\w-]*|\*)
      | \[(?P<bracket>(?:[^\]'"]|'[^']*'|"[^"]*")*)\]
    )""",
    re.VERBOSE,
)

_JpStep = tuple[str, Any]


def _parse_bracket(content: str, query: str) -> _JpStep:
    content = content.strip()
    if content == "*":
        return ("wild", None)
    if content.startswith("?") or content.startswith("("):
        raise _FilterError(f"jsonpath_query: filter expressions are not supported ({query!r})")
    if ":" in content:
        bits = content.split(":")
        if len(bits) > 3:
            raise _FilterError(f"jsonpath_query: bad slice [{content}] in {query!r}")
        try:
            nums = [int(b) if b.strip() else None for b in bits]
        except ValueError:
            raise _FilterError(f"jsonpath_query: bad slice [{content}] in {query!r}") from None
        return ("slice", slice(*nums))
    keys: list[Any] = []
    for part in re.findall(r"'[^']*'|\"[^\"]*\"|[^,]+", content):
        part = part.strip()
        if part[:1] in ("'", '"'):
            keys.append(part[1:-1])
        else:
            try:
                keys.append(int(part))
            except ValueError:
                keys.append(part)
    return ("keys", keys)


def _parse_jsonpath(query: str) -> list[_JpStep]:
    text = query.strip()
    if text.startswith("$"):
        text = text[1:]
    elif text and not text.startswith((".", "[")):
        text = "." + text
    steps: list[_JpStep] = []
    pos = 0
    while pos < len(text):
        match = _JP_STEP.match(text, pos)
        if match is None or match.end() == pos:
            raise _FilterError(f"jsonpath_query: cannot parse {query!r} at {text[pos:]!r}")
        pos = match.end()
        if match.group("deep"):
            steps.append(("deep", None))
            deep_name = match.group("deep_name")
            if deep_name is not None:
                steps.append(("wild", None) if deep_name == "*" else ("keys", [deep_name]))
        elif match.group("name") is not None:
            name = match.group("name")
            steps.append(("wild", None) if name == "*" else ("keys", [name]))
        else:
            steps.append(_parse_bracket(match.group("bracket"), query))
    return steps


def _descendants(node: Any) -> Iterator[Any]:
    yield node
    children = (
        node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
    )
    for child in children:
        yield from _descendants(child)


def _apply_step(nodes: list[Any], step: _JpStep) -> list[Any]:
    kind, arg = step
    out: list[Any] = []
    for node in nodes:
        if kind == "deep":
            out.extend(_descendants(node))
        elif kind == "wild":
            if isinstance(node, Mapping):
                out.extend(node.values())
            elif isinstance(node, list):
                out.extend(node)
        elif kind == "slice":
            if isinstance(node, list):
                out.extend(node[arg])
        else:
            for key in arg:
                if isinstance(node, Mapping) and key in node:
                    out.append(node[key])
                elif isinstance(node, Mapping) and str(key) in node:
                    out.append(node[str(key)])
                elif (
                    isinstance(node, list)
                    and isinstance(key, int)
                    and -len(node) <= key < len(node)
                ):
                    out.append(node[key])
    return out


class RawText(str):
    """Text the author marked with ``| raw``: inserted into a shell command
    as is, as shell syntax (every other insertion is quoted)."""

    __slots__ = ()


def _raw(value: Any) -> RawText:
    return RawText(_to_text(value))


def _jsonpath_query(value: Any, query: Any) -> list[Any] | None:
    nodes = [_plain(value)]
    for step in _parse_jsonpath(_to_text(query)):
        nodes = _apply_step(nodes, step)
    return nodes or None


filters: Mapping[str, Callable[..., Any]] = types.MappingProxyType(
    {
        "basename": _basename,
        "decrypt_kv": _decrypt_kv,
        "dirname": _dirname,
        "from_json_string": _from_json_string,
        "from_yaml_string": _from_yaml_string,
        "json_escape": _json_escape,
        "jsonpath_query": _jsonpath_query,
        "raw": _raw,
        "regex_match": _regex_match,
        "regex_replace": _regex_replace,
        "regex_search": _regex_search,
        "regex_substring": _regex_substring,
        "to_complex": _to_complex,
        "to_human_time_from_seconds": _to_human_time_from_seconds,
        "to_json_string": _to_json_string,
        "to_yaml_string": _to_yaml_string,
        "use_none": _use_none,
        "version_bump_major": _version_bump_major,
        "version_bump_minor": _version_bump_minor,
        "version_bump_patch": _version_bump_patch,
        "version_compare": _version_compare,
        "version_equal": _version_equal,
        "version_less_than": _version_less_than,
        "version_match": _version_match,
        "version_more_than": _version_more_than,
        "version_strip_patch": _version_strip_patch,
    }
)
"""StackStorm's custom Jinja filters, by name (read-only)."""


# --------------------------------------------------------------------------- environment


class _Sandbox(SandboxedEnvironment):
    """The sandbox, plus limits on ``*`` and ``**`` so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large for a template")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, (str, list, tuple))
                    and isinstance(count, int)
                    and len(seq) * count > _MAX_SEQUENCE
                ):
                    raise SecurityError("repetition result is too large for a template")
        return super().call_binop(context, operator, left, right)


def _make_env(undefined: type[jinja2.Undefined]) -> _Sandbox:
    env = _Sandbox(undefined=undefined, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters.update(filters)
    return env


_ENVS = {False: _make_env(jinja2.StrictUndefined), True: _make_env(jinja2.Undefined)}

# Context key of the list a shell-command render collects its insertions in
# (not a valid Jinja name, so a template cannot reach it).
_SHELL_KEY = "squall:shell"
_PLACEHOLDER_RE = re.compile("\x00([0-9]+)\x00")


@jinja2.pass_context
def _shell_finalize(context: jinja2.runtime.Context, value: Any) -> Any:
    """Set each ``{{ ... }}`` output aside, leaving a placeholder; the
    placeholders are replaced by quoted values once the text is complete."""
    if isinstance(value, RawText):
        return value
    inserted: list[str] | None = context.get(_SHELL_KEY)
    if inserted is None:
        return value
    text = _to_text(value)
    if "\x00" in text:  # text captured with {% set %}: its own insertions, plain
        text = _PLACEHOLDER_RE.sub(lambda m: inserted[int(m.group(1))], text)
    inserted.append(text)
    return f"\x00{len(inserted) - 1}\x00"


def _make_shell_env(undefined: type[jinja2.Undefined]) -> _Sandbox:
    env = _make_env(undefined)
    env.finalize = _shell_finalize
    return env


_SHELL_ENVS = {
    False: _make_shell_env(jinja2.StrictUndefined),
    True: _make_shell_env(jinja2.Undefined),
}


def make_environment(
    undefined: type[jinja2.Undefined] = jinja2.StrictUndefined,
    *,
    shell: bool = False,
) -> SandboxedEnvironment:
    """A new sandbox like the one templates render in, with st2's filters.

    Each call returns a separate environment, so a caller with its own
    dialect (Orquesta's Jinja expressions) can add globals and filters
    without changing how st2 templates render. Templates of a ``shell``
    environment are rendered with :func:`render_shell_template`.
    """
    return _make_shell_env(undefined) if shell else _make_env(undefined)


def render_shell_template(template: jinja2.Template, names: Mapping[str, Any]) -> str:
    """Render a template of a ``shell`` environment as a shell command:
    every ``{{ ... }}`` output is quoted for where it lands, unless ``raw``."""
    inserted: list[str] = []
    text = template.render({**names, _SHELL_KEY: inserted})
    parts = _PLACEHOLDER_RE.split(text)
    # split() alternates literal text and placeholder numbers.
    pieces = [
        Insertion(inserted[int(part)]) if index % 2 else part for index, part in enumerate(parts)
    ]
    return join_command(pieces)


@functools.lru_cache(maxsize=1024)
def _parse(source: str) -> jinja2.nodes.Template:
    return _ENVS[False].parse(source)


@functools.lru_cache(maxsize=1024)
def _compile(source: str, allow_undefined: bool) -> jinja2.Template:
    return _ENVS[allow_undefined].from_string(source)


@functools.lru_cache(maxsize=256)
def _compile_shell(source: str, allow_undefined: bool) -> jinja2.Template:
    return _SHELL_ENVS[allow_undefined].from_string(source)


def _render_shell_text(source: str, context: Mapping[str, Any], allow_undefined: bool) -> str:
    """Render a shell command: every insertion quoted for where it lands."""
    return render_shell_template(_compile_shell(source, allow_undefined), context)


_SINGLE_EXPR_RE = re.compile(r"\{\{[-+]?(.*?)[-+]?\}\}\n?", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _compile_single_expression(
    source: str, allow_undefined: bool
) -> jinja2.environment.TemplateExpression | None:
    """The compiled expression if ``source`` is exactly one ``{{ ... }}``, else None."""
    if not source.lstrip().startswith("{{"):
        return None
    body = _parse(source).body
    if not (
        len(body) == 1
        and isinstance(body[0], jinja2.nodes.Output)
        and len(body[0].nodes) == 1
        and not isinstance(body[0].nodes[0], jinja2.nodes.TemplateData)
    ):
        return None
    match = _SINGLE_EXPR_RE.fullmatch(source)
    if match is None:
        return None
    try:
        return _ENVS[allow_undefined].compile_expression(match.group(1), undefined_to_none=False)
    except jinja2.TemplateSyntaxError:
        return None


def is_template(value: Any) -> bool:
    """True for a string with ``{{`` or ``{%`` in it (st2's quick test)."""
    return isinstance(value, str) and any(marker in value for marker in _MARKERS)


def template_variables(source: str) -> set[str]:
    """Top-level names a template reads (``{{ a.b }}`` reads ``a``).

    Raises :class:`TemplateSyntaxError` if ``source`` is not valid Jinja.
    """
    try:
        names = jinja2.meta.find_undeclared_variables(_parse(source))
    except jinja2.TemplateSyntaxError as exc:
        _raise_syntax("template", source, exc)
    return set(names) - set(_ENVS[False].globals)


# --------------------------------------------------------------------------- rendering


def _syntax_error(
    where: str, source: str | None, exc: jinja2.TemplateSyntaxError
) -> TemplateSyntaxError:
    line = f" on line {exc.lineno}" if exc.lineno and source and "\n" in source else ""
    return TemplateSyntaxError(where, f"template syntax error{line}: {exc.message}", source)


def _raise_syntax(where: str, source: str, exc: jinja2.TemplateSyntaxError) -> NoReturn:
    raise _syntax_error(where, source, exc) from None


def _translate(where: str, source: str | None, exc: Exception) -> TemplateError:
    """Turn whatever a render raised into a TemplateError for the user."""
    if isinstance(exc, TemplateError):
        return exc
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return _syntax_error(where, source, exc)
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateUndefinedError(where, f"undefined value: {exc.message}", source)
    if isinstance(exc, SecurityError) or (
        isinstance(exc, OverflowError) and "sandbox" in str(exc)  # jinja's range limit
    ):
        return TemplateSecurityError(where, f"not allowed in a template: {exc}", source)
    if isinstance(exc, _FilterError):
        return TemplateError(where, str(exc), source)
    return TemplateError(where, f"rendering failed: {type(exc).__name__}: {exc}", source)


def _render_string(
    source: str,
    context: Mapping[str, Any],
    where: str,
    *,
    native: bool,
    allow_undefined: bool,
    lenient_syntax: bool,
    show_source: bool,
    shell: bool = False,
) -> Any:
    shown = source if show_source else None
    result: Any
    try:
        expression = _compile_single_expression(source, allow_undefined) if native else None
        if shell:
            result = _render_shell_text(source, context, allow_undefined)
        elif expression is not None:
            result = expression(dict(context))
            if isinstance(result, jinja2.Undefined):
                result = str(result)  # raises for StrictUndefined; "" otherwise
            result = _plain(result)
        else:
            result = _compile(source, allow_undefined).render(dict(context))
    except jinja2.TemplateSyntaxError as exc:
        if lenient_syntax:
            return source
        raise _translate(where, shown, exc) from None
    except Exception as exc:
        raise _translate(where, shown, exc) from None
    if isinstance(result, str) and result == NONE_MARKER:
        return None
    return result


def _render_any(
    value: Any,
    context: Mapping[str, Any],
    where: str,
    *,
    keep_types: bool,
    allow_undefined: bool,
    lenient_syntax: bool,
    show_source: bool,
    nested: bool,
) -> Any:
    options = {
        "allow_undefined": allow_undefined,
        "lenient_syntax": lenient_syntax,
        "show_source": show_source,
    }
    if isinstance(value, str):
        if not is_template(value):
            return value
        return _render_string(value, context, where, native=keep_types, **options)
    if isinstance(value, Mapping):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = (
                _render_string(key, context, where, native=False, **options)
                if is_template(key)
                else key
            )
            result[new_key] = _render_any(
                item,
                context,
                f"{where}.{key}" if nested else f"{where} at {key}",
                keep_types=keep_types,
                nested=True,
                **options,
            )
        return result
    if isinstance(value, (list, tuple)):
        return [
            _render_any(
                item,
                context,
                f"{where}[{index}]" if nested else f"{where} at [{index}]",
                keep_types=keep_types,
                nested=True,
                **options,
            )
            for index, item in enumerate(value)
        ]
    return value


def render_value(
    value: Any,
    context: Mapping[str, Any],
    *,
    name: str | None = None,
    keep_types: bool = True,
    allow_undefined: bool = False,
    shell: bool = False,
) -> Any:
    """Render every template string in ``value`` (dicts and lists recursively).

    Strings without ``{{``/``{%`` and non-string values are returned as is.
    With ``keep_types`` (the default), a string that is exactly one
    expression, like ``"{{ x }}"``, yields the expression's value with its
    type (a list stays a list); this is how st2 treats ``"{{x}}"`` items of
    list and dict parameters. Any other template yields text, as in st2;
    ``keep_types=False`` makes every template yield text (st2's
    ``render_values``). Datastore references come out as their text; a value
    passed through ``use_none`` comes out as None.

    ``name`` says what is rendered, for error messages. ``allow_undefined``
    makes undefined names render as "" instead of failing. With ``shell``,
    a string ``value`` is a shell command: each insertion is quoted for the
    shell (see :func:`render_parameters`).
    """
    where = name or "template"
    if shell and is_template(value):
        return _render_string(
            value, context, where, native=False, allow_undefined=allow_undefined,
            lenient_syntax=False, show_source=True, shell=True,
        )  # fmt: skip
    return _render_any(
        value,
        context,
        where,
        keep_types=keep_types,
        allow_undefined=allow_undefined,
        lenient_syntax=False,
        show_source=True,
        nested=name is not None,
    )


_NATIVE_TYPES = ("array", "object", "integer", "number", "boolean")


def _template_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if is_template(value):
            yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _template_strings(key)
            yield from _template_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _template_strings(item)


def _render_parameter(
    name: str,
    value: Any,
    meta: Mapping[str, Any],
    context: Mapping[str, Any],
    strict_syntax: bool,
    shell: bool = False,
) -> Any:
    declared = meta.get("type")
    type_name = declared if isinstance(declared, str) else None
    where = f"parameter '{name}'"
    options = {
        "allow_undefined": False,
        "lenient_syntax": not strict_syntax,
        "show_source": not meta.get("secret"),
    }
    if isinstance(value, str) and shell:
        result = _render_string(value, context, where, native=False, shell=True, **options)
    elif isinstance(value, str):
        result = _render_string(value, context, where, native=type_name in _NATIVE_TYPES, **options)
    else:
        result = _render_any(value, context, where, keep_types=True, nested=False, **options)
    if isinstance(result, str):
        return cast_value(name, result, meta)
    return result  # a list or dict value, a native value, or None from use_none


def render_parameters(
    params_schema: Mapping[str, Mapping[str, Any]],
    given: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
    *,
    strict_syntax: bool = False,
    shell_parameters: frozenset[str] = frozenset(),
    literal: bool = False,
) -> RenderedParameters:
    """Render an execution's parameter values the way StackStorm does.

    Values come from ``given``, or else from schema defaults (immutable
    parameters always take their default). Values and defaults may be
    templates that read the ``context`` (see :func:`build_context`) and other
    parameters (``{{ other }}``); parameters are rendered in dependency
    order, and a parameter that depends on itself, directly or through
    others, raises :class:`ParameterError`.

    A rendered template is text that is then cast to the parameter's
    declared type (st2 semantics: a ``"{{ n }}"`` for an integer parameter
    gives an int, for a string or untyped parameter the text); a template
    that is exactly one expression for an array/object/integer/number/
    boolean parameter keeps its value's type directly. Inside list and dict
    values, an item that is exactly one expression keeps its type. Given
    strings that are not templates are cast to the declared type too.

    A string whose template does not parse is kept as literal text, as st2
    does (so ``docker ps --format '{{.Names}}'`` passes through); with
    ``strict_syntax=True`` it raises :class:`TemplateSyntaxError` instead.

    Raises :class:`ParameterError` for a given name the schema does not
    know, for a given immutable parameter and for a cast that fails, and a
    :class:`TemplateError` when a template fails. Returns the given values
    and every value that came from a default, rendered; its
    ``from_defaults`` names the latter. Pass it to ``validate_parameters``.

    Parameters named in ``shell_parameters`` are shell commands (``cmd`` of
    the shell runners): each ``{{ ... }}`` inserted into them is quoted for
    the shell where it lands (see :mod:`squall.core.shellquote`), unless
    its last filter is ``raw``. With ``literal``, the given values are final
    data (a workflow rendered them already): only defaults are rendered.
    """
    base = dict(context or {})
    params_schema = {name: meta or {} for name, meta in params_schema.items()}
    for name in given:
        if name not in params_schema:
            raise ParameterError(name, "is not a parameter of this action")
        if params_schema[name].get("immutable"):
            raise ParameterError(name, IMMUTABLE_RULE)

    raw: dict[str, Any] = {}
    from_defaults: set[str] = set()
    for name, meta in params_schema.items():
        if given.get(name) is not None:
            raw[name] = given[name]
        elif meta.get("default") is not None:
            raw[name] = copy.deepcopy(meta["default"])
            from_defaults.add(name)
        else:
            raw[name] = None

    templated: set[str] = set()
    dependencies: dict[str, set[str]] = {}
    for name, value in raw.items():
        needs: set[str] = set()
        if literal and name in given:
            dependencies[name] = needs
            continue
        for source in _template_strings(value):
            try:
                ast = _parse(source)
            except jinja2.TemplateSyntaxError as exc:
                if strict_syntax:
                    _raise_syntax(f"parameter '{name}'", source, exc)
                continue  # not a template after all; kept as text
            templated.add(name)
            needs |= jinja2.meta.find_undeclared_variables(ast) & params_schema.keys()
        dependencies[name] = needs
    # Without a parameter that reads another, the order is the schema's (what
    # the sorter would give): the usual case, and sorting costs as much as
    # the rest of the rendering.
    order = list(raw)
    if any(dependencies.values()):
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for name, needs in dependencies.items():
            sorter.add(name, *sorted(needs))
        try:
            order = list(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = [str(n) for n in exc.args[1]]
            rule = (
                "refers to itself"
                if len(cycle) <= 2
                else "depends on itself through " + " -> ".join(reversed(cycle))
            )
            raise ParameterError(cycle[0], rule) from None

    resolved: dict[str, Any] = {}
    for name in order:
        meta = params_schema[name]
        value = raw[name]
        if name in templated:
            value = _render_parameter(
                name, value, meta, {**base, **resolved}, strict_syntax, name in shell_parameters
            )
        else:
            value = cast_value(name, value, meta)
        resolved[name] = value

    keys = [n for n in params_schema if n in given or n in from_defaults]
    return RenderedParameters({n: resolved[n] for n in keys}, from_defaults=from_defaults)
