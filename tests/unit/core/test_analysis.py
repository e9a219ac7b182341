"""Tests for squall.core.analysis: measurement requests, values, judgements, verdicts."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest

from squall.core import analysis
from squall.core.analysis import (
    AnalysisError,
    Measurement,
    check_analysis,
    check_condition,
    check_jsonpath,
    describe,
    jsonpath,
    judge,
    measure,
    measurement_request,
    measurement_value,
    next_due,
    verdict,
)
from squall.core.rollouts import Analysis, RolloutSpecInvalid, parse_spec
from squall.errors import InvalidInput


def prom(**kwargs: Any) -> Analysis:
    fields: dict[str, Any] = {
        "name": "error-rate",
        "provider": "prometheus",
        "url": "http://prometheus:9090",
        "query": "sum(rate(http_errors_total[5m]))",
    }
    fields.update(kwargs)
    return Analysis(**fields)


def http(**kwargs: Any) -> Analysis:
    return Analysis(**{"name": "web", "provider": "http", "url": "http://svc/stats", **kwargs})


def command(**kwargs: Any) -> Analysis:
    return Analysis(**{"name": "cmd", "provider": "command", "command": "./measure", **kwargs})


def vector(*values: str) -> dict[str, Any]:
    series = [
        {"metric": {"instance": f"web-{i}"}, "value": [1700000000.123, v]}
        for i, v in enumerate(values)
    ]
    body = {"status": "success", "data": {"resultType": "vector", "result": series}}
    return {"status_code": 200, "body": body, "parsed": True, "headers": {}}


def answer(data: dict[str, Any], code: int = 200) -> dict[str, Any]:
    return {"status_code": code, "body": data, "parsed": True, "headers": {}}


# --- requests ----------------------------------------------------------------------


def test_prometheus_request_is_an_instant_query_through_core_http() -> None:
    ref, params = measurement_request(prom(url="http://prometheus:9090/"))
    assert ref == "core.http"
    assert params == {
        "url": "http://prometheus:9090/api/v1/query",
        "method": "GET",
        "params": {"query": "sum(rate(http_errors_total[5m]))"},
        "timeout": analysis.MEASUREMENT_TIMEOUT,
    }


def test_prometheus_request_keeps_a_full_api_url_and_templates() -> None:
    query = 'sum(rate(errors{rollout="{{ rollout.name }}", batch="{{ rollout.batch }}"}[1m]))'
    _, params = measurement_request(
        prom(url="http://{{ host.address }}:9090/api/v1/query", query=query), timeout=5
    )
    assert params["url"] == "http://{{ host.address }}:9090/api/v1/query"
    assert params["params"] == {"query": query}
    assert params["timeout"] == 5


def test_http_and_command_requests() -> None:
    assert measurement_request(http(jsonpath="$.ok")) == (
        "core.http",
        {"url": "http://svc/stats", "method": "GET", "timeout": analysis.MEASUREMENT_TIMEOUT},
    )
    assert measurement_request(command(command="echo {{ rollout.name }}"), timeout=7) == (
        "core.local",
        {"cmd": "echo {{ rollout.name }}", "timeout": 7},
    )


# --- values: prometheus -----------------------------------------------------------------


def test_prometheus_vector_gives_one_float_per_series_in_order() -> None:
    assert measurement_value(prom(), "succeeded", vector("0.25", "1e-3", "7")) == [0.25, 0.001, 7.0]


def test_prometheus_empty_vector_is_an_empty_list() -> None:
    assert measurement_value(prom(), "succeeded", vector()) == []


def test_prometheus_scalar_and_string() -> None:
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1.5, "0.5"]}}
    assert measurement_value(prom(), "succeeded", answer(scalar)) == 0.5
    string = {"status": "success", "data": {"resultType": "string", "result": [1.5, "up"]}}
    assert measurement_value(prom(), "succeeded", answer(string)) == "up"


def test_prometheus_special_floats() -> None:
    value = measurement_value(prom(), "succeeded", vector("NaN", "+Inf", "-Inf"))
    assert math.isnan(value[0])
    assert value[1:] == [math.inf, -math.inf]


def test_prometheus_body_as_text_is_parsed() -> None:
    text = json.dumps(vector("0.5")["body"])
    assert measurement_value(prom(), "succeeded", {"status_code": 200, "body": text}) == [0.5]


def test_prometheus_matrix_is_refused_with_advice() -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    with pytest.raises(AnalysisError, match=r"range vector \(matrix\); give an instant query"):
        measurement_value(prom(), "succeeded", answer(body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html>proxy</html>", "not an API response"),
        ({"status": "success"}, "has no data"),
        ({"status": "success", "data": {"resultType": "vector", "result": [{}]}}, "cannot be read"),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1]}}, "cannot be read"),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"value": [1, "x"]}]},
            },
            "vector result cannot be read",
        ),
        ({"status": "success", "data": {"resultType": "histo", "result": []}}, "'histo' is not"),
        (
            {"status": "error", "errorType": "execution", "error": "query timed out"},
            "Prometheus answered execution: query timed out",
        ),
    ],
)
def test_prometheus_bad_answers_are_errors(body: Any, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        measurement_value(prom(), "succeeded", answer(body))


def test_prometheus_http_error_names_its_error() -> None:
    body = {"status": "error", "errorType": "bad_data", "error": 'parse error at char 5: "x"'}
    with pytest.raises(AnalysisError) as caught:
        measurement_value(prom(), "failed", answer(body, 400))
    assert caught.value.message == (
        'Prometheus answered HTTP 400: bad_data: parse error at char 5: "x"'
    )


def test_failed_request_without_an_answer() -> None:
    result = {"error": "request to http://p/api/v1/query failed: connection refused"}
    with pytest.raises(AnalysisError, match=r"^the request ended failed: request to .* refused$"):
        measurement_value(prom(), "failed", result)
    with pytest.raises(AnalysisError, match=r"^the request timed out: slow$"):
        measurement_value(prom(), "timeout", {"error": "slow"})
    with pytest.raises(AnalysisError, match=r"^the request ended canceled$"):
        measurement_value(http(), "canceled", None)


def test_http_non_2xx_is_an_error_with_the_body() -> None:
    with pytest.raises(AnalysisError, match=r'^the server answered HTTP 503: "down"$'):
        measurement_value(http(), "failed", {"status_code": 503, "body": "down"})
    with pytest.raises(AnalysisError, match=r"^the server answered HTTP 500$"):
        measurement_value(http(), "failed", {"status_code": 500, "body": ""})


# --- values: http and jsonpath ----------------------------------------------------------


def test_http_body_narrowed_by_jsonpath() -> None:
    body = {"data": {"items": [{"error-rate": 0.1}, {"error-rate": 0.3}]}, "ok": True}
    result = answer(body)
    assert measurement_value(http(), "succeeded", result) == body
    assert measurement_value(http(jsonpath="$"), "succeeded", result) == body
    assert measurement_value(http(jsonpath="$.ok"), "succeeded", result) is True
    path = "$.data.items[-1]['error-rate']"
    assert measurement_value(http(jsonpath=path), "succeeded", result) == 0.3
    path = '$["data"].items[0]["error-rate"]'
    assert measurement_value(http(jsonpath=path), "succeeded", result) == 0.1
    assert measurement_value(http(jsonpath="{$.ok}"), "succeeded", result) is True


def test_http_text_bodies() -> None:
    assert measurement_value(http(jsonpath="$.a"), "succeeded", {"body": '{"a": [1]}'}) == [1]
    assert measurement_value(http(), "succeeded", {"body": " 0.75\n"}) == 0.75
    assert measurement_value(http(), "succeeded", {"body": " healthy\n"}) == "healthy"


def test_http_result_without_body() -> None:
    with pytest.raises(AnalysisError, match="has no body"):
        measurement_value(http(), "succeeded", {"status_code": 200})


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("$.missing", r'no key "missing" \(keys: a, b\)'),
        ("$.a[2]", r"no item \[2\] in a list of 2"),
        ("$.a[-3]", r"no item \[-3\]"),
        ("$.b[0]", r"\[0\] needs a list"),
        ("$.a.x", r'"x" needs an object'),
    ],
)
def test_jsonpath_misses_are_errors(path: str, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        jsonpath({"a": [1, 2], "b": {"c": 1}}, path)


def test_jsonpath_lists_at_most_ten_keys() -> None:
    body = {f"k{i:02}": i for i in range(12)}
    with pytest.raises(AnalysisError) as caught:
        jsonpath(body, "$.x")
    assert caught.value.message.endswith(
        "(keys: k00, k01, k02, k03, k04, k05, k06, k07, k08, k09, …)"
    )
    with pytest.raises(AnalysisError, match=r"\(keys: none\)"):
        jsonpath({}, "$.x")


def test_jsonpath_on_a_non_object_body() -> None:
    with pytest.raises(AnalysisError, match='"x" needs an object, not the body'):
        jsonpath("text", "$.x")


@pytest.mark.parametrize("path", ["data.x", "$..x", "$.a[*]", "$[?(@.x)]", "$.a[1:2]", "$ .a"])
def test_jsonpath_outside_the_subset_is_refused(path: str) -> None:
    problem = check_jsonpath(path)
    assert problem is not None
    assert path in problem
    with pytest.raises(AnalysisError):
        jsonpath({}, path)


def test_jsonpath_keys_that_look_like_numbers_and_spaces() -> None:
    assert jsonpath({"0": "zero", "a b": 1}, "$['0']") == "zero"
    assert jsonpath({"0": "zero", "a b": 1}, "$[ 'a b' ]") == 1
    assert check_jsonpath("$.a_b-c[10]['x.y']") is None


# --- values: command --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "value"),
    [
        ("0.02", 0.02),
        ("0.02\n", 0.02),
        ('{"rate": 0.5}', {"rate": 0.5}),
        ("[1, 2]", [1, 2]),
        ("  ok  ", "ok"),
        ("1,5", "1,5"),
        (0.3, 0.3),  # the local runner already parsed it
        ({"a": 1}, {"a": 1}),
        (True, True),
    ],
)
def test_command_stdout(stdout: Any, value: Any) -> None:
    assert measurement_value(command(), "succeeded", {"stdout": stdout, "return_code": 0}) == value


def test_command_stdout_nan_is_a_float() -> None:
    value = measurement_value(command(), "succeeded", {"stdout": "NaN"})
    assert isinstance(value, float)
    assert math.isnan(value)


def test_command_errors() -> None:
    with pytest.raises(AnalysisError, match="printed nothing"):
        measurement_value(command(), "succeeded", {"stdout": "  \n", "return_code": 0})
    with pytest.raises(AnalysisError, match="has no stdout"):
        measurement_value(command(), "succeeded", None)
    failed = {"stdout": "", "stderr": "no such file", "return_code": 127}
    with pytest.raises(AnalysisError, match=r'^the command exited with 127: "no such file"$'):
        measurement_value(command(), "failed", failed)
    timeout = {"return_code": -9, "error": "Action failed to complete in 30 seconds"}
    with pytest.raises(AnalysisError, match=r"^the command timed out: Action failed to complete"):
        measurement_value(command(), "timeout", timeout)
    with pytest.raises(AnalysisError, match=r"^the command ended abandoned$"):
        measurement_value(command(), "abandoned", {})


# --- judging ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("success", "failure", "value", "expected"),
    [
        # both: failure first, success, else inconclusive
        ("result[0] < 0.01", "result[0] > 0.05", [0.001], "successful"),
        ("result[0] < 0.01", "result[0] > 0.05", [0.1], "failed"),
        ("result[0] < 0.01", "result[0] > 0.05", [0.03], "inconclusive"),
        ("result[0] < 1", "result[0] > 0", [0.5], "failed"),  # both hold: failure wins
        # success only: not success is failure
        ("result < 0.05", None, 0.01, "successful"),
        ("result < 0.05", None, 0.07, "failed"),
        # failure only: not failure is success
        (None, "result > 0.05", 0.01, "successful"),
        (None, "result > 0.05", 0.07, "failed"),
        # guards and functions
        ("len(result) == 0 or result[0] >= 0.99", None, [], "successful"),
        ("len(result) == 0 or result[0] >= 0.99", None, [0.98], "failed"),
        ("max(result) < 0.1", None, [0.01, 0.2], "failed"),
        ("all(result)", None, [1, 0], "failed"),
        ("abs(min(result)) < 1 and round(result[0], 1) == 0.1", None, [0.12], "successful"),
        ("sum(result) / len(result) < 0.1", None, [0.05, 0.1], "successful"),
        (None, "isNaN(result[0])", [math.nan], "failed"),
        (None, "isNaN(result[0])", [0.0], "successful"),
        ("result[0] < 0.05", None, [math.nan], "failed"),  # NaN compares false
        ("result.status == 'green'", None, {"status": "green"}, "successful"),
        ("result['status'] in ['green', 'yellow']", None, {"status": "red"}, "failed"),
        ("result", None, True, "successful"),
        ("result | length == 2", None, [1, 2], "successful"),
        ("not result", None, [], "successful"),
    ],
)
def test_judge(success: str | None, failure: str | None, value: Any, expected: str) -> None:
    assert judge(prom(success=success, failure=failure), value) == expected


def test_judge_reports_evaluation_errors_naming_the_condition() -> None:
    with pytest.raises(AnalysisError) as caught:
        judge(prom(failure="result[0] > 0.05"), [])
    assert caught.value.message == (
        'the failure condition "result[0] > 0.05" cannot be evaluated with result []: '
        "list object has no element 0"
    )
    with pytest.raises(AnalysisError, match=r'^the success condition "result < 0.05" cannot be'):
        judge(prom(success="result < 0.05"), [0.01])


def test_failure_holding_is_decided_before_a_broken_success() -> None:
    # The failure guard holds, so the success condition is not evaluated.
    a = prom(success="result[0] < 0.05", failure="len(result) == 0")
    assert judge(a, []) == "failed"
    with pytest.raises(AnalysisError, match="success condition"):
        judge(prom(success="result[0] < 0.05", failure="len(result) > 5"), [])


def test_judge_wants_true_or_false() -> None:
    with pytest.raises(AnalysisError, match=r'"result\[0\]" gives 0.5 with result \[0.5\], not'):
        judge(prom(success="result[0]"), [0.5])
    with pytest.raises(AnalysisError, match="gives \\[\\]"):
        judge(prom(failure="result and result[0] > 1"), [])


def test_judge_is_sandboxed() -> None:
    with pytest.raises(AnalysisError, match="unsafe"):
        judge(prom(success="result.__class__.__mro__ == 1"), 1.0)
    with pytest.raises(AnalysisError, match="too large"):
        judge(prom(success="'x' * 10000000 == ''"), 1.0)


def test_judge_syntax_error_names_the_condition_with_a_hint() -> None:
    with pytest.raises(AnalysisError) as caught:
        judge(prom(success="result[0] < 0.05 && result[1] < 0.05"), [0.0, 0.0])
    assert caught.value.message.startswith(
        'the success condition "result[0] < 0.05 && result[1] < 0.05" is not a valid expression'
    )
    assert caught.value.message.endswith('(write "and", "or" and "not")')


def test_check_condition() -> None:
    assert check_condition("len(result) == 0 or result[0] >= 0.99") is None
    assert check_condition("result != 1") is None
    assert check_condition("result <") is not None
    no_hint = check_condition("result ===")
    assert no_hint is not None
    assert "write" not in no_hint
    hint = check_condition("!result")
    assert hint is not None
    assert hint.endswith('(write "and", "or" and "not")')


def test_check_analysis_paths() -> None:
    bad = http(success="result ||| 1", failure="result >", jsonpath="x")
    assert [p.path for p in check_analysis(bad)] == ["success", "failure", "jsonpath"]
    assert check_analysis(http(success="result", jsonpath="$.a")) == []


def test_spec_reader_checks_conditions_and_jsonpath() -> None:
    spec = {
        "name": "r",
        "target": "*",
        "action": "a.b",
        "batches": [1],
        "analysis": [
            {"name": "a", "provider": "http", "url": "u", "jsonpath": "x.y", "success": "r &&"},
            {"name": "b", "provider": "command", "command": "c", "failure": "result > 1"},
        ],
    }
    with pytest.raises(RolloutSpecInvalid) as caught:
        parse_spec(spec)
    problems = {p.path: p.message for p in caught.value.problems}
    assert set(problems) == {"analysis[0].success", "analysis[0].jsonpath"}
    assert problems["analysis[0].jsonpath"] == 'jsonpath "x.y" must start with $'


# --- measure ----------------------------------------------------------------------------


def test_measure_successful_failed_inconclusive() -> None:
    a = prom(success="result[0] < 0.01", failure="result[0] > 0.05")
    assert measure(a, "succeeded", vector("0.001"), 10.0) == Measurement(
        10.0, [0.001], "successful", None
    )
    failed = measure(a, "succeeded", vector("0.2"), 11.0)
    assert failed.outcome == "failed"
    assert failed.message == 'result [0.2]: the failure condition "result[0] > 0.05" holds'
    odd = measure(a, "succeeded", vector("0.03"), 12.0)
    assert odd.outcome == "inconclusive"
    assert odd.message == (
        'result [0.03]: neither the success condition "result[0] < 0.01" '
        'nor the failure condition "result[0] > 0.05" holds'
    )
    only_success = measure(prom(success="result[0] < 0.01"), "succeeded", vector("0.5"), 1)
    assert only_success.message == (
        'result [0.5]: the success condition "result[0] < 0.01" does not hold'
    )


def test_measure_errors_keep_their_message_and_value() -> None:
    down = measure(prom(success="result[0] < 1"), "failed", {"error": "refused"}, 3.0)
    assert down == Measurement(3.0, None, "error", "the request ended failed: refused")
    empty = measure(prom(success="result[0] < 1"), "succeeded", vector(), 4.0)
    assert empty.outcome == "error"
    assert empty.value == []
    assert empty.message is not None
    assert empty.message.startswith('the success condition "result[0] < 1" cannot be evaluated')


# --- the Measurement record -------------------------------------------------------------


def test_measurement_round_trips_through_json_with_special_floats() -> None:
    m = Measurement(1.5, [math.nan, math.inf, -math.inf, 0.5], "failed", "why")
    data = m.to_dict()
    assert data == {
        "at": 1.5,
        "value": ["NaN", "+Inf", "-Inf", 0.5],
        "outcome": "failed",
        "message": "why",
    }
    # The store writes JSON with orjson, which would turn NaN into null.
    back = Measurement.from_dict(orjson.loads(orjson.dumps(data)))
    assert math.isnan(back.value[0])
    assert back.value[1:] == [math.inf, -math.inf, 0.5]
    assert (back.at, back.outcome, back.message) == (1.5, "failed", "why")


def test_measurement_round_trip_nested_and_plain() -> None:
    m = Measurement(2.0, {"a": [1, {"b": math.nan}], "c": "x"}, "successful")
    back = Measurement.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back.value["a"][0] == 1
    assert math.isnan(back.value["a"][1]["b"])
    assert back.value["c"] == "x"
    assert back.message is None
    assert Measurement.from_dict(Measurement(3, None, "error", "m").to_dict()) == Measurement(
        3.0, None, "error", "m"
    )


def test_measurement_from_dict_refuses_unknown_outcomes() -> None:
    with pytest.raises(InvalidInput, match="outcome must be one of"):
        Measurement.from_dict({"at": 1, "value": 1, "outcome": "ok"})


# --- verdict, next_due, describe ---------------------------------------------------------


def ms(*outcomes: str, start: float = 100.0, value: Any = 0.0) -> list[Measurement]:
    return [
        Measurement(start + 60 * i, value, o, None if o == "successful" else f"{o} #{i}")  # type: ignore[arg-type]
        for i, o in enumerate(outcomes)
    ]


@pytest.mark.parametrize(
    ("count", "limit", "outcomes", "expected"),
    [
        (3, 0, [], "running"),
        (3, 0, ["successful"], "running"),
        (3, 0, ["successful"] * 3, "successful"),
        (3, 0, ["failed"], "failed"),  # early stop
        (3, 0, ["error"], "failed"),
        (3, 1, ["failed"], "running"),  # one failure is within the limit
        (3, 1, ["failed", "successful", "successful"], "successful"),
        (3, 1, ["failed", "error"], "failed"),  # errors count with failures
        (3, 1, ["inconclusive", "successful"], "running"),
        (3, 1, ["inconclusive", "failed", "successful"], "inconclusive"),
        (3, 0, ["successful", "inconclusive", "successful"], "inconclusive"),
        (3, 0, ["inconclusive", "inconclusive", "failed"], "failed"),
        (1, 0, ["successful"], "successful"),
        (2, 5, ["failed", "failed"], "successful"),  # failures within a generous limit
    ],
)
def test_verdict(count: int, limit: int, outcomes: list[str], expected: str) -> None:
    assert verdict(prom(count=count, failure_limit=limit), ms(*outcomes)) == expected


def test_next_due() -> None:
    a = prom(count=3, interval=30.0)
    assert next_due(a, [], started_at=50.0) == 50.0
    taken = ms("successful", start=55.0)
    assert next_due(a, taken, started_at=50.0) == 85.0
    assert next_due(a, ms("successful", "successful", start=55.0), 50.0) == 145.0
    assert next_due(a, ms("successful", "successful", "successful"), 50.0) is None
    assert next_due(a, ms("failed"), 50.0) is None  # failed early: nothing more to take


def test_describe() -> None:
    a = prom(count=3, failure_limit=1)
    assert describe(a, []) == "0 of 3 measurements taken"
    assert describe(a, ms("successful", "successful", "successful")) == (
        "3 of 3 measurements successful"
    )
    assert describe(prom(count=1), ms("successful")) == "1 of 1 measurement successful"
    assert describe(a, ms("successful", "failed", value=[0.12])) == (
        "2 of 3 measurements taken (1 successful, 1 failed); last: failed #1"
    )
    assert describe(a, ms("failed", "successful", value=[0.01])) == (
        "2 of 3 measurements taken (1 successful, 1 failed); last: result [0.01]"
    )
    assert describe(a, ms("failed", "failed")) == "2 failed (limit 1): failed #1"
    assert describe(a, ms("error", "error")) == "2 in error (limit 1): error #1"
    assert describe(a, ms("failed", "successful", "error")) == (
        "2 failed or in error (1 failed, 1 error) (limit 1): error #2"
    )
    assert describe(a, ms("inconclusive", "successful", "successful")) == (
        "3 of 3 measurements taken, 2 successful, 1 inconclusive: inconclusive (inconclusive #0)"
    )


def test_describe_real_failure_text() -> None:
    a = prom(count=3, failure_limit=0, failure="result[0] > 0.05")
    taken = [measure(a, "succeeded", vector("0.12"), 1.0)]
    assert verdict(a, taken) == "failed"
    assert describe(a, taken) == (
        '1 failed (limit 0): result [0.12]: the failure condition "result[0] > 0.05" holds'
    )
