"""Log redaction probed as an attacker would: every field of a record, every escaped form."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from forking import fork_while_held
from log_capture import redacted_logger

import secretkit
from secretkit import Secret, _redact_logs


class Capture(logging.Handler):
    """Keeps each record, and its text as a plain StreamHandler would write it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.stream = io.StringIO()
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.stream.write(self.format(record) + "\n")

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    with redacted_logger("attacker_probe", handler, logging.DEBUG):
        yield handler


def log() -> logging.Logger:
    return logging.getLogger("attacker_probe")


def secret(value: Any) -> Secret[Any]:
    return Secret("PROBE", value)


# -- item 3: extra= of any type ---------------------------------------------------------------


def test_extra_dicts_lists_tuples_and_objects_are_scrubbed(capture: Capture) -> None:
    """A value nested in extra= dicts, lists, tuples, sets or an object's str() is masked."""
    held = secret("tok-extra-9f3a7c21")
    value = held.reveal()

    class Context:
        def __str__(self) -> str:
            return f"Context(token={value})"

        __repr__ = __str__

    extra = {
        "ctx": {"token": value, "nested": [{"deep": (value,)}]},
        "items": [value, "ok"],
        "pair": ("user", value),
        "tags": {value},
        "obj": Context(),
    }
    log().warning("login", extra=extra)
    record = capture.records[-1]
    for key in extra:
        shown = repr(record.__dict__[key]) + str(record.__dict__[key])
        assert value not in shown, key
    assert isinstance(record.__dict__["ctx"], dict)  # a dict stays a dict for structured handlers
    assert record.__dict__["ctx"]["nested"][0]["deep"] == ("**********",)
    assert json.dumps(record.__dict__["ctx"]) == (
        '{"token": "**********", "nested": [{"deep": ["**********"]}]}'
    )
    assert "**********" in str(record.__dict__["obj"])


def test_extra_without_a_value_is_passed_as_it_was(capture: Capture) -> None:
    """extra= objects that show no value reach handlers unchanged (the same object)."""
    held = secret("tok-unrelated-55aa11")
    payload = {"user": "alice", "n": [1, 2, 3]}
    log().info("ok", extra={"payload": payload})
    assert capture.records[-1].__dict__["payload"] is payload
    assert held.reveal() not in capture.text


# -- item 4: escaped forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "back\\slash-secret-1",
        "quote'and\"double-2",
        "new\nline-secret-3",
        "tab\tsecret-value-4",
        "ctrl\x01\x1fsecret-5",
        "ünïcödé-sécret-6",
    ],
    ids=["backslash", "quotes", "newline", "tab", "control", "non-ascii"],
)
def test_repr_and_json_forms_of_a_value_are_masked(capture: Capture, value: str) -> None:
    """%r of a container, json.dumps (ASCII or not) and a JSON document in a repr() are masked."""
    held = secret(value)
    document = json.dumps({"pw": value})
    log().warning("cfg=%r", {"pw": held.reveal()})
    log().warning("body=%s", document)
    log().warning("body=%s", json.dumps({"pw": value}, ensure_ascii=False))
    log().warning("wrapped=%r", {"doc": document})
    log().warning("raw=%s", value)
    text = capture.text
    escaped = (repr(value)[1:-1], json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1])
    for form in (value, *escaped):
        assert form not in text
    assert text.count("**********") == 5


def test_a_non_utf8_bytes_secret_is_masked_in_its_printed_forms(capture: Capture) -> None:
    """A binary secret is masked as %r/str() of the bytes shows it and as Latin-1 text."""
    value = b"\xff\xfe\x00binary-key-\x9c\x01"
    held = secret(value)
    log().warning("key=%r", held.reveal())
    log().warning("key=%s", value)
    log().warning("key=%s", value.decode("latin-1"))
    assert repr(value)[2:-1] not in capture.text
    assert value.decode("latin-1") not in capture.text
    assert capture.text.count("**********") == 3


