"""The ``python-script`` runner: a pack's python action in its own process.

The action runs under ``ctx.python`` (the pack's virtualenv interpreter) or,
without one, the worker's own interpreter, through
:mod:`squall.runners.python_wrapper`. Parameters and the pack config travel on
the child's stdin (never on its command line); the return value comes back on
a separate pipe, so whatever the action prints stays plain stdout. Output is
streamed, masked and capped like the shell runners'.

The child's environment is the worker's environment, then the ``env`` runner
parameter (``PYTHONPATH`` in it is ignored), then ``ctx.env``. The worker
should put there what StackStorm gives actions: ``ST2_ACTION_PACK_NAME``,
``ST2_ACTION_EXECUTION_ID``, ``ST2_ACTION_API_URL``, ``ST2_ACTION_AUTH_TOKEN``
and, for the datastore (``self.action_service``), ``ST2_API_URL`` (the
``.../api/v1`` URL) and ``ST2_AUTH_TOKEN``. ``PYTHONPATH`` is the
``st2common`` compatibility shim, then ``<pack>/actions/lib``, then the
worker's own ``PYTHONPATH``; the action's directory is appended to
``sys.path``.

Result (as StackStorm's python runner)::

    {"result": ..., "stdout": str, "stderr": str, "exit_code": int,
     ["error": str], ["traceback": str]}

``run()`` returning ``(False, x)`` fails the execution, ``(True, x)`` or a
plain value succeeds; an uncaught exception fails it with ``error`` and
``traceback``; a timeout gives status ``timeout`` and ``exit_code`` -9.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from squall.errors import RunnerError
from squall.runners.base import (
    ANY_JSON,
    DEBUG_PARAMETERS,
    OutputSink,
    RunContext,
    RunnerType,
    RunResult,
    effective_timeout,
)
from squall.runners.output import DEFAULT_MAX_OUTPUT_BYTES, mask_secrets
from squall.runners.process import DEFAULT_KILL_GRACE, ProcessOutcome, run_process

__all__ = ["PYTHON_SCRIPT_META", "SHIM_DIR", "WRAPPER_PATH", "PythonScriptRunner"]

WRAPPER_PATH = Path(__file__).with_name("python_wrapper.py")
SHIM_DIR = Path(__file__).with_name("st2compat")
DEFAULT_TIMEOUT = 600
LOG_LEVELS = ["AUDIT", "CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]

PYTHON_SCRIPT_META = RunnerType(
    name="python-script",
    description="Runs a pack's python action class in a separate process.",
    runner_module="python_runner",
    output_key="result",
    output_schema={
        "type": "object",
        "properties": {
            "result": ANY_JSON,
            "stderr": {"type": "string", "required": True},
            "stdout": {"type": "string", "required": True},
            "exit_code": {"type": "integer", "required": True},
        },
        "additionalProperties": False,
    },
    runner_parameters={
        **DEBUG_PARAMETERS,
        "env": {
            "description": "Extra environment variables for the action process.",
            "type": "object",
        },
        "timeout": {
            "description": "Seconds before the action process (and its children) are killed.",
            "type": "integer",
            "default": DEFAULT_TIMEOUT,
        },
        "log_level": {
            "description": "Level of the action's self.logger.",
            "type": "string",
            "default": "DEBUG",
            "enum": LOG_LEVELS,
        },
    },
)


def _pack_dir(ctx: RunContext, entry_point: str) -> str | None:
    if ctx.pack_dir:
        return ctx.pack_dir
    # <pack>/actions/[sub/]file.py -> <pack>
    path = Path(entry_point).resolve()
    for parent in path.parents:
        if parent.name == "actions":
            return str(parent.parent)
    return None


def _env_overrides(ctx: RunContext, entry_point: str) -> dict[str, str]:
    """Added to the worker's environment: ``env`` parameter, ``ctx.env``, PYTHONPATH."""
    env: dict[str, str] = {
        "ST2_ACTION_PACK_NAME": ctx.pack,
        "ST2_ACTION_EXECUTION_ID": ctx.execution_id,
    }
    extra = ctx.runner_parameters.get("env")
    if isinstance(extra, dict):
        for key, value in extra.items():
            if value is None or str(key).lower() == "pythonpath":
                continue
            env[str(key)] = value if isinstance(value, str) else str(value)
    elif extra not in (None, ""):
        raise RunnerError("runner parameter 'env' must be an object of name/value pairs")
    env.update({k: v for k, v in ctx.env.items() if k.lower() != "pythonpath"})

    paths = [str(SHIM_DIR)]
    pack_dir = _pack_dir(ctx, entry_point)
    if pack_dir:
        actions_lib = os.path.join(pack_dir, "actions", "lib")
        if os.path.isdir(actions_lib):
            paths.append(actions_lib)
    inherited = os.environ.get("PYTHONPATH", "")
    paths.extend(p for p in inherited.split(os.pathsep) if p)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


