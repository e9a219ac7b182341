"""``squall rollout``: batch gray rollouts of an action over the fleet.

A rollout spec (see :mod:`squall.core.rollouts`) is a YAML file read here and
sent to the server as text: ``plan`` shows how its hosts fall in batches,
``start`` starts it, ``status`` shows (and ``--watch`` follows) how it is
going, ``pause``, ``resume`` and ``abort`` steer it, ``skip`` leaves hosts out,
``retry`` runs the failed hosts of an ended rollout again and ``rollback``
undoes it. The helpers that turn the API's answers into text are pure
functions, tested on their own.
"""

from __future__ import annotations

import math
import time
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from squall.cli.client import Client, _q
from squall.cli.common import client_of, format_options, note
from squall.cli.fleet import HOSTS_SHOWN, counts_text, progress_text
from squall.cli.output import (
    emit,
    format_time,
    out_console,
    parse_time,
    print_table,
    show,
)

FINAL_STATUSES = frozenset({"succeeded", "failed", "aborted", "rolled_back"})
# Host results that count against a budget by default; hosts with an error
# are listed among the failures whatever their status.
FAILED_HOST_STATUSES = frozenset({"failed", "unreachable", "timeout"})
# The hosts `squall rollout retry` runs again (with --skipped, "skipped" too).
RETRIED_HOST_STATUSES = ("failed", "unreachable", "timeout", "canceled")
# Hosts a rollback does not undo: the action never ran on them.
NOT_UNDONE_STATUSES = frozenset({"pending", "skipped", "unreachable"})
POLL_SECONDS = 1.0
BAR_WIDTH = 30
LOG_LINES_SHOWN = 5
OUTPUTS_SHOWN = 5
OUTPUT_LINES_SHOWN = 3

# As in squall.cli.main (which imports this module).
EXIT_ERROR = 1
EXIT_WAIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130

_ROLLOUT_STYLES = {
    "planned": "dim",
    "running": "cyan",
    "paused": "magenta",
    "succeeded": "green",
    "failed": "red",
    "aborted": "yellow",
    "rolled_back": "yellow",
}
_BATCH_STYLES = {"pending": "dim", "running": "cyan", "done": ""}
_ANALYSIS_STYLES = {
    "running": "cyan",
    "successful": "green",
    "failed": "red",
    "inconclusive": "yellow",
}
# A measurement's outcome after its value: ✓ successful, ✗ failed, ? inconclusive, ! error.
_OUTCOME_MARKS = {
    "successful": ("✓", "green"),
    "failed": ("✗", "red"),
    "inconclusive": ("?", "yellow"),
    "error": ("!", "red"),
}
_SPARKS = "▁▂▃▄▅▆▇█"


