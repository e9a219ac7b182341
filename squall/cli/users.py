"""``squall user`` and ``squall apikey``: identities. Passwords and keys made
here are shown once; the server keeps only their hashes."""

from __future__ import annotations

import re
import sys
import time
from datetime import UTC, datetime
from urllib.parse import quote

import click

from squall.cli.common import client_of, format_options, note
from squall.cli.output import emit, print_table, scalar
from squall.errors import InvalidInput

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def expiry(text: str) -> str:
    """``30d``, ``12h``, ``90m`` or an ISO 8601 time -> an ISO 8601 time."""
    m = _DURATION.match(text.strip())
    if m:
        at = time.time() + int(m.group(1)) * _SECONDS[m.group(2)]
        return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"--expires {text!r}: give a duration (30d, 12h, 90m) or an ISO 8601 time"
        ) from None
    return text


# -- squall user -----------------------------------------------------------------


@click.group()
def user() -> None:
    """Users: add, list, disable and enable them."""


@user.command("add")
@click.argument("name")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)
@click.option("--role", "roles", multiple=True, help="A role to give (repeat for more).")
@format_options
@click.pass_context
def user_add(
    ctx: click.Context, name: str, password_stdin: bool, roles: tuple[str, ...], fmt: str | None
) -> None:
    """Add a user. Without --password-stdin a password is generated and shown once."""
    body: dict[str, object] = {"name": name, "roles": list(roles)}
    if password_stdin:
        body["password"] = sys.stdin.readline().rstrip("\n")
    made = client_of(ctx).request("POST", "/api/v1/users", body=body)
    if emit(made, fmt):
        return
    click.echo(f"user {made['name']} added, roles: {', '.join(made['roles']) or 'none'}")
    if made.get("password"):
        click.echo(f"password: {made['password']}")
        note("The password is shown only now.")


@user.command("list")
@format_options
@click.pass_context
def user_list(ctx: click.Context, fmt: str | None) -> None:
    """Every user, whether enabled, and their roles."""
    rows = client_of(ctx).request("GET", "/api/v1/users")
    if emit(rows, fmt):
        return
    print_table(
        ["name", "enabled", "roles", "password", "created"],
        [
            [
                r["name"],
                "yes" if r["enabled"] else "no",
                ", ".join(r["roles"]),
                "yes" if r["has_password"] else "no",
                scalar(r["created_at"]),
            ]
            for r in rows
        ],
        empty="no users",
    )


def _set_enabled(ctx: click.Context, name: str, enabled: bool) -> None:
    client_of(ctx).request(
        "PUT", f"/api/v1/users/{quote(name, safe='')}", body={"enabled": enabled}
    )
    click.echo(f"user {name} {'enabled' if enabled else 'disabled'}")


@user.command("disable")
@click.argument("name")
@click.pass_context
def user_disable(ctx: click.Context, name: str) -> None:
    """Disable a user: its tokens and API keys stop working at once."""
    _set_enabled(ctx, name, False)


@user.command("enable")
@click.argument("name")
@click.pass_context
def user_enable(ctx: click.Context, name: str) -> None:
    """Enable a disabled user again."""
    _set_enabled(ctx, name, True)


# -- squall apikey ---------------------------------------------------------------


@click.group()
def apikey() -> None:
    """API keys: create (shown once), list, revoke."""


@apikey.command("create")
@click.option("--user", "for_user", help="The key's user (default: you).")
@click.option("--expires", help="When it stops working: 30d, 12h, 90m or an ISO 8601 time.")
@click.option("--description", help="What the key is for.")
@format_options
@click.pass_context
def apikey_create(
    ctx: click.Context,
    for_user: str | None,
    expires: str | None,
    description: str | None,
    fmt: str | None,
) -> None:
    body: dict[str, object] = {}
    if for_user:
        body["user"] = for_user
    if expires:
        body["expires_at"] = expiry(expires)
    if description:
        body["metadata"] = {"description": description}
    made = client_of(ctx).request("POST", "/api/v1/apikeys", body=body)
    if emit(made, fmt):
        return
    click.echo(f"API key {made['id']} for {made['user']}")
    click.echo(f"key: {made['key']}")
    if made.get("expires_at"):
        click.echo(f"expires: {made['expires_at']}")
    note("The key is shown only now.")


@apikey.command("list")
@format_options
@click.pass_context
def apikey_list(ctx: click.Context, fmt: str | None) -> None:
    """Your keys (every key, with the api_key_list permission)."""
    rows = client_of(ctx).request("GET", "/api/v1/apikeys")
    if emit(rows, fmt):
        return
    now = datetime.now(UTC).isoformat()
    print_table(
        ["id", "user", "state", "expires", "description", "created"],
        [
            [
                r["id"],
                r["user"],
                "revoked"
                if not r["enabled"]
                else "expired"
                if r["expires_at"] and r["expires_at"] < now
                else "active",
                scalar(r["expires_at"] or "never"),
                scalar((r["metadata"] or {}).get("description", "")),
                scalar(r["created_at"]),
            ]
            for r in rows
        ],
        no_wrap=("id",),
        empty="no API keys",
    )


@apikey.command("revoke")
@click.argument("key_id")
@click.pass_context
def apikey_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key: it stops working at once and stays listed as revoked."""
    client_of(ctx).request(
        "PUT", f"/api/v1/apikeys/{quote(key_id, safe='')}", body={"enabled": False}
    )
    click.echo(f"API key {key_id} revoked")
