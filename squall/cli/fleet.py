"""``squall inventory``: the fleet's hosts, targeting and facts; and how the
per-host results of a remote execution are shown (counts, then identical
outputs folded together)."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from squall.cli.client import Client, _q
from squall.cli.common import client_of, format_options, note
from squall.cli.output import emit, err_console, out_console, print_table, scalar
from squall.core.hostresults import fold

REMOTE_RUNNERS = frozenset({"remote-shell-cmd", "remote-shell-script", "remote-reboot"})
# Hosts named in full under a folded group; the rest are counted.
HOSTS_SHOWN = 8
LINES_SHOWN = 10

_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "unreachable": "magenta",
    "timeout": "yellow",
    "auth_failed": "red",
    "host_key": "red",
    "canceled": "yellow",
    "running": "cyan",
    "pending": "dim",
}


def host_results(client: Client, execution_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.request(
        "GET", f"/api/v1/executions/{_q(execution_id)}/hosts", params={"limit": 0}
    )
    return found


def counts_text(summary: dict[str, int], *, head: bool = True) -> Text:
    """``1000 hosts: 997 succeeded, 2 failed, 1 unreachable``."""
    total = summary.get("total", 0)
    text = Text(f"{total} host{'s' if total != 1 else ''}: " if head else "", style="bold")
    parts = [(s, n) for s, n in summary.items() if s != "total" and n]
    for i, (status, n) in enumerate(parts):
        if i:
            text.append(", ")
        text.append(f"{n} {status.replace('_', ' ')}", style=_STATUS_STYLE.get(status, ""))
    return text


def progress_text(summary: dict[str, int], width: int = 30) -> Text:
    """A one-line bar: done hosts filled, then the counts."""
    total = summary.get("total", 0) or 1
    waiting = summary.get("pending", 0) + summary.get("running", 0)
    done = max(0, summary.get("total", 0) - waiting)
    filled = int(width * done / total)
    text = Text("[")
    text.append("█" * filled, style="green")
    text.append("░" * (width - filled), style="dim")
    text.append(f"] {done}/{summary.get('total', 0)} ")
    text.append_text(counts_text(summary, head=False))
    return text


def print_host_results(results: dict[str, Any]) -> None:
    """Counts by outcome, then each distinct outcome once with its hosts."""
    err = err_console()
    out = out_console()
    rows = results.get("hosts") or []
    folds = fold((r["host"], r["status"], r.get("result")) for r in rows)
    for f in folds:
        n = len(f.hosts)
        head = Text(f"{n} host{'s' if n != 1 else ''}: ", style="bold")
        head.append(f.status.replace("_", " "), style=_STATUS_STYLE.get(f.status, ""))
        if f.return_code not in (None, 0):
            head.append(f" (exit code {f.return_code})")
        out.print(head)
        names = ", ".join(f.hosts[:HOSTS_SHOWN])
        if n > HOSTS_SHOWN:
            names += f" and {n - HOSTS_SHOWN} more"
        out.print(Text("  " + names, style="dim"))
        lines = f.text.splitlines()
        for line in lines[:LINES_SHOWN]:
            out.print(Text("  | " + line))
        if len(lines) > LINES_SHOWN:
            out.print(Text(f"  | ... {len(lines) - LINES_SHOWN} more lines", style="dim"))
    err.print(counts_text(results.get("summary") or {}))


# -- squall inventory ----------------------------------------------------------------------


@click.group()
def inventory() -> None:
    """The fleet: hosts, groups, facts and targeting expressions."""


@inventory.command("list")
@click.option("--target", "-t", help="Targeting expression, e.g. 'role=web and env!=prod'.")
@format_options
@click.pass_context
def inventory_list(ctx: click.Context, target: str | None, fmt: str | None) -> None:
    """Hosts of the inventory, or the ones TARGET matches, with the count."""
    params: dict[str, Any] = {"limit": 0}
    if target:
        params["target"] = target
    found = client_of(ctx).request("GET", "/api/v1/inventory/hosts", params=params)
    if emit(found, fmt):
        return
    hosts = found.get("hosts") or []
    print_table(
        ["name", "address", "user", "groups", "facts"],
        [
            [
                h["name"],
                f"{h['address']}" + (f":{h['port']}" if h.get("port") not in (22, None) else ""),
                h.get("user") or "",
                ",".join(h.get("groups") or []),
                " ".join(
                    f"{k}={scalar(v)}"
                    for k, v in (h.get("facts") or {}).items()
                    if not isinstance(v, dict | list) and k != "gathered_at"
                ),
            ]
            for h in hosts
        ],
        no_wrap=("name", "address"),
        empty="no hosts in the inventory" if not target else "no host matches",
    )
    for problem in found.get("problems") or []:
        note(f"inventory problem: {problem}")
    if target:
        note(f"{found['count']} of {found['total']} hosts match {target!r}")
    else:
        note(f"{found['count']} hosts")


@inventory.command("show")
@click.argument("name")
@format_options
@click.pass_context
def inventory_show(ctx: click.Context, name: str, fmt: str | None) -> None:
    """One host: how it is reached, its groups and all its facts."""
    host = client_of(ctx).request("GET", f"/api/v1/inventory/hosts/{_q(name)}")
    emit(host, fmt or "yaml")


@inventory.command("groups")
@format_options
@click.pass_context
def inventory_groups(ctx: click.Context, fmt: str | None) -> None:
    """Groups, with their children and how many hosts they hold."""
    groups = client_of(ctx).request("GET", "/api/v1/inventory/groups")
    if emit(groups, fmt):
        return
    print_table(
        ["group", "hosts", "children"],
        [[g["name"], str(len(g["hosts"])), ",".join(g["children"])] for g in groups],
        empty="no groups",
    )


@inventory.command("facts")
@click.option("--target", "-t", required=True, help="Targeting expression ('*' for all).")
@click.option(
    "--packages", "-p", default="", help="Comma-separated packages whose versions to collect."
)
@format_options
@click.pass_context
def inventory_facts(ctx: click.Context, target: str, packages: str, fmt: str | None) -> None:
    """Gather facts (OS, kernel, CPUs, memory, IPs, package versions) over SSH
    from the hosts TARGET matches, and store them for targeting."""
    body = {"target": target, "packages": [p.strip() for p in packages.split(",") if p.strip()]}
    client = client_of(ctx)
    with err_console().status(f"gathering facts from the hosts matching {target!r} ..."):
        found = client.request("POST", "/api/v1/inventory/facts", body=body, timeout=None)
    if emit(found, fmt):
        return
    facts = found.get("facts") or {}
    print_table(
        ["host", "os", "kernel", "arch", "cpus", "memory_mb", "uptime"],
        [
            [
                name,
                f"{f.get('os', '')} {f.get('os_version', '')}".strip(),
                str(f.get("kernel", "")),
                str(f.get("arch", "")),
                str(f.get("cpus", "")),
                str(f.get("memory_mb", "")),
                _uptime(f.get("uptime_seconds")),
            ]
            for name, f in facts.items()
        ],
        no_wrap=("host",),
        empty="no facts gathered",
    )
    for name, failure in (found.get("failed") or {}).items():
        err_console().print(Text(f"{name}: {failure['status']}: {failure['error']}", style="red"))
    note(f"facts from {found['gathered']} of {found['count']} hosts")
    if found.get("failed"):
        ctx.exit(1)


def _uptime(seconds: Any) -> str:
    if not isinstance(seconds, int):
        return ""
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"
