"""Settings, built once at start-up and passed to whoever needs them.

Sources, strongest first: command-line flags, ``SQUALL_*`` environment
variables, the config file, defaults. Nothing else in Squall reads the
environment for its own settings.

The config file is YAML, named by ``SQUALL_CONFIG`` (or ``squall up
--config``), else ``/etc/squall/squall.yaml`` when it exists. Its keys are the
variables' names without ``SQUALL_``, in lower case, and may nest on the first
``_`` (``ssh: {concurrency: 200}`` is ``SQUALL_SSH_CONCURRENCY``); a list is
joined with ``:`` (``inventory: [a.yaml, b.ini]``)::

    port: 9101
    inventory: [/etc/squall/inventory.yaml, /etc/ansible/hosts]
    ssh:
      known_hosts: /etc/squall/known_hosts
      concurrency: 200
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from squall.errors import ConfigError
from squall.packs.loader import BUILTIN_PACKS_DIR

DEFAULT_PORT = 9101
# What one process runs: `squall up` is all of them; `squall api`, `squall
# worker` and `squall sensors` run one each, against a shared PostgreSQL.
ALL_ROLES = ("api", "worker", "sensors")
SYSTEM_CONFIG = Path("/etc/squall/squall.yaml")

# Every variable Settings reads: the keys a config file may hold.
KNOWN_VARIABLES = frozenset(
    {
        "SQUALL_DATA_DIR",
        "SQUALL_DATABASE_URL",
        "SQUALL_HOST",
        "SQUALL_PORT",
        "SQUALL_PACKS_PATH",
        "SQUALL_WORKER_CONCURRENCY",
        "SQUALL_OUTPUT_CAP_BYTES",
        "SQUALL_MAX_REQUEST_BYTES",
        "SQUALL_MASK_PATTERNS",
        "SQUALL_CORS_ORIGINS",
        "SQUALL_TLS_CERT",
        "SQUALL_TLS_KEY",
        "SQUALL_LEASE_SECONDS",
        "SQUALL_GC_INTERVAL_SECONDS",
        "SQUALL_GC_EXECUTIONS_TTL_DAYS",
        "SQUALL_GC_OUTPUT_TTL_DAYS",
        "SQUALL_GC_TRIGGER_INSTANCES_TTL_DAYS",
        "SQUALL_TOKEN_TTL_SECONDS",
        "SQUALL_ADMIN_PASSWORD",
        "SQUALL_ADMIN_API_KEY",
        "SQUALL_INVENTORY",
        "SQUALL_SSH_KNOWN_HOSTS",
        "SQUALL_SSH_HOST_KEY_CHECK",
        "SQUALL_SSH_CONCURRENCY",
        "SQUALL_SSH_CONNECT_TIMEOUT",
        "SQUALL_LOG_FORMAT",
        "SQUALL_METRICS_TOKEN",
        "SQUALL_METRICS_PUBLIC",
        "SQUALL_METRICS_PORT",
        "SQUALL_RBAC_DIR",
        "SQUALL_RBAC_PACK_OWNERS",
        "SQUALL_AUTH_BACKEND",
    }
)


# Lists whose items may hold ":" (regular expressions, URLs).
_LIST_SEPARATORS = {"SQUALL_MASK_PATTERNS": "\n", "SQUALL_CORS_ORIGINS": ","}


def read_config_file(path: Path) -> dict[str, str]:
    """A config file's settings as the ``SQUALL_*`` variables they stand for."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, e.g. 'port: 9101'")
    out: dict[str, str] = {}

    def put(key: str, value: Any) -> None:
        name = "SQUALL_" + key.upper()
        if isinstance(value, dict):
            for sub, v in value.items():
                put(f"{key}_{sub}", v)
            return
        if name not in KNOWN_VARIABLES:
            known = ", ".join(sorted(v[7:].lower() for v in KNOWN_VARIABLES))
            raise ConfigError(f"{path}: unknown setting '{key}'; known settings: {known}")
        if isinstance(value, list):
            value = _LIST_SEPARATORS.get(name, ":").join(str(v) for v in value)
        out[name] = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )

    for key, value in data.items():
        put(str(key), value)
    return out


