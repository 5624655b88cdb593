"""Log redaction: values revealed through secretkit never reach a log handler."""

from __future__ import annotations

import io
import json
import logging
import random
import secrets
from collections.abc import Iterator

import pytest

import secretkit
from secretkit import SecretStore, _redact, _redact_engine
from secretkit._redact import StreamRedactor
from secretkit._redact_engine import MIN_LENGTH, Matcher, replace
from secretkit._redact_forms import forms
from secretkit.backends import EnvBackend, MemoryBackend
from security.fuzzing import fresh_registry


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
    """Secrets read through getenv (named like one), and the string leaves of JSON secrets, are masked."""
    previous = secretkit._api._swap(SecretStore([EnvBackend({"SK_REDACT_TOKEN": "env-secret-456"})]))
    try:
        secretkit.getenv("SK_REDACT_TOKEN")
    finally:
        secretkit._api._swap(previous)
    SecretStore([MemoryBackend({"J": '{"user": "nested-user-789"}'})]).get("J")
    log().info("env=%s user=%s", "env-secret-456", "nested-user-789", extra={"extra_field": "-"})
    text = handler_output.getvalue()
    assert "env-secret-456" not in text and "nested-user-789" not in text


def test_a_documents_other_fields_are_scrubbed_after_the_whole_value_was_read(
    handler_output: io.StringIO,
) -> None:
    """``#user`` of a BOM-prefixed JSON document read after the whole value: its password is masked.

    The whole value registers without a parsed document (and finds no leaves in bytes with a
    BOM, which json.loads reads); the field's read must still register every leaf.
    """
    document = {"user": "bom-doc-user-5521", "password": "bom-doc-password-7734"}
    raw = b"\xef\xbb\xbf" + json.dumps(document).encode()
    store = SecretStore([MemoryBackend({"BOMDOC": raw})])
    whole, user = store.get("memory://BOMDOC"), store.get("memory://BOMDOC#user")
    log().info("password=%s", "bom-doc-password-7734", extra={"extra_field": "-"})
    leaked = "bom-doc-password-7734" in handler_output.getvalue()
    assert not leaked, "the document's password shows in the log"  # a failure never prints it
    assert handler_output.getvalue().count("**********") == 1
    assert user.reveal() == "bom-doc-user-5521" and whole.reveal() == raw


def test_where_a_database_secret_points_stays_readable(handler_output: io.StringIO) -> None:
    """Engine, host, port and database name of a database secret are configuration: logs keep them.

    The login stays masked, and so does a descriptive field read on its own as a secret.
    """
    document = json.dumps(
        {
            "engine": "postgres",
            "host": "orders-7c1e.db.example",
            "port": 61873,
            "dbname": "orders_7c1e",
            "username": "orders-app-7f3e",
            "password": "orders-pw-9c41d2",
        }
    )
    backend = MemoryBackend({"DB": document, "OTHER": '{"host": "only-host-picked.internal"}'})
    store = SecretStore([], reference_backends=[backend])
    assert store.get("memory://DB").field("password").reveal() == "orders-pw-9c41d2"
    line = "postgres at orders-7c1e.db.example:61873/orders_7c1e as orders-app-7f3e:orders-pw-9c41d2"
    log().info(line, extra={"extra_field": "-"})
    store.get("memory://OTHER#host")
    log().info("picked only-host-picked.internal", extra={"extra_field": "-"})
    text = handler_output.getvalue()
    assert " at orders-7c1e.db.example:61873/orders_7c1e as " in text
    assert "postgres" not in forms(document)  # the engine (another test may register the word itself)
    assert "orders-app-7f3e" not in text and "orders-pw-9c41d2" not in text
    assert "only-host-picked.internal" not in text


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


# -- the engine -------------------------------------------------------------------------------


def test_matcher_finds_every_value_at_every_position() -> None:
    """Each value is found wherever it sits in a text, whatever the probing step."""
    values = ["abcd", "abcdefg", "k" * 11, "0123456789abcdef-long-token"]
    for value in values:
        matcher = Matcher([value])
        for pad in range(12):
            text = "." * pad + value + "." * (11 - pad)
            assert matcher.spans(text) == [(pad, pad + len(value))], (len(value), pad)


