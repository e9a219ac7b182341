"""Events Squall emits about itself: finished executions, notifications,
datastore changes and sensor processes.

Each is stored as a trigger instance inside the transaction of the change it
reports, so it is never lost nor invented. Internal events are stored only
when an enabled rule listens to their trigger type: a busy system would
otherwise double its writes for events nothing reacts to. Webhook and sensor
events are always stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from squall import masks
from squall.core import triggers as t
from squall.core.executions import Status
from squall.core.timestamps import iso
from squall.store import triggers as trigger_store


def _masked(row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The execution's parameters and result with its secrets masked."""
    from squall.services.executions import execution_secrets, masked_parameters

    try:
        secrets = execution_secrets(row["parameters"], row["action"])
        parameters = masked_parameters(row["parameters"], row["action"])
    except Exception:  # an action whose runner is gone: show no parameters rather than fail
        secrets, parameters = [], {}
    return parameters, masks.masker(secrets).data(row["result"])


def executions_finished(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Emit the action trigger (and notify triggers) for executions that just
    reached a final status."""
    rows = list(rows)
    if not rows:
        return
    events: list[tuple[str, Any, dict[str, Any] | None]] = []
    if trigger_store.listened(conn, t.ACTION_TRIGGER):
        for row in rows:
            parameters, result = _masked(row)
            payload = {
                "execution_id": row["id"],
                "status": row["status"],
                "start_timestamp": iso(row["start_timestamp"]),
                "action_name": row["action"].get("name"),
                "action_ref": row["action_ref"],
                "runner_ref": row["runner_type"],
                "parameters": parameters,
                "result": result,
            }
            events.append((t.ACTION_TRIGGER, payload, {"execution_id": row["id"]}))
    if trigger_store.listened(conn, t.NOTIFY_TRIGGER):
        for row in rows:
            events.extend(_notifications(row))
    trigger_store.create_instances(conn, events)


def _notifications(row: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any] | None]]:
    notify = row["context"].get("notify") or row["action"].get("notify") or {}
    status = row["status"]
    sections = ["on-complete"]
    sections.append("on-success" if status == Status.SUCCEEDED else "on-failure")
    out: list[tuple[str, Any, dict[str, Any] | None]] = []
    for section in sections:
        spec = notify.get(section)
        if not isinstance(spec, dict):
            continue
        for route in spec.get("routes") or spec.get("channels") or ["notify"]:
            payload = {
                "execution_id": row["id"],
                "status": status,
                "start_timestamp": iso(row["start_timestamp"]),
                "end_timestamp": iso(row["end_timestamp"]),
                "action_ref": row["action_ref"],
                "runner_ref": row["runner_type"],
                "channel": route,
                "route": route,
                "message": spec.get("message") or "",
                "data": spec.get("data") or {},
            }
            out.append((t.NOTIFY_TRIGGER, payload, {"execution_id": row["id"]}))
    return out


def emit_internal(conn: Connection, type_ref: str, payload: Any) -> None:
    """Store an event about Squall itself when a rule listens to its type."""
    if trigger_store.listened(conn, type_ref):
        trigger_store.create_instance(conn, type_ref, payload, {"source": "squall"})
