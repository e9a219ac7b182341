"""Remote runners: ``remote-shell-cmd``, ``remote-shell-script`` and ``remote-reboot``.

Compatible with StackStorm's remote runners (``hosts``, ``username``,
``password``, ``private_key``, ``port``, ``parallel``, ``sudo``,
``sudo_password``, ``cwd``, ``env``, ``timeout``, ``bastion_host``), plus
``target``, a targeting expression over the inventory
(:mod:`squall.core.targeting`), and a failure budget.

One execution runs its hosts with at most ``concurrency`` in flight (asyncio
tasks, no thread or process per host), each host over one SSH connection
(:mod:`squall.runners.ssh`) and each command under the job wrapper
(:mod:`squall.runners.remote_job`) so that it survives Squall restarting.
Each host's result is handed to the worker as it arrives
(``ctx.report_hosts``), stored, and only then are the host's job files
removed. The result is keyed by host name as in StackStorm.

Memory: per host in flight, one connection and its output (each stream
capped at ``max_output_bytes``); per host done, its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from squall.core import targeting
from squall.core.hostresults import FINAL, HostStatus, host_result, summarize, verdict
from squall.core.inventory import Host, Inventory
from squall.core.params import script_arguments
from squall.errors import RunnerError
from squall.runners import remote_job
from squall.runners.base import OutputSink, RunContext, RunnerType, RunResult, effective_timeout
from squall.runners.output import MASK, maybe_json, strip_trailing_newline
from squall.runners.ssh import Connector, Endpoint, SshFailure, SshOptions

log = logging.getLogger(__name__)

__all__ = [
    "RemoteRebootRunner",
    "RemoteShellCommandRunner",
    "RemoteShellScriptRunner",
    "endpoint_of",
    "resolve_endpoints",
]

DEFAULT_TIMEOUT = 60
DEFAULT_CONCURRENCY = 100
DEFAULT_HOST_OUTPUT_BYTES = 64 * 1024
KILL_GRACE = 5.0
# After a timeout or cancel, how long to wait for the stopped command's output.
COLLECT_AFTER_KILL = 15.0

CONNECTION_PARAMETERS: dict[str, dict[str, Any]] = {
    "target": {
        "description": "Targeting expression over the inventory, e.g. 'role=web and env=prod'.",
        "type": "string",
    },
    "hosts": {
        "description": "Comma-separated hosts: inventory names or [user@]address[:port].",
        "type": "string",
    },
    "username": {"description": "User to log in as (overrides the inventory).", "type": "string"},
    "password": {
        "description": "Password to log in with (overrides the inventory).",
        "type": "string",
        "secret": True,
    },
    "private_key": {
        "description": "Private key: a path to a key file, or the key itself.",
        "type": "string",
        "secret": True,
    },
    "passphrase": {
        "description": "Passphrase of the private key.",
        "type": "string",
        "secret": True,
    },
    "port": {"description": "SSH port (overrides the inventory).", "type": "integer"},
    "bastion_host": {
        "description": "Jump host for every target: an inventory name or [user@]host[:port].",
        "type": "string",
    },
    "parallel": {
        "description": "Run on the hosts in parallel (false: one host at a time).",
        "type": "boolean",
        "default": True,
    },
    "concurrency": {
        "description": "Hosts in flight at once (default: the server's SSH concurrency, 100).",
        "type": "integer",
    },
    "connect_timeout": {
        "description": "Seconds to wait for each host's SSH connection and login.",
        "type": "number",
    },
    "host_key_check": {
        "description": "strict (known_hosts only), accept-new (trust on first use) or off.",
        "type": "string",
        "enum": ["strict", "accept-new", "off"],
    },
    "fail_on_any_host": {
        "description": "Fail the execution when any host fails (false: only when all do).",
        "type": "boolean",
        "default": True,
    },
    "max_failures": {
        "description": "Hosts that may fail while the execution still succeeds.",
        "type": "integer",
    },
    "max_failure_percent": {
        "description": "Percentage of hosts that may fail while the execution still succeeds.",
        "type": "number",
    },
    "max_output_bytes": {
        "description": "Output kept per host and stream; the rest is cut with a marker.",
        "type": "integer",
        "default": DEFAULT_HOST_OUTPUT_BYTES,
    },
}

COMMAND_PARAMETERS: dict[str, dict[str, Any]] = {
    "cwd": {"description": "Working directory on the hosts.", "type": "string"},
    "env": {"description": "Environment variables for the command.", "type": "object"},
    "sudo": {"description": "Run the command through sudo.", "type": "boolean", "default": False},
    "sudo_password": {
        "description": "Password for sudo, when it asks for one.",
        "type": "string",
        "secret": True,
    },
    "timeout": {
        "description": "Seconds the command may run on each host before it is stopped.",
        "type": "integer",
        "default": DEFAULT_TIMEOUT,
    },
}

REMOTE_SHELL_CMD_META = RunnerType(
    name="remote-shell-cmd",
    description="Runs a shell command on many hosts over SSH.",
    runner_module="remote_command_runner",
    runner_parameters={
        "cmd": {"description": "Shell command to run on each host.", "type": "string"},
        **CONNECTION_PARAMETERS,
        **COMMAND_PARAMETERS,
    },
    shell_parameters=frozenset({"cmd"}),
)

REMOTE_SHELL_SCRIPT_META = RunnerType(
    name="remote-shell-script",
    description="Copies the action's script to many hosts over SSH and runs it there.",
    runner_module="remote_script_runner",
    runner_parameters={
        **CONNECTION_PARAMETERS,
        **COMMAND_PARAMETERS,
        "dir": {
            "description": "Working directory for the script (StackStorm's name for cwd).",
            "type": "string",
        },
        "kwarg_op": {
            "description": 'Prefix put before named arguments, e.g. "--".',
            "type": "string",
            "default": "--",
        },
    },
)

REMOTE_REBOOT_META = RunnerType(
    name="remote-reboot",
    description="Reboots hosts, waits until they answer SSH again and checks they rebooted.",
    runner_module="remote_reboot_runner",
    runner_parameters={
        **CONNECTION_PARAMETERS,
        "sudo": {
            "description": "Run the reboot command through sudo.",
            "type": "boolean",
            "default": False,
        },
        "sudo_password": COMMAND_PARAMETERS["sudo_password"],
        "reboot_command": {
            "description": "Command that reboots the host.",
            "type": "string",
            "default": "shutdown -r now",
        },
        "boot_id_command": {
            "description": "Command printing an id that changes with every boot.",
            "type": "string",
            "default": "cat /proc/sys/kernel/random/boot_id",
        },
        "test_command": {
            "description": "Command that must succeed once the host is back.",
            "type": "string",
            "default": "true",
        },
        "timeout": {
            "description": "Seconds to wait for each host to come back.",
            "type": "integer",
            "default": 600,
        },
        "poll_interval": {
            "description": "Seconds between attempts to reach a rebooting host.",
            "type": "number",
            "default": 2,
        },
    },
)


# -- which hosts --------------------------------------------------------------------------


def _parse_address(text: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (IPv6 as ``[::1]:22``) → (user, host, port)."""
    user, _, rest = text.rpartition("@")
    port: int | None = None
    if rest.startswith("["):
        host, closed, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = _port(tail[1:], text)
        elif tail or not closed:
            host = ""  # "[::1]2222" or "[::1": refused below, not read as port 22
    elif rest.count(":") == 1:
        host, _, p = rest.partition(":")
        port = _port(p, text)
    else:
        host = rest
    if not host:
        raise RunnerError(f"'{text}' is not a host: expected [user@]host[:port]")
    return user or None, host, port


