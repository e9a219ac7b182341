"""Read packs from disk into plain data, without touching the database.

A pack is a directory holding ``pack.yaml`` and, optionally, ``actions/``,
``rules/``, ``sensors/``, ``aliases/``, ``policies/``, ``triggers/`` and a
``config.schema.yaml``; its configuration lives outside the pack, in
``<config_dir>/<pack ref>.yaml``. The layout and the meaning of every file
follow StackStorm's, so existing StackStorm packs load unchanged.

Loading is forgiving per file and strict per field. A file that cannot be
used (bad YAML, not a mapping, a missing or mistyped field, an unknown field
where StackStorm rejects unknown fields, a missing entry point, a duplicate
name, an invalid parameter schema) becomes one :class:`ContentError` in
``LoadedPack.errors`` and only that file is skipped; the rest of the pack
loads. A ``pack.yaml`` that cannot be used makes the whole pack unloadable:
:func:`load_pack` then raises that one :class:`ContentError` (and
:func:`load_packs` reports it next to the packs that did load).

What is *not* checked here, because it needs other parts of the system:
whether a runner type exists, whether an action may override a runner
parameter's attributes, whether a rule's trigger or action exists, and
whether a policy type exists and accepts the given parameters. Those checks
belong to registration, which has the runner and policy metadata at hand.

Everything returned is plain data (dicts, lists, strings, numbers), ready to
be stored or serialised; file paths inside those dicts are strings.
"""

from __future__ import annotations

import copy
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from squall.core.criteria import compile_criteria
from squall.core.rules import parse_accumulate, parse_throttle
from squall.errors import ContentError, InvalidInput

__all__ = [
    "BUILTIN_PACKS_DIR",
    "ENTRY_POINT_RUNNERS",
    "LoadedPack",
    "discover_packs",
    "load_pack",
    "load_packs",
    "load_yaml",
]

#: The packs shipped inside the Squall package (``core``). Pass it first to
#: :func:`discover_packs` so that a user pack can never shadow a built-in one.
BUILTIN_PACKS_DIR = Path(__file__).resolve().parent.parent / "builtin_packs"

MANIFEST_FILE = "pack.yaml"
CONFIG_SCHEMA_FILE = "config.schema.yaml"
YAML_SUFFIXES = (".yaml", ".yml")

#: Runner types whose actions must name an existing file as ``entry_point``.
ENTRY_POINT_RUNNERS = frozenset(
    {"local-shell-script", "remote-shell-script", "python-script", "orquesta", "action-chain"}
)

# A pack ref is lower-case letters, digits and underscores (names may be
# anything, but then the ref has to come from somewhere else).
_PACK_REF_RE = re.compile(r"[a-z0-9_]+")
_RESERVED_PACK_REFS = frozenset({"_global"})
_SEMVER_RE = re.compile(
    r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-[0-9a-z-]+(?:\.[0-9a-z-]+)*)?(?:\+[0-9a-z-]+(?:\.[0-9a-z-]+)*)?"
)
_PARAM_NAME_RE = re.compile(r"\w+")
_JINJA_RE = re.compile(r"{{.*}}|{%.*%}", re.DOTALL)
_MIN_POLL_INTERVAL = 4  # seconds; a sensor polling faster is rejected

_SIMPLE_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")

# Attributes a parameter (or config schema) definition may use: the JSON
# Schema draft 4 keywords plus StackStorm's own (required as a boolean,
# secret, immutable, position). Anything else is most likely a typo.
_PARAM_KEYS = frozenset(
    {
        "id", "$schema", "title", "description", "default", "type", "enum",
        "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
        "maxLength", "minLength", "pattern",
        "items", "additionalItems", "maxItems", "minItems", "uniqueItems",
        "properties", "patternProperties", "additionalProperties",
        "maxProperties", "minProperties", "dependencies", "definitions",
        "allOf", "anyOf", "oneOf", "not",
        "required", "secret", "immutable", "position",
    }
)  # fmt: skip
_NUMBER_KEYS = ("multipleOf", "maximum", "minimum")
_COUNT_KEYS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties")
_BOOL_KEYS = ("required", "secret", "immutable", "uniqueItems", "exclusiveMaximum",
              "exclusiveMinimum")  # fmt: skip

# Top-level fields of each kind of resource file. Sensor files have no such
# list: StackStorm does not check them against a schema, so neither do we.
_COMMON_KEYS = frozenset({"id", "uid", "ref", "name", "pack", "description", "metadata_file"})
_ACTION_KEYS = _COMMON_KEYS | {
    "enabled", "runner_type", "entry_point", "parameters", "output_schema", "tags", "notify",
    "idempotent",  # Squall: safe to run again after a worker died mid-run
}  # fmt: skip
_RULE_KEYS = _COMMON_KEYS | {
    "type", "trigger", "criteria", "action", "enabled", "context", "tags",
    "throttle", "accumulate",  # Squall: event hygiene
}  # fmt: skip
_ALIAS_KEYS = _COMMON_KEYS | {
    "enabled", "action_ref", "formats", "ack", "result", "extra", "immutable_parameters",
}  # fmt: skip
_POLICY_KEYS = _COMMON_KEYS | {"enabled", "resource_ref", "policy_type", "parameters"}
_TRIGGER_KEYS = _COMMON_KEYS | {"payload_schema", "parameters_schema", "tags"}
_RULE_ACTION_KEYS = frozenset({"ref", "description", "parameters"})
_NOTIFY_KEYS = frozenset({"on-complete", "on-failure", "on-success"})
_DROPPED_KEYS = ("id", "uid")  # database identifiers have no meaning on disk


