"""Turning a child process's raw output bytes into safe, bounded text.

Three small pieces, composed by :class:`StreamCollector`, one per stream:

* an incremental UTF-8 decoder (``errors="replace"``), so a multibyte
  character split across two reads decodes correctly and invalid bytes never
  raise;
* :class:`SecretMasker`, which replaces every secret value with ``********``
  even when a secret arrives split across chunks (it holds back only the
  shortest tail that could still grow into a secret);
* :class:`CappedText`, which keeps the first ``limit`` bytes of what it is
  given and, once over, remembers how much it dropped so the stored text ends
  with a visible truncation marker.

All of it is pure and synchronous; the runners feed it from their read loops.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
from typing import Any

from squall.core.masking import usable_values

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "MASK",
    "CappedText",
    "SecretMasker",
    "StreamCollector",
    "mask_secrets",
    "maybe_json",
    "strip_trailing_newline",
    "truncation_marker",
]

MASK = "********"
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024


def truncation_marker(omitted_bytes: int) -> str:
    return f"\n[... output truncated: {omitted_bytes} bytes omitted ...]"


def _usable_secrets(secrets: Iterable[Any]) -> list[str]:
    """Distinct secret strings, longest first (so the longest wins); values
    too short to search for without shredding the output are left out."""
    return usable_values(secrets)


def _secret_pattern(secrets: list[str]) -> re.Pattern[str] | None:
    if not secrets:
        return None
    return re.compile("|".join(re.escape(s) for s in secrets))


def mask_secrets(text: str, secrets: Iterable[Any]) -> str:
    """Replace every occurrence of every secret in ``text`` with ``********``."""
    pattern = _secret_pattern(_usable_secrets(secrets))
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


class SecretMasker:
    """Masks secrets in a stream of text chunks.

    ``feed`` returns the text that is safe to release now; it keeps back the
    longest tail of the input that is a proper prefix of some secret, because
    the next chunk might complete it. ``flush`` releases whatever is left.
    """

    def __init__(self, secrets: Iterable[Any]) -> None:
        self._secrets = _usable_secrets(secrets)
        self._pattern = _secret_pattern(self._secrets)
        self._pending = ""

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def _held_tail_length(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of a secret."""
        best = 0
        for secret in self._secrets:
            first = secret[0]
            # Candidate suffix lengths: longest first, shorter than the secret.
            longest = min(len(secret) - 1, len(text))
            if longest <= best:
                continue
            start = len(text) - longest
            pos = text.find(first, start)
            while pos != -1:
                length = len(text) - pos
                if length <= best:
                    break
                if secret.startswith(text[pos:]):
                    best = length
                    break
                pos = text.find(first, pos + 1)
        return best

    def feed(self, chunk: str) -> str:
        if self._pattern is None:
            return chunk
        text = self._pending + chunk
        if not text:
            return ""
        cut = len(text) - self._held_tail_length(text)
        # Never cut through a complete match: keep such a match whole in the
        # pending part so that it is masked as one piece on the next round.
        for match in self._pattern.finditer(text):
            if match.start() < cut < match.end():
                cut = match.start()
                break
            if match.start() >= cut:
                break
        self._pending = text[cut:]
        return self._pattern.sub(MASK, text[:cut])

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)


class CappedText:
    """Accumulates text up to ``limit`` UTF-8 bytes; counts what it drops."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._parts: list[str] = []
        self._size = 0
        self.omitted = 0

    @property
    def truncated(self) -> bool:
        return self.omitted > 0

    def add(self, text: str) -> None:
        if not text:
            return
        if self.omitted:
            self.omitted += len(text.encode("utf-8", "replace"))
            return
        room = self.limit - self._size
        # Fast path: even at 4 bytes per character the text fits.
        if len(text) * 4 <= room:
            self._parts.append(text)
            self._size += len(text.encode("utf-8", "replace"))
            return
        data = text.encode("utf-8", "replace")
        if len(data) <= room:
            self._parts.append(text)
            self._size += len(data)
            return
        kept = data[:room].decode("utf-8", "ignore")  # never split a character
        kept_size = len(kept.encode("utf-8"))
        if kept:
            self._parts.append(kept)
        self._size += kept_size
        self.omitted += len(data) - kept_size

    def value(self) -> str:
        text = "".join(self._parts)
        if self.omitted:
            text += truncation_marker(self.omitted)
        return text


class StreamCollector:
    """Decode, mask and cap one output stream.

    ``feed(raw_bytes)`` and ``finish()`` return the masked text to stream out
    right away (possibly empty); ``value()`` gives the stored, capped text.
    """

    def __init__(self, secrets: Iterable[Any], max_bytes: int) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._masker = SecretMasker(secrets)
        self._store = CappedText(max_bytes)

    def feed(self, data: bytes) -> str:
        text = self._masker.feed(self._decoder.decode(data))
        self._store.add(text)
        return text

    def finish(self) -> str:
        text = self._masker.feed(self._decoder.decode(b"", final=True))
        text += self._masker.flush()
        self._store.add(text)
        return text

    @property
    def truncated(self) -> bool:
        return self._store.truncated

    def value(self) -> str:
        return self._store.value()


def strip_trailing_newline(text: str) -> str:
    """Drop one trailing ``\\n`` and then one trailing ``\\r``, as StackStorm does."""
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def maybe_json(text: str) -> Any:
    """Return ``text`` parsed as JSON when it is valid JSON, else ``text`` itself.

    StackStorm's shell runners do this with ``stdout``/``stderr``, so a script
    printing a JSON document gives workflows a structured value.
    """
    stripped = text.strip()
    if not stripped:
        return text
    try:
        return json.loads(stripped, parse_constant=_reject_constant)
    except ValueError:
        return text
