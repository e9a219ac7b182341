"""Inventory formats: Squall's YAML, Ansible's INI, YAML and dynamic JSON.

Every parser here is pure: it takes the text (or decoded JSON) and the
source's name, used in messages and in each host's ``source``, and returns an
:class:`~squall.core.inventory.Inventory`. Reading files and running scripts
is :mod:`squall.services.inventory`'s job.

A source that cannot be read at all (malformed YAML, an INI syntax error, JSON
that is not an object) raises :class:`InventoryError` naming the source and,
where known, the line. Anything wrong with one host or group is recorded as a
:class:`Problem` instead and the rest loads.

Squall's YAML format
--------------------

.. code-block:: yaml

    defaults:                     # applied to every host of this file
      user: deploy
      key_file: ~/.ssh/fleet_ed25519
      facts: {dc: par1}
    hosts:
      web-01:
        address: 10.0.1.1
        facts: {role: web, hagroup: a}
      web-[02:20]:                # a range: web-02 ... web-20
        facts: {role: web}
      bastion:
        address: 203.0.113.7
        agent: false
      db-1:
        address: 10.0.2.1
        port: 2222
        user: postgres
        password: s3cret          # kept, but masked wherever a host is shown
        certificate: ~/.ssh/fleet_ed25519-cert.pub
        jump: bastion             # an inventory host, or [user@]host[:port]
        groups: [databases]
      db-2: {address: 10.0.2.2, groups: [databases]}
    groups:
      webservers:
        hosts: [web-01, "web-[02:20]"]
        vars: {env: prod}
        children: [canary]
      canary:
        hosts: [web-01]
        vars: {env: canary}       # a child group's vars win over its parent's
      all:
        vars: {ntp: ntp.example.net}   # "all" holds every host of the file

The three top-level keys are optional. A host's fields are ``address`` (the
host's name when absent), ``port`` (1 to 65535, default 22), ``user``,
``password``, ``key_file``, ``certificate``, ``agent`` (offer the keys of a
running ssh-agent, default true), ``jump``, ``groups`` (a list of group
names) and ``facts`` (a mapping). A host's name is its key under ``hosts``,
and a key may hold host ranges as Ansible writes them (``web[01:50]``,
``db-[a:f]``, ``x[1:10:2]``, several per name). A host given no mapping
takes the defaults alone.

``defaults`` may hold any host field except ``address``. A host's own value
replaces the default, except for ``groups`` (the lists are joined) and
``facts`` (merged key by key). A group's ``vars`` become facts of every host
in it or in its children, so a host's facts are, lowest precedence first:
``defaults.facts``, the vars of its groups (parents before children, as
Ansible orders them: by depth, then name), its own ``facts``.

A group's ``hosts`` may name hosts that ``hosts:`` does not define: they are
created with the defaults alone, as Ansible does. Groups named by a host's
``groups`` or by a group's ``children`` need not be declared. Note that a
host created this way and also defined by another source is defined twice
when the sources are merged (the first definition wins, with a problem).

An unknown key in a host, group or ``defaults`` is a problem and is ignored;
a value of the wrong type (``port: abc``) is a problem and the host (or the
group) is skipped; a wrong value in ``defaults`` makes the whole file
unusable, since every host would get it. A host whose address is empty or
holds spaces is a problem and is skipped.

A YAML document whose top level has none of ``defaults``, ``hosts`` and
``groups`` but has a group mapping with ``hosts``, ``vars`` or ``children``
(typically ``all:``) is read as Ansible's YAML inventory instead (see
:func:`parse_ansible_yaml`).

Ansible formats
---------------

INI files, YAML inventories and dynamic-inventory JSON are read as Ansible
reads them, including its variable precedence (``all`` < parent group < child
group < host; groups at the same depth by ``ansible_group_priority``, then
name), its ``all`` and ``ungrouped`` groups, ``host:port`` and ranges in host
names. Connection variables become host fields and stay out of the facts:

- address: ``ansible_host`` (or ``ansible_ssh_host``)
- port: ``ansible_port`` (or ``ansible_ssh_port``)
- user: ``ansible_user`` (or ``ansible_ssh_user``)
- password: ``ansible_password`` (or ``ansible_ssh_pass``)
- key_file: ``ansible_ssh_private_key_file`` (or ``ansible_private_key_file``)
- jump: ``-J x``, ``-o ProxyJump=x`` or ``-o ProxyCommand="ssh -W %h:%p x"`` in
  ``ansible_ssh_common_args`` or ``ansible_ssh_extra_args``
- certificate: ``-o CertificateFile=x`` in the same arguments

Other options in the SSH arguments are ignored. Every other variable is a
fact; the values of become passwords are masked there.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import string
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from squall.core.inventory import DEFAULT_PORT, Group, Host, Inventory, InventoryError, Problem

__all__ = [
    "MAX_RANGE",
    "dynamic_host_names",
    "expand_range",
    "parse_ansible_yaml",
    "parse_dynamic",
    "parse_ini",
    "parse_yaml",
]

MAX_RANGE = 100_000  # hosts one name pattern may expand to; more is surely a typo
MASK = "********"

# --------------------------------------------------------------------------
# Host ranges


def expand_range(pattern: str) -> list[str]:
    """The host names an Ansible range pattern stands for, in order.

    ``web[01:03]`` is web01, web02, web03 (leading zeros are kept and both
    bounds must then have as many digits); ``db-[a:c]`` is db-a, db-b, db-c;
    ``x[1:10:2]`` steps by 2; an empty begin is 0; a name may hold several
    ranges. A name without brackets is itself. A malformed range raises
    :class:`ValueError` saying why.
    """
    total = 1
    parts: list[list[str]] = []
    rest = pattern
    while True:
        start = rest.find("[")
        close = rest.find("]")
        if start < 0:
            if close >= 0:
                raise ValueError(f"{pattern}: ']' without '['")
            parts.append([rest])
            break
        if 0 <= close < start:
            raise ValueError(f"{pattern}: ']' without '['")
        if close < 0:
            raise ValueError(f"{pattern}: '[' without ']'")
        spec = rest[start + 1 : close]
        try:
            values = _range_values(spec)
        except ValueError as exc:
            raise ValueError(f"{pattern}: bad range [{spec}]: {exc}") from None
        total *= len(values)
        if total > MAX_RANGE:
            raise ValueError(f"{pattern}: expands to more than {MAX_RANGE} names")
        parts.append([rest[:start]])
        parts.append(values)
        rest = rest[close + 1 :]
    names = [""]
    for choices in parts:
        names = [n + c for n in names for c in choices]
    return names


_DIGITS = re.compile(r"[0-9]+")


def _range_values(spec: str) -> list[str]:
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError("a range is [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    step = 1
    if len(bounds) == 3:
        if not _DIGITS.fullmatch(bounds[2]) or int(bounds[2]) == 0:
            raise ValueError("the step must be a whole number above 0")
        step = int(bounds[2])
    if not end:
        raise ValueError("the range has no end")
    if _DIGITS.fullmatch(begin) and _DIGITS.fullmatch(end):
        first, last = int(begin), int(end)
        if first > last:
            raise ValueError("begin is greater than end")
        width = 0
        if begin.startswith("0") and len(begin) > 1:
            if len(begin) != len(end):
                raise ValueError("with leading zeros, begin and end need as many digits")
            width = len(begin)
        if (last - first) // step + 1 > MAX_RANGE:
            raise ValueError(f"more than {MAX_RANGE} values")
        return [str(n).zfill(width) for n in range(first, last + 1, step)]
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        first, last = letters.index(begin), letters.index(end)
        if first > last:
            raise ValueError("begin is after end")
        return list(letters[first : last + 1 : step])
    raise ValueError("begin and end must both be numbers or both be single letters")


# Ansible's host[:port] forms: a port after a bracketed name (IPv6 must be
# bracketed to take one) or after a name whose brackets are ranges.
_BRACKETED_HOSTPORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOSTPORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")


def _expand_hostpattern(pattern: str) -> tuple[list[str], int | None]:
    """Host names and port of an Ansible host pattern; ValueError if bad."""
    port: int | None = None
    for regex in (_BRACKETED_HOSTPORT, _HOSTPORT):
        m = regex.match(pattern)
        if m:
            pattern, port = m.group(1), int(m.group(2))
    if port is None and pattern.endswith(":") and not _is_ipv6(pattern):
        raise ValueError(f"{pattern}: a host name cannot end with ':' (it introduces a port)")
    if pattern.strip() == "---":
        raise ValueError("'---' is a YAML document marker; is this file YAML?")
    if "[" in pattern:
        return expand_range(pattern), port
    return [pattern], port


def _is_ipv6(text: str) -> bool:
    return text.count(":") >= 2 and re.fullmatch(r"[0-9A-Fa-f:.]+", text) is not None


# --------------------------------------------------------------------------
# What every format builds: hosts and groups before precedence is applied


@dataclass
class _HostDecl:
    name: str
    where: str
    vars: dict[str, Any] = field(default_factory=dict)  # Ansible vars, or Squall fields


@dataclass
class _GroupDecl:
    name: str
    where: str
    hosts: dict[str, None] = field(default_factory=dict)  # an ordered set
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


class _Tree:
    def __init__(self, source: str) -> None:
        self.source = source
        self.hosts: dict[str, _HostDecl] = {}
        self.groups: dict[str, _GroupDecl] = {}
        self.problems: list[Problem] = []
        self._declared: set[str] = set()

    def where(self, line: int | None) -> str:
        return f"{self.source}:{line}" if line is not None else self.source

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.where(line), message))

    def group(self, name: str, line: int | None) -> _GroupDecl:
        if name not in self.groups:
            self.groups[name] = _GroupDecl(name, self.where(line))
        return self.groups[name]

    def declare(self, name: str, line: int | None) -> _GroupDecl:
        """The group where its own definition is, not where it was first named."""
        group = self.group(name, line)
        if name not in self._declared:
            self._declared.add(name)
            group.where = self.where(line)
        return group

    def host(self, name: str, line: int | None) -> _HostDecl:
        if name not in self.hosts:
            self.hosts[name] = _HostDecl(name, self.where(line))
        return self.hosts[name]

    def add_member(self, group: str, host: str, line: int | None) -> None:
        self.group(group, line).hosts.setdefault(host)

    def add_child(self, parent: str, child: str, line: int | None) -> None:
        self.group(child, line)
        children = self.group(parent, line).children
        if child in children:
            return
        if self._reaches(child, parent):
            self.problem(line, f"group {child} cannot be a child of {parent}: it contains it")
            return
        children.append(child)

    def _reaches(self, start: str, target: str) -> bool:
        seen: set[str] = set()
        stack = [start]
        while stack:
            g = stack.pop()
            if g == target:
                return True
            if g not in seen and g in self.groups:
                seen.add(g)
                stack.extend(self.groups[g].children)
        return False

    def resolve(
        self, priority: Callable[[_GroupDecl], int]
    ) -> Iterator[tuple[_HostDecl, list[str], dict[str, Any]]]:
        """Each host, every group it is in (directly or through children) and
        its groups' vars layered in Ansible's order, lowest first."""
        parents: dict[str, list[str]] = {g: [] for g in self.groups}
        direct: dict[str, list[str]] = {h: [] for h in self.hosts}
        for g in self.groups.values():
            for child in g.children:
                parents[child].append(g.name)
            for h in g.hosts:
                direct.setdefault(h, []).append(g.name)
        depths: dict[str, int] = {}

        def depth(g: str) -> int:
            if g not in depths:
                depths[g] = 1 + max((depth(p) for p in parents[g]), default=-1)
            return depths[g]

        for name, decl in self.hosts.items():
            member_of: set[str] = {"all"} if "all" in self.groups else set()
            stack = list(direct[name])
            while stack:
                up = stack.pop()
                if up not in member_of:
                    member_of.add(up)
                    stack.extend(parents[up])
            ordered = sorted(member_of, key=lambda n: (depth(n), priority(self.groups[n]), n))
            layered: dict[str, Any] = {}
            for n in ordered:
                layered.update(self.groups[n].vars)
            yield decl, sorted(member_of - {"all"}), layered

    def inventory(self, hosts: dict[str, Host], *, mask: bool = False) -> Inventory:
        groups = {
            g.name: Group(
                g.name,
                tuple(h for h in g.hosts if h in hosts),
                tuple(g.children),
                _masked(g.vars) if mask else dict(g.vars),
                g.where,
            )
            for g in self.groups.values()
        }
        prefix = len(self.source) + 1

        def line(p: Problem) -> int:  # problems in the order of the file's lines
            rest = p.source[prefix:]
            return int(rest) if p.source.startswith(self.source) and rest.isdigit() else 0

        return Inventory(hosts, groups, sorted(self.problems, key=line))


def _address_problem(name: str, address: str) -> str | None:
    if not address or any(c.isspace() for c in address):
        return f"host {name!r} has no address" + (
            f" (address {address!r} is not usable)" if address != name else ""
        )
    return None


# --------------------------------------------------------------------------
# YAML with line numbers


# libyaml composes ten times faster than PyYAML's Python parser, when present.
_Composer: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Constructor(yaml.constructor.SafeConstructor):
    """Safe YAML whose timestamps stay strings, so facts stay JSON, and which
    knows Ansible's ``!vault`` values (without decrypting them)."""


