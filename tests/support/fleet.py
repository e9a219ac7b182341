"""A fleet of real OpenSSH servers on loopback addresses, for tests and benchmarks.

Every host of the fleet is a loopback address (``127.0.1.1``, ``127.0.1.2``,
...; Linux answers on the whole of 127.0.0.0/8) on which an ``sshd`` listens.
One daemon serves at most 16 addresses (OpenSSH's limit of ``ListenAddress``
lines); addresses named in ``extra_daemon_for`` get a daemon of their own so
that they can be "rebooted" alone.

The fleet logs in as a dedicated user, ``squall-fleet``, created on first use
(idempotently, with ``useradd``) with an empty home: a user whose shell reads
rc files at every SSH command (root's ``pyenv init`` here costs ~0.14 s of CPU
per command) would measure the shell, not SSH. That user has a password,
known to the fleet as :attr:`Fleet.sudo_password`, and a sudoers entry that
requires it (``ALL=(ALL:ALL) ALL``, asked every time); the daemons accept it
for logging in too (``PasswordAuthentication yes``, checked against the shadow
file: no PAM, no keyboard-interactive).

Besides the authorized key, the daemons trust a user CA of the fleet's own
(``TrustedUserCAKeys``): :attr:`Fleet.cert_key_file` is a key that is not in
authorized_keys and logs in only with its certificate,
:attr:`Fleet.certificate_file` (principal: the fleet's user).

Run as root, that is all there is to it. Run as another user, the fleet falls
back to that user (sshd run by a user can only log that same user in), listens
on a high port instead of 22, and has no sudo and no password login
(``sudo_password`` is ``None``); that user's own rc files then run for every
command.

Each daemon is ``/usr/sbin/sshd -D`` run as a child of this process, with its
own host key, configuration and log (``-E``, ``LogLevel DEBUG1`` by default,
which shows a jump host's ``direct-tcpip`` forwards) in the fleet's directory.
The daemons get SIGTERM when the thread that started them ends (Linux's
parent-death signal, through ``setpriv``), so a killed test run leaves none
listening: start a fleet from a thread that outlives it (the main thread).
As root, the daemons and everything they start also go into a cgroup of the
fleet's own (v2), for :meth:`Fleet.server_cpu_seconds` and a clean stop.

Usage::

    with Fleet(24, extra_daemon_for=["127.0.1.24"]) as fleet:
        fleet.known_hosts, fleet.key_file, fleet.user, fleet.addresses
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import ipaddress
import json
import os
import pwd
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "FLEET_USER",
    "SSHD",
    "Fleet",
    "descendants",
    "loopback_addresses",
    "process_cpu_seconds",
    "sshd_available",
]

SSHD = Path("/usr/sbin/sshd")
FLEET_USER = "squall-fleet"
FLEET_HOME = Path("/var/lib/squall-fleet")
# Root-only; the same password for every fleet, so fleets running at the same
# time (a test session and a benchmark) do not change it under each other.
PASSWORD_FILE = Path("/var/lib/squall-fleet.password")
SUDOERS_FILE = Path("/etc/sudoers.d/squall-fleet")
ADDRESSES_PER_DAEMON = 16  # sshd accepts at most 16 ListenAddress lines
_TICK = os.sysconf("SC_CLK_TCK")
RC_FILES = (".bashrc", ".bash_profile", ".bash_login", ".profile", ".bash_logout")


def sshd_available() -> bool:
    return os.access(SSHD, os.X_OK)


def loopback_addresses(first: str, count: int) -> list[str]:
    """``count`` consecutive IPv4 addresses from ``first``, skipping those
    ending in .0 or .255, all inside 127.0.0.0/8."""
    out: list[str] = []
    addr = ipaddress.IPv4Address(first)
    net = ipaddress.IPv4Network("127.0.0.0/8")
    while len(out) < count:
        if addr not in net or addr == net.broadcast_address:
            raise ValueError(f"{count} addresses from {first} leave 127.0.0.0/8")
        if addr.packed[3] not in (0, 255):
            out.append(str(addr))
        addr += 1
    return out


def _sshd_version() -> tuple[int, int]:
    out = subprocess.run([str(SSHD), "-V"], capture_output=True, text=True).stderr
    # "OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL ..."
    try:
        major, minor = out.split("OpenSSH_", 1)[1].split()[0].split("p")[0].split(".")[:2]
        return int(major), int(minor.rstrip(",")[:2])
    except (IndexError, ValueError):
        return (0, 0)


def _private_key(path: Path) -> str:
    """Writes a new Ed25519 private key (OpenSSH format, 0600) and returns the
    public key line ``ssh-ed25519 AAAA...``."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    path.with_name(path.name + ".pub").write_text(public.decode() + "\n")
    return public.decode()


