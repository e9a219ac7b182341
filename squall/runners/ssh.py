"""SSH connections for the remote runners, on asyncssh.

A :class:`Connector` serves one execution: it opens each host's connection
once and hands it to every step that needs it (upload, run, kill, reboot
checks), shares one connection per jump host among the hosts behind it, loads
each key file once, and reads known_hosts once. Failures are sorted into what
an operator acts on differently (:class:`SshFailure` ``.kind``): the host is
unreachable (retried with backoff), refused our credentials, or showed a host
key that known_hosts does not vouch for (never retried, never accepted
silently).

Host key checking: ``strict`` (the default) accepts only keys in known_hosts —
the running user's ``~/.ssh/known_hosts`` or the file ``SQUALL_SSH_KNOWN_HOSTS``
names; ``accept-new`` trusts and records the key of a host known_hosts has no
entry for (trust on first use) but still refuses a changed key; ``off``
checks nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

log = logging.getLogger(__name__)

__all__ = ["HOST_KEY_CHECKS", "Connector", "Endpoint", "SshFailure", "SshOptions"]

HOST_KEY_CHECKS = ("strict", "accept-new", "off")
_known_hosts_lock = threading.Lock()


@dataclass(frozen=True)
class SshOptions:
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts
    host_key_check: str = "strict"
    connect_timeout: float = 10.0
    connect_retries: int = 2  # after the first attempt, for unreachable hosts only
    retry_backoff: float = 0.5  # seconds, doubled each retry
    keepalive_interval: float = 15.0

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts or "~/.ssh/known_hosts").expanduser()


@dataclass(frozen=True)
class Endpoint:
    """Everything needed to reach one host."""

    name: str
    address: str
    port: int = 22
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    key_file: str | None = None
    key_data: str | None = field(default=None, repr=False)  # a private key given inline
    passphrase: str | None = field(default=None, repr=False)
    certificate: str | None = None
    agent: bool = True
    jump: Endpoint | None = None

    @property
    def where(self) -> str:
        port = f":{self.port}" if self.port != 22 else ""
        return f"{self.address}{port}"

    @property
    def label(self) -> str:
        """The name, with the address when that says more."""
        return (
            self.name if self.name in (self.where, self.address) else f"{self.name} ({self.where})"
        )


class SshFailure(Exception):
    """A host could not be reached or logged in to; ``kind`` is the host status."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "unreachable" | "auth_failed" | "host_key" | "timeout"
        self.message = message


# Parsed known_hosts files, by path, while their (mtime, size) stay the same:
# a rollout runs one execution per host, and parsing a 10,000-line file for
# each of them would make the fleet's size count twice.
_known_cache: dict[str, tuple[tuple[int, int], Any]] = {}


def _read_known_hosts(path: Path) -> Any:
    try:
        st = path.stat()
    except FileNotFoundError:
        return asyncssh.import_known_hosts("")
    except OSError as exc:
        raise SshFailure("host_key", f"cannot read known_hosts {path}: {exc}") from exc
    stamp = (st.st_mtime_ns, st.st_size)
    with _known_hosts_lock:
        cached = _known_cache.get(str(path))
        if cached is not None and cached[0] == stamp:
            return cached[1]
    try:
        known = asyncssh.read_known_hosts(str(path))
    except FileNotFoundError:
        return asyncssh.import_known_hosts("")
    except (OSError, ValueError) as exc:
        raise SshFailure("host_key", f"cannot read known_hosts {path}: {exc}") from exc
    with _known_hosts_lock:
        _known_cache[str(path)] = (stamp, known)
    return known


# Private keys read from files, by (path, passphrase), while the file's
# (mtime, size) stay the same: each execution has a connector of its own, and
# a rollout runs one execution per host.
_key_cache: dict[tuple[str, str | None], tuple[tuple[int, int], Any]] = {}
_key_cache_lock = threading.Lock()