class _Vaulted(str):
    """An Ansible Vault ciphertext: usable as no password, masked as a fact."""


def _timestamp_as_text(constructor: _Constructor, node: yaml.Node) -> Any:
    assert isinstance(node, yaml.ScalarNode)
    return constructor.construct_scalar(node)


def _vaulted(constructor: _Constructor, node: yaml.Node) -> Any:
    assert isinstance(node, yaml.ScalarNode)
    return _Vaulted(constructor.construct_scalar(node))


_Constructor.yaml_constructors = {
    **yaml.constructor.SafeConstructor.yaml_constructors,
    "tag:yaml.org,2002:timestamp": _timestamp_as_text,
    "!vault": _vaulted,
}


def _compose(text: str, source: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Composer)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, source) from None
    except yaml.YAMLError as exc:
        raise InventoryError(source, f"invalid YAML: {exc}") from None


def _yaml_error(exc: yaml.MarkedYAMLError, source: str) -> InventoryError:
    mark = exc.problem_mark or exc.context_mark
    reason = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
    return InventoryError(source, f"invalid YAML: {reason}", mark.line + 1 if mark else None)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _value(node: yaml.Node) -> Any:
    return _Constructor().construct_object(node, deep=True)


def _items(node: yaml.MappingNode, source: str) -> list[tuple[str, int, yaml.Node]]:
    """A mapping's (key, line of the key, value node), merge keys applied."""
    _Constructor().flatten_mapping(node)
    out = []
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise InventoryError(source, "a key must be a plain name", _line(key))
        out.append((str(key.value), _line(key), value))
    return out


