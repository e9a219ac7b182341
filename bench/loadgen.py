"""Open-loop webhook load generator: POSTs JSON events at a fixed rate.

Every request has a scheduled send time (start + seq / rate), fixed before the
run; latency is measured from that scheduled time to the end of the response,
so a server that stalls is charged for the requests that queued up behind the
stall (no coordinated omission). Requests go over several HTTP/1.1 keep-alive
connections, one request in flight on each; when all of them are busy the
next request leaves late, and its lateness is part of its latency.

Standard library only (uvloop is used if importable), so it runs from any
virtual environment, and lean: on this 2-core machine the generator shares
the CPU with the server it measures.

Library:

    result = await run_load("http://127.0.0.1:9101/api/v1/webhooks/alert",
                            rate=1000, duration=60, headers={"St2-Api-Key": key})
    print(result.to_dict())

CLI:

    python bench/loadgen.py URL --rate 1000 --duration 60 --header St2-Api-Key:KEY
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

CHECKS = ("disk", "cpu", "memory", "http", "ntp")


def event_body(seq: int) -> dict[str, Any]:
    """A small alert as a monitoring system would send it; every one is
    critical so that each event should start exactly one action."""
    return {
        "seq": seq,
        "host": f"web-{seq % 64:03d}",
        "severity": "critical",
        "check": CHECKS[seq % len(CHECKS)],
        "message": "threshold exceeded",
    }


@dataclass
class LoadResult:
    url: str
    target_rate: float
    duration_s: float
    connections: int
    scheduled: int = 0
    # Requests that went out; fewer than scheduled only if the server was
    # still holding every connection when drain_timeout ran out.
    sent: int = 0
    completed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    elapsed_s: float = 0.0
    achieved_rate: float = 0.0
    # The largest lateness of a send against its schedule: how far the
    # generator (or the connection pool) fell behind, not the server.
    max_send_lag_ms: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    started_at: float = 0.0  # time.perf_counter() of seq 0's scheduled send
    finished_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": round(ordered[-1], 2),
    }


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Reads one response; returns (status, keep_alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1])
    length = 0
    chunked = False
    keep_alive = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection":
            keep_alive = value.strip().lower() != b"close"
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, keep_alive


async def run_load(
    url: str,
    rate: float,
    duration: float,
    headers: Mapping[str, str] | None = None,
    make_body: Callable[[int], Any] = event_body,
    *,
    connections: int = 32,
    first_seq: int = 0,
    drain_timeout: float = 30.0,
) -> LoadResult:
    """Sends round(rate * duration) POSTs with bodies make_body(seq) (a dict,
    serialised as JSON, or bytes sent as they are) and waits for every answer,
    at most drain_timeout seconds after the last scheduled send."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError("only http:// URLs are supported")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head_prefix = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\n{extra}Content-Length: "
    ).encode()

    total = round(rate * duration)
    result = LoadResult(
        url=url, target_rate=rate, duration_s=duration, connections=connections, scheduled=total
    )
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    next_index = 0
    max_lag = 0.0
    # perf_counter rather than loop.time(): uvloop's clock ticks in whole
    # milliseconds, too coarse for latencies of a millisecond or two.
    clock = time.perf_counter
    # A short head start lets every connection open before seq 0 is due.
    start = clock() + 0.2

    def body_bytes(seq: int) -> bytes:
        body = make_body(seq)
        return body if isinstance(body, bytes) else json.dumps(body).encode()

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, port)

    async def worker() -> None:
        nonlocal next_index, max_lag
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            conn = await connect()
        except OSError:
            conn = None
        try:
            while next_index < total:
                index = next_index
                next_index += 1
                due = start + index / rate
                delay = due - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    max_lag = max(max_lag, -delay)
                data = body_bytes(first_seq + index)
                request = head_prefix + str(len(data)).encode() + b"\r\n\r\n" + data
                result.sent += 1
                try:
                    if conn is None:
                        conn = await connect()
                    reader, writer = conn
                    writer.write(request)
                    status, keep_alive = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    statuses["error"] += 1
                    if conn is not None:
                        conn[1].close()
                    conn = None
                    continue
                latencies.append((clock() - due) * 1000)
                statuses[str(status)] += 1
                if not keep_alive:
                    conn[1].close()
                    conn = None
        finally:
            if conn is not None:
                conn[1].close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    last_due = start + max(total - 1, 0) / rate
    done, pending = await asyncio.wait(
        workers, timeout=max(0.0, last_due - clock()) + drain_timeout
    )
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for task in done:
        task.result()  # a bug in the worker should not pass as a slow server
    end = clock()
    if pending:
        statuses["timeout"] += result.sent - sum(statuses.values())

    result.completed = len(latencies)
    result.statuses = dict(sorted(statuses.items()))
    result.errors = sum(v for k, v in statuses.items() if not k.isdigit())
    result.elapsed_s = round(end - start, 3)
    result.achieved_rate = round(result.completed / (end - start), 1) if end > start else 0.0
    result.max_send_lag_ms = round(max_lag * 1000, 2)
    result.latency_ms = percentiles(latencies)
    result.started_at = start
    result.finished_at = end
    return result


def run(coro: Any) -> Any:
    """asyncio.run with uvloop when it is installed: it halves the
    generator's CPU per request, which matters when it shares two cores."""
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=1000, help="requests per second")
    parser.add_argument("--duration", type=float, default=60, help="seconds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--header", action="append", default=[], metavar="K:V", help="extra header, repeatable"
    )
    parser.add_argument("--first-seq", type=int, default=0, help="sequence number of event 0")
    args = parser.parse_args()
    headers = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            parser.error(f"--header {item!r}: expected K:V")
        headers[name.strip()] = value.strip()
    result = run(
        run_load(
            args.url,
            args.rate,
            args.duration,
            headers,
            connections=args.connections,
            first_seq=args.first_seq,
        )
    )
    out = result.to_dict()
    del out["started_at"], out["finished_at"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