# --------------------------------------------------------------------------
# Result type


@dataclass
class LoadedPack:
    """One pack as read from disk.

    ``errors`` lists the files that were skipped; everything else in the
    pack is in the content lists.
    """

    ref: str
    meta: dict[str, Any]
    path: Path
    actions: list[dict[str, Any]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    sensors: list[dict[str, Any]] = field(default_factory=list)
    aliases: list[dict[str, Any]] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    config_schema: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    errors: list[ContentError] = field(default_factory=list)


# --------------------------------------------------------------------------
# YAML with line numbers

_YamlLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Key path inside a document ("parameters", "cmd", "type") -> 1-based line.
_Lines = dict[tuple[str, ...], int]


def load_yaml(path: Path | str) -> Any:
    """Parse one YAML file with the safe loader.

    Raises :class:`ContentError` naming the file, and the line where the
    parser gave up, when the file cannot be read or is not valid YAML. An
    empty file gives ``None``.
    """
    data, _ = _parse_yaml(Path(path))
    return data


def _parse_yaml(path: Path) -> tuple[Any, _Lines]:
    """Parse ``path``, returning the data and the line of every mapping key."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContentError(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ContentError(str(path), f"cannot read the file: {exc.strerror or exc}") from exc

    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ContentError(str(path), _describe_yaml_error(exc), _yaml_error_line(exc)) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        problem = str(exc).splitlines()[0]
        raise ContentError(str(path), f"invalid YAML: {problem}", line) from exc
    except yaml.YAMLError as exc:
        raise ContentError(str(path), f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()

    lines: _Lines = {}
    if node is not None:
        _index_lines(node, (), lines, set())
    return data, lines


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or exc.context or "cannot parse"
    if exc.problem_mark is not None:
        problem += f" (column {exc.problem_mark.column + 1})"
    if not (exc.problem and exc.context):
        return f"invalid YAML: {problem}"
    context = exc.context
    if exc.context_mark is not None and exc.context_mark is not exc.problem_mark:
        context += f" that starts on line {exc.context_mark.line + 1}"
    if problem.startswith("but "):  # "expected a single document ..., but found ..."
        return f"invalid YAML: {context}, {problem}"
    return f"invalid YAML: {problem}, {context}"


def _yaml_error_line(exc: yaml.MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else None


def _index_lines(node: yaml.Node, path: tuple[str, ...], out: _Lines, active: set[int]) -> None:
    if id(node) in active:  # a recursive alias; nothing more to learn
        return
    out.setdefault(path, node.start_mark.line + 1)
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key_path = (*path, str(key_node.value))
                out.setdefault(key_path, key_node.start_mark.line + 1)
                _index_lines(value_node, key_path, out, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, str(index)), out, active)
    active.discard(id(node))


@dataclass
class _Doc:
    """A YAML mapping read from a pack, with enough context to blame a line."""

    path: Path  # the file
    rel: str  # the file relative to the pack directory, "/"-separated
    data: dict[str, Any]
    lines: _Lines

    def line(self, *keys: object) -> int | None:
        """Line of the deepest existing key along ``keys``."""
        key_path = tuple(str(key) for key in keys)
        while key_path not in self.lines and key_path:
            key_path = key_path[:-1]
        return self.lines.get(key_path)

    def error(self, reason: str, *keys: object) -> ContentError:
        return ContentError(str(self.path), reason, self.line(*keys))


def _read_doc(path: Path, pack_dir: Path, what: str) -> _Doc:
    data, lines = _parse_yaml(path)
    if data is None:
        raise ContentError(str(path), f"the file is empty; expected {what} as a mapping")
    if not isinstance(data, dict):
        raise ContentError(
            str(path),
            f"expected {what} as a mapping at the top level, got {_type_name(data)}",
            lines.get(()),
        )
    return _Doc(path=path, rel=path.relative_to(pack_dir).as_posix(), data=data, lines=lines)


def _type_name(value: object) -> str:
    names = {
        dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
        int: "an integer", float: "a number", type(None): "null",
    }  # fmt: skip
    return names.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------
# Discovery


def discover_packs(paths: Iterable[Path | str]) -> list[Path]:
    """Find the pack directories inside each packs directory of ``paths``.

    A pack directory is a subdirectory holding ``pack.yaml``. Paths are
    searched in order and **the first pack found under a given ref wins**:
    a pack with the same ref in a later directory is ignored, so the
    built-in packs directory, passed first, cannot be overridden. The ref is
    the one :func:`load_pack` would compute (explicit ``ref``, else the
    directory name, else ``name``); the directory name stands in when
    ``pack.yaml`` cannot be read. Directories that do not exist are skipped,
    as are hidden directories and ``__pycache__``. Within one packs
    directory, packs come in name order.
    """
    found: dict[str, Path] = {}
    for base in paths:
        base_dir = Path(base)
        if not base_dir.is_dir():
            continue
        for child in sorted(base_dir.iterdir(), key=lambda p: p.name):
            if child.name.startswith(".") or child.name == "__pycache__":
                continue
            if not child.is_dir() or not (child / MANIFEST_FILE).is_file():
                continue
            found.setdefault(_pack_key(child), child)
    return list(found.values())


def _pack_key(pack_dir: Path) -> str:
    try:
        meta = load_yaml(pack_dir / MANIFEST_FILE)
        if isinstance(meta, dict):
            return _pack_ref(meta, pack_dir.name)
    except (ContentError, ValueError):
        pass
    return pack_dir.name


def load_packs(
    paths: Iterable[Path | str], config_dir: Path | None = None
) -> tuple[list[LoadedPack], list[ContentError]]:
    """:func:`discover_packs`, then :func:`load_pack` each one, in that order.

    Returns the packs that loaded and, separately, one error for each pack
    whose ``pack.yaml`` could not be used. Per-file errors stay in each
    ``LoadedPack.errors``.
    """
    packs: list[LoadedPack] = []
    unloadable: list[ContentError] = []
    for pack_dir in discover_packs(paths):
        try:
            packs.append(load_pack(pack_dir, config_dir))
        except ContentError as exc:
            unloadable.append(exc)
    return packs, unloadable


# --------------------------------------------------------------------------
# One pack


def load_pack(pack_dir: Path | str, config_dir: Path | None = None) -> LoadedPack:
    """Read one pack directory; see the module docstring for what is checked.

    Raises :class:`ContentError` when ``pack.yaml`` is missing or unusable;
    any other broken file is skipped and listed in ``LoadedPack.errors``.
    ``config_dir`` holds pack configs (``<pack ref>.yaml``); ``None`` means
    no config file, so the config is just the schema's defaults.
    """
    pack_dir = Path(os.path.abspath(pack_dir))
    meta = _read_manifest(pack_dir)
    pack = LoadedPack(ref=meta["ref"], meta=meta, path=pack_dir)
    ctx = _PackContext(ref=pack.ref, path=pack_dir)
    errors = pack.errors

    pack.actions = _load_resources(ctx, "actions", "action", _build_action, errors)
    pack.rules = _load_resources(ctx, "rules", "rule", _build_rule, errors)
    pack.aliases = _load_resources(ctx, "aliases", "alias", _build_alias, errors)
    pack.policies = _load_resources(ctx, "policies", "policy", _build_policy, errors)
    pack.triggers = _load_resources(ctx, "triggers", "trigger type", _build_trigger, errors)
    pack.sensors = _load_resources(
        ctx, "sensors", "sensor", _build_sensor, errors, name_key="class_name"
    )
    pack.triggers.extend(_sensor_trigger_types(ctx, pack.sensors, pack.triggers, errors))

    pack.config_schema = _load_config_schema(ctx, errors)
    pack.config = _load_config(ctx, pack.config_schema, config_dir, errors)
    return pack


@dataclass
class _PackContext:
    ref: str
    path: Path
    # Trigger types declared inside sensor files:
    # (sensor item, sensor file, index in its trigger_types, trigger type).
    sensor_triggers: list[tuple[dict[str, Any], _Doc, int, dict[str, Any]]] = field(
        default_factory=list
    )


def _read_manifest(pack_dir: Path) -> dict[str, Any]:
    path = pack_dir / MANIFEST_FILE
    if not path.is_file():
        raise ContentError(str(path), f"{MANIFEST_FILE} is missing, so this is not a pack")
    doc = _read_doc(path, pack_dir, "the pack metadata")
    meta = dict(doc.data)

    for key in ("name", "description", "author"):
        if key not in meta:
            raise doc.error(f'"{key}" is required in {MANIFEST_FILE}')
        _expect(doc, key, str, "a string")
        if not meta[key].strip():
            raise doc.error(f'"{key}" must not be empty', key)

    if "version" not in meta:
        raise doc.error(f'"version" is required in {MANIFEST_FILE}')
    # An unquoted 1.0 reads as a number; like StackStorm, judge it as text.
    meta["version"] = str(meta["version"])
    if not _SEMVER_RE.fullmatch(meta["version"]):
        raise doc.error(
            f'version "{meta["version"]}" is not a semantic version such as 0.1.0 or 1.2.3',
            "version",
        )

    for key in ("email", "stackstorm_version", "ref"):
        if meta.get(key) is not None:
            _expect(doc, key, str, "a string")
    for key in ("keywords", "dependencies", "contributors", "files"):
        if meta.get(key) is not None:
            _expect_list_of_str(doc, key)
    if meta.get("system") is not None:
        _expect(doc, "system", dict, "a mapping")
    if meta.get("python_versions") is not None:
        _expect(doc, "python_versions", list, "a list")
        versions = [str(v) for v in meta["python_versions"]]
        if not versions or any(v not in ("2", "3") for v in versions):
            raise doc.error('python_versions must list "2" and/or "3"', "python_versions")
        meta["python_versions"] = versions

    try:
        meta["ref"] = _pack_ref(meta, pack_dir.name)
    except ValueError as exc:
        raise doc.error(str(exc), "ref" if meta.get("ref") else "name") from exc

    for key in ("keywords", "dependencies", "python_versions", "contributors"):
        if meta.get(key) is None:
            meta[key] = []
    meta.setdefault("email", None)
    return meta


def _pack_ref(meta: Mapping[str, Any], dir_name: str) -> str:
    """The pack's ref, decided as StackStorm decides it.

    An explicit ``ref`` wins; otherwise the directory name, when it is a
    valid ref; otherwise ``name``, when it is one. Raises ``ValueError``
    when none of those gives a valid ref.
    """
    explicit = meta.get("ref")
    name = meta.get("name")
    if explicit:
        ref = str(explicit)
        if not _PACK_REF_RE.fullmatch(ref):
            raise ValueError(
                f'pack ref "{ref}" is invalid: use lower-case letters, digits and underscores'
            )
    elif _PACK_REF_RE.fullmatch(dir_name):
        ref = dir_name
    elif isinstance(name, str) and _PACK_REF_RE.fullmatch(name):
        ref = name
    else:
        raise ValueError(
            f'pack name "{name}" is not a valid ref (lower-case letters, digits and '
            'underscores only), and there is no "ref" field; add a "ref" to pack.yaml'
        )
    if ref in _RESERVED_PACK_REFS:
        raise ValueError(f'"{ref}" is reserved and cannot be used as a pack ref')
    return ref


_Builder = Callable[[_Doc, _PackContext], dict[str, Any]]


def _load_resources(
    ctx: _PackContext,
    subdir: str,
    label: str,
    build: _Builder,
    errors: list[ContentError],
    name_key: str = "name",
) -> list[dict[str, Any]]:
    """Build every ``<subdir>/*.yaml`` file (not recursive), in name order."""
    directory = ctx.path / subdir
    if not directory.is_dir():
        return []
    items: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in _yaml_files(directory):
        # actions/config.yaml was once a pack-wide config file, never an action.
        if subdir == "actions" and path.stem == "config":
            continue
        try:
            doc = _read_doc(path, ctx.path, f"{label} metadata")
            item = build(doc, ctx)
            name = item[name_key]
            if name in seen:
                raise doc.error(
                    f'duplicate {label} "{name}": {seen[name]} already defines it', name_key
                )
            seen[name] = doc.rel
            item["metadata_file"] = doc.rel  # always last
            items.append(item)
        except ContentError as exc:
            errors.append(exc)
    return items


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in YAML_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


# --------------------------------------------------------------------------
# Field checks shared by the resource builders


def _expect(doc: _Doc, key: str, kind: type | tuple[type, ...], described: str) -> None:
    value = doc.data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
        raise doc.error(f'"{key}" must be {described}, got {_type_name(value)}', key)


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _expect_list_of_str(doc: _Doc, key: str) -> None:
    _expect(doc, key, list, "a list of strings")
    for index, item in enumerate(doc.data[key]):
        if not isinstance(item, str):
            raise doc.error(f'"{key}" must be a list of strings', key, index)


def _optional(doc: _Doc, key: str, kind: type | tuple[type, ...], described: str) -> None:
    if doc.data.get(key) is not None:
        _expect(doc, key, kind, described)


def _require_str(doc: _Doc, key: str, label: str) -> str:
    if key not in doc.data or doc.data[key] is None:
        raise doc.error(f'{label} has no "{key}"')
    _expect(doc, key, str, "a string")
    value: str = doc.data[key]
    if not value.strip():
        raise doc.error(f'"{key}" must not be empty', key)
    return value


def _check_keys(doc: _Doc, allowed: frozenset[str], label: str) -> None:
    for key in doc.data:
        if key not in allowed:
            known = ", ".join(sorted(allowed - {"id", "uid", "ref", "metadata_file"}))
            raise doc.error(f'unknown {label} field "{key}" (known fields: {known})', key)


def _check_pack_field(doc: _Doc, ref: str) -> None:
    pack = doc.data.get("pack")
    if pack is not None and pack != ref:
        raise doc.error(f'"pack" says "{pack}" but the file belongs to pack "{ref}"', "pack")


def _base_item(doc: _Doc, ctx: _PackContext, name: str) -> dict[str, Any]:
    item: dict[str, Any] = {"name": name, "pack": ctx.ref, "ref": f"{ctx.ref}.{name}"}
    for key, value in doc.data.items():
        if key not in item and key not in _DROPPED_KEYS and key != "metadata_file":
            item[key] = value
    return item


def _check_tags(doc: _Doc) -> None:
    if doc.data.get("tags") is None:
        return
    _expect(doc, "tags", list, "a list of {name, value} mappings")
    for index, tag in enumerate(doc.data["tags"]):
        if not isinstance(tag, dict):
            raise doc.error('"tags" must be a list of {name, value} mappings', "tags", index)


def _resolve_entry_point(doc: _Doc, pack_dir: Path, base_dir: Path, entry_point: str) -> Path:
    """Resolve ``entry_point`` the way StackStorm does.

    A relative entry point is relative to ``base_dir`` (the pack's
    ``actions/`` directory for actions) and must not climb out of it with
    ``..``; an absolute one must lie inside the pack directory.
    """
    if os.path.isabs(entry_point):
        path = Path(os.path.normpath(entry_point))
        if not path.is_relative_to(pack_dir):
            raise doc.error(
                f'entry point "{entry_point}" is outside the pack directory', "entry_point"
            )
        return path
    normalized = posixpath.normpath(entry_point.replace("\\", "/"))
    if normalized == ".." or normalized.startswith("../") or "/../" in f"/{entry_point}/":
        raise doc.error(
            f'entry point "{entry_point}" must not use "..": it is a path inside '
            f"{base_dir.relative_to(pack_dir).as_posix()}/",
            "entry_point",
        )
    return base_dir / normalized


# --------------------------------------------------------------------------
# Parameter schemas (action parameters, config schema attributes)


def _check_parameters(doc: _Doc, params: object, path: tuple[str, ...], what: str) -> None:
    """Validate a mapping of parameter name -> StackStorm parameter definition."""
    if not isinstance(params, dict):
        raise doc.error(f"{what} must be a mapping of name to definition", *path)
    positions: dict[int, str] = {}
    for name, spec in params.items():
        if not isinstance(name, str) or not _PARAM_NAME_RE.fullmatch(name):
            raise doc.error(
                f'parameter name "{name}" is invalid: use letters, digits and underscores',
                *path,
                name,
            )
        _check_schema(doc, spec, (*path, name), f'parameter "{name}"')
        position = spec.get("position")
        if position is not None:
            if position in positions:
                raise doc.error(
                    f'parameters "{positions[position]}" and "{name}" have the same '
                    f"position {position}; positions must be unique",
                    *path,
                    name,
                    "position",
                )
            positions[position] = name
    if positions:
        ordered = sorted(positions)
        if ordered != list(range(ordered[0], ordered[-1] + 1)):
            raise doc.error(f"parameter positions {ordered} are not contiguous", *path)


def _check_schema(doc: _Doc, spec: object, path: tuple[str, ...], what: str) -> None:
    """Validate one parameter definition, recursing into nested schemas."""
    if not isinstance(spec, dict):
        raise doc.error(f"{what}: the definition must be a mapping, got {_type_name(spec)}", *path)

    def fail(reason: str, *keys: object) -> ContentError:
        return doc.error(f"{what}: {reason}", *path, *keys)

    for key in spec:
        if key not in _PARAM_KEYS:
            raise fail(f'unknown attribute "{key}"', key)

    if "type" in spec and spec["type"] not in _SIMPLE_TYPES:
        raise fail(f"unknown type {spec['type']!r}; use one of {', '.join(_SIMPLE_TYPES)}", "type")
    for key in _BOOL_KEYS:
        if key in spec and not isinstance(spec[key], bool):
            raise fail(f'"{key}" must be true or false', key)
    if "position" in spec:
        position = spec["position"]
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise fail('"position" must be a whole number, 0 or more', "position")
    for key in _NUMBER_KEYS:
        value = spec.get(key)
        if key in spec and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise fail(f'"{key}" must be a number', key)
    for key in _COUNT_KEYS:
        value = spec.get(key)
        if key in spec and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise fail(f'"{key}" must be a whole number, 0 or more', key)
    for key in ("title", "description"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise fail(f'"{key}" must be a string', key)
    if "enum" in spec and (not isinstance(spec["enum"], list) or not spec["enum"]):
        raise fail('"enum" must be a non-empty list', "enum")
    if "pattern" in spec:
        _check_regex(spec["pattern"], fail, "pattern")

    for key in ("properties", "definitions"):
        if key in spec:
            children = spec[key]
            if not isinstance(children, dict):
                raise fail(f'"{key}" must be a mapping', key)
            for child, child_spec in children.items():
                _check_schema(doc, child_spec, (*path, key, child), f'{what} property "{child}"')
    if "patternProperties" in spec:
        children = spec["patternProperties"]
        if not isinstance(children, dict):
            raise fail('"patternProperties" must be a mapping', "patternProperties")
        for pattern, child_spec in children.items():
            _check_regex(pattern, fail, "patternProperties", pattern)
            _check_schema(
                doc, child_spec, (*path, "patternProperties", pattern), f"{what} /{pattern}/"
            )
    for key in ("additionalProperties", "additionalItems"):
        if key in spec and not isinstance(spec[key], bool):
            _check_schema(doc, spec[key], (*path, key), f"{what} {key}")
    if "items" in spec:
        items = spec["items"]
        if isinstance(items, list):
            for index, item in enumerate(items):
                _check_schema(doc, item, (*path, "items", str(index)), f"{what} item {index}")
        else:
            _check_schema(doc, items, (*path, "items"), f"{what} items")
    for key in ("allOf", "anyOf", "oneOf"):
        if key in spec:
            if not isinstance(spec[key], list) or not spec[key]:
                raise fail(f'"{key}" must be a non-empty list of schemas', key)
            for index, sub in enumerate(spec[key]):
                _check_schema(doc, sub, (*path, key, str(index)), f"{what} {key}[{index}]")
    if "not" in spec:
        _check_schema(doc, spec["not"], (*path, "not"), f"{what} not")
    if "dependencies" in spec and not isinstance(spec["dependencies"], dict):
        raise fail('"dependencies" must be a mapping', "dependencies")


def _check_regex(pattern: object, fail: Callable[..., ContentError], *keys: object) -> None:
    if not isinstance(pattern, str):
        raise fail("a pattern must be a string", *keys)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise fail(f"invalid regular expression {pattern!r}: {exc}", *keys) from exc


# --------------------------------------------------------------------------
# Resource builders


def _build_action(doc: _Doc, ctx: _PackContext) -> dict[str, Any]:
    _check_keys(doc, _ACTION_KEYS, "action")
    name = _require_str(doc, "name", "the action")
    runner_type = _require_str(doc, "runner_type", f'action "{name}"')
    _check_pack_field(doc, ctx.ref)
    _optional(doc, "description", str, "a string")
    _optional(doc, "enabled", bool, "true or false")
    _optional(doc, "entry_point", str, "a string")
    _optional(doc, "output_schema", dict, "a mapping")
    _check_tags(doc)
    notify = doc.data.get("notify")
    if notify is not None:
        _expect(doc, "notify", dict, "a mapping")
        for key in notify:
            if key not in _NOTIFY_KEYS:
                raise doc.error(
                    f'unknown notify section "{key}" (use on-complete, on-failure, on-success)',
                    "notify",
                    key,
                )

    params = doc.data.get("parameters")
    params = {} if params is None else params
    _check_parameters(doc, params, ("parameters",), "parameters")

    entry_point: str = doc.data.get("entry_point") or ""
    entry_point_path: Path | None = None
    if entry_point:
        entry_point_path = _resolve_entry_point(doc, ctx.path, ctx.path / "actions", entry_point)
    if runner_type in ENTRY_POINT_RUNNERS:
        if entry_point_path is None:
            raise doc.error(
                f'action "{name}" uses the {runner_type} runner, which needs an "entry_point" '
                "naming its file (relative to actions/)",
                "entry_point" if "entry_point" in doc.data else "runner_type",
            )
        if not entry_point_path.is_file():
            raise doc.error(
                f'entry point "{entry_point}" of action "{name}" does not exist '
                f"(looked for {entry_point_path.relative_to(ctx.path).as_posix()})",
                "entry_point",
            )

    action = _base_item(doc, ctx, name)
    action.update(
        runner_type=runner_type,
        description=doc.data.get("description") or "",
        enabled=doc.data.get("enabled", True),
        entry_point=entry_point,
        entry_point_path=str(entry_point_path) if entry_point_path else None,
        parameters=params,
        output_schema=doc.data.get("output_schema") or {},
        tags=doc.data.get("tags") or [],
        notify=notify or {},
    )
    return action


def _build_rule(doc: _Doc, ctx: _PackContext) -> dict[str, Any]:
    _check_keys(doc, _RULE_KEYS, "rule")
    name = _require_str(doc, "name", "the rule")
    _check_pack_field(doc, ctx.ref)
    _optional(doc, "description", str, "a string")
    _optional(doc, "enabled", bool, "true or false")
    _optional(doc, "criteria", dict, "a mapping")
    _optional(doc, "context", dict, "a mapping")
    _check_tags(doc)

    for key, sub_key in (("trigger", "type"), ("action", "ref")):
        if doc.data.get(key) is None:
            raise doc.error(f'rule "{name}" has no "{key}"')
        _expect(doc, key, dict, "a mapping")
        value = doc.data[key].get(sub_key)
        if not isinstance(value, str) or not value:
            raise doc.error(f'rule "{name}": "{key}.{sub_key}" must be a non-empty string', key)
        params = doc.data[key].get("parameters")
        if params is not None and not isinstance(params, dict):
            raise doc.error(f'"{key}.parameters" must be a mapping', key, "parameters")
    for key in doc.data["action"]:
        if key not in _RULE_ACTION_KEYS:
            raise doc.error(
                f'unknown field "action.{key}" (use ref, parameters, description)', "action", key
            )
    rule_type = doc.data.get("type")
    if rule_type is not None and (
        not isinstance(rule_type, dict) or not isinstance(rule_type.get("ref"), str)
    ):
        raise doc.error('"type" must be a mapping with a "ref"', "type")

    _check_rule_logic(doc)
    rule = _base_item(doc, ctx, name)
    rule.update(
        description=doc.data.get("description") or "",
        # As in StackStorm, a rule that does not say otherwise is disabled.
        enabled=doc.data.get("enabled", False),
        criteria=doc.data.get("criteria") or {},
    )
    return rule


def _check_rule_logic(doc: _Doc) -> None:
    """Criteria and hygiene are checked here, where the line of a mistake is known."""
    for key, spec in (doc.data.get("criteria") or {}).items():
        try:
            compile_criteria({key: spec})
        except InvalidInput as exc:
            raise doc.error(exc.message, "criteria", key) from None
    for key, parse in (("throttle", parse_throttle), ("accumulate", parse_accumulate)):
        try:
            parse(doc.data.get(key))
        except InvalidInput as exc:
            raise doc.error(exc.message, key) from None


def _build_alias(doc: _Doc, ctx: _PackContext) -> dict[str, Any]:
    _check_keys(doc, _ALIAS_KEYS, "alias")
    name = _require_str(doc, "name", "the alias")
    _require_str(doc, "action_ref", f'alias "{name}"')
    _check_pack_field(doc, ctx.ref)
    _optional(doc, "description", str, "a string")
    _optional(doc, "enabled", bool, "true or false")
    for key in ("ack", "result", "extra", "immutable_parameters"):
        _optional(doc, key, dict, "a mapping")
    formats = doc.data.get("formats")
    if formats is not None:
        _expect(doc, "formats", list, "a list")
        for index, fmt in enumerate(formats):
            if isinstance(fmt, str):
                continue
            representation = fmt.get("representation", []) if isinstance(fmt, dict) else None
            if not isinstance(representation, list) or not all(
                isinstance(r, str) for r in representation
            ):
                raise doc.error(
                    "each format must be a string or a mapping with display and a "
                    "representation list of strings",
                    "formats",
                    index,
                )

    alias = _base_item(doc, ctx, name)
    alias.update(
        description=doc.data.get("description") or "",
        enabled=doc.data.get("enabled", True),
        formats=formats or [],
    )
    return alias


def _build_policy(doc: _Doc, ctx: _PackContext) -> dict[str, Any]:
    _check_keys(doc, _POLICY_KEYS, "policy")
    name = _require_str(doc, "name", "the policy")
    _require_str(doc, "resource_ref", f'policy "{name}"')
    _require_str(doc, "policy_type", f'policy "{name}"')
    _check_pack_field(doc, ctx.ref)
    _optional(doc, "description", str, "a string")
    _optional(doc, "enabled", bool, "true or false")
    params = doc.data.get("parameters")
    if params is not None:
        _expect(doc, "parameters", dict, "a mapping")
        for key, value in params.items():
            if not isinstance(key, str) or not _PARAM_NAME_RE.fullmatch(key):
                raise doc.error(f'policy parameter name "{key}" is invalid', "parameters", key)
            if value is None:
                raise doc.error(f'policy parameter "{key}" has no value', "parameters", key)

    policy = _base_item(doc, ctx, name)
    policy.update(
        description=doc.data.get("description") or "",
        enabled=doc.data.get("enabled", True),
        parameters=params or {},
    )
    return policy


def _build_trigger(doc: _Doc, ctx: _PackContext) -> dict[str, Any]:
    _check_keys(doc, _TRIGGER_KEYS, "trigger type")
    return _trigger_type(doc, ctx, doc.data, ())


def _trigger_type(
    doc: _Doc, ctx: _PackContext, data: Mapping[str, Any], where: tuple[str, ...]
) -> dict[str, Any]:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise doc.error('a trigger type needs a non-empty "name"', *where)
    pack = data.get("pack")
    if pack is not None and pack != ctx.ref:
        raise doc.error(f'"pack" says "{pack}" but the file belongs to pack "{ctx.ref}"', *where)
    for key in ("payload_schema", "parameters_schema"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise doc.error(f'trigger type "{name}": "{key}" must be a mapping', *where, key)
    trigger: dict[str, Any] = {"name": name, "pack": ctx.ref, "ref": f"{ctx.ref}.{name}"}
    for key, value in data.items():
        if key not in trigger and key not in _DROPPED_KEYS:
            trigger[key] = value
    trigger.update(
        description=data.get("description") or "",
        payload_schema=data.get("payload_schema") or {},
        parameters_schema=data.get("parameters_schema") or {},
        metadata_file=doc.rel,
    )
    return trigger


def _build_sensor(doc: _Doc, ctx: _PackContext) -> dict[str, Any]:
    class_name = _require_str(doc, "class_name", "the sensor")
    entry_point = _require_str(doc, "entry_point", f'sensor "{class_name}"')
    _check_pack_field(doc, ctx.ref)
    _optional(doc, "description", str, "a string")
    _optional(doc, "enabled", bool, "true or false")
    poll_interval = doc.data.get("poll_interval")
    if poll_interval is not None:
        _expect(doc, "poll_interval", (int, float), "a number of seconds")
        if poll_interval < _MIN_POLL_INTERVAL:
            raise doc.error(
                f"poll_interval must be at least {_MIN_POLL_INTERVAL} seconds", "poll_interval"
            )
    # A sensor's entry point is relative to the directory of its metadata file.
    entry_point_path = _resolve_entry_point(doc, ctx.path, doc.path.parent, entry_point)
    if not entry_point_path.is_file():
        raise doc.error(
            f'entry point "{entry_point}" of sensor "{class_name}" does not exist '
            f"(looked for {entry_point_path.relative_to(ctx.path).as_posix()})",
            "entry_point",
        )
    declared = doc.data.get("trigger_types")
    declared = [] if declared is None else declared
    if not isinstance(declared, list):
        raise doc.error('"trigger_types" must be a list of trigger types', "trigger_types")
    trigger_types = [
        _trigger_type(doc, ctx, t if isinstance(t, dict) else {}, ("trigger_types", str(i)))
        for i, t in enumerate(declared)
    ]

    sensor = _base_item(doc, ctx, class_name)
    sensor.update(
        class_name=class_name,
        description=doc.data.get("description") or "",
        enabled=doc.data.get("enabled", True),
        entry_point=entry_point,
        entry_point_path=str(entry_point_path),
        poll_interval=poll_interval,
        trigger_types=[t["ref"] for t in trigger_types],
    )
    for index, trigger in enumerate(trigger_types):
        ctx.sensor_triggers.append((sensor, doc, index, trigger))
    return sensor


def _sensor_trigger_types(
    ctx: _PackContext,
    sensors: list[dict[str, Any]],
    declared: list[dict[str, Any]],
    errors: list[ContentError],
) -> list[dict[str, Any]]:
    """Trigger types declared inside (loaded) sensor files.

    They are reported in ``LoadedPack.triggers`` after the ones from
    ``triggers/``; the sensor itself keeps only their refs.
    """
    loaded = {id(sensor) for sensor in sensors}
    seen = {t["name"]: t["metadata_file"] for t in declared}
    result = []
    for sensor, doc, index, trigger in ctx.sensor_triggers:
        if id(sensor) not in loaded:
            continue
        if trigger["name"] in seen:
            errors.append(
                doc.error(
                    f'duplicate trigger type "{trigger["name"]}": '
                    f"{seen[trigger['name']]} already defines it",
                    "trigger_types",
                    index,
                )
            )
            continue
        seen[trigger["name"]] = doc.rel
        result.append(trigger)
    return result


# --------------------------------------------------------------------------
# Config schema and config


def _load_config_schema(ctx: _PackContext, errors: list[ContentError]) -> dict[str, Any] | None:
    path = ctx.path / CONFIG_SCHEMA_FILE
    if not path.is_file():
        return None
    try:
        doc = _read_doc(path, ctx.path, "the config schema")
        if not doc.data:
            raise doc.error("the config schema is empty")
        _check_parameters(doc, doc.data, (), "the config schema")
    except ContentError as exc:
        errors.append(exc)
        return None
    return doc.data


def _load_config(
    ctx: _PackContext,
    schema: dict[str, Any] | None,
    config_dir: Path | None,
    errors: list[ContentError],
) -> dict[str, Any]:
    """The pack's config with the schema's defaults filled in.

    Values are left as written: Jinja expressions such as
    ``{{ st2kv.system.token }}`` are resolved later, at run time, and are not
    checked against the schema here. A config file that breaks the schema is
    reported and ignored, leaving only the defaults.
    """
    values: dict[str, Any] = {}
    path = _config_file(ctx.ref, config_dir)
    if path is not None:
        try:
            data, lines = _parse_yaml(path)
            if data is not None and not isinstance(data, dict):
                raise ContentError(
                    str(path),
                    f"expected the config as a mapping, got {_type_name(data)}",
                    lines.get(()),
                )
            values = data or {}
            if schema:
                _validate_config(values, schema, path, lines)
        except ContentError as exc:
            errors.append(exc)
            values = {}
    values = copy.deepcopy(values)
    if schema:
        _apply_defaults(schema, values)
    return values


def _config_file(ref: str, config_dir: Path | None) -> Path | None:
    if config_dir is None:
        return None
    for suffix in YAML_SUFFIXES:
        path = Path(config_dir) / f"{ref}{suffix}"
        if path.is_file():
            return path
    return None


def _validate_config(
    values: dict[str, Any], schema: dict[str, Any], path: Path, lines: _Lines
) -> None:
    json_schema = {
        "type": "object",
        "properties": {k: _to_json_schema(v) for k, v in schema.items()},
        "required": [k for k, v in schema.items() if v.get("required") is True],
        "additionalProperties": True,
    }
    for error in jsonschema.Draft4Validator(json_schema).iter_errors(values):
        if isinstance(error.instance, str) and _JINJA_RE.search(error.instance):
            continue  # resolved at run time
        key_path = tuple(str(p) for p in error.absolute_path)
        where = ".".join(key_path) or "(top level)"
        top = schema.get(key_path[0]) if key_path else None
        if isinstance(top, dict) and top.get("secret"):
            # The message would quote the value; never put a secret in an error.
            reason = f"config value {where} does not match the schema ({error.validator})"
        else:
            reason = f"config value {where}: {error.message}"
        while key_path not in lines and key_path:
            key_path = key_path[:-1]
        raise ContentError(str(path), reason, lines.get(key_path))


def _to_json_schema(spec: Any) -> Any:
    """A StackStorm parameter definition as a draft 4 JSON schema.

    ``required: true`` on a property becomes the parent's ``required`` list,
    StackStorm-only attributes go, and a property whose default is null
    also accepts null.
    """
    if not isinstance(spec, dict):
        return spec
    result: dict[str, Any] = {}
    for key, value in spec.items():
        if key in ("required", "secret", "immutable", "position"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            result[key] = {k: _to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "allOf", "anyOf", "oneOf") and isinstance(value, list):
            result[key] = [_to_json_schema(v) for v in value]
        elif key in ("items", "additionalProperties", "additionalItems", "not"):
            result[key] = _to_json_schema(value)
        else:
            result[key] = value
    properties = spec.get("properties")
    if isinstance(properties, dict):
        required = [k for k, v in properties.items() if isinstance(v, dict) and v.get("required")]
        if required:
            result["required"] = required
    if "default" in spec and spec["default"] is None and isinstance(spec.get("type"), str):
        result["type"] = [spec["type"], "null"]
    return result


def _apply_defaults(schema: Mapping[Any, Any] | list[Any], config: Any) -> None:
    """Fill in schema defaults that ``config`` lacks, recursing like StackStorm.

    An object with declared properties, or an array with declared items,
    is created empty when missing so that nested defaults can be applied.
    """
    entries = schema.items() if isinstance(schema, Mapping) else enumerate(schema)
    for key, spec in entries:
        if not isinstance(spec, dict):
            continue
        if isinstance(config, list):
            if not isinstance(key, int) or key >= len(config):
                continue  # defaults fill in missing keys, never missing list items
            present = True
        else:
            present = key in config
        if "default" in spec and not present:
            config[key] = copy.deepcopy(spec["default"])
            present = True
        value = config[key] if present else None

        if spec.get("type") == "object" and (
            spec.get("properties") or spec.get("patternProperties")
            or isinstance(spec.get("additionalProperties"), dict)
        ):  # fmt: skip
            if not isinstance(value, dict):
                if value:
                    continue  # a wrong type; validation reports it
                value = config[key] = {}
            _apply_defaults(_object_property_schemas(spec, value), value)
        elif spec.get("type") == "array" and (spec.get("items") or spec.get("additionalItems")):
            if not isinstance(value, list):
                if value:
                    continue
                value = config[key] = []
            _apply_defaults(_array_item_schemas(spec, len(value)), value)


def _object_property_schemas(spec: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """Per-key schemas for an object: properties, then patterns, then the rest."""
    properties = spec.get("properties") or {}
    schemas: dict[str, Any] = dict(properties)
    patterns = spec.get("patternProperties") or {}
    additional = spec.get("additionalProperties")
    for key in value:
        if key in schemas:
            continue
        matched: dict[str, Any] = {}
        for pattern, sub in patterns.items():
            if isinstance(sub, dict) and re.search(pattern, str(key)):
                matched.update(sub)
        if matched:
            schemas[key] = matched
        elif isinstance(additional, dict):
            schemas[key] = additional
    return schemas


def _array_item_schemas(spec: dict[str, Any], count: int) -> list[Any]:
    items = spec.get("items") or []
    if isinstance(items, dict):
        return [items] * count
    schemas = list(items)
    additional = spec.get("additionalItems")
    if len(schemas) < count and isinstance(additional, dict):
        schemas.extend([additional] * (count - len(schemas)))
    return schemas
