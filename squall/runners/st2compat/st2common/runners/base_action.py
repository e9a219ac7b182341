"""The ``Action`` base class python actions subclass (StackStorm-compatible API).

An action gets ``self.config`` (the pack config), ``self.logger`` (writes to
stderr, which the runner streams) and ``self.action_service`` (datastore
access). Subclasses may define ``__init__(self, config)`` and call
``super().__init__(config)``; the wrapper then sets ``action_service`` after
construction.
"""

from __future__ import annotations

import abc
import logging
import sys
from typing import Any

from ..services.datastore import ActionService

__all__ = ["Action", "ActionService", "PackConfigDict", "get_logger"]

# Set by the python-script wrapper before the action is instantiated.
DEFAULT_LOG_LEVEL = "DEBUG"
DEFAULT_PACK = "unknown"

_LEVELS = {
    "AUDIT": logging.CRITICAL + 10,
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}


def get_logger(name: str, log_level: str = "DEBUG") -> logging.Logger:
    """A logger ``actions.python.<name>`` that writes to stderr at ``log_level``."""
    logger = logging.getLogger(f"actions.python.{name}")
    level = _LEVELS.get(str(log_level).upper(), logging.DEBUG)
    if not getattr(logger, "_squall_configured", False):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
        logger._squall_configured = True  # type: ignore[attr-defined]
    logger.setLevel(level)
    for existing in logger.handlers:
        existing.setLevel(level)
    return logger


class PackConfigDict(dict):  # type: ignore[type-arg]
    """The pack config; reading a missing key says which key and pack (ValueError, as st2)."""

    def __init__(self, pack_name: str, *args: Any) -> None:
        super().__init__(*args)
        self._pack_name = pack_name

    def __getitem__(self, key: Any) -> Any:
        try:
            return super().__getitem__(key)
        except KeyError:
            raise ValueError(
                f'Config for pack "{self._pack_name}" has no item "{key}". '
                "Set it in the pack's config file."
            ) from None


class Action(abc.ABC):
    """Base class of python-script actions: implement ``run(self, **parameters)``."""

    description: str | None = None

    def __init__(
        self, config: dict[str, Any] | None = None, action_service: ActionService | None = None
    ) -> None:
        pack = getattr(action_service, "pack", None) or DEFAULT_PACK
        log_level = getattr(action_service, "log_level", None) or DEFAULT_LOG_LEVEL
        self.config = PackConfigDict(pack, config or {})
        self.action_service = action_service
        self.logger = get_logger(type(self).__name__, log_level)

    @abc.abstractmethod
    def run(self, **kwargs: Any) -> Any:
        """Do the work; return a value, or ``(succeeded: bool, value)``."""
