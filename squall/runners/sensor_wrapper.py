"""Child-process side of a pack sensor.

Run as ``python -u sensor_wrapper.py`` (what :mod:`squall.services.sensor_process`
does, so that it works under a pack's own interpreter) or as
``python -m squall.runners.sensor_wrapper``. Standard library only; the code
must also run on interpreters older than Squall's.

The parent writes one JSON line on stdin, the start spec::

    {"pack": "mypack", "ref": "mypack.MySensor", "class_name": "MySensor",
     "entry_point_path": "/.../sensors/my_sensor.py", "poll_interval": 30,
     "config": {...}, "triggers": [{"ref": ..., "type": ..., "parameters": {...}}],
     "pack_dir": "/.../mypack", "window": 64, "log_level": "INFO"}

and then talks JSON lines both ways.

Sensor -> parent, on stdout (the sensor's own prints go to stderr):

* ``{"op": "ready"}`` once ``setup()`` returned;
* ``{"op": "dispatch", "id": N, "trigger": ..., "payload": ..., "trace_tag": ...}``;
* ``{"op": "kv", "id": N, "method": M, "args": {...}}`` for the datastore, with
  M one of ``get_value`` ``{name, scope, decrypt}``, ``set_value``
  ``{name, value, ttl, scope, encrypt}``, ``delete_value`` ``{name, scope}``,
  ``list_values`` ``{prefix, limit, offset}``. Names and prefixes are full
  key names (local keys already carry the ``<pack>.<Class>:`` prefix) and
  the scope is always ``st2kv.system``;
* ``{"op": "poll_start"}`` and ``{"op": "poll_end"}`` around each ``poll()``.

Parent -> sensor, on stdin:

* ``{"op": "ack", "id": N}`` once dispatch N is safe with the parent;
* ``{"op": "kv_result", "id": N, "result": ..., "error": null|"text"}``;
* ``{"op": "add_trigger"|"update_trigger"|"remove_trigger", "trigger": {...}}``;
* ``{"op": "stop"}``: finish the poll in progress, call ``cleanup()``, wait
  (bounded) for the outstanding acks and exit 0.

``dispatch()`` never drops an event: it returns once the event is in a window
of at most ``window`` unacknowledged dispatches, and blocks while that window
is full, so a sensor faster than its consumer is slowed down instead of
losing events.

The process exits 1, with the traceback on stderr, when loading the class,
``setup()``, an initial ``add_trigger()``, ``run()`` or ``poll()`` raises; it
exits 0 when ``run()`` returns on its own. Whenever ``setup()`` had
succeeded, ``cleanup()`` is called before the exit, as StackStorm does at
exit. An ``add_trigger()``/``update_trigger()``/``remove_trigger()`` that
raises later is logged and the sensor goes on. Closing stdin counts as the
parent having died: the sensor is cleaned up and the process exits.
"""

from __future__ import annotations

import os
import sys

# Running as a script puts this directory first on sys.path, where modules
# such as ``http.py`` would shadow the standard library for the sensor.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path.pop(0)

import contextlib  # noqa: E402
import datetime  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import queue  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import IO, Any  # noqa: E402

SHIM_DIR = os.path.join(_HERE, "st2compat")
DEFAULT_WINDOW = 64
# Larger dispatches are refused in the sensor, where the error can be seen,
# rather than failing the parent's line reader.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DEFAULT_DRAIN_TIMEOUT = 5.0
EXIT_FAILED = 1
EXIT_BAD_SPEC = 2
_SYSTEM_SCOPES = ("system", "st2kv.system")
_FULL_SYSTEM_SCOPE = "st2kv.system"
_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}

log = logging.getLogger("SensorWrapper")


class ChannelClosed(RuntimeError):
    """The parent went away: nothing can be dispatched or looked up any more."""


def _json_default(value: Any) -> Any:
    # Sensors often put datetimes or sets in payloads (StackStorm pickled them).
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, default=_json_default, separators=(",", ":")) + "\n").encode(
        "utf-8"
    )


