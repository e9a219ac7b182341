"""``squall role`` and ``squall rbac``: roles, who holds them, and the role
files kept in git."""

from __future__ import annotations

from urllib.parse import quote

import click

from squall.cli.common import client_of, format_options, note
from squall.cli.output import emit, print_table


@click.group()
def role() -> None:
    """Roles: list them, show their grants, assign and revoke them."""


@role.command("list")
@format_options
@click.pass_context
def role_list(ctx: click.Context, fmt: str | None) -> None:
    """Built-in roles and those read from the rbac directory."""
    rows = client_of(ctx).request("GET", "/api/v1/rbac/roles")
    if emit(rows, fmt):
        return
    print_table(
        ["name", "source", "grants", "description"],
        [
            [r["name"], r["source"], str(len(r["permission_grants"])), r["description"]]
            for r in rows
        ],
        empty="no roles",
    )


@role.command("get")
@click.argument("name")
@format_options
@click.pass_context
def role_get(ctx: click.Context, name: str, fmt: str | None) -> None:
    """A role's grants, and who holds it."""
    client = client_of(ctx)
    found = client.request("GET", f"/api/v1/rbac/roles/{quote(name, safe='')}")
    holders = [a for a in client.request("GET", "/api/v1/rbac/assignments") if a["role"] == name]
    if emit({**found, "assignments": holders}, fmt):
        return
    click.echo(f"{found['name']} ({found['source']}): {found['description']}")
    print_table(
        ["resource", "permissions"],
        [
            [g["resource_uid"] or "(everywhere)", ", ".join(g["permission_types"])]
            for g in found["permission_grants"]
        ],
        empty="no grants",
    )
    if holders:
        click.echo("held by: " + ", ".join(f"{a['user']} ({a['source']})" for a in holders))


@role.command("assign")
@click.argument("user")
@click.argument("role_name", metavar="ROLE")
@click.option("--description", default="", help="Why.")
@click.pass_context
def role_assign(ctx: click.Context, user: str, role_name: str, description: str) -> None:
    """Give USER the role ROLE."""
    client_of(ctx).request(
        "POST",
        "/api/v1/rbac/assignments",
        body={"user": user, "role": role_name, "description": description},
    )
    click.echo(f"{user} now holds {role_name}")


@role.command("revoke")
@click.argument("user")
@click.argument("role_name", metavar="ROLE")
@click.pass_context
def role_revoke(ctx: click.Context, user: str, role_name: str) -> None:
    """Take ROLE from USER (roles assigned in files are changed in the files)."""
    client_of(ctx).request(
        "DELETE", f"/api/v1/rbac/assignments/{quote(user, safe='')}/{quote(role_name, safe='')}"
    )
    click.echo(f"{user} no longer holds {role_name}")


@click.group()
def rbac() -> None:
    """The role and assignment files (rbac/roles, rbac/assignments)."""


@rbac.command("reload")
@format_options
@click.pass_context
def rbac_reload(ctx: click.Context, fmt: str | None) -> None:
    """Read the rbac directory again; exit 1 if a file could not be used."""
    report = client_of(ctx).request("POST", "/api/v1/rbac/reload")
    if not emit(report, fmt):
        if report["directory"] is None:
            note("no rbac directory is configured (SQUALL_RBAC_DIR)")
        click.echo(f"{report['roles']} roles, {report['assignments']} assignments read")
        for problem in report["problems"]:
            note(f"problem: {problem}")
    if report["problems"]:
        ctx.exit(1)