def _read_private_key(path: str, passphrase: str | None) -> Any:
    st = os.stat(path)  # OSError: as reading it would
    stamp = (st.st_mtime_ns, st.st_size)
    with _key_cache_lock:
        cached = _key_cache.get((path, passphrase))
        if cached is not None and cached[0] == stamp:
            return cached[1]
    key = asyncssh.read_private_key(path, passphrase)
    with _key_cache_lock:
        _key_cache[(path, passphrase)] = (stamp, key)
    return key


class _TofuClient(asyncssh.SSHClient):
    """Trust-on-first-use: accept and record the key of a host known_hosts
    has no entry for. Called by asyncssh only for keys it did not trust."""

    def __init__(self, connector: Connector, endpoint: Endpoint) -> None:
        self._connector = connector
        self._endpoint = endpoint

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        if self._connector.has_entry(self._endpoint):
            return False  # known, and this key is not the one: a changed key is refused
        self._connector.remember(self._endpoint, key)
        return True


class Connector:
    def __init__(self, options: SshOptions | None = None) -> None:
        self.options = options or SshOptions()
        if self.options.host_key_check not in HOST_KEY_CHECKS:
            raise ValueError(
                f"host_key_check must be one of {', '.join(HOST_KEY_CHECKS)}, "
                f"not {self.options.host_key_check!r}"
            )
        self._conns: dict[tuple[Any, ...], asyncssh.SSHClientConnection] = {}
        self._pending: dict[tuple[Any, ...], asyncio.Future[asyncssh.SSHClientConnection]] = {}
        self._keys: dict[tuple[str | None, str | None, str | None], list[Any]] = {}
        self._known: asyncssh.SSHKnownHosts | None = None
        self._known_loaded = False

    # -- known hosts -----------------------------------------------------------------

    def _known_hosts(self) -> Any:
        if self.options.host_key_check == "off":
            return None
        if not self._known_loaded:
            self._known_loaded = True
            self._known = _read_known_hosts(self.options.known_hosts_path)
        return self._known

    def has_entry(self, ep: Endpoint) -> bool:
        known = self._known_hosts()
        if known is None:
            return False
        port = ep.port if ep.port != 22 else None
        host_keys, ca_keys, *_ = known.match(ep.address, ep.address, port)
        return bool(host_keys or ca_keys)

    def remember(self, ep: Endpoint, key: Any) -> None:
        name = ep.address if ep.port == 22 else f"[{ep.address}]:{ep.port}"
        line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
        path = self.options.known_hosts_path
        with _known_hosts_lock:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(path, "a") as fh:
                fh.write(line)
        log.warning("trusted the host key of %s on first use (recorded in %s)", ep.where, path)

    def _host_key_message(self, ep: Endpoint) -> str:
        path = self.options.known_hosts_path
        name = ep.address if ep.port == 22 else f"[{ep.address}]:{ep.port}"
        if self.has_entry(ep):
            return (
                f"host key of {ep.label} does not match the one recorded in {path}: "
                "refusing to connect. If the host was reinstalled, remove the old key with "
                f"'ssh-keygen -f {path} -R {name}'; otherwise someone may be in the middle"
            )
        return (
            f"host {ep.label} has no key in {path}: add it (ssh-keyscan -p {ep.port} "
            f"{ep.address} >> {path}) or allow trust on first use with host_key_check=accept-new"
        )

    # -- credentials -----------------------------------------------------------------

    @staticmethod
    def _certificate(ep: Endpoint) -> Any:
        if not ep.certificate:
            return None
        try:
            return asyncssh.read_certificate(os.path.expanduser(ep.certificate))
        except (OSError, asyncssh.KeyImportError, ValueError) as exc:
            raise SshFailure(
                "auth_failed", f"cannot load certificate {ep.certificate}: {exc}"
            ) from exc

    def _client_keys(self, ep: Endpoint) -> list[Any] | None:
        if not (ep.key_file or ep.key_data):
            return None  # asyncssh's defaults: ~/.ssh/id_* and the agent
        cache_key = (ep.key_file, ep.key_data, ep.certificate)
        keys = self._keys.get(cache_key)
        if keys is None:
            what = ep.key_file or "the private key given"
            try:
                if ep.key_data:
                    key = asyncssh.import_private_key(ep.key_data, ep.passphrase)
                else:
                    path = os.path.expanduser(ep.key_file or "")
                    key = _read_private_key(path, ep.passphrase)
            except (OSError, asyncssh.KeyImportError, ValueError) as exc:
                raise SshFailure("auth_failed", f"cannot load {what}: {exc}") from exc
            cert = self._certificate(ep)
            # Checked here: asyncssh would raise a bare ValueError from connect().
            if cert is not None and cert.key.public_data != key.public_data:
                raise SshFailure("auth_failed", f"certificate {ep.certificate} is not for {what}")
            keys = [(key, cert)] if cert else [key]
            self._keys[cache_key] = keys
        return keys

    def _connect_args(self, ep: Endpoint) -> dict[str, Any]:
        args: dict[str, Any] = {
            "port": ep.port,
            "known_hosts": self._known_hosts(),
            "connect_timeout": self.options.connect_timeout,
            "login_timeout": self.options.connect_timeout,
            "keepalive_interval": self.options.keepalive_interval,
            "keepalive_count_max": 3,
        }
        if ep.user:
            args["username"] = ep.user
        keys = self._client_keys(ep)
        if keys is not None:
            args["client_keys"] = keys
        elif ep.certificate:
            # No key given: the certificate goes with the default key it is for.
            args["client_certs"] = [self._certificate(ep)]
        if ep.password:
            args["password"] = ep.password
        else:
            args["preferred_auth"] = "publickey"
        if not ep.agent or not os.environ.get("SSH_AUTH_SOCK"):
            args["agent_path"] = None
        if self.options.host_key_check == "accept-new":
            args["client_factory"] = lambda: _TofuClient(self, ep)
        return args

    # -- connecting ------------------------------------------------------------------

    @staticmethod
    def _key(ep: Endpoint) -> tuple[Any, ...]:
        return (ep.address, ep.port, ep.user, ep.key_file, ep.jump and Connector._key(ep.jump))

    async def connect(self, ep: Endpoint) -> asyncssh.SSHClientConnection:
        """The host's connection, opened on first use (concurrent callers share it)."""
        key = self._key(ep)
        conn = self._conns.get(key)
        if conn is not None:
            return conn
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[asyncssh.SSHClientConnection] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[key] = future
        try:
            conn = await self._open(ep)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            self._pending.pop(key, None)
        self._conns[key] = conn
        future.set_result(conn)
        return conn

    async def _open(self, ep: Endpoint) -> asyncssh.SSHClientConnection:
        tunnel = await self.connect(ep.jump) if ep.jump is not None else None
        args = self._connect_args(ep)
        if tunnel is not None:
            args["tunnel"] = tunnel
        delay = self.options.retry_backoff
        attempts = 1 + max(0, self.options.connect_retries)
        for attempt in range(attempts):
            try:
                return await asyncssh.connect(ep.address, **args)
            except asyncssh.HostKeyNotVerifiable:
                raise SshFailure("host_key", self._host_key_message(ep)) from None
            except asyncssh.PermissionDenied as exc:
                user = ep.user or "the current user"
                raise SshFailure(
                    "auth_failed",
                    f"{ep.label} refused authentication as {user}: "
                    f"{exc.reason or 'permission denied'}",
                ) from None
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                error = _describe(exc)
                if attempt + 1 >= attempts:
                    via = f" via {ep.jump.name}" if ep.jump else ""
                    raise SshFailure(
                        "unreachable", f"cannot connect to {ep.label}{via}: {error}"
                    ) from None
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # the loop returns or raises

    def forget(self, ep: Endpoint) -> None:
        """Drop a host's connection (it broke, or the host rebooted)."""
        conn = self._conns.pop(self._key(ep), None)
        if conn is not None:
            conn.abort()

    def release(self, ep: Endpoint) -> None:
        """Close a host's connection once its work is done (without waiting)."""
        conn = self._conns.pop(self._key(ep), None)
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            conn.close()
        await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    return str(exc) or type(exc).__name__
