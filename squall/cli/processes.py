"""The processes of a scaled-out deployment, and the schema's upgrades.

``squall up`` runs everything in one process. On PostgreSQL the same
services can run as separate processes, on any number of machines, all
pointed at one database with ``SQUALL_DATABASE_URL``:

- ``squall api``: the HTTP API, the web UI and the event stream;
- ``squall worker``: runner workers, and the scheduler, rules engine,
  workflow engine, rollout controller, inquiry expirer, garbage collector and
  audit sealer (those run in one worker at a time and move on if it dies);
- ``squall sensors``: the pack sensors, spread over the sensors processes.

They do not migrate the schema: ``squall db upgrade`` does, and they refuse
to start against an older one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from squall.cli.common import tls_options

F = TypeVar("F", bound=Callable[..., Any])

LOG_FORMAT = click.Choice(["text", "json"])


def server_options(f: F) -> F:
    """Options every server process takes."""
    f = click.option(
        "--log-format",
        type=LOG_FORMAT,
        help="text (default) or json: one JSON object per line ($SQUALL_LOG_FORMAT).",
    )(f)
    f = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A YAML config file (default: $SQUALL_CONFIG, else /etc/squall/squall.yaml).",
    )(f)
    f = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where Squall keeps its keys and credentials (default: $SQUALL_DATA_DIR).",
    )(f)
    f = click.option(
        "--database-url",
        metavar="URL",
        help="postgresql://USER@HOST/DB (default: $SQUALL_DATABASE_URL).",
    )(f)
    return f


def settings_for(roles: tuple[str, ...], **options: Any) -> Any:
    from squall.cli.main import configure_logging
    from squall.config import Settings

    log_format = options.pop("log_format", None)
    config_file = options.pop("config_file", None)
    options["packs_dirs"] = options.pop("packs_dirs", ()) or None
    settings = Settings.from_env(config=config_file, roles=roles, **options)
    if log_format:
        settings = settings.with_overrides(log_format=log_format)
    configure_logging(settings.log_format, process="-".join(roles))
    return settings


def packs_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--packs-dir",
        "packs_dirs",
        multiple=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=help_text,
    )


def metrics_options(f: F) -> F:
    """A worker or sensors process can serve its own metrics."""
    f = click.option(
        "--host", metavar="ADDR", help="Address for --metrics-port (default 127.0.0.1)."
    )(f)
    return click.option(
        "--metrics-port",
        type=click.IntRange(1, 65535),
        help="Serve this process's metrics on http://HOST:PORT/metrics ($SQUALL_METRICS_PORT).",
    )(f)


@click.command(short_help="Run an API process (PostgreSQL).")
@server_options
@click.option("--host", metavar="ADDR", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default 9101).")
@packs_option("A directory of packs to register (repeatable), after the built-in ones.")
@tls_options
def api(**options: Any) -> None:
    """Serve the HTTP API, the web UI and the event stream. Run as many as you
    like behind a load balancer; each sees what every worker does."""
    from squall.server import serve

    serve(settings_for(("api",), **options))


@click.command(short_help="Run a worker process (PostgreSQL).")
@server_options
@click.option(
    "--concurrency",
    "worker_concurrency",
    type=click.IntRange(1, 100_000),
    help="Actions this worker runs at the same time (default: $SQUALL_WORKER_CONCURRENCY, 64).",
)
@metrics_options
@packs_option("A directory of packs (repeatable): the same as the API's.")
def worker(**options: Any) -> None:
    """Run actions, and the engines (scheduler, rules, workflows, rollouts,
    inquiries, garbage collection, audit sealing). Add workers to run more
    at once; a worker that dies has its work resumed by the others."""
    from squall.server import run_services

    run_services(settings_for(("worker",), **options))


@click.command(short_help="Run a sensors process (PostgreSQL).")
@server_options
@metrics_options
@packs_option("A directory of packs (repeatable): the same as the API's.")
def sensors(**options: Any) -> None:
    """Run pack sensors. With several sensors processes, each runs its share,
    and the sensors of one that dies move to the others."""
    from squall.server import run_services

    run_services(settings_for(("sensors",), **options))


@click.command(short_help="Serve webhooks from a process of their own (SQLite).")
@server_options
@click.option("--host", metavar="ADDR", help="Address to listen on (default 127.0.0.1).")
@click.option(
    "--port",
    "intake_port",
    type=click.IntRange(1, 65535),
    help="Port to listen on (default: $SQUALL_INTAKE_PORT).",
)
@tls_options
def intake(**options: Any) -> None:
    """Answer POST /api/v1/webhooks/... beside a 'squall up' on SQLite, on
    the same data directory: the calls are kept in an inbox of their own and
    'squall up' takes them from there. 'squall up --intake-port' starts one
    by itself; run it alone to manage it yourself."""
    from squall.api.intake import serve_intake

    settings = settings_for(("intake",), **options)
    if not settings.intake_port:
        raise click.UsageError("give --port (or SQUALL_INTAKE_PORT)")
    serve_intake(settings)


@click.group()
def db() -> None:
    """The database's schema."""


@db.command("upgrade")
@click.option("--database-url", metavar="URL", help="Default: $SQUALL_DATABASE_URL.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML config file (default: $SQUALL_CONFIG).",
)
def db_upgrade(database_url: str | None, config_file: Path | None) -> None:
    """Apply the migrations this Squall brings. Run it once per upgrade,
    before starting the new version's processes. The first time, it also
    makes the datastore key ring every process must share."""
    from squall.cli.main import configure_logging
    from squall.config import Settings
    from squall.crypto import KeyRing
    from squall.server import key_ring_path
    from squall.store import migrate
    from squall.store.db import Database

    configure_logging()
    settings = Settings.from_env(config=config_file, database_url=database_url)
    ring = key_ring_path(settings)
    if not ring.exists():
        # The deployment's datastore key ring is made here, once, to be copied.
        KeyRing(ring)
        click.echo(
            f"created the datastore key ring {ring}: copy it (mode 0600) into the data "
            "directory of every machine that runs Squall"
        )
    database = Database(settings.database_url, readers=1)
    try:
        before = migrate.current_revision(database.write_engine)
        migrate.upgrade(database.write_engine)
        after = migrate.current_revision(database.write_engine)
    finally:
        database.close()
    if before == after:
        click.echo(f"the schema is up to date ({after})")
    else:
        click.echo(f"the schema is upgraded from {before or 'nothing'} to {after}")


@db.command("status")
@click.option("--database-url", metavar="URL", help="Default: $SQUALL_DATABASE_URL.")
def db_status(database_url: str | None) -> None:
    """Show the schema's version and whether it is the one this Squall needs."""
    from squall.config import Settings
    from squall.store import migrate
    from squall.store.db import Database

    settings = Settings.from_env(database_url=database_url)
    database = Database(settings.database_url, readers=1)
    try:
        current = migrate.current_revision(database.engine)
    finally:
        database.close()
    head = migrate.head_revision()
    state = "up to date" if current == head else "needs 'squall db upgrade'"
    click.echo(f"schema: {current or 'nothing'}; this Squall needs {head}: {state}")
    if current != head:
        raise SystemExit(1)


COMMANDS = (api, worker, sensors, intake, db)
