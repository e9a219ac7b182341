"""The ``inquirer`` runner: ask a person for input and wait for the answer.

Running an inquiry does nothing but describe the question: the execution ends
its run ``pending`` with the result ``{schema, roles, users, route, ttl}``, as
StackStorm's inquirer does. The worker then schedules the inquiry's expiry and
emits ``core.st2.generic.inquiry`` in the transaction that records the pending
status (see :mod:`squall.services.inquiries`); an answer through
``PUT /api/v1/inquiries/<id>`` makes the execution succeed with
``result.response``.
"""

from __future__ import annotations

import copy
from typing import Any

from squall.runners.base import OutputSink, RunContext, RunnerType, RunResult

__all__ = ["DEFAULT_SCHEMA", "DEFAULT_TTL_MINUTES", "INQUIRER_META", "InquirerRunner"]

# StackStorm's default question: "continue?", a boolean, required. The
# property-level ``required: true`` is StackStorm's (draft 3) form, which the
# response validation honours.
DEFAULT_SCHEMA: dict[str, Any] = {
    "title": "response_data",
    "type": "object",
    "properties": {
        "continue": {
            "type": "boolean",
            "description": "Would you like to continue the workflow?",
            "required": True,
        }
    },
}
DEFAULT_TTL_MINUTES = 1440

INQUIRER_META = RunnerType(
    name="inquirer",
    description="A runner for inquiries: waits for a person to answer a question.",
    runner_module="inquirer_runner",
    runner_parameters={
        "schema": {
            "description": "A JSON schema that the response must satisfy.",
            "type": "object",
            "required": True,
            "default": DEFAULT_SCHEMA,
        },
        "route": {
            "description": "An arbitrary value that lets rules route the inquiry's "
            "notification to the right channel.",
            "type": "string",
            "required": False,
            "default": "",
        },
        "roles": {
            "description": "Roles whose members may respond (empty: anyone). Recorded; "
            "enforced once role-based access control is available.",
            "type": "array",
            "required": False,
            "default": [],
        },
        "users": {
            "description": "Users who may respond (empty: anyone).",
            "type": "array",
            "required": False,
            "default": [],
        },
        "ttl": {
            # A number rather than StackStorm's integer: fractions of a minute
            # are accepted (integers, StackStorm's values, still are).
            "description": "Minutes to wait for a response before the inquiry times out "
            "(0 or less: wait for ever).",
            "type": "number",
            "required": True,
            "default": DEFAULT_TTL_MINUTES,
        },
    },
)


class InquirerRunner:
    """``inquirer``."""

    meta = INQUIRER_META

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult:
        params = ctx.runner_parameters

        def given(name: str, default: Any) -> Any:
            value = params.get(name)
            return copy.deepcopy(default) if value is None else value

        ttl = given("ttl", DEFAULT_TTL_MINUTES)
        if isinstance(ttl, float) and ttl.is_integer():
            ttl = int(ttl)  # "30" given as text is cast to 30.0; StackStorm shows 30
        return RunResult(
            status="pending",
            result={
                "schema": given("schema", DEFAULT_SCHEMA),
                "roles": given("roles", []),
                "users": given("users", []),
                "route": given("route", ""),
                "ttl": ttl,
            },
        )