# -- pure formatting helpers --------------------------------------------------------------


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def span_text(seconds: float) -> str:
    """A length of time in its two largest units: ``45s``, ``10m``,
    ``1h 20m``, ``2d 3h``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{round(seconds)}s"
    if seconds < 3600:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    if seconds < 86400:
        hours, minutes = divmod(round(seconds / 60), 60)
        if hours == 24:
            return "1d"
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def duration_text(seconds: float | None) -> str:
    """An estimate for people: ``about 1h 20m`` (whole minutes from a minute on)."""
    if seconds is None:
        return "unknown"
    if seconds < 1:
        return "less than a second"
    if seconds >= 60:
        seconds = round(seconds / 60) * 60
    return f"about {span_text(seconds)}"


def names_text(names: Sequence[str], shown: int = HOSTS_SHOWN) -> str:
    """``web-01, web-02 and 3 more``."""
    text = ", ".join(names[:shown])
    if len(names) > shown:
        text += f" and {len(names) - shown} more"
    return text


def _who(approval: dict[str, Any]) -> str:
    users = ", ".join(str(u) for u in approval.get("users") or [])
    roles = ", ".join(str(r) for r in approval.get("roles") or [])
    if users and roles:
        return f"{users} or role {roles}"
    if roles:
        return f"role {roles}"
    return users or "anyone"


def gate_text(gate: dict[str, Any]) -> str:
    """A gate of the plan: ``pause 10m``, ``approval by alice (4h, then abort)``..."""
    kind = str(gate.get("kind") or "?")
    if kind == "pause":
        return f"pause {span_text(gate.get('seconds') or 0)}"
    if kind == "approval":
        text = f"approval by {_who(gate)}"
        if gate.get("timeout") is not None:
            text += f" ({span_text(gate['timeout'])}, then {gate.get('on_timeout') or 'abort'})"
        return text
    if kind == "hold":
        return "hold until resumed"
    if kind == "analysis":
        return f"analysis {gate.get('analysis') or ''}".rstrip()
    if kind == "window":
        text = f"window {gate.get('cron', '')}"
        if gate.get("duration") is not None:
            text += f" for {span_text(gate['duration'])}"
        return text + f" ({gate.get('timezone') or 'UTC'})"
    return kind


def plan_rows(found: dict[str, Any]) -> list[list[str]]:
    """One row per batch of a plan: index, size, hosts (the first few), then
    the failures tolerated in it when the spec sets a batch budget, and the
    gates after it."""
    batches: list[list[str]] = found.get("batches") or []
    gates: list[list[dict[str, Any]]] = found.get("gates") or []
    per_batch = (found.get("budget") or {}).get("batches") or []
    limited = any(b is not None for b in per_batch)
    rows = []
    for i, hosts in enumerate(batches):
        row = [str(i), str(len(hosts)), names_text(hosts)]
        if limited:
            tolerated = per_batch[i] if i < len(per_batch) else None
            row.append("no limit" if tolerated is None else str(tolerated))
        after = gates[i] if i < len(gates) else []
        row.append(", ".join(gate_text(g) for g in after))
        rows.append(row)
    return rows


def plan_columns(found: dict[str, Any]) -> list[str]:
    per_batch = (found.get("budget") or {}).get("batches") or []
    limited = any(b is not None for b in per_batch)
    return ["batch", "size", "hosts"] + (["tolerated"] if limited else []) + ["then"]


def window_mode_lines(found: dict[str, Any]) -> list[str]:
    """A window-mode plan's one batch is a sliding window: say how wide."""
    if found.get("mode") != "window":
        return []
    width = (found.get("concurrency") or [0])[0]
    return [
        f"sliding window: {plural(width, 'host')} in flight, "
        "a new one starting as soon as one finishes"
    ]


def tolerated_text(limit: int | None) -> str:
    if limit is None:
        return "no limit"
    if limit == 0:
        return "stops at the first failure"
    return f"{plural(limit, 'failure')} tolerated, stops at the {_ordinal(limit + 1)}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def plan_budget_lines(budget: dict[str, Any]) -> list[str]:
    """The failure budget of a plan, in numbers of hosts."""
    lines = [f"failure budget: {tolerated_text(budget.get('max_failures'))} (whole rollout)"]
    counted = budget.get("count_as_failure") or []
    details = []
    if counted:
        details.append(f"counted as failures: {', '.join(str(s) for s in counted)}")
    on_breach = budget.get("on_breach")
    if on_breach == "cancel":
        details.append("on a breach, hosts in flight are canceled")
    elif on_breach:
        details.append("on a breach, hosts in flight finish")
    if details:
        lines.append("  " + "; ".join(details))
    return lines


def budget_text(budget: dict[str, Any]) -> str:
    """A running rollout's budget: ``2 of 5 failures; at most 1 per batch``."""
    failures = int(budget.get("failures") or 0)
    limit = budget.get("max_failures")
    if limit is None:
        text = f"{plural(failures, 'failure')} (no limit)"
    else:
        text = f"{failures} of {limit} failure{'s' if limit != 1 else ''}"
        if failures > limit:
            text += " (breached)"
    per_batch = budget.get("batch_max_failures")
    if per_batch is not None:
        text += f"; at most {per_batch} per batch"
    return text


def _until(value: str | None, now: datetime | None) -> str:
    moment = parse_time(value)
    if moment is None:
        return ""
    left = (moment - (now or datetime.now(UTC))).total_seconds()
    text = f" until {format_time(value)}"
    return text + (f" ({span_text(left)} left)" if left > 0 else "")


