"""What this process masks everywhere: configured patterns and the values of
the datastore's secrets.

Every surface that shows or keeps text (API responses, the event stream,
execution output and results, audit records, log lines) goes through
:func:`masker`, adding the values it knows for the thing shown (an
execution's secret parameters). The datastore's secret values are read at
start-up and again whenever they change (:func:`watch`), and a value a
template decrypts is known at once (:func:`remember`), so a decrypted secret
is masked wherever it travels, in whichever process shows it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from squall.core.masking import Masker, compile_patterns, usable_values

__all__ = ["LogFilter", "configure", "masker", "remember", "set_secret_values", "watch"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_patterns: tuple[re.Pattern[str], ...] = ()
_values: frozenset[str] = frozenset()
_remembered: frozenset[str] = frozenset()  # decrypted here, maybe not stored yet
_shared = Masker()


def _rebuild() -> None:
    global _shared
    _shared = Masker(_values | _remembered, _patterns)


def configure(patterns: Iterable[str]) -> None:
    """Set the configured patterns; install the log filter on the root handlers."""
    global _patterns
    with _lock:
        _patterns = compile_patterns(patterns)
        _rebuild()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, LogFilter) for f in handler.filters):
            handler.addFilter(LogFilter())


def set_secret_values(values: Iterable[str]) -> None:
    """The plain values of every secret in the datastore."""
    global _values, _remembered
    usable = frozenset(usable_values(values))
    with _lock:
        if usable == _values and not _remembered:
            return
        _values, _remembered = usable, frozenset()
        _rebuild()


def remember(value: str) -> None:
    """A secret a template just decrypted: masked from now on."""
    global _remembered
    if value in _values or value in _remembered or not usable_values([value]):
        return
    with _lock:
        _remembered = _remembered | {value}
        _rebuild()


def masker(values: Iterable[Any] = ()) -> Masker:
    """The patterns and datastore secrets, plus ``values`` (e.g. an
    execution's secret parameters)."""
    extra = usable_values(values)
    if not extra:
        return _shared
    with _lock:
        return Masker([*_values, *_remembered, *extra], _patterns)


class LogFilter(logging.Filter):
    """Masks the message of every log record a handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _shared
        if current:
            message = record.getMessage()
            masked = current.text(message)
            if masked != message:
                record.msg, record.args = masked, None
            if record.exc_info and not record.exc_text:
                formatter = logging.Formatter()
                record.exc_text = current.text(formatter.formatException(record.exc_info))
        return True


async def watch(db: Any, keyring: Any, interval: float = 0.5) -> None:
    """Keep the datastore's secret values current (cheap check, then reload)."""
    from squall.store import kv

    seen: object = None
    while True:
        version = await db.read(kv.secrets_version)
        if version != seen:
            ciphertexts = await db.read(kv.secret_ciphertexts)
            plain = []
            for text in ciphertexts:
                try:
                    plain.append(keyring.decrypt(text))
                except Exception:  # a value under a key this process lacks
                    log.warning("a datastore secret could not be decrypted for masking")
            set_secret_values(plain)
            seen = version
        await asyncio.sleep(interval)
