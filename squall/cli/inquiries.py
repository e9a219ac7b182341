"""``squall inquiry``: the questions executions ask people, and answering them."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from squall.cli.client import Client, _q
from squall.cli.common import client_of, format_options, note
from squall.cli.output import emit, print_table, scalar, show, table
from squall.errors import InvalidInput


def _get(client: Client, inquiry_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.request("GET", f"/api/v1/inquiries/{_q(inquiry_id)}")
    return found


def _names(values: Any) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, list) else scalar(values)


def _ttl(value: Any) -> str:
    return "" if value is None else f"{scalar(value)} min"


def _properties(schema: Any) -> list[tuple[str, dict[str, Any], bool]]:
    """The questions of a response schema: ``(name, schema, required)`` in order."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    listed = schema.get("required")
    required = set(listed) if isinstance(listed, list) else set()
    return [
        (name, prop, name in required or prop.get("required") is True)
        for name, prop in schema["properties"].items()
        if isinstance(prop, dict)
    ]


def _kind(prop: dict[str, Any]) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return str(kind or "string")


@click.group()
def inquiry() -> None:
    """Inquiries: executions waiting for a person to answer a question."""


@inquiry.command("list")
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=50, show_default=True)
@format_options
@click.pass_context
def inquiry_list(ctx: click.Context, limit: int, fmt: str | None) -> None:
    """Pending inquiries, newest first."""
    rows = client_of(ctx).request("GET", "/api/v1/inquiries", params={"limit": limit})
    if emit(rows, fmt):
        return
    print_table(
        ["id", "route", "users", "roles", "ttl"],
        [
            [
                str(r.get("id", "")),
                str(r.get("route") or ""),
                _names(r.get("users") or []),
                _names(r.get("roles") or []),
                _ttl(r.get("ttl")),
            ]
            for r in rows
        ],
        no_wrap=("id", "ttl"),
        empty="no pending inquiries",
    )
    if len(rows) >= limit:
        note(f"only the newest {limit} inquiries are shown; use --limit for more")


@inquiry.command("get")
@click.argument("inquiry_id", metavar="ID")
@format_options
@click.pass_context
def inquiry_get(ctx: click.Context, inquiry_id: str, fmt: str | None) -> None:
    """One pending inquiry and the questions it asks."""
    found = _get(client_of(ctx), inquiry_id)
    if emit(found, fmt):
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("id", str(found.get("id", "")))
    grid.add_row("route", str(found.get("route") or ""))
    grid.add_row("ttl", _ttl(found.get("ttl")))
    grid.add_row("users", _names(found.get("users") or []) or "anyone")
    grid.add_row("roles", _names(found.get("roles") or []) or "any")
    if found.get("parent"):
        grid.add_row("parent", str(found["parent"]))
    rows: list[list[str | Text]] = [
        [
            Text(name, style="bold" if required else ""),
            _kind(prop),
            "yes" if required else "",
            str(prop.get("description") or "").strip(),
        ]
        for name, prop, required in _properties(found.get("schema"))
    ]
    if rows:
        questions = table(["field", "type", "required", "description"], rows, no_wrap=("type",))
        show(Group(grid, Text(), questions))
    else:
        show(Group(grid, Text(), Text("no fields: any JSON object is accepted")))


_SKIPPED = object()  # an optional field left empty


def _converter(prop: dict[str, Any], required: bool) -> Any:
    """Text typed at the prompt -> the field's value; click asks again when
    this raises ``BadParameter``."""
    kind = _kind(prop)
    choices = {scalar(v): v for v in prop.get("enum") or []}

    def convert(text: str) -> Any:
        if text == "" and not required:
            return _SKIPPED
        if choices:
            if text not in choices:
                raise click.BadParameter(f"choose one of: {', '.join(choices)}")
            return choices[text]
        if kind == "boolean":
            return click.BOOL.convert(text, None, None)
        if kind in ("integer", "number"):
            try:
                return int(text) if kind == "integer" else float(text)
            except ValueError:
                wanted = "a whole number" if kind == "integer" else "a number"
                raise click.BadParameter(f"{text!r} is not {wanted}") from None
        if kind in ("array", "object"):
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if kind == "array" and not isinstance(value, list):
                # a, b, c: the common case of a list of strings
                return [part.strip() for part in text.split(",") if part.strip()]
            if kind == "object" and not isinstance(value, dict):
                raise click.BadParameter('write a JSON object, e.g. {"key": 1}')
            return value
        return text

    return convert


def _ask(name: str, prop: dict[str, Any], required: bool) -> Any:
    """Prompt for one field (typed by its schema); ``_SKIPPED`` when an
    optional one is left empty."""
    kind = _kind(prop)
    description = str(prop.get("description") or "").strip()
    label = f"{name} - {description}" if description else name
    default = prop.get("default")
    if prop.get("enum"):
        hint = "one of: " + ", ".join(scalar(v) for v in prop["enum"])
    else:
        hints = {"boolean": "yes/no", "integer": "a whole number", "number": "a number"}
        hint = hints.get(kind) or {"array": "JSON, or a, b, c", "object": "JSON"}.get(kind, "")
    if not required and default is None:
        hint = f"{hint}, optional" if hint else "optional"
    if hint:
        label += f" ({hint})"
    if default is not None:
        shown: Any = json.dumps(default) if kind in ("array", "object") else scalar(default)
    else:
        shown = None if required else ""
    return click.prompt(
        label,
        default=shown,
        show_default=default is not None,
        value_proc=_converter(prop, required),
    )


def prompt_response(schema: Any) -> dict[str, Any]:
    """Ask for each field of ``schema`` in turn; the answers as a response object."""
    response: dict[str, Any] = {}
    for name, prop, required in _properties(schema):
        value = _ask(name, prop, required)
        if value is not _SKIPPED:
            response[name] = value
    return response


@inquiry.command("respond")
@click.argument("inquiry_id", metavar="ID")
@click.option(
    "--response",
    "-r",
    metavar="JSON",
    help="The whole answer as a JSON object (otherwise each field is asked for in turn).",
)
@format_options
@click.pass_context
def inquiry_respond(
    ctx: click.Context, inquiry_id: str, response: str | None, fmt: str | None
) -> None:
    """Answer inquiry ID: the execution that asked succeeds with the answer."""
    client = client_of(ctx)
    if response is not None:
        try:
            answer = json.loads(response)
        except ValueError as exc:
            raise InvalidInput(f"--response is not valid JSON: {exc}") from None
    else:
        found = _get(client, inquiry_id)
        answer = prompt_response(found.get("schema"))
    accepted = client.request(
        "PUT",
        f"/api/v1/inquiries/{_q(inquiry_id)}",
        body={"id": inquiry_id, "response": answer},
    )
    if not emit(accepted, fmt):
        click.echo(f"response accepted for inquiry {inquiry_id}")