def _port(text: str, whole: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise RunnerError(f"'{whole}': port must be a number from 1 to 65535")
    return port


def _from_host(host: Host) -> Endpoint:
    return Endpoint(
        name=host.name,
        address=host.address,
        port=host.port,
        user=host.user,
        password=host.password,
        key_file=host.key_file,
        certificate=host.certificate,
        agent=host.agent,
    )


def _jump(
    spec: str | None, inventory: Inventory | None, seen: tuple[str, ...] = ()
) -> Endpoint | None:
    if not spec:
        return None
    if inventory is not None and spec in inventory.hosts:
        if spec in seen:
            raise RunnerError(f"jump hosts loop: {' -> '.join((*seen, spec))}")
        host = inventory.hosts[spec]
        ep = _from_host(host)
        return _replace(ep, jump=_jump(host.jump, inventory, (*seen, spec)))
    user, address, port = _parse_address(spec)
    return Endpoint(name=spec, address=address, port=port or 22, user=user)


def _replace(ep: Endpoint, **changes: Any) -> Endpoint:
    return dataclasses.replace(ep, **changes)


def endpoint_of(host: Host, inventory: Inventory | None) -> Endpoint:
    """How to reach an inventory host, its jump host included."""
    return _replace(_from_host(host), jump=_jump(host.jump, inventory, (host.name,)))


def resolve_endpoints(params: Mapping[str, Any], inventory: Inventory | None) -> list[Endpoint]:
    """The hosts an execution runs on, with their connection details.

    ``target`` selects inventory hosts; ``hosts`` lists inventory names or
    addresses. Connection parameters given to the execution override what
    the inventory says."""
    target = params.get("target")
    hosts_text = params.get("hosts")
    if target and hosts_text:
        raise RunnerError("give either 'target' or 'hosts', not both")
    endpoints: list[Endpoint] = []
    if target:
        if inventory is None:
            raise RunnerError("'target' needs an inventory: set SQUALL_INVENTORY")
        endpoints = [endpoint_of(h, inventory) for h in targeting.resolve(str(target), inventory)]
    elif hosts_text:
        names = [h.strip() for h in str(hosts_text).split(",") if h.strip()]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            if inventory is not None and name in inventory.hosts:
                endpoints.append(endpoint_of(inventory.hosts[name], inventory))
            else:
                user, address, port = _parse_address(name)
                endpoints.append(Endpoint(name=name, address=address, port=port or 22, user=user))
    if not endpoints:
        raise RunnerError("no hosts to run on: give 'target' (an expression) or 'hosts'")
    overrides: dict[str, Any] = {}
    if params.get("username"):
        overrides["user"] = params["username"]
    if params.get("password"):
        overrides["password"] = params["password"]
    if params.get("port"):
        overrides["port"] = int(params["port"])
    key = params.get("private_key")
    if key:
        if "PRIVATE KEY" in str(key):
            overrides.update(key_data=str(key), key_file=None)
        else:
            overrides.update(key_file=str(key), key_data=None)
    if params.get("passphrase"):
        overrides["passphrase"] = params["passphrase"]
    bastion = _jump(params.get("bastion_host"), inventory)
    if bastion is not None:
        overrides["jump"] = bastion
    if overrides:
        endpoints = [_replace(ep, **overrides) for ep in endpoints]
    return endpoints


# -- running on hosts ---------------------------------------------------------------------

HostReporter = Callable[[list[dict[str, Any]], bool], Awaitable[None]]


@dataclass
class _Run:
    """One execution's state while its hosts run."""

    ctx: RunContext
    output: OutputSink
    connector: Connector
    report: HostReporter
    cap: int
    secrets: list[str]
    results: dict[int, tuple[str, str, dict[str, Any]]] = field(default_factory=dict)
    in_flight: dict[int, tuple[Endpoint, str]] = field(default_factory=dict)  # seq → (ep, job id)
    finishing: set[asyncio.Task[None]] = field(default_factory=set)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, MASK)
        return text

    async def finished(self, seq: int, ep: Endpoint, status: str, result: dict[str, Any]) -> None:
        self.results[seq] = (ep.name, status, result)
        await self.stream(ep.name, result)

    async def stream(self, name: str, result: Mapping[str, Any]) -> None:
        for stream in ("stdout", "stderr"):
            text = result.get(stream)
            if isinstance(text, str) and text:
                await self.output(
                    stream, "".join(f"{name}: {line}\n" for line in text.splitlines())
                )
        if result.get("error"):
            await self.output("stderr", f"{name}: {result['error']}\n")