class _Channel:
    """The JSON-lines link to the parent: sending, acks, datastore replies."""

    def __init__(self, out_fd: int, infile: IO[bytes], window: int) -> None:
        self._out_fd = out_fd
        self._infile = infile
        self._window = max(1, window)
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._next_id = 0
        self._unacked: set[int] = set()
        self._replies: dict[int, dict[str, Any] | None] = {}
        self.closed = False

    def _write(self, data: bytes) -> None:
        try:
            with self._send_lock:
                view = memoryview(data)
                while view:
                    written = os.write(self._out_fd, view)
                    view = view[written:]
        except OSError as exc:
            self._close()
            raise ChannelClosed(f"the sensor runtime went away: {exc}") from None

    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise ChannelClosed("the sensor runtime went away")
        self._write(_encode(message))

    def dispatch(self, trigger: Any, payload: Any, trace_tag: Any) -> None:
        # Encode before taking a slot in the window, so a payload that cannot
        # be sent fails in the sensor without leaving an ack outstanding.
        body = json.dumps(
            {"trigger": trigger, "payload": payload, "trace_tag": trace_tag},
            default=_json_default,
            separators=(",", ":"),
        )
        if len(body) > MAX_MESSAGE_BYTES:
            raise ValueError(
                f"trigger payload is too large ({len(body)} bytes, at most {MAX_MESSAGE_BYTES})"
            )
        with self._cond:
            while len(self._unacked) >= self._window and not self.closed:
                self._cond.wait()
            if self.closed:
                raise ChannelClosed("the sensor runtime went away; event not dispatched")
            self._next_id += 1
            message_id = self._next_id
            self._unacked.add(message_id)
        line = f'{{"op":"dispatch","id":{message_id},{body[1:]}\n'
        self._write(line.encode("utf-8"))

    def request(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Send a datastore call and wait for its ``kv_result`` message."""
        with self._cond:
            if self.closed:
                raise ChannelClosed("the sensor runtime went away")
            self._next_id += 1
            message_id = self._next_id
            self._replies[message_id] = None
        try:
            self.send({"op": "kv", "id": message_id, "method": method, "args": args})
            with self._cond:
                while self._replies.get(message_id) is None and not self.closed:
                    self._cond.wait()
                reply = self._replies.get(message_id)
        finally:
            with self._cond:
                self._replies.pop(message_id, None)
        if reply is None:
            raise ChannelClosed("the sensor runtime went away before answering")
        return reply

    def wait_drained(self, timeout: float) -> bool:
        """Wait until every dispatch was acknowledged; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._unacked or self.closed, timeout)

    def outstanding(self) -> int:
        with self._cond:
            return len(self._unacked)

    def _close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def read_forever(
        self, on_control: Callable[[dict[str, Any]], None], on_eof: Callable[[], None]
    ) -> None:
        """Reader thread: acks and replies are handled here, the rest is handed on."""
        try:
            for raw in self._infile:
                try:
                    message = json.loads(raw.decode("utf-8"))
                except ValueError:
                    log.warning("ignoring a malformed message from the sensor runtime")
                    continue
                if not isinstance(message, dict):
                    continue
                op = message.get("op")
                if op == "ack":
                    with self._cond:
                        self._unacked.discard(message.get("id"))
                        self._cond.notify_all()
                elif op == "kv_result":
                    with self._cond:
                        if message.get("id") in self._replies:
                            self._replies[message["id"]] = message
                            self._cond.notify_all()
                else:
                    on_control(message)
        except (OSError, ValueError):
            pass
        self._close()
        on_eof()


def _trigger_key(trigger: dict[str, Any]) -> str:
    for field in ("id", "ref", "uid", "name"):
        value = trigger.get(field)
        if value:
            return f"{field}:{value}"
    return json.dumps(trigger, sort_keys=True, default=str)


def _full_scope(scope: str) -> str:
    if scope not in _SYSTEM_SCOPES:
        raise ValueError(f"Scope {scope} is unsupported.")
    return _FULL_SYSTEM_SCOPE


