"""Tests for squall.core.hostresults: per-host results, summaries, folding, verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from squall.core.hostresults import (
    FAILURES,
    FINAL,
    Fold,
    HostStatus,
    fold,
    host_result,
    ordered_counts,
    summarize,
    verdict,
)

# -- host_result ------------------------------------------------------------------------


def test_succeeded_result_has_stackstorm_shape() -> None:
    assert host_result(HostStatus.SUCCEEDED, stdout="ok", stderr="warn") == {
        "succeeded": True,
        "failed": False,
        "return_code": 0,
        "stdout": "ok",
        "stderr": "warn",
    }


def test_failed_result_keeps_the_command_exit_status() -> None:
    result = host_result(HostStatus.FAILED, return_code=3, stderr="boom")
    assert result == {
        "succeeded": False,
        "failed": True,
        "return_code": 3,
        "stdout": "",
        "stderr": "boom",
    }


def test_timeout_result_is_marked_and_defaults_to_minus_nine() -> None:
    result = host_result(HostStatus.TIMEOUT, stdout="partial")
    assert result["timeout"] is True
    assert result["return_code"] == -9
    assert result["failed"] is True
    assert result["succeeded"] is False
    assert result["stdout"] == "partial"


def test_timeout_result_keeps_an_explicit_return_code() -> None:
    result = host_result(HostStatus.TIMEOUT, return_code=143)
    assert result["return_code"] == 143
    assert result["timeout"] is True


@pytest.mark.parametrize(
    "status",
    [
        HostStatus.UNREACHABLE,
        HostStatus.AUTH_FAILED,
        HostStatus.HOST_KEY,
        HostStatus.CANCELED,
        HostStatus.FAILED,
    ],
)
def test_other_failures_default_to_255_and_have_no_timeout_key(status: HostStatus) -> None:
    result = host_result(status)
    assert result["return_code"] == 255
    assert result["failed"] is True
    assert "timeout" not in result


def test_unreachable_result_carries_its_error() -> None:
    result = host_result(HostStatus.UNREACHABLE, error="connection refused")
    assert result["return_code"] == 255
    assert result["error"] == "connection refused"


@pytest.mark.parametrize("error", [None, ""])
def test_error_key_only_when_there_is_an_error(error: str | None) -> None:
    assert "error" not in host_result(HostStatus.UNREACHABLE, error=error)
    assert "error" not in host_result(HostStatus.SUCCEEDED, error=error)


def test_return_code_zero_is_kept_for_a_non_success() -> None:
    # 0 is a real exit status, not "unknown": it must not become 255.
    assert host_result(HostStatus.CANCELED, return_code=0)["return_code"] == 0


def test_final_and_failure_sets() -> None:
    assert HostStatus.PENDING not in FINAL
    assert HostStatus.RUNNING not in FINAL
    assert HostStatus.SUCCEEDED in FINAL
    assert HostStatus.SUCCEEDED not in FAILURES
    assert FINAL - {HostStatus.SUCCEEDED} == FAILURES
    assert "timeout" in FAILURES  # plain strings (from the store) are found too


# -- summarize / ordered_counts ---------------------------------------------------------


def test_summarize_counts_in_display_order_with_total() -> None:
    statuses = ["timeout", "failed", "succeeded", "pending", "succeeded", "unreachable", "failed"]
    counts = summarize(statuses)
    assert counts == {
        "succeeded": 2,
        "failed": 2,
        "unreachable": 1,
        "timeout": 1,
        "pending": 1,
        "total": 7,
    }
    assert list(counts) == ["succeeded", "failed", "unreachable", "timeout", "pending", "total"]


def test_summarize_full_order() -> None:
    order = [
        "succeeded",
        "failed",
        "unreachable",
        "timeout",
        "auth_failed",
        "host_key",
        "canceled",
        "running",
        "pending",
    ]
    counts = summarize(reversed(order))
    assert list(counts) == [*order, "total"]
    assert counts["total"] == len(order)


def test_summarize_accepts_enum_members_and_a_generator() -> None:
    counts = summarize(s for s in (HostStatus.FAILED, HostStatus.SUCCEEDED, "failed"))
    assert counts == {"succeeded": 1, "failed": 2, "total": 3}
    assert list(counts) == ["succeeded", "failed", "total"]


def test_summarize_keeps_unknown_statuses_after_known_ones() -> None:
    counts = summarize(["weird", "succeeded", "weird"])
    assert list(counts) == ["succeeded", "weird", "total"]
    assert counts["weird"] == 2
    assert counts["total"] == 3


def test_summarize_of_nothing() -> None:
    assert summarize([]) == {"total": 0}


def test_ordered_counts_reorders_drops_zeros_and_recomputes_total() -> None:
    counts = {"pending": 1, "failed": 2, "timeout": 0, "succeeded": 5, "total": 99}
    out = ordered_counts(counts)
    assert out == {"succeeded": 5, "failed": 2, "pending": 1, "total": 8}
    assert list(out) == ["succeeded", "failed", "pending", "total"]


def test_ordered_counts_keeps_unknown_statuses_last() -> None:
    out = ordered_counts({"odd": 2, "zero": 0, "running": 1})
    assert list(out) == ["running", "odd", "total"]
    assert out["total"] == 3


def test_ordered_counts_of_nothing() -> None:
    assert ordered_counts({}) == {"total": 0}


# -- fold ----------------------------------------------------------------------------


def _ok(stdout: str = "ok") -> dict[str, Any]:
    return host_result(HostStatus.SUCCEEDED, stdout=stdout)


def test_fold_groups_identical_outcomes_largest_first() -> None:
    results = [
        ("web-01", "succeeded", _ok()),
        ("web-02", "failed", host_result(HostStatus.FAILED, return_code=1, stderr="disk full")),
        ("web-03", "succeeded", _ok()),
        ("web-04", "succeeded", _ok()),
        ("web-05", "failed", host_result(HostStatus.FAILED, return_code=1, stderr="disk full")),
    ]
    folds = fold(results)
    assert folds == [
        Fold("succeeded", 0, "ok", ("web-01", "web-03", "web-04")),
        Fold("failed", 1, "disk full", ("web-02", "web-05")),
    ]


def test_fold_separates_by_status_return_code_and_text() -> None:
    results = [
        ("a", "failed", {"return_code": 1, "stdout": "x"}),
        ("b", "failed", {"return_code": 2, "stdout": "x"}),
        ("c", "timeout", {"return_code": 1, "stdout": "x"}),
        ("d", "failed", {"return_code": 1, "stdout": "y"}),
        ("e", "failed", {"return_code": 1, "stdout": "x"}),
    ]
    folds = fold(results)
    assert [f.hosts for f in folds] == [("a", "e"), ("b",), ("c",), ("d",)]


def test_fold_ties_keep_order_of_first_appearance() -> None:
    results = [
        ("h1", "failed", {"return_code": 1, "stdout": "one"}),
        ("h2", "failed", {"return_code": 2, "stdout": "two"}),
        ("h3", "succeeded", _ok("three")),
        ("h4", "succeeded", _ok("three")),
        ("h5", "failed", {"return_code": 2, "stdout": "two"}),
        ("h6", "failed", {"return_code": 1, "stdout": "one"}),
    ]
    folds = fold(results)
    # Three groups of two: in the order their first hosts came.
    assert [f.hosts for f in folds] == [("h1", "h6"), ("h2", "h5"), ("h3", "h4")]


def test_fold_text_joins_stdout_stderr_and_error() -> None:
    result = host_result(HostStatus.UNREACHABLE, stdout="out", stderr="err", error="no route")
    (only,) = fold([("h", "unreachable", result)])
    assert only.text == "out\nerr\nno route"
    assert only.return_code == 255


def test_fold_text_skips_empty_parts_and_shows_non_text() -> None:
    (only,) = fold([("h", "succeeded", {"return_code": 0, "stdout": {"a": 1}, "stderr": ""})])
    assert only.text == "{'a': 1}"


def test_fold_handles_missing_results_and_odd_return_codes() -> None:
    results = [
        ("p1", "pending", None),
        ("p2", "pending", None),
        ("r1", "running", {}),
        ("x", "failed", {"return_code": "1", "stdout": ""}),
    ]
    folds = fold(results)
    assert folds[0] == Fold("pending", None, "", ("p1", "p2"))
    # An empty result and a missing one fold the same way, per status.
    assert Fold("running", None, "", ("r1",)) in folds
    # A return code that is not an int is not trusted.
    assert Fold("failed", None, "", ("x",)) in folds


def test_fold_of_nothing() -> None:
    assert fold([]) == []


# -- verdict -------------------------------------------------------------------------


def test_verdict_succeeds_without_failures() -> None:
    assert verdict({"succeeded": 10, "total": 10}) == "succeeded"
    assert verdict({"total": 0}) == "succeeded"
    assert verdict({}) == "succeeded"


def test_running_and_pending_hosts_are_not_failures() -> None:
    assert verdict({"succeeded": 1, "running": 2, "pending": 3, "total": 6}) == "succeeded"


@pytest.mark.parametrize("status", sorted(FAILURES - {HostStatus.TIMEOUT}))
def test_any_failure_fails_by_default(status: str) -> None:
    assert verdict({"succeeded": 99, status: 1, "total": 100}) == "failed"


def test_fail_on_any_host_false_fails_only_when_none_succeeded() -> None:
    counts = {"succeeded": 1, "failed": 9, "total": 10}
    assert verdict(counts, fail_on_any_host=False) == "succeeded"
    assert verdict({"failed": 10, "total": 10}, fail_on_any_host=False) == "failed"
    assert verdict({"unreachable": 1, "total": 1}, fail_on_any_host=False) == "failed"


def test_fail_on_any_host_false_with_only_timeouts_times_out() -> None:
    assert verdict({"timeout": 3, "total": 3}, fail_on_any_host=False) == "timeout"


def test_max_failures_budget() -> None:
    counts = {"succeeded": 7, "failed": 2, "unreachable": 1, "total": 10}
    assert verdict(counts, max_failures=3) == "succeeded"
    assert verdict(counts, max_failures=2) == "failed"
    assert verdict(counts, max_failures=0) == "failed"


def test_max_failure_percent_rounds_down() -> None:
    # 10% of 15 hosts is 1.5: only one failure is allowed.
    one = {"succeeded": 14, "failed": 1, "total": 15}
    two = {"succeeded": 13, "failed": 2, "total": 15}
    assert verdict(one, max_failure_percent=10) == "succeeded"
    assert verdict(two, max_failure_percent=10) == "failed"
    # 5% of 10 hosts is 0.5: none allowed.
    assert verdict({"succeeded": 9, "failed": 1, "total": 10}, max_failure_percent=5) == "failed"
    assert verdict(two, max_failure_percent=13.4) == "succeeded"  # 2.01 → 2


def test_budgets_take_the_most_generous() -> None:
    counts = {"succeeded": 6, "failed": 4, "total": 10}
    assert verdict(counts, max_failures=1, max_failure_percent=40) == "succeeded"
    assert verdict(counts, max_failures=4, max_failure_percent=10) == "succeeded"
    assert verdict(counts, max_failures=3, max_failure_percent=30) == "failed"


def test_total_key_is_not_counted_as_a_host() -> None:
    # "total" in the counts must not inflate the percentage base.
    counts = {"succeeded": 9, "failed": 1, "total": 10}
    assert verdict(counts, max_failure_percent=10) == "succeeded"
    counts_without_total = {"succeeded": 9, "failed": 1}
    assert verdict(counts_without_total, max_failure_percent=10) == "succeeded"


def test_all_failures_timeouts_gives_timeout() -> None:
    assert verdict({"succeeded": 5, "timeout": 2, "total": 7}) == "timeout"
    assert verdict({"timeout": 2, "total": 2}) == "timeout"
    assert verdict({HostStatus.TIMEOUT: 2}) == "timeout"


def test_mixed_failures_with_timeouts_fail() -> None:
    assert verdict({"succeeded": 5, "timeout": 2, "failed": 1, "total": 8}) == "failed"


def test_timeouts_within_budget_succeed() -> None:
    assert verdict({"succeeded": 5, "timeout": 1, "total": 6}, max_failures=1) == "succeeded"


def test_verdict_from_summarize() -> None:
    counts = summarize(["succeeded"] * 98 + ["failed", "unreachable"])
    assert verdict(counts) == "failed"
    assert verdict(counts, max_failure_percent=2) == "succeeded"
    assert verdict(counts, max_failure_percent=1.99) == "failed"
