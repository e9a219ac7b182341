"""What every ``squall`` command shares: messages, the API client of the
invocation, output format options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from squall.cli.client import Client, resolve_target

F = TypeVar("F", bound=Callable[..., Any])

SECRET_MASK = "********"


def error(message: str) -> None:
    click.secho(f"error: {message}", err=True, fg="red")


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr."""
    click.echo(message, err=True)


@dataclass
class State:
    url: str | None
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(resolve_target(self.url))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def format_options(f: F) -> F:
    """``--json`` / ``--yaml``, both into the ``fmt`` argument (None: a table)."""
    f = click.option("--yaml", "fmt", flag_value="yaml", help="Print YAML (for scripts).")(f)
    f = click.option("--json", "fmt", flag_value="json", help="Print JSON (for scripts).")(f)
    return f


def client_of(ctx: click.Context) -> Client:
    state = ctx.find_object(State)
    if state is None:  # a command invoked outside the group
        state = State(None)
        ctx.call_on_close(state.close)
    return state.client()


def tls_options(command: Any) -> Any:
    """--tls-cert and --tls-key: serve HTTPS (see docs/security.md)."""
    for name, what, variable in (
        ("--tls-key", "its private key", "SQUALL_TLS_KEY"),
        ("--tls-cert", "the certificate", "SQUALL_TLS_CERT"),
    ):
        command = click.option(
            name,
            type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
            help=f"Serve HTTPS with {what} (a PEM file; ${variable}).",
        )(command)
    return command