class SensorService:
    """What a sensor gets as ``self.sensor_service`` (StackStorm's methods)."""

    def __init__(self, runtime: _Runtime) -> None:
        from st2common.services.datastore import DatastoreError, KeyValuePair

        self._runtime = runtime
        self._channel = runtime.channel
        self._pack = runtime.pack
        self._class_name = runtime.class_name
        self._logger = logging.getLogger(f"SensorWrapper.{self._pack}.{self._class_name}")
        self._error_class = DatastoreError
        self._pair_class = KeyValuePair

    @property
    def datastore_service(self) -> SensorService:
        return self

    def get_logger(self, name: str) -> logging.Logger:
        logger = logging.getLogger(f"{self._logger.name}.{name}")
        logger.propagate = True
        return logger

    def get_user_info(self) -> Any:
        raise NotImplementedError("get_user_info() is not available to Squall sensors")

    # -- triggers -------------------------------------------------------------

    def dispatch(self, trigger: Any, payload: Any = None, trace_tag: Any = None) -> None:
        """Send an event; returns once the parent holds it or will (see the window)."""
        self._channel.dispatch(_trigger_ref(trigger), payload, trace_tag or None)

    def dispatch_with_context(
        self, trigger: Any, payload: Any = None, trace_context: Any = None
    ) -> None:
        trace_tag = None
        if isinstance(trace_context, dict):
            trace_tag = trace_context.get("trace_tag")
        elif trace_context is not None:
            trace_tag = getattr(trace_context, "trace_tag", None)
        self.dispatch(trigger, payload=payload, trace_tag=trace_tag)

    # -- datastore --------------------------------------------------------------

    def _local_prefix(self) -> str:
        return f"{self._pack}.{self._class_name}:"

    def _key(self, name: str, local: bool) -> str:
        return self._local_prefix() + name if local else name

    def _call(self, method: str, args: dict[str, Any]) -> Any:
        reply = self._channel.request(method, args)
        if reply.get("error"):
            raise self._error_class(f"{method} failed: {reply['error']}")
        return reply.get("result")

    def list_values(
        self,
        local: bool = True,
        prefix: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Any]:
        key_prefix = self._local_prefix() + (prefix or "") if local else prefix
        items = self._call("list_values", {"prefix": key_prefix, "limit": limit, "offset": offset})
        return [self._pair_class(item) for item in items or [] if isinstance(item, dict)]

    def get_value(
        self, name: str, local: bool = True, scope: str = "system", decrypt: bool = False
    ) -> Any:
        full_scope = _full_scope(scope)
        key = self._key(name, local)
        args = {"name": key, "scope": full_scope, "decrypt": bool(decrypt)}
        try:
            return self._call("get_value", args)
        except self._error_class as exc:
            # As in StackStorm: a failed read is logged and looks like a missing key.
            self._logger.exception("could not read %s from the datastore: %s", key, exc)
            return None

    def set_value(
        self,
        name: str,
        value: Any,
        ttl: int | None = None,
        local: bool = True,
        scope: str = "system",
        encrypt: bool = False,
    ) -> bool:
        full_scope = _full_scope(scope)
        args = {
            "name": self._key(name, local),
            "value": str(value),
            "ttl": ttl or None,
            "scope": full_scope,
            "encrypt": bool(encrypt),
        }
        self._call("set_value", args)
        return True

    def delete_value(self, name: str, local: bool = True, scope: str = "system") -> bool:
        full_scope = _full_scope(scope)
        key = self._key(name, local)
        try:
            result = self._call("delete_value", {"name": key, "scope": full_scope})
        except self._error_class as exc:
            self._logger.exception("could not delete %s from the datastore: %s", key, exc)
            return False
        return result is not False

    # -- used by PollingSensor.run() -------------------------------------------

    def _run_poll_loop(self, sensor: Any) -> None:
        self._runtime.poll_loop(sensor)


def _trigger_ref(trigger: Any) -> Any:
    if isinstance(trigger, (str, dict)):
        return trigger
    ref = getattr(trigger, "ref", None)
    return ref if isinstance(ref, str) else str(trigger)


