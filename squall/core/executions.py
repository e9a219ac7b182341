"""The execution lifecycle: states and the transitions allowed between them.

    requested -> scheduled -> running -> succeeded | failed | timeout | canceled | abandoned
    requested | scheduled -> delayed -> scheduled      (a concurrency policy said wait)
    any not final -> canceling -> canceled             (a user asked to stop it)
    running -> pending | pausing -> paused -> resuming -> running   (workflows, inquiries)

A final state never changes again: this is what makes re-delivered work safe
to drop instead of running it twice.
"""

from __future__ import annotations

from enum import StrEnum

from squall.errors import Conflict


class Status(StrEnum):
    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    DELAYED = "delayed"
    RUNNING = "running"
    PENDING = "pending"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    CANCELING = "canceling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    ABANDONED = "abandoned"


FINAL: frozenset[Status] = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.TIMEOUT, Status.CANCELED, Status.ABANDONED}
)

# Not yet handed to a runner: canceling one of these needs no runner.
WAITING: frozenset[Status] = frozenset({Status.REQUESTED, Status.SCHEDULED, Status.DELAYED})

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.REQUESTED: frozenset({Status.SCHEDULED, Status.DELAYED, Status.CANCELED, Status.FAILED}),
    Status.SCHEDULED: frozenset(
        {Status.RUNNING, Status.DELAYED, Status.CANCELED, Status.FAILED, Status.ABANDONED}
    ),
    Status.DELAYED: frozenset({Status.SCHEDULED, Status.CANCELED, Status.FAILED}),
    Status.RUNNING: frozenset(
        {Status.PENDING, Status.PAUSING, Status.CANCELING, Status.ABANDONED} | FINAL
    ),
    Status.PENDING: frozenset({Status.RUNNING, Status.CANCELING, Status.PAUSING} | FINAL),
    Status.PAUSING: frozenset({Status.PAUSED, Status.CANCELING} | FINAL),
    Status.PAUSED: frozenset({Status.RESUMING, Status.CANCELING, Status.CANCELED}),
    Status.RESUMING: frozenset({Status.RUNNING, Status.CANCELING} | FINAL),
    Status.CANCELING: frozenset({Status.CANCELED} | FINAL),
}


def can_transition(old: Status | str, new: Status | str) -> bool:
    return Status(new) in _ALLOWED.get(Status(old), frozenset())


def check_transition(old: Status | str, new: Status | str) -> None:
    """Raise Conflict when an execution in ``old`` cannot move to ``new``."""
    if not can_transition(old, new):
        if Status(old) in FINAL:
            raise Conflict(f"execution is already {old}; it cannot become {new}")
        raise Conflict(f"an execution that is {old} cannot become {new}")


def is_final(status: Status | str) -> bool:
    return Status(status) in FINAL
