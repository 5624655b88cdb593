"""Log redaction: values revealed through secretkit never reach a log handler."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

import secretkit
from secretkit import SecretStore, _redact
from secretkit.backends import EnvBackend, MemoryBackend


@pytest.fixture
def handler_output() -> Iterator[io.StringIO]:
    """A handler on a fresh logger, added after redact_logs() was called."""
    secretkit.redact_logs()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(extra_field)s"))
    logger = logging.getLogger("test_redact_app")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield stream
    logger.removeHandler(handler)


def log() -> logging.Logger:
    return logging.getLogger("test_redact_app")


def test_revealed_values_are_scrubbed_from_messages_and_arguments(handler_output: io.StringIO) -> None:
    """A value in the message, in %-arguments or in extra fields is masked."""
    value = SecretStore([MemoryBackend({"K": "tok_live_abcdef"})]).get("K").reveal()
    log().info(f"inline {value}", extra={"extra_field": f"x{value}x"})
    log().warning("args %s and %r", value, {"token": value}, extra={"extra_field": "-"})
    text = handler_output.getvalue()
    assert "tok_live_abcdef" not in text
    assert text.count("**********") == 4


def test_exception_text_is_scrubbed(handler_output: io.StringIO) -> None:
    """A traceback whose message holds a value is masked."""
    value = SecretStore([MemoryBackend({"K": "pw-in-exception-123"})]).get("K").reveal()
    try:
        raise RuntimeError(f"login failed with {value}")
    except RuntimeError:
        log().exception("request failed", extra={"extra_field": "-"})
    text = handler_output.getvalue()
    assert "pw-in-exception-123" not in text
    assert "RuntimeError: login failed with **********" in text


def test_getenv_results_and_json_leaves_are_scrubbed(
    handler_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values read through getenv, and the string leaves of JSON secrets, are masked."""
    previous = secretkit._api._swap(SecretStore([EnvBackend({"SK_REDACT_ENV": "env-secret-456"})]))
    try:
        secretkit.getenv("SK_REDACT_ENV")
    finally:
        secretkit._api._swap(previous)
    SecretStore([MemoryBackend({"J": '{"user": "nested-user-789"}'})]).get("J")
    log().info("env=%s user=%s", "env-secret-456", "nested-user-789", extra={"extra_field": "-"})
    text = handler_output.getvalue()
    assert "env-secret-456" not in text and "nested-user-789" not in text


def test_handlers_on_other_loggers_are_covered(
    handler_output: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """Redaction works whichever logger emits (here: the root, captured by pytest)."""
    value = SecretStore([MemoryBackend({"K": "root-logged-secret"})]).get("K").reveal()
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("token=%s", value)
    assert "root-logged-secret" not in caplog.text
    assert "token=**********" in caplog.text


def test_redact_logs_is_idempotent() -> None:
    """Calling redact_logs() twice installs one factory."""
    secretkit.redact_logs()
    factory = logging.getLogRecordFactory()
    secretkit.redact_logs()
    assert logging.getLogRecordFactory() is factory


def test_short_values_are_not_masked() -> None:
    """Values shorter than MIN_LENGTH are left alone, so logs stay readable."""
    _redact.remember("on")
    assert _redact.redact("mode on") == "mode on"


def test_the_longest_value_wins() -> None:
    """A value that contains another is masked whole."""
    _redact.remember("abcd-1234")
    _redact.remember("abcd-1234-efgh-5678")
    assert _redact.redact("x abcd-1234-efgh-5678 y") == "x ********** y"
