"""The ``rollout`` runner type: a rollout as an action (``core.rollout``).

Like a workflow, a rollout runs no process of its own: the rollout controller
(``services/rollouts.py``) plans it when the execution starts, drives it, and
ends the execution with the rollout (succeeded only when the rollout did),
its result the rollout's final report. So a rule or a workflow starts a
rollout like any action.
"""

from __future__ import annotations

from squall.errors import RunnerError
from squall.runners.base import OutputSink, RunContext, RunnerType, RunResult

__all__ = ["RolloutRunner"]


class RolloutRunner:
    meta = RunnerType(
        name="rollout",
        description="Runs a batched rollout over the inventory; ends when the rollout does.",
        runner_module="rollout_runner",
        runner_parameters={
            "spec": {"description": "The rollout spec (see docs/rollouts.md).", "type": "object"},
            "spec_file": {
                "description": "A spec file, relative to the action's pack (e.g. rollouts/x.yaml).",
                "type": "string",
            },
        },
    )

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult:
        raise RunnerError("rollouts are run by the rollout controller, not a worker")
