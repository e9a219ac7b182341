"""Base classes pack sensors subclass: ``Sensor`` (passive) and ``PollingSensor`` (active)."""
