"""Orquesta workflow expressions: YAQL ``<% %>`` and Jinja ``{{ }}`` / ``{% %}``.

The semantics are Orquesta's, with StackStorm's additions:

* :func:`evaluate` renders every string in a value (dict keys and values,
  list items, recursively). A string that is exactly one expression yields
  the expression's native value (a list stays a list); a string with text
  around its expressions, or with several, yields text in which every
  expression is replaced by ``str()`` of its value (so None reads "None").
  A string that is not an expression is returned as is. Values come back as
  plain, new Python data: dicts, and lists for tuples, sets and iterators.
* An expression whose value is a string is evaluated again, in the same
  language, so a variable may hold an expression
  (``ctx().fee -> "<% ctx().fi %>" -> ...``).
* Jinja text with ``{% %}`` blocks renders as a whole template; its output
  is expanded again. ``{% raw %}...{% endraw %}`` is kept literally.
* A string with both YAQL and Jinja expressions is evaluated as YAQL (as in
  Orquesta); :func:`check` reports it as an error.
* Expressions are found as Orquesta finds them: ``<%...%>`` and
  ``{{...}}`` on one line, the first closing delimiter ending them.

Functions, in both languages: ``ctx()``, ``ctx(name)``, ``result()``,
``item()``, ``item(name)``, ``task_status(name)``, ``succeeded()``,
``failed()``, ``completed()``, ``st2kv(key, decrypt=false, default=...)``,
``json(text)``, ``yaml(text)``, ``zip(a, b, ..., pad=None)`` and st2's data,
path, regex, time and version functions (``from_json_string``,
``to_json_string``, ``json_parse``, ``json_dump``, ``yaml_parse``,
``yaml_dump``, ``to_yaml_string``, ``jsonpath_query``, ``regex_match``,
``version_compare``, ``use_none``...). YAQL also has its whole standard
library; Jinja has its builtins, and every context-free function above also
as a filter (``{{ ctx().x | to_json_string }}``).

Nothing here does I/O: datastore reads go through the caller's
:class:`~squall.core.workflow.KeyValueLookup`. Parsed YAQL expressions and
compiled Jinja templates are cached by their text.
"""

from __future__ import annotations

# yaql's own modules use ``collections.abc`` after a bare ``import
# collections``, which only works once something has imported the submodule;
# importing it here, before yaql, makes ``import yaql`` work on Python 3.11.
import collections.abc
import functools
import inspect
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, NoReturn

import jinja2
import jinja2.parser
import yaml
import yaql
import yaql.language.exceptions
import yaql.language.expressions
import yaql.language.specs
import yaql.language.utils
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from squall.core import templating
from squall.core.shellquote import Insertion, join_command
from squall.core.workflow import KeyValueLookup
from squall.errors import InvalidInput

__all__ = [
    "NO_ITEM",
    "ExpressionError",
    "Scope",
    "check",
    "evaluate",
    "has_expression",
    "referenced_vars",
]


# --------------------------------------------------------------------------- interface


