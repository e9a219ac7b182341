"""``squall workflow test`` and ``squall workflow validate``, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from squall.cli.main import cli

CONFORMANCE = Path(__file__).resolve().parents[2] / "conformance" / "orquesta"
SPECS = sorted(CONFORMANCE.glob("*.yaml"))
MUST_FAIL = sorted((CONFORMANCE / "must_fail").glob("*.yaml"))


def test_there_are_conformance_specs() -> None:
    assert len(SPECS) >= 30 and MUST_FAIL


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_conformance_spec_passes(spec: Path) -> None:
    result = CliRunner().invoke(cli, ["workflow", "test", str(spec)])
    assert result.exit_code == 0, result.output
    assert result.output == f"PASS {spec}\n"


@pytest.mark.parametrize("spec", MUST_FAIL, ids=lambda p: p.stem)
def test_a_wrong_expectation_fails_with_a_diff(spec: Path) -> None:
    result = CliRunner().invoke(cli, ["workflow", "test", str(spec)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"FAIL {spec}"
    assert "--- expected" in lines and "+++ actual" in lines
    assert any(line.startswith(("+- ", "-- ")) for line in lines)


def test_all_specs_at_once_exit_zero() -> None:
    result = CliRunner().invoke(cli, ["workflow", "test", *map(str, SPECS)])
    assert result.exit_code == 0, result.output
    assert result.output.count("PASS ") == len(SPECS)


def test_an_unreadable_spec_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("workflow: wf.yaml\nexpected_task_sequence: [a\n")
    missing_workflow = tmp_path / "missing.yaml"
    missing_workflow.write_text("workflow: nowhere.yaml\nexpected_task_sequence: [a]\n")
    result = CliRunner().invoke(
        cli, ["workflow", "test", str(broken), str(missing_workflow), str(SPECS[0])]
    )
    assert result.exit_code == 2
    assert f"{broken}:3" in result.output or f"{broken}:2" in result.output
    assert "nowhere.yaml" in result.output
    assert f"PASS {SPECS[0]}" in result.output


def test_a_mock_result_can_live_in_a_file(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "version: 1.0\ntasks:\n  t1:\n    action: core.noop\n    next:\n"
        "      - publish: out=<% result().answer %>\noutput:\n  - out: <% ctx(out) %>\n"
    )
    (tmp_path / "result.json").write_text('{"answer": 42}')
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "workflow: wf.yaml\nexpected_task_sequence: [t1, continue]\n"
        "mock_action_executions:\n  - task_id: t1\n    result_path: result.json\n"
        "expected_output: {out: 42}\n"
    )
    result = CliRunner().invoke(cli, ["workflow", "test", str(spec)])
    assert result.exit_code == 0, result.output


def test_validate_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    good = CONFORMANCE / "wf" / "sequential.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1.0\ntasks:\n  deploy:\n    action: core.noop\n    next:\n"
        "      - when: <% succeeded( %>\n        do: nowhere\n"
    )
    result = CliRunner().invoke(cli, ["workflow", "validate", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"{good}: valid" in result.output
    assert 'tasks.deploy.next[0].do: the task "nowhere" is not defined' in result.output
    assert "tasks.deploy.next[0].when: " in result.output
    result = CliRunner().invoke(cli, ["workflow", "validate", str(good)])
    assert result.exit_code == 0


def test_validate_reads_action_chains_too(tmp_path: Path) -> None:
    chain = tmp_path / "chain.yaml"
    chain.write_text("chain:\n  - name: a\n    ref: core.noop\n    on-success: b\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("chain: [\n")
    result = CliRunner().invoke(cli, ["workflow", "validate", str(chain), str(broken)])
    assert result.exit_code == 1
    assert "chain[0].on-success: 'b' is not a node of this chain" in result.output
    assert f"{broken}" in result.output and "line" in result.output
