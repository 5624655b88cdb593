"""Log redaction: every value secretkit has handed out is scrubbed from every log record.

Values are remembered when a Secret is built (on a cache miss, never on the hot read
path). ``redact_logs()`` installs a log-record factory, so the scrub applies to every
logger and every handler, including handlers added later.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import traceback
from collections import OrderedDict
from typing import Any

__all__ = ["MIN_LENGTH", "redact", "redact_logs", "remember"]

#: Shorter values are not scrubbed: masking every "1" or "on" in a log would make it unreadable.
MIN_LENGTH = 4
#: The most values remembered. Dynamic credentials rotate for the life of a process; the
#: oldest (long expired) are forgotten first so the pattern stays small.
MAX_VALUES = 4096
REPLACEMENT = "**********"

_lock = threading.Lock()
# Insertion-ordered, oldest forgotten first; OrderedDict pops its head in O(1), where a
# dict would rescan the deleted slots at its front each time.
_values: OrderedDict[str, None] = OrderedDict()
_pattern: re.Pattern[str] | None = None
_installed = False


def remember(value: object, parsed: object = None) -> None:
    """Note a value so that redaction scrubs it (and the string leaves of a JSON value).

    ``parsed``, when the caller has already parsed ``value`` as JSON, saves parsing it again.
    """
    new: list[str] = []
    if parsed is not None:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and len(value) >= MIN_LENGTH:
            new.append(value)
        _collect(parsed, new, depth=1)
    else:
        _collect(value, new, depth=0)
    if not new:
        return
    global _pattern
    with _lock:
        added = [v for v in new if v not in _values]
        if added:
            _values.update(dict.fromkeys(added))
            while len(_values) > MAX_VALUES:
                _values.popitem(last=False)
            _pattern = None  # rebuilt lazily, off the path that remembered it


def _collect(value: object, out: list[str], depth: int) -> None:
    if depth > 8:
        return
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return
    if isinstance(value, str):
        if len(value) >= MIN_LENGTH:
            out.append(value)
            stripped = value.strip()
            if stripped[:1] in ("{", "[") and depth == 0:
                try:
                    _collect(json.loads(stripped), out, depth + 1)
                except ValueError:
                    pass
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, out, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _collect(item, out, depth + 1)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
        if len(text) >= MIN_LENGTH:
            out.append(text)


def _current_pattern() -> re.Pattern[str] | None:
    global _pattern
    pattern = _pattern
    if pattern is None and _values:
        with _lock:
            # Longest first, so a value that contains another is masked whole.
            ordered = sorted(_values, key=len, reverse=True)
            pattern = _pattern = re.compile("|".join(re.escape(v) for v in ordered))
    return pattern


def redact(text: str) -> str:
    """``text`` with every remembered value replaced by a mask."""
    pattern = _current_pattern()
    if pattern is None or not text:
        return text
    return pattern.sub(REPLACEMENT, text)


def redact_logs() -> None:
    """Scrub every value revealed through secretkit from every log record. Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub(record)
        return record

    factory._secretkit_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _scrub(record: logging.LogRecord) -> None:
    if _current_pattern() is None:
        return
    try:
        message = record.getMessage()
    except Exception:
        message = str(record.msg)
    # Formatting now, once, means handlers see only the scrubbed text.
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    # Logger.makeRecord writes `extra={...}` fields into record.__dict__ after this factory
    # returns, so a dict that scrubs on write is the one place that sees them.
    record.__dict__ = _ScrubbingDict(record.__dict__)


class _ScrubbingDict(dict):  # type: ignore[type-arg]
    __slots__ = ()

    def __setitem__(self, key: str, value: object) -> None:
        if isinstance(value, str) and key not in _STANDARD:
            value = redact(value)
        super().__setitem__(key, value)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