class _NoItem:
    """Type of :data:`NO_ITEM`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_ITEM"


NO_ITEM: Final = _NoItem()
"""``Scope.item`` outside a with-items task (an item may itself be None)."""


@dataclass
class Scope:
    """What the expressions of one task (or of the workflow) can see.

    ``ctx`` holds the variables: ``ctx()`` returns them (without the
    internal ``__``-prefixed ones), ``ctx(name)`` and ``ctx().name`` one of
    them. ``current`` describes the task whose transitions are being decided
    (``{"id", "route", "result", "status"}``) for ``result()``,
    ``succeeded()``, ``failed()`` and ``completed()``. ``item`` is the
    current with-items item, ``task_status`` answers ``task_status(name)``
    ("unset" for a task that never ran) and ``kv`` serves ``st2kv()``.
    """

    ctx: Mapping[str, Any]
    current: Mapping[str, Any] | None = None
    item: Any = NO_ITEM
    task_status: Callable[[str], str] | None = None
    kv: KeyValueLookup | None = None


class ExpressionError(InvalidInput):
    """An expression could not be evaluated; the message names it and says why."""

    def __init__(self, message: str, expression: str | None = None) -> None:
        super().__init__(message)
        self.expression = expression

    def to_dict(self) -> dict[str, object]:
        return {"faultstring": self.message, "expression": self.expression}


# --------------------------------------------------------------------------- finding expressions

# Orquesta's patterns: no DOTALL, so an expression spanning lines is plain text.
_YAQL_RE = re.compile(r"<%.*?%>")
_JINJA_RE = re.compile(r"{{.*?}}")
_JINJA_BLOCK_RE = re.compile(r"{%.*?%}")
_RAW_RE = re.compile(r"{%-?\s*raw\s*-?%}(.*?){%-?\s*endraw\s*-?%}", re.DOTALL)
# Raw blocks are set aside while the rest renders; these private-use
# characters mark where each goes back.
_RAW_MARK = "\ue000{}\ue001"

# An expression whose last filter is ``raw`` inserts shell syntax as is.
_RAW_FILTER_RE = re.compile(r"\|\s*raw\s*$")

_CACHE_SIZE = 4096
_MAX_NESTING = 20  # an expression's value that is an expression, and so on


class _Scan(NamedTuple):
    yaql: tuple[str, ...]
    jinja: tuple[str, ...]
    blocks: tuple[str, ...]

    @property
    def is_yaql(self) -> bool:
        return bool(self.yaql)

    @property
    def is_jinja(self) -> bool:
        return bool(self.jinja or self.blocks)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _scan(text: str) -> _Scan:
    return _Scan(
        tuple(_YAQL_RE.findall(text)),
        tuple(_JINJA_RE.findall(text)),
        tuple(_JINJA_BLOCK_RE.findall(text)),
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _set_raw_aside(text: str) -> tuple[str, tuple[str, ...]]:
    """``text`` with each raw block replaced by a mark, and the blocks' contents."""
    contents: list[str] = []

    def mark(match: re.Match[str]) -> str:
        contents.append(match.group(1))
        return _RAW_MARK.format(len(contents) - 1)

    return _RAW_RE.sub(mark, text), tuple(contents)


def _put_raw_back(text: str, contents: tuple[str, ...]) -> str:
    for index, content in enumerate(contents):
        text = text.replace(_RAW_MARK.format(index), content)
    return text


def _yaql_source(expr: str) -> str:
    # Orquesta strips any of the delimiter characters from both ends.
    return expr.strip("<%>").strip()


def _jinja_source(expr: str) -> str:
    return expr.strip("{}").strip()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def has_expression(value: Any) -> bool:
    """True if ``value`` is, or holds (keys included), a string with an expression."""
    for text in _strings(value):
        scan = _scan(text)
        if scan.is_yaql or scan.is_jinja:
            return True
    return False


# --------------------------------------------------------------------------- errors


class _FunctionError(Exception):
    """A workflow function refused its call; the message is meant for the user."""


class _UnresolvedKey(jinja2.UndefinedError):
    """A ctx variable that is not defined (raised in both languages)."""

    def __init__(self, name: object = None) -> None:
        super().__init__(str(name))
        self.name = str(name)


def _fail(expr: str, exc: Exception, *, yaql_keys: bool = False) -> ExpressionError:
    """The ExpressionError for ``exc`` raised while evaluating ``expr``."""
    if isinstance(exc, ExpressionError):
        return exc  # from a nested expression; it names its own text
    key: str | None = None
    if isinstance(exc, _UnresolvedKey):
        key = exc.name
    elif yaql_keys and isinstance(exc, KeyError):
        # As in Orquesta, a missing key anywhere in a YAQL path reads this way.
        key = str(exc.args[0]) if exc.args else ""
    if key is not None:
        return ExpressionError(
            f"Unable to resolve key '{key}' in expression '{expr}' from context.", expr
        )
    if isinstance(exc, _FunctionError) or type(exc).__module__ == templating.__name__:
        problem = str(exc)  # written for the user already
    else:
        problem = f"{type(exc).__name__}: {exc}"
    return ExpressionError(f"Unable to evaluate expression '{expr}'. {problem}", expr)


def _too_deep(text: str) -> NoReturn:
    raise ExpressionError(
        f"Unable to evaluate expression '{text}'. Expressions whose values are expressions "
        f"nest more than {_MAX_NESTING} levels deep; does a variable refer to itself?",
        text,
    )


# --------------------------------------------------------------------------- plain functions


def _json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value
    if not isinstance(value, str):
        raise TypeError(f"json() needs a JSON string, got {type(value).__name__}")
    return json.loads(value)


