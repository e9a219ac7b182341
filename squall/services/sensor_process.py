"""One pack sensor in a child process, supervised (asyncio; no database here).

:class:`SensorProcess` starts :mod:`squall.runners.sensor_wrapper` under the
pack's interpreter (or Squall's own), feeds it the start spec and then speaks
its JSON-lines protocol (described in that module). What the sensor produces
goes to async callbacks supplied by the caller:

* ``on_dispatch(batch)``: a list of ``{"trigger", "payload", "trace_tag"}``
  events, in the order the sensor dispatched them. Events that arrived
  together are handed over together (at most ``batch_size`` at a time).
* ``on_kv(method, args)``: a datastore call; ``method`` and ``args`` are as
  in the wrapper's protocol, the return value goes back to the sensor and an
  exception becomes an error there.
* ``on_state(state, info)``: lifecycle: ``starting``, ``running``,
  ``crashed``, ``backoff``, ``stopped`` (``info`` holds ``pid``,
  ``exit_code``, ``reason``, ``last_error`` = the last 4 KB of stderr,
  ``restarts``, ``next_start_at``... as they apply).

Delivery is at least once per event, never zero times while the parent
lives: a dispatch is acknowledged to the sensor only after ``on_dispatch``
returned for the batch that holds it. When ``on_dispatch`` raises, the same
batch is retried with exponential backoff (``dispatch_retry_initial`` up to
``dispatch_retry_max`` seconds), acks held, for as long as it takes. The
sensor is not restarted for it: a new sensor process would not send the
events again, so a restart could only lose them. With the acks held the
sensor's window (``window`` events) fills and its ``dispatch()`` blocks, which
is the back-pressure the caller wants while its store is down; the time the
sensor spends blocked on the parent does not count towards the hang
timeouts. Events received from a sensor that then crashed are still
delivered, before its replacement starts, so order holds across restarts.
Only :meth:`SensorProcess.stop` gives up on them, after ``stop_grace``
seconds, and logs how many were lost.

:meth:`SensorProcess.run` is the supervisor: it restarts a sensor that exits
with an error, or that it killed because ``setup()`` did not report ready
within ``setup_timeout`` or a ``poll()`` ran longer than ``poll_timeout``,
after ``backoff_initial`` seconds, doubling up to ``backoff_max``; a sensor
that stayed up ``stable_after`` seconds starts again from the initial delay.
A sensor whose ``run()`` returned on its own (exit code 0) is not restarted,
as in StackStorm, unless ``restart_on_clean_exit`` is set.

The child runs in a new session (so in its own process group, which is
killed as a whole) with a small environment: the locale, ``PATH``, ``HOME``,
temp-dir, CA-bundle and proxy variables of the parent, plus ``env``. Nothing
else of the parent's (database URLs, tokens) reaches the sensor unless the
caller passes it in ``env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import squall.runners

__all__ = [
    "WRAPPER_PATH",
    "DispatchCallback",
    "KVCallback",
    "SensorProcess",
    "StateCallback",
    "sensor_env",
]

log = logging.getLogger(__name__)

WRAPPER_PATH = Path(squall.runners.__file__).with_name("sensor_wrapper.py")

DispatchCallback = Callable[[list[dict[str, Any]]], Awaitable[None]]
KVCallback = Callable[[str, dict[str, Any]], Awaitable[Any]]
StateCallback = Callable[[str, dict[str, Any]], Awaitable[None]]

DEFAULT_WINDOW = 64
DEFAULT_BATCH_SIZE = 256
LAST_ERROR_BYTES = 4096
# The wrapper refuses dispatches over 8 MiB; leave room for the envelope.
_LINE_LIMIT = 16 * 1024 * 1024
_STDERR_LINE_MAX = 64 * 1024
_LEVEL_RE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) ")

_ENV_PASSED = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


def sensor_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a sensor process: an allow-list of the parent's, then ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key in _ENV_PASSED or key.startswith("LC_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if extra:
        env.update({str(k): str(v) for k, v in extra.items() if v is not None})
    return env


def _trigger_key(trigger: Mapping[str, Any]) -> str:
    # Same identity as the wrapper uses, so both sides agree on "the same trigger".
    for field in ("id", "ref", "uid", "name"):
        value = trigger.get(field)
        if value:
            return f"{field}:{value}"
    return json.dumps(trigger, sort_keys=True, default=str)


def _pack_dir_of(entry_point_path: str) -> str | None:
    # <pack>/sensors/[sub/]file.py -> <pack>
    for parent in Path(entry_point_path).resolve().parents:
        if parent.name == "sensors":
            return str(parent.parent)
    return None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _Instance:
    """One child process of the sensor and what the parent knows about it."""

    def __init__(self, proc: asyncio.subprocess.Process, started_at: float) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.started_at = started_at
        self.ready = False
        # "setup" until ready, then "poll" while a poll() runs, else "idle".
        self.phase = "setup"
        self.phase_elapsed = 0.0  # seconds the sensor itself spent in this phase
        self.pending: deque[dict[str, Any]] = deque()  # received, not yet delivered
        self.pending_changed = asyncio.Event()
        self.unacked = 0  # received and not acknowledged (pending + being delivered)
        self.kv_outstanding = 0
        self.kv_tasks: set[asyncio.Task[None]] = set()
        self.stdout_done = False
        self.stderr_tail = bytearray()
        self.kill_reason: str | None = None


class SensorProcess:
    """Runs and supervises one sensor; see the module docstring.

    ``sensor`` is the sensor's metadata as the pack loader builds it: at
    least ``class_name`` and ``entry_point_path``, usually also ``pack``,
    ``ref`` and ``poll_interval``. ``config`` is the pack config and
    ``triggers`` the existing triggers of the sensor's trigger types, each
    passed to the sensor's ``add_trigger()`` at every start. ``python`` is
    the interpreter to run it with (the pack's virtualenv's; Squall's own by
    default). The timeouts, delays and sizes are keyword arguments so that
    tests can shrink them.

    :meth:`run` supervises until :meth:`stop` (which waits for it); both the
    trigger methods and :meth:`stop` may be called from other tasks at any
    time. A callback must not itself await :meth:`stop`: the stop waits for
    the callbacks in flight. An instance is not started again after a stop.
    """

    def __init__(
        self,
        sensor: Mapping[str, Any],
        *,
        on_dispatch: DispatchCallback,
        on_kv: KVCallback | None = None,
        on_state: StateCallback | None = None,
        config: Mapping[str, Any] | None = None,
        triggers: Sequence[Mapping[str, Any]] = (),
        pack_dir: str | None = None,
        python: str | None = None,
        env: Mapping[str, str] | None = None,
        log_level: str = "INFO",
        window: int = DEFAULT_WINDOW,
        batch_size: int = DEFAULT_BATCH_SIZE,
        setup_timeout: float = 30.0,
        poll_timeout: float | None = None,
        stop_grace: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_max: float = 60.0,
        stable_after: float = 60.0,
        dispatch_retry_initial: float = 0.5,
        dispatch_retry_max: float = 30.0,
        restart_on_clean_exit: bool = False,
    ) -> None:
        if not sensor.get("class_name") or not sensor.get("entry_point_path"):
            raise ValueError("a sensor needs class_name and entry_point_path")
        self.sensor = dict(sensor)
        self.pack = str(sensor.get("pack") or "unknown")
        self.ref = str(sensor.get("ref") or f"{self.pack}.{sensor['class_name']}")
        self.on_dispatch = on_dispatch
        self.on_kv = on_kv
        self.on_state = on_state
        self.config = dict(config or {})
        self.pack_dir = pack_dir or _pack_dir_of(str(sensor["entry_point_path"]))
        self.python = python or sys.executable
        self.env = sensor_env(env)
        self.log_level = log_level
        self.window = max(1, window)
        self.batch_size = max(1, batch_size)
        self.setup_timeout = setup_timeout
        poll_interval = sensor.get("poll_interval")
        if poll_timeout is None:
            poll_timeout = max(60.0, 10.0 * float(poll_interval or 0))
        self.poll_timeout = poll_timeout
        self.stop_grace = stop_grace
        self.backoff_initial = backoff_initial
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.dispatch_retry_initial = dispatch_retry_initial
        self.dispatch_retry_max = dispatch_retry_max
        self.restart_on_clean_exit = restart_on_clean_exit
        self.logger = logging.getLogger(f"squall.sensors.{self.ref}")

        self._triggers: dict[str, dict[str, Any]] = {}
        for trigger in triggers:
            self._triggers[_trigger_key(trigger)] = dict(trigger)
        self._state = "stopped"
        self._instance: _Instance | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._done: asyncio.Event | None = None
        self._stop_deadline: float | None = None
        self.restarts = 0  # processes started after the first

    # -- public API ----------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def pid(self) -> int | None:
        instance = self._instance
        return instance.pid if instance is not None else None

    @property
    def triggers(self) -> list[dict[str, Any]]:
        """The triggers a (re)started sensor gets, as last added or updated."""
        return [dict(t) for t in self._triggers.values()]

    async def add_trigger(self, trigger: Mapping[str, Any]) -> None:
        self._triggers[_trigger_key(trigger)] = dict(trigger)
        await self._control({"op": "add_trigger", "trigger": dict(trigger)})

    async def update_trigger(self, trigger: Mapping[str, Any]) -> None:
        self._triggers[_trigger_key(trigger)] = dict(trigger)
        await self._control({"op": "update_trigger", "trigger": dict(trigger)})

    async def remove_trigger(self, trigger: Mapping[str, Any]) -> None:
        self._triggers.pop(_trigger_key(trigger), None)
        await self._control({"op": "remove_trigger", "trigger": dict(trigger)})

    async def run(self) -> None:
        """Start the sensor and keep it running until :meth:`stop` (or a clean exit)."""
        if self._done is not None and not self._done.is_set():
            raise RuntimeError(f"sensor {self.ref} is already running")
        self._done = asyncio.Event()
        failures = 0
        last: dict[str, Any] = {}
        try:
            while not self._stopping:
                last = await self._run_once()
                if self._stopping:
                    if last.get("exit_code") == 0:
                        last["reason"] = "stopped"
                    break
                if last.get("exit_code") == 0 and not self.restart_on_clean_exit:
                    last["reason"] = "the sensor's run() returned"
                    break
                if last.get("uptime", 0.0) >= self.stable_after:
                    failures = 0
                failures += 1
                delay = min(
                    self.backoff_max, self.backoff_initial * self.backoff_factor ** (failures - 1)
                )
                await self._set_state("crashed", last)
                self.logger.warning(
                    "sensor %s %s; restarting in %gs", self.ref, last.get("reason"), delay
                )
                await self._set_state(
                    "backoff",
                    {
                        **last,
                        "delay": delay,
                        "failures": failures,
                        "next_start_at": time.time() + delay,
                    },
                )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                if not self._stopping:
                    self.restarts += 1
        finally:
            self._instance = None
            keys = ("pid", "exit_code", "reason", "last_error")
            info: dict[str, Any] = {k: last[k] for k in keys if k in last}
            await self._set_state("stopped", {**info, "restarts": self.restarts})
            self._done.set()

    async def stop(self) -> None:
        """Ask the sensor to stop (``cleanup()``), kill its group after ``stop_grace``."""
        loop = asyncio.get_running_loop()
        if not self._stopping:
            self._stopping = True
            self._stop_deadline = loop.time() + self.stop_grace
            self._wake.set()
        instance = self._instance
        if instance is not None:
            # The watchdog kills the group if it is still there at the deadline.
            await self._send(instance, {"op": "stop"})
        if self._done is not None:
            await self._done.wait()
        else:
            self._state = "stopped"

    # -- one process -----------------------------------------------------------------

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            self.python,
            "-u",
            str(WRAPPER_PATH),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.pack_dir if self.pack_dir and os.path.isdir(self.pack_dir) else None,
            start_new_session=True,
            limit=_LINE_LIMIT,
        )

    def _start_spec(self) -> bytes:
        spec = {
            "pack": self.pack,
            "ref": self.ref,
            "class_name": self.sensor["class_name"],
            "entry_point_path": str(self.sensor["entry_point_path"]),
            "poll_interval": self.sensor.get("poll_interval"),
            "config": self.config,
            "triggers": list(self._triggers.values()),
            "pack_dir": self.pack_dir,
            "window": self.window,
            "log_level": self.log_level,
            # The wrapper's own waits on stop (poll, cleanup, acks) fit in the grace.
            "drain_timeout": self.stop_grace / 4,
        }
        return (json.dumps(spec, default=str) + "\n").encode("utf-8")

    async def _run_once(self) -> dict[str, Any]:
        """Start one process and supervise it until it exited; what became of it."""
        loop = asyncio.get_running_loop()
        try:
            proc = await self._spawn()
        except OSError as exc:
            reason = f"could not start {self.python}: {exc.strerror or exc}"
            self.logger.error("sensor %s: %s", self.ref, reason)
            return {"pid": None, "exit_code": None, "reason": reason, "last_error": reason}
        instance = _Instance(proc, loop.time())
        assert proc.stdin is not None
        # Spec and current triggers in one go, with no await in between: a
        # trigger change made from now on is sent after the spec, in order.
        proc.stdin.write(self._start_spec())
        self._instance = instance
        await self._set_state("starting", {"pid": instance.pid, "restarts": self.restarts})
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        if self._stopping:
            await self._send(instance, {"op": "stop"})

        stdout_task = loop.create_task(self._read_stdout(instance))
        stderr_task = loop.create_task(self._read_stderr(instance))
        dispatch_task = loop.create_task(self._deliver(instance))
        watchdog = loop.create_task(self._watch(instance))
        try:
            await proc.wait()
            _kill_group(instance.pid)  # whatever the sensor started dies with it
            await asyncio.wait({stdout_task}, timeout=2.0)
            await asyncio.wait({stderr_task}, timeout=1.0)
            watchdog.cancel()
            instance.stdout_done = True
            instance.pending_changed.set()
            await self._drain(instance, dispatch_task)
        finally:
            for task in (stdout_task, stderr_task, dispatch_task, watchdog, *instance.kv_tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                proc.stdin.close()
            _kill_group(instance.pid)

        exit_code = proc.returncode
        last_error = bytes(instance.stderr_tail).decode("utf-8", "replace")
        if instance.kill_reason:
            reason = instance.kill_reason
        elif exit_code is not None and exit_code < 0:
            reason = f"was killed by signal {-exit_code}"
        else:
            reason = f"exited with code {exit_code}"
        return {
            "pid": instance.pid,
            "exit_code": exit_code,
            "reason": reason,
            "last_error": last_error,
            "restarts": self.restarts,
            "uptime": loop.time() - instance.started_at,
        }

    async def _drain(self, instance: _Instance, dispatch_task: asyncio.Task[None]) -> None:
        """Deliver what the dead process sent; bounded by the grace period once stopping."""
        loop = asyncio.get_running_loop()
        while not dispatch_task.done():
            if self._stopping:
                remaining = (self._stop_deadline or loop.time()) - loop.time()
                if remaining <= 0:
                    break
                await asyncio.wait({dispatch_task}, timeout=remaining)
                continue
            stop_waiter = loop.create_task(self._wake.wait())
            try:
                await asyncio.wait(
                    {dispatch_task, stop_waiter}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop_waiter.cancel()
        if not dispatch_task.done():
            dispatch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatch_task
            if instance.unacked:
                self.logger.error(
                    "sensor %s stopped with %d events that could not be delivered",
                    self.ref,
                    instance.unacked,
                )

    async def _read_stdout(self, instance: _Instance) -> None:
        stream = instance.proc.stdout
        assert stream is not None
        while True:
            try:
                line = await stream.readline()
            except ValueError:
                # A line over the limit cannot be resynchronised: start afresh.
                self._kill(instance, "sent a protocol message over the size limit")
                return
            if not line:
                return
            try:
                message = json.loads(line)
            except ValueError:
                self.logger.warning("sensor %s: malformed protocol line ignored", self.ref)
                continue
            if not isinstance(message, dict):
                continue
            op = message.get("op")
            if op == "dispatch":
                instance.pending.append(message)
                instance.unacked += 1
                instance.pending_changed.set()
            elif op == "kv":
                instance.kv_outstanding += 1
                task = asyncio.get_running_loop().create_task(self._kv(instance, message))
                instance.kv_tasks.add(task)
                task.add_done_callback(instance.kv_tasks.discard)
            elif op == "poll_start":
                instance.phase, instance.phase_elapsed = "poll", 0.0
            elif op == "poll_end":
                instance.phase, instance.phase_elapsed = "idle", 0.0
            elif op == "ready":
                instance.ready = True
                instance.phase, instance.phase_elapsed = "idle", 0.0
                self.logger.info("sensor %s is running (pid %d)", self.ref, instance.pid)
                await self._set_state("running", {"pid": instance.pid, "restarts": self.restarts})
            else:
                self.logger.warning("sensor %s: unknown protocol message %r", self.ref, op)

    async def _read_stderr(self, instance: _Instance) -> None:
        stream = instance.proc.stderr
        assert stream is not None
        partial = b""
        level = logging.INFO
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            instance.stderr_tail += chunk
            del instance.stderr_tail[:-LAST_ERROR_BYTES]
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            if len(partial) > _STDERR_LINE_MAX:
                lines.append(partial)
                partial = b""
            for raw in lines:
                level = self._log_line(raw, level)
        if partial:
            self._log_line(partial, level)

    def _log_line(self, raw: bytes, level: int) -> int:
        """Forward one stderr line; returns the level an indented next line inherits."""
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if not text:
            return level
        match = _LEVEL_RE.match(text)
        if match:
            level = logging.getLevelNamesMapping()[match.group(1)]
        elif not text[0].isspace():
            level = logging.INFO  # a plain print() or a child process's output
        self.logger.log(level, "%s", text)
        return level

    async def _deliver(self, instance: _Instance) -> None:
        """Hand dispatched events over in batches; ack each batch once it was taken."""
        while True:
            if not instance.pending:
                if instance.stdout_done:
                    return
                instance.pending_changed.clear()
                await instance.pending_changed.wait()
                continue
            count = min(len(instance.pending), self.batch_size)
            messages = [instance.pending.popleft() for _ in range(count)]
            batch = [
                {
                    "trigger": m.get("trigger"),
                    "payload": m.get("payload"),
                    "trace_tag": m.get("trace_tag"),
                }
                for m in messages
            ]
            delay = self.dispatch_retry_initial
            while True:
                try:
                    await self.on_dispatch(batch)
                    break
                except asyncio.CancelledError:
                    instance.pending.extendleft(reversed(messages))
                    raise
                except Exception:
                    self.logger.exception(
                        "sensor %s: delivering %d events failed; retrying in %gs "
                        "(the sensor is held meanwhile)",
                        self.ref,
                        len(batch),
                        delay,
                    )
                    try:
                        await asyncio.sleep(delay)
                    except asyncio.CancelledError:
                        instance.pending.extendleft(reversed(messages))
                        raise
                    delay = min(self.dispatch_retry_max, delay * 2)
            instance.unacked -= count
            acks = "".join(
                f'{{"op":"ack","id":{int(m.get("id") or 0)}}}\n' for m in messages
            ).encode("ascii")
            await self._write(instance, acks)

    async def _kv(self, instance: _Instance, message: dict[str, Any]) -> None:
        method = str(message.get("method") or "")
        args = message.get("args")
        reply: dict[str, Any] = {"op": "kv_result", "id": message.get("id")}
        try:
            if self.on_kv is None:
                raise RuntimeError("the datastore is not available to this sensor")
            reply["result"] = await self.on_kv(method, args if isinstance(args, dict) else {})
            reply["error"] = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reply["result"] = None
            reply["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            instance.kv_outstanding -= 1
        try:
            data = (json.dumps(reply, default=str) + "\n").encode("utf-8")
        except (TypeError, ValueError) as exc:
            data = (
                json.dumps({**reply, "result": None, "error": f"result is not JSON: {exc}"}) + "\n"
            ).encode("utf-8")
        await self._write(instance, data)

    async def _watch(self, instance: _Instance) -> None:
        """Kill a sensor whose setup() or poll() takes too long (its own time only),
        or that is still there when the stop's grace period is over."""
        loop = asyncio.get_running_loop()
        tick = max(0.01, min(0.25, self.setup_timeout / 20, self.poll_timeout / 20))
        last = loop.time()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            # Blocked on a full window or on a datastore answer, the sensor waits for us.
            held = instance.unacked >= self.window or instance.kv_outstanding > 0
            if not held:
                instance.phase_elapsed += now - last
            last = now
            if self._stop_deadline is not None and now >= self._stop_deadline:
                self._kill(instance, f"did not stop within {self.stop_grace:g}s")
                return
            if instance.phase == "setup" and instance.phase_elapsed > self.setup_timeout:
                self._kill(instance, f"setup() did not finish within {self.setup_timeout:g}s")
                return
            if instance.phase == "poll" and instance.phase_elapsed > self.poll_timeout:
                self._kill(instance, f"poll() ran longer than {self.poll_timeout:g}s")
                return

    def _kill(self, instance: _Instance, reason: str) -> None:
        if instance.kill_reason is None:
            instance.kill_reason = reason
        self.logger.error("sensor %s %s; killing it", self.ref, reason)
        _kill_group(instance.pid)

    # -- helpers ---------------------------------------------------------------------

    async def _control(self, message: dict[str, Any]) -> None:
        instance = self._instance
        if instance is not None:
            await self._send(instance, message)

    async def _send(self, instance: _Instance, message: dict[str, Any]) -> None:
        await self._write(instance, (json.dumps(message, default=str) + "\n").encode("utf-8"))

    async def _write(self, instance: _Instance, data: bytes) -> None:
        stdin = instance.proc.stdin
        if stdin is None or stdin.is_closing() or instance.proc.returncode is not None:
            return
        # The sensor may have died a moment ago; its replacement gets a fresh spec.
        with contextlib.suppress(ConnectionError, RuntimeError):
            stdin.write(data)
            await stdin.drain()

    async def _set_state(self, state: str, info: dict[str, Any]) -> None:
        self._state = state
        if self.on_state is None:
            return
        try:
            await self.on_state(state, dict(info))
        except asyncio.CancelledError:
            raise
        except Exception:
            self.logger.exception("sensor %s: on_state(%r) failed", self.ref, state)
