"""A real Prometheus on loopback scraping an exporter the test controls.

:class:`Exporter` serves ``/metrics`` in Prometheus's text format from a
thread of the test process; ``exporter.set("http_errors_ratio", 0.2)`` (with
optional labels) changes what the next scrape sees, ``exporter.remove`` and
``exporter.clear`` take series away (Prometheus then marks them stale).

:class:`Prometheus` runs the Debian ``prometheus`` binary (``apt-get install
prometheus``; ``scripts/test-deps`` installs it) on a free loopback port,
with its storage in a temporary directory and a 1 s scrape and evaluation
interval, scraping the exporter as job ``squall-test``. :meth:`Prometheus.start`
returns once Prometheus is ready and has scraped the exporter once.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support.postgres import free_port

__all__ = ["JOB", "Exporter", "Prometheus", "prometheus_binary", "running_prometheus"]

JOB = "squall-test"
_LabelKey = tuple[tuple[str, str], ...]


def prometheus_binary() -> str | None:
    """The ``prometheus`` server binary, or None when it is not installed."""
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None
    )


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exporter:
    """Gauges served at ``http://127.0.0.1:PORT/metrics``."""

    def __init__(self) -> None:
        self._values: dict[str, dict[_LabelKey, float]] = {}
        self._lock = threading.Lock()
        self._scraped = threading.Condition(self._lock)
        self.scrapes = 0  # /metrics requests received
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                with exporter._scraped:
                    # Counted as it starts: see wait_scrapes.
                    exporter.scrapes += 1
                    exporter._scraped.notify_all()
                    body = exporter._render().encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the scrape target."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def set(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Set the gauge ``name{labels}`` (``NaN`` and infinities too)."""
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            self._values.setdefault(name, {})[key] = float(value)

    def remove(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Take one series (or, without labels, every series of ``name``) away."""
        with self._lock:
            if labels is None:
                self._values.pop(name, None)
            else:
                self._values.get(name, {}).pop(tuple(sorted(labels.items())), None)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def render(self) -> str:
        """The text format of every gauge, as a scrape gets it."""
        with self._lock:
            return self._render()

    def _render(self) -> str:
        """``render`` with the lock already held."""
        lines: list[str] = []
        for name in sorted(self._values):
            lines.append(f"# TYPE {name} gauge")
            for key, value in sorted(self._values[name].items()):
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
                series = f"{name}{{{labels}}}" if labels else name
                lines.append(f"{series} {_number(value)}")
        return "\n".join(lines) + "\n"

    def wait_scrapes(self, count: int = 2, timeout: float = 15.0) -> None:
        """Wait until ``count`` more scrapes have started. A scrape reads the
        values as it starts, and Prometheus stores a scrape's samples before
        it starts the next one: once two more scrapes have started, the
        first of them has read the values set before this call and has been
        stored, so queries see them."""
        with self._scraped:
            before = self.scrapes
            if not self._scraped.wait_for(lambda: self.scrapes >= before + count, timeout):
                raise TimeoutError(
                    f"the exporter was scraped {self.scrapes - before} times in {timeout:g} s, "
                    f"not {count}"
                )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Prometheus:
    """A throwaway Prometheus server; ``url`` is its base URL
    (``http://127.0.0.1:PORT``; the query API is ``url + "/api/v1/query"``)."""

    def __init__(self, exporter: Exporter, binary: str | None = None) -> None:
        found = binary or prometheus_binary()
        if found is None:
            raise RuntimeError("the prometheus binary was not found (apt-get install prometheus)")
        self.binary = found
        self.exporter = exporter
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = Path(tempfile.mkdtemp(prefix="squall-prometheus-"))
        self.log = self.root / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(base_url=self.url, timeout=5.0)

    def _config(self) -> str:
        return (
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            "    static_configs:\n"
            f"      - targets: ['{self.exporter.address}']\n"
        )

    def start(self, timeout: float = 30.0) -> None:
        config = self.root / "prometheus.yml"
        config.write_text(self._config())
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait(self._ready, timeout, "ready (/-/ready)")
            self._wait(self._scraped_once, timeout, f"scraping {self.exporter.address}")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        return self._client.get("/-/ready").status_code == 200

    def _scraped_once(self) -> bool:
        return self.query(f'up{{job="{JOB}"}}') == [1.0]

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self._process.returncode} before it was {what}: "
                    f"{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if check():
                    return
            if time.monotonic() > end:
                raise RuntimeError(f"prometheus was not {what} in {timeout:g} s: {self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def api(self, expr: str) -> dict[str, Any]:
        """The JSON answer of ``GET /api/v1/query?query=expr``, whatever its status."""
        answer: dict[str, Any] = self._client.get("/api/v1/query", params={"query": expr}).json()
        return answer

    def query(self, expr: str) -> list[float] | float | str:
        """An instant query's value: a list of floats for a vector (one per
        series), a float for a scalar, text for a string."""
        answer = self.api(expr)
        if answer.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {answer}")
        data = answer["data"]
        if data["resultType"] == "vector":
            return [float(series["value"][1]) for series in data["result"]]
        if data["resultType"] == "scalar":
            return float(data["result"][1])
        return str(data["result"][1])

    def wait_for(
        self, expr: str, check: Callable[[Any], bool], timeout: float = 15.0
    ) -> list[float] | float | str:
        """Query ``expr`` until ``check(value)`` holds; its value then."""
        end = time.monotonic() + timeout
        while True:
            value = self.query(expr)
            if check(value):
                return value
            if time.monotonic() > end:
                raise TimeoutError(f"{expr!r} is still {value!r} after {timeout:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        self._client.close()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_prometheus() -> Iterator[Prometheus]:
    """An exporter and a Prometheus scraping it, both stopped on exit."""
    exporter = Exporter()
    try:
        server = Prometheus(exporter)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        exporter.close()
