"""The ``squall`` command.

``squall up`` runs the server; every other command talks to a running one
through its API (see :mod:`squall.cli.client` for how the CLI finds it).
Read commands print tables for people and take ``--json`` / ``--yaml`` for
scripts. Errors are one line on stderr, ``error: ...``, and a non-zero exit
status: 1 for errors, 2 for usage errors, 130 when interrupted.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from squall import __version__
from squall.cli import audit as audit_cli
from squall.cli import fleet as fleet_cli
from squall.cli import inquiries as inquiries_cli
from squall.cli import processes as processes_cli
from squall.cli import rbac as rbac_cli
from squall.cli import rollouts as rollouts_cli
from squall.cli import rules as rules_cli
from squall.cli import users as users_cli
from squall.cli import workflows as workflows_cli
from squall.cli.common import (
    SECRET_MASK,
    State,
    client_of,
    error,
    format_options,
    note,
    tls_options,
)
from squall.cli.follow import Follower, WaitTimeout, awaits_response, is_final, summary
from squall.cli.output import (
    action_ref,
    emit,
    err_console,
    execution_user,
    format_elapsed,
    format_time,
    print_execution,
    print_table,
    print_task_tree,
    scalar,
    show,
    status_text,
    table,
)
from squall.errors import SquallError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1
EXIT_WAIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


# -- plumbing ---------------------------------------------------------------------------


class SquallGroup(click.Group):
    """Turns Squall's errors into ``error: ...`` and an exit status, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SquallError as exc:
            error(exc.message)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            note("interrupted")
            ctx.exit(EXIT_INTERRUPTED)


def follow_options(f: F) -> F:
    f = click.option(
        "--timeout-wait",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="Stop waiting after this long (exit status 124); the execution carries on.",
    )(f)
    f = format_options(f)
    f = click.option(
        "--async",
        "run_async",
        is_flag=True,
        help="Print the execution's id and return without waiting.",
    )(f)
    return f


def parse_parameters(items: tuple[str, ...]) -> dict[str, str]:
    """``key=value`` arguments; ``key=@FILE`` reads the value from a file
    (``key=@@text`` for a value that starts with ``@``)."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.UsageError(f"parameters are written key=value, got {item!r}")
        if value.startswith("@@"):
            value = value[1:]
        elif value.startswith("@") and len(value) > 1:
            path = Path(value[1:]).expanduser()
            try:
                value = path.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise click.UsageError(
                    f"parameter {key!r}: cannot read {path} ({exc.__class__.__name__}: "
                    f"{getattr(exc, 'strerror', None) or exc}); write {key}=@@... for a value "
                    "that starts with @"
                ) from None
        params[key] = value
    return params


@contextmanager
def spinner(message: str) -> Iterator[None]:
    """A spinner on stderr while something slow happens (only on a terminal)."""
    if not sys.stderr.isatty():
        yield
        return
    with err_console().status(message):
        yield


# -- the group ----------------------------------------------------------------------------


@click.group(cls=SquallGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    metavar="URL",
    help="The Squall API's URL (default: $SQUALL_API_URL, "
    "else the one in the server's credentials.json, else http://127.0.0.1:9101).",
)
@click.version_option(__version__, "--version", prog_name="squall", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, url: str | None) -> None:
    """Squall: event-driven automation (StackStorm-compatible).

    Start the server with `squall up`; the other commands talk to it. On the
    server's machine they find its URL and API key by themselves; elsewhere
    set SQUALL_API_URL and SQUALL_API_KEY.
    """
    state = State(url)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _quiet_alembic(record: logging.LogRecord) -> bool:
    """Of alembic's INFO chatter, keep only the migrations it runs."""
    if not record.name.startswith("alembic") or record.levelno >= logging.WARNING:
        return True
    return record.getMessage().startswith(("Running upgrade", "Running downgrade"))


def configure_logging(fmt: str = "text", process: str = "squall") -> None:
    from squall.logs import handler as log_handler

    handler = log_handler(fmt, process)
    handler.addFilter(_quiet_alembic)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # asyncssh logs every connection at INFO: thousands of lines per fleet run.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


