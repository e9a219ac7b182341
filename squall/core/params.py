"""Action parameter semantics, compatible with StackStorm.

An action's ``parameters`` and its runner's ``runner_parameters`` are both
maps of parameter name to a JSON-schema-like description (``type``,
``default``, ``required``, ``enum``, ``immutable``, ``secret``,
``position``...). This module merges them, casts string input, validates
values, masks secrets and turns values into script arguments, the way
StackStorm does. It does no I/O.

The usual pipeline for one execution is::

    schema = merge_schemas(runner.runner_parameters, action.parameters)
    given = cast_parameters(schema, cli_input)          # only for CLI strings
    rendered = render_parameters(schema, given, ctx)    # squall.core.templating
    action_params, runner_params = validate_parameters(schema, rendered)

Where Squall knowingly differs from StackStorm, the function says so.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jsonschema import Draft4Validator, ValidationError, validators

from squall.errors import ParameterError

__all__ = [
    "IMMUTABLE_RULE",
    "MASK",
    "NONE_MARKER",
    "OVERRIDABLE_RUNNER_ATTRIBUTES",
    "ParameterSchema",
    "RenderedParameters",
    "cast_parameters",
    "cast_value",
    "has_secrets",
    "mask_secrets",
    "merge_schemas",
    "named_args",
    "positional_args",
    "redact",
    "script_arguments",
    "secret_parameters",
    "secret_values",
    "validate_parameters",
]

Schema = Mapping[str, Mapping[str, Any]]

# What secret values are replaced with (StackStorm shows the same).
MASK = "********"

# The ``use_none`` Jinja filter renders None as this marker so that a template
# can produce a real None; casting turns the marker back into None.
NONE_MARKER = "\x00squall:none\x00"

IMMUTABLE_RULE = "is immutable and cannot be set"

# Attributes of a runner parameter that an action may redefine (StackStorm's list).
OVERRIDABLE_RUNNER_ATTRIBUTES = frozenset(
    {"default", "description", "enum", "immutable", "required"}
)

_INTEGER_RE = re.compile(r"[+-]?\d+")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class ParameterSchema(dict[str, dict[str, Any]]):
    """The effective per-parameter schema of an action.

    A plain dict of parameter name to its schema that also remembers which
    names are runner parameters (``runner_names``), so that validated values
    can be split the way StackStorm splits them. ``dict(...)`` or a JSON round
    trip forgets ``runner_names``; a plain dict is read as "all action
    parameters".
    """

    runner_names: frozenset[str]

    def __init__(
        self,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        runner_names: Iterable[str] = (),
    ) -> None:
        super().__init__({name: dict(meta or {}) for name, meta in (params or {}).items()})
        self.runner_names = frozenset(runner_names)


class RenderedParameters(dict[str, Any]):
    """Parameter values after template rendering.

    ``from_defaults`` names the values that came from schema defaults rather
    than from the caller; :func:`validate_parameters` does not treat those as
    the caller setting an immutable parameter.
    """

    from_defaults: frozenset[str]

    def __init__(self, values: Mapping[str, Any] | None = None, from_defaults: Iterable[str] = ()):
        super().__init__(values or {})
        self.from_defaults = frozenset(from_defaults)


def _runner_names(schema: Schema) -> frozenset[str]:
    names: Any = getattr(schema, "runner_names", None)
    return frozenset(names) if names else frozenset()


def _declared_type(meta: Mapping[str, Any] | None) -> str | None:
    if not meta:
        return None
    value = meta.get("type")
    return value if isinstance(value, str) else None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# --------------------------------------------------------------------------- merge


def merge_schemas(
    runner_params: Mapping[str, Mapping[str, Any]] | None,
    action_params: Mapping[str, Mapping[str, Any]] | None,
) -> ParameterSchema:
    """Merge a runner's parameters with an action's, as StackStorm does.

    An action may redefine a runner parameter's ``default``, ``description``,
    ``enum``, ``immutable`` and ``required``; any other attribute must keep the
    runner's value, or :class:`ParameterError` is raised. A parameter is
    immutable if either side says so. Runner parameters come first, then the
    action's own, each in declaration order. The inputs are not modified.
    """
    runner_params = runner_params or {}
    action_params = action_params or {}
    merged: dict[str, dict[str, Any]] = {
        name: copy.deepcopy(dict(meta or {})) for name, meta in runner_params.items()
    }
    for name, action_meta in action_params.items():
        action_meta = action_meta or {}
        if name not in runner_params:
            merged[name] = copy.deepcopy(dict(action_meta))
            continue
        runner_meta = runner_params[name] or {}
        for attribute, value in action_meta.items():
            if attribute in OVERRIDABLE_RUNNER_ATTRIBUTES:
                continue
            if value != runner_meta.get(attribute):
                raise ParameterError(
                    name,
                    f"the action cannot change the runner parameter's '{attribute}'; only "
                    + ", ".join(sorted(OVERRIDABLE_RUNNER_ATTRIBUTES))
                    + " may be redefined",
                )
        combined = _deep_merge(merged[name], action_meta)
        if "immutable" in runner_meta or "immutable" in action_meta:
            combined["immutable"] = bool(runner_meta.get("immutable")) or bool(
                action_meta.get("immutable")
            )
        merged[name] = combined
    return ParameterSchema(merged, runner_names=runner_params.keys())


# --------------------------------------------------------------------------- casting


def _cli_error(name: str, type_name: str, text: str) -> ParameterError:
    return ParameterError(name, f"expected {type_name}, got {_short(text)}")


def _cast_cli_scalar(name: str, text: str, type_name: str | None) -> Any:
    if type_name == "integer":
        stripped = text.strip()
        if not _INTEGER_RE.fullmatch(stripped):
            raise _cli_error(name, "integer", text)
        return int(stripped)
    if type_name == "number":
        stripped = text.strip()
        if not _NUMBER_RE.fullmatch(stripped):
            raise _cli_error(name, "number", text)
        return float(stripped)
    if type_name == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ParameterError(name, f"expected boolean (true or false), got {_short(text)}")
        return lowered == "true"
    return text


def _cast_cli_array(name: str, text: str, meta: Mapping[str, Any]) -> list[Any]:
    items: list[Any]
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, list):
        items = parsed
    elif isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
        items = [parsed]  # "ids=51" means [51], as the st2 CLI reads it
    else:
        items = [part.strip() for part in text.split(",")] if text.strip() else []
    item_schema = meta.get("items")
    item_type = _declared_type(item_schema) if isinstance(item_schema, Mapping) else None
    if item_type in ("integer", "number", "boolean"):
        items = [
            _cast_cli_scalar(name, item, item_type) if isinstance(item, str) else item
            for item in items
        ]
    return items


def _cast_cli_object(name: str, text: str) -> dict[str, Any]:
    if text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ParameterError(
                name, f"expected object (JSON or key=value,...), got {_short(text)}"
            ) from None
        if not isinstance(parsed, dict):
            raise _cli_error(name, "object", text)
        return parsed
    result: dict[str, Any] = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if sep:  # like the st2 CLI, pieces without '=' are ignored
            result[key.strip()] = value
    return result


def cast_parameters(schema: Schema, given: Mapping[str, Any]) -> dict[str, Any]:
    """Cast string values typed on a command line to their declared types.

    Follows the st2 CLI: ``integer`` and ``number`` parse numbers (numbers are
    floats), ``boolean`` takes ``true``/``false`` in any case, ``array`` takes
    a JSON list or comma-separated text (a lone number means a one-item list),
    ``object`` takes a JSON object or ``key=value,key2=value2``. Array items
    declared as integer/number/boolean are cast too (the st2 CLI leaves them
    as strings). Values that are not strings, and parameters without a
    declared type or unknown to the schema, are kept as given; so are
    strings with ``{{``/``{%`` in them, which ``render_parameters`` casts
    after rendering.
    """
    result: dict[str, Any] = {}
    for name, value in given.items():
        meta = schema.get(name)
        type_name = _declared_type(meta)
        if (
            not isinstance(value, str)
            or meta is None
            or type_name is None
            or "{{" in value
            or "{%" in value
        ):
            result[name] = value
        elif type_name == "array":
            result[name] = _cast_cli_array(name, value, meta)
        elif type_name == "object":
            result[name] = _cast_cli_object(name, value)
        else:
            result[name] = _cast_cli_scalar(name, value, type_name)
    return result


def _parse_literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(text) from None


def cast_value(name: str, value: Any, meta: Mapping[str, Any] | None) -> Any:
    """Cast one value to its declared type the way the st2 API does.

    Used for values given over the API and for rendered templates: only
    strings are cast; ``array``/``object`` text is read as JSON, then as a
    Python literal (so a rendered ``['a', 'b']`` becomes a list). The
    ``use_none`` marker becomes None whatever the type.
    """
    if not isinstance(value, str):
        return value
    if value == NONE_MARKER:
        return None
    type_name = _declared_type(meta)
    if type_name in ("array", "object"):
        try:
            return _parse_literal(value)
        except ValueError:
            raise _cli_error(name, type_name, value) from None
    if type_name in ("integer", "number", "boolean"):
        return _cast_cli_scalar(name, value, type_name)
    return value


# --------------------------------------------------------------------------- validation


def _properties_with_boolean_required(
    validator: Any, properties: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """Draft 4 ``properties`` that also honours ``required: true`` on a property."""
    if not validator.is_type(instance, "object"):
        return
    for prop, subschema in properties.items():
        if prop in instance:
            yield from validator.descend(instance[prop], subschema, path=prop, schema_path=prop)
        elif isinstance(subschema, Mapping) and subschema.get("required") is True:
            yield ValidationError(
                f"{prop!r} is a required property",
                validator="required",
                validator_value=True,
                path=[prop],
            )


def _required_list_only(
    validator: Any, required: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(required, bool):
        return  # StackStorm's per-property form; handled by ``properties``
    draft4_required = Draft4Validator.VALIDATORS["required"]
    yield from draft4_required(validator, required, instance, schema)


_Validator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft4Validator,
    {"properties": _properties_with_boolean_required, "required": _required_list_only},
)


def _make_nullable(meta: dict[str, Any]) -> None:
    for key in ("anyOf", "oneOf"):
        if isinstance(meta.get(key), list):
            if {"type": "null"} not in meta[key]:
                meta[key].append({"type": "null"})
            return
    declared = meta.get("type")
    if isinstance(declared, list):
        if "null" not in declared:
            meta["type"] = [*declared, "null"]
    elif isinstance(declared, str) and declared != "null":
        meta["type"] = [declared, "null"]


def _allow_none_in_nested(meta: dict[str, Any]) -> None:
    """Let optional nested properties be null, as StackStorm does."""
    properties = meta.get("properties")
    if isinstance(properties, dict):
        for prop_meta in properties.values():
            if not isinstance(prop_meta, dict):
                continue
            optional = prop_meta.get("required") is not True
            if (optional or "default" in prop_meta) and prop_meta.get("default") is None:
                _make_nullable(prop_meta)
            _allow_none_in_nested(prop_meta)
    items = meta.get("items")
    if isinstance(items, dict):
        _allow_none_in_nested(items)
    elif isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                _allow_none_in_nested(item)


def _nested_defaults(value: Any, meta: Mapping[str, Any]) -> Any:
    """Fill defaults of nested object properties and array items (StackStorm style)."""
    if isinstance(value, dict) and isinstance(meta.get("properties"), Mapping):
        for prop, prop_meta in meta["properties"].items():
            if not isinstance(prop_meta, Mapping):
                continue
            if value.get(prop) is None and "default" in prop_meta:
                value[prop] = copy.deepcopy(prop_meta["default"])
            if value.get(prop) is not None:
                value[prop] = _nested_defaults(value[prop], prop_meta)
    elif isinstance(value, list):
        items = meta.get("items")
        schemas: list[Any]
        if isinstance(items, Mapping):
            schemas = [items] * len(value)
        elif isinstance(items, list):
            schemas = list(items)
        else:
            schemas = []
        for index, item_meta in enumerate(schemas[: len(value)]):
            if not isinstance(item_meta, Mapping):
                continue
            if value[index] is None and "default" in item_meta:
                value[index] = copy.deepcopy(item_meta["default"])
            if value[index] is not None:
                value[index] = _nested_defaults(value[index], item_meta)
    return value


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _format_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _rule_for(error: ValidationError, secret: bool) -> str:
    """Turn a jsonschema error into a short rule for a person to read."""
    value = error.instance
    got = f"a {_json_type_name(value)} value" if secret else _short(value)
    kind = error.validator
    expected: Any = error.validator_value
    if kind == "required":
        return "is required"
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = [t for t in types if t != "null"] or types
        return f"expected {' or '.join(wanted)}, got {got}"
    if kind == "enum":
        return f"must be one of {expected!r}, got {got}"
    if kind == "minimum":
        strict = isinstance(error.schema, Mapping) and error.schema.get("exclusiveMinimum")
        return f"must be {'greater than' if strict else 'at least'} {expected}, got {got}"
    if kind == "maximum":
        strict = isinstance(error.schema, Mapping) and error.schema.get("exclusiveMaximum")
        return f"must be {'less than' if strict else 'at most'} {expected}, got {got}"
    if kind == "minLength":
        return f"must be at least {expected} characters long"
    if kind == "maxLength":
        return f"must be at most {expected} characters long"
    if kind == "pattern":
        return f"must match the pattern {expected!r}" + ("" if secret else f", got {got}")
    if kind == "minItems":
        return f"must have at least {expected} items"
    if kind == "maxItems":
        return f"must have at most {expected} items"
    if kind == "uniqueItems":
        return "must not contain the same item twice"
    if kind == "multipleOf":
        return f"must be a multiple of {expected}, got {got}"
    if kind == "additionalProperties" and isinstance(value, Mapping):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = sorted(str(k) for k in value if k not in known)
        return "has unexpected field(s) " + ", ".join(repr(k) for k in extra)
    if kind in ("minProperties", "maxProperties"):
        word = "at least" if kind == "minProperties" else "at most"
        return f"must have {word} {expected} fields"
    if secret:
        return f"does not satisfy its schema ({kind})"
    return f"does not satisfy its schema ({kind}): {error.message}"


# id(meta) -> (meta, key): the parameter schemas of an action are the same
# objects for every execution (they are cached), so their validation schema
# is worked out once. Holding ``meta`` keeps its id from being reused.
_KEYS: dict[int, tuple[Mapping[str, Any], str]] = {}


def _validation_key(meta: Mapping[str, Any]) -> str:
    """The JSON-schema (as sorted JSON text) that one parameter's value must pass."""
    hit = _KEYS.get(id(meta))
    if hit is not None and hit[0] is meta:
        return hit[1]
    prop = copy.deepcopy(dict(meta))
    if isinstance(prop.get("required"), bool):
        del prop["required"]  # presence is checked by validate_parameters itself
    prop.pop("default", None)
    _allow_none_in_nested(prop)
    key = json.dumps(prop, sort_keys=True, default=repr)
    if len(_KEYS) > 4096:
        _KEYS.clear()
    _KEYS[id(meta)] = (meta, key)
    return key


@functools.lru_cache(maxsize=4096)
def _property_validator(key: str) -> Any:
    # Building a validator costs far more than using one, and the same
    # parameter schemas come back with every execution of an action.
    return _Validator(json.loads(key))


def validate_parameters(
    schema: Schema, given: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply defaults, validate and split parameter values, as StackStorm does.

    ``schema`` is usually the result of :func:`merge_schemas` and ``given`` the
    result of ``render_parameters`` (templates are not rendered here: a
    template default is applied as its raw text). Rules, checked in order:

    * a name the schema does not know is an error (st2 forbids extra properties);
    * the caller may not set an immutable parameter, even to its default;
    * a missing or None value takes the schema default (nested defaults too);
    * the values are validated with JSON-schema Draft 4, where a property's
      ``required: true`` means the value must be present and not None (unless
      its default is explicitly null); optional values may be None.

    Returns ``(action_params, runner_params)``: every parameter of the schema
    appears in exactly one of them, None when it has no value (st2 passes
    unset parameters to runners as None). Runner parameters are the names in
    ``schema.runner_names``. Raises :class:`ParameterError` for the first
    broken rule, in schema order. Unlike st2, a parameter without a ``type``
    accepts any value.
    """
    from_defaults: frozenset[str] = frozenset(getattr(given, "from_defaults", None) or ())
    runner = _runner_names(schema)
    schema = {name: meta or {} for name, meta in schema.items()}
    for name in given:
        if name not in schema:
            raise ParameterError(name, "is not a parameter of this action")
    for name in given:
        if schema[name].get("immutable") and name not in from_defaults:
            raise ParameterError(name, IMMUTABLE_RULE)

    values: dict[str, Any] = {}
    for name, meta in schema.items():
        value = copy.deepcopy(given.get(name))
        if value is None and "default" in meta:
            value = copy.deepcopy(meta["default"])
        if value is not None:
            value = _nested_defaults(value, meta)
        values[name] = value

    properties: dict[str, str] = {}
    instance: dict[str, Any] = {}
    for name, meta in schema.items():
        value = values[name]
        if value is None:
            if meta.get("required") is True and not ("default" in meta and meta["default"] is None):
                raise ParameterError(name, "is required")
            continue  # optional and unset: nothing to validate
        properties[name] = _validation_key(meta)
        instance[name] = value

    for name, key in properties.items():
        error = next(iter(_property_validator(key).iter_errors(instance[name])), None)
        if error is None:
            continue
        path: list[Any] = [name, *error.absolute_path]
        if error.validator == "required" and isinstance(error.validator_value, list):
            present = error.instance if isinstance(error.instance, Mapping) else {}
            path += [next((r for r in error.validator_value if r not in present), "?")]
        secret = bool(schema.get(name, {}).get("secret"))  # never echo a secret value
        rule = _rule_for(error, secret)
        if len(path) > 1:
            rule = f"field '{_format_path(path[1:])}' {rule}"
        raise ParameterError(name, rule)

    action_params = {n: v for n, v in values.items() if n not in runner}
    runner_params = {n: v for n, v in values.items() if n in runner}
    return action_params, runner_params


# --------------------------------------------------------------------------- secrets


def has_secrets(schema: Schema) -> bool:
    """Whether any parameter, or any property inside one, is marked secret."""
    return any(_has_secret(meta) for meta in schema.values())


def secret_parameters(schema: Schema) -> set[str]:
    """Names of the top-level parameters marked ``secret: true``."""
    return {name for name, meta in schema.items() if meta and meta.get("secret") is True}


def _has_secret(meta: Any) -> bool:
    if not isinstance(meta, Mapping):
        return False
    if meta.get("secret") is True:
        return True
    properties = meta.get("properties")
    if isinstance(properties, Mapping) and any(_has_secret(p) for p in properties.values()):
        return True
    if _has_secret(meta.get("additionalProperties")):
        return True
    items = meta.get("items")
    if isinstance(items, list):
        return any(_has_secret(i) for i in items)
    return _has_secret(items)


def _mask_value(value: Any, meta: Any, mask: str) -> Any:
    if not isinstance(meta, Mapping):
        return value
    if meta.get("secret") is True:
        return mask
    if isinstance(value, Mapping):
        properties = meta.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        extra = meta.get("additionalProperties")
        return {
            key: _mask_value(item, properties.get(key, extra), mask) for key, item in value.items()
        }
    if isinstance(value, list):
        items = meta.get("items")
        if isinstance(items, list):
            return [
                _mask_value(item, items[i] if i < len(items) else None, mask)
                for i, item in enumerate(value)
            ]
        return [_mask_value(item, items, mask) for item in value]
    return value


def mask_secrets(params: Mapping[str, Any], schema: Schema, mask: str = MASK) -> dict[str, Any]:
    """A copy of ``params`` with secret values replaced by ``mask``.

    A parameter marked secret is masked whole (even when None, as st2 does);
    inside objects and arrays, properties and items marked secret are masked
    wherever they occur. Names unknown to the schema are kept.
    """
    result: dict[str, Any] = {}
    for name, value in params.items():
        meta = schema.get(name)
        result[name] = _mask_value(value, meta, mask) if _has_secret(meta) else copy.deepcopy(value)
    return result


def _secret_leaves(value: Any, meta: Any, inside_secret: bool, out: list[str]) -> None:
    secret = inside_secret or (isinstance(meta, Mapping) and meta.get("secret") is True)
    if not secret and not _has_secret(meta):
        return  # a large list of plain items is not walked (with-items inputs)
    meta = meta if isinstance(meta, Mapping) else {}
    if isinstance(value, Mapping):
        properties = meta.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        for key, item in value.items():
            child = properties[key] if key in properties else meta.get("additionalProperties")
            _secret_leaves(item, child, secret, out)
    elif isinstance(value, list):
        items = meta.get("items")
        for index, item in enumerate(value):
            child = items[index] if isinstance(items, list) and index < len(items) else items
            _secret_leaves(item, None if isinstance(child, list) else child, secret, out)
    elif secret and value is not None and value != "":
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if text not in out:
            out.append(text)


def secret_values(params: Mapping[str, Any], schema: Schema) -> list[str]:
    """Every secret value in ``params`` as text, for scrubbing runner output.

    Includes nested secret properties; for a secret object or array, each
    scalar inside it. Empty and None values are left out.
    """
    out: list[str] = []
    for name, value in params.items():
        _secret_leaves(value, schema.get(name), False, out)
    return out


def redact(value: Any, secrets: Iterable[str], mask: str = MASK) -> Any:
    """A copy of ``value`` with every occurrence of a secret, inside any
    string at any depth, replaced by ``mask``.

    This catches secrets that travelled into other values: a parameter whose
    default is ``"{{ password }}"``, or a result that echoes one.
    """
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return value
    return _redact(value, ordered, mask)


def _redact(value: Any, secrets: list[str], mask: str) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, mask)
        return value
    if isinstance(value, Mapping):
        return {key: _redact(item, secrets, mask) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, secrets, mask) for item in value]
    return value


# --------------------------------------------------------------------------- script arguments


def _position_key(position: Any) -> tuple[int, float, str]:
    if isinstance(position, bool):
        return (1, 0.0, str(position))
    if isinstance(position, (int, float)) and math.isfinite(position):
        return (0, float(position), "")
    try:
        return (0, float(int(str(position).strip())), "")
    except ValueError:
        return (1, 0.0, str(position))


def _positional_names(schema: Schema) -> list[str]:
    runner = _runner_names(schema)
    named = [
        (name, meta["position"])
        for name, meta in schema.items()
        if name not in runner and meta and meta.get("position") is not None
    ]
    return [name for name, position in sorted(named, key=lambda p: (_position_key(p[1]), p[0]))]


def _serialize_positional(type_name: str | None, value: Any) -> str:
    if type_name in ("string", "number", "float"):
        return "" if value is None else str(value)
    if type_name == "integer":
        return "" if value is None else str(value)  # st2 turns 0 into ""; Squall keeps "0"
    if type_name == "boolean":
        return "" if value is None else ("1" if value else "0")
    if type_name in ("array", "list"):
        if isinstance(value, str):
            return value
        return ",".join(str(item) for item in value) if value else ""
    if type_name == "object":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if value else ""
    if type_name == "null":
        return ""
    return str(value) if value else ""


def positional_args(schema: Schema, params: Mapping[str, Any]) -> list[str]:
    """The positional arguments of a script action, in ``position`` order.

    Only action parameters (not runner ones) with a ``position`` count. Every
    positional parameter yields an argument, "" when unset. Serialization
    follows st2: booleans become "1"/"0", arrays "a,b,c" (items with ``str``),
    objects compact JSON, numbers and strings their text, None "". Unlike st2,
    an integer 0 is "0" rather than "".
    """
    return [
        _serialize_positional(_declared_type(schema.get(name)), params.get(name))
        for name in _positional_names(schema)
    ]


def named_args(schema: Schema, params: Mapping[str, Any], kwarg_op: str = "--") -> list[str]:
    """The named arguments of a script action, as st2's shell runners build them.

    Every action parameter without a ``position`` that has a value gives
    ``<kwarg_op><name>=<value>``, in schema order (then any names the schema
    does not know). None and "" are left out; True gives a bare
    ``<kwarg_op><name>`` flag and False nothing. Other values are written
    with Python's ``str`` as st2 does, so a list reads ``['a', 'b']``.
    """
    runner = _runner_names(schema)
    positional = set(_positional_names(schema))
    names = [n for n in schema if n in params] + [n for n in params if n not in schema]
    result: list[str] = []
    for name in names:
        if name in runner or name in positional:
            continue
        value = params[name]
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            if value:
                result.append(f"{kwarg_op}{name}")
            continue
        result.append(f"{kwarg_op}{name}={value}")
    return result


def script_arguments(schema: Schema, params: Mapping[str, Any], kwarg_op: str = "--") -> list[str]:
    """The full argument list for a script action: named arguments, then positional.

    The list is an argv tail (one item per argument, no shell quoting), in
    the order st2's local and remote script runners put them on the command
    line. ``kwarg_op`` is the runner's ``kwarg_op`` parameter.
    """
    return named_args(schema, params, kwarg_op) + positional_args(schema, params)
