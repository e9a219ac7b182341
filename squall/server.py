"""Putting Squall together: the data directory, the database, the services
and the HTTP server, in one process (``squall up``)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squall.config import Settings
from squall.crypto import KeyRing
from squall.errors import ConfigError
from squall.services.audit import AuditSealer
from squall.services.bus import Bus
from squall.services.gc import GarbageCollector
from squall.services.inquiries import InquiryExpirer
from squall.services.inventory import InventoryService
from squall.services.packs import register_all
from squall.services.rbac import reload as reload_rbac
from squall.services.rollouts import RolloutController
from squall.services.rules_engine import RulesEngine
from squall.services.scheduler import Scheduler
from squall.services.sensors import SensorContainer
from squall.services.worker import Worker
from squall.services.workflows import WorkflowEngine
from squall.store import auth, migrate, queue
from squall.store.db import Database
from squall.store.triggers import ensure_builtin_types

log = logging.getLogger("squall")

CREDENTIALS_FILE = "credentials.json"


@dataclass
class System:
    """Everything a running Squall shares: handed to the API and the services."""

    settings: Settings
    db: Database
    bus: Bus
    keyring: KeyRing
    owner: str
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ready: bool = False
    rotation_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inventory: InventoryService | None = None


def _write_private(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(path, 0o600)


def lock_data_dir(settings: Settings) -> Any:
    """One ``squall up`` per data directory: SQLite cannot be shared further."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fh = open(settings.data_dir / "squall.lock", "w")  # noqa: SIM115 - held for the process life
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ConfigError(
            f"another Squall is already running with the data directory {settings.data_dir}"
        ) from None
    return fh


def open_database(settings: Settings, *, auto_migrate: bool) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(settings.database_url)
    if auto_migrate:
        migrate.upgrade(db.write_engine)
    else:
        migrate.check_current(db.engine)
    return db


def ensure_admin(db: Database, settings: Settings) -> dict[str, str] | None:
    """On first start, make the ``admin`` user and an API key. Returns the new
    credentials (to be shown once) or None when users already exist."""
    if db.read_sync(auth.any_user):
        return None
    password = settings.admin_password or secrets.token_urlsafe(12)
    key_wanted = settings.admin_api_key

    def create(conn: Any) -> str:
        auth.create_user(conn, "admin", password, is_admin=True)
        key, _ = auth.create_api_key(
            conn, "admin", key=key_wanted, metadata={"created_by": "first start"}
        )
        return key

    key = db.write_sync(create)
    creds = {"username": "admin", "password": password, "api_key": key, "api_url": settings.api_url}
    _write_private(settings.data_dir / CREDENTIALS_FILE, creds)
    return creds


def write_server_file(settings: Settings) -> None:
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("api_url") != settings.api_url:
            data["api_url"] = settings.api_url
            _write_private(path, data)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def start_system(settings: Settings, *, register_packs: bool = True) -> System:
    """Open the store and start every service; the caller serves HTTP."""
    db = open_database(settings, auto_migrate=True)
    keyring = KeyRing(settings.data_dir / "keys" / "datastore.json")
    bus = Bus()
    db.set_effect_handler(bus.handle)
    system = System(settings, db, bus, keyring, owner_id())
    system.inventory = InventoryService(list(settings.inventory_paths))
    if settings.is_sqlite:
        # We hold the data directory's lock: no other process can own a lease.
        await db.write(queue.expire_leases)
    await db.write(ensure_builtin_types)
    if settings.rbac_dir is not None:
        await reload_rbac(db, settings.rbac_dir, "system")
    if register_packs:
        await register_all(db, settings)
    lease = settings.lease_seconds
    system.tasks = [
        asyncio.create_task(Scheduler(db, bus, system.owner, lease).run(), name="scheduler"),
        asyncio.create_task(
            Worker(db, bus, settings, system.owner, keyring, system.inventory).run(), name="worker"
        ),
        asyncio.create_task(InquiryExpirer(db, bus).run(), name="inquiries"),
        asyncio.create_task(GarbageCollector(db, settings).run(), name="gc"),
        asyncio.create_task(RulesEngine(db, bus, keyring).run(), name="rules"),
        asyncio.create_task(WorkflowEngine(db, bus, keyring).run(), name="workflows"),
        asyncio.create_task(
            RolloutController(db, bus, keyring, system.inventory).run(), name="rollouts"
        ),
        asyncio.create_task(SensorContainer(system).run(), name="sensors"),
        asyncio.create_task(AuditSealer(db).run(), name="audit"),
    ]
    system.ready = True
    return system


async def stop_system(system: System) -> None:
    system.ready = False
    for t in system.tasks:
        t.cancel()
    await asyncio.gather(*system.tasks, return_exceptions=True)
    system.db.set_effect_handler(None)
    system.db.close()


def serve(settings: Settings, *, announce: Any = print) -> None:
    """``squall up``: run until interrupted."""
    import uvicorn

    from squall.api.app import WebhookFastPath, create_app

    lock = lock_data_dir(settings) if settings.is_sqlite else None
    db = open_database(settings, auto_migrate=True)
    creds = ensure_admin(db, settings)
    write_server_file(settings)
    db.close()
    if creds:
        announce(
            "First start: created user 'admin'.\n"
            f"  password: {creds['password']}\n"
            f"  API key:  {creds['api_key']}\n"
            f"Both are saved (mode 0600) in {settings.data_dir / CREDENTIALS_FILE}; "
            "the squall CLI on this machine uses them."
        )
    app = create_app(settings)
    config = uvicorn.Config(
        WebhookFastPath(app, settings.max_request_bytes),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        loop="uvloop" if _has("uvloop") else "asyncio",
        http="httptools" if _has("httptools") else "h11",
        access_log=False,
        proxy_headers=False,  # nothing trusts X-Forwarded-* headers unless told to
        timeout_graceful_shutdown=5,
    )
    announce(f"Squall is starting on {settings.api_url} (data in {settings.data_dir})")
    try:
        uvicorn.Server(config).run()
    finally:
        if lock is not None:
            lock.close()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