def _yaml(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value
    if not isinstance(value, str):
        raise TypeError(f"yaml() needs a YAML string, got {type(value).__name__}")
    return yaml.safe_load(value)


def _zip(*args: Any, pad: Any = None) -> Any:
    lists = [[] if arg is None else arg for arg in args]
    if not lists:
        return []
    if len(lists) == 1:
        return lists[0]
    return list(itertools.zip_longest(*lists, fillvalue=pad))


def _plain_functions() -> dict[str, Callable[..., Any]]:
    """Functions that need no scope, by name: st2's plus Orquesta's json and zip."""
    found = {name: f for name, f in templating.filters.items() if name != "decrypt_kv"}
    # st2's Orquesta offers st2kv(key, decrypt=true) rather than decrypt_kv.
    found.update(
        {
            "json": _json,
            "yaml": _yaml,
            "zip": _zip,
            "json_dump": found["to_json_string"],
            "json_parse": found["from_json_string"],
            "yaml_dump": found["to_yaml_string"],
            "yaml_parse": found["from_yaml_string"],
        }
    )
    return found


# --------------------------------------------------------------------------- evaluation state

_COMPLETED = frozenset({"succeeded", "failed", "expired", "timeout", "abandoned", "canceled"})
_SYSTEM_PREFIX = "system."
_USER_PREFIX = "user."


class _NoDefault:
    __slots__ = ()


_NO_DEFAULT: Final = _NoDefault()


def _internal(name: object) -> bool:
    return isinstance(name, str) and name.startswith("__")


class _CtxDict(dict[str, Any]):
    """What Jinja's ``ctx()`` returns; a missing key is reported as a ctx variable."""

    __slots__ = ()


class _YaqlVars(collections.abc.Mapping[str, Any]):
    """YAQL's ``ctx()``: the variables, each converted for yaql when first read.

    yaql works on hashable data (frozen dicts, tuples). Converting only what
    an expression reads keeps a large context from being copied on every
    evaluation.
    """

    __slots__ = ("_run",)

    def __init__(self, run: _Run) -> None:
        self._run = run

    def __getitem__(self, name: str) -> Any:
        if _internal(name) or name not in self._run.scope.ctx:
            raise KeyError(name)
        return self._run.converted(("ctx", name), self._run.scope.ctx[name])

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._run.scope.ctx if not _internal(name))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __hash__(self) -> int:
        return hash(frozenset(self.items()))


