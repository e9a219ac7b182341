"""``squall workflow``: check and rehearse workflows, without a server.

``squall workflow validate WORKFLOW.yaml...`` lists every problem of each
definition (Orquesta or ActionChain), with the path of the field at fault.

``squall workflow test SPEC.yaml...`` runs each rehearsal spec (Orquesta's
format: the workflow, its inputs, mocked action results, and the expected
task sequence, routes, terminal tasks, status and output) and prints
``PASS name`` or ``FAIL name`` with a diff of what differs. Exit status: 0
when every spec passes, 1 when one fails, 2 when a spec cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from squall.cli.common import error
from squall.core import actionchain, rehearsal
from squall.core.orquesta import spec as orquesta_spec
from squall.core.workflow import DefinitionInvalid, Problem
from squall.errors import InvalidInput
from squall.packs.loader import load_yaml

EXIT_FAILED = 1
EXIT_UNREADABLE = 2


@click.group()
def workflow() -> None:
    """Orquesta workflows: validate definitions, rehearse them against mocks."""


@workflow.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def workflow_validate(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """List the problems of each WORKFLOW definition; exit 1 if there are any."""
    status = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            error(f"{path}: cannot read the file: {exc.strerror or exc}")
            status = max(status, EXIT_UNREADABLE)
            continue
        try:
            problems = _problems(text, str(path))
        except DefinitionInvalid as exc:
            problems = list(exc.problems)
        if not problems:
            click.echo(f"{path}: valid")
            continue
        status = max(status, EXIT_FAILED)
        noun = "problem" if len(problems) == 1 else "problems"
        click.echo(f"{path}: {len(problems)} {noun}")
        for problem in problems:
            click.echo(f"  {problem}")
    ctx.exit(status)


def _problems(text: str, source: str) -> list[Problem]:
    """What is wrong with an Orquesta workflow or an ActionChain (a file
    with a top-level ``chain`` is an ActionChain, as StackStorm tells them
    apart by runner type, which a lone file does not have)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None  # the loader below reports it, with the line
    if isinstance(data, dict) and "chain" in data and "tasks" not in data:
        return list(actionchain.inspect(actionchain.load(text, source=source)))
    return orquesta_spec.inspect(orquesta_spec.load(text, source=source))


@workflow.command("test")
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def workflow_test(ctx: click.Context, specs: tuple[Path, ...]) -> None:
    """Rehearse each SPEC: run its workflow against its mocked action results
    and compare with what it expects. Exit 0 if all pass, 1 if one fails,
    2 if a spec (or its workflow) cannot be read."""
    failed = unreadable = False
    for path in specs:
        try:
            test, text = _load(path)
        except InvalidInput as exc:
            error(exc.message)
            unreadable = True
            continue
        result = rehearsal.rehearse(test, text, source=test.workflow)
        if result.passed:
            click.echo(f"PASS {test.name}")
            continue
        failed = True
        click.echo(f"FAIL {test.name}")
        click.echo(result.diff())
    ctx.exit(EXIT_UNREADABLE if unreadable else EXIT_FAILED if failed else 0)


def _load(path: Path) -> tuple[rehearsal.TestSpec, str]:
    """The spec at ``path`` and the text of the workflow it names."""
    data = load_yaml(path)  # ContentError (file and line) when it is not YAML
    test = rehearsal.parse_test_spec(data, str(path))
    folder = path.parent
    workflow_path = folder / test.workflow
    try:
        text = workflow_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(
            f"{path}: cannot read the workflow {workflow_path}: {exc.strerror or exc}"
        ) from exc
    for mock in test.mocks:
        if mock.result_path:
            mock.result = _result_file(path, folder / mock.result_path)
    return test, text


def _result_file(spec: Path, path: Path) -> Any:
    """A mock's result kept in a file: JSON or YAML by extension, else text."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"{spec}: cannot read the result {path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix == ".json":
            return json.loads(text)
        if path.suffix in (".yaml", ".yml"):
            return load_yaml(path)
    except ValueError as exc:
        raise InvalidInput(f"{spec}: the result {path} is not valid JSON: {exc}") from exc
    return text
