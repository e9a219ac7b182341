r"""Metric analysis of a rollout: build each measurement, judge its result.

An entry of a rollout's ``analysis`` (:class:`squall.core.rollouts.Analysis`)
is checked like an Argo Rollouts AnalysisTemplate metric: ``count``
measurements, ``interval`` seconds apart, each judged ``successful``,
``failed``, ``inconclusive`` or ``error``; the analysis fails as soon as more
than ``failure_limit`` of them failed or could not be taken.

Each measurement is an ordinary execution. This module does no I/O: the
caller requests the execution :func:`measurement_request` describes, and
hands its final status and result to :func:`measure`, which takes the value
out (:func:`measurement_value`) and judges it (:func:`judge`). Then
:func:`verdict` says whether the analysis goes on and how it ended,
:func:`next_due` when the next measurement is due, and :func:`describe` says
it in words.

Providers and the value their conditions see as ``result``:

``prometheus``
    ``core.http`` GET ``{url}/api/v1/query?query={query}`` (an instant query).
    A vector gives a list of floats, one per series, in the order Prometheus
    returns them (an empty vector is ``[]``); a scalar gives a float; a
    string gives a string. ``NaN``, ``+Inf`` and ``-Inf`` are floats. A range
    vector (matrix) is refused: ask for an instant value, e.g.
    ``sum(rate(http_errors_total[5m]))``.
``http``
    ``core.http`` GET ``url``. The body is read as JSON (else as a number,
    else as the stripped text); ``jsonpath`` narrows it: ``$`` (the whole
    body), ``.key``, ``['key']`` or ``["key"]``, and ``[0]`` (``[-1]`` is the
    last item), e.g. ``$.data.items[0]['error-rate']`` (Argo's braces,
    ``{$.data.ok}``, are accepted).
``command``
    ``core.local`` with ``cmd: command``, run on the Squall host. Its stdout
    is read as JSON, else as a number, else as the stripped text.

The query, url and command may hold templates (``{{ rollout.name }}``): the
execution service renders them when the measurement is requested, so they
are passed on as written.

A measurement is an ``error`` when its execution did not succeed (including
an HTTP status outside 200-206), when Prometheus answers ``status: error``,
when the value cannot be taken out, or when a condition cannot be
evaluated.

Conditions are Jinja expressions over ``result`` (the sandbox of
:mod:`squall.core.templating`, its filters, and ``len``, ``abs``, ``min``,
``max``, ``sum``, ``all``, ``any``, ``float``, ``int``, ``round``, ``isNaN``
and ``isInf``): ``result[0] < 0.05``, ``result < 0.05``,
``len(result) == 0 or result[0] >= 0.99``. Write ``and``, ``or``, ``not``
(not ``&&``, ``||``, ``!``). A condition must give true or false; reading
past the end of a list, or comparing a list with a number, is an error.

Judging, as Argo does: the ``failure`` condition is evaluated first; if it
holds the measurement ``failed``. Otherwise, with a ``success`` condition,
the measurement is ``successful`` when it holds; when it does not, the
measurement ``failed`` if ``success`` is the only condition, and is
``inconclusive`` when both are given (neither holds). With only a
``failure`` condition, a measurement for which it does not hold is
``successful``.

Verdict: ``failed`` as soon as ``failed`` + ``error`` measurements exceed
``failure_limit`` (the analysis stops early); ``running`` while fewer than
``count`` measurements are taken; then ``inconclusive`` if any measurement
was, else ``successful``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import jinja2
from jinja2.environment import TemplateExpression

from squall.core.templating import make_environment
from squall.core.workflow import Problem
from squall.errors import InvalidInput

if TYPE_CHECKING:
    from squall.core.rollouts import Analysis

__all__ = [
    "MEASUREMENT_TIMEOUT",
    "AnalysisError",
    "Judgement",
    "Measurement",
    "Outcome",
    "Verdict",
    "check_analysis",
    "check_condition",
    "check_jsonpath",
    "describe",
    "jsonpath",
    "judge",
    "measure",
    "measurement_request",
    "measurement_value",
    "next_due",
    "verdict",
]

Judgement: TypeAlias = Literal["successful", "failed", "inconclusive"]
Outcome: TypeAlias = Literal["successful", "failed", "inconclusive", "error"]
Verdict: TypeAlias = Literal["running", "successful", "failed", "inconclusive"]

OUTCOMES: tuple[Outcome, ...] = ("successful", "failed", "inconclusive", "error")
MEASUREMENT_TIMEOUT = 30.0  # seconds one measurement's execution may take
PROMETHEUS_PATH = "/api/v1/query"
_SHOW_LIMIT = 120


class AnalysisError(InvalidInput):
    """A measurement cannot be taken out of its execution, or judged."""


# --- measurements -----------------------------------------------------------------


def _encode(value: Any) -> Any:
    """``value`` with non-finite floats written as Prometheus writes them
    (JSON has no NaN or infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


_NON_FINITE = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}


