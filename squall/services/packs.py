"""Registering packs from disk into the store, and installing new ones."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from squall.config import Settings
from squall.errors import ContentError, InvalidInput, SquallError
from squall.packs.loader import LoadedPack, discover_packs, load_pack, load_yaml
from squall.runners.registry import runner_types
from squall.services import definitions, rules
from squall.services.executions import parameter_schema
from squall.store import content
from squall.store import sensors as sensor_store
from squall.store.db import Database
from squall.store.workflows import WORKFLOW_RUNNERS

log = logging.getLogger(__name__)


@dataclass
class RegisterReport:
    packs: list[str] = field(default_factory=list)
    actions: int = 0
    policies: int = 0
    rules: int = 0
    errors: list[ContentError] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "packs": self.packs,
            "removed": self.removed,
            "actions": self.actions,
            "policies": self.policies,
            "rules": self.rules,
            "errors": [e.to_dict() for e in self.errors],
        }


def venv_python(settings: Settings, pack: str) -> str | None:
    python = settings.virtualenvs_dir / pack / "bin" / "python"
    return str(python) if python.exists() else None


def _prepare_actions(
    pack: LoadedPack, settings: Settings, report: RegisterReport
) -> list[dict[str, Any]]:
    known = {r.name for r in runner_types()}
    python = venv_python(settings, pack.ref)
    out = []
    for action in pack.actions:
        if action["runner_type"] not in known:
            report.errors.append(
                ContentError(
                    str(pack.path / action.get("metadata_file", "")),
                    f"action {action['ref']} uses runner type {action['runner_type']!r}, "
                    f"which this Squall does not have (it has: {', '.join(sorted(known))})",
                )
            )
            continue
        try:
            parameter_schema(action)
        except SquallError as exc:
            report.errors.append(
                ContentError(str(pack.path / action.get("metadata_file", "")), exc.message)
            )
            continue
        if action["runner_type"] in WORKFLOW_RUNNERS:
            # Registered anyway (a run is refused with the same list), but
            # said now, so a broken workflow is noticed when the pack loads.
            try:
                definitions.parse(
                    action["runner_type"],
                    definitions.read(action),
                    definitions.source(action),
                )
            except InvalidInput as exc:
                report.errors.append(
                    ContentError(str(pack.path / action.get("metadata_file", "")), exc.message)
                )
        extra: dict[str, Any] = {"pack_path": str(pack.path)}
        if python:
            extra["python"] = python
        out.append({**action, **extra})
    return out


def _policies(pack: LoadedPack) -> list[dict[str, Any]]:
    out = []
    for p in pack.policies:
        out.append({**p, "ref": p.get("ref") or f"{pack.ref}.{p['name']}"})
    return out


def register_loaded(
    conn: Connection, pack: LoadedPack, actions: list[dict[str, Any]]
) -> dict[str, int]:
    rules.register_pack_content(conn, pack)
    sensor_store.sync_pack(conn, pack.ref, pack.sensors)
    return content.register_pack(
        conn,
        ref=pack.ref,
        meta=pack.meta,
        path=str(pack.path),
        config_schema=pack.config_schema,
        config=pack.config,
        files=sorted(
            str(p.relative_to(pack.path))
            for p in pack.path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and ".git" not in p.parts
        ),
        action_list=actions,
        policy_list=_policies(pack),
    )


async def register_all(
    db: Database, settings: Settings, only: list[str] | None = None
) -> RegisterReport:
    """Load every pack from the packs directories (or just ``only``) and store it.
    A broken pack or file is reported and skipped; the rest is registered."""
    report = RegisterReport()
    found: set[str] = set()
    registered: list[LoadedPack] = []
    for pack_dir in discover_packs(settings.all_packs_dirs):
        try:
            pack = load_pack(pack_dir, settings.configs_dir)
        except ContentError as exc:
            report.errors.append(exc)
            continue
        found.add(pack.ref)
        if only and pack.ref not in only:
            continue
        report.errors.extend(pack.errors)
        actions = _prepare_actions(pack, settings, report)
        try:
            counts = await db.write(register_loaded, pack, actions)
        except SquallError as exc:
            report.errors.append(ContentError(str(pack_dir), f"could not register: {exc}"))
            continue
        report.packs.append(pack.ref)
        registered.append(pack)
        report.actions += counts["actions"]
        report.policies += counts["policies"]
    # Rules last: they may name actions and trigger types of any pack.
    for pack in registered:
        owner = dict(settings.pack_owners).get(pack.ref)  # else the rules run as the system
        count, errors = await db.write(rules.register_pack_rules, pack, owner)
        report.rules += count
        report.errors.extend(errors)
    if not only:
        # A full registration mirrors the disk: packs that are gone are removed.
        for row in await db.read(content.list_packs):
            if row["ref"] not in found:
                await db.write(content.unregister_pack, row["ref"])
                report.removed.append(row["ref"])
    if only:
        missing = set(only) - set(report.packs)
        for name in sorted(missing):
            if not any(name in e.path for e in report.errors):
                report.errors.append(ContentError(name, "no such pack in the packs directories"))
    for err in report.errors:
        log.warning("pack content skipped: %s", err.message)
    return report


def install(source: str, settings: Settings, *, progress: Any = print) -> str:
    """Copy or clone a pack into the user packs directory and build its virtual
    environment. Returns the pack's name. Registration is left to the caller."""
    settings.user_packs_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="squall-pack-") as tmp:
        fetched = Path(tmp) / "fetched"
        src = Path(source).expanduser()
        if src.is_dir():
            progress(f"copying {src}")
            shutil.copytree(src, fetched, ignore=shutil.ignore_patterns(".git", "__pycache__"))
        elif "://" in source or source.startswith("git@") or source.endswith(".git"):
            progress(f"cloning {source}")
            done = subprocess.run(
                ["git", "clone", "--depth", "1", "--quiet", source, str(fetched)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise InvalidInput(f"could not clone {source}: {done.stderr.strip()}")
        else:
            raise InvalidInput(f"{source} is neither a pack directory nor a git URL")
        # Installed packs live in a directory named after the pack, so that the
        # pack's ref does not depend on where it was fetched from.
        meta = load_yaml(fetched / "pack.yaml") if (fetched / "pack.yaml").exists() else None
        if not isinstance(meta, dict):
            raise InvalidInput(f"{source} is not a pack: it has no usable pack.yaml")
        wanted = str(meta.get("ref") or meta.get("name") or "")
        if not wanted or "/" in wanted or wanted.startswith("."):
            raise InvalidInput(f"{source}: pack.yaml needs a valid 'name' (or 'ref')")
        staged = Path(tmp) / wanted
        fetched.rename(staged)
        name = load_pack(staged, settings.configs_dir).ref
        target = settings.user_packs_dir / name
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staged), target)
    build_virtualenv(settings, name, target, progress=progress)
    return name


def build_virtualenv(
    settings: Settings, name: str, pack_dir: Path, *, progress: Any = print
) -> None:
    venv = settings.virtualenvs_dir / name
    progress(f"creating virtual environment {venv}")
    # System site-packages stay visible so that Squall's own compatibility
    # modules and common libraries need not be installed again per pack.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "venv",
            "--clear",
            "--without-pip",
            "--system-site-packages",
            str(venv),
        ],
        check=True,
        capture_output=True,
    )
    requirements = pack_dir / "requirements.txt"
    if requirements.exists() and requirements.read_text().strip():
        progress(f"installing {requirements.name}")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(venv / "bin" / "python"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(requirements),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=pack_dir,
        )
        if done.returncode != 0:
            raise InvalidInput(
                f"installing the requirements of pack {name} failed:\n{done.stderr.strip()[-2000:]}"
            )
