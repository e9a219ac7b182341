from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.api.conftest import write
from tests.support.server import Server

ROOT = Path(__file__).resolve().parents[3]


def make_event_pack(packs: Path) -> Path:
    """Rules on webhooks, timers and action triggers; hygiene; broken rules; a sensor."""
    pack = packs / "epack"
    write(pack / "pack.yaml", "name: epack\nversion: 0.1.0\ndescription: events\nauthor: tests\n")
    write(
        pack / "actions" / "record.yaml",
        """
        name: record
        runner_type: local-shell-cmd
        parameters:
          msg:
            type: string
            required: true
          cmd:
            default: "echo recorded {{ msg }}"
        """,
    )
    write(
        pack / "triggers" / "event.yaml",
        """
        name: event
        description: an event of the test pack
        payload_schema:
          type: object
          properties:
            n: {type: integer}
          required: [n]
        """,
    )
    write(
        pack / "rules" / "on_alert.yaml",
        """
        name: on_alert
        pack: epack
        enabled: true
        trigger:
          type: core.st2.webhook
          parameters: {url: hooks/alert}
        criteria:
          trigger.body.severity: {type: equals, pattern: critical}
          trigger.body.host: {type: startswith, pattern: web}
        action:
          ref: epack.record
          parameters:
            msg: "{{ trigger.body.host }} {{ trigger.headers_lower['x-origin'] | default('-') }}"
        """,
    )
    write(
        pack / "rules" / "storm.yaml",
        """
        name: storm
        pack: epack
        enabled: true
        trigger: {type: core.st2.webhook, parameters: {url: storm}}
        throttle:
          once_within: 1 hour
          group_by: [trigger.body.host]
        action: {ref: core.noop}
        """,
    )
    write(
        pack / "rules" / "batch.yaml",
        """
        name: batch
        pack: epack
        enabled: true
        trigger: {type: core.st2.webhook, parameters: {url: batch}}
        accumulate: {count: 3, within: 1 hour}
        action:
          ref: epack.record
          parameters:
            msg: "{{ events | length }}:{% for e in events %}{{ e.body.n }}{% endfor %}"
        """,
    )
    write(
        pack / "rules" / "signed.yaml",
        """
        name: signed
        pack: epack
        enabled: true
        trigger:
          type: core.st2.webhook
          parameters: {url: github, hmac_secret_key: github_secret}
        action: {ref: epack.record, parameters: {msg: "{{ trigger.body.ref }}"}}
        """,
    )
    write(
        pack / "rules" / "load.yaml",
        """
        name: load
        pack: epack
        enabled: true
        trigger: {type: core.st2.webhook, parameters: {url: load}}
        criteria:
          trigger.body.severity: {type: equals, pattern: critical}
        action: {ref: core.noop}
        """,
    )
    write(
        pack / "rules" / "bad_template.yaml",
        """
        name: bad_template
        pack: epack
        enabled: true
        trigger: {type: core.st2.webhook, parameters: {url: badtpl}}
        action: {ref: epack.record, parameters: {msg: "{{ trigger.body.nothing.here }}"}}
        """,
    )
    write(
        pack / "rules" / "on_record.yaml",
        """
        name: on_record
        pack: epack
        enabled: true
        trigger: {type: core.st2.generic.actiontrigger}
        criteria:
          trigger.action_ref: {type: eq, pattern: epack.record}
        action: {ref: core.noop}
        """,
    )
    write(
        pack / "rules" / "bad_operator.yaml",
        """
        name: bad_operator
        pack: epack
        enabled: true
        trigger: {type: core.st2.webhook, parameters: {url: nowhere}}
        criteria:
          trigger.body.x: {type: equalz, pattern: 1}
        action: {ref: core.noop}
        """,
    )
    write(
        pack / "rules" / "on_event.yaml",
        """
        name: on_event
        pack: epack
        enabled: true
        trigger: {type: epack.event}
        criteria:
          trigger.n: {type: gt, pattern: 10}
        action: {ref: epack.record, parameters: {msg: "event {{ trigger.n }}"}}
        """,
    )
    write(
        pack / "rules" / "ticker.yaml",
        """
        name: ticker
        pack: epack
        enabled: false
        trigger:
          type: core.st2.IntervalTimer
          parameters: {unit: seconds, delta: 1}
        action: {ref: epack.record, parameters: {msg: "tick {{ trigger.executed_at }}"}}
        """,
    )
    write(
        pack / "rules" / "unknown_action.yaml",
        """
        name: unknown_action
        pack: epack
        enabled: true
        trigger: {type: core.st2.webhook, parameters: {url: nowhere}}
        action: {ref: epack.does_not_exist}
        """,
    )
    write(
        pack / "rules" / "bad_regex.yaml",
        """
        name: bad_regex
        pack: epack
        enabled: true
        trigger: {type: core.st2.webhook, parameters: {url: nowhere}}
        criteria:
          trigger.body.x: {type: regex, pattern: "([unclosed"}
        action: {ref: core.noop}
        """,
    )
    write(
        pack / "sensors" / "counter.yaml",
        """
        class_name: Counter
        entry_point: counter.py
        description: dispatches five events and remembers how far it got
        trigger_types: []
        """,
    )
    write(
        pack / "sensors" / "counter.py",
        """
        import time

        from st2reactor.sensor.base import Sensor


        class Counter(Sensor):
            def setup(self):
                self.log = self.sensor_service.get_logger(__name__)

            def run(self):
                start = int(self.sensor_service.get_value("counter.next") or 11)
                for n in range(start, 16):
                    self.sensor_service.dispatch(trigger="epack.event", payload={"n": n})
                    self.sensor_service.set_value("counter.next", str(n + 1))
                # A payload that breaks the trigger type's schema is refused, not stored as valid.
                self.sensor_service.dispatch(trigger="epack.event", payload={"n": "many"})
                self.log.info("counter done")
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
    write(
        pack / "sensors" / "crasher.yaml",
        """
        class_name: Crasher
        entry_point: crasher.py
        """,
    )
    write(
        pack / "sensors" / "crasher.py",
        """
        from st2reactor.sensor.base import Sensor


        class Crasher(Sensor):
            def setup(self):
                raise RuntimeError("cannot reach the monitoring system")

            def run(self):
                pass

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
    return pack


@pytest.fixture(scope="session")
def events_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    packs = tmp_path_factory.mktemp("packs")
    make_event_pack(packs)
    srv = Server(tmp_path_factory.mktemp("data"), packs_dirs=[packs]).start()
    yield srv
    srv.stop()


@pytest.fixture()
def client(events_server: Server) -> Iterator[httpx.Client]:
    with events_server.client() as c:
        yield c