class _Run:
    """One call of :func:`evaluate`: the scope, plus what its expressions share."""

    __slots__ = ("_converted", "_depth", "_jinja_ctx", "_jinja_names", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._converted: dict[tuple[str, str], Any] = {}
        # Above 0 while evaluating expressions found inside a value (a
        # variable, a result) rather than written in the workflow.
        self._depth = 0
        self._jinja_names: dict[str, Any] | None = None
        self._jinja_ctx: _CtxDict | None = None

    def converted(self, key: tuple[str, str], value: Any) -> Any:
        """``value`` as yaql data, converted once per evaluation."""
        if key not in self._converted:
            self._converted[key] = _as_yaql_input(value)
        return self._converted[key]

    # ---- the workflow functions, on plain data

    def variable(self, name: Any) -> Any:
        if name not in self.scope.ctx:
            raise _UnresolvedKey(name)
        if _internal(name):
            raise _FunctionError(f'The variable "{name}" is for internal use and inaccessible.')
        return self.scope.ctx[name]

    def _current(self, function: str) -> Mapping[str, Any]:
        if not self.scope.current:
            raise _FunctionError(
                f"{function}() needs a current task; it is only available in a task's "
                "transitions and retry conditions."
            )
        return self.scope.current

    def result(self) -> Any:
        return self._current("result").get("result")

    def item(self, name: Any = None) -> Any:
        item = self.scope.item
        if item is NO_ITEM:
            raise _FunctionError("item() is only available in a task with items.")
        if not name:
            return item
        if not isinstance(item, Mapping):
            raise _FunctionError(
                f"item({name!r}) needs the current item to be a dict, "
                f"but it is {type(item).__name__}."
            )
        if name not in item:
            raise _FunctionError(f'Item does not have key "{name}".')
        return item[name]

    def task_status(self, task_id: Any) -> str:
        if not isinstance(task_id, str):
            raise TypeError(f"task_status() needs a task name, got {type(task_id).__name__}")
        if self.scope.task_status is None:
            return "unset"
        return self.scope.task_status(task_id) or "unset"

    def _status(self, function: str) -> str:
        status = self._current(function).get("status")
        return status if isinstance(status, str) else "unset"

    def succeeded(self) -> bool:
        return self._status("succeeded") == "succeeded"

    def failed(self) -> bool:
        return self._status("failed") == "failed"

    def completed(self) -> bool:
        return self._status("completed") in _COMPLETED

    def st2kv(self, key: Any, decrypt: Any = False, default: Any = _NO_DEFAULT) -> Any:
        if not isinstance(key, str):
            raise TypeError(f"st2kv() needs the key name as a string, got {type(key).__name__}")
        if not isinstance(decrypt, bool):
            raise TypeError("st2kv(): decrypt must be true or false")
        kv = self.scope.kv
        if kv is None:
            raise _FunctionError("st2kv(): the datastore is not available here.")
        # "system.x" names a system key; "user.x" and a bare "x" the user's own.
        if key.startswith(_SYSTEM_PREFIX):
            kv_scope, name = "system", key[len(_SYSTEM_PREFIX) :]
        elif key.startswith(_USER_PREFIX):
            kv_scope, name = "user", key[len(_USER_PREFIX) :]
        else:
            kv_scope, name = "user", key
        if not name:
            raise _FunctionError(f"st2kv('{key}'): the key name is missing.")
        try:
            value = kv.get(kv_scope, name)
        except Exception as exc:
            raise _FunctionError(
                f"st2kv('{key}'): the datastore could not be read ({exc})."
            ) from exc
        if value is None:
            if not isinstance(default, _NoDefault):
                return default
            raise _FunctionError(f'The key "{key}" does not exist in the datastore.')
        if isinstance(value, templating.SecretValue):
            if not decrypt:
                return value.ciphertext  # st2 hands out the encrypted text
            if self._depth > 0:
                # Text that came from data (an event, an output) may hold
                # expressions, evaluated again as Orquesta does; they may not
                # read secrets, or an event could have one echoed back.
                raise _FunctionError(
                    f"st2kv('{key}'): a secret can only be decrypted by an expression "
                    "written in the workflow, not by one found inside a value."
                )
            try:
                return kv.decrypt(value.ciphertext)
            except Exception as exc:
                raise _FunctionError(
                    f"st2kv('{key}'): the value could not be decrypted ({exc})."
                ) from exc
        return value  # a value stored in clear needs no decryption

    # ---- YAQL

    def yaql_ctx(self, name: Any = None) -> Any:
        if not name:
            return _YaqlVars(self)
        return self.converted(("ctx", name), self.variable(name))

    def yaql_result(self) -> Any:
        return self.converted(("result", ""), self.result())

    def yaql_item(self, name: Any = None) -> Any:
        value = self.item(name)  # checks the item and the key
        if not name:
            return self.converted(("item", ""), value)
        return self.converted(("item", str(name)), value)

    def yaql_text(self, text: str, depth: int) -> Any:
        outer, self._depth = self._depth, depth
        try:
            return self._yaql_text(text, depth)
        finally:
            self._depth = outer

    def _yaql_text(self, text: str, depth: int) -> Any:
        exprs = _scan(text).yaql
        if not exprs:
            return text
        if depth > _MAX_NESTING:
            _too_deep(text)
        if len(exprs) == 1 and exprs[0] == text:
            return self._yaql_value(text, depth, native=True)
        return _YAQL_RE.sub(lambda m: self._yaql_value(m.group(0), depth, native=False), text)

    def _yaql_value(self, expr: str, depth: int, *, native: bool, expand: bool = True) -> Any:
        try:
            statement, shortcut = _yaql_parse(_yaql_source(expr))
            result = self._yaql_shortcut(shortcut) if shortcut is not None else _NOT_DONE
            if result is _NOT_DONE:
                context = _yaql_root().create_child_context()
                context[_RUN_KEY] = self
                result = statement.evaluate(context=context)
        except Exception as exc:
            raise _fail(expr, exc, yaql_keys=True) from exc
        if isinstance(result, str) and expand:
            result = self.yaql_text(result, depth + 1)
        return result if native else str(result)

    def _yaql_shortcut(self, shortcut: _Shortcut) -> Any:
        """The value of a plain data path, or _NOT_DONE when yaql must evaluate it.

        Gives what yaql gives for the path when every step is a dict key or a
        list index that exists; anything else (an error to report, another
        type) is left to yaql, so its semantics and messages stay yaql's.
        """
        try:
            if shortcut.base == "const":
                value = shortcut.arg
            elif shortcut.base == "status":
                value = getattr(self, shortcut.arg)()
            elif shortcut.base == "ctx":
                if not shortcut.arg:
                    value = _VisibleVars(self.scope.ctx)
                else:
                    value = self.variable(shortcut.arg)
            elif shortcut.base == "result":
                value = self.result()
            else:
                value = self.item(shortcut.arg)
            for is_index, key in shortcut.steps:
                is_item = is_index and isinstance(value, (list, tuple)) and type(key) is int
                if not (is_item or isinstance(value, Mapping)):
                    return _NOT_DONE
                value = value[key]
            return _as_yaql_output(value)
        except Exception:
            return _NOT_DONE

    # ---- Jinja

    def jinja_ctx(self, name: Any = None) -> Any:
        if not name:
            # A copy (of the top level), as in Orquesta: a template that
            # changes it cannot change the workflow's variables. One per
            # evaluation, since a task's expressions call ctx() many times.
            if self._jinja_ctx is None:
                visible = ((k, v) for k, v in self.scope.ctx.items() if not _internal(k))
                self._jinja_ctx = _CtxDict(visible)
            return self._jinja_ctx
        return self.variable(name)

    def jinja_names(self) -> dict[str, Any]:
        if self._jinja_names is None:
            self._jinja_names = {
                "ctx": self.jinja_ctx,
                "result": self.result,
                "item": self.item,
                "task_status": self.task_status,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "completed": self.completed,
                "st2kv": self.st2kv,
            }
        return self._jinja_names

    def jinja_text(self, text: str, depth: int) -> Any:
        outer, self._depth = self._depth, depth
        try:
            return self._jinja_text(text, depth)
        finally:
            self._depth = outer

    def _jinja_text(self, text: str, depth: int) -> Any:
        if depth > _MAX_NESTING:
            _too_deep(text)
        body, raw = _set_raw_aside(text)
        result = self._jinja_expand(body, depth)
        if raw and isinstance(result, str):
            result = _put_raw_back(result, raw)
        return result

    def _jinja_expand(self, text: str, depth: int) -> Any:
        scan = _scan(text)
        if scan.blocks:
            try:
                output = _jinja_template(text).render(self.jinja_names())
            except Exception as exc:
                raise _fail(text, exc) from exc
            # The output may hold expressions that came from values.
            return self.jinja_text(output, depth + 1) if _scan(output).is_jinja else output
        if not scan.jinja:
            return text
        if len(scan.jinja) == 1 and scan.jinja[0] == text:
            return self._jinja_value(text, depth, native=True)
        return _JINJA_RE.sub(lambda m: self._jinja_value(m.group(0), depth, native=False), text)

    def _jinja_value(self, expr: str, depth: int, *, native: bool, expand: bool = True) -> Any:
        try:
            result = _jinja_expression(_jinja_source(expr))(**self.jinja_names())
            if inspect.isgenerator(result):
                result = list(result)
            is_text = isinstance(result, str)
            if not is_text:
                # Reading an undefined value raises here, inside the try.
                result = _jinja_plain(result) if native else str(result)
        except Exception as exc:
            raise _fail(expr, exc) from exc
        if is_text:
            if not expand:
                return str(result)
            result = self.jinja_text(str(result), depth + 1)
            return result if native else str(result)
        return result

    def shell_text(self, text: str) -> str:
        """A shell command (``cmd`` of a shell runner): each expression's value
        is quoted for where it lands, unless its last filter is ``raw``, and
        is data: it is not expanded again if it looks like an expression."""
        body, raw = _set_raw_aside(text)
        scan = _scan(body)
        if not (scan.is_yaql or scan.is_jinja):
            return text
        if scan.blocks and not scan.is_yaql:
            try:
                names = self.jinja_names()
                command = templating.render_shell_template(_jinja_shell_template(body), names)
            except Exception as exc:
                raise _fail(text, exc) from exc
        else:
            pieces: list[str | Insertion] = []
            position = 0
            for match in (_YAQL_RE if scan.is_yaql else _JINJA_RE).finditer(body):
                expr = match.group(0)
                pieces.append(body[position : match.start()])
                position = match.end()
                if scan.is_yaql:
                    value = self._yaql_value(expr, 0, native=False, expand=False)
                    pieces.append(Insertion(value))
                else:
                    value = self._jinja_value(expr, 0, native=False, expand=False)
                    is_raw = _RAW_FILTER_RE.search(_jinja_source(expr)) is not None
                    pieces.append(value if is_raw else Insertion(value))
            pieces.append(body[position:])
            command = join_command(pieces)
        return _put_raw_back(command, raw) if raw else command

    # ---- any value

    def render(self, value: Any) -> Any:
        if isinstance(value, str):
            scan = _scan(value)
            if scan.is_yaql:
                return self.yaql_text(value, 0)
            if scan.is_jinja:
                return self.jinja_text(value, 0)
            return value
        if isinstance(value, Mapping):
            rendered: dict[Any, Any] = {}
            for key, item in value.items():
                new_key = self.render(key)
                new_item = self.render(item)
                try:
                    rendered[new_key] = new_item
                except TypeError:
                    raise ExpressionError(
                        f"The key '{key}' evaluated to a {type(new_key).__name__}, "
                        "which cannot be a key.",
                        str(key),
                    ) from None
            return rendered
        if isinstance(value, (list, tuple)):
            return [self.render(item) for item in value]
        return value


def evaluate(value: Any, scope: Scope, *, shell: frozenset[str] = frozenset()) -> Any:
    """Render every expression in ``value`` (see the module's description).

    ``shell`` names keys of ``value`` (a task's input) that are shell
    commands: their expressions are quoted (see :meth:`_Run.shell_text`).

    Raises :class:`ExpressionError` naming the expression and the problem:
    a variable that is not defined, a type error, a yaql or Jinja error...
    """
    run = _Run(scope)
    if not shell or not isinstance(value, Mapping):
        return run.render(value)
    rendered: dict[Any, Any] = run.render({k: v for k, v in value.items() if k not in shell})
    for key in shell:
        if isinstance(value.get(key), str):
            rendered[key] = run.shell_text(value[key])
        elif key in value:
            rendered[key] = run.render(value[key])
    return rendered


# --------------------------------------------------------------------------- YAQL engine

_RUN_KEY = "squall:run"  # not a valid yaql variable name, so expressions cannot read it
_YAQL_PARSE_LOCK = threading.Lock()


def _run_of(context: Any) -> _Run:
    run: _Run = context[_RUN_KEY]
    return run


# yaql passes its context to a function's parameter named "context".


def _y_ctx(context: Any, name: Any = None) -> Any:
    return _run_of(context).yaql_ctx(name)


def _y_result(context: Any) -> Any:
    return _run_of(context).yaql_result()


def _y_item(context: Any, name: Any = None) -> Any:
    return _run_of(context).yaql_item(name)


def _y_task_status(context: Any, task_id: Any) -> str:
    return _run_of(context).task_status(task_id)


def _y_succeeded(context: Any) -> bool:
    return _run_of(context).succeeded()


def _y_failed(context: Any) -> bool:
    return _run_of(context).failed()


def _y_completed(context: Any) -> bool:
    return _run_of(context).completed()


def _y_st2kv(context: Any, key: Any, **options: Any) -> Any:
    # Options by keyword only, as in st2 (and yaql would type them by their
    # Python defaults): st2kv(key, decrypt => true, default => 'x').
    unknown = set(options) - {"decrypt", "default"}
    if unknown:
        raise TypeError(f"st2kv() takes decrypt and default, not {', '.join(sorted(unknown))}")
    return _run_of(context).st2kv(
        key, decrypt=options.get("decrypt", False), default=options.get("default", _NO_DEFAULT)
    )


_YAQL_SCOPE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "ctx": _y_ctx,
    "result": _y_result,
    "item": _y_item,
    "task_status": _y_task_status,
    "succeeded": _y_succeeded,
    "failed": _y_failed,
    "completed": _y_completed,
    "st2kv": _y_st2kv,
}


