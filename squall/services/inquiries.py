"""Inquiries: executions of the ``inquirer`` runner waiting for a person.

As in StackStorm an inquiry is not a record of its own: it is an execution
that ended its run ``pending``, whose result holds the question (``schema``,
``users``, ``roles``, ``route``, ``ttl``). Three things happen to it, each in
one transaction:

* it becomes pending (the worker records it): :func:`entered_pending` queues
  its expiry as a work item due in ``ttl`` minutes and emits
  ``core.st2.generic.inquiry``;
* someone answers: :func:`respond` checks who may answer and validates the
  answer against the schema, then the execution succeeds with
  ``result.response`` and the expiry item is removed;
* nobody answers in time: :class:`InquiryExpirer` takes the due expiry items
  and marks the inquiries still pending ``timeout``.

The execution ending is reported with :func:`events.executions_finished`,
which is also how a parent workflow learns that its inquiry was answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import jsonschema
from sqlalchemy.engine import Connection

from squall.core import params as core_params
from squall.core.executions import Status
from squall.core.triggers import INQUIRY_TRIGGER
from squall.errors import Conflict, Forbidden, InvalidInput, NotFound, ParameterError
from squall.runners.inquirer import DEFAULT_SCHEMA
from squall.services import events
from squall.services.bus import Bus, wait_for_wake
from squall.services.scheduler import until
from squall.store import audit, queue
from squall.store import executions as exe_store
from squall.store import rbac as rbac_store
from squall.store.db import Database

__all__ = [
    "EXPIRE",
    "RUNNER",
    "InquiryExpirer",
    "entered_pending",
    "expire_due",
    "finish_canceled",
    "get",
    "inquiry_view",
    "list_pending",
    "respond",
    "validate_response",
]

log = logging.getLogger(__name__)

RUNNER = "inquirer"
EXPIRE = "inquiry-expire"  # work topic: one item per pending inquiry that has a ttl
BATCH = 256
# New expiry items wake the expirer at once; this is only the safety net.
POLL_SECONDS = 30.0


def _question(row: dict[str, Any]) -> dict[str, Any]:
    result = row.get("result")
    return result if isinstance(result, dict) else {}


def _minutes(value: Any) -> float:
    """The inquiry's ttl in minutes; anything unusable means "no expiry"."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def inquiry_view(row: dict[str, Any]) -> dict[str, Any]:
    """An inquiry as StackStorm's API shows it (InquiryResponseAPI), and its
    parent execution when it runs inside a workflow."""
    question = _question(row)
    view: dict[str, Any] = {
        "id": row["id"],
        "route": question.get("route") or "",
        "ttl": question.get("ttl"),
        "users": question.get("users") or [],
        "roles": question.get("roles") or [],
        "schema": question.get("schema") or DEFAULT_SCHEMA,
    }
    if row.get("parent_id"):
        view["parent"] = row["parent_id"]
    return view


# -- becoming pending ------------------------------------------------------------------


