"""Local shell runners: ``local-shell-cmd`` and ``local-shell-script``.

``local-shell-cmd`` runs the ``cmd`` runner parameter with ``bash -c``;
``local-shell-script`` runs the action's ``entry_point`` file with arguments
built from the action parameters (:func:`build_script_args`). Action
parameters are *not* exported as environment variables (StackStorm does not
do that either); the child's environment is the worker's environment, then
the ``env`` runner parameter, then ``ctx.env`` (where the worker puts the
``ST2_ACTION_*`` variables). Each run is a new session/process group; on
timeout or cancel the whole group is stopped (see :mod:`squall.runners.process`).

Contract with the worker for ``local-shell-script``: before calling the
runner, set ``ctx.runner_parameters["__param_schema__"]`` to the action's
merged parameter schema (``{name: {"type": ..., "position": ..., ...}}``).
Parameters with a ``position`` become positional arguments in position
order; every other entry of ``ctx.parameters`` becomes a named argument
``<kwarg_op><name>=<value>``. Without the schema every parameter is named.

Result (as StackStorm's local runner)::

    {"failed": bool, "succeeded": bool, "return_code": int,
     "stdout": str | parsed JSON, "stderr": str | parsed JSON, ["error": str]}

``stdout``/``stderr`` lose one trailing newline and, when the whole text is
a JSON document, are returned parsed. A timed-out run has status
``timeout`` and ``return_code`` -9.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

from squall.core.params import script_arguments
from squall.errors import RunnerError
from squall.runners.base import (
    DEBUG_PARAMETERS,
    OutputSink,
    RunContext,
    RunnerType,
    RunResult,
    effective_timeout,
)
from squall.runners.output import DEFAULT_MAX_OUTPUT_BYTES, maybe_json, strip_trailing_newline
from squall.runners.process import DEFAULT_KILL_GRACE, ProcessOutcome, run_process

__all__ = [
    "PARAM_SCHEMA_KEY",
    "LocalShellCommandRunner",
    "LocalShellScriptRunner",
    "build_script_args",
]

PARAM_SCHEMA_KEY = "__param_schema__"
DEFAULT_KWARG_OP = "--"
DEFAULT_TIMEOUT = 60

_SHARED_PARAMS: dict[str, dict[str, Any]] = {
    "cwd": {
        "description": "Directory to run in (defaults to the worker's own directory).",
        "type": "string",
    },
    "env": {
        "description": "Extra environment variables for the process, as a name-to-value object.",
        "type": "object",
    },
    "kwarg_op": {
        "description": 'Prefix put before named arguments, e.g. "--" or "-".',
        "type": "string",
        "default": DEFAULT_KWARG_OP,
    },
    "sudo": {
        "description": "Run through sudo (as root).",
        "type": "boolean",
        "default": False,
    },
    "sudo_password": {
        "description": "Password for sudo, when passwordless sudo is not set up.",
        "type": "string",
        "default": None,
        "required": False,
        "secret": True,
    },
    "timeout": {
        "description": "Seconds before the action and everything it started are killed.",
        "type": "integer",
        "default": DEFAULT_TIMEOUT,
    },
}

LOCAL_SHELL_CMD_META = RunnerType(
    name="local-shell-cmd",
    description="Runs a shell command (bash) on the worker's host.",
    runner_module="local_shell_command_runner",
    runner_parameters={
        "cmd": {"description": "Shell command to run with bash.", "type": "string"},
        **_SHARED_PARAMS,
    },
    shell_parameters=frozenset({"cmd"}),
)

LOCAL_SHELL_SCRIPT_META = RunnerType(
    name="local-shell-script",
    description="Runs the action's script file on the worker's host.",
    runner_module="local_shell_script_runner",
    runner_parameters={
        **DEBUG_PARAMETERS,
        **_SHARED_PARAMS,
    },
)


# --------------------------------------------------------------------------
# Script arguments
# --------------------------------------------------------------------------


def build_script_args(
    params: Mapping[str, Any],
    schema: Mapping[str, Mapping[str, Any]] | None,
    kwarg_op: str = DEFAULT_KWARG_OP,
) -> list[str]:
    """The argv tail for a script action, with StackStorm's semantics.

    Named arguments first (``<kwarg_op><name>=<str(value)>``; None and "" left
    out; True a bare flag, False nothing), then the parameters that have a
    ``position`` in the schema, in position order (unset ones give ""),
    booleans as ``1``/``0``, arrays comma-joined, objects as JSON. One shared
    implementation, :func:`squall.core.params.script_arguments`, serves this
    runner and the remote script runner.
    """
    return script_arguments(schema or {}, params, kwarg_op)


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

_SUDO_BAD_PASSWORD = re.compile(r"sudo: \d+ incorrect password attempts?")
_SUDO_USER = re.compile(r"\[sudo\] password for (.+?):")


def _env_overrides(ctx: RunContext, extra: Any) -> dict[str, str]:
    """What to add to the worker's environment: the ``env`` parameter, then ``ctx.env``."""
    env: dict[str, str] = {
        "ST2_ACTION_PACK_NAME": ctx.pack,
        "ST2_ACTION_EXECUTION_ID": ctx.execution_id,
    }
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            if value is None:
                continue
            env[str(key)] = value if isinstance(value, str) else str(value)
    elif extra not in (None, ""):
        raise RunnerError("runner parameter 'env' must be an object of name/value pairs")
    env.update(ctx.env)
    return env


