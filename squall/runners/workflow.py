"""The ``orquesta`` and ``action-chain`` runner types.

A workflow runs no process of its own: the workflow engine
(``services/workflows.py``) drives it, starting each task as a child
execution. These classes carry the runner types' metadata (parameters as in
StackStorm) so actions, the API and the CLI see them like any other runner.
"""

from __future__ import annotations

from squall.errors import RunnerError
from squall.runners.base import ANY_JSON, OutputSink, RunContext, RunnerType, RunResult

__all__ = ["ActionChainRunner", "OrquestaRunner"]


class _WorkflowRunner:
    meta: RunnerType

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult:
        raise RunnerError(
            f"{self.meta.name} workflows are run by the workflow engine, not a worker"
        )


class OrquestaRunner(_WorkflowRunner):
    meta = RunnerType(
        name="orquesta",
        description="Runs an Orquesta workflow: tasks become child executions.",
        runner_module="orquesta_runner",
        runner_parameters={
            "notify": {
                "description": "Tasks to send notifications for.",
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "default": [],
            }
        },
        output_key="output",
        output_schema={
            "type": "object",
            "properties": {
                "errors": {"anyOf": [{"type": "object"}, {"type": "array"}]},
                "output": ANY_JSON,
            },
            "additionalProperties": False,
        },
    )


class ActionChainRunner(_WorkflowRunner):
    meta = RunnerType(
        name="action-chain",
        description="Runs an ActionChain: actions in a chain with success and failure paths.",
        runner_module="action_chain_runner",
        runner_parameters={
            "display_published": {
                "description": "Keep the published variables in the result.",
                "type": "boolean",
                "default": True,
            },
            "skip_notify": {
                "description": "Tasks to skip notifications for.",
                "type": "array",
                "default": [],
            },
        },
        output_key="published",
        output_schema={
            "type": "object",
            "properties": {"published": {"type": "object"}, "tasks": {"type": "array"}},
            "additionalProperties": False,
        },
    )
