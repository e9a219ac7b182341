"""``Sensor`` and ``PollingSensor``: the classes pack sensors derive from (StackStorm's API).

A sensor is built as ``SensorClass(sensor_service=..., config=...)`` (plus
``poll_interval=...`` for a polling sensor that has one in its metadata).
The runtime then calls ``setup()``, ``add_trigger()`` once per existing
trigger, and ``run()``; ``update_trigger()``/``remove_trigger()`` follow as
triggers change, and ``cleanup()`` when the sensor is stopped.

Standard library only: this runs inside the pack's interpreter.
"""

from __future__ import annotations

import abc
import time
from typing import Any

__all__ = ["BaseSensor", "PollingSensor", "Sensor"]

DEFAULT_POLL_INTERVAL = 5


class BaseSensor(abc.ABC):
    """What every sensor has; subclass ``Sensor`` or ``PollingSensor`` instead."""

    def __init__(self, sensor_service: Any, config: dict[str, Any] | None = None) -> None:
        self.sensor_service = sensor_service
        self.config = config or {}
        # Older pack code reads the underscored names; keep them pointing at the same objects.
        self._sensor_service = self.sensor_service
        self._config = self.config

    @abc.abstractmethod
    def setup(self) -> None:
        """Prepare the sensor (connections, state) before ``run()``."""

    @abc.abstractmethod
    def run(self) -> None:
        """Watch for events and hand them to ``self.sensor_service.dispatch``."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Release what ``setup()`` acquired; called when the sensor is stopped."""

    @abc.abstractmethod
    def add_trigger(self, trigger: dict[str, Any]) -> None:
        """A trigger of one of this sensor's trigger types was created."""

    @abc.abstractmethod
    def update_trigger(self, trigger: dict[str, Any]) -> None:
        """A trigger of one of this sensor's trigger types was changed."""

    @abc.abstractmethod
    def remove_trigger(self, trigger: dict[str, Any]) -> None:
        """A trigger of one of this sensor's trigger types was deleted."""


class Sensor(BaseSensor):
    """A passive sensor: ``run()`` blocks and dispatches as events come in."""

    @abc.abstractmethod
    def run(self) -> None:
        """Block, dispatching triggers, until the sensor is stopped."""


class PollingSensor(BaseSensor):
    """An active sensor: ``poll()`` is called every ``poll_interval`` seconds."""

    def __init__(
        self,
        sensor_service: Any,
        config: dict[str, Any] | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__(sensor_service=sensor_service, config=config)
        self._poll_interval = poll_interval

    @abc.abstractmethod
    def poll(self) -> None:
        """Look for new events once, dispatching what is found."""

    def run(self) -> None:
        # The runtime's loop reports each poll (for hang detection) and stops
        # sleeping as soon as the sensor is asked to stop; the plain loop below
        # is only for services that do not offer one (a pack's own unit tests).
        loop = getattr(self.sensor_service, "_run_poll_loop", None)
        if callable(loop):
            loop(self)
            return
        while True:
            self.poll()
            time.sleep(self.get_poll_interval())

    def get_poll_interval(self) -> float:
        return self._poll_interval

    def set_poll_interval(self, poll_interval: float) -> None:
        self._poll_interval = poll_interval