def _with_config_file(env: dict[str, str], config: Path | None) -> dict[str, str]:
    path = config or (Path(env["SQUALL_CONFIG"]) if env.get("SQUALL_CONFIG") else None)
    if path is None and SYSTEM_CONFIG.is_file():
        path = SYSTEM_CONFIG
    if path is None:
        return env
    return {**read_config_file(path.expanduser()), **env}


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "squall"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # squall up on SQLite: serve webhooks on this port too, from a process of
    # their own (api/intake.py); 0: not at all.
    intake_port: int = 0
    # Packs directories searched in order; the built-in one always comes first.
    packs_dirs: tuple[Path, ...] = ()
    # How many actions one worker runs at the same time.
    worker_concurrency: int = 64
    # Output kept per execution, per stream (stdout, stderr), in bytes.
    output_cap_bytes: int = 1024 * 1024
    max_request_bytes: int = 4 * 1024 * 1024
    # Regular expressions masked wherever Squall shows or keeps text
    # (SQUALL_MASK_PATTERNS: one per line).
    mask_patterns: tuple[str, ...] = ()
    # Origins whose pages may call the API from a browser (CORS); none by default.
    cors_origins: tuple[str, ...] = ()
    # The certificate and private key (PEM files) the API serves HTTPS with.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # A worker renews its claim on running work this often; a claim not renewed
    # for lease_seconds is taken to mean the worker died.
    lease_seconds: float = 30.0
    gc_interval_seconds: float = 3600.0
    gc_executions_ttl_days: float = 30.0
    gc_output_ttl_days: float = 7.0
    gc_trigger_instances_ttl_days: float = 7.0
    token_ttl_seconds: int = 24 * 3600
    admin_password: str | None = None
    admin_api_key: str | None = None
    # Inventory files, directories or dynamic inventory scripts (SQUALL_INVENTORY).
    inventory_paths: tuple[Path, ...] = ()
    ssh_known_hosts: str | None = None  # None: the running user's ~/.ssh/known_hosts
    ssh_host_key_check: str = "strict"  # strict | accept-new | off
    ssh_concurrency: int = 100  # hosts in flight per remote execution
    ssh_connect_timeout: float = 10.0
    roles: tuple[str, ...] = ALL_ROLES
    log_format: str = "text"  # text | json
    # /metrics needs credentials like the API, or this token (as a bearer
    # token or an API key), unless metrics_public opens it to anyone.
    metrics_token: str | None = None
    metrics_public: bool = False
    # `squall worker` and `squall sensors` serve /metrics on this port (0: not at all).
    metrics_port: int = 0
    # The directory holding StackStorm's rbac/roles and rbac/assignments files.
    rbac_dir: Path | None = None
    # Whose permissions the rules of a pack registered from disk run with
    # (pack, user); other packs' rules run as the system.
    pack_owners: tuple[tuple[str, str], ...] = ()
    # Who checks passwords: "local", or "package.module:ClassName" (services/signin.py).
    auth_backend: str = "local"

    @property
    def is_all_in_one(self) -> bool:
        """`squall up`: every service in this one process."""
        return set(self.roles) == set(ALL_ROLES)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        scheme = "https" if self.tls_cert is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def user_packs_dir(self) -> Path:
        """Where ``squall pack install`` puts packs."""
        return self.data_dir / "packs"

    @property
    def virtualenvs_dir(self) -> Path:
        return self.data_dir / "virtualenvs"

    @property
    def configs_dir(self) -> Path:
        return self.data_dir / "configs"

    @property
    def all_packs_dirs(self) -> list[Path]:
        dirs = [BUILTIN_PACKS_DIR, *self.packs_dirs, self.user_packs_dir]
        seen: list[Path] = []
        for d in dirs:
            if d not in seen:
                seen.append(d)
        return seen

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(
        cls, env: dict[str, str] | None = None, *, config: Path | None = None, **overrides: Any
    ) -> Settings:
        env = _with_config_file(dict(os.environ if env is None else env), config)
        data_dir = Path(
            overrides.pop("data_dir", None) or env.get("SQUALL_DATA_DIR") or default_data_dir()
        )
        data_dir = data_dir.expanduser().resolve()
        url = overrides.pop("database_url", None) or env.get("SQUALL_DATABASE_URL") or ""
        if not url:
            url = f"sqlite:///{data_dir / 'squall.db'}"
        packs = [
            Path(p).expanduser().resolve() for p in env.get("SQUALL_PACKS_PATH", "").split(":") if p
        ]
        packs += [Path(p).expanduser().resolve() for p in overrides.pop("packs_dirs", None) or ()]
        inventory = [
            Path(p).expanduser().resolve() for p in env.get("SQUALL_INVENTORY", "").split(":") if p
        ]
        inventory += [
            Path(p).expanduser().resolve() for p in overrides.pop("inventory_paths", None) or ()
        ]
        check = env.get("SQUALL_SSH_HOST_KEY_CHECK") or "strict"
        if check not in ("strict", "accept-new", "off"):
            raise ConfigError(
                f"SQUALL_SSH_HOST_KEY_CHECK must be strict, accept-new or off, not {check!r}"
            )
        public = (env.get("SQUALL_METRICS_PUBLIC") or "false").lower()
        if public not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"SQUALL_METRICS_PUBLIC must be true or false, not {public!r}")
        settings = cls(
            log_format=env.get("SQUALL_LOG_FORMAT") or "text",
            metrics_token=env.get("SQUALL_METRICS_TOKEN") or None,
            metrics_public=public in ("true", "1", "yes"),
            metrics_port=_int(env, "SQUALL_METRICS_PORT", 0),
            data_dir=data_dir,
            database_url=normalize_database_url(url),
            host=env.get("SQUALL_HOST", "127.0.0.1"),
            port=_int(env, "SQUALL_PORT", DEFAULT_PORT),
            intake_port=_int(env, "SQUALL_INTAKE_PORT", 0),
            packs_dirs=tuple(packs),
            worker_concurrency=_int(env, "SQUALL_WORKER_CONCURRENCY", 64),
            output_cap_bytes=_int(env, "SQUALL_OUTPUT_CAP_BYTES", 1024 * 1024),
            max_request_bytes=_int(env, "SQUALL_MAX_REQUEST_BYTES", 4 * 1024 * 1024),
            mask_patterns=_mask_patterns(env.get("SQUALL_MASK_PATTERNS", "")),
            cors_origins=tuple(
                o for o in re.split(r"[\s,]+", env.get("SQUALL_CORS_ORIGINS", "")) if o
            ),
            tls_cert=_path(env.get("SQUALL_TLS_CERT")),
            tls_key=_path(env.get("SQUALL_TLS_KEY")),
            lease_seconds=_float(env, "SQUALL_LEASE_SECONDS", 30.0),
            gc_interval_seconds=_float(env, "SQUALL_GC_INTERVAL_SECONDS", 3600.0),
            gc_executions_ttl_days=_float(env, "SQUALL_GC_EXECUTIONS_TTL_DAYS", 30.0),
            gc_output_ttl_days=_float(env, "SQUALL_GC_OUTPUT_TTL_DAYS", 7.0),
            gc_trigger_instances_ttl_days=_float(env, "SQUALL_GC_TRIGGER_INSTANCES_TTL_DAYS", 7.0),
            token_ttl_seconds=_int(env, "SQUALL_TOKEN_TTL_SECONDS", 24 * 3600),
            admin_password=env.get("SQUALL_ADMIN_PASSWORD") or None,
            admin_api_key=env.get("SQUALL_ADMIN_API_KEY") or None,
            inventory_paths=tuple(inventory),
            ssh_known_hosts=env.get("SQUALL_SSH_KNOWN_HOSTS") or None,
            ssh_host_key_check=check,
            ssh_concurrency=_int(env, "SQUALL_SSH_CONCURRENCY", 100),
            ssh_connect_timeout=_float(env, "SQUALL_SSH_CONNECT_TIMEOUT", 10.0),
            rbac_dir=Path(env["SQUALL_RBAC_DIR"]).expanduser().resolve()
            if env.get("SQUALL_RBAC_DIR")
            else None,
            pack_owners=_pack_owners(env.get("SQUALL_RBAC_PACK_OWNERS", "")),
            auth_backend=env.get("SQUALL_AUTH_BACKEND") or "local",
        )
        return settings.with_overrides(**overrides)


