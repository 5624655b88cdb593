"""Log-record scrubbing, and ``redact_logs()``, which installs it: the top of log redaction.

Below it, one way: exception stand-ins (``_redact_exceptions``), masking inside objects
(``_redact_objects``), the registry of values (``_redact``) and its matcher
(``_redact_engine``); none of them imports this module.

A record factory sees every record, whichever logger makes it and whichever handler
(added before or after) emits it. The record keeps its shape: ``msg`` stays the template
and ``args`` stay arguments (a dict stays a dict), so error trackers that group by
template still group, and only what would show a value is replaced.

What is set on the record after the factory returns (``extra=``, a filter's
``record.user = ...``, a filter that attaches an exception) is scrubbed as it is set, and
``getMessage()``, which every formatter calls, checks the record again, so what a filter
changed in place does not show either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from . import _fork, _redact
from ._redact import holds_value, redact
from ._redact_exceptions import scrub_exc_info
from ._redact_objects import clean

__all__ = ["guard", "install", "redact_logs", "scrub"]

_install_lock = threading.Lock()
_MARK = "_secretkit_redacting"
_MAX_CLASSES = 256
_guarded: dict[type[logging.LogRecord], type | None] = {}


def redact_logs() -> None:
    """Scrub every value revealed through secretkit from every log record.

    Idempotent: a second call does nothing while the factory it installed is the current
    one, and installs it again when something has replaced it.
    """
    install()


def install() -> None:
    """Put the scrubbing factory in front of the current one, unless it is already there."""
    with _install_lock:
        previous = logging.getLogRecordFactory()
        if getattr(previous, _MARK, False):
            return

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if _redact.registered() and not getattr(type(record), _MARK, False):
                guard(record, scrub(record))
            return record

        setattr(factory, _MARK, True)
        logging.setLogRecordFactory(factory)


def scrub(record: logging.LogRecord) -> str | None:
    """Mask every registered value the record would show, keeping its template and shape.

    Returns the message, masked, when it cannot change short of a new ``msg`` or ``args``
    (a str template, arguments that cannot change in place): formatting then reuses it.
    """
    msg = record.msg
    args = record.args
    message: str | None = None
    if args:
        try:
            message = record.getMessage()
        except Exception:
            message = None  # logging reports a bad format with the arguments: scrub them anyway
        if message is None or holds_value(message):
            _scrub_arguments(record)
            message = None
        elif not (isinstance(msg, str) and type(args) is tuple and _IMMUTABLE.issuperset(map(type, args))):
            message = None
    elif isinstance(msg, str):
        if holds_value(msg):
            record.msg = msg = redact(msg)
        message = msg
    else:
        record.msg = clean(msg)
    if record.exc_info:
        record.exc_info = scrub_exc_info(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return message


def guard(record: logging.LogRecord, message: str | None = None) -> None:
    """Scrub whatever is set on ``record`` from now on, and re-check it when it is formatted."""
    # Logger.makeRecord writes `extra={...}` fields into record.__dict__ after the factory
    # returns, so a dict that scrubs on write is the one place that sees them.
    fields = _ScrubbingDict(record.__dict__)
    fields.checked = None if message is None else (record.msg, record.args, _redact.version(), message)
    fields.said = fields.watched = None
    if len(fields) > _PLAIN_FIELDS:
        # Fields a custom factory added before ours ran: watched like later ones.
        for key in fields.keys() - _STANDARD:
            if type(fields[key]) not in _IMMUTABLE:
                fields.watch(key)
    object.__setattr__(record, "__dict__", fields)
    # Attribute assignment writes the instance dict in C, past __setitem__: a subclass
    # with its own __setattr__ sees it.
    cls = _guarded_class(type(record))
    if cls is not None:
        try:
            record.__class__ = cls
        except TypeError:
            pass  # a layout that cannot take the subclass: the dict still scrubs item writes


def _guarded_class(base: type[logging.LogRecord]) -> type | None:
    if base in _guarded:
        return _guarded[base]
    get_message = base.getMessage
    set_attribute = base.__setattr__

    def __setattr__(self: logging.LogRecord, key: str, value: object) -> None:
        if key not in _UNSCRUBBED or key == "exc_info":
            fields = self.__dict__
            if type(fields) is _ScrubbingDict and (key != "message" or value is not fields.said):
                value = fields.scrubbed(key, value)
        set_attribute(self, key, value)

    def getMessage(self: logging.LogRecord) -> str:
        fields = self.__dict__
        if type(fields) is not _ScrubbingDict:
            return get_message(self)
        if fields.watched or fields.get("exc_info"):
            fields.recheck()
        checked = fields.checked
        if (
            checked is not None
            and checked[0] is self.msg
            and checked[1] is self.args
            and checked[2] == _redact.version()
        ):
            message = checked[3]  # made and found clean by the factory, from the same parts
        else:
            message = get_message(self)
            if isinstance(message, str):
                message = redact(message)
        fields.said = message
        return message

    def __reduce_ex__(self: logging.LogRecord, protocol: Any) -> Any:
        # Pickled (a multiprocessing queue, a socket) or copied as the plain record class,
        # so the other side needs nothing of secretkit to load it.
        return (base.__new__, (base,), dict(vars(self)))

    try:
        cls: type | None = type(
            base.__name__,
            (base,),
            {
                "__slots__": (),
                "__module__": base.__module__,
                "__qualname__": base.__qualname__,
                "__setattr__": __setattr__,
                "getMessage": getMessage,
                "__reduce_ex__": __reduce_ex__,
                _MARK: True,  # guarded already: a factory wrapping ours does not guard it again
            },
        )
    except Exception:
        cls = None
    if len(_guarded) >= _MAX_CLASSES:
        _guarded.clear()
    _guarded[base] = cls
    return cls


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


class _ScrubbingDict(dict):  # type: ignore[type-arg]
    """A record's ``__dict__`` that scrubs what is written to it, and remembers what to re-check.

    Its slots are bookkeeping no handler sees: ``vars(record)`` lists only the fields.
    """

    __slots__ = ("checked", "said", "watched")
    # Set by guard(), not an __init__: a Python-level __init__ would cost a tenth of a log line.
    checked: tuple[object, object, int, str] | None  # (msg, args, registry version, message) found clean
    said: object  # the last message getMessage() gave, which formatters write back
    watched: set[str] | None  # fields that may change in place

    def watch(self, key: str) -> None:
        if self.watched is None:
            self.watched = set()
        self.watched.add(key)

    def scrubbed(self, key: str, value: object) -> object:
        """``value``, cleaned as a field named ``key`` of this record must be."""
        if key in _UNSCRUBBED:
            return scrub_exc_info(value) if key == "exc_info" else value
        if key == "message" and value is self.said:
            return value  # getMessage() made it, and masked it
        value = clean(value)
        if type(value) not in _IMMUTABLE and key not in _STANDARD:
            self.watch(key)
        return value

    def recheck(self) -> None:
        """Clean the watched fields again, and an exception attached past every hook."""
        if self.watched:
            for key in self.watched & self.keys():
                value = self[key]
                cleaned = clean(value)
                if cleaned is not value:
                    dict.__setitem__(self, key, cleaned)
        exc_info = self.get("exc_info")
        if exc_info:
            scrubbed = scrub_exc_info(exc_info)
            if scrubbed is not exc_info:
                dict.__setitem__(self, "exc_info", scrubbed)

    def __setitem__(self, key: str, value: object) -> None:
        super().__setitem__(key, self.scrubbed(key, value))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: object = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __ior__(self, other: Any) -> _ScrubbingDict:  # type: ignore[misc]
        self.update(other)
        return self


_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Fields logging itself fills with numbers, names of code and times: never a value.
_UNSCRUBBED = frozenset(
    {
        "__dict__",
        "__class__",
        "asctime",
        "created",
        "exc_info",
        "filename",
        "funcName",
        "levelname",
        "levelno",
        "lineno",
        "module",
        "msecs",
        "pathname",
        "process",
        "processName",
        "relativeCreated",
        "taskName",
        "thread",
        "threadName",
    }
)
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes})
_PLAIN_FIELDS = len(vars(logging.makeLogRecord({})))


@_fork.in_child
def _after_fork_in_child() -> None:
    # A parent thread may have held the lock mid-install: the child gets a free one.
    global _install_lock
    _install_lock = threading.Lock()