@cli.command(short_help="Run the Squall server.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where Squall keeps its database and keys (default: $SQUALL_DATA_DIR, "
    "else ~/.local/share/squall).",
)
@click.option("--host", metavar="ADDR", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default 9101).")
@click.option(
    "--intake-port",
    type=click.IntRange(1, 65535),
    help="Also serve webhooks on this port, from a process of their own "
    "(SQLite; $SQUALL_INTAKE_PORT): for heavy webhook traffic.",
)
@click.option(
    "--packs-dir",
    "packs_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory of packs to load (repeatable), after the built-in ones.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML config file (default: $SQUALL_CONFIG, else /etc/squall/squall.yaml if present).",
)
@click.option(
    "--inventory",
    "inventory_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="An inventory file, directory or script (repeatable), after SQUALL_INVENTORY's.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="text (default) or json: one JSON object per line ($SQUALL_LOG_FORMAT).",
)
@tls_options
def up(
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    intake_port: int | None,
    packs_dirs: tuple[Path, ...],
    config_file: Path | None,
    inventory_paths: tuple[Path, ...],
    log_format: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run the Squall server (API, scheduler and workers) until interrupted."""
    from squall.config import Settings
    from squall.server import serve

    settings = Settings.from_env(
        config=config_file,
        data_dir=data_dir,
        host=host,
        port=port,
        intake_port=intake_port,
        packs_dirs=list(packs_dirs) or None,
        inventory_paths=list(inventory_paths) or None,
        log_format=log_format,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    configure_logging(settings.log_format, process="up")
    serve(settings)


@cli.command()
def version() -> None:
    """Print the version of this squall."""
    click.echo(f"squall {__version__}")


# -- run and follow ------------------------------------------------------------------------


def start_and_follow(
    ctx: click.Context,
    start: Callable[[], dict[str, Any]],
    *,
    run_async: bool,
    fmt: str | None,
    timeout_wait: float | None,
) -> None:
    """Start an execution with ``start()`` and, unless async, follow it to its end."""
    client = client_of(ctx)
    if run_async:
        execution = start()
        if not emit(execution, fmt):
            eid = execution["id"]
            click.echo(f"execution {eid} {execution.get('status')} ({action_ref(execution)})")
            note(f"follow it with: squall execution tail {eid}")
        return
    follower = Follower(client, show_output=fmt is None)
    try:
        follower.prepare()
        execution = start()
    except BaseException:
        follower.close()
        raise
    follow_to_end(ctx, follower, execution, fmt=fmt, timeout_wait=timeout_wait)


def follow_to_end(
    ctx: click.Context,
    follower: Follower,
    execution: dict[str, Any],
    *,
    fmt: str | None,
    timeout_wait: float | None,
) -> None:
    eid = execution["id"]
    try:
        final = follower.follow(execution, timeout_wait=timeout_wait)
    except KeyboardInterrupt:
        follower.end_line()
        note(
            f"\ninterrupted: execution {eid} carries on; cancel it with: "
            f"squall execution cancel {eid}"
        )
        ctx.exit(EXIT_INTERRUPTED)
    except WaitTimeout as exc:
        follower.end_line()
        note(
            f"execution {eid} is still {exc.execution.get('status')} after {timeout_wait:g}s; "
            f"follow it with: squall execution tail {eid}"
        )
        if fmt:
            emit(exc.execution, fmt)
        ctx.exit(EXIT_WAIT_TIMEOUT)
    except SquallError as exc:
        follower.end_line()
        exc.message += (
            f" (while following execution {eid}; check on it later with: "
            f"squall execution get {eid})"
        )
        raise
    if not emit(final, fmt):
        summary(final, follower)
    if awaits_response(final):
        note(f"waiting for a response: squall inquiry respond {eid}")
        ctx.exit(0)
    ctx.exit(0 if final.get("status") == "succeeded" else EXIT_ERROR)


@cli.command(short_help="Run an action and show its output live.")
@click.argument("action")
@click.argument("parameters", nargs=-1, metavar="[KEY=VALUE]...")
@follow_options
@click.pass_context
def run(
    ctx: click.Context,
    action: str,
    parameters: tuple[str, ...],
    run_async: bool,
    fmt: str | None,
    timeout_wait: float | None,
) -> None:
    """Run ACTION (e.g. core.local cmd='uptime') and show its output live.

    Values are strings; the server casts them to the parameters' types.
    KEY=@FILE reads the value from FILE. The exit status is 0 when the
    execution succeeded, 1 when it did not.
    """
    params = parse_parameters(parameters)
    client = client_of(ctx)
    start_and_follow(
        ctx,
        lambda: client.run(action, params),
        run_async=run_async,
        fmt=fmt,
        timeout_wait=timeout_wait,
    )


# -- executions --------------------------------------------------------------------------


@cli.group()
def execution() -> None:
    """List, inspect, follow, cancel and re-run executions."""


@execution.command("list")
@click.option("--action", "action_ref_", metavar="REF", help="Only executions of this action.")
@click.option("--status", metavar="STATUS", help="Only executions in this status.")
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=50, show_default=True)
@format_options
@click.pass_context
def execution_list(
    ctx: click.Context, action_ref_: str | None, status: str | None, limit: int, fmt: str | None
) -> None:
    """The latest executions, newest first."""
    rows = client_of(ctx).list_executions(action=action_ref_, status=status, limit=limit)
    if emit(rows, fmt):
        return
    print_table(
        ["id", "action", "status", "started", "elapsed", "user"],
        [
            [
                str(r.get("id", "")),
                action_ref(r),
                status_text(r.get("status")),
                format_time(r.get("start_timestamp")),
                format_elapsed(r),
                execution_user(r),
            ]
            for r in rows
        ],
        no_wrap=("id", "action", "started"),
        empty="no executions",
    )


@execution.command("get")
@click.argument("execution_id", metavar="ID")
@format_options
@click.pass_context
def execution_get(ctx: click.Context, execution_id: str, fmt: str | None) -> None:
    """One execution: status, parameters and result; a workflow's task tree."""
    client = client_of(ctx)
    found = client.get_execution(execution_id)
    if emit(found, fmt):
        return
    remote = found.get("runner", {}).get("name") in fleet_cli.REMOTE_RUNNERS
    print_execution(found, show_result=not remote)
    if found.get("runner", {}).get("name") in ("orquesta", "action-chain"):
        print_task_tree(client.workflow(execution_id))
    if remote:
        fleet_cli.print_host_results(fleet_cli.host_results(client, execution_id))


@execution.command("tail")
@click.argument("execution_id", metavar="ID")
@click.option(
    "--timeout-wait",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Stop waiting after this long (exit status 124).",
)
@click.pass_context
def execution_tail(ctx: click.Context, execution_id: str, timeout_wait: float | None) -> None:
    """Show an execution's output, live until it ends. The exit status is 0
    when it succeeded, 1 when it did not."""
    client = client_of(ctx)
    found = client.get_execution(execution_id)
    follower = Follower(client)
    if is_final(found):
        follower.print_stored(execution_id)
        summary(found, follower)
        ctx.exit(0 if found.get("status") == "succeeded" else EXIT_ERROR)
    follow_to_end(ctx, follower, found, fmt=None, timeout_wait=timeout_wait)


@execution.command("cancel")
@click.argument("execution_ids", metavar="ID...", nargs=-1, required=True)
@click.pass_context
def execution_cancel(ctx: click.Context, execution_ids: tuple[str, ...]) -> None:
    """Cancel executions that have not ended yet."""
    client = client_of(ctx)
    failed = False
    for eid in execution_ids:
        try:
            found = client.cancel(eid)
        except SquallError as exc:
            if len(execution_ids) == 1:
                raise
            error(f"{eid}: {exc.message}")
            failed = True
            continue
        show(Text.assemble(f"execution {eid} ", status_text(found.get("status"))))
    if failed:
        ctx.exit(EXIT_ERROR)


@execution.command("pause")
@click.argument("execution_id", metavar="ID")
@click.pass_context
def execution_pause(ctx: click.Context, execution_id: str) -> None:
    """Pause a workflow: running tasks finish, no new task starts, subworkflows pause too."""
    found = client_of(ctx).set_execution_status(execution_id, "pausing")
    show(Text.assemble(f"execution {execution_id} ", status_text(found.get("status"))))


@execution.command("resume")
@click.argument("execution_id", metavar="ID")
@click.pass_context
def execution_resume(ctx: click.Context, execution_id: str) -> None:
    """Resume a paused workflow (and its paused subworkflows)."""
    found = client_of(ctx).set_execution_status(execution_id, "resuming")
    show(Text.assemble(f"execution {execution_id} ", status_text(found.get("status"))))


@execution.command("rerun")
@click.argument("execution_id", metavar="ID")
@click.argument("parameters", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--tasks",
    metavar="TASK[,TASK...]",
    help="Re-run a finished workflow from these tasks, keeping what succeeded before them.",
)
@click.option(
    "--reset",
    metavar="TASK[,TASK...]",
    help="With-items tasks (among --tasks) whose items all run again, not only the failed ones.",
)
@follow_options
@click.pass_context
def execution_rerun(
    ctx: click.Context,
    execution_id: str,
    parameters: tuple[str, ...],
    tasks: str | None,
    reset: str | None,
    run_async: bool,
    fmt: str | None,
    timeout_wait: float | None,
) -> None:
    """Run an execution's action again, with its parameters changed by KEY=VALUE."""
    params = parse_parameters(parameters)
    client = client_of(ctx)
    task_list = [t.strip() for t in (tasks or "").split(",") if t.strip()]
    reset_list = [t.strip() for t in (reset or "").split(",") if t.strip()]
    if reset_list and not task_list:
        raise click.UsageError("--reset needs --tasks")
    start_and_follow(
        ctx,
        lambda: client.rerun(execution_id, params, tasks=task_list, reset=reset_list),
        run_async=run_async,
        fmt=fmt,
        timeout_wait=timeout_wait,
    )


# -- actions -------------------------------------------------------------------------------


@cli.group()
def action() -> None:
    """The actions that can be run."""


@action.command("list")
@click.option("--pack", "-p", metavar="PACK", help="Only this pack's actions.")
@format_options
@click.pass_context
def action_list(ctx: click.Context, pack: str | None, fmt: str | None) -> None:
    """All actions, by pack."""
    rows = client_of(ctx).list_actions(pack=pack)
    if emit(rows, fmt):
        return
    rows = sorted(rows, key=lambda a: str(a.get("ref", "")))
    print_table(
        ["ref", "runner", "description"],
        [
            [
                str(a.get("ref", "")),
                str(a.get("runner_type", "")),
                str(a.get("description", "")).strip(),
            ]
            for a in rows
        ],
        no_wrap=("ref", "runner"),
        empty="no actions",
    )


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    return "|".join(map(str, kind)) if isinstance(kind, list) else str(kind or "")


def _describe(schema: dict[str, Any]) -> str:
    text = str(schema.get("description") or "").strip()
    if schema.get("enum"):
        text += f" (one of: {', '.join(scalar(v) for v in schema['enum'])})"
    return text.strip()


def _parameter_rows(params: dict[str, Any]) -> list[list[str | Text]]:
    ordered = sorted(
        (p for p in params.items() if isinstance(p[1], dict)),
        key=lambda p: (not p[1].get("required"), p[1].get("position", 1_000_000)),
    )
    rows: list[list[str | Text]] = []
    for name, schema in ordered:
        label = Text(name, style="bold" if schema.get("required") else "")
        if schema.get("secret"):
            label.append(" (secret)", style="yellow")
        if schema.get("immutable"):
            label.append(" (immutable)", style="dim")
        default = ""
        if "default" in schema and schema["default"] is not None:
            default = SECRET_MASK if schema.get("secret") else scalar(schema["default"])
        rows.append(
            [
                label,
                _type_of(schema),
                "yes" if schema.get("required") else "",
                default,
                _describe(schema),
            ]
        )
    return rows


@action.command("get")
@click.argument("ref")
@format_options
@click.pass_context
def action_get(ctx: click.Context, ref: str, fmt: str | None) -> None:
    """One action and its parameters (the runner's included)."""
    client = client_of(ctx)
    found = client.get_action(ref)
    if emit(found, fmt):
        return
    try:
        params = client.action_parameters(ref)
    except SquallError:
        params = dict(found.get("parameters") or {})
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("ref", str(found.get("ref", ref)))
    grid.add_row("description", str(found.get("description", "")).strip())
    grid.add_row("runner", str(found.get("runner_type", "")))
    if found.get("entry_point"):
        grid.add_row("entry point", str(found["entry_point"]))
    grid.add_row("enabled", "yes" if found.get("enabled", True) else "no")
    if params:
        show(
            Group(
                grid,
                Text(),
                table(
                    ["parameter", "type", "required", "default", "description"],
                    _parameter_rows(params),
                    no_wrap=("type", "required"),
                ),
            )
        )
    else:
        show(Group(grid, Text(), Text("no parameters")))


# -- packs ---------------------------------------------------------------------------------


@cli.group()
def pack() -> None:
    """Packs of actions: list, register and install them."""


@pack.command("list")
@format_options
@click.pass_context
def pack_list(ctx: click.Context, fmt: str | None) -> None:
    """The registered packs."""
    rows = client_of(ctx).list_packs()
    if emit(rows, fmt):
        return
    print_table(
        ["ref", "version", "description"],
        [
            [
                str(p.get("ref", "")),
                str(p.get("version", "")),
                str(p.get("description", "")).strip(),
            ]
            for p in sorted(rows, key=lambda p: str(p.get("ref", "")))
        ],
        no_wrap=("ref", "version"),
        empty="no packs",
    )


def print_report(report: dict[str, Any]) -> bool:
    """Counts and errors of a registration; True when there were no errors."""
    packs = [str(p) for p in report.get("packs") or []]
    actions, policies = report.get("actions", 0), report.get("policies", 0)
    names = f": {', '.join(packs)}" if packs else ""
    click.echo(f"registered {len(packs)} pack{'s' if len(packs) != 1 else ''}{names}")
    click.echo(
        f"  {actions} action{'s' if actions != 1 else ''}, "
        f"{policies} polic{'ies' if policies != 1 else 'y'}"
    )
    errors = report.get("errors") or []
    if errors:
        note(f"{len(errors)} error{'s' if len(errors) != 1 else ''}:")
        for item in errors:
            if isinstance(item, dict):
                text = str(item.get("faultstring") or "")
                if not text:
                    where = str(item.get("path") or "")
                    if item.get("line") is not None:
                        where += f":{item['line']}"
                    text = where
            else:
                text = str(item)
            click.secho(f"  {text}", err=True, fg="red")
    return not errors


@pack.command("register")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@format_options
@click.pass_context
def pack_register(ctx: click.Context, names: tuple[str, ...], fmt: str | None) -> None:
    """(Re)load packs from the packs directories: all of them, or those NAMEd.
    The exit status is 1 when some file could not be loaded."""
    with spinner("registering packs"):
        report = client_of(ctx).register_packs(list(names))
    ok = not report.get("errors")
    if not emit(report, fmt):
        ok = print_report(report)
    ctx.exit(0 if ok else EXIT_ERROR)


@pack.command("install")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@format_options
@click.pass_context
def pack_install(ctx: click.Context, sources: tuple[str, ...], fmt: str | None) -> None:
    """Install packs from git URLs or directories, build their virtualenvs and
    register them. A directory is read by the server, so it must be on the
    server's machine."""
    resolved = [
        str(Path(s).expanduser().resolve()) if os.path.isdir(os.path.expanduser(s)) else s
        for s in sources
    ]
    with spinner(f"installing {', '.join(sources)} (this can take a while)"):
        report = client_of(ctx).install_packs(resolved)
    ok = not report.get("errors")
    if emit(report, fmt):
        ctx.exit(0 if ok else EXIT_ERROR)
    for line in report.get("log") or []:
        click.echo(f"  {line}")
    installed = [str(n) for n in report.get("installed") or []]
    if installed:
        click.echo(f"installed {', '.join(installed)}")
    ok = print_report(report)
    ctx.exit(0 if ok else EXIT_ERROR)


# -- the datastore -------------------------------------------------------------------------

SCOPE = click.Choice(["system", "user"])


@cli.group()
def key() -> None:
    """The datastore: key-value pairs actions can read (st2kv)."""


def _key_value(item: dict[str, Any]) -> str | Text:
    if item.get("secret") and item.get("encrypted"):
        return Text(f"{SECRET_MASK} (secret; --decrypt shows it)", style="dim")
    return scalar(item.get("value", ""))


def _key_rows(items: list[dict[str, Any]]) -> list[list[str | Text]]:
    return [
        [
            str(k.get("name", "")),
            _key_value(k),
            str(k.get("scope", "")),
            "yes" if k.get("secret") else "",
            format_time(k.get("expire_timestamp")),
        ]
        for k in items
    ]


KEY_COLUMNS = ["name", "value", "scope", "secret", "expires"]


@key.command("set")
@click.argument("name")
@click.argument("value")
@click.option(
    "--secret",
    "--encrypt",
    "secret",
    is_flag=True,
    help="Store the value encrypted; it is shown only with --decrypt.",
)
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="Delete the key after this many seconds.",
)
@click.option("--scope", type=SCOPE, default="system", show_default=True)
@format_options
@click.pass_context
def key_set(
    ctx: click.Context,
    name: str,
    value: str,
    secret: bool,
    ttl: int | None,
    scope: str,
    fmt: str | None,
) -> None:
    """Set key NAME to VALUE (`-` reads the value from stdin)."""
    if value == "-":
        value = sys.stdin.read().removesuffix("\n")
    stored = client_of(ctx).set_key(name, value, secret=secret, ttl=ttl, scope=scope)
    if emit(stored, fmt):
        return
    details = [str(stored.get("scope", scope))]
    if stored.get("secret"):
        details.append("secret")
    if stored.get("expire_timestamp"):
        details.append(f"expires {format_time(stored['expire_timestamp'])}")
    click.echo(f"key {stored.get('name', name)} set ({', '.join(details)})")


