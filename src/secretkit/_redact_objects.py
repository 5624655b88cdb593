"""Masking values inside Python objects: log arguments, ``extra=`` fields, exception args.

Below both the log-record guard and exception scrubbing, which clean their objects alike:
strings are masked, containers copied with their items cleaned, and any other object whose
text would show a value replaced by a stand-in that prints the masked text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._redact import holds_value, redact

__all__ = ["Scrubbed", "clean"]

_MAX_DEPTH = 8


def clean(value: object, depth: int = 0) -> Any:
    """``value`` if it shows no registered value; otherwise a copy of the same shape that doesn't.

    Strings are masked; dicts, lists, tuples and sets are copied with their items cleaned;
    any other object whose ``str()`` or ``repr()`` shows a value is replaced by a stand-in
    that prints the masked text.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact(value)
    if depth < _MAX_DEPTH:
        rebuild = _CONTAINERS.get(type(value))
        if rebuild is not None:
            return rebuild(value, depth + 1)
    try:
        text, shown = str(value), repr(value)
    except Exception:
        return value
    if holds_value(text) or holds_value(shown):
        return Scrubbed(redact(text), redact(shown))
    return value


def _clean_dict(value: Any, depth: int) -> Any:
    items = [(clean(k, depth), clean(v, depth)) for k, v in value.items()]
    if all(a is k and b is v for (a, b), (k, v) in zip(items, value.items(), strict=True)):
        return value
    return dict(items)


def _clean_sequence(value: Any, depth: int) -> Any:
    items = [clean(item, depth) for item in value]
    if all(a is b for a, b in zip(items, value, strict=True)):
        return value
    return type(value)(items)


_CONTAINERS: dict[type, Callable[[Any, int], Any]] = {
    dict: _clean_dict,
    list: _clean_sequence,
    tuple: _clean_sequence,
    set: _clean_sequence,
    frozenset: _clean_sequence,
}


class Scrubbed:
    """Stands in for an object whose text would show a value: prints its masked text."""

    __slots__ = ("_repr", "_str")

    def __init__(self, text: str, shown: str) -> None:
        self._str = text
        self._repr = shown

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return self._repr

    def __format__(self, spec: str) -> str:
        return format(self._str, spec)