def _names(node: yaml.Node) -> list[tuple[str, int]] | None:
    """A YAML list of plain names (their text as written) and their lines, or None."""
    if _is_null(node):
        return []
    if not isinstance(node, yaml.SequenceNode):
        return None
    if not all(isinstance(n, yaml.ScalarNode) and not _is_null(n) for n in node.value):
        return None
    return [(str(n.value), _line(n)) for n in node.value]


# --------------------------------------------------------------------------
# Squall's YAML format


def _as_str(value: Any) -> str:
    if isinstance(value, _Vaulted):
        raise ValueError("is encrypted with Ansible Vault, which Squall cannot decrypt")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be a string")
    text = str(value)
    if not text:
        raise ValueError("must not be empty")
    return text


def _as_port(value: Any) -> int:
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"must be a whole number from 1 to 65535, not {value!r}")
    return value


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "false", "no", "off"):
        return value.lower() in ("true", "yes", "on")
    raise ValueError(f"must be true or false, not {value!r}")


def _as_groups(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
        raise ValueError("must be a list of group names")
    return value


def _as_facts(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("must be a mapping of names to values")
    return value


_FIELDS: dict[str, Callable[[Any], Any]] = {
    "address": _as_str,
    "port": _as_port,
    "user": _as_str,
    "password": _as_str,
    "key_file": _as_str,
    "certificate": _as_str,
    "agent": _as_bool,
    "jump": _as_str,
    "groups": _as_groups,
    "facts": _as_facts,
}
_TOP_KEYS = ("defaults", "hosts", "groups")
_GROUP_KEYS = ("hosts", "vars", "children")


def parse_yaml(text: str, source: str) -> Inventory:
    """An inventory in Squall's YAML format (see the module's documentation),
    or in Ansible's YAML inventory format when the document is one."""
    root = _compose(text, source)
    if root is None or _is_null(root):
        return Inventory()
    if not isinstance(root, yaml.MappingNode):
        raise InventoryError(
            source, "the top level must be a mapping of defaults, hosts and groups", _line(root)
        )
    try:
        top = _items(root, source)
        if _is_ansible_yaml(top):
            return _ansible_yaml(top, source)
        return _squall_yaml(top, source)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, source) from None


def _is_ansible_yaml(top: list[tuple[str, int, yaml.Node]]) -> bool:
    if any(key in _TOP_KEYS for key, _, _ in top):
        return False
    return any(
        isinstance(node, yaml.MappingNode)
        and any(isinstance(k, yaml.ScalarNode) and k.value in _GROUP_KEYS for k, _ in node.value)
        for _, _, node in top
    )


def _fields(
    tree: _Tree, owner: str, node: yaml.Node, line: int, *, defaults: bool = False
) -> dict[str, Any] | None:
    """The host fields a mapping gives, or None (after a problem) if one is
    of the wrong type. Unknown keys are problems and are ignored. A wrong
    value in ``defaults`` raises InventoryError: every host would get it."""
    if _is_null(node):
        return {}
    if not isinstance(node, yaml.MappingNode):
        if defaults:
            raise InventoryError(tree.source, "defaults must be a mapping of host fields", line)
        tree.problem(line, f"{owner}: expected a mapping of host fields; skipped")
        return None
    out: dict[str, Any] = {}
    ok = True
    for key, key_line, value_node in _items(node, tree.source):
        if key not in _FIELDS or (defaults and key == "address"):
            known = ", ".join(k for k in _FIELDS if not (defaults and k == "address"))
            tree.problem(key_line, f"{owner}: unknown key {key!r} ignored (known: {known})")
            continue
        try:
            out[key] = _FIELDS[key](_value(value_node))
        except ValueError as exc:
            if defaults:
                raise InventoryError(tree.source, f"{owner}: {key} {exc}", key_line) from None
            tree.problem(key_line, f"{owner}: {key} {exc}; skipped")
            ok = False
    return out if ok else None


def _squall_yaml(top: list[tuple[str, int, yaml.Node]], source: str) -> Inventory:
    tree = _Tree(source)
    sections: dict[str, tuple[int, yaml.Node]] = {}
    for key, line, node in top:
        if key not in _TOP_KEYS:
            tree.problem(
                line, f"unknown top-level key {key!r} ignored (known: defaults, hosts, groups)"
            )
        elif not (_is_null(node) or isinstance(node, yaml.MappingNode)):
            raise InventoryError(source, f"{key} must be a mapping", line)
        else:
            sections[key] = (line, node)

    defaults: dict[str, Any] = {}
    if "defaults" in sections:
        line, node = sections["defaults"]
        defaults = _fields(tree, "defaults", node, line, defaults=True) or {}
    default_groups: list[str] = defaults.pop("groups", [])
    default_facts: dict[str, Any] = defaults.pop("facts", {})

    def define(name: str, line: int, fields: dict[str, Any]) -> None:
        decl = tree.host(name, line)
        decl.vars = fields
        for g in (*default_groups, *fields.get("groups", ())):
            tree.add_member(g, name, line)

    skipped: set[str] = set()  # names whose definition was broken: not re-created by groups
    if "hosts" in sections and isinstance(sections["hosts"][1], yaml.MappingNode):
        for pattern, line, node in _items(sections["hosts"][1], source):
            try:
                names = expand_range(pattern)
            except ValueError as exc:
                tree.problem(line, f"host {exc}; skipped")
                continue
            owner = f"host {pattern}"
            fields = _fields(tree, owner, node, line)
            if fields is None:
                skipped.update(names)
                continue
            for name in names:
                if name in tree.hosts:
                    tree.problem(
                        line, f"host {name} is already defined at {tree.hosts[name].where}; ignored"
                    )
                else:
                    define(name, line, fields)

    if "groups" in sections and isinstance(sections["groups"][1], yaml.MappingNode):
        for name, line, node in _items(sections["groups"][1], source):
            _squall_group(tree, name, line, node, skipped, define)

    hosts: dict[str, Host] = {}
    for decl, groups, layered in tree.resolve(lambda g: 1):
        fields = {**defaults, **decl.vars}
        address = fields.get("address", decl.name)
        bad = _address_problem(decl.name, address)
        if bad:
            tree.problems.append(Problem(decl.where, f"{bad}; skipped"))
            continue
        hosts[decl.name] = Host(
            name=decl.name,
            address=address,
            port=fields.get("port", DEFAULT_PORT),
            user=fields.get("user"),
            password=fields.get("password"),
            key_file=fields.get("key_file"),
            certificate=fields.get("certificate"),
            agent=fields.get("agent", True),
            jump=fields.get("jump"),
            groups=tuple(groups),
            facts={**default_facts, **layered, **fields.get("facts", {})},
            source=decl.where,
        )
    return tree.inventory(hosts)


def _squall_group(
    tree: _Tree,
    name: str,
    line: int,
    node: yaml.Node,
    skipped: set[str],
    define: Callable[[str, int, dict[str, Any]], None],
) -> None:
    owner = f"group {name}"
    if _is_null(node):
        tree.declare(name, line)
        return
    if not isinstance(node, yaml.MappingNode):
        tree.problem(line, f"{owner}: expected a mapping of hosts, vars and children; skipped")
        return
    members: list[tuple[str, int]] = []
    children: list[str] = []
    group_vars: dict[str, Any] = {}
    for key, key_line, value in _items(node, tree.source):
        if key == "hosts":
            patterns = _names(value)
            if patterns is None:
                tree.problem(key_line, f"{owner}: hosts must be a list of host names; skipped")
                return
            for pattern, item_line in patterns:
                try:
                    members.extend((n, item_line) for n in expand_range(pattern))
                except ValueError as exc:
                    tree.problem(item_line, f"{owner}: host {exc}; ignored")
        elif key == "children":
            got = _names(value)
            if got is None:
                tree.problem(key_line, f"{owner}: children must be a list of group names; skipped")
                return
            children = [name for name, _ in got]
        elif key == "vars":
            try:
                group_vars = _as_facts(_value(value))
            except ValueError as exc:
                tree.problem(key_line, f"{owner}: vars {exc}; skipped")
                return
        else:
            tree.problem(
                key_line, f"{owner}: unknown key {key!r} ignored (known: hosts, vars, children)"
            )
    group = tree.declare(name, line)
    group.vars.update(group_vars)
    for host, host_line in members:
        if host in skipped:
            continue
        if host not in tree.hosts:
            define(host, host_line, {})
        tree.add_member(name, host, host_line)
    for child in children:
        tree.add_child(name, child, line)


# --------------------------------------------------------------------------
# Ansible: connection variables and group precedence

_CONNECTION_VARS: dict[str, tuple[str, ...]] = {
    "address": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "password": ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password"),
    "key_file": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
}
_SSH_ARGS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")
_NOT_FACTS = frozenset(v for names in _CONNECTION_VARS.values() for v in names) | set(_SSH_ARGS)
_SECRET_VARS = frozenset(
    {
        "ansible_password",
        "ansible_ssh_pass",
        "ansible_ssh_password",
        "ansible_become_password",
        "ansible_become_pass",
        "ansible_sudo_pass",
        "ansible_su_pass",
    }
)


def _masked(variables: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: MASK if (k in _SECRET_VARS and v is not None) or isinstance(v, _Vaulted) else v
        for k, v in variables.items()
    }


def _priority(group: _GroupDecl) -> int:
    value = group.vars.get("ansible_group_priority", 1)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1


def _ansible_host(
    decl: _HostDecl, groups: list[str], variables: dict[str, Any]
) -> tuple[Host | None, str | None]:
    """A host from its Ansible variables, or the reason it cannot be one."""
    fields: dict[str, Any] = {}
    for name, keys in _CONNECTION_VARS.items():
        key = next((k for k in keys if variables.get(k) is not None), None)
        if key is None:
            continue
        try:
            fields[name] = (_as_port if name == "port" else _as_str)(variables[key])
        except ValueError as exc:
            return None, f"host {decl.name}: {key} {exc}; skipped"
    args = " ".join(str(variables[k]) for k in _SSH_ARGS if variables.get(k))
    if args:
        try:
            fields.update(_ssh_args(args))
        except ValueError as exc:
            return None, f"host {decl.name}: SSH arguments: {exc}; skipped"
    address = fields.get("address", decl.name)
    bad = _address_problem(decl.name, address)
    if bad:
        return None, f"{bad}; skipped"
    facts = _masked({k: v for k, v in variables.items() if k not in _NOT_FACTS})
    host = Host(
        name=decl.name,
        address=address,
        port=fields.get("port", DEFAULT_PORT),
        user=fields.get("user"),
        password=fields.get("password"),
        key_file=fields.get("key_file"),
        certificate=fields.get("certificate"),
        jump=fields.get("jump"),
        groups=tuple(groups),
        facts=facts,
        source=decl.where,
    )
    return host, None


_SSH_FLAGS_WITH_ARG = set("BbcDEeFIiJLlmOopQRSWw")


def _ssh_args(args: str) -> dict[str, str]:
    """``jump`` and ``certificate`` from OpenSSH command-line arguments."""
    options: dict[str, str] = {}  # lower-cased name -> value; the first one wins, as in ssh
    tokens = shlex.split(args)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in ("-o", "-J") and i < len(tokens):
            value, i = tokens[i], i + 1
        elif token[:2] in ("-o", "-J") and len(token) > 2:
            value = token[2:]
        else:
            continue
        if token.startswith("-J"):
            options.setdefault("proxyjump", value)
            continue
        m = re.match(r"\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)$", value)
        if m:
            options.setdefault(m.group(1).lower(), m.group(2).strip())
    out: dict[str, str] = {}
    if "certificatefile" in options:
        out["certificate"] = options["certificatefile"]
    jump = options.get("proxyjump")
    if jump is None and options.get("proxycommand", "none").lower() != "none":
        jump = _jump_of_proxy_command(options["proxycommand"])
    if jump is not None and jump.lower() != "none":
        if "," in jump:
            raise ValueError(f"a chain of jump hosts ({jump}) is not supported")
        out["jump"] = jump.removeprefix("ssh://")
    return out


def _jump_of_proxy_command(command: str) -> str:
    """The jump host of ``ssh -W %h:%p [-l user] [-p port] [user@]host``."""
    unsupported = ValueError(
        f"ProxyCommand {command!r} is not supported; use ProxyJump, or "
        "ProxyCommand='ssh -W %h:%p [user@]host'"
    )
    tokens = shlex.split(command)
    if not tokens or os.path.basename(tokens[0]) != "ssh":
        raise unsupported
    user = port = dest = None
    forward = False
    rest: list[str] = []  # the remote command, if any
    i = 1
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if rest or (dest is not None and not token.startswith("-")):
            rest.append(token)
        elif token.startswith("-") and len(token) > 1:
            flag = token[1]
            value: str | None = token[2:] or None
            if flag in _SSH_FLAGS_WITH_ARG and value is None and i < len(tokens):
                value, i = tokens[i], i + 1
            if flag == "l":
                user = value
            elif flag == "p":
                port = value
            elif flag == "W":
                forward = value == "%h:%p"
            elif flag == "J":
                raise unsupported
        else:
            dest = token.removeprefix("ssh://")
    netcat = len(rest) >= 2 and rest[-2:] == ["%h", "%p"]
    if dest is None or not ((forward and not rest) or netcat):
        raise unsupported
    if user and "@" not in dest:
        dest = f"{user}@{dest}"
    if port:
        dest = f"{dest}:{port}"
    return dest


def _ansible_inventory(tree: _Tree) -> Inventory:
    """Apply Ansible's rules to what a parser declared: every group without a
    parent is a child of ``all``, hosts in no group are in ``ungrouped``."""
    tree.group("all", None)
    ungrouped = tree.group("ungrouped", None)
    in_a_group = {
        h for g in tree.groups.values() if g.name not in ("all", "ungrouped") for h in g.hosts
    }
    for name in tree.hosts:
        if name not in in_a_group:
            ungrouped.hosts.setdefault(name)
    ungrouped.hosts = {h: None for h in ungrouped.hosts if h not in in_a_group}
    has_parent = {c for g in tree.groups.values() for c in g.children}
    for name in list(tree.groups):
        if name != "all" and name not in has_parent:
            tree.add_child("all", name, None)
    hosts: dict[str, Host] = {}
    for decl, groups, layered in tree.resolve(_priority):
        host, problem = _ansible_host(decl, groups, {**layered, **decl.vars})
        if host is None:
            tree.problems.append(Problem(decl.where, problem or "skipped"))
        else:
            hosts[host.name] = host
    return tree.inventory(hosts, mask=True)


# --------------------------------------------------------------------------
# Ansible INI

_SHELL_CHARS = re.compile(r"[\"'\\#]")
_SHLEX_BLANKS = re.compile(r"[ \t\r\n]+")
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def _literal(text: str) -> Any:
    """An INI value as Ansible reads it: a Python literal if it is one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    try:
        return _plain(value)
    except ValueError:
        return text


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    raise ValueError(value)  # complex, Ellipsis: not a variable's value


@dataclass
class _Pending:
    line: int
    state: str
    parents: list[str] = field(default_factory=list)


def parse_ini(text: str, source: str) -> Inventory:
    """An Ansible INI inventory, read as Ansible reads it.

    ``[group]`` sections hold host lines (a host name or range, ``host:port``
    allowed, then ``key=value`` variables whose values are Python literals
    where they parse as one); ``[group:vars]`` holds ``key=value`` lines (the
    value is the rest of the line, read the same way); ``[group:children]``
    holds group names. Lines before any section are in ``ungrouped``.
    Comments start with ``#`` or ``;``.

    Raises :class:`InventoryError` with the line for what Ansible rejects: an
    unknown section type, a malformed line, a bad range, a ``:vars`` or
    ``:children`` section naming a group that no section declares. A host
    line with a token that is not ``key=value`` is a problem and is ignored.
    """
    tree = _Tree(source)
    known = {"all", "ungrouped"}
    pending: dict[str, _Pending] = {}
    group, state = "ungrouped", "hosts"

    def resolve_pending(name: str) -> None:
        for parent in pending[name].parents:
            tree.add_child(parent, name, pending[name].line)
            if parent in pending and pending[parent].state == "children":
                resolve_pending(parent)
        pending.pop(name, None)

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = _SECTION.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise InventoryError(
                    source,
                    f"section [{group}:{state}] has unknown type {state!r}; "
                    "use [group], [group:vars] or [group:children]",
                    lineno,
                )
            if group not in known:
                if state == "vars" and group not in pending:
                    pending[group] = _Pending(lineno, state)
                known.add(group)
            tree.declare(group, lineno)
            if group in pending and state != "vars":
                if pending[group].state == "children":
                    resolve_pending(group)
                else:
                    del pending[group]
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventoryError(
                source,
                f"invalid section {line}: a section is [group], [group:vars] or "
                "[group:children], without spaces",
                lineno,
            )
        if state == "hosts":
            _ini_host_line(tree, line, lineno, group)
        elif state == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise InventoryError(source, f"expected key=value, got {line!r}", lineno)
            tree.group(group, lineno).vars[key.strip()] = _literal(value.strip())
        else:
            m = _GROUP_NAME.match(line)
            if not m:
                raise InventoryError(source, f"expected a group name, got {line!r}", lineno)
            child = m.group(1)
            if child in known:
                tree.add_child(group, child, lineno)
            elif child in pending:
                pending[child].parents.append(group)
            else:
                pending[child] = _Pending(lineno, "children", [group])

    for name, decl in pending.items():
        if decl.state == "vars":
            reason = f"section [{name}:vars] is for group {name}, which no section declares"
        else:
            parent = decl.parents[-1]
            reason = f"section [{parent}:children] names group {name}, which no section declares"
        raise InventoryError(source, reason, decl.line)
    return _ansible_inventory(tree)


def _ini_host_line(tree: _Tree, line: str, lineno: int, group: str) -> None:
    try:
        if _SHELL_CHARS.search(line):
            tokens = shlex.split(line, comments=True)
        else:  # the same words, without shlex's slow character-by-character scan
            tokens = _SHLEX_BLANKS.split(line)
    except ValueError as exc:
        raise InventoryError(tree.source, f"cannot read host line: {exc}", lineno) from None
    if not tokens:
        return
    try:
        names, port = _expand_hostpattern(tokens[0])
    except ValueError as exc:
        raise InventoryError(tree.source, str(exc), lineno) from None
    bad = [t for t in tokens[1:] if "=" not in t]
    if bad:
        tree.problem(
            lineno, f"expected key=value after host {tokens[0]}, got {bad[0]!r}; line ignored"
        )
        return
    variables: dict[str, Any] = {} if port is None else {"ansible_port": port}
    for token in tokens[1:]:
        key, _, value = token.partition("=")
        variables[key] = _literal(value)
    for name in names:
        tree.host(name, lineno).vars.update(variables)
        tree.add_member(group, name, lineno)


# --------------------------------------------------------------------------
# Ansible YAML


def parse_ansible_yaml(text: str, source: str) -> Inventory:
    """An inventory in Ansible's YAML format: top-level groups (usually just
    ``all``), each a mapping of ``hosts`` (host pattern -> its variables),
    ``vars`` and ``children`` (group name -> the same structure)."""
    root = _compose(text, source)
    if root is None or _is_null(root):
        return Inventory()
    if not isinstance(root, yaml.MappingNode):
        raise InventoryError(source, "the top level must be a mapping of groups", _line(root))
    try:
        return _ansible_yaml(_items(root, source), source)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, source) from None


def _ansible_yaml(top: list[tuple[str, int, yaml.Node]], source: str) -> Inventory:
    tree = _Tree(source)
    for name, line, node in top:
        _ansible_yaml_group(tree, name, line, node, None)
    return _ansible_inventory(tree)


def _ansible_yaml_group(
    tree: _Tree, name: str, line: int, node: yaml.Node, parent: str | None
) -> None:
    tree.declare(name, line)
    if parent is not None:
        tree.add_child(parent, name, line)
    if _is_null(node):
        return
    if not isinstance(node, yaml.MappingNode):
        tree.problem(line, f"group {name}: expected a mapping of hosts, vars and children; skipped")
        return
    for key, key_line, value in _items(node, tree.source):
        if _is_null(value):
            continue
        if key == "vars":
            try:
                tree.group(name, line).vars.update(_as_facts(_value(value)))
            except ValueError as exc:
                tree.problem(key_line, f"group {name}: vars {exc}; ignored")
        elif key == "children":
            if not isinstance(value, yaml.MappingNode):
                tree.problem(
                    key_line, f"group {name}: children must be a mapping of groups; ignored"
                )
                continue
            for child, child_line, child_node in _items(value, tree.source):
                _ansible_yaml_group(tree, child, child_line, child_node, name)
        elif key == "hosts":
            if not isinstance(value, yaml.MappingNode):
                tree.problem(
                    key_line,
                    f"group {name}: hosts must be a mapping of host names to variables; ignored",
                )
                continue
            for pattern, host_line, host_node in _items(value, tree.source):
                _ansible_yaml_host(tree, name, pattern, host_line, host_node)
        else:
            tree.problem(
                key_line,
                f"group {name}: unknown key {key!r} ignored (known: hosts, vars, children)",
            )


def _ansible_yaml_host(tree: _Tree, group: str, pattern: str, line: int, node: yaml.Node) -> None:
    try:
        names, port = _expand_hostpattern(pattern)
    except ValueError as exc:
        tree.problem(line, f"host {exc}; skipped")
        return
    variables = {} if _is_null(node) else _value(node)
    if not isinstance(variables, dict) or not all(isinstance(k, str) for k in variables):
        tree.problem(line, f"host {pattern}: its variables must be a mapping; skipped")
        return
    if port is not None:
        variables = {"ansible_port": port, **variables}
    for host in names:
        tree.host(host, line).vars.update(variables)
        tree.add_member(group, host, line)


# --------------------------------------------------------------------------
# Ansible dynamic inventory


def parse_dynamic(
    data: Any, source: str, hostvars: Mapping[str, Mapping[str, Any]] | None = None
) -> Inventory:
    """The output of an Ansible dynamic inventory's ``--list``.

    ``{"web": {"hosts": [...], "vars": {...}, "children": [...]},
    "db": ["h1", "h2"], "_meta": {"hostvars": {"h1": {...}}}}``. A group
    given as a mapping without ``hosts``, ``vars`` or ``children`` is a host
    of that name with those variables, as Ansible reads it. When ``_meta`` is
    absent, ``hostvars`` gives each host's variables (what ``--host NAME``
    printed).
    """
    if not isinstance(data, dict):
        raise InventoryError(source, f"expected a JSON object of groups, got {type(data).__name__}")
    tree = _Tree(source)
    per_host: Mapping[str, Any] = hostvars or {}
    if "_meta" in data:
        meta = data["_meta"]
        found = meta.get("hostvars", {}) if isinstance(meta, dict) else None
        if isinstance(found, dict):
            per_host = found
        else:
            tree.problem(None, "_meta.hostvars must be an object of host variables; ignored")
            per_host = {}
    for name, group in data.items():
        if name == "_meta":
            continue
        if not isinstance(group, dict):
            group = {"hosts": group}
        elif not any(k in group for k in _GROUP_KEYS):
            group = {"hosts": [name], "vars": group}
        members = group.get("hosts") or []
        children = group.get("children") or []
        group_vars = group.get("vars") or {}
        if not isinstance(members, list) or not all(isinstance(h, str) and h for h in members):
            tree.problem(None, f"group {name}: hosts must be a list of host names; group skipped")
            continue
        if not isinstance(children, list) or not all(isinstance(c, str) and c for c in children):
            tree.problem(
                None, f"group {name}: children must be a list of group names; group skipped"
            )
            continue
        if not isinstance(group_vars, dict):
            tree.problem(None, f"group {name}: vars must be an object; group skipped")
            continue
        tree.group(name, None).vars.update(group_vars)
        for host in members:
            tree.host(host, None)
            tree.add_member(name, host, None)
        for child in children:
            tree.add_child(name, child, None)
    for host in list(tree.hosts):
        variables = per_host.get(host, {})
        if variables is None:
            variables = {}
        if not isinstance(variables, dict):
            tree.problem(None, f"host {host}: its variables must be an object; skipped")
            del tree.hosts[host]
            continue
        tree.hosts[host].vars.update(variables)
    return _ansible_inventory(tree)


def dynamic_host_names(data: Any) -> list[str]:
    """The hosts a dynamic inventory's ``--list`` output names, in order: the
    ones to ask ``--host`` about when it has no ``_meta``."""
    if not isinstance(data, dict):
        return []
    names: dict[str, None] = {}
    for name, group in data.items():
        if name == "_meta":
            continue
        if not isinstance(group, dict):
            members = group
        elif not any(k in group for k in _GROUP_KEYS):
            members = [name]
        else:
            members = group.get("hosts")
        if isinstance(members, list):
            names.update((h, None) for h in members if isinstance(h, str) and h)
    return list(names)