def _decode(value: Any) -> Any:
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Measurement:
    """One judged measurement: when it was taken (seconds since the epoch,
    the caller's clock), the value its conditions saw (None for most
    errors), its outcome and, unless successful, why."""

    at: float
    value: Any
    outcome: Outcome
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; NaN and infinities become ``"NaN"``, ``"+Inf"``
        and ``"-Inf"``, and :meth:`from_dict` turns them back into floats."""
        return {
            "at": self.at,
            "value": _encode(self.value),
            "outcome": self.outcome,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        outcome = data.get("outcome")
        if outcome not in OUTCOMES:
            raise InvalidInput(
                f"a measurement's outcome must be one of {OUTCOMES}, not {outcome!r}"
            )
        message = data.get("message")
        return cls(
            at=float(data.get("at") or 0.0),
            value=_decode(data.get("value")),
            outcome=outcome,
            message=None if message is None else str(message),
        )


def measurement_request(
    analysis: Analysis, *, timeout: float = MEASUREMENT_TIMEOUT
) -> tuple[str, dict[str, Any]]:
    """The action ref and parameters of one measurement's execution.

    prometheus: ``("core.http", {"url": URL/api/v1/query, "method": "GET",
    "params": {"query": QUERY}, "timeout": timeout})`` (a url that already
    ends with ``/api/v1/query`` is kept); http: ``("core.http", {"url",
    "method": "GET", "timeout"})``; command: ``("core.local", {"cmd",
    "timeout"})``. Templates in them are left for the execution service."""
    if analysis.provider == "prometheus":
        url = (analysis.url or "").rstrip("/")
        if not url.endswith(PROMETHEUS_PATH):
            url += PROMETHEUS_PATH
        params = {"query": analysis.query or ""}
        return "core.http", {"url": url, "method": "GET", "params": params, "timeout": timeout}
    if analysis.provider == "http":
        return "core.http", {"url": analysis.url or "", "method": "GET", "timeout": timeout}
    # core.local takes whole seconds.
    return "core.local", {"cmd": analysis.command or "", "timeout": math.ceil(timeout)}


def measurement_value(analysis: Analysis, execution_status: str, result: Any) -> Any:
    """The value a measurement's conditions see as ``result``, taken out of
    its execution's final status and result; :class:`AnalysisError` says why
    there is none (the execution did not succeed, Prometheus answered an
    error, the jsonpath finds nothing...)."""
    if analysis.provider == "command":
        return _command_value(execution_status, result)
    body = _http_body(analysis, execution_status, result)
    if analysis.provider == "prometheus":
        return _prometheus_value(body)
    if analysis.jsonpath:
        return jsonpath(body, analysis.jsonpath)
    return body


def _result_error(result: Any) -> str | None:
    if isinstance(result, Mapping) and result.get("error"):
        return str(result["error"])
    return None


def _http_body(analysis: Analysis, status: str, result: Any) -> Any:
    what = "Prometheus" if analysis.provider == "prometheus" else "the server"
    code = result.get("status_code") if isinstance(result, Mapping) else None
    body = _parse_text(result.get("body")) if isinstance(result, Mapping) else None
    if status != "succeeded":
        if isinstance(code, int):
            text = _prometheus_error(body) if analysis.provider == "prometheus" else None
            if text is None and body not in (None, ""):
                text = _show(body)
            raise AnalysisError(f"{what} answered HTTP {code}" + (f": {text}" if text else ""))
        error = _result_error(result)
        if status == "timeout":
            raise AnalysisError(f"the request timed out{f': {error}' if error else ''}")
        raise AnalysisError(f"the request {_ended(status)}{f': {error}' if error else ''}")
    if not isinstance(result, Mapping) or "body" not in result:
        raise AnalysisError(f"the request's result has no body: {_show(result)}")
    return body


def _prometheus_error(body: Any) -> str | None:
    if isinstance(body, Mapping) and body.get("status") == "error":
        kind = body.get("errorType")
        error = body.get("error") or "no message"
        return f"{kind}: {error}" if kind else str(error)
    return None


def _prometheus_value(body: Any) -> Any:
    if not isinstance(body, Mapping) or "status" not in body:
        raise AnalysisError(f"Prometheus's answer is not an API response: {_show(body)}")
    if body.get("status") != "success":
        raise AnalysisError(f"Prometheus answered {_prometheus_error(body) or _show(body)}")
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise AnalysisError(f"Prometheus's answer has no data: {_show(body)}")
    kind = data.get("resultType")
    found = data.get("result")
    try:
        if kind == "vector":
            if not isinstance(found, list):
                raise TypeError
            return [_sample(series["value"]) for series in found]
        if kind == "scalar":
            return _sample(found)
        if kind == "string":
            if not isinstance(found, list) or len(found) != 2:
                raise TypeError
            return str(found[1])
    except (TypeError, ValueError, KeyError, IndexError):
        raise AnalysisError(f"Prometheus's {kind} result cannot be read: {_show(found)}") from None
    if kind == "matrix":
        raise AnalysisError(
            "the query gives a range vector (matrix); give an instant query, "
            "e.g. sum(rate(http_errors_total[5m]))"
        )
    raise AnalysisError(f"Prometheus's result type {kind!r} is not one of vector, scalar or string")


def _sample(pair: Any) -> float:
    """The value of a ``[timestamp, "value"]`` pair."""
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise TypeError(pair)
    return float(pair[1])


def _command_value(status: str, result: Any) -> Any:
    if status != "succeeded":
        error = _result_error(result)
        code = result.get("return_code") if isinstance(result, Mapping) else None
        stderr = result.get("stderr") if isinstance(result, Mapping) else None
        if error is None and stderr not in (None, ""):
            error = _show(stderr)
        if status == "failed" and isinstance(code, int):
            what = f"the command exited with {code}"
        else:
            what = f"the command {_ended(status)}"
        raise AnalysisError(what + (f": {error}" if error else ""))
    if not isinstance(result, Mapping) or "stdout" not in result:
        raise AnalysisError(f"the command's result has no stdout: {_show(result)}")
    value = _parse_text(result["stdout"])
    if value == "":
        raise AnalysisError("the command printed nothing on stdout")
    return value


def _parse_text(value: Any) -> Any:
    """Text as JSON, else as a number, else stripped; anything else as is."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _ended(status: str) -> str:
    return "timed out" if status == "timeout" else f"ended {status}"