async def _no_report(rows: list[dict[str, Any]], durable: bool) -> None:
    return None


def _decode(data: bytes, cap: int) -> tuple[str, bool]:
    truncated = len(data) > cap
    text = data[:cap].decode("utf-8", "replace") if truncated else data.decode("utf-8", "replace")
    if truncated:
        text += f"\n[... output truncated: more than {cap} bytes ...]"
    return text, truncated


def _shown(text: str, truncated: bool) -> Any:
    text = strip_trailing_newline(text)
    return text if truncated else maybe_json(text)


class _RemoteRunner:
    meta: RunnerType
    # A re-run of the same execution attaches to the commands already running.
    reattachable = True

    def __init__(self, options: SshOptions | None = None) -> None:
        self.options = options

    # What each subclass runs on a connected host.
    async def _on_host(
        self, run: _Run, seq: int, ep: Endpoint, conn: Any
    ) -> tuple[str, dict[str, Any]] | None:
        """The host's outcome, or None when the host's result is already recorded."""
        raise NotImplementedError

    def _check(self, ctx: RunContext) -> None:
        """Refuse bad parameters before connecting anywhere."""

    def _options(self, ctx: RunContext) -> SshOptions:
        base = ctx.ssh_options or self.options or SshOptions()
        params = ctx.runner_parameters
        changes: dict[str, Any] = {}
        if params.get("host_key_check"):
            changes["host_key_check"] = params["host_key_check"]
        if params.get("connect_timeout"):
            changes["connect_timeout"] = float(params["connect_timeout"])
        return dataclasses.replace(base, **changes) if changes else base

    def _concurrency(self, ctx: RunContext) -> int:
        params = ctx.runner_parameters
        if params.get("parallel") is False:
            return 1
        value = params.get("concurrency") or ctx.ssh_concurrency or DEFAULT_CONCURRENCY
        return max(1, int(value))

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult:
        params = ctx.runner_parameters
        self._check(ctx)
        endpoints = resolve_endpoints(params, ctx.inventory)
        cap = int(params.get("max_output_bytes") or DEFAULT_HOST_OUTPUT_BYTES)
        secrets = [s for s in (str(x) for x in ctx.secrets) if s]
        run = _Run(
            ctx, output, Connector(self._options(ctx)), ctx.report_hosts or _no_report, cap, secrets
        )
        done = ctx.hosts_done or {}
        todo: list[tuple[int, Endpoint]] = []
        fresh: list[dict[str, Any]] = []
        for seq, ep in enumerate(endpoints):
            previous = done.get(ep.name)
            if previous is not None and previous[0] in FINAL:
                run.results[seq] = (ep.name, previous[0], previous[1])
                continue
            todo.append((seq, ep))
            if previous is None:
                fresh.append(self._row(ctx, seq, ep.name, HostStatus.PENDING, None))
        await run.report(fresh, True)  # the whole target is visible before anything runs
        if done:
            await output(
                "stdout", f"re-attached: {len(done)} hosts known, {len(todo)} to collect\n"
            )
        pending: Iterator[tuple[int, Endpoint]] = iter(todo)
        try:
            workers = [
                asyncio.create_task(self._worker(run, pending))
                for _ in range(min(self._concurrency(ctx), len(todo)) or 0)
            ]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
            if run.finishing:
                await asyncio.gather(*run.finishing, return_exceptions=True)
        except asyncio.CancelledError:
            await self._stop(run)
            raise
        finally:
            await run.connector.close()
        return self._result(run, params)

    def _row(
        self, ctx: RunContext, seq: int, host: str, status: str, result: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "execution_id": ctx.execution_id,
            "host": host,
            "seq": seq,
            "status": str(status),
            "result": result,
        }

    async def _worker(self, run: _Run, pending: Iterator[tuple[int, Endpoint]]) -> None:
        for seq, ep in pending:
            await run.report([self._row(run.ctx, seq, ep.name, HostStatus.RUNNING, None)], False)
            outcome: tuple[str, dict[str, Any]] | None
            try:
                conn = await run.connector.connect(ep)
                outcome = await self._on_host(run, seq, ep, conn)
            except SshFailure as exc:
                outcome = exc.kind, host_result(HostStatus(exc.kind), error=exc.message)
            except (OSError, EOFError) as exc:
                error = f"the connection to {ep.name} broke: {exc or type(exc).__name__}"
                outcome = HostStatus.UNREACHABLE, host_result(HostStatus.UNREACHABLE, error=error)
            except Exception as exc:  # asyncssh.Error and the like: this host only
                error = f"{ep.name}: {type(exc).__name__}: {exc}"
                outcome = HostStatus.UNREACHABLE, host_result(HostStatus.UNREACHABLE, error=error)
            if outcome is None:
                continue  # recorded by _run_job, which also owns the connection now
            run.in_flight.pop(seq, None)
            run.connector.forget(ep)
            await self._record(run, seq, ep, *outcome)

    async def _record(
        self, run: _Run, seq: int, ep: Endpoint, status: str, result: dict[str, Any]
    ) -> None:
        await run.finished(seq, ep, status, result)
        await run.report([self._row(run.ctx, seq, ep.name, status, result)], False)

    async def _stop(self, run: _Run) -> None:
        """Cancelled: stop the commands in flight, unless the worker is only
        stopping (then they keep running and the next start collects them)."""
        if run.ctx.leave_running:
            return
        jobs = list(run.in_flight.values())

        async def kill(ep: Endpoint, jid: str) -> None:
            conn = await run.connector.connect(ep)
            await conn.run(remote_job.kill_script(jid, KILL_GRACE), check=False)

        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(*(kill(ep, jid) for ep, jid in jobs), return_exceptions=True), 10
            )
        rows = [
            self._row(run.ctx, seq, ep.name, HostStatus.CANCELED, host_result(HostStatus.CANCELED))
            for seq, (ep, _) in run.in_flight.items()
        ]
        with contextlib.suppress(Exception):
            await run.report(rows, False)

    def _result(self, run: _Run, params: Mapping[str, Any]) -> RunResult:
        ordered = [run.results[s] for s in sorted(run.results)]
        counts = summarize(status for _, status, _ in ordered)
        status = verdict(
            counts,
            fail_on_any_host=params.get("fail_on_any_host", True) is not False,
            max_failures=params.get("max_failures"),
            max_failure_percent=params.get("max_failure_percent"),
        )
        return RunResult(status=status, result={name: result for name, _, result in ordered})

    # -- the job wrapper -------------------------------------------------------------------

    async def _run_job(
        self,
        run: _Run,
        seq: int,
        ep: Endpoint,
        conn: Any,
        command: str,
        *,
        script: bytes | None = None,
    ) -> tuple[str, dict[str, Any]] | None:
        ctx, params = run.ctx, run.ctx.runner_parameters
        jid = remote_job.job_id(ctx.execution_id, ep.name)
        sudo_password = params.get("sudo_password") or None
        sudo = ("password" if sudo_password else "nopass") if params.get("sudo") else ""
        env = {str(k): str(v) for k, v in (params.get("env") or {}).items() if v is not None}
        wrapper = remote_job.start_script(
            jid,
            command,
            cap=run.cap,
            sudo=sudo,
            env=env,
            cwd=params.get("cwd") or params.get("dir"),
        )
        if script is not None:
            up = await conn.run(remote_job.upload_script(jid), input=script, encoding=None)
            if up.exit_status not in (0, None):
                error = (up.stderr or b"").decode("utf-8", "replace").strip()
                return HostStatus.FAILED, host_result(
                    HostStatus.FAILED, error=f"could not copy the script to {ep.name}: {error}"
                )
        run.in_flight[seq] = (ep, jid)
        process = await conn.create_process(wrapper, encoding=None)
        if sudo == "password":
            process.stdin.write(f"{sudo_password}\n".encode())
        reads = asyncio.gather(process.stdout.read(), process.stderr.read())
        timeout = effective_timeout(ctx)
        timed_out = False
        try:
            out, err = await asyncio.wait_for(asyncio.shield(reads), timeout)
        except TimeoutError:
            timed_out = True
            await conn.run(remote_job.kill_script(jid, KILL_GRACE), check=False)
            try:
                out, err = await asyncio.wait_for(reads, COLLECT_AFTER_KILL)
            except TimeoutError:
                out, err = b"", b""
        except BaseException:
            reads.cancel()
            raise
        err, rc = remote_job.parse_trailer(err)
        stdout, out_cut = _decode(out, run.cap)
        stderr, err_cut = _decode(err, run.cap)
        stdout, stderr = run.mask(stdout), run.mask(stderr)
        error = None
        if timed_out:
            status = HostStatus.TIMEOUT
            error = f"the command did not finish in {timeout:g} seconds and was stopped"
            rc = -9
        elif rc is None:
            status = HostStatus.UNREACHABLE
            error = f"the connection to {ep.name} ended before the command reported its exit status"
            rc = 255
        elif sudo == "password" and "incorrect password attempt" in stderr:
            status, error = HostStatus.FAILED, f"sudo refused the password on {ep.name}"
        else:
            status = HostStatus.SUCCEEDED if rc == 0 else HostStatus.FAILED
        result = host_result(
            status,
            return_code=rc,
            stdout=_shown(stdout, out_cut),
            stderr=_shown(stderr, err_cut),
            error=error,
        )
        if rc is None and not timed_out:
            return status, result  # the job may still be there: left for a re-attach
        await run.finished(seq, ep, status, result)
        task = asyncio.create_task(self._finish_job(run, seq, ep, process, status, result))
        run.finishing.add(task)
        task.add_done_callback(run.finishing.discard)
        return None

    async def _finish_job(
        self, run: _Run, seq: int, ep: Endpoint, process: Any, status: str, result: dict[str, Any]
    ) -> None:
        """Store the host's result, then let the wrapper remove its job files."""
        try:
            await run.report([self._row(run.ctx, seq, ep.name, status, result)], True)
            process.stdin.write(b"done\n")
            process.stdin.write_eof()
            await asyncio.wait_for(process.wait_closed(), 10)
        except Exception as exc:  # the result is stored or will be on re-attach
            log.debug("finishing the job on %s: %s", ep.name, exc)
        finally:
            run.in_flight.pop(seq, None)
            run.connector.release(ep)