def _random_public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key()
    return raw.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pids: Iterable[int]) -> list[int]:
    """Every process below these, from /proc (children, their children...)."""
    children = _children_map()
    out: list[int] = []
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def process_cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a process (its own CPU time and its
    reaped children's), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / _TICK


def _raise_nofile(wanted: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig`` (util-linux): the daemon gets SIGTERM when the
    thread that started it ends, so a killed test run leaves none behind."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _new_cgroup() -> Path | None:
    """A new cgroup (v2) below this process's, or None where that cannot be
    made (no cgroup2 mount, not root, read-only)."""
    mount = None
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            mount = Path(fields[1])
            break
    own = [x[3:] for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::")]
    if mount is None or not own:
        return None
    path = mount / own[0].lstrip("/") / f"squall-fleet-{secrets.token_hex(4)}"
    try:
        path.mkdir()
    except OSError:
        return None
    if not (path / "cpu.stat").exists():
        path.rmdir()
        return None
    return path


def _cgroup_pids(cgroup: Path) -> list[int]:
    try:
        return [int(x) for x in (cgroup / "cgroup.procs").read_text().split()]
    except OSError:
        return []


@dataclass
class _Daemon:
    index: int
    addresses: list[str]
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    log_offset: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Fleet:
    """``size`` OpenSSH servers on consecutive loopback addresses.

    The fleet's files go in a new directory under ``workdir`` (the system's
    temporary directory by default), which the fleet user must be able to
    enter (not under a 0700 directory such as pytest's ``tmp_path``).

    Attributes once started: ``addresses``, ``port`` (22 as root), ``user``,
    ``key_file`` (an authorized Ed25519 key), ``other_key_file`` (one that is
    not), ``cert_key_file`` and ``certificate_file`` (a key that is not
    authorized and its certificate, signed by the fleet's user CA, which is),
    ``known_hosts`` (every address's host key), ``sudo_password`` (also the
    login password; ``None`` when not root), ``dir`` (the fleet's directory).

    Shell snippets to run on a host: :attr:`identify_command` prints the
    address the command runs on; :attr:`boot_id_command` the host's boot id
    (a file per address, new at each "reboot"); :attr:`reboot_command` asks
    the fleet to reboot that host (returns at once; a watcher thread stops the
    host's daemon and its sessions within ~0.1 s, and starts it again after
    ``reboot_down_seconds``).
    """

    identify_command = 'set -- $SSH_CONNECTION; echo "$3"'

    def __init__(
        self,
        size: int,
        workdir: Path | None = None,
        *,
        first_address: str = "127.0.1.1",
        extra_daemon_for: Sequence[str] = (),
        reboot_down_seconds: float = 2.0,
        log_level: str = "DEBUG1",
    ) -> None:
        if size < 1:
            raise ValueError("a fleet has at least one host")
        self.addresses = loopback_addresses(first_address, size)
        unknown = set(extra_daemon_for) - set(self.addresses)
        if unknown:
            raise ValueError(f"extra_daemon_for: not in the fleet: {sorted(unknown)}")
        self.extra_daemon_for = tuple(extra_daemon_for)
        self.reboot_down_seconds = reboot_down_seconds
        self.log_level = log_level
        self._workdir = workdir
        self.root = os.geteuid() == 0
        if self.root:
            self.user = FLEET_USER
            self.port = 22
        else:
            self.user = pwd.getpwuid(os.getuid()).pw_name
            self.port = 0  # chosen at start
        self.sudo_password: str | None = None
        self.dir = Path()
        self._daemons: list[_Daemon] = []
        self._by_address: dict[str, _Daemon] = {}
        self._host_keys: dict[int, str] = {}
        self._restarts: list[tuple[float, int]] = []  # (when, daemon index)
        self._cond = threading.Condition()
        self._watcher: threading.Thread | None = None
        self._stopping = False
        self._started = False
        self._cgroup: Path | None = None

    # -- paths and commands ----------------------------------------------------------

    @property
    def key_file(self) -> Path:
        return self.dir / "client_key"

    @property
    def other_key_file(self) -> Path:
        return self.dir / "other_key"

    @property
    def cert_key_file(self) -> Path:
        """A key that is not in authorized_keys: it logs in with its certificate only."""
        return self.dir / "cert_key"

    @property
    def certificate_file(self) -> Path:
        """The certificate of :attr:`cert_key_file`, signed by the fleet's user CA."""
        return self.dir / "cert_key-cert.pub"

    @property
    def user_ca_file(self) -> Path:
        """The private key of the user CA every daemon trusts (``TrustedUserCAKeys``)."""
        return self.dir / "user_ca"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def boot_id_command(self) -> str:
        boot = shlex.quote(str(self.dir / "boot"))
        return f'set -- $SSH_CONNECTION; cat {boot}/"$3"'

    @property
    def reboot_command(self) -> str:
        spool = shlex.quote(str(self.dir / "reboot-requests"))
        return f'set -- $SSH_CONNECTION; : > {spool}/"$3"'

    def reboot_command_for(self, address: str) -> str:
        """:attr:`reboot_command` for one address, written out: for where
        ``$SSH_CONNECTION`` is not set, e.g. under sudo (which resets the
        environment)."""
        spool = shlex.quote(str(self.dir / "reboot-requests"))
        return f": > {spool}/{shlex.quote(address)}"

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Fleet:
        if self._started:
            return self
        if not sshd_available():
            raise RuntimeError(f"{SSHD} not found (apt-get install openssh-server)")
        _raise_nofile()
        self.dir = Path(tempfile.mkdtemp(prefix="squall-fleet-", dir=self._workdir))
        self._started = True
        try:
            self._setup()
            for daemon in self._daemons:
                self._launch(daemon)
            for daemon in self._daemons:
                self._wait_listening(daemon)
        except BaseException:
            self.stop()
            raise
        self._watcher = threading.Thread(target=self._watch, name="fleet-watcher", daemon=True)
        self._watcher.start()
        return self

    def stop(self) -> None:
        if not self._started:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._watcher is not None:
            self._watcher.join(10)
        for daemon in self._daemons:
            self._kill(daemon)
        if self._cgroup is not None:
            self._end_cgroup(self._cgroup)
        shutil.rmtree(self.dir, ignore_errors=True)
        self._started = False

    def _end_cgroup(self, cgroup: Path) -> None:
        """Kills whatever the daemons left in the fleet's cgroup, then removes it."""
        deadline = time.monotonic() + 10
        while (pids := _cgroup_pids(cgroup)) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            cgroup.rmdir()

    # -- set-up ----------------------------------------------------------------------

    def _setup(self) -> None:
        os.chmod(self.dir, 0o755)  # the fleet user reads boot ids, writes requests
        for parent in self.dir.parents if self.root else ():
            if not parent.stat().st_mode & stat.S_IXOTH:
                raise ValueError(f"{parent} is closed to other users: the fleet user needs in")
        if self.root:
            self.sudo_password = _ensure_fleet_user()
            uid = pwd.getpwnam(FLEET_USER).pw_uid
            self._ensure_privsep_dir()
            self._cgroup = _new_cgroup()
        else:
            uid = os.getuid()
            self.port = _free_port(self.addresses[0])
        client = _private_key(self.key_file)
        _private_key(self.other_key_file)
        _private_key(self.user_ca_file)
        _private_key(self.cert_key_file)
        self._sign_certificate()
        authorized = self.dir / "authorized_keys"
        authorized.write_text(client + "\n")
        authorized.chmod(0o644)
        (self.dir / "boot").mkdir(mode=0o755)
        for address in self.addresses:
            self._write_boot_id(address)
        spool = self.dir / "reboot-requests"
        spool.mkdir(mode=0o755)
        os.chown(spool, uid, -1)

        # Daemons: one per extra address, then the others 16 at a time.
        groups = [[a] for a in self.extra_daemon_for]
        rest = [a for a in self.addresses if a not in self.extra_daemon_for]
        groups += [
            rest[i : i + ADDRESSES_PER_DAEMON] for i in range(0, len(rest), ADDRESSES_PER_DAEMON)
        ]
        penalties = _sshd_version() >= (9, 8)
        for index, addresses in enumerate(groups):
            key = self.dir / f"host_key_{index}"
            self._host_keys[index] = _private_key(key)
            config = self.dir / f"sshd_{index}.conf"
            config.write_text(self._config(index, addresses, key, penalties))
            daemon = _Daemon(index, addresses, config, self.dir / f"sshd_{index}.log")
            self._daemons.append(daemon)
            for address in addresses:
                self._by_address[address] = daemon
        check = subprocess.run(
            [str(SSHD), "-t", "-f", str(self._daemons[0].config)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"sshd refuses the fleet's configuration: {check.stderr.strip()}")
        self._write_known_hosts(self.known_hosts, set())

    def _config(self, index: int, addresses: list[str], key: Path, penalties: bool) -> str:
        lines = [f"ListenAddress {a}:{self.port}" for a in addresses]
        lines += [
            f"HostKey {key}",
            f"PidFile {self.dir / f'sshd_{index}.pid'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            f"TrustedUserCAKeys {self.user_ca_file}.pub",
            f"AllowUsers {self.user}",
            "StrictModes no",
            "PubkeyAuthentication yes",
            # As root, the fleet user's shadow password (no PAM needed); a
            # daemon run by another user cannot read the shadow file.
            f"PasswordAuthentication {'yes' if self.root else 'no'}",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin no",
            "UseDNS no",
            "MaxStartups 1000:30:1000",
            "MaxSessions 100",
            "AllowTcpForwarding yes",
            "X11Forwarding no",
            "PrintMotd no",
            "PrintLastLog no",
            "Subsystem sftp internal-sftp",
            f"LogLevel {self.log_level}",
        ]
        if penalties:
            # OpenSSH 9.8+ would refuse 127.0.0.1 for a while after failed logins.
            lines.append("PerSourcePenalties no")
        return "\n".join(lines) + "\n"

    def _sign_certificate(self) -> None:
        """:attr:`certificate_file`: :attr:`cert_key_file` signed by the user CA,
        for the fleet's user, valid from 5 minutes ago (clock skew) for a day."""
        keygen = shutil.which("ssh-keygen")
        if keygen is None:
            raise RuntimeError("ssh-keygen not found (apt-get install openssh-client)")
        signed = subprocess.run(
            [
                keygen,
                "-q",
                "-s",
                str(self.user_ca_file),
                "-I",
                "squall-test",
                "-n",
                self.user,
                "-V",
                "-5m:+1d",
                f"{self.cert_key_file}.pub",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if signed.returncode != 0 or not self.certificate_file.exists():
            raise RuntimeError(
                f"ssh-keygen could not sign the fleet's certificate: {signed.stderr}"
            )

    def _ensure_privsep_dir(self) -> None:
        # Made by the service unit normally; sshd refuses to start without it.
        path = Path("/run/sshd")
        if not path.is_dir():
            path.mkdir(mode=0o755, parents=True, exist_ok=True)

    def _write_boot_id(self, address: str) -> None:
        path = self.dir / "boot" / address
        tmp = path.with_name(address + ".tmp")
        tmp.write_text(uuid.uuid4().hex + "\n")
        tmp.chmod(0o644)
        tmp.replace(path)

    def _host_pattern(self, address: str) -> str:
        return address if self.port == 22 else f"[{address}]:{self.port}"

    def _write_known_hosts(self, path: Path, wrong: set[str]) -> None:
        lines = []
        for address in self.addresses:
            if address in wrong:
                key = _random_public_key()
            else:
                key = self._host_keys[self._by_address[address].index]
            lines.append(f"{self._host_pattern(address)} {key}")
        path.write_text("\n".join(lines) + "\n")

    # -- daemons ---------------------------------------------------------------------

    def _launch(self, daemon: _Daemon) -> None:
        daemon.log_offset = daemon.log.stat().st_size if daemon.log.exists() else 0
        with open(daemon.log, "ab") as log:
            daemon.proc = subprocess.Popen(
                [
                    *_pdeathsig_prefix(),
                    str(SSHD),
                    "-D",
                    "-f",
                    str(daemon.config),
                    "-E",
                    str(daemon.log),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if self._cgroup is not None:
            # Before it listens, so every session is born in the group.
            try:
                (self._cgroup / "cgroup.procs").write_text(str(daemon.proc.pid))
            except OSError:
                self._cgroup = None  # /proc accounting, then

    def _wait_listening(self, daemon: _Daemon, timeout: float = 20.0) -> None:
        """Until the daemon has logged that it listens on each of its addresses."""
        assert daemon.proc is not None
        wanted = {f"Server listening on {a} port {self.port}." for a in daemon.addresses}
        deadline = time.monotonic() + timeout
        while True:
            with open(daemon.log, "rb") as f:
                f.seek(daemon.log_offset)
                text = f.read().decode(errors="replace")
            wanted = {w for w in wanted if w not in text}
            if not wanted:
                return
            # "debug1: Bind to port 22 on A." comes before each "Server
            # listening"; only "error: Bind to port 22 on A failed: ..." is one.
            if re.search(r"Bind to port \d+ on \S+ failed", text) or daemon.proc.poll() is not None:
                raise RuntimeError(
                    f"sshd for {daemon.addresses[0]}... did not start "
                    f"(something else listening there?):\n{text[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd for {daemon.addresses[0]}... is not listening:\n{text}")
            time.sleep(0.01)

    def _kill(self, daemon: _Daemon) -> None:
        """Stops a daemon and every session it serves, as a power cut would."""
        proc = daemon.proc
        if proc is None:
            return
        daemon.proc = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGSTOP)  # accepts nothing more meanwhile
            for pid in [proc.pid, *descendants([proc.pid])]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        proc.wait()

    def _watch(self) -> None:
        """Reboot requests from hosts, and restarts when their down time is over."""
        spool = self.dir / "reboot-requests"
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = time.monotonic()
                due = []
                while self._restarts and self._restarts[0][0] <= now:
                    due.append(heapq.heappop(self._restarts)[1])
            for index in due:
                daemon = self._daemons[index]
                with daemon.lock:
                    if daemon.proc is None:
                        try:
                            self._launch(daemon)
                            self._wait_listening(daemon)
                        except Exception as exc:  # the host stays down; say why
                            print(f"fleet: restart failed: {exc}", file=sys.stderr)
            try:
                requests = os.listdir(spool)
            except OSError:
                requests = []
            for name in requests:
                with contextlib.suppress(OSError):
                    os.unlink(spool / name)
                if name in self._by_address:
                    self._down(name, self.reboot_down_seconds)
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(0.1)

    def _down(self, address: str, down_seconds: float) -> None:
        daemon = self._by_address[address]
        with daemon.lock:
            if daemon.proc is None:
                return  # rebooting already
            self._kill(daemon)
            for a in daemon.addresses:
                self._write_boot_id(a)
        with self._cond:
            heapq.heappush(self._restarts, (time.monotonic() + down_seconds, daemon.index))
            self._cond.notify_all()

    # -- what tests use --------------------------------------------------------------

    def reboot(self, address: str, down_seconds: float = 2.0) -> None:
        """Reboots ``address``: returns once it is down (its daemon and sessions
        killed, a new boot id written); it listens again ``down_seconds`` later.
        An address sharing its daemon takes the daemon's other addresses down
        (and gives them new boot ids) with it."""
        self._down(address, down_seconds)

    def wait_until_up(self, address: str, timeout: float = 30.0) -> None:
        """Until ``address`` has its daemon running and listening again."""
        daemon = self._by_address[address]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with daemon.lock:
                if daemon.proc is not None and daemon.proc.poll() is None:
                    return
            time.sleep(0.02)
        raise TimeoutError(f"{address} did not come back within {timeout} s")

    def is_up(self, address: str) -> bool:
        daemon = self._by_address[address]
        return daemon.proc is not None and daemon.proc.poll() is None

    def check(self) -> None:
        """Raises RuntimeError if a daemon has exited without being told to (not
        one that is down for a reboot), with how it ended and its log's end."""
        dead = []
        for daemon in self._daemons:
            proc = daemon.proc
            if proc is not None and proc.poll() is not None:
                tail = daemon.log.read_text(errors="replace")[-500:]
                dead.append(f"sshd for {daemon.addresses[0]}: exit {proc.returncode}\n{tail}")
        if dead:
            raise RuntimeError(f"{len(dead)} fleet daemons died:\n" + "\n".join(dead[:3]))

    def boot_id(self, address: str) -> str:
        return (self.dir / "boot" / address).read_text().strip()

    def known_hosts_with_mismatch(self, addresses: Iterable[str]) -> Path:
        """A known_hosts file where ``addresses`` have a wrong (random) key."""
        wrong = set(addresses)
        path = self.dir / f"known_hosts_mismatch_{secrets.token_hex(4)}"
        self._write_known_hosts(path, wrong)
        return path

    def unused_address(self) -> str:
        """A loopback address after the fleet's on which nothing listens."""
        candidate = ipaddress.IPv4Address(self.addresses[-1]) + 1
        while True:
            text = str(candidate)
            if candidate.packed[3] not in (0, 255) and not _listening(text, self.port):
                return text
            candidate += 1

    def daemon_log(self, address: str) -> str:
        return self._by_address[address].log.read_text(errors="replace")

    def daemon_pids(self) -> list[int]:
        return [d.proc.pid for d in self._daemons if d.proc is not None]

    def server_cpu_seconds(self) -> float:
        """CPU time (user + system) the daemons and their sessions have used.

        As root, from the fleet's cgroup (v2 ``cpu.stat``): every process the
        daemons started counts, including those they orphan. OpenSSH's
        post-authentication child outlives its monitor and is reaped by init,
        so its time (~6 ms per connection here, the session's crypto) never
        reaches the daemon's counters. Without a cgroup, from /proc: each
        daemon's own time and its reaped children's, plus its live sessions',
        which misses those orphans."""
        if self._cgroup is not None:
            for line in (self._cgroup / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        pids = self.daemon_pids()
        return sum(process_cpu_seconds(p) for p in [*pids, *descendants(pids)])

    def sessions(self) -> int:
        """How many processes the daemons have started that are still there
        (0 once every connection has ended)."""
        daemons = self.daemon_pids()
        if self._cgroup is not None:
            return len(set(_cgroup_pids(self._cgroup)) - set(daemons))
        return len(descendants(daemons))

    def inventory_yaml(
        self,
        path: Path,
        facts: Callable[[int, str], dict[str, Any]] | None = None,
        names: Callable[[int, str], str] | None = None,
        count: int | None = None,
    ) -> Path:
        """Writes the fleet (its first ``count`` hosts) as a Squall inventory
        (``hosts:`` mapping). Host names are ``h0001``, ``h0002``, ... unless
        ``names(index, address)`` (index from 0) says otherwise;
        ``facts(index, address)`` gives facts."""
        lines = ["hosts:"]
        for i, address in enumerate(self.addresses[:count]):
            name = names(i, address) if names else _default_name(i)
            entry: dict[str, Any] = {
                "address": address,
                "port": self.port,
                "user": self.user,
                "key_file": str(self.key_file),
            }
            if facts:
                entry["facts"] = facts(i, address)
            # JSON is YAML: one flow mapping per host keeps 1,000 hosts readable.
            lines.append(f"  {json.dumps(name)}: {json.dumps(entry)}")
        path = Path(path)
        path.write_text("\n".join(lines) + "\n")
        return path

    def ansible_ini(
        self,
        path: Path,
        names: Callable[[int, str], str] | None = None,
        count: int | None = None,
    ) -> Path:
        """Writes the fleet (its first ``count`` hosts) as an Ansible INI
        inventory (group ``fleet``), host keys checked against :attr:`known_hosts`."""
        lines = ["[fleet]"]
        for i, address in enumerate(self.addresses[:count]):
            name = names(i, address) if names else _default_name(i)
            lines.append(
                f"{name} ansible_host={address} ansible_port={self.port} "
                f"ansible_user={self.user} ansible_ssh_private_key_file={self.key_file}"
            )
        args = f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"
        lines += ["", "[all:vars]", f"ansible_ssh_common_args='{args}'"]
        path = Path(path)
        path.write_text("\n".join(lines) + "\n")
        return path


def _default_name(index: int) -> str:
    return f"h{index + 1:04d}"


def _listening(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((address, port)) == 0


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _ensure_fleet_user() -> str:
    """Creates (once) the fleet's user, with an empty home and a sudoers entry
    that asks for its password; returns that password."""
    if FLEET_USER not in {u.pw_name for u in pwd.getpwall()}:
        made = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                str(FLEET_HOME),
                "--shell",
                "/bin/bash",
                "--comment",
                "Squall test fleet",
                FLEET_USER,
            ],
            capture_output=True,
            text=True,
        )
        if made.returncode not in (0, 9):  # 9: made meanwhile by another fleet
            raise RuntimeError(f"useradd {FLEET_USER}: {made.stderr.strip()}")
    user = pwd.getpwnam(FLEET_USER)
    home = Path(user.pw_dir)
    home.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chown(home, user.pw_uid, user.pw_gid)
    for name in RC_FILES:  # its shell must start with nothing to read
        with contextlib.suppress(FileNotFoundError):
            (home / name).unlink()

    if PASSWORD_FILE.exists():
        password = PASSWORD_FILE.read_text().strip()
    else:
        password = base64.urlsafe_b64encode(secrets.token_bytes(18)).decode()
        fd = os.open(PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
    # Also unlocks the account: with UsePAM no, sshd refuses a locked one ("!").
    subprocess.run(
        ["chpasswd"], input=f"{FLEET_USER}:{password}\n", text=True, check=True, capture_output=True
    )

    sudoers = (
        "# The test fleet's user (tests/support/fleet.py): sudo with its password,\n"
        "# asked every time.\n"
        f"Defaults:{FLEET_USER} lecture=never, timestamp_timeout=0\n"
        f"{FLEET_USER} ALL=(ALL:ALL) ALL\n"
    )
    if not SUDOERS_FILE.exists() or SUDOERS_FILE.read_text() != sudoers:
        tmp = SUDOERS_FILE.with_name(".squall-fleet.tmp")  # a dot: sudo skips it
        tmp.write_text(sudoers)
        tmp.chmod(0o440)
        check = subprocess.run(["visudo", "-cqf", str(tmp)], capture_output=True, text=True)
        if check.returncode != 0:
            tmp.unlink()
            raise RuntimeError(f"sudoers entry refused: {check.stdout}{check.stderr}")
        tmp.replace(SUDOERS_FILE)
    return password
