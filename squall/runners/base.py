"""The contract between the worker and a runner.

A runner takes a :class:`RunContext` and returns a :class:`RunResult`. It
streams output through the ``output`` callback as it arrives, enforces
``ctx.timeout`` itself (returning status ``timeout``), and, when its task is
cancelled, stops what it started (kill the process group) before re-raising
``asyncio.CancelledError``. A runner never touches the database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from squall.errors import RunnerError

# ``await output("stdout", "text")``: hand a chunk of output to the worker,
# which stores it (under the per-execution cap) and streams it live.
OutputSink = Callable[[str, str], Awaitable[None]]


@dataclass
class RunContext:
    execution_id: str
    action_ref: str  # "pack.name"
    pack: str
    parameters: dict[str, Any]  # action parameters, rendered and validated
    runner_parameters: dict[str, Any]  # runner parameters, rendered and validated
    entry_point: str | None = None  # absolute path, when the action has one
    pack_dir: str | None = None
    timeout: float | None = None  # seconds; None means no limit
    config: dict[str, Any] = field(default_factory=dict)  # the pack's config
    env: dict[str, str] = field(default_factory=dict)  # extra environment for child processes
    secrets: list[str] = field(default_factory=list)  # values to mask in output
    python: str | None = None  # interpreter for python actions (the pack's venv)
    max_output_bytes: int | None = None  # cap on stdout/stderr kept in the result
    # Called with the process group id of every process the runner starts, so
    # that the worker can find and stop them even after it was killed itself.
    on_spawn: Callable[[int], None] | None = None
    # -- for the remote runners ------------------------------------------------------
    inventory: Any = None  # squall.core.inventory.Inventory, with gathered facts
    ssh_options: Any = None  # squall.runners.ssh.SshOptions from the settings
    ssh_concurrency: int | None = None
    # Per-host rows already stored for this execution (host -> (status, result)):
    # a re-attaching run skips the hosts that are done.
    hosts_done: dict[str, tuple[str, Any]] | None = None
    # ``await report_hosts(rows, durable)``: hand per-host rows to the worker;
    # with durable=True it returns once they are committed.
    report_hosts: Callable[[list[dict[str, Any]], bool], Awaitable[None]] | None = None
    # Set by the worker before it cancels a run only because it is stopping:
    # remote commands then keep running, for the next start to collect.
    leave_running: bool = False


def effective_timeout(ctx: RunContext) -> float | None:
    """``ctx.timeout`` when set, else the ``timeout`` runner parameter; <= 0 means none."""
    value: Any = ctx.timeout
    if value is None:
        value = ctx.runner_parameters.get("timeout")
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise RunnerError(f"timeout must be a number of seconds, got {value!r}") from None
    return seconds if seconds > 0 else None


# Runner parameters StackStorm's script runners share.
DEBUG_PARAMETERS: dict[str, dict[str, Any]] = {
    "debug": {
        "description": "Turn on debug mode for the runner.",
        "type": "boolean",
        "required": False,
        "default": False,
    },
    "content_version": {
        "description": "Git revision of the pack content to run (for packs kept in git).",
        "type": "string",
        "required": False,
    },
}


# Any JSON value: the schema of results a runner cannot know the shape of.
ANY_JSON: dict[str, Any] = {
    "anyOf": [
        {"type": t} for t in ("object", "string", "integer", "number", "boolean", "array", "null")
    ]
}


@dataclass
class RunResult:
    status: str  # "succeeded" | "failed" | "timeout" | "canceled"
    result: Any


@dataclass(frozen=True)
class RunnerType:
    """A runner's metadata, shaped like StackStorm's runner.yaml."""

    name: str
    description: str
    runner_parameters: dict[str, dict[str, Any]]
    runner_module: str
    enabled: bool = True
    output_key: str | None = None
    output_schema: dict[str, Any] = field(default_factory=dict)
    # Parameters that are shell commands: values templates insert into them
    # are shell-quoted (see squall.core.shellquote).
    shell_parameters: frozenset[str] = frozenset()


class Runner(Protocol):
    meta: RunnerType

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult: ...
