"""Workflow definitions: read from the pack, parse, check.

A definition is parsed once per distinct text (cached); the check that its
actions exist runs on every request, since packs come and go. A workflow
with problems is refused before anything runs, every problem listed with
its path (``tasks.deploy.next[0].when``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from squall.core import actionchain
from squall.core.orquesta import expressions
from squall.core.orquesta import spec as orquesta_spec
from squall.core.workflow import Problem
from squall.errors import InvalidInput
from squall.store.tables import actions

__all__ = ["check", "graph", "parse", "read"]


def source(action: dict[str, Any]) -> str:
    """How problems name a workflow action's definition (also part of the
    parse cache's key, so every caller must name it the same way)."""
    return str(action.get("entry_point") or action["ref"])


def read(action: dict[str, Any]) -> str:
    """The text of a workflow action's definition file."""
    path = action.get("entry_point_path")
    if not path:
        raise InvalidInput(f"action {action['ref']} has no workflow definition (entry_point)")
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(
            f"the workflow definition {path} cannot be read: {exc.strerror}"
        ) from exc


@functools.lru_cache(maxsize=256)
def parse(kind: str, text: str, source: str) -> Any:
    """The definition, checked on its own; InvalidInput listing every problem."""
    if kind == "orquesta":
        spec = orquesta_spec.load(text, source=source)
        problems = orquesta_spec.inspect(spec)
        if problems:
            raise orquesta_spec.WorkflowInvalid(problems, source)
        return spec
    chain = actionchain.load(text, source=source)
    problems = actionchain.inspect(chain)
    if problems:
        raise actionchain.ChainInvalid(problems, source)
    return chain


def _action_refs(spec: Any) -> list[tuple[str, str]]:
    """``(path, ref)`` of every action the definition names literally."""
    if isinstance(spec, actionchain.ChainSpec):
        return [(f"chain[{n.index}].ref", n.ref) for n in spec.nodes if n.ref]
    return [
        (f"tasks.{name}.action", task.action)
        for name, task in spec.tasks.items()
        if task.action and not expressions.has_expression(task.action)
    ]


def check(conn: Connection, action: dict[str, Any]) -> Any:
    """Read, parse and check a workflow action's definition, including that
    the actions it runs are registered; the parsed definition."""
    kind = action["runner_type"]
    where = source(action)
    spec = parse(kind, read(action), where)
    refs = _action_refs(spec)
    known = {
        r
        for (r,) in conn.execute(
            sa.select(actions.c.ref).where(actions.c.ref.in_({ref for _p, ref in refs}))
        )
    }
    missing = [
        Problem(path, f"no action '{ref}' is registered") for path, ref in refs if ref not in known
    ]
    if missing:
        invalid = orquesta_spec.WorkflowInvalid if kind == "orquesta" else actionchain.ChainInvalid
        raise invalid(missing, where)
    return spec


def graph(spec: Any) -> dict[str, Any]:
    """Tasks and transitions, with their conditions, for drawing."""
    if isinstance(spec, actionchain.ChainSpec):
        nodes = [{"id": n.name, "action": n.ref} for n in spec.nodes]
        edges = []
        for n in spec.nodes:
            for when, target in (("on-success", n.on_success), ("on-failure", n.on_failure)):
                if target:
                    edges.append({"from": n.name, "to": target, "when": when, "index": 0})
        return {"tasks": nodes, "transitions": edges, "start": [spec.start] if spec.start else []}
    tasks, transitions = [], []
    for name, task in spec.tasks.items():
        tasks.append(
            {
                "id": name,
                "action": task.action,
                "join": task.join,
                "with_items": task.items.expression if task.items else None,
                "retry": task.retry is not None,
            }
        )
        for tr in task.next:
            for target in tr.do:
                transitions.append({"from": name, "to": target, "when": tr.when, "index": tr.index})
    return {"tasks": tasks, "transitions": transitions, "start": list(spec.start_tasks)}
