"""Log-record scrubbing: the record factory that ``redact_logs()`` installs.

A record factory sees every record, whichever logger makes it and whichever handler
(added before or after) emits it. The record keeps its shape: ``msg`` stays the template
and ``args`` stay arguments (a dict stays a dict), so error trackers that group by
template still group, and only what would show a value is replaced.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from . import _redact
from ._redact import holds_value, redact

__all__ = ["install"]

_MAX_DEPTH = 8
_install_lock = threading.Lock()
_MARK = "_secretkit_redacting"


def install() -> None:
    """Put the scrubbing factory in front of the current one, unless it is already there."""
    with _install_lock:
        previous = logging.getLogRecordFactory()
        if getattr(previous, _MARK, False):
            return

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if _redact.registered():
                scrub(record)
            return record

        setattr(factory, _MARK, True)
        logging.setLogRecordFactory(factory)


def scrub(record: logging.LogRecord) -> None:
    """Mask every registered value the record would show, keeping its template and shape."""
    msg = record.msg
    if record.args:
        try:
            message: str | None = record.getMessage()
        except Exception:
            message = None  # logging reports a bad format with the arguments: scrub them anyway
        if message is None or holds_value(message):
            _scrub_arguments(record)
    elif isinstance(msg, str):
        if holds_value(msg):
            record.msg = redact(msg)
    else:
        record.msg = clean(msg)
    exc_info = record.exc_info
    if exc_info and exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
        if holds_value(text):
            # Formatters use exc_text when it is set; left unset when clean, so a formatter's
            # own formatException() still runs.
            record.exc_text = redact(text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    # Logger.makeRecord writes `extra={...}` fields into record.__dict__ after the factory
    # returns, so a dict that scrubs on write is the one place that sees them.
    record.__dict__ = _ScrubbingDict(record.__dict__)


def _scrub_arguments(record: logging.LogRecord) -> None:
    args = record.args
    if isinstance(args, Mapping):
        record.args = {key: clean(value) for key, value in args.items()}
    elif args is not None:
        record.args = tuple(clean(value) for value in args)
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)  # unchanged unless the template itself holds a value
    try:
        message = record.getMessage()
    except Exception:
        return
    if holds_value(message):
        # An argument that shows a value in a way cleaning cannot reach (a number
        # formatted with %d, say): give up the template rather than the value.
        record.msg, record.args = redact(message), ()


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


class _ScrubbingDict(dict):  # type: ignore[type-arg]
    __slots__ = ()

    def __setitem__(self, key: str, value: object) -> None:
        if key not in _STANDARD:
            value = clean(value)
        super().__setitem__(key, value)


_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _after_fork_in_child() -> None:
    global _install_lock
    _install_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
