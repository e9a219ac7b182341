"""Stopping the processes a dead worker left behind, and only those."""

from __future__ import annotations

import os
import subprocess
import time

from squall.runners.process import kill_leftover, process_identity


def _spawn() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "30"], start_new_session=True)


def test_a_recorded_group_is_killed() -> None:
    proc = _spawn()
    identity = process_identity(proc.pid)
    assert kill_leftover(identity) is True
    assert proc.wait(timeout=5) == -9


def test_a_reused_or_foreign_pid_is_left_alone() -> None:
    proc = _spawn()
    try:
        identity = process_identity(proc.pid)
        # same pid, but another process (different start time): not ours
        assert kill_leftover({**identity, "start": "1"}) is False
        # recorded before a reboot, or on another machine: not ours either
        assert kill_leftover({**identity, "boot": "another-boot"}) is False
        assert kill_leftover({**identity, "host": "elsewhere"}) is False
        assert kill_leftover({"pgid": "nonsense"}) is False
        time.sleep(0.1)
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    # once it is gone, its identity matches nothing
    assert kill_leftover(identity) is False
