"""Identifiers shaped like StackStorm's (24 hex digits), sortable by creation time."""

from __future__ import annotations

import random
import time

# Ids must be unique, not secret: a generator seeded once from the system's
# entropy saves a system call per id.
_random = random.Random()


def new_id() -> str:
    # 4 bytes of seconds, then 8 random bytes: ids sort by creation second.
    return f"{int(time.time()):08x}{_random.getrandbits(64):016x}"
