"""Helpers for the runner integration tests (real processes, no mocks)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

from squall.runners.base import RunContext, Runner, RunResult


@dataclass
class Sink:
    """An OutputSink that records every chunk."""

    chunks: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, stream: str, text: str) -> None:
        self.chunks.append((stream, text))

    def text(self, stream: str) -> str:
        return "".join(t for s, t in self.chunks if s == stream)


def context(
    runner_parameters: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    **kwargs: Any,
) -> RunContext:
    return RunContext(
        execution_id=kwargs.pop("execution_id", "e1"),
        action_ref=kwargs.pop("action_ref", "tests.action"),
        pack=kwargs.pop("pack", "tests"),
        parameters=parameters or {},
        runner_parameters=runner_parameters or {},
        **kwargs,
    )


def run(runner: Runner, ctx: RunContext, sink: Sink | None = None) -> RunResult:
    return asyncio.run(runner.run(ctx, sink if sink is not None else Sink()))


def alive(pid: int) -> bool:
    """True while ``pid`` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return False
    state = stat[stat.rfind(b")") + 2 :].split()[0]
    return state not in (b"Z", b"X")


def wait_gone(pid: int, seconds: float = 3.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


def read_pids(path: str, count: int, seconds: float = 5.0) -> list[int]:
    """Wait until ``path`` holds ``count`` pids (one per line) and return them."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.path.exists(path):
            with open(path) as fh:
                pids = [int(x) for x in fh.read().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    raise AssertionError(f"{path} did not get {count} pids")
