"""Masking secrets in anything shown or stored: text and JSON-like data.

A :class:`Masker` replaces, with ``********``:

* known secret values (an execution's secret parameters, the datastore
  secrets its templates decrypted), wherever they occur inside a string;
* matches of configured regular expressions (``mask_patterns``), such as
  ``AKIA[0-9A-Z]{16}`` for cloud keys.

Values shorter than :data:`MIN_SECRET_LENGTH` characters are not searched
for: masking every ``a`` or ``42`` would shred the output while protecting
nothing (such a value is guessed faster than read). Where they are a
parameter of their own, secret parameters are still masked whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from squall.errors import ConfigError

__all__ = ["MASK", "MIN_SECRET_LENGTH", "Masker", "compile_patterns", "usable_values"]

MASK = "********"
MIN_SECRET_LENGTH = 4


def compile_patterns(texts: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    """The configured patterns, compiled; a :class:`ConfigError` names a bad one."""
    out = []
    for text in texts:
        try:
            regex = re.compile(text)
        except re.error as exc:
            raise ConfigError(
                f"mask pattern {text!r} is not a valid regular expression: {exc}"
            ) from None
        if regex.fullmatch(""):
            raise ConfigError(f"mask pattern {text!r} matches empty text; it would mask everything")
        out.append(regex)
    return tuple(out)


def usable_values(values: Iterable[Any]) -> list[str]:
    """Distinct secret strings long enough to search for, longest first."""
    found: set[str] = set()
    for value in values:
        if value is None or isinstance(value, bool):
            continue
        text = value if isinstance(value, str) else str(value)
        if len(text) >= MIN_SECRET_LENGTH:
            found.add(text)
    return sorted(found, key=lambda s: (-len(s), s))


class Masker:
    """Masks ``values`` and ``patterns`` in text and in data at any depth."""

    __slots__ = ("_regexes",)

    def __init__(
        self, values: Iterable[Any] = (), patterns: Iterable[re.Pattern[str]] = ()
    ) -> None:
        usable = usable_values(values)
        self._regexes = [re.compile("|".join(re.escape(v) for v in usable))] if usable else []
        self._regexes += list(patterns)

    def __bool__(self) -> bool:
        return bool(self._regexes)

    def text(self, text: str) -> str:
        for regex in self._regexes:
            text = regex.sub(MASK, text)
        return text

    def data(self, value: Any) -> Any:
        """A copy of ``value`` with every string in it (keys too) masked."""
        if not self._regexes:
            return value
        return self._data(value)

    def _data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self._data(k): self._data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._data(v) for v in value]
        return value
