"""A scaled-out Squall on a throwaway PostgreSQL: one API process, two
workers and one sensors process, each a real ``squall`` process, shared by
the tests of this directory (which leave it as they found it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from squall.config import normalize_database_url
from squall.crypto import KeyRing
from squall.store import migrate
from squall.store.db import Database
from tests.support.postgres import Cluster, free_port
from tests.support.server import API_KEY, PASSWORD, ROOT

METRICS_TOKEN = "metrics-token-0123456789"
ROLLOUT_HOSTS = 12  # node-01 ... node-12 in the deployment's inventory
FINAL = ("succeeded", "failed", "timeout", "canceled", "abandoned")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def make_pack(root: Path, marks: Path, sensor_file: Path) -> Path:
    """The pack ``scale``: actions that record each run of theirs in ``marks``
    (one line per run: the execution's id), a workflow, and a sensor that
    writes the pid of the process running it to ``sensor_file``."""
    pack = root / "scale"
    write(
        pack / "pack.yaml",
        "ref: scale\nname: scale\ndescription: scale-out tests\nversion: 1.0.0\nauthor: tests\n",
    )
    for name, idempotent in (("mark", False), ("mark_idem", True), ("mark_retry", False)):
        write(
            pack / "actions" / f"{name}.yaml",
            f"""
            name: {name}
            runner_type: local-shell-cmd
            idempotent: {str(idempotent).lower()}
            parameters:
              cmd:
                type: string
                immutable: true
                default: 'echo $ST2_ACTION_EXECUTION_ID >> {marks}; sleep 0.5'
            """,
        )
    write(
        pack / "actions" / "mark_host.yaml",
        f"""
        name: mark_host
        runner_type: local-shell-cmd
        idempotent: true
        parameters:
          host: {{type: string, required: true}}
          cmd:
            type: string
            immutable: true
            default: 'echo $ST2_ACTION_EXECUTION_ID >> {marks}; sleep 0.3'
        """,
    )
    write(
        pack / "policies" / "retry.yaml",
        """
        name: retry
        resource_ref: scale.mark_retry
        policy_type: action.retry
        parameters: {retry_on: failure, max_retry_count: 5, delay: 0}
        """,
    )
    write(
        pack / "actions" / "nap.yaml",
        """
        name: nap
        runner_type: local-shell-cmd
        parameters:
          cmd: {type: string, immutable: true, default: 'sleep 1'}
        """,
    )
    write(
        pack / "actions" / "flow.yaml",
        """
        name: flow
        runner_type: orquesta
        entry_point: workflows/flow.yaml
        """,
    )
    write(
        pack / "actions" / "workflows" / "flow.yaml",
        """
        version: 1.0
        tasks:
          first:
            action: scale.mark_idem
            next:
              - when: <% succeeded() %>
                do: second
          second:
            action: scale.mark_idem
        """,
    )
    write(
        pack / "sensors" / "beacon.yaml",
        """
        class_name: Beacon
        entry_point: beacon.py
        trigger_types: []
        """,
    )
    write(
        pack / "sensors" / "beacon.py",
        f"""
        import os
        import time

        from st2reactor.sensor.base import Sensor


        class Beacon(Sensor):
            def setup(self):
                with open({str(sensor_file)!r}, "w") as fh:
                    fh.write(str(os.getppid()))

            def run(self):
                while True:
                    time.sleep(1)

            def cleanup(self):
                pass

            def add_trigger(self, trigger):
                pass

            def update_trigger(self, trigger):
                pass

            def remove_trigger(self, trigger):
                pass
        """,
    )
    return root


class Deployment:
    def __init__(self) -> None:
        self.cluster = Cluster()
        self.url = self.cluster.start()
        self.root = Path(tempfile.mkdtemp(prefix="squall-scale-"))
        self.marks = self.root / "marks.txt"
        self.sensor_file = self.root / "sensor.pid"
        self.packs = make_pack(self.root / "packs", self.marks, self.sensor_file)
        # Hosts for a rollout whose per-host action runs locally (scale.mark_host).
        self.inventory = self.root / "inventory.yaml"
        write(
            self.inventory, f"hosts:\n  node-[01:{ROLLOUT_HOSTS:02d}]:\n    facts: {{role: node}}\n"
        )
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SQUALL_DATABASE_URL": self.url,
            "SQUALL_DATA_DIR": str(self.root / "data"),
            "SQUALL_ADMIN_API_KEY": API_KEY,
            "SQUALL_ADMIN_PASSWORD": PASSWORD,
            "SQUALL_API_URL": self.api_url,
            "SQUALL_API_KEY": API_KEY,
            # A dead worker's claims run out fast; a few slots per worker, so
            # sleep-bound work shows how many workers there are.
            "SQUALL_LEASE_SECONDS": "2",
            "SQUALL_WORKER_CONCURRENCY": "4",
            "SQUALL_LOG_FORMAT": "json",
            "SQUALL_METRICS_TOKEN": METRICS_TOKEN,
            "SQUALL_INVENTORY": str(self.inventory),
        }
        self.env.pop("SQUALL_CONFIG", None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._n = 0

    def squall(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "squall.cli.main", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, role: str, name: str | None = None) -> str:
        """Start a ``squall ROLE`` process; its name in ``procs``."""
        self._n += 1
        name = name or f"{role}{self._n}"
        args = [role, "--packs-dir", str(self.packs)]
        if role == "api":
            args += ["--port", str(self.port)]
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "squall.cli.main", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        log.close()
        return name

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=20)

    def is_up(self, name: str) -> bool:
        """Whether process ``name`` has started its services (it says so)."""
        log = self.root / f"{name}.log"
        return log.exists() and "is running" in log.read_text()

    def names(self, role: str) -> list[str]:
        return [n for n in self.procs if n.startswith(role)]

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.root.glob("*.log"))
        )

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"St2-Api-Key": API_KEY}, timeout=30)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.logs()}")
            try:
                if httpx.get(f"{self.api_url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the API did not become ready:\n{self.logs()}")

    def wait_workers(self, n: int, timeout: float = 30) -> None:
        """Until ``n`` worker processes are alive (they hold their presence lock)."""
        with self.client() as c:
            deadline = time.time() + timeout
            while time.time() < deadline:
                text = c.get("/metrics").text
                if f"squall_workers_live {float(n)}" in text:
                    return
                time.sleep(0.2)
        raise AssertionError(f"not {n} live workers:\n{self.logs()}")

    def ensure_workers(self, n: int) -> None:
        """Start workers until ``n`` run, and wait for them (tests change the count)."""
        while len(self.names("worker")) < n:
            self.start("worker")
        self.wait_workers(n)

    def stop(self) -> None:
        # Everything is thrown away: no need for graceful stops.
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.wait()
        self.cluster.stop()


class StreamReader:
    """The API's event stream (/stream/v1/stream), read in a thread:
    ``events`` holds ``(name, payload)`` as they come."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.events: list[tuple[str, dict]] = []
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        try:
            with (
                self.dep.client() as c,
                c.stream("GET", "/stream/v1/stream", timeout=30) as resp,
            ):
                self._ready.set()
                name = None
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name:
                        self.events.append((name, orjson.loads(line[6:])))
        except httpx.HTTPError:
            return

    def finished(self) -> set[str]:
        """Ids of the executions the stream showed succeeding."""
        return {
            p["id"]
            for n, p in self.events
            if n == "st2.execution__update" and p.get("status") == "succeeded"
        }

    def wait_for(self, ids: list[str], timeout: float = 10) -> None:
        deadline = time.time() + timeout
        while not set(ids) <= self.finished() and time.time() < deadline:
            time.sleep(0.1)

    def outputs(self, ids: list[str], timeout: float = 10) -> set[str]:
        """The executions among ``ids`` whose output chunks came through (an
        output chunk may arrive after the execution's end: waited for)."""
        deadline = time.time() + timeout
        while True:
            chunks = [p for n, p in self.events if n == "st2.execution.output__create"]
            seen = {p["execution_id"] for p in chunks}
            if set(ids) <= seen or time.time() >= deadline:
                return seen
            time.sleep(0.1)

    def __enter__(self) -> StreamReader:
        self._thread.start()
        assert self._ready.wait(10)
        time.sleep(0.2)  # the subscription is made as the response starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # One more event, so the reader sees it should stop and closes the stream.
        with self.dep.client() as c:
            c.post("/api/v1/executions", json={"action": "core.noop"})
        self._thread.join(10)


def wait_final(client: httpx.Client, ids: list[str], timeout: float = 60) -> dict[str, dict]:
    """Every execution of ``ids`` once they all reached a final status."""
    deadline = time.time() + timeout
    done: dict[str, dict] = {}
    while time.time() < deadline:
        page = client.get(
            "/api/v1/executions", params={"limit": 1000, "exclude_attributes": "result"}
        ).json()
        for row in page:
            if row["id"] in ids and row["status"] in FINAL:
                done[row["id"]] = row
        if len(done) == len(set(ids)):
            return done
        time.sleep(0.2)
    missing = {i for i in ids if i not in done}
    raise AssertionError(f"{len(missing)} executions did not finish, e.g. {sorted(missing)[:3]}")


@pytest.fixture(scope="package")
def deployment() -> Iterator[Deployment]:
    try:
        dep = Deployment()
    except (RuntimeError, OSError, KeyError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not available here: {exc}")
    try:
        # The schema and the shared key ring first, in this process, as
        # `squall db upgrade` does (test_schema.py runs that).
        database = Database(normalize_database_url(dep.url), readers=1)
        migrate.upgrade(database.write_engine)
        database.close()
        KeyRing(dep.root / "data" / "keys" / "datastore.json")
        # All at once: the sensors process and the workers find the pack's
        # content once the API has registered it (the next sensors round).
        for role in ("api", "worker", "worker", "sensors"):
            dep.start(role)
        dep.wait_ready()
        dep.wait_workers(2)
        yield dep
    finally:
        dep.stop()