class RemoteShellCommandRunner(_RemoteRunner):
    """``remote-shell-cmd``: the ``cmd`` parameter on every host."""

    meta = REMOTE_SHELL_CMD_META

    def _check(self, ctx: RunContext) -> None:
        cmd = ctx.runner_parameters.get("cmd")
        if not isinstance(cmd, str) or not cmd.strip():
            raise RunnerError("remote-shell-cmd needs a non-empty 'cmd' parameter")

    async def _on_host(
        self, run: _Run, seq: int, ep: Endpoint, conn: Any
    ) -> tuple[str, dict[str, Any]] | None:
        return await self._run_job(run, seq, ep, conn, str(run.ctx.runner_parameters["cmd"]))


class RemoteShellScriptRunner(_RemoteRunner):
    """``remote-shell-script``: the action's script, copied to every host and run there."""

    meta = REMOTE_SHELL_SCRIPT_META

    def _check(self, ctx: RunContext) -> None:
        path = ctx.entry_point
        if not path or not os.path.isfile(path):
            raise RunnerError(f"action {ctx.action_ref} has no script file to copy ({path})")

    async def _on_host(
        self, run: _Run, seq: int, ep: Endpoint, conn: Any
    ) -> tuple[str, dict[str, Any]] | None:
        ctx = run.ctx
        schema = ctx.runner_parameters.get("__param_schema__") or {}
        kwarg_op = ctx.runner_parameters.get("kwarg_op") or "--"
        args = script_arguments(schema, ctx.parameters, kwarg_op)
        command = " ".join([remote_job.SCRIPT_PATH, *(shlex.quote(a) for a in args)])
        with open(ctx.entry_point or "", "rb") as fh:
            script = fh.read()
        return await self._run_job(run, seq, ep, conn, command, script=script)


