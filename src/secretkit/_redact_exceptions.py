"""Stand-ins for exceptions whose text would show a value, for ``record.exc_info``.

Scrubbing ``exc_text`` is not enough: OpenTelemetry's handler, Sentry and any formatter
that calls ``formatException(record.exc_info)`` read the exception itself. So a record
gets, in place of such an exception, a copy whose ``str()``, ``repr()``, ``args``,
notes, causes and contexts are masked. The copy is an instance of a subclass of the
original type with the same name and module, so ``isinstance`` and the printed type
name still hold, and it keeps the original traceback, so the stack still shows.
"""

from __future__ import annotations

import traceback
import weakref
from types import TracebackType
from typing import Any

from . import _redact
from ._redact import holds_value, redact
from ._redact_objects import clean  # the same cleaning as a log record's arguments

__all__ = ["scrub_exc_info"]

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]

_MARK = "_secretkit_scrubbed"
_STR = "_secretkit_str"
_REPR = "_secretkit_repr"
# SyntaxError prints these members, not its str().
_SYNTAX_FIELDS = ("msg", "filename", "text", "print_file_and_line")
_MAX_CLASSES = 512
_classes: dict[type[BaseException], type[BaseException]] = {}
# Exceptions found clean, with the registry version they were checked against: a record
# is checked when it is made and again when it is formatted, and the traceback is
# formatted only once while no value is added in between.
_clean: weakref.WeakKeyDictionary[BaseException, int] = weakref.WeakKeyDictionary()


def scrub_exc_info(exc_info: Any) -> Any:
    """``exc_info``, or one whose exception shows no registered value in any text of it."""
    if not isinstance(exc_info, tuple) or len(exc_info) != 3:
        return exc_info
    kind, exc, tb = exc_info
    if not isinstance(exc, BaseException) or getattr(type(exc), _MARK, False):
        return exc_info
    version = _redact.version()
    try:
        if _clean.get(exc) == version:
            return exc_info
    except TypeError:
        pass  # an exception type that defines __eq__ without __hash__: just check again
    text = _format(exc, tb)
    if not holds_value(text):
        try:
            _clean[exc] = version
        except TypeError:
            pass
        return exc_info
    stand_in = _stand_in(exc, {})
    if holds_value(_format(stand_in, tb)):
        # The value shows where no copy reaches (a source line, a __str__ that ignores its
        # arguments): one flat exception that carries the whole masked text, no frames.
        stand_in = _flat(exc, redact(text))
        return (kind, stand_in, None)
    return (kind, stand_in, tb)


def _format(exc: BaseException, tb: TracebackType | None) -> str:
    try:
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        return f"{_safe(str, exc)}\n{_safe(repr, exc)}"


def _safe(show: Any, value: object) -> str:
    try:
        return str(show(value))
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _stand_in(exc: BaseException, done: dict[int, BaseException]) -> BaseException:
    found = done.get(id(exc))
    if found is not None:
        return found
    cls = _class_for(type(exc))
    copy: BaseException | None = None
    if cls is not None:
        try:
            if isinstance(exc, BaseExceptionGroup):
                nested = [_stand_in(e, done) for e in exc.exceptions]
                copy = cls.__new__(cls, redact(exc.message), nested)
            else:
                copy = cls.__new__(cls, *(clean(arg) for arg in exc.args))
        except Exception:
            copy = None
    if copy is None:
        copy = _fallback(type(exc))
    done[id(exc)] = copy
    try:
        vars(copy).update({key: clean(value) for key, value in vars(exc).items()})
        if isinstance(exc, SyntaxError) and isinstance(copy, SyntaxError):
            for field in _SYNTAX_FIELDS:
                setattr(copy, field, clean(getattr(exc, field)))
            copy.lineno, copy.offset = exc.lineno, exc.offset
            copy.end_lineno, copy.end_offset = exc.end_lineno, exc.end_offset
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, list):
            copy.__notes__ = [redact(_safe(str, note)) for note in notes]
    except Exception:  # noqa: S110 - the masked str() and repr() below are what must hold
        pass
    vars(copy)[_STR] = redact(_safe(str, exc))
    vars(copy)[_REPR] = redact(_safe(repr, exc))
    copy.__traceback__ = exc.__traceback__
    if exc.__cause__ is not None:
        copy.__cause__ = _stand_in(exc.__cause__, done)
    if exc.__context__ is not None:
        copy.__context__ = _stand_in(exc.__context__, done)
    copy.__suppress_context__ = exc.__suppress_context__
    return copy


def _flat(exc: BaseException, text: str) -> BaseException:
    cls = _class_for(type(exc))
    try:
        copy = cls.__new__(cls, text) if cls is not None else _fallback(type(exc))
    except Exception:
        copy = _fallback(type(exc))
    vars(copy)[_STR] = text
    vars(copy)[_REPR] = f"{type(exc).__name__}({text!r})"
    copy.__suppress_context__ = True
    return copy


def _class_for(base: type[BaseException]) -> type[BaseException] | None:
    cls = _classes.get(base)
    if cls is None:
        try:
            cls = type(
                base.__name__,
                (base,),
                {
                    "__module__": base.__module__,
                    "__qualname__": base.__qualname__,
                    "__str__": _masked_str,
                    "__repr__": _masked_repr,
                    _MARK: True,
                },
            )
        except Exception:
            return None  # a final class, or one whose __init_subclass__ refuses
        if len(_classes) >= _MAX_CLASSES:
            _classes.clear()
        _classes[base] = cls
    return cls


def _fallback(base: type[BaseException]) -> BaseException:
    # Only for a class that cannot be subclassed: its text is masked, its type is lost.
    cls = _class_for(Exception)
    assert cls is not None
    return cls()


def _masked_str(self: BaseException) -> str:
    return str(vars(self).get(_STR, ""))


def _masked_repr(self: BaseException) -> str:
    return str(vars(self).get(_REPR, f"{type(self).__name__}()"))