def test_matcher_forgets_a_discarded_value_and_keeps_the_others() -> None:
    """discard() removes one value; values sharing its grams stay found."""
    matcher = Matcher(["shared-prefix-one", "shared-prefix-two", "abcd"])
    matcher.discard("shared-prefix-one")
    matcher.discard("abcd")
    assert matcher.redact("shared-prefix-one shared-prefix-two abcd", "*") == "shared-prefix-one * abcd"
    assert matcher.step == _redact_engine.MAX_STEP  # the short value no longer slows every scan
    assert len(matcher) == 1


def test_short_values_lower_the_probing_step_for_all() -> None:
    """A value of MIN_LENGTH characters makes every position a probe; long values alone do not."""
    matcher = Matcher(["a-long-enough-value"])
    assert matcher.step == _redact_engine.MAX_STEP
    matcher.add("wxyz")
    assert matcher.step == 1
    assert matcher.redact("..wxyz..a-long-enough-value", "*") == "..*..*"


def test_values_with_a_common_prefix_are_filed_apart() -> None:
    """Connection strings that share a prefix do not all land under the same grams."""
    dsns = [f"postgres://app:{secrets.token_hex(8)}@db.internal:5432/app" for _ in range(200)]
    matcher = Matcher(dsns)
    crowded = max(matcher.load(gram) for gram in matcher._index)
    assert crowded < 20
    assert matcher.redact(f"dsn={dsns[123]} ok", "*") == "dsn=* ok"


def test_overlapping_values_are_masked_as_one() -> None:
    """Values that overlap in a text are masked as one span, so no piece of either shows."""
    matcher = Matcher(["abcdef-123", "123-ghijkl"])
    assert matcher.redact("x abcdef-123-ghijkl y", "*") == "x * y"


def test_held_is_the_longest_tail_that_could_start_a_value() -> None:
    """held() counts the end of a text that a value could continue, and nothing more."""
    matcher = Matcher(["s3cr3t-value", "token-extended"])
    assert matcher.held("Password: ") == 0
    assert matcher.held("abc s3c") == 3
    assert matcher.held("abc s3cr3t-v") == 8
    assert matcher.held("abc s3cr3t-value") == 0  # whole: a match, not a prefix
    assert matcher.held("x s") == 1


def test_forms_cover_escapes_encodings_and_lines() -> None:
    """A value is registered raw, repr()- and JSON-escaped, URL-encoded, and line by line."""
    value = "p\\a\"s's\n\tw\x01rd-ü-line-two"
    found = set(forms(value))
    assert value in found
    assert repr(value)[1:-1] in found
    assert json.dumps(value)[1:-1] in found
    assert json.dumps(value, ensure_ascii=False)[1:-1] in found
    document = json.dumps({"pw": value})
    assert any(f in repr(document) for f in found if len(f) > len(value))  # a JSON document in a repr()
    assert "w\x01rd-ü-line-two" in found  # the second line, stripped
    assert all(len(f) >= MIN_LENGTH for f in found)


def test_bytes_are_registered_in_the_forms_they_decode_to() -> None:
    """Non-UTF-8 bytes are found as their repr() contents, Latin-1 text and stream text."""
    value = b"\xff\xfe-binary-key-\x00"
    found = set(forms(value))
    assert repr(value)[2:-1] in found
    assert value.decode("latin-1") in found
    assert value.decode("utf-8", "surrogateescape") in found
    assert "utf-8-bytes-é" in set(forms("utf-8-bytes-é".encode()))


def test_json_leaves_are_registered_and_tiny_ones_are_not() -> None:
    """A JSON secret's strings and its numbers under a secret key count; tiny or descriptive ones do not."""
    found = set(
        forms('{"user": "app", "password": "pw-123456", "pin_secret": 54321, "on": true, "Port": 5432}')
    )
    assert {"pw-123456", "54321"} <= found
    assert "app" not in found and "True" not in found and "true" not in found and "5432" not in found


