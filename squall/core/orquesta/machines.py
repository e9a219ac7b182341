"""The task and workflow status machines of Orquesta, as data.

Each table maps a current status to the events that move it, grouped by the
status they lead to. An event not listed for a status leaves it unchanged.

Event names say what happened and, where the outcome depends on it, the
situation around it, exactly as Orquesta spells them:

* ``action_<status>`` — an action of a task reported a status. For a
  with-items task the other items are described too:
  ``_task_active`` / ``_task_dormant`` (is any other item still running?)
  then ``_items_paused``, ``_items_canceled``, ``_items_failed``,
  ``_items_incomplete`` or ``_items_completed``.
* ``task_<status>`` — a task reached a status; for the statuses that can
  end or suspend the workflow, ``_workflow_active`` / ``_workflow_dormant``
  (are other tasks running?) and, for a succeeded or remediated (failed but
  handled by a transition) task, ``_canceled``, ``_paused``, ``_incomplete``
  or ``_completed``.
* ``workflow_<status>`` — someone asked the workflow for a status; with
  ``_workflow_active`` / ``_workflow_dormant`` for pause and cancel, and
  ``_workflow_completed`` for a resume with nothing left to do. Tasks receive
  it too, with the ``_task_...`` / ``_items_...`` details of their items.
* ``task_continue_requested`` and the like — engine commands in ``do``.

Statuses are Orquesta's with Squall's spelling of "not started": ``unset``.
"""

from __future__ import annotations

from collections.abc import Mapping

from squall.core.workflow import RETRYING, UNSET

__all__ = [
    "ABENDED",
    "ACTIVE",
    "CANCELED_STATUSES",
    "COMPLETED",
    "PAUSED_STATUSES",
    "RUNNING",
    "STARTING",
    "TASK_MACHINE",
    "WORKFLOW_MACHINE",
    "item_event",
    "next_status",
    "task_event",
    "workflow_event",
]

REQUESTED = "requested"
SCHEDULED = "scheduled"
DELAYED = "delayed"
RUNNING_ = "running"
PENDING = "pending"
PAUSING = "pausing"
PAUSED = "paused"
RESUMING = "resuming"
SUCCEEDED = "succeeded"
FAILED = "failed"
EXPIRED = "timeout"
ABANDONED = "abandoned"
CANCELING = "canceling"
CANCELED = "canceled"

# Statuses grouped as the conductor asks about them.
STARTING = frozenset({REQUESTED, SCHEDULED, DELAYED, RUNNING_, PENDING})
RUNNING = frozenset({REQUESTED, SCHEDULED, DELAYED, RUNNING_, RESUMING, RETRYING})
ACTIVE = frozenset({REQUESTED, SCHEDULED, DELAYED, RUNNING_, RESUMING, PAUSING, CANCELING})
PAUSED_STATUSES = frozenset({PAUSING, PAUSED})
CANCELED_STATUSES = frozenset({CANCELING, CANCELED})
ABENDED = frozenset({FAILED, EXPIRED, ABANDONED})
COMPLETED = frozenset({SUCCEEDED, FAILED, EXPIRED, ABANDONED, CANCELED})

Table = dict[str, dict[str, str]]


def _table(groups: Mapping[str, Mapping[str, str]]) -> Table:
    """``{status: {new status: "event event ..."}}`` as ``{status: {event: new status}}``."""
    table: Table = {}
    for status, targets in groups.items():
        row: dict[str, str] = {}
        for target, events in targets.items():
            for event in events.split():
                assert event not in row, f"{status}: {event} listed twice"
                row[event] = target
        table[status] = row
    return table


def _items(status: str, wanted: str, outcomes: Mapping[str, str]) -> str:
    """Events ``action_<status>_task_<wanted>_items_<situation>`` for each situation."""
    return " ".join(f"action_{status}_task_{wanted}_items_{s}" for s in outcomes)