class RemoteRebootRunner(_RemoteRunner):
    """``remote-reboot``: reboot, wait for SSH, check the boot id changed."""

    meta = REMOTE_REBOOT_META
    reattachable = False  # a reboot half done is not something to redo blindly

    async def _on_host(
        self, run: _Run, seq: int, ep: Endpoint, conn: Any
    ) -> tuple[str, dict[str, Any]] | None:
        params = run.ctx.runner_parameters
        boot_cmd = str(params.get("boot_id_command") or "cat /proc/sys/kernel/random/boot_id")
        before = await self._boot_id(conn, boot_cmd)
        if before is None:
            return HostStatus.FAILED, host_result(
                HostStatus.FAILED, error=f"'{boot_cmd}' printed no boot id on {ep.name}"
            )
        command = str(params.get("reboot_command") or "shutdown -r now")
        sudo_password = params.get("sudo_password") or None
        if params.get("sudo"):
            how = "-S -p ''" if sudo_password else "-n"
            command = f"sudo {how} -- sh -c {shlex.quote(command)}"
        # Detached, so that the command's own connection dropping is no error.
        inner = shlex.quote("sleep 1; " + command)
        if sudo_password and params.get("sudo"):
            # sudo -S reads the password on its stdin: the detached command gets
            # it through a pipe from the shell's read builtin (never on a
            # command line), not the session's stdin, which it does not keep.
            detached = (
                'IFS= read -r squall_pw; printf "%s\\n" "$squall_pw" | '
                f"nohup sh -c {inner} >/dev/null 2>&1 &"
            )
        else:
            detached = f"nohup sh -c {inner} >/dev/null 2>&1 </dev/null &"
        started = time.monotonic()
        stdin = f"{sudo_password}\n" if sudo_password else None
        reboot = await conn.run(f"{detached} exit 0", input=stdin, check=False)
        if reboot.exit_status not in (0, None):
            return HostStatus.FAILED, host_result(
                HostStatus.FAILED, error=f"the reboot command failed on {ep.name}"
            )
        run.connector.forget(ep)
        timeout = float(params.get("timeout") or 600)
        interval = float(params.get("poll_interval") or 2)
        await asyncio.sleep(min(interval, 1.0) + 1.0)
        last_error = "no answer yet"
        while time.monotonic() - started < timeout:
            try:
                conn = await run.connector.connect(ep)
                after = await self._boot_id(conn, boot_cmd)
            except SshFailure as exc:
                if exc.kind in (HostStatus.HOST_KEY, HostStatus.AUTH_FAILED):
                    raise
                last_error = exc.message
                after = None
            except (OSError, Exception) as exc:
                run.connector.forget(ep)
                last_error = str(exc) or type(exc).__name__
                after = None
            if after is not None and after != before:
                test = str(params.get("test_command") or "true")
                check = await conn.run(test, check=False)
                took = time.monotonic() - started
                if check.exit_status == 0:
                    text = f"rebooted in {took:.1f}s (boot id {before} -> {after})"
                    return HostStatus.SUCCEEDED, host_result(HostStatus.SUCCEEDED, stdout=text)
                return HostStatus.FAILED, host_result(
                    HostStatus.FAILED,
                    return_code=check.exit_status,
                    error=f"{ep.name} came back but '{test}' failed",
                )
            if after is not None:
                run.connector.forget(ep)  # still up on the old boot: not gone down yet
                last_error = "still running the same boot"
            await asyncio.sleep(interval)
        error = f"{ep.name} did not come back rebooted within {timeout:g}s ({last_error})"
        return HostStatus.TIMEOUT, host_result(HostStatus.TIMEOUT, error=error)

    @staticmethod
    async def _boot_id(conn: Any, command: str) -> str | None:
        result = await conn.run(command, check=False)
        text = (result.stdout or "").strip() if result.exit_status == 0 else ""
        return text or None