# --- jsonpath -----------------------------------------------------------------------

_JSONPATH_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_][\w-]*)
      | \[\s*(?:(?P<index>-?\d+)|'(?P<single>[^']*)'|"(?P<double>[^"]*)")\s*\]""",
    re.VERBOSE,
)


@functools.lru_cache(maxsize=256)
def _jsonpath_steps(path: str) -> tuple[str | int, ...]:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):  # Argo's "{$.data.ok}"
        text = text[1:-1].strip()
    if not text.startswith("$"):
        raise AnalysisError(f'jsonpath "{path}" must start with $')
    steps: list[str | int] = []
    pos = 1
    while pos < len(text):
        match = _JSONPATH_STEP.match(text, pos)
        if match is None:
            raise AnalysisError(
                f'jsonpath "{path}" cannot be read at "{text[pos:]}": '
                "use $, .key, ['key'] and [0]"
            )
        index = match.group("index")
        if index is not None:
            steps.append(int(index))
        else:
            name = match.group("name")
            steps.append(
                name if name is not None else match.group("single") or match.group("double") or ""
            )
        pos = match.end()
    return tuple(steps)


def jsonpath(value: Any, path: str) -> Any:
    """The part of ``value`` that ``path`` names: ``$``, ``.key``,
    ``['key']``, ``["key"]``, ``[0]``, ``[-1]``; AnalysisError when it is
    not there."""
    steps = _jsonpath_steps(path)
    node = value
    for i, step in enumerate(steps):
        if isinstance(step, int):
            if not isinstance(node, list):
                raise AnalysisError(f'jsonpath "{path}": [{step}] needs a list, not {_show(node)}')
            if not -len(node) <= step < len(node):
                raise AnalysisError(
                    f'jsonpath "{path}": no item [{step}] in a list of {len(node)} ({_show(node)})'
                )
            node = node[step]
        else:
            if not isinstance(node, Mapping):
                where = "the body" if i == 0 else _show(node)
                raise AnalysisError(f'jsonpath "{path}": "{step}" needs an object, not {where}')
            if step not in node:
                names = sorted(map(str, node))
                keys = ", ".join(names[:10]) + (", …" if len(names) > 10 else "") or "none"
                raise AnalysisError(f'jsonpath "{path}": no key "{step}" (keys: {keys})')
            node = node[step]
    return node