@functools.cache
def _yaql_engine() -> Any:
    # Sets become lists, so every value can be published and stored as JSON.
    return yaql.YaqlFactory().create(options={"yaql.convertSetsToLists": True})


@functools.cache
def _yaql_root() -> Any:
    """yaql's standard library plus the workflow functions; built on first use."""
    finalizer = yaql.language.specs.get_function_definition(_yaql_finalize, name="#finalize")
    root = yaql.create_context(finalizer=finalizer)
    for name, function in {**_plain_functions(), **_YAQL_SCOPE_FUNCTIONS}.items():
        root.register_function(function, name=name)
    return root


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _yaql_parse(source: str) -> tuple[Any, _Shortcut | None]:
    """The parsed expression, and its shortcut if it is a plain data path."""
    engine = _yaql_engine()
    with _YAQL_PARSE_LOCK:  # the engine's lexer holds the text being parsed
        statement = engine(source)
    return statement, _shortcut(statement.expression)


# Most workflow expressions only read data: ctx().a.b, ctx(x)[0], result().id,
# item(name). yaql resolves function overloads at every step, which costs far
# more than the lookups themselves, so such paths are read directly.


class _Shortcut(NamedTuple):
    base: str  # "const", "ctx", "result", "item" or "status" (succeeded() and the like)
    arg: Any  # the constant, or the name given to ctx() / item() (None: no name)
    steps: tuple[tuple[bool, Any], ...]  # (is an index, key or index)


