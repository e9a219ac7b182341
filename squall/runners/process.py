"""Running one child process for a runner: streaming, timeout, cancel, kill.

:func:`run_process` starts ``argv`` in a new session (so its pid is also its
process-group and session id), streams stdout/stderr through the
:data:`~squall.runners.base.OutputSink` as they arrive (decoded, masked,
capped by :class:`~squall.runners.output.StreamCollector`) and waits for it
under a deadline.

On timeout, and when the awaiting task is cancelled, the whole session is
stopped: SIGTERM to the process group (and to any member of the session that
moved to another group), then SIGKILL to whatever is still alive after
``kill_grace`` seconds. A cancelled call re-raises ``CancelledError`` once the
processes are gone.

When the main process exits while something it started in the background
still holds the output pipes open, the output is read until the deadline; at
the deadline the leftovers are killed and the main process's exit code stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from squall.runners.base import OutputSink
from squall.runners.output import DEFAULT_MAX_OUTPUT_BYTES, StreamCollector

__all__ = ["DEFAULT_KILL_GRACE", "TIMEOUT_EXIT_CODE", "ProcessOutcome", "run_process"]

log = logging.getLogger(__name__)

# StackStorm reports a timed-out shell action with return code -9 (as if SIGKILLed).
TIMEOUT_EXIT_CODE = -9
DEFAULT_KILL_GRACE = 2.0
_POLL = 0.02
_READ_HIGH_WATER = 4 * 1024 * 1024  # pause the pipes when this much output is queued
_STREAM_NAMES = {1: "stdout", 2: "stderr"}


@dataclass
class ProcessOutcome:
    exit_code: int  # TIMEOUT_EXIT_CODE when timed out
    stdout: str  # masked, capped (with a truncation marker when capped)
    stderr: str
    timed_out: bool
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    side_channel: bytes = b""  # what the child wrote to the extra pipe, if asked for


class _Child:
    """Shared state of one child: its output queue and exit/EOF futures."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self.pipes: dict[int, asyncio.ReadTransport] = {}
        self.watcher: asyncio.Task[None] | None = None  # fallback exit poller, if any
        self._open = {1, 2}
        self._queued = 0
        self._paused = False

    def data(self, fd: int, data: bytes) -> None:
        self._queued += len(data)
        self.queue.put_nowait((fd, data))
        if self._queued > _READ_HIGH_WATER and not self._paused:
            self._set_reading(False)

    def consumed(self, size: int) -> None:
        self._queued -= size
        if self._paused and self._queued < _READ_HIGH_WATER // 2:
            self._set_reading(True)

    def _set_reading(self, on: bool) -> None:
        self._paused = not on
        for pipe in self.pipes.values():
            if pipe.is_closing():
                continue
            with contextlib.suppress(Exception):
                if on:
                    pipe.resume_reading()
                else:
                    pipe.pause_reading()

    def pipe_closed(self, fd: int) -> None:
        self._open.discard(fd)
        if not self._open and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def close_pipes(self) -> None:
        for pipe in self.pipes.values():
            pipe.close()


class _PipeReader(asyncio.Protocol):
    def __init__(self, child: _Child, fd: int) -> None:
        self._child = child
        self._fd = fd

    def data_received(self, data: bytes) -> None:
        self._child.data(self._fd, data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._child.pipe_closed(self._fd)


def _watch_exit(child: _Child, proc: subprocess.Popen[bytes]) -> None:
    """Resolve ``child.exited`` when ``proc`` ends: a pidfd where possible, else polling.

    This avoids asyncio's child watcher (one thread per process in 3.11),
    which costs more than the fork itself at high spawn rates.
    """
    loop = child.loop
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = -1

    def reap() -> bool:
        if proc.poll() is None:
            return False
        if not child.exited.done():
            child.exited.set_result(None)
        return True

    if pidfd >= 0:

        def on_ready() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not reap():  # cannot happen for a pidfd; stay safe anyway
                child.watcher = loop.create_task(poll())

        loop.add_reader(pidfd, on_ready)
        return

    async def poll() -> None:
        delay = 0.001
        while not reap():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    child.watcher = loop.create_task(poll())


class _SideChannel(asyncio.Protocol):
    """Collects everything written to an extra pipe (the python wrapper's result)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _session_members(sid: int) -> list[int] | None:
    """Live (non-zombie) pids in session ``sid``; None when /proc is unavailable."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    members: list[int] = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # Fields after "(comm)": state ppid pgrp session ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 4:
            continue
        if int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry))
    return members


