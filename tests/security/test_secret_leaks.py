"""The Secret type probed for leaks: tracebacks with locals, hostile paths, hashes."""

from __future__ import annotations

import subprocess
import sys
import traceback

import pytest

from secretkit import ConfigurationError, Secret, SecretNotFound
from secretkit._secret import Missing, field_value

PASSWORD = "pw-in-document-9f8e7d"
OTHER = "other-key-value-1a2b3c"
DOCUMENT = f'{{"password": "{PASSWORD}", "api": {{"key": "{OTHER}"}}, "hosts": ["h1"]}}'


def traceback_text(exc: BaseException) -> str:
    """What an error reporter that captures locals (Sentry's default) would send."""
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


@pytest.mark.parametrize(
    "path",
    ["passwd", "api.missing", "hosts.5", "hosts.²", "hosts." + "1" * 5000, "password.deeper"],
    ids=["missing-key", "missing-nested", "index-out-of-range", "superscript-digit", "huge-index", "leaf"],
)
def test_field_errors_carry_no_part_of_the_document(path: str) -> None:
    """A failing field() raises SecretNotFound whose traceback locals hold no key of the secret."""
    with pytest.raises(SecretNotFound) as info:
        Secret("DB", DOCUMENT).field(path)
    text = traceback_text(info.value)
    assert PASSWORD not in text and OTHER not in text


def test_field_of_a_hostile_non_json_value_carries_no_value() -> None:
    """A value nested too deep to parse is 'not JSON', with nothing of it in the traceback."""
    deep = Secret("DEEP", "[" * 100_000 + f'"{PASSWORD}"' + "]" * 100_000)
    with pytest.raises(ConfigurationError) as info:
        deep.field("0")
    assert PASSWORD not in traceback_text(info.value)


@pytest.mark.parametrize("path", ["x", "0", "²", "9" * 5000, "a.b.c"])
def test_field_value_never_raises(path: str) -> None:
    """field_value() answers Missing for any path instead of raising with the document in its frame."""
    for value in (DOCUMENT, '{"a": [1, 2]}', "not json", b"\xff\xfe", "[" * 50_000):
        document, found = field_value(value, path)
        assert isinstance(found, Missing)
        del document


def test_the_hash_of_a_secret_is_not_the_hash_of_its_value() -> None:
    """hash(Secret) reveals nothing about hash(value): no equality oracle through hashes."""
    for value in ("hash-oracle-value-1", b"hash-oracle-bytes-2"):
        assert hash(Secret("H", value)) != hash(value)
    assert hash(Secret("A", "same-value-3")) == hash(Secret("B", "same-value-3"))
    assert hash(Secret("A", "same-value-3")) != hash(Secret("A", "same-value-4"))


def test_the_hash_key_differs_between_processes() -> None:
    """With PYTHONHASHSEED fixed, two processes still hash the same Secret differently."""
    code = "from secretkit import Secret; print(hash(Secret('H', 'per-process-key-value')))"
    env = {"PYTHONHASHSEED": "0", "PATH": ""}
    command = [sys.executable, "-c", code]
    runs = {subprocess.run(command, capture_output=True, text=True, env=env).stdout for _ in range(2)}
    assert len(runs) == 2


def test_equal_secrets_stay_usable_as_keys() -> None:
    """Secrets with equal values are equal and find each other in a dict and a set."""
    table = {Secret("A", "dict-key-value-5"): 1}
    assert table[Secret("B", "dict-key-value-5")] == 1
    assert Secret("A", "dict-key-value-5") not in {Secret("A", "dict-key-value-6")}