def _item_rows(rules: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """``{action status: {situation: new status}}`` grouped as ``{new status: events}``."""
    grouped: dict[str, list[str]] = {}
    for status, outcomes in rules.items():
        for situation, target in outcomes.items():
            grouped.setdefault(target, []).append(f"action_{status}_task_dormant_items_{situation}")
    return {target: " ".join(events) for target, events in grouped.items()}


def _merge(*parts: Mapping[str, str]) -> dict[str, str]:
    merged: dict[str, list[str]] = {}
    for part in parts:
        for target, events in part.items():
            merged.setdefault(target, []).append(events)
    return {target: " ".join(events) for target, events in merged.items()}


_SITUATIONS = ("paused", "canceled", "failed", "incomplete", "completed")
_ABENDS = ("failed", "timeout", "abandoned")


def _dormant_items(on_succeeded_incomplete: str, cancel_wins: bool) -> dict[str, str]:
    """How a running (or pausing) with-items task ends when its last active item
    reports, given what the other items did."""
    if cancel_wins:
        # A canceling task ends canceled, unless every item succeeded.
        every = ("succeeded", *_ABENDS, "canceled", "pending", "paused")
        rules = {s: dict.fromkeys(_SITUATIONS, CANCELED) for s in every}
        rules["succeeded"]["completed"] = SUCCEEDED
        return _item_rows(rules)
    suspended = {
        "paused": PAUSED,
        "canceled": CANCELED,
        "failed": FAILED,
        "incomplete": PAUSED,
        "completed": PAUSED,
    }
    succeeded = {
        "paused": PAUSED,
        "canceled": CANCELED,
        "failed": FAILED,
        "incomplete": on_succeeded_incomplete,
        "completed": SUCCEEDED,
    }
    abended = {**dict.fromkeys(_SITUATIONS, FAILED), "canceled": CANCELED}
    rules = {
        "succeeded": succeeded,
        "pending": suspended,
        "paused": suspended,
        "canceled": dict.fromkeys(_SITUATIONS, CANCELED),
        **{s: abended for s in _ABENDS},
    }
    return _item_rows(rules)


# Before an action runs, it may go anywhere; afterwards only forward.
_NOT_STARTED = {
    SCHEDULED: "action_scheduled",
    DELAYED: "action_delayed",
    RUNNING_: "action_running",
    PENDING: "action_pending",
    PAUSING: "action_pausing",
    PAUSED: "action_paused",
    CANCELING: "action_canceling",
    CANCELED: "action_canceled",
    FAILED: "action_failed",
    EXPIRED: "action_timeout",
    ABANDONED: "action_abandoned",
}

TASK_MACHINE: Table = _table(
    {
        UNSET: {
            REQUESTED: "action_requested",
            SCHEDULED: "action_scheduled",
            DELAYED: "action_delayed",
            RUNNING_: "action_running",
            PENDING: "action_pending",
            SUCCEEDED: "task_continue_requested task_noop_requested",
            FAILED: "task_fail_requested",
        },
        REQUESTED: _NOT_STARTED,
        SCHEDULED: {k: v for k, v in _NOT_STARTED.items() if k != SCHEDULED},
        DELAYED: {k: v for k, v in _NOT_STARTED.items() if k != DELAYED},
        RUNNING_: _merge(
            {
                RUNNING_: "action_running action_succeeded_task_active_items_incomplete",
                PENDING: "action_pending",
                PAUSING: "action_pausing action_pending_task_active_items_incomplete"
                " action_paused_task_active_items_incomplete"
                " workflow_pausing_task_active_items_incomplete"
                " workflow_paused_task_active_items_incomplete",
                PAUSED: "action_paused workflow_pausing_task_dormant_items_incomplete"
                " workflow_paused_task_dormant_items_incomplete",
                CANCELING: "action_canceling action_canceled_task_active_items_incomplete"
                " workflow_canceling_task_active_items_incomplete"
                " workflow_canceled_task_active_items_incomplete",
                CANCELED: "action_canceled workflow_canceling_task_dormant_items_incomplete"
                " workflow_canceled_task_dormant_items_incomplete",
                SUCCEEDED: "action_succeeded",
                FAILED: "action_failed action_timeout action_abandoned",
            },
            _dormant_items(on_succeeded_incomplete=RUNNING_, cancel_wins=False),
        ),
        PENDING: {
            CANCELED: "action_canceled",
            FAILED: "action_failed action_timeout action_abandoned",
            SUCCEEDED: "action_succeeded",
        },
        PAUSING: _merge(
            {
                PAUSED: "action_paused",
                RESUMING: "action_resuming",
                CANCELING: "action_canceling",
                CANCELED: "action_canceled",
                FAILED: "action_failed action_timeout action_abandoned",
            },
            _dormant_items(on_succeeded_incomplete=PAUSED, cancel_wins=False),
        ),
        PAUSED: {
            RUNNING_: "action_running",
            RESUMING: "action_resuming",
            CANCELING: "action_canceling",
            CANCELED: "action_canceled",
        },
        RESUMING: {
            RUNNING_: "action_running",
            CANCELING: "action_canceling",
            CANCELED: "action_canceled",
        },
        RETRYING: {
            RUNNING_: "action_running",
            CANCELING: "action_canceling",
            CANCELED: "action_canceled workflow_canceling workflow_canceled",
        },
        CANCELING: _merge(
            {
                CANCELED: "action_canceled action_paused",
                FAILED: "action_failed action_timeout action_abandoned",
            },
            _dormant_items(on_succeeded_incomplete=CANCELED, cancel_wins=True),
        ),
        CANCELED: {},
        SUCCEEDED: {RETRYING: "task_retry_requested"},
        FAILED: {RETRYING: "task_retry_requested"},
    }
)

# Pausing or canceling a workflow that is not running yet (nothing active).
_DORMANT_CONTROL = {
    PAUSED: "workflow_pausing_workflow_dormant workflow_paused_workflow_dormant",
    CANCELED: "workflow_canceling_workflow_dormant workflow_canceled_workflow_dormant",
    FAILED: "workflow_failed",
}
_ACTIVE_CONTROL = {
    PAUSING: "workflow_pausing_workflow_active workflow_paused_workflow_active",
    CANCELING: "workflow_canceling_workflow_active workflow_canceled_workflow_active",
}

WORKFLOW_MACHINE: Table = _table(
    {
        UNSET: {
            REQUESTED: "workflow_requested",
            SCHEDULED: "workflow_scheduled",
            DELAYED: "workflow_delayed",
            RUNNING_: "workflow_running",
            FAILED: "workflow_failed",
        },
        REQUESTED: {
            SCHEDULED: "workflow_scheduled",
            DELAYED: "workflow_delayed",
            RUNNING_: "workflow_running",
            **_DORMANT_CONTROL,
        },
        SCHEDULED: {DELAYED: "workflow_delayed", RUNNING_: "workflow_running", **_DORMANT_CONTROL},
        DELAYED: {
            SCHEDULED: "workflow_scheduled",
            RUNNING_: "workflow_running",
            **_DORMANT_CONTROL,
        },
        RUNNING_: _merge(
            _ACTIVE_CONTROL,
            _DORMANT_CONTROL,
            {
                SUCCEEDED: "workflow_succeeded"
                " task_succeeded_workflow_dormant_completed"
                " task_remediated_workflow_dormant_completed",
                # A task going to pause does not pause the workflow while
                # others run, so an operator can pause one branch.
                RUNNING_: "task_pausing task_paused_workflow_active"
                " task_succeeded_workflow_active_incomplete"
                " task_succeeded_workflow_active_completed"
                " task_succeeded_workflow_dormant_incomplete"
                " task_remediated_workflow_active_incomplete"
                " task_remediated_workflow_active_completed"
                " task_remediated_workflow_dormant_incomplete",
                PAUSING: "task_pending_workflow_active"
                " task_succeeded_workflow_active_paused"
                " task_remediated_workflow_active_paused",
                PAUSED: "task_pending_workflow_dormant task_paused_workflow_dormant"
                " task_succeeded_workflow_dormant_paused"
                " task_remediated_workflow_dormant_paused",
                CANCELING: "task_canceling task_canceled_workflow_active"
                " task_succeeded_workflow_active_canceled"
                " task_remediated_workflow_active_canceled",
                CANCELED: "task_canceled_workflow_dormant"
                " task_succeeded_workflow_dormant_canceled"
                " task_remediated_workflow_dormant_canceled",
                # Fail fast, even while other tasks still run.
                FAILED: "task_failed_workflow_active task_failed_workflow_dormant",
            },
        ),
        PAUSING: _merge(
            _ACTIVE_CONTROL,
            _DORMANT_CONTROL,
            {
                RUNNING_: "workflow_running",
                RESUMING: "workflow_resuming",
                PAUSING: "task_pending_workflow_active task_paused_workflow_active"
                " task_retrying_workflow_active"
                " task_succeeded_workflow_active_incomplete"
                " task_succeeded_workflow_active_completed"
                " task_succeeded_workflow_active_paused"
                " task_succeeded_workflow_active_canceled"
                " task_remediated_workflow_active_incomplete"
                " task_remediated_workflow_active_completed"
                " task_remediated_workflow_active_paused",
                PAUSED: "task_pending_workflow_dormant task_paused_workflow_dormant"
                " task_retrying_workflow_dormant"
                " task_succeeded_workflow_dormant_incomplete"
                " task_succeeded_workflow_dormant_completed"
                " task_succeeded_workflow_dormant_paused"
                " task_remediated_workflow_dormant_incomplete"
                " task_remediated_workflow_dormant_completed"
                " task_remediated_workflow_dormant_paused",
                CANCELING: "task_canceling task_canceled_workflow_active"
                " task_remediated_workflow_active_canceled",
                CANCELED: "task_canceled_workflow_dormant"
                " task_succeeded_workflow_dormant_canceled"
                " task_remediated_workflow_dormant_canceled",
                FAILED: "task_failed_workflow_active task_failed_workflow_dormant",
            },
        ),
        PAUSED: {
            RUNNING_: "workflow_running task_running task_resuming",
            RESUMING: "workflow_resuming",
            SUCCEEDED: "workflow_running_workflow_completed workflow_resuming_workflow_completed",
            CANCELED: "workflow_canceling_workflow_dormant workflow_canceled_workflow_dormant",
            FAILED: "workflow_failed",
        },
        RESUMING: _merge(
            _ACTIVE_CONTROL,
            _DORMANT_CONTROL,
            {
                RUNNING_: "workflow_running task_running"
                " task_succeeded_workflow_active_incomplete"
                " task_succeeded_workflow_active_completed"
                " task_succeeded_workflow_dormant_incomplete"
                " task_remediated_workflow_active_incomplete"
                " task_remediated_workflow_active_completed"
                " task_remediated_workflow_dormant_incomplete",
                SUCCEEDED: "task_succeeded_workflow_dormant_completed"
                " task_remediated_workflow_dormant_completed",
                PAUSING: "task_pending_workflow_active",
                PAUSED: "task_pending_workflow_dormant"
                " task_succeeded_workflow_dormant_paused"
                " task_remediated_workflow_dormant_paused",
                CANCELING: "task_canceling task_canceled_workflow_active",
                CANCELED: "task_canceled_workflow_dormant"
                " task_succeeded_workflow_dormant_canceled"
                " task_remediated_workflow_dormant_canceled",
                FAILED: "task_failed_workflow_active task_failed_workflow_dormant",
            },
        ),
        CANCELING: {
            CANCELING: "workflow_canceling_workflow_active workflow_canceled_workflow_active"
            " task_pending_workflow_active task_paused_workflow_active"
            " task_canceled_workflow_active task_failed_workflow_active"
            " task_retrying_workflow_active"
            " task_succeeded_workflow_active_incomplete task_succeeded_workflow_active_completed"
            " task_remediated_workflow_active_incomplete"
            " task_remediated_workflow_active_completed",
            CANCELED: "workflow_canceling_workflow_dormant workflow_canceled_workflow_dormant"
            " task_pending_workflow_dormant task_paused_workflow_dormant"
            " task_canceled_workflow_dormant task_failed_workflow_dormant"
            " task_retrying_workflow_dormant"
            " task_succeeded_workflow_dormant_incomplete task_succeeded_workflow_dormant_completed"
            " task_succeeded_workflow_dormant_paused task_succeeded_workflow_dormant_canceled"
            " task_remediated_workflow_dormant_incomplete"
            " task_remediated_workflow_dormant_completed"
            " task_remediated_workflow_dormant_paused"
            " task_remediated_workflow_dormant_canceled",
            FAILED: "workflow_failed",
        },
        CANCELED: {},
        # Rendering the output can still fail a succeeded workflow.
        SUCCEEDED: {FAILED: "workflow_failed"},
        FAILED: {},
    }
)


def next_status(table: Table, status: str, event: str) -> str:
    """The status ``event`` leads to from ``status``; unchanged when it leads nowhere."""
    return table.get(status, {}).get(event, status)


def can_reach(table: Table, status: str, target: str) -> bool:
    """Whether some event moves ``status`` to ``target`` (or it is there already)."""
    return status == target or target in table.get(status, {}).values()


# --------------------------------------------------------------------------- event names

# Task statuses whose workflow consequence depends on whether other tasks run.
_CONDITIONAL = frozenset({PENDING, PAUSED, SUCCEEDED, FAILED, CANCELED, RETRYING, "remediated"})
# Action statuses after which a with-items task looks at its other items.
_ITEM_AWARE = frozenset({RESUMING, PENDING, PAUSED, CANCELED} | COMPLETED)


def item_event(status: str, others: Mapping[str, int]) -> str:
    """The event for an item's action reaching ``status``, given how many of
    the task's *other* items are in each status."""
    event = f"action_{status}"
    if status not in _ITEM_AWARE:
        return event
    active = any(n for s, n in others.items() if s in ACTIVE)
    event += "_task_active" if active else "_task_dormant"
    if not active:
        if others.get(PENDING, 0) or others.get(PAUSED, 0):
            return event + "_items_paused"
        if others.get(CANCELED, 0):
            return event + "_items_canceled"
        if any(n for s, n in others.items() if s in ABENDED):
            return event + "_items_failed"
    incomplete = any(n for s, n in others.items() if s not in COMPLETED)
    return event + ("_items_incomplete" if incomplete else "_items_completed")


def task_workflow_event(status: str, items: Mapping[str, int] | None) -> str:
    """The event a task receives when the workflow is asked for ``status``;
    ``items`` counts its items by status for a with-items task."""
    event = f"workflow_{status}"
    if items is not None and status in PAUSED_STATUSES | CANCELED_STATUSES:
        active = any(n for s, n in items.items() if s in ACTIVE)
        incomplete = any(n for s, n in items.items() if s not in COMPLETED)
        event += "_task_active" if active else "_task_dormant"
        event += "_items_incomplete" if incomplete else "_items_completed"
    return event


def task_event(
    status: str,
    *,
    remediated: bool,
    others_active: bool,
    canceling: bool,
    pausing: bool,
    more_to_do: bool,
) -> str:
    """The event the workflow receives when one of its tasks reaches ``status``.

    ``remediated``: the task abended but a transition handles it.
    ``others_active``: tasks are running. ``canceling`` / ``pausing``: some
    task is canceling or canceled / pausing, paused or pending.
    ``more_to_do``: tasks are staged, or this task has next tasks.
    """
    name = "remediated" if status in ABENDED and remediated else status
    event = f"task_{name}"
    if name in _CONDITIONAL:
        event += "_workflow_active" if others_active else "_workflow_dormant"
    if name not in (SUCCEEDED, "remediated"):
        return event
    if canceling:
        return event + "_canceled"
    if pausing:
        return event + "_paused"
    return event + ("_incomplete" if more_to_do else "_completed")


def workflow_event(status: str, *, active: bool, resumable_done: bool) -> str:
    """The event the workflow receives when asked for ``status``.

    ``active``: tasks are running. ``resumable_done``: the workflow is paused
    and nothing is left to run, so resuming it completes it.
    """
    event = f"workflow_{status}"
    if status in PAUSED_STATUSES | CANCELED_STATUSES:
        event += "_workflow_active" if active else "_workflow_dormant"
    if resumable_done and status in (RUNNING_, RESUMING):
        event += "_workflow_completed"
    return event