def _group_alive(pgid: int) -> bool:
    members = _session_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _signal_session(pgid: int, sig: signal.Signals, use_sudo: bool) -> None:
    """Send ``sig`` to the process group and to stray members of the session."""
    denied = False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        denied = True
    for pid in _session_members(pgid) or ():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            denied = True
    if denied and use_sudo and os.geteuid() != 0 and shutil.which("sudo"):
        # Processes started through sudo run as another user; ask sudo to
        # deliver the signal (needs passwordless sudo for kill).
        with contextlib.suppress(OSError):
            proc = await asyncio.create_subprocess_exec(
                "sudo",
                "-n",
                "kill",
                f"-{int(sig)}",
                "--",
                f"-{pgid}",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)


async def _terminate(pgid: int, exited: asyncio.Future[None], grace: float, sudo: bool) -> None:
    """SIGTERM the session, wait up to ``grace`` seconds, then SIGKILL what is left."""
    loop = asyncio.get_running_loop()
    await _signal_session(pgid, signal.SIGTERM, sudo)
    end = loop.time() + grace
    while loop.time() < end:
        if exited.done() and not _group_alive(pgid):
            return
        await asyncio.sleep(_POLL)
    await _signal_session(pgid, signal.SIGKILL, sudo)
    await asyncio.wait({exited}, timeout=5)


def _child_env(overrides: Mapping[str, str] | None) -> dict[bytes, bytes]:
    """The worker's environment with ``overrides`` on top, as bytes (cheapest for Popen)."""
    env = dict(os.environb)
    if overrides:
        for key, value in overrides.items():
            env[os.fsencode(key)] = os.fsencode(value)
    return env


def _close_all(
    child: _Child,
    side_transport: asyncio.BaseTransport | None,
    stdin_writer: asyncio.WriteTransport | None,
) -> None:
    child.close_pipes()
    if side_transport is not None:
        side_transport.close()
    if stdin_writer is not None:
        stdin_writer.close()