def test_a_utf8_bytes_secret_is_masked_as_text_and_as_bytes(capture: Capture) -> None:
    """A bytes secret that is UTF-8 text is masked decoded and in its b'...' form."""
    value = "bytes-sécret-77".encode()
    held = secret(value)
    log().warning("a=%s b=%r", held.reveal().decode(), value)
    assert "bytes-sécret-77" not in capture.text and repr(value)[2:-1] not in capture.text


# -- item 6: redact_logs() cannot silently stay off --------------------------------------------


def test_redact_logs_reinstalls_after_the_factory_was_replaced(capture: Capture) -> None:
    """redact_logs() after someone reset the factory scrubs again; a second call adds nothing."""
    held = secret("tok-reinstalled-31c7")
    logging.setLogRecordFactory(logging.LogRecord)
    secretkit.redact_logs()
    installed = logging.getLogRecordFactory()
    assert installed is not logging.LogRecord
    secretkit.redact_logs()
    assert logging.getLogRecordFactory() is installed
    log().warning("token=%s", held.reveal())
    assert "tok-reinstalled-31c7" not in capture.text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_redact_logs_was_installing_can_install_it() -> None:
    """Forking while another thread installs log redaction leaves the child able to install it and mask."""

    def in_child() -> bool:
        held = secret("tok-forked-child-4a9e")
        logging.setLogRecordFactory(logging.LogRecord)  # as a library in the child might
        secretkit.redact_logs()
        record = log().makeRecord("attacker_probe", logging.WARNING, "f", 1, "t=%s", (held.reveal(),), None)
        return "tok-forked-child-4a9e" not in record.getMessage()

    fork_while_held(
        _redact_logs._install_lock, in_child, "the child hung on redact_logs()'s install lock after fork"
    )