class _NotDone:
    __slots__ = ()


_NOT_DONE: Final = _NotDone()
_STATUS_FUNCTIONS: Final = frozenset({"succeeded", "failed", "completed"})


def _shortcut(node: Any) -> _Shortcut | None:
    nodes = yaql.language.expressions
    constants = (nodes.Constant, nodes.KeywordConstant)
    steps: list[tuple[bool, Any]] = []
    while True:
        if type(node) is nodes.Wrap:
            node = node.expr
        elif (
            type(node) is nodes.BinaryOperator
            and node.name == "#operator_."
            and type(node.args[1]) is nodes.KeywordConstant
        ):
            steps.append((False, node.args[1].value))
            node = node.args[0]
        elif (
            type(node) is nodes.IndexExpression
            and len(node.args) == 2
            and type(node.args[1]) is nodes.Constant
            and type(node.args[1].value) in (int, str)
        ):
            steps.append((True, node.args[1].value))
            node = node.args[0]
        else:
            break
    steps.reverse()
    if type(node) in constants:
        return _Shortcut("const", node.value, ()) if not steps else None
    if type(node) is not nodes.Function:
        return None
    args = node.args
    if node.name in _STATUS_FUNCTIONS and not args and not steps:
        # `when: <% succeeded() %>` is on nearly every transition.
        return _Shortcut("status", node.name, ())
    if node.name == "result" and not args:
        return _Shortcut("result", None, tuple(steps))
    if node.name in ("ctx", "item") and (
        not args or (len(args) == 1 and type(args[0]) in constants and type(args[0].value) is str)
    ):
        return _Shortcut(node.name, args[0].value if args else None, tuple(steps))
    return None