def _mask_patterns(value: str) -> tuple[str, ...]:
    from squall.core.masking import compile_patterns

    patterns = tuple(line for line in value.splitlines() if line.strip())
    compile_patterns(patterns)  # a bad one is refused at start-up
    return patterns


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


def check_tls(settings: Settings) -> tuple[Path, Path] | None:
    """The certificate and key to serve HTTPS with, or None for plain HTTP."""
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("HTTPS needs both a certificate and its key (tls_cert and tls_key)")
    for what, path in (("certificate", cert), ("key", key)):
        if not path.is_file():
            raise ConfigError(f"the TLS {what} file {path} does not exist")
    return cert, key


def _pack_owners(value: str) -> tuple[tuple[str, str], ...]:
    """``examples=alice:ops=bob`` (a config file may give a list)."""
    owners = []
    for item in value.split(":"):
        if not item.strip():
            continue
        pack, eq, user = item.partition("=")
        if not eq or not pack.strip() or not user.strip():
            raise ConfigError(f"SQUALL_RBAC_PACK_OWNERS: {item!r} is not pack=user")
        owners.append((pack.strip(), user.strip()))
    return tuple(owners)


def normalize_database_url(url: str) -> str:
    """Accept the URLs people write and name the driver Squall uses."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite://", "postgresql+psycopg://")):
        return url
    raise ConfigError(
        f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
    )
