"""How the CLI shows a remote execution's hosts: counts, progress, folded outputs."""

from __future__ import annotations

from typing import Any

import pytest

from squall.cli.fleet import counts_text, print_host_results, progress_text


def test_counts_name_each_outcome_in_order() -> None:
    text = counts_text({"succeeded": 197, "failed": 2, "auth_failed": 1, "total": 200})
    assert text.plain == "200 hosts: 197 succeeded, 2 failed, 1 auth failed"
    assert counts_text({"succeeded": 1, "total": 1}).plain == "1 host: 1 succeeded"


def test_progress_fills_with_the_hosts_done() -> None:
    bar = progress_text({"succeeded": 40, "failed": 10, "running": 50, "total": 100}, width=10)
    assert bar.plain.startswith("[█████░░░░░] 50/100 ")
    assert "40 succeeded, 10 failed, 50 running" in bar.plain
    assert progress_text({"pending": 3, "total": 3}, width=4).plain.startswith("[░░░░] 0/3")


def _row(host: str, status: str, stdout: str, rc: int = 0) -> dict[str, Any]:
    return {
        "host": host,
        "status": status,
        "result": {"stdout": stdout, "stderr": "", "return_code": rc},
    }


def test_identical_outputs_are_folded(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [_row(f"web-{i:02d}", "succeeded", "active") for i in range(1, 13)]
    rows.insert(3, _row("web-99", "failed", "inactive", rc=3))
    print_host_results({"hosts": rows, "summary": {"succeeded": 12, "failed": 1, "total": 13}})
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "12 hosts: succeeded"
    assert lines[1].strip() == (
        "web-01, web-02, web-03, web-04, web-05, web-06, web-07, web-08 and 4 more"
    )
    assert lines[2] == "  | active"
    assert lines[3] == "1 host: failed (exit code 3)"
    assert lines[4].strip() == "web-99"
    assert lines[5] == "  | inactive"
    assert "13 hosts: 12 succeeded, 1 failed" in err