def check_jsonpath(path: str) -> str | None:
    """What is wrong with a jsonpath, or None."""
    try:
        _jsonpath_steps(path)
    except AnalysisError as exc:
        return exc.message
    return None


# --- conditions ---------------------------------------------------------------------

_ENV = make_environment(jinja2.StrictUndefined)
_ENV.globals.update(
    {
        "len": len,
        "abs": abs,
        "min": min,
        "max": max,
        "sum": sum,
        "all": all,
        "any": any,
        "float": float,
        "int": int,
        "round": round,
        "isNaN": math.isnan,
        "isInf": math.isinf,
    }
)


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> TemplateExpression:
    try:
        return _ENV.compile_expression(source, undefined_to_none=False)
    except jinja2.TemplateSyntaxError as exc:
        hint = ""
        if any(op in source for op in ("&&", "||")) or re.search(r"!(?!=)", source):
            hint = ' (write "and", "or" and "not")'
        raise AnalysisError(f'"{source}" is not a valid expression: {exc.message}{hint}') from None


def check_condition(source: str) -> str | None:
    """What is wrong with a condition's syntax, or None."""
    try:
        _compile(source)
    except AnalysisError as exc:
        return exc.message
    return None


def _holds(which: str, source: str, value: Any) -> bool:
    try:
        outcome = _compile(source)(result=value)
    except AnalysisError as exc:
        raise AnalysisError(f"the {which} condition {exc.message}") from None
    except Exception as exc:
        raise AnalysisError(
            f'the {which} condition "{source}" cannot be evaluated with result '
            f"{_show(value)}: {exc}"
        ) from None
    if not isinstance(outcome, bool):
        raise AnalysisError(
            f'the {which} condition "{source}" gives {_show(outcome)} with result '
            f"{_show(value)}, not true or false"
        )
    return outcome


def judge(analysis: Analysis, value: Any) -> Judgement:
    """``successful``, ``failed`` or ``inconclusive`` for one measured value
    (see the module's documentation); AnalysisError, naming the condition,
    when a condition cannot be evaluated or does not give true or false."""
    return _judge(analysis, value)[0]


def _judge(analysis: Analysis, value: Any) -> tuple[Judgement, str | None]:
    """The judgement and, unless successful, why."""
    shown = f"result {_show(value)}"
    if analysis.failure is not None and _holds("failure", analysis.failure, value):
        return "failed", f'{shown}: the failure condition "{analysis.failure}" holds'
    if analysis.success is None or _holds("success", analysis.success, value):
        return "successful", None
    if analysis.failure is None:
        return "failed", f'{shown}: the success condition "{analysis.success}" does not hold'
    return "inconclusive", (
        f'{shown}: neither the success condition "{analysis.success}" '
        f'nor the failure condition "{analysis.failure}" holds'
    )