class _VisibleVars(collections.abc.Mapping[str, Any]):
    """The variables without the internal ones, without copying them."""

    __slots__ = ("_vars",)

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._vars = variables

    def __getitem__(self, name: str) -> Any:
        if _internal(name):
            raise KeyError(name)
        return self._vars[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._vars if not _internal(name))

    def __len__(self) -> int:
        return sum(1 for _ in self)


# yaql's own conversions test every value against abstract base classes,
# which is slow for large data; these take the common JSON types first and
# otherwise follow the same rules.

_PLAIN_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _as_yaql_input(value: Any) -> Any:
    """``value`` as yaql data: dicts frozen, lists as tuples (all hashable)."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if kind is list or kind is tuple:
        return tuple([_as_yaql_input(v) for v in value])
    if kind is dict:
        return yaql.language.utils.FrozenDict(
            (_as_yaql_input(k), _as_yaql_input(v)) for k, v in value.items()
        )
    return yaql.language.utils.convert_input_data(value, _as_yaql_input_any)


def _as_yaql_input_any(value: Any, _rec: Any) -> Any:
    return _as_yaql_input(value)


def _as_yaql_output(value: Any) -> Any:
    """``value`` as it comes out of yaql: dicts, and lists for other collections."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {_as_yaql_output(k): _as_yaql_output(v) for k, v in value.items()}
    if isinstance(value, collections.abc.Iterable):
        return [_as_yaql_output(v) for v in value]
    return value


def _yaql_finalize(obj: Any) -> Any:
    # What yaql's default finalizer does (with sets and tuples as lists),
    # without its per-item overhead.
    return _as_yaql_output(obj)


# --------------------------------------------------------------------------- Jinja environment


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined that reports a missing ``ctx().name`` as a missing variable."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[jinja2.TemplateRuntimeError] = jinja2.UndefinedError,
    ) -> None:
        if hint is None and exc is jinja2.UndefinedError and isinstance(obj, _CtxDict):
            exc = _UnresolvedKey
        super().__init__(hint, obj, name, exc)

    @property
    def _undefined_message(self) -> str:
        if self._undefined_exception is _UnresolvedKey:
            return str(self._undefined_name)  # _UnresolvedKey takes the name
        return super()._undefined_message


