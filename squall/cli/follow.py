"""Following an execution live: its output as it comes, then its end.

The event stream only carries what is published after one subscribes, so an
execution that starts (and maybe ends) before the CLI subscribes to *its* id
would lose its first output. ``squall run`` therefore subscribes first, to
every execution's output and updates (:meth:`Follower.prepare`), then starts
the execution, then subscribes to that execution alone and closes the first
stream as soon as the second is connected. The two overlap, so nothing is
lost; events that came through both are printed once (they carry the same id
and data). The first stream is open only for that short handover.

``squall execution tail`` joins an execution already under way: it subscribes,
then prints the output stored so far, skipping from the live events what the
stored output already ended with.

Should the stream break off, the follower falls back to polling the API,
printing whatever stored output it has not printed yet. When the execution
is final, the stored output is compared with what was printed and any rest
is printed too, so the output shown is always complete.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, TextIO

from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from squall.cli.client import OUTPUT_EVENT, UPDATE_EVENT, Client, EventStream, SseEvent
from squall.cli.fleet import REMOTE_RUNNERS, host_results, print_host_results, progress_text
from squall.cli.output import (
    FINAL_STATUSES,
    action_ref,
    err_console,
    format_elapsed,
    runner_name,
    status_text,
    to_yaml,
)
from squall.errors import SquallError

# Runners whose result is their output: shown live, not again at the end.
SHELL_RUNNERS = frozenset(
    {
        "local-shell-cmd",
        "local-shell-script",
        "remote-shell-cmd",
        "remote-shell-script",
    }
)
STREAMS = ("stdout", "stderr")
EVENTS = [OUTPUT_EVENT, UPDATE_EVENT]

CONNECT_WAIT_SECONDS = 5.0
POLL_SECONDS = 1.0
# Without any event for this long, ask the API whether the execution ended.
QUIET_CHECK_SECONDS = 10.0
SPINNER_AFTER_SECONDS = 0.5
JOIN_SECONDS = 2.0


class WaitTimeout(Exception):
    """``--timeout-wait`` ran out before the execution ended."""

    def __init__(self, execution: dict[str, Any]) -> None:
        super().__init__(execution.get("status"))
        self.execution = execution


def is_final(execution: dict[str, Any]) -> bool:
    """Whether following can stop: the execution ended, or it is an inquiry
    waiting for a person (as ``st2 run core.ask`` returns at pending)."""
    return execution.get("status") in FINAL_STATUSES or awaits_response(execution)


def awaits_response(execution: dict[str, Any]) -> bool:
    runner = execution.get("runner") or {}
    return execution.get("status") == "pending" and runner.get("name") == "inquirer"


# -- reading a stream on a thread -------------------------------------------------


@dataclass
class _Message:
    source: str  # "early" (every execution) or "main" (this one)
    kind: str  # "connected", "event" or "closed"
    event: SseEvent | None = None
    error: BaseException | None = None
    # Set by a catch-up: the stored output already had this chunk.
    skip: bool = False


class _Reader:
    """One event-stream connection, read on a daemon thread into a queue."""

    def __init__(
        self,
        client: Client,
        sink: queue.Queue[_Message],
        source: str,
        execution_ids: list[str] | None,
    ) -> None:
        self.client, self.sink, self.source = client, sink, source
        self.execution_ids = execution_ids
        self.connected = threading.Event()
        self.done = threading.Event()
        self._stopped = threading.Event()
        self._stream: EventStream | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"squall-stream-{source}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.done.is_set() and time.monotonic() < deadline:
            if self.connected.wait(0.05):
                return True
        return self.connected.is_set()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def stop(self) -> None:
        self._stopped.set()
        stream = self._stream
        if stream is not None:
            stream.interrupt()

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            try:
                stream = self.client.open_stream(execution_ids=self.execution_ids, events=EVENTS)
            except Exception as exc:
                error = exc
                return
            self._stream = stream
            try:
                if self._stopped.is_set():
                    return
                self.connected.set()
                self.sink.put(_Message(self.source, "connected"))
                for event in stream:
                    if self._stopped.is_set():
                        return
                    self.sink.put(_Message(self.source, "event", event))
            except Exception as exc:
                if not self._stopped.is_set():
                    error = exc
            finally:
                stream.close()
        finally:
            self.done.set()
            self.sink.put(_Message(self.source, "closed", error=error))


# -- the spinner --------------------------------------------------------------------


class _Spinner:
    """A one-line spinner on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._live: Live | None = None
        self._spinner = Spinner("dots", style="cyan")

    def show(self, text: Text) -> None:
        if not self.enabled:
            return
        self._spinner.update(text=text)
        if self._live is None:
            self._live = Live(
                self._spinner,
                console=err_console(),
                transient=True,
                refresh_per_second=12.5,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def hide(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


# -- following -------------------------------------------------------------------------


class Follower:
    """Prints one execution's output as it comes and returns it once final."""

    def __init__(self, client: Client, *, show_output: bool = True, spinner: bool = True) -> None:
        self.client = client
        self.show_output = show_output
        self._shown: dict[str, list[str]] = {name: [] for name in STREAMS}
        self._queue: queue.Queue[_Message] = queue.Queue()
        # Messages taken off the queue by a catch-up, to be handled first.
        self._backlog: deque[_Message] = deque()
        self._early: _Reader | None = None
        self._main: _Reader | None = None
        self._spinner = _Spinner(spinner)
        self._line_start = {"stdout": True, "stderr": True}
        self._last_activity = time.monotonic()
        self._progress_at = 0.0
        self._progress: Text | None = None

    # -- public -------------------------------------------------------------------

    @property
    def printed(self) -> dict[str, int]:
        """How many characters of each stream were shown."""
        return {name: sum(map(len, chunks)) for name, chunks in self._shown.items()}

    def prepare(self) -> None:
        """Subscribe to every execution's events before one is started, so that
        none of its output is missed. Best effort: without it, :meth:`follow`
        catches up from the stored output."""
        reader = _Reader(self.client, self._queue, "early", None)
        reader.start()
        if reader.wait_connected(CONNECT_WAIT_SECONDS):
            self._early = reader
        else:
            reader.stop()
            reader.join(JOIN_SECONDS)

    def close(self) -> None:
        """Stop showing the spinner and close the streams (their threads end
        before this returns, or soon after when a connection is slow to let go)."""
        self._spinner.hide()
        readers = [r for r in (self._early, self._main) if r is not None]
        for reader in readers:
            reader.stop()
        for reader in readers:
            reader.join(JOIN_SECONDS)

    def follow(
        self, execution: dict[str, Any], *, timeout_wait: float | None = None
    ) -> dict[str, Any]:
        """Wait for ``execution`` to end, printing its output; the final execution."""
        try:
            final = self._follow(execution, timeout_wait)
        finally:
            self.close()
        self._print_rest(final["id"])
        return final

    def print_stored(self, execution_id: str) -> None:
        """Print the output stored for an execution (tail of a finished one)."""
        self._print_rest(execution_id)

    def end_line(self) -> None:
        """Finish a last line of output left open on a terminal, before more text."""
        for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            if not self._line_start[name] and stream.isatty():
                stream.write("\n")
                stream.flush()
                self._line_start[name] = True

    # -- the loop --------------------------------------------------------------------

    def _follow(self, execution: dict[str, Any], timeout_wait: float | None) -> dict[str, Any]:
        execution_id = str(execution["id"])
        current = execution
        if is_final(current):
            return current
        deadline = time.monotonic() + timeout_wait if timeout_wait is not None else None
        early_alive = self._early is not None
        seen_early: Counter[tuple[Any, ...]] = Counter()
        seen_main: Counter[tuple[Any, ...]] = Counter()
        polling = False
        self._main = _Reader(self.client, self._queue, "main", [execution_id])
        self._main.start()
        self._last_activity = time.monotonic()
        next_check = time.monotonic() + QUIET_CHECK_SECONDS

        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise WaitTimeout(current)
            if polling:
                current = self._poll(execution_id)
                if is_final(current):
                    return current
                self._wait(
                    current,
                    POLL_SECONDS
                    if deadline is None
                    else max(min(POLL_SECONDS, deadline - now), 0.0),
                )
                continue
            if now >= next_check:
                next_check = now + QUIET_CHECK_SECONDS
                current = self.client.get_execution(execution_id)
                if is_final(current):
                    return current
            try:
                message = self._backlog.popleft() if self._backlog else self._queue.get(timeout=0.1)
            except queue.Empty:
                self._tick(current)
                continue
            next_check = time.monotonic() + QUIET_CHECK_SECONDS

            if message.kind == "connected":
                if message.source != "main":
                    continue
                if early_alive and self._early is not None:
                    # Both streams overlap from here: the early one can go.
                    self._early.stop()
                    continue
                # Nobody listened before this stream: catch up from the store.
                self._catch_up(execution_id)
                current = self.client.get_execution(execution_id)
                if is_final(current):
                    return current
                continue
            if message.kind == "closed":
                if message.source == "early":
                    early_alive = False
                elif not is_final(current):
                    # The stream broke off: poll the API from here on.
                    polling = True
                    if self._early is not None:
                        self._early.stop()
                continue

            event = message.event
            assert event is not None
            data = event.data if isinstance(event.data, dict) else {}
            if event.event == OUTPUT_EVENT:
                if data.get("execution_id") != execution_id or message.skip:
                    continue
                key = (data.get("id"), data.get("output_type"), data.get("data"))
                if message.source == "early":
                    if seen_main[key]:
                        seen_main[key] -= 1
                        continue
                    seen_early[key] += 1
                else:
                    if seen_early[key]:
                        seen_early[key] -= 1
                        continue
                    if early_alive:
                        seen_main[key] += 1
                self._write(str(data.get("output_type") or "stdout"), str(data.get("data") or ""))
            elif event.event == UPDATE_EVENT and data.get("id") == execution_id:
                current = data
                if is_final(current):
                    return current

    def _catch_up(self, execution_id: str) -> None:
        """Print the stored output not printed yet, and mark the queued live
        events that the stored output already ended with."""
        stored = {name: self.client.output(execution_id, name) for name in STREAMS}
        pending = list(self._backlog)
        self._backlog.clear()
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for name in STREAMS:
            text = stored[name]
            self._write(name, self._unshown(name, text))
            chunks = [
                m
                for m in pending
                if m.source == "main"
                and m.kind == "event"
                and m.event is not None
                and m.event.event == OUTPUT_EVENT
                and isinstance(m.event.data, dict)
                and m.event.data.get("execution_id") == execution_id
                and (m.event.data.get("output_type") or "stdout") == name
            ]
            joined, overlap = "", 0
            for count, m in enumerate(chunks, 1):
                assert m.event is not None
                joined += str(m.event.data.get("data") or "")
                if len(joined) > len(text):
                    break
                if text.endswith(joined):
                    overlap = count
            for m in chunks[:overlap]:
                m.skip = True
        self._backlog.extend(pending)

    def _poll(self, execution_id: str) -> dict[str, Any]:
        current = self.client.get_execution(execution_id)
        self._print_rest(execution_id)
        return current

    def _print_rest(self, execution_id: str) -> None:
        if not self.show_output:
            return
        for name in STREAMS:
            self._write(name, self._unshown(name, self.client.output(execution_id, name)))

    def _unshown(self, name: str, stored: str) -> str:
        """What of the stored output ``stored`` has not been shown yet.

        Usually the stored output starts with what was shown live. Lines of
        several hosts can be stored in another order than they were
        published; then the stored lines not shown yet (as many of each as
        are missing) are the rest, in their stored order."""
        shown = "".join(self._shown[name])
        if stored.startswith(shown):
            return stored[len(shown) :]
        missing = Counter(stored.splitlines(keepends=True))
        missing.subtract(shown.splitlines(keepends=True))
        rest = []
        for line in stored.splitlines(keepends=True):
            if missing[line] > 0:
                missing[line] -= 1
                rest.append(line)
        return "".join(rest)

    def _wait(self, current: dict[str, Any], seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._tick(current)
            time.sleep(0.1)

    # -- showing --------------------------------------------------------------------------

    def _write(self, output_type: str, data: str) -> None:
        if not data:
            return
        name = "stderr" if output_type == "stderr" else "stdout"
        self._shown[name].append(data)
        self._last_activity = time.monotonic()
        if not self.show_output:
            return
        self._spinner.hide()
        stream: TextIO = sys.stderr if name == "stderr" else sys.stdout
        try:
            stream.write(data)
        except UnicodeEncodeError:
            stream.flush()
            stream.buffer.write(data.encode(stream.encoding or "utf-8", "replace"))
        stream.flush()
        self._line_start[name] = data.endswith("\n")

    def _host_progress(self, current: dict[str, Any]) -> Text | None:
        """For a remote execution, a progress bar of its hosts (polled twice a second)."""
        if runner_name(current) not in REMOTE_RUNNERS or not self._spinner.enabled:
            return None
        now = time.monotonic()
        if now - self._progress_at >= 0.5:
            self._progress_at = now
            try:
                found = self.client.request(
                    "GET", f"/api/v1/executions/{current.get('id')}/hosts", params={"limit": 1}
                )
                self._progress = progress_text(found.get("summary") or {})
            except SquallError:
                pass
        return self._progress

    def _tick(self, current: dict[str, Any]) -> None:
        progress = self._host_progress(current)
        if progress is not None:
            self._spinner.show(Text.assemble((f"{action_ref(current)} ", "bold"), progress))
            return
        quiet = time.monotonic() - self._last_activity >= SPINNER_AFTER_SECONDS
        # Never draw over a line of output still being written on the terminal.
        open_line = any(
            not self._line_start[name] and stream.isatty()
            for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr))
        )
        if not quiet or open_line:
            return
        text = Text.assemble(
            (f"{action_ref(current)} ", "bold"),
            (f"{current.get('id', '')} ", "dim"),
            status_text(current.get("status")),
            f" {format_elapsed(current)}",
        )
        self._spinner.show(text)


# -- the end ------------------------------------------------------------------------------


def summary(execution: dict[str, Any], follower: Follower | None = None) -> None:
    """The execution's id, status and duration on stderr; for runners that
    are not shell commands, their result on stdout."""
    if follower is not None:
        follower.end_line()
    result = execution.get("result")
    runner = runner_name(execution)
    status = str(execution.get("status") or "?")
    line = Text.assemble(
        ("execution ", "dim"),
        str(execution.get("id", "")),
        " ",
        status_text(status),
    )
    took = format_elapsed(execution)
    if took:
        line.append(f" in {took}")
    line.append(f" ({action_ref(execution)})", style="dim")
    if isinstance(result, dict) and runner not in REMOTE_RUNNERS:
        code = result.get("return_code", result.get("exit_code"))
        if status != "succeeded" and code is not None:
            line.append(f", exit code {code}")
    err = err_console()
    if runner in REMOTE_RUNNERS and follower is not None:
        print_host_results(host_results(follower.client, str(execution.get("id"))))
    elif runner not in SHELL_RUNNERS and result not in (None, {}, ""):
        shown = _result_to_show(result, runner, follower)
        if shown not in ({}, None):
            sys.stdout.write(to_yaml(shown))
            sys.stdout.flush()
    err.print(line)
    if isinstance(result, dict) and status != "succeeded":
        streamed_stderr = follower is not None and follower.printed["stderr"] > 0
        if result.get("traceback") and not streamed_stderr:
            err.print(Text(str(result["traceback"]).rstrip(), style="dim"))
        if result.get("error"):
            err.print(Text(str(result["error"]), style="red"))


def _result_to_show(result: Any, runner: str, follower: Follower | None) -> Any:
    if not isinstance(result, dict):
        return result
    if runner == "python-script" and "result" in result:
        # The action's return value; its output was shown live.
        return {"result": result["result"]} if result["result"] is not None else None
    # Output printed live is not repeated, and empty output not shown at all.
    return {
        k: v
        for k, v in result.items()
        if not (
            k in STREAMS
            and isinstance(v, str)
            and (not v or (follower is not None and follower.printed[k]))
        )
    }