def gate_wait_text(view: dict[str, Any], now: datetime | None = None) -> str | None:
    """What the rollout waits for, and what to do about it; None when it
    waits for nothing."""
    rollout_id = view.get("id", "ID")
    status = view.get("status")
    if status in FINAL_STATUSES:
        return None
    gate = view.get("gate") or {}
    kind = str(gate.get("kind") or "")
    after = gate.get("after_batch")
    where = f" after batch {after}" if after is not None else ""
    name = gate.get("name") or gate.get("analysis") or ""
    if status == "paused":
        if kind == "analysis" and gate.get("inconclusive"):
            return (
                f"analysis {name}{where} is inconclusive: go on with squall rollout resume "
                f"{rollout_id}, or stop with squall rollout abort {rollout_id}"
            )
        return f"paused: resume with squall rollout resume {rollout_id}"
    if not kind:
        return None
    until = _until(gate.get("until"), now)
    if kind == "approval":
        inquiry = gate.get("inquiry") or "ID"
        return f"waiting for approval{where}{until}: squall inquiry respond {inquiry}"
    if kind == "hold":
        return f"held{where}: continue with squall rollout resume {rollout_id}"
    if kind == "pause":
        return f"soaking{where}{until}"
    if kind == "analysis":
        label = f"analysis {name}" if name else "analysis"
        return f"{label} running{where}{until}"
    if kind == "window":
        opens = window_opens_text(gate.get("until"), gate.get("timezone"), now)
        return f"waiting for the window: {opens}" if opens else "waiting for the window to open"
    return f"waiting at a {kind} gate{where}{until}"


