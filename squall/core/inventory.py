"""The fleet inventory: hosts, their connection details, groups and facts.

This module is the model, shared by every inventory source (Squall's YAML
files, Ansible INI files, dynamic inventory scripts; see
:mod:`squall.core.inventory_sources`) and by targeting
(:mod:`squall.core.targeting`). It does no I/O.

A host's *facts* are what is known about it: the labels and variables its
inventory gives it (``role``, ``env``, ``hagroup``, Ansible host variables,
...), overlaid on the facts gathered from the host itself (``os``,
``kernel``, ``cpus``, ...). Declared values win: they are the operator's
intent, gathered ones are observations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from squall.errors import InvalidInput

__all__ = ["Group", "Host", "Inventory", "InventoryError", "Problem", "merge"]

DEFAULT_PORT = 22


class InventoryError(InvalidInput):
    """An inventory source cannot be read; names the source, line and problem."""

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason

    def to_dict(self) -> dict[str, object]:
        return {"faultstring": self.message, "path": self.source, "line": self.line}


@dataclass(frozen=True)
class Problem:
    """Something wrong with one host or group that does not stop the rest loading."""

    source: str  # "path:line" or "path"
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass(frozen=True)
class Host:
    """One server, as the inventory describes it.

    ``address`` is what SSH connects to (a name or an IP); when an inventory
    gives none, the host's name is used, as OpenSSH and Ansible do.
    ``jump`` names a jump host: an inventory host name or ``[user@]host[:port]``.
    """

    name: str
    address: str
    port: int = DEFAULT_PORT
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    key_file: str | None = None
    certificate: str | None = None  # an OpenSSH certificate for key_file
    agent: bool = True  # offer the keys of a running ssh-agent (SSH_AUTH_SOCK)
    jump: str | None = None
    groups: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # where it was defined, "path:line"

    def with_facts(self, gathered: Mapping[str, Any]) -> Host:
        """This host with gathered facts underneath its declared ones."""
        if not gathered:
            return self
        return replace(self, facts={**gathered, **self.facts})

    def to_dict(self, *, secrets: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "key_file": self.key_file,
            "certificate": self.certificate,
            "jump": self.jump,
            "groups": list(self.groups),
            "facts": dict(self.facts),
            "source": self.source,
        }
        if self.password is not None:
            data["password"] = self.password if secrets else "********"
        return data


@dataclass(frozen=True)
class Group:
    name: str
    hosts: tuple[str, ...] = ()  # direct members, by host name
    children: tuple[str, ...] = ()  # names of child groups
    vars: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


@dataclass
class Inventory:
    """Hosts in inventory order, groups by name, and what could not be loaded."""

    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def members(self, group: str) -> set[str]:
        """Every host name in ``group`` and, recursively, in its children."""
        seen: set[str] = set()
        names: set[str] = set()
        stack = [group]
        while stack:
            g = stack.pop()
            if g in seen or g not in self.groups:
                continue
            seen.add(g)
            names.update(self.groups[g].hosts)
            stack.extend(self.groups[g].children)
        if group == "all":
            names.update(self.hosts)
        return names

    def with_facts(self, gathered: Mapping[str, Mapping[str, Any]]) -> Inventory:
        """A copy whose hosts carry the gathered facts under their declared ones."""
        if not gathered:
            return self
        hosts = {n: h.with_facts(gathered.get(n, {})) for n, h in self.hosts.items()}
        return Inventory(hosts, self.groups, self.problems)


def merge(inventories: Iterable[Inventory]) -> Inventory:
    """Several sources as one: a host defined twice keeps the first definition
    (a problem names both places); groups of the same name are united."""
    out = Inventory()
    for inv in inventories:
        out.problems.extend(inv.problems)
        for name, host in inv.hosts.items():
            first = out.hosts.get(name)
            if first is None:
                out.hosts[name] = host
                continue
            out.problems.append(
                Problem(host.source, f"host {name} is already defined at {first.source}; ignored")
            )
        for name, group in inv.groups.items():
            known = out.groups.get(name)
            if known is None:
                out.groups[name] = group
                continue
            out.groups[name] = Group(
                name,
                tuple(dict.fromkeys((*known.hosts, *group.hosts))),
                tuple(dict.fromkeys((*known.children, *group.children))),
                {**group.vars, **known.vars},
                known.source,
            )
    return out