def test_the_numbers_and_flags_of_a_json_secret_stay_readable_in_logs(handler_output: io.StringIO) -> None:
    """A timeout, a port or a flag of a JSON secret is configuration: a log line that prints it is not masked.

    A number under a key that marks it as secret (``SECRET_NAME_MARKERS``), or under such a
    key further up, stays masked, as do the string fields, the whole document, and a number
    read on its own as a secret (``#port``).
    """
    document = json.dumps(
        {
            "timeout": 730_041,
            "service": {"port": 46_519, "retries": 3, "ratio": 0.8125, "debug": True},
            "ids": [918_273, 564_738],
            "pin_secret": 402_917,
            "credentials": {"pin": 771_302},
            "password": "cfg-json-pw-41c7e2",
        }
    )
    backend = MemoryBackend({"CFG": document, "ALONE": '{"port": 58213}'})
    store = SecretStore([], reference_backends=[backend])
    # A registry of this test's own: another test's secret "true" would mask "debug=true".
    with fresh_registry():
        assert store.get("memory://CFG#password").reveal() == "cfg-json-pw-41c7e2"
        assert store.get("memory://ALONE#port").reveal() == 58213
        log().info(
            "timeout=730041 port=46519 ratio=0.8125 debug=true ids=918273,564738 alone=58213",
            extra={"extra_field": "-"},
        )
        log().info(
            "pin=402917 nested=771302 pw=cfg-json-pw-41c7e2 doc=%s", document, extra={"extra_field": "-"}
        )
    text = handler_output.getvalue()
    assert "timeout=730041 port=46519 ratio=0.8125 debug=true ids=918273,564738 " in text
    assert "58213" not in text  # picked as a secret of its own
    assert "402917" not in text and "771302" not in text  # under a key that marks a secret
    assert "cfg-json-pw-41c7e2" not in text
    assert "doc=**********" in text


def brute_force_spans(values: list[str], text: str) -> list[tuple[int, int]]:
    found = sorted((at, at + len(v)) for v in values for at in range(len(text)) if text.startswith(v, at))
    merged: list[tuple[int, int]] = []
    for begin, end in found:
        if merged and begin < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def test_matcher_and_stream_agree_with_a_brute_force_search() -> None:
    """Matcher and stream masking equal a brute-force search on random overlapping values and chunks."""
    rng = random.Random(20261130)  # noqa: S311 - a seeded test corpus, not a key
    for trial in range(600):
        alphabet = "ab" if trial % 2 else "abcd"
        count = rng.randint(1, 6)
        values = list({"".join(rng.choices(alphabet, k=rng.randint(4, 14))) for _ in range(count)})
        text = "".join(rng.choices(alphabet + "x", k=rng.randint(0, 60)))
        expected = brute_force_spans(values, text)
        assert Matcher(values).spans(text) == expected, (values, text)
        redactor = StreamRedactor(values, text=True, mask="*")
        pos, out = 0, ""
        while pos < len(text):
            size = rng.randint(1, 8)
            out += redactor.feed(text[pos : pos + size])
            pos += size
        assert out + redactor.flush() == replace(text, expected, len(text), "*"), (values, text)


def brute_force_held(values: list[str], text: str) -> int:
    return max(
        (t for t in range(1, len(text) + 1) for v in values if len(v) > t and text.endswith(v[:t])), default=0
    )


def test_held_agrees_with_a_brute_force_search_as_values_come_and_go() -> None:
    """held() (a suffix tree per head) equals a brute-force search while values are added and discarded."""
    rng = random.Random(20261206)  # noqa: S311 - a seeded test corpus, not a key
    matcher = Matcher()
    live: list[str] = []
    for step in range(3000):
        value = "".join(rng.choices("ab", k=rng.randint(4, 12)))
        if live and rng.random() < 0.4:
            gone = live.pop(rng.randrange(len(live)))
            matcher.discard(gone)
        elif value not in live:
            live.append(value)
            matcher.add(value)
        text = "".join(rng.choices("abx", k=rng.randint(0, 16)))
        assert matcher.held(text) == brute_force_held(live, text), (step, live, text)


def test_log_redaction_layers_import_one_way() -> None:
    """The registry never imports the log machinery built on it, nor exceptions the log guard."""
    import ast
    from pathlib import Path

    package = Path(secretkit.__file__).parent
    # Each module, and the redaction modules it must not import (they stand above it).
    above = {
        "_redact_engine": {
            "_redact",
            "_redact_forms",
            "_redact_objects",
            "_redact_exceptions",
            "_redact_logs",
            "_api",
            "_secret_names",
        },
        "_redact_forms": {"_redact", "_redact_objects", "_redact_exceptions", "_redact_logs", "_api"},
        "_secret_names": {"_redact", "_redact_engine", "_redact_forms", "_api"},
        "_redact": {"_redact_objects", "_redact_exceptions", "_redact_logs"},
        "_redact_objects": {"_redact_exceptions", "_redact_logs"},
        "_redact_exceptions": {"_redact_logs"},
    }
    for module, forbidden in above.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse((package / f"{module}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported.add(node.module or "")
                imported.update(alias.name for alias in node.names if node.module is None)
        assert not imported & forbidden, f"{module} imports {imported & forbidden}"
