"""How the CLI shows things: rich tables for people, JSON and YAML for scripts.

Colors and the spinner only appear on a terminal (rich turns them off when
the stream is a pipe or a file, and honors ``NO_COLOR``); off a terminal,
tables are laid out wide instead of wrapped at 80 columns so that each row
stays on one line for ``grep``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

FINAL_STATUSES = frozenset({"succeeded", "failed", "timeout", "canceled", "abandoned"})

STATUS_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "timeout": "red",
    "abandoned": "red",
    "canceled": "yellow",
    "canceling": "yellow",
    "running": "cyan",
    "pending": "cyan",
    "paused": "magenta",
    "pausing": "magenta",
    "resuming": "magenta",
}


def _console(stream: TextIO, *, stderr: bool) -> Console:
    is_tty = stream.isatty()
    width: int | None = None
    if not is_tty:
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() else 200
    return Console(stderr=stderr, highlight=False, width=width, soft_wrap=False)


def out_console() -> Console:
    return _console(sys.stdout, stderr=False)


def err_console() -> Console:
    return _console(sys.stderr, stderr=True)


# -- JSON and YAML -----------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def to_yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def emit(data: Any, fmt: str | None) -> bool:
    """Print ``data`` as JSON or YAML when ``fmt`` asks for it; True if printed."""
    if fmt == "json":
        sys.stdout.write(to_json(data) + "\n")
    elif fmt == "yaml":
        sys.stdout.write(to_yaml(data))
    else:
        return False
    sys.stdout.flush()
    return True


# -- small formatters ---------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: str | None) -> str:
    """An API timestamp in local time, to the second."""
    parsed = parse_time(value)
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M:%S") if parsed else ""


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def elapsed(execution: dict[str, Any]) -> float | None:
    """Seconds the execution ran, or has been running so far."""
    if execution.get("elapsed_seconds") is not None:
        return float(execution["elapsed_seconds"])
    start = parse_time(execution.get("start_timestamp"))
    if start is None:
        return None
    end = parse_time(execution.get("end_timestamp")) or datetime.now(UTC)
    return max((end - start).total_seconds(), 0.0)


def format_elapsed(execution: dict[str, Any]) -> str:
    text = format_seconds(elapsed(execution))
    if text and execution.get("status") not in FINAL_STATUSES:
        text += "+"
    return text


def status_text(status: str | None) -> Text:
    status = status or "?"
    return Text(status, style=STATUS_STYLES.get(status, ""))


def execution_user(execution: dict[str, Any]) -> str:
    context = execution.get("context") or {}
    return str(context.get("user") or "") if isinstance(context, dict) else ""


def action_ref(execution: dict[str, Any]) -> str:
    action = execution.get("action") or {}
    ref = action.get("ref") if isinstance(action, dict) else None
    return str(ref or (execution.get("liveaction") or {}).get("action") or "")


def runner_name(execution: dict[str, Any]) -> str:
    runner = execution.get("runner") or {}
    return str(runner.get("name") or "") if isinstance(runner, dict) else ""


def scalar(value: Any) -> str:
    """A value as one would type it: strings bare, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


# -- tables -----------------------------------------------------------------------


def table(
    columns: Sequence[str], rows: Iterable[Sequence[str | Text]], *, no_wrap: Sequence[str] = ()
) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for name in columns:
        t.add_column(name, no_wrap=name in no_wrap, overflow="fold")
    for row in rows:
        t.add_row(*row)
    return t


def show(renderable: Any) -> None:
    """Print to stdout; off a terminal, without the padding rich leaves at
    the end of lines."""
    console = out_console()
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str | Text]],
    *,
    no_wrap: Sequence[str] = (),
    empty: str = "nothing to show",
) -> None:
    rows = list(rows)
    if not rows:
        err_console().print(Text(empty, style="dim"))
        return
    show(table(columns, rows, no_wrap=no_wrap))


# -- one execution, for people ---------------------------------------------------


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


def describe_mapping(values: dict[str, Any], *, plain_keys: Iterable[str] = ()) -> str:
    """``key: value`` lines; multi-line strings, and the keys in
    ``plain_keys``, shown verbatim in an indented block rather than quoted."""
    plain = set(plain_keys)
    lines: list[str] = []
    for key, value in values.items():
        if isinstance(value, str) and (key in plain or "\n" in value):
            if value == "":
                lines.append(f"{key}: (empty)")
            else:
                lines.append(f"{key}:")
                lines.append(_indent(value.rstrip("\n")))
        elif isinstance(value, dict | list) and value:
            lines.append(f"{key}:")
            lines.append(_indent(to_yaml(value).rstrip("\n")))
        else:
            lines.append(f"{key}: {scalar(value)}")
    return "\n".join(lines)


def print_execution(execution: dict[str, Any], *, show_result: bool = True) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("id", str(execution.get("id", "")))
    grid.add_row("action", action_ref(execution))
    grid.add_row("runner", runner_name(execution))
    grid.add_row("status", status_text(execution.get("status")))
    grid.add_row("user", execution_user(execution))
    grid.add_row("started", format_time(execution.get("start_timestamp")))
    if execution.get("end_timestamp"):
        grid.add_row("ended", format_time(execution.get("end_timestamp")))
    grid.add_row("elapsed", format_elapsed(execution))
    if execution.get("parent"):
        grid.add_row("parent", str(execution["parent"]))
    if execution.get("children"):
        grid.add_row("children", ", ".join(execution["children"]))
    parts: list[Any] = [grid]
    parameters = execution.get("parameters") or {}
    if parameters:
        parts += [Text("parameters:", style="bold"), Text(_indent(describe_mapping(parameters)))]
    else:
        parts.append(Text.assemble(("parameters:", "bold"), " (none)"))
    result = execution.get("result")
    if not show_result:
        pass  # shown another way by the caller
    elif isinstance(result, dict) and result:
        body = describe_mapping(result, plain_keys=("stdout", "stderr"))
        parts += [Text("result:", style="bold"), Text(_indent(body))]
    elif result in (None, {}, ""):
        final = execution.get("status") in FINAL_STATUSES
        parts.append(Text.assemble(("result:", "bold"), " (none)" if final else " (none yet)"))
    else:
        parts += [Text("result:", style="bold"), Text(_indent(to_yaml(result).rstrip("\n")))]
    show(Group(*parts))


def print_task_tree(view: dict[str, Any]) -> None:
    """A workflow's tasks in the order they started, with status, timing
    and execution, indented under the task that led to them."""
    tasks = view.get("tasks") or []
    if not tasks:
        show(Text.assemble(("tasks:", "bold"), " (none yet)"))
        return
    rows = []
    for t in tasks:
        name = t["task"] + (f" (route {t['route']})" if t.get("route") else "")
        items = t.get("items")
        if items:
            name += f"  [{items.get('done', 0)}/{items.get('total', 0)} items]"
        rows.append(
            [
                "  " * int(t.get("depth", 0)) + name,
                status_text(t.get("status")),
                format_elapsed(t),
                str(t.get("execution_id") or ""),
            ]
        )
    show(Text("tasks:", style="bold"))
    print_table(["task", "status", "elapsed", "execution"], rows, no_wrap=("execution",))