def test_redact_logs_wraps_a_replacement_factory(capture: Capture) -> None:
    """A factory installed after redact_logs() is wrapped by the next call, and still runs."""
    held = secret("tok-wrapped-factory-8e")
    base = logging.getLogRecordFactory()

    def tagging(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        record.tagged = True
        return record

    logging.setLogRecordFactory(tagging)
    secretkit.redact_logs()
    log().warning("token=%s", held.reveal())
    assert capture.records[-1].tagged is True
    assert "tok-wrapped-factory-8e" not in capture.text


# -- item 7: the template and argument shapes survive -----------------------------------------


def test_the_template_and_arguments_keep_their_shape(capture: Capture) -> None:
    """Only the arguments are scrubbed: msg stays the template, args stay a tuple of the same length."""
    held = secret("tok-template-4b2d")
    log().warning("user %s used token %s (%d tries)", "alice", held.reveal(), 3)
    record = capture.records[-1]
    assert record.msg == "user %s used token %s (%d tries)"
    assert record.args == ("alice", "**********", 3)
    assert record.getMessage() == "user alice used token ********** (3 tries)"


def test_a_dict_argument_stays_a_dict(capture: Capture) -> None:
    """Mapping-style arguments stay a dict, with the value masked."""
    held = secret("tok-mapping-6a9e")
    log().warning("%(user)s: %(token)s", {"user": "alice", "token": held.reveal()})
    record = capture.records[-1]
    assert record.msg == "%(user)s: %(token)s"
    assert record.args == {"user": "alice", "token": "**********"}
    assert "tok-mapping-6a9e" not in capture.text


def test_a_template_holding_the_value_is_scrubbed(capture: Capture) -> None:
    """An f-string that baked the value into the template has the template masked."""
    held = secret("tok-fstring-0c1d")
    log().warning(f"token={held.reveal()} for %s", "alice")
    record = capture.records[-1]
    assert record.msg == "token=********** for %s" and record.args == ("alice",)


def test_records_without_values_are_not_touched(capture: Capture) -> None:
    """A record that shows no value keeps its exact msg and args objects."""
    secret("tok-unused-2f2f")
    args = ("alice", {"k": [1]})
    log().warning("user %s %r", *args)
    record = capture.records[-1]
    assert record.args is not None and record.args[1] is args[1]


def test_a_value_formatted_as_a_number_still_does_not_show(capture: Capture) -> None:
    """A numeric secret logged with %d cannot be masked in the arguments: the message is flattened."""
    held = secret(98765432)
    log().warning("pin %d and %s", held.reveal(), "x")
    assert "98765432" not in capture.text
    assert capture.records[-1].getMessage() == "pin ********** and x"


def test_a_non_string_message_keeps_its_type(capture: Capture) -> None:
    """A dict logged as the message stays a dict, with the value masked."""
    held = secret("tok-dict-message-77")
    log().warning({"event": "login", "token": held.reveal()})
    assert capture.records[-1].msg == {"event": "login", "token": "**********"}
    assert "tok-dict-message-77" not in capture.text


def test_an_object_argument_that_shows_the_value_is_replaced(capture: Capture) -> None:
    """An argument whose str() and repr() show the value prints masked, as str and repr."""
    held = secret("tok-object-arg-13")

    class Client:
        def __repr__(self) -> str:
            return f"Client(key={held.reveal()!r})"

    log().warning("client %s / %r", Client(), Client())
    assert "tok-object-arg-13" not in capture.text
    assert "Client(key='**********')" in capture.text


# -- every other way into a record -------------------------------------------------------------


def test_exception_text_and_chained_causes_are_scrubbed(capture: Capture) -> None:
    """log.exception() masks the value in the exception message and in its cause."""
    held = secret("tok-exception-chain-5")
    try:
        try:
            raise KeyError(held.reveal())
        except KeyError as inner:
            raise RuntimeError(f"login failed with {held.reveal()}") from inner
    except RuntimeError:
        log().exception("request failed")
    assert "tok-exception-chain-5" not in capture.text
    assert "RuntimeError: login failed with **********" in capture.text


def test_stack_info_is_scrubbed(capture: Capture) -> None:
    """A value in stack_info text is masked."""
    held = secret("tok-stack-info-0e")
    record = log().makeRecord(
        "attacker_probe", logging.WARNING, __file__, 1, "x", (), None, sinfo=f"Stack: {held.reveal()}"
    )
    assert record.stack_info == "Stack: **********"


def test_a_bad_format_string_does_not_leak_the_arguments(capture: Capture, capsys: Any) -> None:
    """When formatting fails, logging prints the arguments to stderr: they are scrubbed first."""
    held = secret("tok-bad-format-99")
    logger = logging.getLogger("attacker_probe.bad_format")
    logger.propagate = False
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    raise_exceptions = logging.raiseExceptions
    logging.raiseExceptions = True
    try:
        logger.warning("%s %s", held.reveal())  # one argument short
    finally:
        logging.raiseExceptions = raise_exceptions
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "not enough arguments" in err
    assert "tok-bad-format-99" not in err


def test_warnings_routed_through_logging_are_scrubbed(capture: Capture) -> None:
    """logging.captureWarnings(): a warning whose text shows a value is masked."""
    import warnings

    held = secret("tok-warning-text-42")
    logger = logging.getLogger("py.warnings")
    logger.addHandler(capture)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(f"deprecated key {held.reveal()}", UserWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
        logger.removeHandler(capture)
    assert capture.records and "tok-warning-text-42" not in capture.text


def test_the_root_logger_and_stderr_handlers_are_covered(capture: Capture) -> None:
    """A handler writing to stderr on the root logger sees the mask."""
    held = secret("tok-root-stderr-8f")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("some.library").error("token=%s", held.reveal())
    finally:
        root.removeHandler(handler)
    assert stream.getvalue() == "token=**********\n"
    assert sys.stderr is not None
