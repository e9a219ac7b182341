"""A session-wide fleet of real OpenSSH servers on loopback (tests/support/fleet.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.fleet import Fleet, sshd_available

FLEET_SIZE = 24
REBOOTABLE = "127.0.1.24"  # has a daemon of its own, so it reboots alone


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    if not sshd_available():
        if os.environ.get("CI"):
            raise RuntimeError("/usr/sbin/sshd is missing: run scripts/test-deps")
        pytest.skip("OpenSSH server not installed (/usr/sbin/sshd; apt-get install openssh-server)")
    with Fleet(FLEET_SIZE, extra_daemon_for=[REBOOTABLE]) as running:
        yield running
