"""The fleet inventory as configured: files, directories and dynamic scripts.

Each configured path is a file or a directory. A directory stands for every
file directly in it, sorted by name, except hidden files and editors' and
packagers' leftovers (``*~``, ``*.bak``, ``*.orig``, ``*.swp``, ``*.retry``,
...); subdirectories (Ansible's ``group_vars``, ``host_vars``) are skipped.
A file's kind is decided by :func:`detect`.

:class:`InventoryService` keeps the merged inventory and reads a file again
only when its modification time or size changed (checked at most once a
second), and runs a script again once its output is older than
``script_ttl``. A source that cannot be read or parsed contributes no hosts,
only a :class:`~squall.core.inventory.Problem` saying why; the other sources
still load and the service never raises for a broken source.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from squall.core.inventory import Inventory, InventoryError, Problem, merge
from squall.core.inventory_sources import (
    dynamic_host_names,
    parse_dynamic,
    parse_ini,
    parse_yaml,
)

__all__ = [
    "InventoryService",
    "InventorySource",
    "Kind",
    "detect",
    "from_settings_value",
    "sources",
]

log = logging.getLogger(__name__)

Kind = Literal["yaml", "ini", "json", "script"]

CHECK_INTERVAL = 1.0  # seconds between two looks at the files' mtime and size
_LEFTOVERS = (
    "~",
    ".bak",
    ".orig",
    ".swp",
    ".tmp",
    ".retry",
    ".pyc",
    ".pyo",
    ".rpm",
    ".dpkg-old",
    ".dpkg-new",
    ".rpmnew",
    ".rpmsave",
    ".md",
    ".rst",
    ".txt",
    ".cfg",
)


@dataclass(frozen=True)
class InventorySource:
    path: Path
    kind: Kind


def detect(path: Path) -> Kind:
    """How to read one inventory file.

    ``.yaml``/``.yml``: YAML (Squall's format, or Ansible's YAML inventory,
    told apart by their content); ``.json``: JSON as a dynamic inventory
    prints it (a saved ``--list``); ``.ini``: Ansible INI; any other
    executable file: a dynamic inventory script; anything else: Ansible INI.
    The extension wins over the executable bit, which files copied from
    some filesystems carry by accident.
    """
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    if suffix == ".ini":
        return "ini"
    if path.is_file() and os.access(path, os.X_OK):
        return "script"
    return "ini"


def sources(path: Path) -> list[InventorySource]:
    """The sources one configured path stands for (OSError if unlistable)."""
    if not path.is_dir():
        return [InventorySource(path, detect(path))]
    files = sorted(
        p
        for p in path.iterdir()
        if not p.name.startswith(".") and not p.name.endswith(_LEFTOVERS) and p.is_file()
    )
    return [InventorySource(p, detect(p)) for p in files]


def from_settings_value(value: str) -> list[Path]:
    """Paths from a setting such as ``"/etc/squall/hosts.yaml:~/inventory"``."""
    return [Path(part.strip()).expanduser() for part in value.split(":") if part.strip()]


@dataclass
class _Loaded:
    kind: Kind
    stamp: tuple[int, int]  # mtime_ns, size
    at: float  # clock time of the read
    inventory: Inventory


class _ScriptFailed(Exception):
    pass


def _problem(exc: InventoryError) -> Problem:
    where = f"{exc.source}:{exc.line}" if exc.line is not None else exc.source
    return Problem(where, exc.reason)


def _broken(source: str, message: str) -> Inventory:
    return Inventory(problems=[Problem(source, message)])


class InventoryService:
    """The merged inventory of the configured paths, kept fresh; thread-safe."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        script_timeout: float = 30.0,
        script_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.script_timeout = script_timeout
        self.script_ttl = script_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: dict[Path, _Loaded] = {}
        self._parts: list[Inventory] = []
        self._inventory = Inventory()
        self._checked_at: float | None = None

    def get(self) -> Inventory:
        """The current inventory, re-reading what changed since the last look."""
        with self._lock:
            if self._checked_at is None or self._clock() - self._checked_at >= CHECK_INTERVAL:
                self._refresh(force=False)
            return self._inventory

    def reload(self) -> Inventory:
        """Read every source again, whether it changed or not."""
        with self._lock:
            self._refresh(force=True)
            return self._inventory

    def _refresh(self, *, force: bool) -> None:
        parts: list[Inventory] = []
        seen: set[Path] = set()
        for configured in self.paths:
            if not configured.exists():
                parts.append(_broken(str(configured), "inventory path does not exist"))
                continue
            try:
                found = sources(configured)
            except OSError as exc:
                parts.append(_broken(str(configured), f"cannot list: {exc.strerror or exc}"))
                continue
            for source in found:
                seen.add(source.path)
                parts.append(self._load(source, force=force))
        for gone in set(self._loaded) - seen:
            del self._loaded[gone]
        if len(parts) != len(self._parts) or any(
            a is not b for a, b in zip(parts, self._parts, strict=True)
        ):
            self._parts = parts
            self._inventory = merge(parts)
        self._checked_at = self._clock()

    def _load(self, source: InventorySource, *, force: bool) -> Inventory:
        path = source.path
        try:
            st = path.stat()
        except OSError as exc:
            self._loaded.pop(path, None)
            return _broken(str(path), f"cannot read: {exc.strerror or exc}")
        stamp = (st.st_mtime_ns, st.st_size)
        now = self._clock()
        known = self._loaded.get(path)
        if (
            known is not None
            and not force
            and known.kind == source.kind
            and known.stamp == stamp
            and (source.kind != "script" or now - known.at < self.script_ttl)
        ):
            return known.inventory
        inventory = self._read(source)
        for problem in inventory.problems:
            log.warning("inventory: %s", problem)
        self._loaded[path] = _Loaded(source.kind, stamp, now, inventory)
        return inventory

    def _read(self, source: InventorySource) -> Inventory:
        name = str(source.path)
        try:
            if source.kind == "script":
                return self._run_script(source.path)
            text = source.path.read_text(encoding="utf-8")
            if source.kind == "yaml":
                return parse_yaml(text, name)
            if source.kind == "json":
                return parse_dynamic(json.loads(text), name)
            return parse_ini(text, name)
        except InventoryError as exc:
            return Inventory(problems=[_problem(exc)])
        except _ScriptFailed as exc:
            return _broken(name, str(exc))
        except json.JSONDecodeError as exc:
            return _broken(f"{name}:{exc.lineno}", f"invalid JSON: {exc.msg}")
        except UnicodeDecodeError as exc:
            return _broken(name, f"cannot read: not UTF-8 text ({exc.reason})")
        except OSError as exc:
            return _broken(name, f"cannot read: {exc.strerror or exc}")
        except Exception as exc:  # a bug must not take the other sources down
            log.exception("inventory: cannot load %s", name)
            return _broken(name, f"cannot load: {exc}")

    # -- dynamic inventory scripts

    def _run_script(self, path: Path) -> Inventory:
        deadline = self._clock() + self.script_timeout
        data = self._call(path, ["--list"], deadline)
        hostvars: dict[str, Any] | None = None
        if isinstance(data, dict) and "_meta" not in data:
            hostvars = {}
            for host in dynamic_host_names(data):
                hostvars[host] = self._call(path, ["--host", host], deadline, empty_ok=True)
        return parse_dynamic(data, str(path), hostvars)

    def _call(self, path: Path, args: list[str], deadline: float, *, empty_ok: bool = False) -> Any:
        what = f"inventory script {' '.join(args)}"
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _ScriptFailed(f"{what}: timed out after {self.script_timeout:g}s")
        try:
            proc = subprocess.Popen(
                [str(path.absolute()), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # so a timeout ends its children too
            )
        except OSError as exc:
            raise _ScriptFailed(f"cannot run inventory script: {exc.strerror or exc}") from None
        try:
            out, err = proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            err = _kill_group(proc)
            raise _ScriptFailed(
                f"{what}: timed out after {self.script_timeout:g}s{_last_line(err)}"
            ) from None
        if proc.returncode != 0:
            raise _ScriptFailed(f"{what}: exited with status {proc.returncode}{_last_line(err)}")
        text = out.decode("utf-8", "replace")
        if not text.strip():
            if empty_ok:
                return {}
            raise _ScriptFailed(f"{what}: printed nothing{_last_line(err)}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _ScriptFailed(
                f"{what}: printed invalid JSON ({exc.msg}, line {exc.lineno}){_last_line(err)}"
            ) from None
        if empty_ok and not isinstance(data, dict):
            raise _ScriptFailed(f"{what}: printed {type(data).__name__}, not a JSON object")
        return data


def _kill_group(proc: subprocess.Popen[bytes]) -> bytes:
    """End a script that ran too long, and its children; what it said on stderr."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    try:
        return proc.communicate(timeout=5)[1] or b""
    except subprocess.TimeoutExpired:  # a grandchild of its own session holds the pipe
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return b""


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return f": {lines[-1].strip()}" if lines else ""