def _kill_now(pgid: int) -> None:
    """Last resort, synchronous: SIGKILL the group and the session's strays."""
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)
    for pid in _session_members(pgid) or ():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str],
    *,
    output: OutputSink,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin_data: bytes | None = None,
    timeout: float | None = None,
    secrets: Sequence[Any] = (),
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    kill_grace: float = DEFAULT_KILL_GRACE,
    side_channel: bool = False,
    sudo: bool = False,
    on_spawn: Callable[[int], None] | None = None,
) -> ProcessOutcome:
    """Run ``argv`` to completion (or timeout); see the module docstring.

    The child's environment is the worker's own with ``env`` added on top.

    With ``side_channel`` an extra pipe is opened and its write end's fd number
    is appended to ``argv``; whatever the child writes there comes back as
    ``ProcessOutcome.side_channel``.

    Raises ``OSError`` when the process cannot be started.
    """
    loop = asyncio.get_running_loop()
    collectors = {
        1: StreamCollector(secrets, max_output_bytes),
        2: StreamCollector(secrets, max_output_bytes),
    }
    argv = list(argv)
    side: _SideChannel | None = None
    side_transport: asyncio.BaseTransport | None = None
    stdin_writer: asyncio.WriteTransport | None = None
    pass_fds: tuple[int, ...] = ()
    read_fd = write_fd = -1
    if side_channel:
        read_fd, write_fd = os.pipe()
        pass_fds = (write_fd,)
        argv.append(str(write_fd))

    child = _Child()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_child_env(env),
            cwd=cwd,
            start_new_session=True,
            pass_fds=pass_fds,
            bufsize=0,
        )
    except BaseException:
        if side_channel:
            os.close(read_fd)
            os.close(write_fd)
        raise
    pid = proc.pid
    if on_spawn is not None:
        on_spawn(pid)  # the child leads its own session: its pid is the group id
    _watch_exit(child, proc)
    if side_channel:
        os.close(write_fd)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        for fd, pipe in ((1, proc.stdout), (2, proc.stderr)):
            reader, _ = await loop.connect_read_pipe(
                lambda fd=fd: _PipeReader(child, fd),  # type: ignore[misc]
                pipe,
            )
            child.pipes[fd] = reader
        if side_channel:
            side_transport, side = await loop.connect_read_pipe(
                _SideChannel, os.fdopen(read_fd, "rb", buffering=0)
            )
        if stdin_data is not None and proc.stdin is not None:
            writer, _ = await loop.connect_write_pipe(asyncio.Protocol, proc.stdin)
            with contextlib.suppress(Exception):
                writer.write(stdin_data)
                writer.write_eof()
            stdin_writer = writer
    except BaseException:
        _kill_now(pid)
        child.close_pipes()
        raise

    stream_ok = True

    async def emit(name: str, text: str) -> None:
        nonlocal stream_ok
        if not text or not stream_ok:
            return
        try:
            await output(name, text)
        except asyncio.CancelledError:
            raise
        except Exception:
            stream_ok = False
            log.exception("output sink failed; streaming stopped for this run")

    async def pump() -> None:
        while True:
            item = await child.queue.get()
            if item is None:
                break
            fd, data = item
            child.consumed(len(data))
            collector = collectors.get(fd)
            if collector is not None:
                await emit(_STREAM_NAMES[fd], collector.feed(data))
        for fd, collector in collectors.items():
            await emit(_STREAM_NAMES[fd], collector.finish())

    pump_task = loop.create_task(pump())
    deadline = None if timeout is None else loop.time() + timeout

    def remaining() -> float | None:
        return None if deadline is None else max(0.0, deadline - loop.time())

    timed_out = False
    try:
        await asyncio.wait({child.exited}, timeout=remaining())
        if not child.exited.done():
            timed_out = True
            await _terminate(pid, child.exited, kill_grace, sudo)
        # Read what is left; stop at the deadline if background leftovers
        # keep the pipes open (then kill them).
        ends: set[asyncio.Future[None]] = {child.pipes_closed}
        if side is not None:
            ends.add(side.closed)
        ends = {f for f in ends if not f.done()}
        if ends:
            wait_for = remaining()
            if timed_out:
                wait_for = 2.0
            await asyncio.wait(ends, timeout=wait_for)
            if not all(f.done() for f in ends):
                await _terminate(pid, child.exited, kill_grace, sudo)
                await asyncio.wait(ends, timeout=1.0)
        _close_all(child, side_transport, stdin_writer)
        child.queue.put_nowait(None)
        await pump_task
    except asyncio.CancelledError:
        try:
            if not child.exited.done() or _group_alive(pid):
                await _terminate(pid, child.exited, kill_grace, sudo)
        except asyncio.CancelledError:
            _kill_now(pid)
        finally:
            pump_task.cancel()
            _close_all(child, side_transport, stdin_writer)
        raise

    returncode = proc.returncode
    exit_code = TIMEOUT_EXIT_CODE if timed_out else (returncode if returncode is not None else -1)
    return ProcessOutcome(
        exit_code=exit_code,
        stdout=collectors[1].value(),
        stderr=collectors[2].value(),
        timed_out=timed_out,
        stdout_truncated=collectors[1].truncated,
        stderr_truncated=collectors[2].truncated,
        side_channel=bytes(side.data) if side is not None else b"",
    )


# -- processes left behind ------------------------------------------------------------------
#
# A worker that is killed cannot stop the processes it started: they lead
# sessions of their own and keep running. The worker records each one's
# identity (pid, start time, boot) with its claim, and whoever later finds
# the claim abandoned uses it to stop them. The start time and the boot id
# make sure a pid that was reused meanwhile is never killed by mistake.


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Field 22, counted after the command name (which may contain spaces).
    return stat.rsplit(")", 1)[1].split()[19]


def process_identity(pgid: int) -> dict[str, Any]:
    """What identifies the process group ``pgid`` on this machine, this boot."""
    return {
        "pgid": pgid,
        "start": _start_time(pgid),
        "boot": _boot_id(),
        "host": socket.gethostname(),
    }


def kill_leftover(identity: Mapping[str, Any]) -> bool:
    """Kill the process group ``identity`` names, if it is still that same
    group on this machine; True when something was killed."""
    pgid = identity.get("pgid")
    if not isinstance(pgid, int) or identity.get("host") != socket.gethostname():
        return False
    if identity.get("boot") != _boot_id():
        return False
    started = _start_time(pgid)
    if started is None or started != identity.get("start"):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