def entered_pending(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """For executions that just became ``pending``, in the transaction that
    recorded it: queue the expiry of each inquiry and announce it."""
    for row in rows:
        if row["runner_type"] != RUNNER or row["status"] != Status.PENDING:
            continue
        question = _question(row)
        ttl = _minutes(question.get("ttl"))
        if ttl > 0:  # as in StackStorm, a ttl of 0 or less never expires
            queue.enqueue(conn, EXPIRE, row["id"], delay=ttl * 60.0)
        route = question.get("route")
        events.emit_internal(
            conn,
            INQUIRY_TRIGGER,
            {"id": row["id"], "route": route if isinstance(route, str) else ""},
        )


# -- reading -------------------------------------------------------------------------


def _pending(conn: Connection, inquiry_id: str) -> dict[str, Any]:
    """The execution behind a pending inquiry: NotFound or Conflict otherwise."""
    row = exe_store.get_many(conn, [inquiry_id]).get(inquiry_id)
    if row is None:
        raise NotFound(f"no inquiry with id {inquiry_id!r}")
    if row["runner_type"] != RUNNER:
        raise NotFound(
            f"no inquiry with id {inquiry_id!r}: execution {inquiry_id} is a run of "
            f"{row['action_ref']} ({row['runner_type']} runner), not an inquiry"
        )
    status = row["status"]
    if status == Status.PENDING:
        return row
    if status == Status.TIMEOUT:
        raise Conflict(f"inquiry {inquiry_id} timed out and can no longer be answered")
    if status == Status.SUCCEEDED:
        raise Conflict(f"inquiry {inquiry_id} has already been answered")
    if status in (Status.REQUESTED, Status.SCHEDULED, Status.DELAYED, Status.RUNNING):
        raise Conflict(f"inquiry {inquiry_id} is {status}: it is not asking yet, try again")
    raise Conflict(f"inquiry {inquiry_id} is {status}; only a pending inquiry can be answered")


def get(conn: Connection, inquiry_id: str) -> dict[str, Any]:
    """The row of a pending inquiry (StackStorm shows only those)."""
    return _pending(conn, inquiry_id)


def list_pending(
    conn: Connection, *, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Pending inquiries, newest first, and how many there are."""
    return exe_store.list_(
        conn, status=Status.PENDING.value, runner=RUNNER, limit=limit, offset=offset
    )


# -- answering ------------------------------------------------------------------------


def validate_response(inquiry_id: str, schema: Any, response: Any) -> Any:
    """``response`` with the schema's defaults filled in; InvalidInput naming
    the field and the rule it breaks when it does not satisfy ``schema``.

    The schema is read as StackStorm reads it: JSON-schema draft 4 where a
    property may also say ``required: true``, and optional properties may be
    null."""
    if not isinstance(response, dict):
        raise InvalidInput(
            f"the response to inquiry {inquiry_id} must be a JSON object, "
            f'e.g. {{"continue": true}}; got {type(response).__name__}'
        )
    if not isinstance(schema, dict):
        raise Conflict(f"inquiry {inquiry_id} cannot be answered: its schema is not an object")
    try:
        values, _ = core_params.validate_parameters({"response": schema}, {"response": response})
    except ParameterError as exc:
        raise InvalidInput(f"the response to inquiry {inquiry_id} is invalid: {exc.rule}") from None
    except (jsonschema.exceptions.SchemaError, jsonschema.exceptions.UnknownType) as exc:
        reason = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise Conflict(
            f"inquiry {inquiry_id} cannot be answered: its schema is invalid ({reason})"
        ) from None
    return values["response"]


def respond(conn: Connection, inquiry_id: str, response: Any, user: str | None) -> dict[str, Any]:
    """Answer a pending inquiry as ``user``: the execution succeeds with
    ``result.response``. Returns the execution's new row."""
    row = _pending(conn, inquiry_id)
    question = _question(row)
    users = question.get("users") or []
    roles = question.get("roles") or []
    # As in StackStorm: when users or roles are listed, the responder must be
    # one of the users or hold one of the roles.
    if (users or roles) and user not in users:
        held = set(rbac_store.role_names_of(conn, user)) if user and roles else set()
        if not held & set(roles):
            allowed = ", ".join([*(str(u) for u in users), *(f"role {r}" for r in roles)])
            raise Forbidden(
                f"user {user!r} may not respond to inquiry {inquiry_id}; it is for: {allowed}"
            )
    answer = validate_response(inquiry_id, question.get("schema") or DEFAULT_SCHEMA, response)
    done = exe_store.set_status(
        conn,
        row,
        Status.SUCCEEDED,
        result={**question, "response": answer},
        extra_context={"responded_by": user},
    )
    queue.ack_ref(conn, EXPIRE, inquiry_id)
    events.executions_finished(conn, [done])
    rollout = (row["context"] or {}).get("rollout") or {}
    audit.record(
        conn,
        actor=user,
        kind="inquiry",
        action="respond",
        target=inquiry_id,
        details={
            "response": answer,
            "route": question.get("route"),
            **({"rollout": rollout.get("id")} if rollout else {}),
        },
    )
    return done


# -- ending without an answer -----------------------------------------------------------


def _canceled_change(
    row: dict[str, Any],
) -> tuple[dict[str, Any], Status, Any, dict[str, Any] | None]:
    by = row["context"].get("canceled_by")
    error = f"canceled by {by}" if by else "canceled by request"
    return row, Status.CANCELED, {**_question(row), "error": error}, None


def expire_due(conn: Connection, limit: int = BATCH) -> int:
    """Time out the pending inquiries whose ttl ran out; returns how many
    expiry items were taken."""
    items = queue.take(conn, EXPIRE, limit=limit)
    if not items:
        return 0
    rows = exe_store.get_many(conn, (i.ref for i in items))
    changes: list[tuple[dict[str, Any], Status, Any, dict[str, Any] | None]] = []
    for item in items:
        row = rows.get(item.ref)
        if row is None or row["runner_type"] != RUNNER:
            continue  # collected meanwhile
        if row["status"] == Status.PENDING:
            question = _question(row)
            ttl = _minutes(question.get("ttl"))
            unit = "minute" if ttl == 1 else "minutes"
            error = f"inquiry expired after {ttl:g} {unit} without a response"
            changes.append((row, Status.TIMEOUT, {**question, "error": error}, None))
        elif row["status"] == Status.CANCELING:
            # A cancel whose effect was lost (a crash right after it committed).
            changes.append(_canceled_change(row))
    events.executions_finished(conn, exe_store.set_status_many(conn, changes))
    return len(items)


def finish_canceled(conn: Connection, execution_id: str) -> bool:
    """A canceled inquiry has no runner to stop: it becomes ``canceled`` at
    once. False when ``execution_id`` is not an inquiry being canceled."""
    row = exe_store.get_many(conn, [execution_id]).get(execution_id)
    if row is None or row["runner_type"] != RUNNER or row["status"] != Status.CANCELING:
        return False
    if not any(entry.get("status") == Status.PENDING for entry in row["log"]):
        return False  # canceled before it was asking: the worker running it ends it
    queue.ack_ref(conn, EXPIRE, execution_id)
    events.executions_finished(conn, exe_store.set_status_many(conn, [_canceled_change(row)]))
    return True


class InquiryExpirer:
    """Times out inquiries nobody answered, and finishes canceled ones."""

    def __init__(self, db: Database, bus: Bus) -> None:
        self.db, self.bus = db, bus
        self._cancels: set[asyncio.Task[None]] = set()
        bus.on("cancel", self._on_cancel)

    def _on_cancel(self, execution_id: str) -> None:
        # Effects are delivered on the event loop, after the commit.
        task = asyncio.get_running_loop().create_task(self._cancel(execution_id))
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _cancel(self, execution_id: str) -> None:
        try:
            await self.db.write(finish_canceled, execution_id)
        except Exception:
            # The expiry item is still there: the inquiry is finished when it is due.
            log.exception("could not finish the cancel of inquiry %s", execution_id)

    async def run(self) -> None:
        wake = self.bus.waker(EXPIRE)
        try:
            while True:
                wake.clear()
                try:
                    taken = await self.db.write(expire_due, BATCH)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("expiring inquiries failed; retrying")
                    await asyncio.sleep(1.0)
                    continue
                if taken >= BATCH:
                    continue
                due = await self.db.read(queue.next_due, EXPIRE)
                timeout = POLL_SECONDS if due is None else min(POLL_SECONDS, until(due))
                await wait_for_wake(wake, timeout)
        finally:
            for task in list(self._cancels):
                task.cancel()
