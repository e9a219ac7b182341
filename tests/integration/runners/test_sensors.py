"""Pack sensors in real subprocesses: the wrapper, the st2reactor shim and SensorProcess."""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from squall.services.sensor_process import SensorProcess
from tests.integration.runners.support import alive

# Generous: a sensor is a fresh Python process, slow to start on a loaded CI machine.
pytestmark = pytest.mark.timeout(45)

HEADER = """
import os
import threading
import time

from st2reactor.sensor.base import PollingSensor, Sensor


class NoTriggers:
    def add_trigger(self, trigger):
        pass

    def update_trigger(self, trigger):
        pass

    def remove_trigger(self, trigger):
        pass
"""

# Fast enough for tests; production defaults are seconds to minutes.
FAST: dict[str, Any] = {
    "backoff_initial": 0.05,
    "backoff_max": 0.4,
    "stop_grace": 3.0,
    "setup_timeout": 5.0,
    "dispatch_retry_initial": 0.01,
}


def write_sensor(
    tmp_path: Path, class_name: str, body: str, poll_interval: float | None = None
) -> dict[str, Any]:
    """A pack ``pk`` with one sensor file; returns the sensor's metadata as the loader gives it."""
    sensors = tmp_path / "pk" / "sensors"
    sensors.mkdir(parents=True, exist_ok=True)
    path = sensors / f"{class_name.lower()}.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return {
        "pack": "pk",
        "ref": f"pk.{class_name}",
        "name": class_name,
        "class_name": class_name,
        "entry_point_path": str(path),
        "poll_interval": poll_interval,
    }