def _interpreter_argv(path: str) -> list[str]:
    """How to run a script file without relying on (or changing) its mode bits."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(512)
    except OSError as exc:
        raise RunnerError(f"cannot read script {path}: {exc.strerror or exc}") from exc
    if first.startswith(b"#!"):
        line = first[2:].decode("utf-8", "replace").strip()
        interpreter, _, arg = line.partition(" ")
        if interpreter:
            return [interpreter, arg.strip()] if arg.strip() else [interpreter]
    return ["bash"]


def _failure(error: str, return_code: int = -1) -> RunResult:
    return RunResult(
        status="failed",
        result={
            "failed": True,
            "succeeded": False,
            "return_code": return_code,
            "stdout": "",
            "stderr": "",
            "error": error,
        },
    )


class _LocalShellRunner:
    meta: RunnerType

    def __init__(
        self,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        kill_grace: float = DEFAULT_KILL_GRACE,
    ) -> None:
        self.max_output_bytes = max_output_bytes
        self.kill_grace = kill_grace

    def _argv(self, ctx: RunContext) -> list[str]:
        raise NotImplementedError

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult:
        params = ctx.runner_parameters
        sudo = bool(params.get("sudo"))
        sudo_password = params.get("sudo_password") or None
        timeout = effective_timeout(ctx)
        argv = self._argv(ctx)
        cwd = params.get("cwd") or None
        env = _env_overrides(ctx, params.get("env"))

        secrets: list[Any] = list(ctx.secrets)
        stdin_data: bytes | None = None
        if sudo:
            if shutil.which("sudo", path=env.get("PATH", os.environ.get("PATH"))) is None:
                return _failure("sudo was requested but the sudo command is not installed")
            sudo_argv = ["sudo", "-E"]
            if sudo_password:
                sudo_argv.append("-S")  # the password comes on stdin, never on the command line
                stdin_data = f"{sudo_password}\n".encode()
                secrets.append(sudo_password)
            argv = [*sudo_argv, "--", *argv]

        outcome = await self._spawn(argv, ctx, output, env, cwd, stdin_data, timeout, secrets, sudo)
        if isinstance(outcome, RunResult):
            return outcome
        return self._result(outcome, timeout, bool(sudo_password))

    async def _spawn(
        self,
        argv: list[str],
        ctx: RunContext,
        output: OutputSink,
        env: dict[str, str],
        cwd: str | None,
        stdin_data: bytes | None,
        timeout: float | None,
        secrets: list[Any],
        sudo: bool,
    ) -> ProcessOutcome | RunResult:
        async def go(args: list[str]) -> ProcessOutcome:
            return await run_process(
                args,
                output=output,
                env=env,
                cwd=cwd,
                stdin_data=stdin_data,
                timeout=timeout,
                secrets=secrets,
                max_output_bytes=ctx.max_output_bytes or self.max_output_bytes,
                on_spawn=ctx.on_spawn,
                kill_grace=self.kill_grace,
                sudo=sudo,
            )

        try:
            return await go(argv)
        except OSError as exc:
            if exc.errno == errno.ENOEXEC and ctx.entry_point and not sudo:
                # An executable text file without "#!": run it with bash, as a shell would.
                try:
                    return await go(["bash", *argv])
                except OSError as exc2:
                    exc = exc2
            if cwd and not os.path.isdir(cwd):
                return _failure(f"working directory {cwd} does not exist")
            what = argv[0] if argv else "command"
            return _failure(f"could not start {what}: {exc.strerror or exc}")

    def _result(
        self, outcome: ProcessOutcome, timeout: float | None, used_password: bool
    ) -> RunResult:
        exit_code = outcome.exit_code
        error: str | None = None
        if outcome.timed_out:
            error = f"Action failed to complete in {timeout:g} seconds"
        if used_password and _SUDO_BAD_PASSWORD.search(outcome.stderr):
            match = _SUDO_USER.search(outcome.stderr)
            user = match.group(1) if match else "unknown"
            error = (
                f"Invalid sudo password provided or sudo is not configured for this user ({user})"
            )
            exit_code = -1

        succeeded = exit_code == 0
        stdout: Any = strip_trailing_newline(outcome.stdout)
        stderr: Any = strip_trailing_newline(outcome.stderr)
        if not outcome.stdout_truncated:
            stdout = maybe_json(stdout)
        if not outcome.stderr_truncated:
            stderr = maybe_json(stderr)
        result: dict[str, Any] = {
            "failed": not succeeded,
            "succeeded": succeeded,
            "return_code": exit_code,
            "stdout": stdout,
            "stderr": stderr,
        }
        if error:
            result["error"] = error
        status = "timeout" if outcome.timed_out else "succeeded" if succeeded else "failed"
        return RunResult(status=status, result=result)


class LocalShellCommandRunner(_LocalShellRunner):
    """``local-shell-cmd``: ``bash -c <cmd>``."""

    meta = LOCAL_SHELL_CMD_META

    def _argv(self, ctx: RunContext) -> list[str]:
        if ctx.entry_point:
            raise RunnerError(
                "local-shell-cmd does not take an entry_point; use local-shell-script"
            )
        cmd = ctx.runner_parameters.get("cmd")
        if not isinstance(cmd, str) or not cmd.strip():
            raise RunnerError("local-shell-cmd needs a non-empty 'cmd' parameter")
        return ["bash", "-c", cmd]


class LocalShellScriptRunner(_LocalShellRunner):
    """``local-shell-script``: the ``entry_point`` file with arguments from the parameters."""

    meta = LOCAL_SHELL_SCRIPT_META

    def _argv(self, ctx: RunContext) -> list[str]:
        path = ctx.entry_point
        if not path:
            raise RunnerError(f"action {ctx.action_ref} has no entry_point script")
        if not os.path.isfile(path):
            raise RunnerError(f"script {path} of action {ctx.action_ref} does not exist")
        schema = ctx.runner_parameters.get(PARAM_SCHEMA_KEY)
        kwarg_op = ctx.runner_parameters.get("kwarg_op")
        args = build_script_args(
            ctx.parameters,
            schema if isinstance(schema, Mapping) else None,
            kwarg_op if isinstance(kwarg_op, str) else DEFAULT_KWARG_OP,
        )
        if os.access(path, os.X_OK):
            return [path, *args]
        return [*_interpreter_argv(path), path, *args]