def window_opens_text(
    until: str | None, zone_name: str | None = None, now: datetime | None = None
) -> str | None:
    """When a closed time window opens: ``opens 22:00 Europe/Paris (in 3h 12m)``,
    in the window's time zone when known (else the local one), with the day
    when it is not today there."""
    moment = parse_time(until)
    if moment is None:
        return None
    now = now or datetime.now(UTC)
    zone: tzinfo | None = None
    if zone_name:
        try:
            zone = zoneinfo.ZoneInfo(zone_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = None
    local = moment.astimezone(zone)
    same_day = local.date() == now.astimezone(zone).date()
    when = local.strftime("%H:%M" if same_day else "%a %d %b %H:%M")
    label = zone_name if zone is not None else local.strftime("%Z")
    text = f"opens {when} {label}".rstrip()
    left = (moment - now).total_seconds()
    return text + (f" (in {span_text(left)})" if left > 0 else "")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def failure_groups(view: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Failed hosts grouped by their error (their status when they have
    none): ``(error, hosts)``, the largest group first, then in the order
    met."""
    groups: dict[str, list[str]] = {}
    for batch in view.get("batches") or []:
        for host in batch.get("hosts") or []:
            status = host.get("status")
            error = host.get("error")
            if status not in FAILED_HOST_STATUSES and not (error and status != "succeeded"):
                continue
            key = _first_line(str(error)) if error else str(status)
            groups.setdefault(key or str(status), []).append(str(host.get("name")))
    return sorted(groups.items(), key=lambda item: -len(item[1]))


def new_hosts_text(names: Sequence[str]) -> str | None:
    if not names:
        return None
    n = len(names)
    were = "was" if n == 1 else "were"
    verb = "matches" if n == 1 else "match"
    return (
        f"{plural(n, 'host')} {verb} the target now that {were} not in the plan: "
        f"{names_text(names)}"
    )


def batch_line(batch: dict[str, Any], width: int = BAR_WIDTH) -> Text:
    """``batch 1  running  [████░░░░] 8/20 7 succeeded, 1 failed, 12 running``."""
    status = str(batch.get("status") or "?")
    text = Text(f"batch {batch.get('index', '?')}  ", style="bold")
    text.append(f"{status:<8} ", style=_BATCH_STYLES.get(status, ""))
    text.append_text(progress_text(batch.get("counts") or {}, width=width))
    return text


def rollout_status_text(status: str | None) -> Text:
    status = status or "?"
    return Text(status.replace("_", " "), style=_ROLLOUT_STYLES.get(status, ""))


# -- rolling back ---------------------------------------------------------------------------


def rolling_back(view: dict[str, Any]) -> bool:
    """Whether the rollout is being rolled back now (its status stays
    running or paused meanwhile)."""
    rollback = view.get("rollback") or {}
    if not rollback or view.get("status") in FINAL_STATUSES:
        return False
    return rollback.get("state") not in ("requested", "done")


def _undo_counts(batch: dict[str, Any]) -> tuple[int, int, int]:
    """A batch's hosts to undo, undone and being undone."""
    hosts = batch.get("hosts")
    if hosts:
        total = sum(1 for h in hosts if h.get("status") not in NOT_UNDONE_STATUSES)
        done = sum(1 for h in hosts if h.get("status") == "rolled_back")
        undoing = sum(
            1 for h in hosts if h.get("phase") == "rollback" and h.get("status") == "running"
        )
        return total, done, undoing
    counts = batch.get("counts") or {}
    total = int(counts.get("total", 0)) - sum(int(counts.get(s, 0)) for s in NOT_UNDONE_STATUSES)
    return max(0, total), int(counts.get("rolled_back", 0)), 0


def rollback_text(view: dict[str, Any]) -> str | None:
    """``rolling back (stopped at the first failure): 3 of 12 hosts rolled
    back``; ``rolled back (...)`` once done; None without a rollback."""
    rollback = view.get("rollback")
    if not rollback:
        return None
    reason = rollback.get("reason")
    why = f" ({reason})" if reason else ""
    status = view.get("status")
    if rollback.get("state") == "requested" and status not in FINAL_STATUSES:
        return f"rollback requested{why}"
    if rolling_back(view):
        head = "rolling back" + (" automatically" if rollback.get("automatic") else "")
    elif status == "rolled_back":
        head = "rolled back"
    else:
        head = f"rollback {str(status or 'ended').replace('_', ' ')}"
    counted = [_undo_counts(b) for b in view.get("batches") or []]
    done = sum(c[1] for c in counted)
    total = rollback.get("hosts")
    if not isinstance(total, int):
        total = sum(c[0] for c in counted)
    return f"{head}{why}: {done} of {plural(total, 'host')} rolled back"


def rollback_batch_lines(view: dict[str, Any], width: int = BAR_WIDTH) -> list[Text]:
    """While (and after) rolling back: a bar per batch of its hosts undone,
    in the order they are undone (the last batch first)."""
    rollback = view.get("rollback")
    if not rollback or rollback.get("state") == "requested":
        return []
    current = rollback.get("batch") if rolling_back(view) else None
    lines = []
    for batch in reversed(view.get("batches") or []):
        total, done, undoing = _undo_counts(batch)
        if not total:
            continue
        index = batch.get("index", "?")
        if done == total:
            label = "undone"
        elif current is not None and index == current:
            label = "undoing"
        elif isinstance(current, int) and isinstance(index, int) and index > current:
            label = "done"  # passed, some hosts not undone
        else:
            label = ""
        text = Text(f"batch {index}  ", style="bold")
        text.append(f"{label:<8} ", style="yellow" if label == "undoing" else "")
        filled = int(width * done / total)
        text.append("[")
        text.append("█" * filled, style="yellow")
        text.append("░" * (width - filled), style="dim")
        text.append(f"] {done}/{total} rolled back")
        if undoing:
            text.append(f", {undoing} undoing", style="cyan")
        lines.append(text)
    return lines


# -- analysis -------------------------------------------------------------------------------


def value_text(value: Any, width: int = 12) -> str:
    """A measured value, short: ``0.0123``, ``[0.1, 0.2]``, ``NaN``, ``—``."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) == 1:
        return value_text(value[0], width)
    if isinstance(value, list):
        text = "[" + ", ".join(value_text(v, width) for v in value) + "]"
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(value: Any) -> float | None:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def sparkline(values: Sequence[Any]) -> str:
    """``▁▃█``: each numeric value's height between the smallest and the
    largest; a space for a value that is not a number."""
    numbers = [_number(v) for v in values]
    known = [n for n in numbers if n is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    out = []
    for n in numbers:
        if n is None:
            out.append(" ")
        elif high == low:
            out.append(_SPARKS[len(_SPARKS) // 2 - 1])
        else:
            out.append(_SPARKS[round((n - low) / (high - low) * (len(_SPARKS) - 1))])
    return "".join(out)


def analysis_lines(view: dict[str, Any]) -> list[Text]:
    """Each analysis run in two lines: ``analysis error-rate after batch 0:
    failed — 2 of 3 measurements failed (limit 1)``, then its values, each
    with its outcome: ``▁▆█  0.002 ✓  0.07 ✗  0.09 ✗``."""
    lines = []
    for run in view.get("analysis") or []:
        status = str(run.get("status") or "?")
        after = run.get("after_batch")
        where = f" after batch {after}" if after is not None else ""
        head = Text(f"analysis {run.get('name') or '?'}{where}: ", style="bold")
        head.append(status, style=_ANALYSIS_STYLES.get(status, ""))
        if run.get("summary"):
            head.append(f" — {run['summary']}")
        lines.append(head)
        measurements = run.get("measurements") or []
        if not measurements:
            continue
        values = Text("  ")
        spark = sparkline([m.get("value") for m in measurements])
        if spark.strip():
            values.append(spark + "  ", style="cyan")
        for i, m in enumerate(measurements):
            mark, style = _OUTCOME_MARKS.get(str(m.get("outcome")), ("·", ""))
            if i:
                values.append("  ")
            values.append(value_text(m.get("value")))
            values.append(f" {mark}", style=style)
        lines.append(values)
    return lines


# -- outputs, log, what to do next --------------------------------------------------------


def output_lines(
    view: dict[str, Any], shown: int = OUTPUTS_SHOWN, lines_shown: int = OUTPUT_LINES_SHOWN
) -> list[Text]:
    """Identical per-host outputs folded: ``812 hosts: active (running)``,
    the hosts under it; the largest groups first, as the API gives them."""
    outputs = view.get("outputs") or []
    out: list[Text] = []
    for entry in outputs[:shown]:
        count = int(entry.get("count") or 0)
        text = str(entry.get("output") or "").rstrip()
        lines = text.splitlines() or ["(no output)"]
        head = Text(f"{plural(count, 'host')}:", style="bold")
        if len(lines) == 1:
            head.append(f" {lines[0]}")
            out.append(head)
        else:
            out.append(head)
            out += [Text(f"    {line}") for line in lines[:lines_shown]]
            if len(lines) > lines_shown:
                more = len(lines) - lines_shown
                out.append(Text(f"    … {plural(more, 'more line')}", style="dim"))
        hosts = [str(h) for h in entry.get("hosts") or []][:HOSTS_SHOWN]
        if hosts:
            names = ", ".join(hosts)
            if count > len(hosts):
                names += f" and {count - len(hosts)} more"
            out.append(Text(f"    {names}", style="dim"))
    if len(outputs) > shown:
        rest = len(outputs) - shown
        out.append(Text(f"and {plural(rest, 'other output')}", style="dim"))
    return out


def log_lines(view: dict[str, Any], last: int = LOG_LINES_SHOWN) -> list[Text]:
    """The last decisions of the rollout's log (newest last), with who
    made them."""
    out = []
    for entry in (view.get("log") or [])[-last:] if last else []:
        message = str(entry.get("message") or entry.get("kind") or "")
        user = entry.get("user")
        if user and str(user) not in message:
            message += f" ({user})"
        text = Text(f"{format_time(entry.get('at'))}  ", style="dim")
        text.append(message)
        out.append(text)
    return out


def next_steps(view: dict[str, Any]) -> list[str]:
    """After a rollout stopped: how to retry its failed hosts, and how to
    roll it back when its spec has a rollback (``has_rollback``)."""
    status = view.get("status")
    if status not in ("failed", "aborted") or view.get("rollback"):
        return []
    rollout_id = view.get("id", "ID")
    counts = view.get("counts") or {}
    retried = sum(int(counts.get(s, 0)) for s in RETRIED_HOST_STATUSES)
    skipped = int(counts.get("skipped", 0))
    steps = []
    if retried:
        step = f"retry the failed hosts: squall rollout retry {rollout_id}"
        if skipped:
            step += f" (--skipped: also the {plural(skipped, 'skipped host')})"
        steps.append(step)
    elif skipped:
        hosts = plural(skipped, "skipped host")
        steps.append(f"run the {hosts}: squall rollout retry {rollout_id} --skipped")
    if view.get("has_rollback"):
        steps.append(f"roll back: squall rollout rollback {rollout_id}")
    return steps


def change_line(view: dict[str, Any]) -> str:
    """One line for a watch off a terminal, printed when it changes."""
    parts = [f"{view.get('status')}", f"batch {view.get('batch')}"]
    parts.append(counts_text(view.get("counts") or {}).plain)
    parts.append(budget_text(view.get("budget") or {}))
    undo = rollback_text(view) if view.get("rollback") else None
    if undo:
        parts.append(undo)
    waiting = gate_wait_text(view)
    if waiting:
        parts.append(waiting)
    return "; ".join(parts)


def render_status(view: dict[str, Any], now: datetime | None = None) -> Group:
    """The whole status of a rollout, for people."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("rollout", str(view.get("id", "")))
    grid.add_row("name", str(view.get("name", "")))
    grid.add_row("status", rollout_status_text(view.get("status")))
    batches = view.get("batches") or []
    if batches and view.get("batch") is not None:
        grid.add_row("batch", f"{view['batch']} (of 0-{len(batches) - 1})")
    grid.add_row("hosts", counts_text(view.get("counts") or {}))
    grid.add_row("budget", budget_text(view.get("budget") or {}))
    undo = rollback_text(view)
    if undo:
        grid.add_row("rollback", Text(undo, style="yellow"))
    waiting = gate_wait_text(view, now)
    if waiting:
        grid.add_row("waiting", Text(waiting, style="magenta"))
    for label, key in (("created", "created_at"), ("started", "started_at"), ("ended", "ended_at")):
        if view.get(key):
            grid.add_row(label, format_time(view[key]))
    if view.get("error"):
        grid.add_row("error", Text(str(view["error"]), style="red"))
    parts: list[Any] = [grid, Text()]
    parts += [batch_line(b) for b in batches]
    undoing = rollback_batch_lines(view)
    if undoing:
        parts += [Text(), Text("rollback:", style="bold"), *undoing]
    analyses = analysis_lines(view)
    if analyses:
        parts += [Text(), *analyses]
    groups = failure_groups(view)
    if groups:
        parts += [Text(), Text("failures:", style="bold")]
        for error, hosts in groups:
            parts.append(Text(f"  {plural(len(hosts), 'host')}: {error}", style="red"))
            parts.append(Text(f"    {names_text(hosts)}", style="dim"))
    outputs = output_lines(view)
    if outputs:
        parts += [Text(), Text("outputs:", style="bold"), *(_indented(t) for t in outputs)]
    extra = new_hosts_text(view.get("new_hosts") or [])
    if extra:
        parts += [Text(), Text(extra, style="yellow")]
    log = log_lines(view)
    if log:
        parts += [Text(), Text("log:", style="bold"), *(_indented(t) for t in log)]
    steps = next_steps(view)
    if steps:
        parts += [Text(), *(Text(step, style="cyan") for step in steps)]
    return Group(*parts)


def _indented(text: Text) -> Text:
    return Text("  ").append_text(text)


# -- talking to the API -----------------------------------------------------------------


def _read_spec(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.UsageError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return {"spec_text": text, "source": path.name}


def _get(client: Client, rollout_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.request("GET", f"/api/v1/rollouts/{_q(rollout_id)}")
    return found


class _WaitTimeout(Exception):
    def __init__(self, view: dict[str, Any]) -> None:
        super().__init__("timeout")
        self.view = view


class _Display:
    """How a watch shows itself: a live redraw on a terminal, a line per
    change elsewhere, nothing when JSON or YAML is to be printed."""

    def __init__(self, mode: str) -> None:
        self.mode = mode  # "live" | "lines" | "quiet"
        self._live: Live | None = None
        self._last = ""

    def __enter__(self) -> _Display:
        if self.mode == "live":
            self._live = Live(
                Text(""), console=out_console(), auto_refresh=False, redirect_stderr=False
            )
            self._live.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def update(self, view: dict[str, Any]) -> None:
        if self._live is not None:
            self._live.update(render_status(view), refresh=True)
        elif self.mode == "lines":
            line = change_line(view)
            if line != self._last:
                self._last = line
                stamp = datetime.now().strftime("%H:%M:%S")
                click.echo(f"{stamp} {line}")


def _display_mode(fmt: str | None) -> str:
    if fmt:
        return "quiet"
    return "live" if out_console().is_terminal else "lines"


def _watch(
    client: Client, view: dict[str, Any], display: _Display, timeout_wait: float | None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_wait if timeout_wait is not None else None
    with display:
        while True:
            display.update(view)
            if view.get("status") in FINAL_STATUSES:
                return view
            pause = POLL_SECONDS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _WaitTimeout(view)
                pause = min(pause, left)
            time.sleep(pause)
            view = _get(client, str(view["id"]))


def _watch_to_end(
    ctx: click.Context,
    client: Client,
    view: dict[str, Any],
    *,
    fmt: str | None,
    timeout_wait: float | None,
) -> None:
    """Follow the rollout until it ends, then exit: 0 only when it succeeded."""
    rollout_id = view["id"]
    mode = _display_mode(fmt)
    try:
        final = _watch(client, view, _Display(mode), timeout_wait)
    except KeyboardInterrupt:
        note(
            f"\ninterrupted: rollout {rollout_id} carries on; "
            f"abort it with: squall rollout abort {rollout_id}"
        )
        ctx.exit(EXIT_INTERRUPTED)
    except _WaitTimeout as exc:
        note(
            f"rollout {rollout_id} is still {exc.view.get('status')} after {timeout_wait:g}s; "
            f"follow it with: squall rollout status {rollout_id} --watch"
        )
        emit(exc.view, fmt)
        ctx.exit(EXIT_WAIT_TIMEOUT)
    if not emit(final, fmt):
        if mode == "lines":
            show(render_status(final))
        click.echo(f"rollout {rollout_id} {final.get('status')}")
    ctx.exit(0 if final.get("status") == "succeeded" else EXIT_ERROR)


# -- the commands ---------------------------------------------------------------------------

SPEC = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def rollout() -> None:
    """Rollouts: an action over many hosts, a batch at a time, with gates
    between batches and failure budgets."""


@rollout.command("plan")
@click.argument("spec", type=SPEC)
@format_options
@click.pass_context
def rollout_plan(ctx: click.Context, spec: Path, fmt: str | None) -> None:
    """Show how SPEC's hosts fall in batches, its budget, gates and the
    time it should take, without running anything."""
    found = client_of(ctx).request("POST", "/api/v1/rollouts/plan", body=_read_spec(spec))
    if emit(found, fmt):
        return
    batches = found.get("batches") or []
    count = found.get("count", len(found.get("hosts") or []))
    show(
        Text.assemble(
            ("rollout ", "bold"),
            (str(found.get("name", "")), "bold"),
            f": {plural(count, 'host')} match {found.get('target', '')!r}, "
            f"in {plural(len(batches), 'batch', 'batches')}",
        )
    )
    window = found.get("mode") == "window"
    for line in window_mode_lines(found):
        show(line)
    for gate in found.get("before_first") or []:
        show(f"{'before each host' if window else 'before batch 0'}: {gate_text(gate)}")
    print_table(
        plan_columns(found),
        plan_rows(found),
        no_wrap=("batch", "size"),
        empty="no host matches the target",
    )
    for line in plan_budget_lines(found.get("budget") or {}):
        show(line)
    show(f"estimated duration: {duration_text(found.get('estimated_seconds'))}")
    for line in found.get("notes") or []:
        note(f"note: {line}")


@rollout.command("start")
@click.argument("spec", type=SPEC)
@format_options
@click.option(
    "--wait", is_flag=True, help="Follow the rollout until it ends (exit 0 if it succeeded)."
)
@click.option(
    "--timeout-wait",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="With --wait: stop waiting after this long (exit status 124); the rollout carries on.",
)
@click.pass_context
def rollout_start(
    ctx: click.Context, spec: Path, fmt: str | None, wait: bool, timeout_wait: float | None
) -> None:
    """Start the rollout SPEC describes."""
    client = client_of(ctx)
    view = client.request("POST", "/api/v1/rollouts", body=_read_spec(spec))
    if wait:
        _watch_to_end(ctx, client, view, fmt=fmt, timeout_wait=timeout_wait)
        return
    if emit(view, fmt):
        return
    total = (view.get("counts") or {}).get("total", 0)
    batches = len(view.get("batches") or [])
    click.echo(
        f"rollout {view['id']} started "
        f"({plural(total, 'host')} in {plural(batches, 'batch', 'batches')})"
    )
    note(f"follow it with: squall rollout status {view['id']} --watch")


@rollout.command("status")
@click.argument("rollout_id", metavar="ID")
@format_options
@click.option(
    "--watch", is_flag=True, help="Follow it until it ends (exit 0 only if it succeeded)."
)
@click.pass_context
def rollout_status(ctx: click.Context, rollout_id: str, fmt: str | None, watch: bool) -> None:
    """How rollout ID is going: its batches, budget, gate and failures."""
    client = client_of(ctx)
    view = _get(client, rollout_id)
    if watch:
        _watch_to_end(ctx, client, view, fmt=fmt, timeout_wait=None)
        return
    if not emit(view, fmt):
        show(render_status(view))


@rollout.command("list")
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=50, show_default=True)
@format_options
@click.pass_context
def rollout_list(ctx: click.Context, limit: int, fmt: str | None) -> None:
    """Rollouts, newest first."""
    rows = client_of(ctx).request("GET", "/api/v1/rollouts", params={"limit": limit})
    if emit(rows, fmt):
        return
    print_table(
        ["id", "name", "status", "hosts", "created"],
        [
            [
                str(r.get("id", "")),
                str(r.get("name", "")),
                rollout_status_text(r.get("status")),
                counts_text(r.get("counts") or {}),
                format_time(r.get("created_at")),
            ]
            for r in rows
        ],
        no_wrap=("id", "status", "created"),
        empty="no rollouts",
    )
    if len(rows) >= limit:
        note(f"only the newest {limit} rollouts are shown; use --limit for more")


def _steer(verb: str, help_text: str) -> None:
    @rollout.command(verb, help=help_text)
    @click.argument("rollout_id", metavar="ID")
    @format_options
    @click.pass_context
    def command(ctx: click.Context, rollout_id: str, fmt: str | None) -> None:
        view = client_of(ctx).request("POST", f"/api/v1/rollouts/{_q(rollout_id)}/{verb}")
        if not emit(view, fmt):
            click.echo(f"rollout {view.get('id', rollout_id)} {view.get('status')}")


_steer("pause", "Pause rollout ID: no new host starts until it is resumed.")
_steer("resume", "Resume rollout ID after a pause or a hold gate.")
_steer("abort", "Abort rollout ID: no new host starts, and it ends as aborted.")


def _follow_note(rollout_id: str) -> None:
    note(f"follow it with: squall rollout status {rollout_id} --watch")


@rollout.command("rollback")
@click.argument("rollout_id", metavar="ID")
@format_options
@click.pass_context
def rollout_rollback(ctx: click.Context, rollout_id: str, fmt: str | None) -> None:
    """Undo rollout ID with its spec's rollback.

    The rollback action runs on every host the change was started on, the
    last batch first. A running rollout stops first; one that has ended,
    even successfully, is undone too."""
    view = client_of(ctx).request("POST", f"/api/v1/rollouts/{_q(rollout_id)}/rollback", body={})
    if emit(view, fmt):
        return
    rid = view.get("id", rollout_id)
    click.echo(f"rollout {rid}: {rollback_text(view) or view.get('status')}")
    _follow_note(rid)


@rollout.command("retry")
@click.argument("rollout_id", metavar="ID")
@click.option(
    "--skipped",
    is_flag=True,
    help="Also run the hosts skipped because the rollout stopped.",
)
@format_options
@click.pass_context
def rollout_retry(ctx: click.Context, rollout_id: str, skipped: bool, fmt: str | None) -> None:
    """Retry the failed hosts of rollout ID.

    Once it has ended, its failed, unreachable, timed-out and canceled hosts
    run again; the budget counts the hosts as they are then."""
    view = client_of(ctx).request(
        "POST", f"/api/v1/rollouts/{_q(rollout_id)}/retry", body={"skipped": skipped}
    )
    if emit(view, fmt):
        return
    rid = view.get("id", rollout_id)
    pending = int((view.get("counts") or {}).get("pending", 0))
    again = f" ({plural(pending, 'host')} to run again)" if pending else ""
    click.echo(f"rollout {rid} {view.get('status')}{again}")
    _follow_note(rid)


@rollout.command("skip")
@click.argument("rollout_id", metavar="ID")
@click.argument("hosts", metavar="HOST...", nargs=-1, required=True)
@format_options
@click.pass_context
def rollout_skip(
    ctx: click.Context, rollout_id: str, hosts: tuple[str, ...], fmt: str | None
) -> None:
    """Skip hosts of rollout ID that have not started."""
    view = client_of(ctx).request(
        "POST", f"/api/v1/rollouts/{_q(rollout_id)}/skip", body={"hosts": list(hosts)}
    )
    if emit(view, fmt):
        return
    rid = view.get("id", rollout_id)
    click.echo(f"rollout {rid}: skipped {names_text(list(hosts))}")