class Harness:
    """Runs a SensorProcess in the background and records what its callbacks see."""

    def __init__(
        self,
        sensor: dict[str, Any],
        dispatch_delay: float = 0.0,
        dispatch_failures: int = 0,
        **kwargs: Any,
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.batches: list[int] = []
        self.calls = 0
        self.states: list[tuple[str, dict[str, Any]]] = []
        self.store: dict[str, Any] = {}
        self.kv_calls: list[tuple[str, dict[str, Any]]] = []
        self.dispatch_delay = dispatch_delay
        self.dispatch_failures = dispatch_failures
        options = {**FAST, **kwargs}
        self.process = SensorProcess(
            sensor,
            on_dispatch=self.on_dispatch,
            on_kv=self.on_kv,
            on_state=self.on_state,
            **options,
        )
        self.task: asyncio.Task[None] | None = None

    async def on_dispatch(self, batch: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.dispatch_delay:
            await asyncio.sleep(self.dispatch_delay)
        if self.dispatch_failures:
            self.dispatch_failures -= 1
            raise ConnectionError("store is down")
        self.batches.append(len(batch))
        self.events.extend(batch)

    async def on_kv(self, method: str, args: dict[str, Any]) -> Any:
        self.kv_calls.append((method, args))
        if args.get("name") == "pk.KvSensor:boom":
            raise RuntimeError("datastore exploded")
        if method == "get_value":
            return self.store.get(args["name"])
        if method == "set_value":
            self.store[args["name"]] = args["value"]
            return True
        if method == "delete_value":
            return self.store.pop(args["name"], None) is not None
        if method == "list_values":
            prefix = args.get("prefix") or ""
            return [{"name": k, "value": v} for k, v in self.store.items() if k.startswith(prefix)]
        raise ValueError(method)

    async def on_state(self, state: str, info: dict[str, Any]) -> None:
        self.states.append((state, info))

    def named(self, trigger: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["trigger"] == trigger]

    def in_state(self, state: str) -> list[dict[str, Any]]:
        return [info for s, info in self.states if s == state]

    async def wait(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f"timed out; states={[s for s, _ in self.states]}")
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> Harness:
        self.task = asyncio.get_running_loop().create_task(self.process.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.process.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


COUNTER = """
class Counter(NoTriggers, PollingSensor):
    def setup(self):
        self.done = False

    def poll(self):
        if self.done:
            return
        self.done = True
        start = time.monotonic()
        for i in range(self.config["count"]):
            self.sensor_service.dispatch("pk.tick", {"i": i})
        self.sensor_service.dispatch("pk.done", {"elapsed": time.monotonic() - start})

    def cleanup(self):
        pass
"""


def test_polling_sensor_events_arrive_all_in_order_in_batches(tmp_path: Path) -> None:
    sensor = write_sensor(tmp_path, "Counter", COUNTER, poll_interval=0.05)

    async def main() -> None:
        async with Harness(sensor, config={"count": 3000}) as h:
            await h.wait(lambda: bool(h.named("pk.done")))
            ticks = h.named("pk.tick")
            assert [e["payload"]["i"] for e in ticks] == list(range(3000))
            assert all(e["trace_tag"] is None for e in ticks)
            # Acks flow per batch, not per event.
            assert len(h.batches) < 3000
            assert max(h.batches) <= 64  # never more than the window in flight
            assert h.in_state("running")
            assert not h.in_state("crashed")

    run(main)


def test_slow_consumer_blocks_the_sensor_instead_of_losing_events(tmp_path: Path) -> None:
    sensor = write_sensor(tmp_path, "Counter", COUNTER, poll_interval=0.05)

    async def main() -> None:
        async with Harness(sensor, dispatch_delay=0.05, window=4, config={"count": 20}) as h:
            await h.wait(lambda: bool(h.named("pk.done")))
            assert [e["payload"]["i"] for e in h.named("pk.tick")] == list(range(20))
            assert max(h.batches) <= 4
            # 21 dispatches through a window of 4 need >= 5 acked batches of 50 ms each.
            assert h.named("pk.done")[0]["payload"]["elapsed"] >= 0.2
            assert not h.in_state("crashed")

    run(main)


def test_failing_on_dispatch_is_retried_with_the_acks_held(tmp_path: Path) -> None:
    sensor = write_sensor(tmp_path, "Counter", COUNTER, poll_interval=0.05)

    async def main() -> None:
        async with Harness(sensor, dispatch_failures=3, config={"count": 5}) as h:
            await h.wait(lambda: bool(h.named("pk.done")))
            assert [e["payload"]["i"] for e in h.named("pk.tick")] == list(range(5))
            assert h.calls >= 4
            assert not h.in_state("crashed")

    run(main)


def test_blocking_on_the_parent_does_not_count_as_a_hung_poll(tmp_path: Path) -> None:
    sensor = write_sensor(tmp_path, "Counter", COUNTER, poll_interval=0.05)

    async def main() -> None:
        async with Harness(
            sensor, dispatch_delay=0.1, window=2, poll_timeout=0.3, config={"count": 10}
        ) as h:
            # The poll takes ~0.5 s, nearly all of it waiting for acks.
            await h.wait(lambda: bool(h.named("pk.done")))
            assert len(h.named("pk.tick")) == 10
            assert not h.in_state("crashed")

    run(main)


KV = """
class KvSensor(NoTriggers, Sensor):
    def setup(self):
        self.stopped = threading.Event()
        self.log = self.sensor_service.get_logger("kv")

    def run(self):
        svc = self.sensor_service
        before = svc.get_value("counter")
        svc.set_value("counter", int(before or 0) + 1, ttl=30)
        svc.set_value("shared", "g", local=False)
        after = svc.get_value("counter")
        failed_read = svc.get_value("boom")
        try:
            svc.set_value("boom", 1)
            set_error = None
        except Exception as exc:
            set_error = type(exc).__name__
        try:
            svc.get_value("x", scope="user")
            scope_error = None
        except ValueError as exc:
            scope_error = str(exc)
        names = sorted(kv.name for kv in svc.list_values())
        deleted = svc.delete_value("counter")
        print("printed by the sensor")
        self.log.warning("logged by the sensor")
        svc.dispatch(
            "pk.kv",
            {
                "before": before,
                "after": after,
                "failed_read": failed_read,
                "set_error": set_error,
                "scope_error": scope_error,
                "names": names,
                "deleted": deleted,
                "same_service": self._sensor_service is svc and self._config is self.config,
            },
            trace_tag="tag-1",
        )
        self.stopped.wait()

    def cleanup(self):
        self.stopped.set()
"""


def test_passive_sensor_uses_the_datastore_through_on_kv(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sensor = write_sensor(tmp_path, "KvSensor", KV)
    caplog.set_level(logging.INFO, logger="squall.sensors.pk.KvSensor")

    async def main() -> None:
        async with Harness(sensor) as h:
            h.store["pk.KvSensor:counter"] = "41"
            await h.wait(lambda: bool(h.named("pk.kv")))
            event = h.named("pk.kv")[0]
            assert event["trace_tag"] == "tag-1"
            assert event["payload"] == {
                "before": "41",
                "after": "42",
                "failed_read": None,
                "set_error": "DatastoreError",
                "scope_error": "Scope user is unsupported.",
                "names": ["pk.KvSensor:counter"],
                "deleted": True,
                "same_service": True,
            }
            assert h.store == {"shared": "g"}
            assert (
                "set_value",
                {
                    "name": "pk.KvSensor:counter",
                    "value": "42",
                    "ttl": 30,
                    "scope": "st2kv.system",
                    "encrypt": False,
                },
            ) in h.kv_calls
            await h.wait(lambda: "logged by the sensor" in caplog.text)

    run(main)
    records = [r for r in caplog.records if r.name == "squall.sensors.pk.KvSensor"]
    assert any("printed by the sensor" in r.getMessage() for r in records)
    warning = next(r for r in records if "logged by the sensor" in r.getMessage())
    assert warning.levelno == logging.WARNING
    assert "[pk.KvSensor]" in warning.getMessage()


TRIGGERS = """
class TrigSensor(Sensor):
    def setup(self):
        self.stopped = threading.Event()

    def run(self):
        self.stopped.wait()

    def cleanup(self):
        self.stopped.set()

    def _tell(self, op, trigger):
        self.sensor_service.dispatch(
            "pk.change", {"op": op, "ref": trigger["ref"], "parameters": trigger.get("parameters")}
        )

    def add_trigger(self, trigger):
        self._tell("add", trigger)

    def update_trigger(self, trigger):
        self._tell("update", trigger)

    def remove_trigger(self, trigger):
        self._tell("remove", trigger)
"""


def test_trigger_changes_reach_the_sensor(tmp_path: Path) -> None:
    sensor = write_sensor(tmp_path, "TrigSensor", TRIGGERS)
    t1 = {"ref": "pk.t1", "type": "pk.thing", "parameters": {"n": 1}}
    t2 = {"ref": "pk.t2", "type": "pk.thing", "parameters": {}}

    async def main() -> None:
        async with Harness(sensor, triggers=[t1]) as h:
            await h.wait(lambda: len(h.events) == 1)
            await h.process.add_trigger(t2)
            await h.process.update_trigger({**t1, "parameters": {"n": 2}})
            await h.process.remove_trigger(t2)
            await h.process.remove_trigger({"ref": "pk.never-added", "type": "pk.thing"})
            await h.process.add_trigger({"ref": "pk.t4", "type": "pk.thing"})
            await h.wait(lambda: len(h.events) == 5)
            changes = [(e["payload"]["op"], e["payload"]["ref"]) for e in h.events]
            assert changes == [
                ("add", "pk.t1"),
                ("add", "pk.t2"),
                ("update", "pk.t1"),
                ("remove", "pk.t2"),
                ("add", "pk.t4"),
            ]
            assert h.events[2]["payload"]["parameters"] == {"n": 2}
            assert [t["ref"] for t in h.process.triggers] == ["pk.t1", "pk.t4"]

    run(main)


BROKEN = """
class Broken(NoTriggers, Sensor):
    def setup(self):
        raise RuntimeError("bad setup")

    def run(self):
        pass

    def cleanup(self):
        pass
"""


def test_sensor_failing_in_setup_is_restarted_with_backoff(tmp_path: Path) -> None:
    sensor = write_sensor(tmp_path, "Broken", BROKEN)

    async def main() -> None:
        async with Harness(sensor, backoff_initial=0.05, backoff_max=0.15) as h:
            await h.wait(lambda: len(h.in_state("backoff")) >= 4)
            backoffs = h.in_state("backoff")
            assert [b["delay"] for b in backoffs[:4]] == pytest.approx([0.05, 0.1, 0.15, 0.15])
            first = backoffs[0]
            assert first["exit_code"] == 1
            assert first["reason"] == "exited with code 1"
            assert "RuntimeError: bad setup" in first["last_error"]
            assert "[pk.Broken]" in first["last_error"]
            assert first["next_start_at"] == pytest.approx(time.time(), abs=5)
            crashed = h.in_state("crashed")
            assert crashed and crashed[0]["pid"] == h.in_state("starting")[0]["pid"]
            assert [i["restarts"] for i in h.in_state("starting")[:3]] == [0, 1, 2]
            assert not h.in_state("running")
        assert h.states[-1][0] == "stopped"

    run(main)


FLAKY = """
class Flaky(NoTriggers, Sensor):
    def setup(self):
        pass

    def run(self):
        self.sensor_service.dispatch("pk.up", {"pid": os.getpid()})
        time.sleep(self.config["uptime"])
        raise RuntimeError("flaky")

    def cleanup(self):
        pass
"""


def test_backoff_resets_after_the_sensor_stayed_up(tmp_path: Path) -> None:
    sensor = write_sensor(tmp_path, "Flaky", FLAKY)

    async def main() -> None:
        async with Harness(
            sensor, backoff_initial=0.05, stable_after=0.2, config={"uptime": 0.3}
        ) as h:
            await h.wait(lambda: len(h.in_state("backoff")) >= 2)
            assert [b["delay"] for b in h.in_state("backoff")[:2]] == [0.05, 0.05]
            # What a crashed process dispatched was delivered before its restart.
            pids = [e["payload"]["pid"] for e in h.named("pk.up")]
            assert len(pids) >= 2 and len(set(pids)) == len(pids)

    run(main)


HANG = """
class Hang(NoTriggers, PollingSensor):
    def setup(self):
        if self.config.get("hang_in") == "setup":
            self._hang_once()

    def _hang_once(self):
        marker = self.config["marker"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            time.sleep(30)

    def poll(self):
        if self.config.get("hang_in") == "poll":
            self._hang_once()
        self.sensor_service.dispatch("pk.alive", {"pid": os.getpid()})

    def cleanup(self):
        pass
"""


@pytest.mark.parametrize(
    ("where", "setup_timeout", "poll_timeout", "reason"),
    [
        ("poll", 5.0, 0.5, "poll() ran longer than 0.5s"),
        # Interpreter start and imports count towards setup: leave room for a busy machine.
        ("setup", 1.0, 60.0, "setup() did not finish within 1s"),
    ],
)
def test_hung_sensor_is_killed_and_restarted(
    tmp_path: Path, where: str, setup_timeout: float, poll_timeout: float, reason: str
) -> None:
    sensor = write_sensor(tmp_path, "Hang", HANG, poll_interval=0.05)
    config = {"hang_in": where, "marker": str(tmp_path / "hung-once")}

    async def main() -> None:
        async with Harness(
            sensor,
            config=config,
            setup_timeout=setup_timeout,
            poll_timeout=poll_timeout,
            backoff_initial=0.05,
        ) as h:
            await h.wait(lambda: bool(h.named("pk.alive")))
            crashed = h.in_state("crashed")
            assert crashed[0]["reason"] == reason
            assert crashed[0]["exit_code"] == -9
            assert not alive(crashed[0]["pid"])
            assert h.named("pk.alive")[0]["payload"]["pid"] != crashed[0]["pid"]
            assert h.in_state("running")

    run(main)


CLEANUP = """
class Tidy(NoTriggers, PollingSensor):
    def setup(self):
        pass

    def poll(self):
        self.sensor_service.dispatch("pk.polled", {})

    def cleanup(self):
        with open(self.config["marker"], "w") as fh:
            fh.write("cleaned")
        self.sensor_service.dispatch("pk.bye", {})
"""


def test_stop_calls_cleanup_and_ends_the_process(tmp_path: Path) -> None:
    # A poll interval of 30 s: stopping must not wait for the sleep to end.
    sensor = write_sensor(tmp_path, "Tidy", CLEANUP, poll_interval=30)
    marker = tmp_path / "cleaned"

    async def main() -> None:
        h = Harness(sensor, config={"marker": str(marker)})
        async with h:
            await h.wait(lambda: bool(h.named("pk.polled")))
            pid = h.process.pid
            assert pid is not None
            started = time.monotonic()
        assert time.monotonic() - started < 2
        assert marker.read_text() == "cleaned"
        assert h.named("pk.bye")  # dispatched from cleanup(), still delivered
        state, info = h.states[-1]
        assert state == "stopped"
        assert info["exit_code"] == 0
        assert not alive(pid)
        assert h.process.state == "stopped"

    run(main)


STUCK = """
class Stuck(NoTriggers, Sensor):
    def setup(self):
        time.sleep(30)

    def run(self):
        pass

    def cleanup(self):
        pass
"""


def test_sensor_that_does_not_stop_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    sensor = write_sensor(tmp_path, "Stuck", STUCK)

    async def main() -> None:
        h = Harness(sensor, stop_grace=0.5)
        async with h:
            await h.wait(lambda: bool(h.in_state("starting")))
            pid = h.process.pid
            assert pid is not None
            started = time.monotonic()
        assert time.monotonic() - started < 2
        state, info = h.states[-1]
        assert state == "stopped"
        assert info["reason"] == "did not stop within 0.5s"
        assert info["exit_code"] == -9
        assert not alive(pid)
        assert not h.in_state("crashed")

    run(main)


ONESHOT = """
class OneShot(NoTriggers, Sensor):
    def setup(self):
        pass

    def run(self):
        self.sensor_service.dispatch("pk.once", {})

    def cleanup(self):
        with open(self.config["marker"], "w") as fh:
            fh.write("cleaned")
"""


def test_sensor_whose_run_returns_is_not_restarted(tmp_path: Path) -> None:
    sensor = write_sensor(tmp_path, "OneShot", ONESHOT)
    marker = tmp_path / "cleaned"

    async def main() -> None:
        h = Harness(sensor, config={"marker": str(marker)})
        await asyncio.wait_for(h.process.run(), 4)
        assert len(h.named("pk.once")) == 1
        assert [s for s, _ in h.states] == ["starting", "running", "stopped"]
        assert h.states[-1][1]["reason"] == "the sensor's run() returned"
        assert marker.read_text() == "cleaned"

    run(main)


ENV = """
class EnvSensor(NoTriggers, Sensor):
    def setup(self):
        self.stopped = threading.Event()

    def run(self):
        names = ("SQUALL_TEST_SECRET", "ST2_API_URL", "PATH")
        self.sensor_service.dispatch("pk.env", {k: os.environ.get(k) for k in names})
        self.stopped.wait()

    def cleanup(self):
        self.stopped.set()
"""


def test_sensor_environment_is_an_allow_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQUALL_TEST_SECRET", "s3cret")
    sensor = write_sensor(tmp_path, "EnvSensor", ENV)

    async def main() -> None:
        async with Harness(sensor, env={"ST2_API_URL": "http://api.invalid/api/v1"}) as h:
            await h.wait(lambda: bool(h.named("pk.env")))
            payload = h.named("pk.env")[0]["payload"]
            assert payload["SQUALL_TEST_SECRET"] is None
            assert payload["ST2_API_URL"] == "http://api.invalid/api/v1"
            assert payload["PATH"] == os.environ["PATH"]

    run(main)
