"""Logging set-up: plain lines for people, or one JSON object per line for a
log pipeline (``--log-format json`` / ``SQUALL_LOG_FORMAT=json``).

A JSON line carries the execution a message is about: the worker sets
:data:`execution_id` for the task that runs an execution, and any message
logged from that task (a runner's, the worker's) carries it, without every
call site passing it along.
"""

from __future__ import annotations

import contextvars
import logging
import socket
import sys
import time

import orjson

from squall.errors import ConfigError

FORMATS = ("text", "json")

execution_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "squall_execution_id", default=None
)


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process
        self.host = socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.process,
            "host": self.host,
            "pid": record.process,
        }
        eid = getattr(record, "execution_id", None) or execution_id.get()
        if eid:
            entry["execution_id"] = eid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"the log format must be text or json, not {fmt!r}")
    return fmt


def handler(fmt: str, process: str) -> logging.Handler:
    out = logging.StreamHandler(sys.stderr)
    if check_format(fmt) == "json":
        out.setFormatter(JsonFormatter(process))
    else:
        out.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        )
    return out
