"""The ``noop`` runner: succeeds at once without doing anything."""

from __future__ import annotations

from squall.runners.base import OutputSink, RunContext, RunnerType, RunResult

__all__ = ["NOOP_META", "NoopRunner"]

NOOP_META = RunnerType(
    name="noop",
    description="Does nothing and always succeeds, whatever the parameters.",
    runner_module="noop_runner",
    runner_parameters={},
)


class NoopRunner:
    meta = NOOP_META

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult:
        # The same result StackStorm's noop runner gives.
        return RunResult(
            status="succeeded",
            result={"failed": False, "succeeded": True, "return_code": 0},
        )