class _Runtime:
    """One sensor instance in this process, from loading to exit."""

    def __init__(self, spec: dict[str, Any], channel: _Channel) -> None:
        self.spec = spec
        self.channel = channel
        self.pack = str(spec.get("pack") or "unknown")
        self.class_name = str(spec["class_name"])
        self.ref = str(spec.get("ref") or f"{self.pack}.{self.class_name}")
        self.drain_timeout = float(spec.get("drain_timeout") or DEFAULT_DRAIN_TIMEOUT)
        self.sensor: Any = None
        self.set_up = False  # setup() returned: cleanup() has something to undo
        self.stopping = threading.Event()
        self.started = threading.Event()
        self._controls: queue.Queue[dict[str, Any]] = queue.Queue()
        self._poll_state = threading.Condition()
        self._polling = False
        self._finish_lock = threading.Lock()
        self._finishing = False
        self._triggers: dict[str, dict[str, Any]] = {}
        self._logger = logging.getLogger(f"SensorWrapper.{self.pack}.{self.class_name}")

    # -- lifecycle ---------------------------------------------------------------

    def main(self) -> int:
        threading.Thread(
            target=self.channel.read_forever,
            args=(self._controls.put, self._orphaned),
            name="squall-sensor-reader",
            daemon=True,
        ).start()
        threading.Thread(
            target=self._control_loop, name="squall-sensor-control", daemon=True
        ).start()
        try:
            self.sensor = self._instantiate()
            self.sensor.setup()
            self.set_up = True
            self.channel.send({"op": "ready"})
            for trigger in self.spec.get("triggers") or []:
                if isinstance(trigger, dict):
                    self._apply("add_trigger", trigger)
            self.started.set()
            self.sensor.run()
        except SystemExit as exc:
            if exc.code not in (None, 0):
                self._fail(exc)
        except BaseException as exc:
            # After a stop (or when the parent is gone), run() failing is the
            # expected result of cleanup() closing what it used.
            if not (self.stopping.is_set() or isinstance(exc, ChannelClosed)):
                self._fail(exc)
        if self.stopping.is_set() or self.channel.closed:
            _park()
        # run() returned on its own: like an interpreter exit, wait for the
        # sensor's non-daemon threads, then clean up.
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        self._finish(0, cleanup=True, drain=True)
        return 0

    def _instantiate(self) -> Any:
        path = self.spec.get("entry_point_path")
        if not isinstance(path, str) or not path:
            raise ValueError("the start spec has no entry_point_path")
        sensor_dir = os.path.dirname(os.path.realpath(path))
        if sensor_dir not in sys.path:
            sys.path.append(sensor_dir)
        sys.argv = [path]
        stem = os.path.splitext(os.path.basename(path))[0] or "sensor"
        name = stem if stem not in sys.modules else "squall_sensor_" + stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f'Sensor file "{path}" is not a python module')
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        cls = getattr(module, self.class_name, None)
        if not isinstance(cls, type):
            raise ValueError(f'Sensor module "{path}" has no class named "{self.class_name}"')

        from st2reactor.sensor.base import PollingSensor

        config = self.spec.get("config") or {}
        kwargs: dict[str, Any] = {"sensor_service": SensorService(self), "config": config}
        poll_interval = self.spec.get("poll_interval")
        if poll_interval and issubclass(cls, PollingSensor):
            kwargs["poll_interval"] = poll_interval
        return cls(**kwargs)

    def poll_loop(self, sensor: Any) -> None:
        while True:
            with self._poll_state:
                # Checked under the lock the stopper waits on, so no poll
                # starts once a stop has begun.
                if self.stopping.is_set():
                    return
                self._polling = True
            try:
                self.channel.send({"op": "poll_start"})
                sensor.poll()
                self.channel.send({"op": "poll_end"})
            finally:
                with self._poll_state:
                    self._polling = False
                    self._poll_state.notify_all()
            self.stopping.wait(_interval(sensor))

    def _control_loop(self) -> None:
        while True:
            message = self._controls.get()
            op = message.get("op")
            # Trigger changes and stop wait for setup and the initial triggers.
            self.started.wait()
            if op == "stop":
                self._stop()
                return
            trigger = message.get("trigger")
            if op in ("add_trigger", "update_trigger", "remove_trigger") and isinstance(
                trigger, dict
            ):
                try:
                    self._apply(op, trigger)
                except Exception:
                    # A trigger the sensor cannot take does not stop the others.
                    self._logger.exception("%s() failed for trigger %s", op, _trigger_key(trigger))
            else:
                self._logger.warning("ignoring an unknown message from the runtime: %r", op)

    def _apply(self, op: str, trigger: dict[str, Any]) -> None:
        key = _trigger_key(trigger)
        if op == "remove_trigger":
            if self._triggers.pop(key, None) is None:
                return  # never added here, so the sensor has nothing to forget
        else:
            self._triggers[key] = trigger
        getattr(self.sensor, op)(trigger=dict(trigger))

    def _stop(self) -> None:
        self.stopping.set()
        with self._poll_state:
            self._poll_state.wait_for(lambda: not self._polling, self.drain_timeout)
        self._finish(0, cleanup=True, drain=True)

    def _orphaned(self) -> None:
        # stdin closed: the parent is gone (or about to kill us); nobody will ack.
        self.stopping.set()
        self._finish(0, cleanup=self.set_up, drain=False)

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, SystemExit):
            self._logger.error("sensor %s exited with %r", self.ref, exc.code)
        else:
            self._logger.error("sensor %s failed", self.ref, exc_info=exc)
        # Not after a failed setup(): cleanup() would mostly trip over what
        # setup() never made, and its traceback would bury the real error.
        self._finish(EXIT_FAILED, cleanup=self.set_up, drain=False)

    def _finish(self, code: int, cleanup: bool, drain: bool) -> None:
        """Exit the process (first caller wins; later callers wait for it)."""
        with self._finish_lock:
            first = not self._finishing
            self._finishing = True
        if not first:
            _park()
        self.stopping.set()
        if cleanup:
            _call_bounded(self.sensor.cleanup, "cleanup()", self.drain_timeout, self._logger)
        if drain and not self.channel.wait_drained(self.drain_timeout):
            self._logger.warning(
                "exiting with %d dispatched events not acknowledged", self.channel.outstanding()
            )
        _exit(code)