@functools.cache
def _jinja_env() -> SandboxedEnvironment:
    env = templating.make_environment(_Undefined)
    functions = _plain_functions()
    env.filters.pop("decrypt_kv", None)
    # Orquesta registers each function as a filter too: ``x | to_json_string``.
    env.filters.update(functions)
    env.globals.update(functions)
    return env


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _jinja_expression(source: str) -> Callable[..., Any]:
    return _jinja_env().compile_expression(source, undefined_to_none=False)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _jinja_template(text: str) -> jinja2.Template:
    return _jinja_env().from_string(text)


@functools.cache
def _jinja_shell_env() -> SandboxedEnvironment:
    env = templating.make_environment(_Undefined, shell=True)
    env.filters.pop("decrypt_kv", None)
    env.filters.update(_plain_functions())
    env.globals.update(_plain_functions())
    return env


@functools.lru_cache(maxsize=256)
def _jinja_shell_template(text: str) -> jinja2.Template:
    return _jinja_shell_env().from_string(text)


def _jinja_plain(value: Any) -> Any:
    """A Jinja value as plain data: dicts, and lists for tuples, ranges, sets..."""
    if type(value) in _PLAIN_SCALARS:
        return value
    if isinstance(value, jinja2.Undefined):
        return str(value)  # raises: the value is undefined
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {_jinja_plain(k): _jinja_plain(v) for k, v in value.items()}
    if isinstance(value, collections.abc.Iterable):
        return [_jinja_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- checking


def check(value: Any) -> list[str]:
    """Syntax problems of the expressions in ``value`` (keys too); empty when fine.

    Each problem names the expression (or, for a Jinja template that does
    not parse as a whole, the text).
    """
    problems: list[str] = []
    for text in _strings(value):
        problems.extend(_check_text(text))
    return problems


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _check_text(text: str) -> tuple[str, ...]:
    scan = _scan(text)
    if scan.is_yaql and scan.is_jinja:
        return (f"'{text}' mixes YAQL and Jinja expressions, which is not supported.",)
    problems: list[str] = []
    if scan.is_yaql:
        for expr in scan.yaql:
            try:
                _yaql_parse(_yaql_source(expr))
            except (yaql.language.exceptions.YaqlException, ValueError, TypeError) as exc:
                problems.append(f"Invalid YAQL expression '{expr}': {exc}")
    elif scan.is_jinja:
        env = _jinja_env()
        whole_failed = False
        try:
            env.parse(text)
        except jinja2.TemplateError as exc:
            whole_failed = True
            problems.append(f"Invalid Jinja template '{text}': {exc.message}")
        body, _ = _set_raw_aside(text)
        for expr in _scan(body).jinja:
            if whole_failed and expr == text:
                continue  # already reported
            try:
                jinja2.parser.Parser(env, _jinja_source(expr), state="variable").parse_expression()
            except jinja2.TemplateError as exc:
                problems.append(f"Invalid Jinja expression '{expr}': {exc.message}")
    return tuple(problems)


# --------------------------------------------------------------------------- variables

_NAME = r"[A-Za-z0-9_-]+"
_VAR_PATTERNS = (
    # ctx().name, but not a method call such as ctx().get(...)
    re.compile(r"\bctx\(\s*\)\s*\.\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()"),
    # ctx(name), ctx('name'), ctx("name")
    re.compile(rf"\bctx\(\s*(?P<q>['\"]?)(?P<name>{_NAME})(?P=q)\s*\)"),
    # ctx()['name'], ctx()["name"]
    re.compile(r"\bctx\(\s*\)\s*\[\s*(?P<q>['\"])(?P<name>[^'\"]+)(?P=q)\s*\]"),
)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _vars_in(text: str) -> frozenset[str]:
    scan = _scan(text)
    exprs: tuple[str, ...] = scan.yaql
    if scan.is_jinja:
        body, _ = _set_raw_aside(text)
        body_scan = _scan(body)
        exprs += body_scan.jinja + body_scan.blocks
    names: set[str] = set()
    for expr in exprs:
        for pattern in _VAR_PATTERNS:
            for match in pattern.finditer(expr):
                names.add(match.group("name"))
    return frozenset(names)


def referenced_vars(value: Any) -> set[str]:
    """Names of the variables ``value``'s expressions read with ``ctx``.

    Recognises ``ctx().name``, ``ctx(name)``, ``ctx('name')``,
    ``ctx("name")`` and ``ctx()['name']``, in YAQL and Jinja.
    """
    names: set[str] = set()
    for text in _strings(value):
        names |= _vars_in(text)
    return names
