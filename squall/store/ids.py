"""Identifiers shaped like StackStorm's (24 hex digits), sortable by creation time."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    # 4 bytes of seconds, then 8 random bytes: ids sort by creation second.
    return f"{int(time.time()):08x}{os.urandom(8).hex()}"
