"""Attacks on a settings ValidationError: every way a secret can be the input that fails, never shown.

Configuration inputs are shown as pydantic shows them (tests/test_pydantic_errors.py); each
test here makes a secret fail validation and reads every text the error can produce.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from secretkit import Secret, SecretStore
from secretkit.backends.env import EnvBackend
from secretkit.pydantic import Ref, SecretkitSettings
from secretkit.testing import MemoryBackend, assert_no_value_in_error


def every_text_of(exc: ValidationError) -> str:
    """What a log, a traceback, an API response or a test report could show of the error."""
    return "\n".join(
        [
            str(exc),
            repr(exc),
            exc.json(),
            json.dumps(exc.errors(), default=str),
            "".join(traceback.format_exception(exc)),
            repr([repr(e.get("input")) for e in exc.errors()]),
        ]
    )


def assert_hidden(exc: ValidationError, *values: str) -> None:
    text = every_text_of(exc)
    for value in values:
        shown = value in text  # a bare bool: a failure report must not print the text
        assert not shown, f"a secret value ({len(value)} chars) shows in the ValidationError"
    assert_no_value_in_error(exc, *values)


def build(cls: type[SecretkitSettings], **values: Any) -> ValidationError:
    store = SecretStore([EnvBackend({})], reference_backends=[MEMORY], negative_ttl=0)
    with pytest.raises(ValidationError) as info:
        cls.from_store(store, **values)
    return info.value


MEMORY = MemoryBackend(
    {
        "port": "s3cr3t-referenced-port-0101",
        "db": json.dumps({"host": "s3cr3t-json-host-0102", "port": 5432}),
    }
)


class Database(BaseModel):
    host: str
    port: int
    user: str


def test_a_secret_str_field_that_fails_a_constraint_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SecretStr read from a plain variable and too short for its constraint: the input is masked."""
    monkeypatch.setenv("SIGNER", "s3cr3t-too-short-0103")

    class Settings(SecretkitSettings):
        signer: Annotated[SecretStr, Field(min_length=64)]

    assert_hidden(build(Settings), "s3cr3t-too-short-0103")


def test_a_secretkit_secret_field_given_a_wrong_value_is_masked() -> None:
    """A Secret field given text that does not validate (a keyword argument): the input is masked."""

    class Settings(SecretkitSettings):
        signer: Secret[str]

    assert_hidden(build(Settings, signer=["s3cr3t-in-a-list-0104"]), "s3cr3t-in-a-list-0104")


def test_a_field_whose_name_marks_a_secret_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """DB_PASSWORD read into an int field: the name marks a secret, so its input is masked."""
    monkeypatch.setenv("DB_PASSWORD", "s3cr3t-password-0105")

    class Settings(SecretkitSettings):
        db_password: int

    assert_hidden(build(Settings), "s3cr3t-password-0105")


def test_a_value_read_through_a_reference_in_a_variable_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """PORT=memory://port gives a secret: whatever the field is called, its input is masked."""
    monkeypatch.setenv("PORT", "memory://port")

    class Settings(SecretkitSettings):
        port: int

    assert_hidden(build(Settings), "s3cr3t-referenced-port-0101")


def test_a_json_secret_that_misses_a_key_masks_the_whole_document() -> None:
    """A model read from a JSON secret lacks a key: the "missing" error's input, the document, is masked."""

    class Settings(SecretkitSettings):
        db: Annotated[Database, Ref("memory://db")]

    exc = build(Settings)
    assert exc.errors()[0]["loc"] == ("db", "user")
    assert_hidden(exc, "s3cr3t-json-host-0102", "5432")


def test_a_secrets_dir_file_is_masked(tmp_path: Path) -> None:
    """A value from a secrets_dir file is a secret, even in a field named like configuration."""
    (tmp_path / "port").write_text("s3cr3t-file-port-0106")

    class Settings(SecretkitSettings):
        model_config = SettingsConfigDict(secrets_dir=str(tmp_path))
        port: int

    assert_hidden(build(Settings), "s3cr3t-file-port-0106")


def test_a_secret_field_inside_a_nested_model_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SecretStr inside a model read from JSON fails its constraint: masked, the rest of the model aside."""

    class Vendor(BaseModel):
        name: str
        credential: Annotated[SecretStr, Field(min_length=64)]

    monkeypatch.setenv("VENDOR", json.dumps({"name": "acme", "credential": "s3cr3t-nested-0107"}))

    class Settings(SecretkitSettings):
        vendor: Vendor

    exc = build(Settings)
    assert exc.errors()[0]["loc"] == ("vendor", "credential")
    assert_hidden(exc, "s3cr3t-nested-0107")


def test_a_missing_field_masks_the_secrets_of_the_other_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """A "missing" error's input holds every field's value: secret-typed and secret-named ones are masked."""
    monkeypatch.setenv("SIGNER", "s3cr3t-signer-0108")
    monkeypatch.setenv("SESSION_SALT", "s3cr3t-salt-0109")
    monkeypatch.setenv("VENDOR", json.dumps({"name": "acme", "credential": "s3cr3t-nested-0110"}))

    class Vendor(BaseModel):
        name: str
        credential: SecretStr

    class Settings(SecretkitSettings):
        signer: SecretStr
        session_salt: str
        vendor: Vendor
        required_elsewhere: str

    exc = build(Settings)
    assert exc.errors()[0]["type"] == "missing"
    assert_hidden(exc, "s3cr3t-signer-0108", "s3cr3t-salt-0109", "s3cr3t-nested-0110")


def test_a_url_password_is_masked_inside_any_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL inside a JSON input (of a field whose name marks nothing) has its password masked."""
    monkeypatch.setenv("UPSTREAMS", json.dumps(["https://ops:s3cr3t-url-pw-0111@upstream.internal/", 7]))

    class Settings(SecretkitSettings):
        upstreams: list[int]

    exc = build(Settings)
    assert_hidden(exc, "s3cr3t-url-pw-0111")
    assert "upstream.internal" in str(exc)


def test_an_extra_env_file_entry_named_as_a_secret_is_masked(tmp_path: Path) -> None:
    """extra='forbid' refusing a stray .env entry named *_TOKEN does not print the token."""
    env_file = tmp_path / ".env"
    env_file.write_text("STRIPE_TOKEN=s3cr3t-stray-token-0112\n")

    class Settings(SecretkitSettings):
        model_config = SettingsConfigDict(env_file=str(env_file), extra="forbid")
        port: int = 8000

    assert_hidden(build(Settings), "s3cr3t-stray-token-0112")