class PythonScriptRunner:
    """``python-script``: run an Action subclass's ``run(**parameters)`` in a subprocess."""

    meta = PYTHON_SCRIPT_META

    def __init__(
        self,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        kill_grace: float = DEFAULT_KILL_GRACE,
    ) -> None:
        self.max_output_bytes = max_output_bytes
        self.kill_grace = kill_grace

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult:
        entry_point = ctx.entry_point
        if not entry_point:
            raise RunnerError(f"action {ctx.action_ref} has no entry_point")
        if not os.path.isfile(entry_point):
            raise RunnerError(
                f"entry point {entry_point} of action {ctx.action_ref} does not exist"
            )
        python = ctx.python or sys.executable
        timeout = effective_timeout(ctx)
        log_level = str(ctx.runner_parameters.get("log_level") or "DEBUG").upper()
        try:
            payload = json.dumps(
                {
                    "entry_point": entry_point,
                    "pack": ctx.pack,
                    "parameters": ctx.parameters,
                    "config": ctx.config,
                    "log_level": log_level,
                }
            ).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise RunnerError(f"action parameters or pack config are not JSON: {exc}") from exc

        argv = [python, "-u", str(WRAPPER_PATH), "--result-fd"]  # run_process appends the fd
        try:
            outcome = await run_process(
                argv,
                output=output,
                env=_env_overrides(ctx, entry_point),
                stdin_data=payload,
                timeout=timeout,
                secrets=ctx.secrets,
                max_output_bytes=ctx.max_output_bytes or self.max_output_bytes,
                on_spawn=ctx.on_spawn,
                kill_grace=self.kill_grace,
                side_channel=True,
            )
        except OSError as exc:
            return RunResult(
                status="failed",
                result={
                    "result": None,
                    "stdout": "",
                    "stderr": "",
                    "exit_code": -1,
                    "error": f"could not start python interpreter {python}: {exc.strerror or exc}",
                },
            )
        return self._result(outcome, timeout, ctx.secrets)

    @staticmethod
    def _result(outcome: ProcessOutcome, timeout: float | None, secrets: list[str]) -> RunResult:
        document: dict[str, Any] = {}
        if outcome.side_channel:
            try:
                parsed = json.loads(outcome.side_channel.decode("utf-8", "replace"))
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                document = parsed

        result: dict[str, Any] = {
            "result": document.get("result"),
            "stdout": outcome.stdout,
            "stderr": outcome.stderr,
            "exit_code": outcome.exit_code,
        }
        if "error" in document:
            # Exception text may quote a secret parameter: mask it like the output.
            result["error"] = mask_secrets(str(document["error"]), secrets)
            if document.get("traceback"):
                result["traceback"] = mask_secrets(str(document["traceback"]), secrets)
        if outcome.timed_out:
            result["error"] = f"Action failed to complete in {timeout:g} seconds"
            return RunResult(status="timeout", result=result)

        action_status = document.get("status")
        if outcome.exit_code == 0 and action_status is not False and "error" not in document:
            status = "succeeded"
        else:
            status = "failed"
        return RunResult(status=status, result=result)