def measure(analysis: Analysis, execution_status: str, result: Any, at: float) -> Measurement:
    """The judged measurement of one finished execution, taken at ``at``
    (never raises AnalysisError: an ``error`` measurement holds its
    message, and the value when there is one)."""
    try:
        value = measurement_value(analysis, execution_status, result)
    except AnalysisError as exc:
        return Measurement(at, None, "error", exc.message)
    try:
        outcome, message = _judge(analysis, value)
    except AnalysisError as exc:
        return Measurement(at, value, "error", exc.message)
    return Measurement(at, value, outcome, message)


def check_analysis(analysis: Analysis) -> list[Problem]:
    """Problems of an analysis entry found before anything runs: the syntax
    of its conditions and of its jsonpath (paths relative to the entry)."""
    problems: list[Problem] = []
    for key, source in (("success", analysis.success), ("failure", analysis.failure)):
        if source is not None:
            problem = check_condition(source)
            if problem:
                problems.append(Problem(key, problem))
    if analysis.jsonpath is not None:
        problem = check_jsonpath(analysis.jsonpath)
        if problem:
            problems.append(Problem("jsonpath", problem))
    return problems


# --- the analysis as a whole ------------------------------------------------------


def _counts(measurements: Sequence[Measurement]) -> dict[Outcome, int]:
    counts: dict[Outcome, int] = dict.fromkeys(OUTCOMES, 0)
    for m in measurements:
        counts[m.outcome] += 1
    return counts


def verdict(analysis: Analysis, measurements: Sequence[Measurement]) -> Verdict:
    """``failed`` as soon as failed + error measurements exceed
    ``failure_limit``; ``running`` while fewer than ``count`` are taken;
    then ``inconclusive`` if any was, else ``successful``."""
    counts = _counts(measurements)
    if counts["failed"] + counts["error"] > analysis.failure_limit:
        return "failed"
    if len(measurements) < analysis.count:
        return "running"
    if counts["inconclusive"]:
        return "inconclusive"
    return "successful"


def next_due(
    analysis: Analysis, measurements: Sequence[Measurement], started_at: float
) -> float | None:
    """When the next measurement is due: ``started_at`` for the first, then
    ``interval`` seconds after the last one was taken; None once the
    verdict is no longer ``running``."""
    if verdict(analysis, measurements) != "running":
        return None
    if not measurements:
        return started_at
    return max(m.at for m in measurements) + analysis.interval


def describe(analysis: Analysis, measurements: Sequence[Measurement]) -> str:
    """The state of an analysis in a sentence, e.g. ``3 of 3 measurements
    successful`` or ``2 failed (limit 1): result [0.12]: the failure
    condition "result[0] > 0.05" holds``."""
    counts = _counts(measurements)
    taken = len(measurements)
    total = max(analysis.count, taken)
    state = verdict(analysis, measurements)
    parts = [f"{counts[o]} {o}" for o in OUTCOMES if counts[o]]
    if state == "successful":
        return f"{taken} of {total} measurement{_s(total)} successful"
    if state == "failed":
        bad = counts["failed"] + counts["error"]
        if counts["failed"] and counts["error"]:
            what = f"{bad} failed or in error ({counts['failed']} failed, {counts['error']} error)"
        else:
            what = f"{bad} {'failed' if counts['failed'] else 'in error'}"
        last = next(m for m in reversed(measurements) if m.outcome in ("failed", "error"))
        return f"{what} (limit {analysis.failure_limit}): {last.message or last.outcome}"
    if state == "inconclusive":
        last = next(m for m in reversed(measurements) if m.outcome == "inconclusive")
        return (
            f"{taken} of {total} measurement{_s(total)} taken, {', '.join(parts)}: "
            f"inconclusive ({last.message})"
        )
    if not taken:
        return f"0 of {total} measurement{_s(total)} taken"
    latest = measurements[-1]
    shown = latest.message if latest.outcome != "successful" else f"result {_show(latest.value)}"
    return f"{taken} of {total} measurement{_s(total)} taken ({', '.join(parts)}); last: {shown}"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _show(value: Any) -> str:
    """A value as compact JSON, cut to a readable length."""
    try:
        text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 1] + "…"
    return text