def _interval(sensor: Any) -> float:
    getter = getattr(sensor, "get_poll_interval", None)
    value: Any = getter() if callable(getter) else getattr(sensor, "_poll_interval", None)
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 5.0


def _call_bounded(fn: Callable[[], Any], what: str, timeout: float, logger: logging.Logger) -> None:
    def target() -> None:
        try:
            fn()
        except BaseException:
            logger.exception("%s failed", what)

    thread = threading.Thread(target=target, name="squall-sensor-cleanup", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        logger.warning("%s still running after %gs; exiting anyway", what, timeout)


def _park() -> None:
    """Block this thread for good: another one is exiting the process."""
    threading.Event().wait()


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    # os._exit: sensor threads that never end must not keep the process alive.
    os._exit(code)


class _Formatter(logging.Formatter):
    """One record per line as ``LEVEL [ref] logger: message``; indented continuations.

    The parent reads the level from the first word and gives indented lines
    (tracebacks, multi-line messages) the level of the line they continue.
    """

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\n    ")


def _configure_logging(ref: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    safe_ref = ref.replace("%", "%%")
    handler.setFormatter(_Formatter(f"%(levelname)s [{safe_ref}] %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    level = level.upper()
    root.setLevel(getattr(logging, level) if level in _LEVELS else logging.INFO)

    if hasattr(threading, "excepthook"):

        def excepthook(args: Any) -> None:
            name = args.thread.name if args.thread is not None else "?"
            log.error(
                "uncaught exception in thread %s",
                name,
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            )

        threading.excepthook = excepthook


def _setup_sys_path(pack_dir: Any) -> None:
    paths = [SHIM_DIR]
    if isinstance(pack_dir, str) and pack_dir:
        actions_lib = os.path.join(pack_dir, "actions", "lib")
        if os.path.isdir(actions_lib):
            paths.append(actions_lib)
    sys.path[0:0] = [p for p in paths if p not in sys.path]


def _take_std_streams() -> tuple[int, IO[bytes]]:
    """Keep the real stdin/stdout for the protocol; give the sensor stderr and /dev/null."""
    out_fd = os.dup(1)  # dup'ed fds are not inherited by the sensor's children
    in_fd = os.dup(0)
    os.dup2(2, 1)  # also for whatever the sensor's child processes print
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # Without -u, older interpreters block-buffer a piped stderr: keep logs timely.
    reconfigure = getattr(sys.stderr, "reconfigure", None)
    if callable(reconfigure):
        with contextlib.suppress(Exception):
            reconfigure(line_buffering=True)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    return out_fd, os.fdopen(in_fd, "rb")


def main() -> int:
    out_fd, infile = _take_std_streams()
    try:
        spec = json.loads(infile.readline().decode("utf-8"))
        if not isinstance(spec, dict) or not spec.get("class_name"):
            raise ValueError("expected an object with class_name and entry_point_path")
    except ValueError as exc:
        sys.stderr.write(f"sensor wrapper: bad start spec: {exc}\n")
        return EXIT_BAD_SPEC
    ref = str(spec.get("ref") or f"{spec.get('pack')}.{spec['class_name']}")
    _configure_logging(ref, str(spec.get("log_level") or "INFO"))
    _setup_sys_path(spec.get("pack_dir"))
    try:
        window = int(spec.get("window") or DEFAULT_WINDOW)
    except (TypeError, ValueError):
        window = DEFAULT_WINDOW
    runtime = _Runtime(spec, _Channel(out_fd, infile, window))
    return runtime.main()


if __name__ == "__main__":
    sys.exit(main())
