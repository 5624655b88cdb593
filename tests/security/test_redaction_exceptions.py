"""Log redaction against what a handler reads besides the message: the exception object, late fields."""

from __future__ import annotations

import copy
import io
import logging
import pickle
import sys
import traceback
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import secretkit
from secretkit import Secret

VALUE = "exc-secret-9f3a7c21"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    previous = logging.getLogRecordFactory()
    secretkit.redact_logs()
    log = logging.getLogger("exception_probe")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        yield log
    finally:
        for handler in list(log.handlers):
            log.removeHandler(handler)
        for f in list(log.filters):
            log.removeFilter(f)
        logging.setLogRecordFactory(previous)


class Keep(logging.Handler):
    """Keeps the records it is given, as a handler that reads them itself would."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def kept(log: logging.Logger) -> Keep:
    handler = Keep()
    log.addHandler(handler)
    return handler


def failing_login(value: str) -> None:
    try:
        raise KeyError(value)
    except KeyError as inner:
        raise RuntimeError(f"login failed with {value}") from inner


# -- item 10: record.exc_info ------------------------------------------------------------------


def test_format_exception_of_the_records_exc_info_shows_no_value(logger: logging.Logger) -> None:
    """A formatter calling formatException(record.exc_info) itself gets masked text, causes included."""
    held = Secret("PROBE", VALUE)
    handler = kept(logger)
    try:
        failing_login(held.reveal())
    except RuntimeError:
        logger.exception("request failed")
    record = handler.records[0]
    assert record.exc_info is not None
    text = logging.Formatter().formatException(record.exc_info)
    assert VALUE not in text
    assert "RuntimeError: login failed with **********" in text
    assert "KeyError: '**********'" in text
    assert "in failing_login" in text  # the stack still shows
    assert VALUE not in "".join(traceback.format_exception(*record.exc_info))


def test_the_exception_object_a_handler_reads_shows_no_value(logger: logging.Logger) -> None:
    """str(), repr(), args and notes of record.exc_info[1] are masked; its type still matches."""
    held = Secret("PROBE", VALUE)
    handler = kept(logger)
    try:
        error = ValueError(f"bad token {held.reveal()}", held.reveal())
        error.add_note(f"while using {held.reveal()}")
        raise error
    except ValueError:
        logger.error("failed", exc_info=True)
    kind, exc, tb = handler.records[0].exc_info  # type: ignore[misc]
    assert kind is ValueError
    assert isinstance(exc, ValueError)
    assert type(exc).__name__ == "ValueError"
    assert tb is not None
    shown = [str(exc), repr(exc), str(exc.args), str(getattr(exc, "__notes__", ""))]
    assert all(VALUE not in text for text in shown)
    assert str(exc) == "('bad token **********', '**********')"


def test_opentelemetry_logging_handler_exports_no_value(logger: logging.Logger) -> None:
    """OpenTelemetry's LoggingHandler exports exception.message and the stack trace masked."""
    sdk_logs = pytest.importorskip("opentelemetry.sdk._logs")
    export = pytest.importorskip("opentelemetry.sdk._logs.export")
    exporter = export.InMemoryLogRecordExporter()
    provider = sdk_logs.LoggerProvider()
    provider.add_log_record_processor(export.SimpleLogRecordProcessor(exporter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK's handler is deprecated, still used
        handler = sdk_logs.LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    held = Secret("PROBE", VALUE)
    try:
        failing_login(held.reveal())
    except RuntimeError:
        logger.exception("request failed for %s", "alice", extra={"token": held.reveal()})
    provider.force_flush()
    (exported,) = exporter.get_finished_logs()
    attributes = dict(exported.log_record.attributes or {})
    assert attributes["exception.type"] == "RuntimeError"
    assert attributes["exception.message"] == "login failed with **********"
    assert "in failing_login" in str(attributes["exception.stacktrace"])
    assert VALUE not in repr(attributes)
    assert VALUE not in str(exported.log_record.body)
    provider.shutdown()


def test_an_exception_whose_str_ignores_its_arguments_is_masked(logger: logging.Logger) -> None:
    """A custom __str__ that builds its text from attributes is masked all the same."""
    held = Secret("PROBE", VALUE)

    class LoginError(Exception):
        def __init__(self, user: str, password: str) -> None:
            super().__init__(user)
            self.password = password

        def __str__(self) -> str:
            return f"{self.args[0]} with {self.password}"

    handler = kept(logger)
    try:
        raise LoginError("alice", held.reveal())
    except LoginError:
        logger.exception("failed")
    exc = handler.records[0].exc_info[1]  # type: ignore[index]
    assert isinstance(exc, LoginError)
    assert str(exc) == "alice with **********"
    assert exc.password == "**********"
    assert VALUE not in logging.Formatter().formatException(handler.records[0].exc_info)  # type: ignore[arg-type]


def test_a_value_in_the_source_line_of_a_frame_is_masked(logger: logging.Logger) -> None:
    """When the value shows where no copy reaches (a source line), the stack is dropped, not leaked."""
    held = Secret("PROBE", "tok-in-source-3e8d")
    handler = kept(logger)
    try:
        raise RuntimeError("tok-in-source-3e8d"[:3])  # the literal is on this very line
    except RuntimeError:
        logger.exception("failed")
    record = handler.records[0]
    text = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
    assert "tok-in-source-3e8d" not in text
    assert "**********" in text
    assert held.name == "PROBE"


def test_exception_groups_are_masked(logger: logging.Logger) -> None:
    """Each exception of an ExceptionGroup is masked in the formatted group."""
    held = Secret("PROBE", VALUE)
    handler = kept(logger)
    try:
        raise ExceptionGroup("two failures", [ValueError(held.reveal()), OSError(2, f"no {held.reveal()}")])
    except ExceptionGroup:
        logger.exception("failed")
    record = handler.records[0]
    text = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
    assert VALUE not in text
    assert "ValueError: **********" in text
    assert isinstance(record.exc_info[1], ExceptionGroup)  # type: ignore[index]


def test_an_exception_without_a_value_reaches_handlers_untouched(logger: logging.Logger) -> None:
    """A clean exception is the very object raised: nothing is copied for it."""
    Secret("PROBE", VALUE)
    handler = kept(logger)
    raised = RuntimeError("plain failure")
    try:
        raise raised
    except RuntimeError:
        logger.exception("failed")
    assert handler.records[0].exc_info[1] is raised  # type: ignore[index]


# -- item 11: fields set after the record was made ---------------------------------------------


class Enrich(logging.Filter):
    """A filter that adds context to each record, as request-logging middleware does."""

    def __init__(self, **fields: Any) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            setattr(record, key, value)
        return True


def formatted(log: logging.Logger, fmt: str) -> io.StringIO:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(fmt))
    log.addHandler(handler)
    return stream


def test_a_field_a_filter_sets_is_masked(logger: logging.Logger) -> None:
    """A logging.Filter doing record.user = value prints the mask."""
    held = Secret("PROBE", VALUE)
    logger.addFilter(Enrich(user=f"alice:{held.reveal()}", context={"token": held.reveal()}))
    stream = formatted(logger, "%(message)s user=%(user)s context=%(context)s")
    logger.info("login")
    assert VALUE not in stream.getvalue()
    assert "user=alice:**********" in stream.getvalue()


def test_a_handler_filter_that_writes_the_record_dict_is_masked(logger: logging.Logger) -> None:
    """A handler's filter writing record.__dict__ directly (update, item assignment) is masked."""
    held = Secret("PROBE", VALUE)
    stream = formatted(logger, "%(message)s a=%(a)s b=%(b)s")
    handler = logger.handlers[0]

    def add_fields(record: logging.LogRecord) -> bool:
        record.__dict__.update({"a": held.reveal()})
        record.__dict__["b"] = [held.reveal()]
        return True

    handler.addFilter(add_fields)
    logger.info("x")
    assert VALUE not in stream.getvalue()


def test_a_field_changed_in_place_after_it_was_set_is_masked(logger: logging.Logger) -> None:
    """A dict passed in extra= and filled in later by a filter shows the mask when formatted."""
    held = Secret("PROBE", VALUE)
    context: dict[str, str] = {"user": "alice"}

    def fill(record: logging.LogRecord) -> bool:
        record.context["token"] = held.reveal()  # type: ignore[attr-defined]
        return True

    logger.addFilter(fill)
    stream = formatted(logger, "%(message)s %(context)s")
    logger.info("call", extra={"context": context})
    assert VALUE not in stream.getvalue()
    assert "'user': 'alice'" in stream.getvalue()


def test_a_message_or_exception_a_filter_sets_is_masked(logger: logging.Logger) -> None:
    """A filter that rewrites msg or attaches an exception cannot bring a value in."""
    held = Secret("PROBE", VALUE)

    def rewrite(record: logging.LogRecord) -> bool:
        record.msg = f"rewritten {held.reveal()}"
        try:
            raise RuntimeError(held.reveal())
        except RuntimeError:
            record.exc_info = sys.exc_info()
        return True

    logger.addFilter(rewrite)
    handler = kept(logger)
    stream = formatted(logger, "%(message)s")
    logger.info("original")
    assert VALUE not in stream.getvalue()
    assert "rewritten **********" in stream.getvalue()
    assert VALUE not in str(handler.records[0].exc_info[1])  # type: ignore[index]


def test_a_guarded_record_still_pickles_and_copies(logger: logging.Logger) -> None:
    """Records go through a multiprocessing queue or copy.copy as plain LogRecords, masked."""
    held = Secret("PROBE", VALUE)
    handler = kept(logger)
    logger.info("token %s", held.reveal(), extra={"user": held.reveal()})
    record = handler.records[0]
    loaded = pickle.loads(pickle.dumps(record))  # noqa: S301 - our own bytes, just made
    assert type(loaded) is logging.LogRecord
    assert VALUE not in loaded.getMessage()
    assert loaded.user == "**********"
    assert copy.copy(record).getMessage() == "token **********"
