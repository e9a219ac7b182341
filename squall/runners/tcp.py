"""The ``tcp`` runner: can a TCP connection be opened to ``host:port``?

It connects with asyncio, closes the connection at once and sends nothing:
a probe of a listening port, as a rollout's ``tcp`` check or a workflow's
wait-for-port step. Runner parameters: ``host`` (an address or a name DNS
resolves; an IPv6 address may be written in brackets), ``port`` and
``timeout`` (seconds to wait for the connection, default 10; the
execution's timeout, when shorter, wins).

Result::

    {"host": str, "port": int, "connected": true, "seconds": float}
    {"host": str, "port": int, "connected": false, "seconds": float, "error": str}

The execution succeeds when the connection was made and fails otherwise,
with ``error`` saying why: ``connection refused``, ``timed out after 10 s``,
``cannot resolve HOST: ...``, or the system's message (``no route to
host``...). ``seconds`` is how long connecting took, or was tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from typing import Any

from squall.errors import RunnerError
from squall.runners.base import OutputSink, RunContext, RunnerType, RunResult

__all__ = ["DEFAULT_TIMEOUT", "TCP_META", "TcpRunner"]

DEFAULT_TIMEOUT = 10.0

TCP_META = RunnerType(
    name="tcp",
    description="Opens a TCP connection to host:port and closes it: is the port open?",
    runner_module="tcp_runner",
    output_key="connected",
    output_schema={
        "type": "object",
        "properties": {
            "host": {"type": "string"},
            "port": {"type": "integer"},
            "connected": {"type": "boolean"},
            "seconds": {"type": "number"},
            "error": {"type": "string"},
        },
        "additionalProperties": False,
    },
    runner_parameters={
        "host": {
            "description": "Address (or DNS name) to connect to.",
            "type": "string",
            "required": True,
        },
        "port": {
            "description": "TCP port to connect to.",
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "required": True,
        },
        "timeout": {
            "description": "Seconds to wait for the connection before giving up.",
            "type": "number",
            "default": DEFAULT_TIMEOUT,
        },
    },
)


def _reason(exc: OSError, host: str) -> str:
    """A short, lower-case reason for a failed connection."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host}: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


async def _connect(host: str, port: int) -> asyncio.StreamWriter:
    """A connection to the first of ``host``'s addresses that accepts one.
    When none does, the error of the first address that did not refuse
    (refusals say least), else the refusal."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    errors: list[OSError] = []
    for family, _, _, _, address in infos:
        try:
            _, writer = await asyncio.open_connection(str(address[0]), port, family=family)
        except OSError as exc:
            errors.append(exc)
        else:
            return writer
    if not errors:
        raise OSError(f"{host} has no address")
    raise next((e for e in errors if not isinstance(e, ConnectionRefusedError)), errors[0])


class TcpRunner:
    """``tcp``."""

    meta = TCP_META

    async def run(self, ctx: RunContext, output: OutputSink) -> RunResult:
        params: dict[str, Any] = {**ctx.parameters, **ctx.runner_parameters}
        host = params.get("host")
        if not isinstance(host, str) or not host.strip():
            raise RunnerError("tcp needs a 'host' parameter")
        host = host.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        port = params.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise RunnerError(f"tcp needs a 'port' from 1 to 65535, not {port!r}")
        raw = params.get("timeout")
        try:
            timeout = DEFAULT_TIMEOUT if raw is None else float(raw)
        except (TypeError, ValueError):
            raise RunnerError(f"timeout must be a number of seconds, got {raw!r}") from None
        if timeout <= 0:
            timeout = DEFAULT_TIMEOUT
        if ctx.timeout is not None and ctx.timeout > 0:
            timeout = min(timeout, float(ctx.timeout))

        result: dict[str, Any] = {"host": host, "port": port}
        started = time.monotonic()
        try:
            writer = await asyncio.wait_for(_connect(host, port), timeout)
        except TimeoutError:
            error = f"timed out after {timeout:g} s"
        except OSError as exc:
            error = _reason(exc, host)
        else:
            result["connected"] = True
            result["seconds"] = round(time.monotonic() - started, 6)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return RunResult(status="succeeded", result=result)
        result["connected"] = False
        result["seconds"] = round(time.monotonic() - started, 6)
        result["error"] = error
        return RunResult(status="failed", result=result)
