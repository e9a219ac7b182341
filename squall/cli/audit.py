"""``squall audit``: who did what, when; the chain's check; an export for a SIEM."""

from __future__ import annotations

import sys
from typing import Any

import click

from squall.cli.common import client_of, format_options, note
from squall.cli.output import emit, print_table, scalar
from squall.errors import SquallError


def _filters(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v not in (None, "")}


_FILTERS = [
    click.option("--user", "actor", help="Only what this user (or rule:REF) did."),
    click.option("--kind", help="api, sign_in, execution, inquiry, rollout, denied."),
    click.option("--target", help="Only records about this id or ref."),
    click.option("--outcome", help="ok, denied, or an HTTP status."),
    click.option("--since", "after", help="ISO 8601 time: records at or after it."),
    click.option("--until", "before", help="ISO 8601 time: records before it."),
    click.option("--search", help="Text in the action or the target."),
]


def _with_filters(fn: Any) -> Any:
    for option in reversed(_FILTERS):
        fn = option(fn)
    return fn


@click.group()
def audit() -> None:
    """The audit trail: every change, execution, sign-in and decision."""


@audit.command("list")
@_with_filters
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=50, show_default=True)
@format_options
@click.pass_context
def audit_list(ctx: click.Context, limit: int, fmt: str | None, **filters: Any) -> None:
    """Records, newest first."""
    rows = client_of(ctx).request(
        "GET", "/api/v1/audit", params={"limit": limit, **_filters(**filters)}
    )
    if emit(rows, fmt):
        return
    print_table(
        ["seq", "at", "actor", "kind", "action", "target", "outcome"],
        [
            [
                str(r["seq"]),
                scalar(r["at"]),
                scalar(r["actor"]),
                scalar(r["kind"]),
                scalar(r["action"]),
                scalar(r["target"] or ""),
                scalar(r["outcome"]),
            ]
            for r in rows
        ],
        no_wrap=("seq", "at"),
        empty="no records",
    )


@audit.command("verify")
@format_options
@click.pass_context
def audit_verify(ctx: click.Context, fmt: str | None) -> None:
    """Check the hash chain; exit 1 when it is broken."""
    result = client_of(ctx).request("GET", "/api/v1/audit/verify", timeout=600)
    if not emit(result, fmt):
        head = result["head"]
        if result["ok"]:
            click.echo(
                f"the audit trail is intact: {result['records']} records sealed, "
                f"{result['unsealed']} waiting to be sealed"
            )
            click.echo(f"head: position {head['position']}, hash {head['hash']}")
            note("keep the head elsewhere: records removed from the end show only against it")
        else:
            click.echo(f"the audit trail is BROKEN: {result['problem']}", err=True)
    if not result["ok"]:
        sys.exit(1)


@audit.command("export")
@_with_filters
@click.pass_context
def audit_export(ctx: click.Context, **filters: Any) -> None:
    """Every matching record as JSON lines, oldest first (for a SIEM)."""
    text = client_of(ctx).request(
        "GET", "/api/v1/audit/export", params=_filters(**filters), timeout=600
    )
    if not isinstance(text, str):
        raise SquallError("the server did not answer with JSON lines")
    sys.stdout.write(text)
