"""Trigger types, triggers and their payloads.

A *trigger type* describes a kind of event (``core.st2.webhook``), with a
schema for its parameters and one for its payload. A *trigger* is a trigger
type with parameters (the webhook at ``github``, a timer every 5 minutes);
rules name one, and every event, a *trigger instance*, belongs to one.

A trigger without parameters has the ref of its type, as in StackStorm; one
with parameters gets a ref derived from them, so the same type and
parameters always give the same trigger.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

import jsonschema
import orjson

from squall.errors import InvalidInput

WEBHOOK = "core.st2.webhook"
INTERVAL_TIMER = "core.st2.IntervalTimer"
DATE_TIMER = "core.st2.DateTimer"
CRON_TIMER = "core.st2.CronTimer"
TIMER_TYPES = frozenset({INTERVAL_TIMER, DATE_TIMER, CRON_TIMER})
ACTION_TRIGGER = "core.st2.generic.actiontrigger"
NOTIFY_TRIGGER = "core.st2.generic.notifytrigger"
INQUIRY_TRIGGER = "core.st2.generic.inquiry"
KV_CREATE = "core.st2.key_value_pair.create"
KV_UPDATE = "core.st2.key_value_pair.update"
KV_VALUE_CHANGE = "core.st2.key_value_pair.value_change"
KV_DELETE = "core.st2.key_value_pair.delete"
KV_EXPIRE = "core.st2.key_value_pair.expire"  # Squall: a key removed because its TTL ran out
SENSOR_SPAWN = "core.st2.sensor.process_spawn"
SENSOR_EXIT = "core.st2.sensor.process_exit"

# The generic webhook: its body names the trigger to dispatch and the payload.
GENERIC_WEBHOOK_URL = "st2"

_OBJECT = {"type": "object"}
_ANY: dict[str, Any] = {}
_TIMEZONE = {"type": "string", "description": "An IANA time zone name; UTC when not given."}
_CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
_CRON_FIELD = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
_TIMER_PAYLOAD = {
    "type": "object",
    "properties": {"executed_at": {"type": "string"}, "schedule": _ANY},
}
_KV_PAYLOAD = {"type": "object", "properties": {"object": _OBJECT}}
_SENSOR_PAYLOAD = {"type": "object", "properties": {"object": _OBJECT}}


def _type(
    name: str,
    description: str,
    payload: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    pack: str = "core",
) -> dict[str, Any]:
    return {
        "name": name,
        "pack": pack,
        "ref": f"{pack}.{name}",
        "description": description,
        "payload_schema": dict(payload or {}),
        "parameters_schema": dict(parameters or {}),
        "tags": [],
    }


def _props(required: list[str] | None = None, **props: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


BUILTIN_TRIGGER_TYPES: tuple[dict[str, Any], ...] = (
    _type(
        "st2.webhook",
        "An HTTP POST to /api/v1/webhooks/<url>: the body and headers of the request.",
        {"type": "object", "properties": {"body": _ANY, "headers": _OBJECT}},
        _props(
            ["url"],
            url={"type": "string", "minLength": 1},
            # Squall: a datastore key (system scope, usually secret) holding
            # the shared secret that signs this webhook's requests.
            hmac_secret_key={"type": "string", "minLength": 1},
        ),
    ),
    _type(
        "st2.IntervalTimer",
        "Fires every <delta> <unit>.",
        _TIMER_PAYLOAD,
        _props(
            ["unit", "delta"],
            unit={"enum": ["weeks", "days", "hours", "minutes", "seconds"]},
            delta={"type": "integer", "minimum": 1},
            timezone=_TIMEZONE,
        ),
    ),
    _type(
        "st2.DateTimer",
        "Fires once, at the given date and time.",
        _TIMER_PAYLOAD,
        _props(["date"], date={"type": "string"}, timezone=_TIMEZONE),
    ),
    _type(
        "st2.CronTimer",
        "Fires on a cron-like schedule (fields as in APScheduler's cron trigger).",
        _TIMER_PAYLOAD,
        {
            "type": "object",
            "properties": {"timezone": _TIMEZONE, **{f: _CRON_FIELD for f in _CRON_FIELDS}},
            "additionalProperties": False,
            "minProperties": 1,
        },
    ),
    _type(
        "st2.generic.actiontrigger",
        "An execution finished.",
        {
            "type": "object",
            "properties": {
                name: _ANY
                for name in (
                    "execution_id",
                    "status",
                    "start_timestamp",
                    "action_name",
                    "action_ref",
                    "runner_ref",
                    "parameters",
                    "result",
                )
            },
        },
    ),
    _type(
        "st2.generic.notifytrigger",
        "An execution with a notify section finished.",
        {
            "type": "object",
            "properties": {
                name: _ANY
                for name in (
                    "execution_id",
                    "status",
                    "start_timestamp",
                    "end_timestamp",
                    "action_ref",
                    "runner_ref",
                    "channel",
                    "route",
                    "message",
                    "data",
                )
            },
        },
    ),
    _type(
        "st2.generic.inquiry",
        "An inquiry is pending: a person is asked to respond.",
        _props(
            ["id", "route"],
            id={"type": "string", "description": "The inquiry's id (its execution's)."},
            route={
                "type": "string",
                "description": "An arbitrary value that lets rules route the notification "
                "to the right channel.",
            },
        ),
    ),
    _type("st2.key_value_pair.create", "A datastore key was created.", _KV_PAYLOAD),
    _type("st2.key_value_pair.update", "A datastore key was written.", _KV_PAYLOAD),
    _type(
        "st2.key_value_pair.value_change",
        "A datastore key's value changed.",
        {"type": "object", "properties": {"old_object": _OBJECT, "new_object": _OBJECT}},
    ),
    _type("st2.key_value_pair.delete", "A datastore key was deleted.", _KV_PAYLOAD),
    _type("st2.key_value_pair.expire", "A datastore key expired and was removed.", _KV_PAYLOAD),
    _type("st2.sensor.process_spawn", "A sensor process started.", _SENSOR_PAYLOAD),
    _type("st2.sensor.process_exit", "A sensor process exited.", _SENSOR_PAYLOAD),
)
BUILTIN_REFS = frozenset(t["ref"] for t in BUILTIN_TRIGGER_TYPES)


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def trigger_ref(type_ref: str, parameters: Mapping[str, Any] | None) -> str:
    """The ref of the trigger of ``type_ref`` with ``parameters``."""
    if not parameters:
        return type_ref
    digest = hashlib.sha256(type_ref.encode() + b"\0" + canonical(parameters)).hexdigest()
    pack = type_ref.split(".", 1)[0]
    return f"{pack}.{digest[:20]}"


def webhook_url(url: str) -> str:
    """Webhook URLs are compared without surrounding slashes or blanks."""
    return url.strip().strip("/")


@functools.lru_cache(maxsize=512)
def _validator(schema_json: bytes) -> Any:
    schema = orjson.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def _check(schema: Mapping[str, Any], value: Any, what: str) -> None:
    if not schema:
        return
    try:
        validator = _validator(canonical(schema))
    except jsonschema.SchemaError as exc:
        raise InvalidInput(f"{what}: the schema itself is invalid: {exc.message}") from None
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise InvalidInput(f"{what}{f' at {where}' if where else ''}: {error.message}")


def validate_parameters(trigger_type: Mapping[str, Any], parameters: Any) -> None:
    """Raise :class:`InvalidInput` when ``parameters`` do not fit the type's schema."""
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInput(f"parameters of trigger {trigger_type['ref']} must be a mapping")
    _check(
        trigger_type.get("parameters_schema") or {},
        parameters or {},
        f"parameters of trigger {trigger_type['ref']}",
    )


def validate_payload(trigger_type: Mapping[str, Any], payload: Any) -> None:
    """Raise :class:`InvalidInput` when ``payload`` does not fit the type's schema."""
    _check(
        trigger_type.get("payload_schema") or {},
        payload,
        f"payload of trigger {trigger_type['ref']}",
    )


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests, counting no further than ``limit`` + 1."""
    depth, level = 0, [value]
    while level and depth <= limit:
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        if not nxt:
            break
        depth += 1
        level = nxt
    return depth
