"""Quoting values inserted into shell commands, by where they land.

A template such as ``echo "{{ msg }}" {{ path }}`` is split into the
author's literal text and the inserted values. The literal text decides the
shell's quoting state at each insertion, and each value is escaped for that
state, so it is always one piece of data and never shell syntax:

* outside quotes, the value is quoted whole (``shlex.quote``);
* inside double quotes, ``\\``, ``"``, ``$`` and backquotes are escaped
  (the author's quotes stay, so ``echo "{{ msg }}"`` keeps working);
* inside single quotes, each ``'`` closes, escapes and reopens the quotes.

A value the author marked raw is literal text: it is inserted as is and
counts as the author's own shell syntax.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Insertion", "join_command"]

_BARE, _SINGLE, _DOUBLE = "bare", "single", "double"
_DOUBLE_SPECIAL = ("\\", '"', "$", "`")


@dataclass(frozen=True)
class Insertion:
    """A value a template inserted, to be escaped for the place it lands."""

    value: str


def _advance(state: str, escaped: bool, text: str) -> tuple[str, bool]:
    """The quoting state after the literal ``text``, and whether its last
    character is a backslash that escapes whatever comes next."""
    for char in text:
        if escaped:
            escaped = False
        elif state == _SINGLE:
            if char == "'":
                state = _BARE
        elif char == "\\":
            escaped = True
        elif state == _DOUBLE:
            if char == '"':
                state = _BARE
        elif char == "'":
            state = _SINGLE
        elif char == '"':
            state = _DOUBLE
    return state, escaped


def _escape(state: str, escaped: bool, value: str) -> str:
    if escaped and value:
        # The author's backslash escapes the first character of the value,
        # which then is literal text; the rest is escaped as usual.
        return value[0] + (_escape(state, False, value[1:]) if value[1:] else "")
    if state == _SINGLE:
        return value.replace("'", "'\\''")
    if state == _DOUBLE:
        for char in _DOUBLE_SPECIAL:
            value = value.replace(char, "\\" + char)
        return value
    return shlex.quote(value)


def join_command(pieces: Iterable[str | Insertion]) -> str:
    """The command made of literal text (``str``) and inserted values."""
    state, escaped = _BARE, False
    out: list[str] = []
    for piece in pieces:
        if isinstance(piece, Insertion):
            out.append(_escape(state, escaped, piece.value))
            escaped = escaped and not piece.value
        else:
            out.append(piece)
            state, escaped = _advance(state, escaped, piece)
    return "".join(out)