@key.command("get")
@click.argument("name")
@click.option("--decrypt", is_flag=True, help="Show a secret's value.")
@click.option("--scope", type=SCOPE, default="system", show_default=True)
@format_options
@click.pass_context
def key_get(ctx: click.Context, name: str, decrypt: bool, scope: str, fmt: str | None) -> None:
    """One key and its value."""
    found = client_of(ctx).get_key(name, scope=scope, decrypt=decrypt)
    if not emit(found, fmt):
        show(table(KEY_COLUMNS, _key_rows([found]), no_wrap=("name",)))


@key.command("list")
@click.option("--prefix", metavar="P", help="Only keys whose name starts with P.")
@click.option("--decrypt", is_flag=True, help="Show secrets' values.")
@click.option(
    "--scope", type=click.Choice(["system", "user", "all"]), default="all", show_default=True
)
@format_options
@click.pass_context
def key_list(
    ctx: click.Context, prefix: str | None, decrypt: bool, scope: str, fmt: str | None
) -> None:
    """The keys of the datastore."""
    rows = client_of(ctx).list_keys(
        prefix=prefix, scope=None if scope == "all" else scope, decrypt=decrypt
    )
    if emit(rows, fmt):
        return
    print_table(KEY_COLUMNS, _key_rows(rows), no_wrap=("name",), empty="no keys")


@key.command("delete")
@click.argument("name")
@click.option("--scope", type=SCOPE, default="system", show_default=True)
@click.pass_context
def key_delete(ctx: click.Context, name: str, scope: str) -> None:
    """Delete key NAME."""
    client_of(ctx).delete_key(name, scope=scope)
    click.echo(f"key {name} deleted")


@key.command("rotate")
@click.pass_context
def key_rotate(ctx: click.Context) -> None:
    """Re-encrypt every secret value under a new key and retire the old one."""
    result = client_of(ctx).rotate_datastore_key()
    click.echo(
        f"secrets re-encrypted: {result['reencrypted']}; active key is now {result['active_key']}"
    )


def main() -> None:
    cli.main(prog_name="squall")


for _group in (rules_cli.rule, rules_cli.trigger, rules_cli.trigger_instance):
    cli.add_command(_group)
for _group in (rules_cli.rule_enforcement, rules_cli.webhook, rules_cli.sensor):
    cli.add_command(_group)
cli.add_command(inquiries_cli.inquiry)
cli.add_command(fleet_cli.inventory)
cli.add_command(rollouts_cli.rollout)
cli.add_command(workflows_cli.workflow)
cli.add_command(audit_cli.audit)
for _group in (users_cli.user, users_cli.apikey, rbac_cli.role, rbac_cli.rbac):
    cli.add_command(_group)
for _command in processes_cli.COMMANDS:
    cli.add_command(_command)


if __name__ == "__main__":
    main()
