"""A secret that fails validation never shows in the ValidationError, its chain, or pydantic-settings' log."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from secretkit import SecretStore
from secretkit.backends.env import EnvBackend
from secretkit.pydantic import Ref, SecretkitSettings, SecretkitSettingsSource, redact_validation_error
from secretkit.testing import MemoryBackend, assert_no_value_in_error

BAD_PORT = "s3cr3t-not-a-port-0001"
BAD_JSON = '{"host": "db.internal", "port": "s3cr3t-in-json-0002"}'
QUOTED = "s3cr3t-quoted-by-validator-0003"


class Database(BaseModel):
    host: str
    port: int


def every_text_of(exc: ValidationError) -> str:
    """Everything a log, a traceback, an API response or a test report could show of the error."""
    parts = [
        str(exc),
        repr(exc),
        exc.json(),
        json.dumps(exc.errors(), default=str),
        "".join(traceback.format_exception(exc)),
        repr([repr(e.get("input")) for e in exc.errors()]),
        *getattr(exc, "__notes__", []),
    ]
    return "\n".join(parts)


def assert_hidden(exc: ValidationError, *values: str) -> None:
    text = every_text_of(exc)
    for value in values:
        # A bare bool, so that a failure report does not print the text (and the value) itself.
        shown = value in text
        assert not shown, f"a secret value ({len(value)} chars) shows in the ValidationError"
    assert_no_value_in_error(exc, *values)


@pytest.fixture
def store() -> SecretStore:
    env = {"PORT": BAD_PORT, "DATABASE": BAD_JSON, "TOKEN": QUOTED}
    return SecretStore(
        [EnvBackend(env)], reference_backends=[MemoryBackend({"port": BAD_PORT})], negative_ttl=0
    )


def test_a_secret_that_fails_validation_is_not_in_the_error(store: SecretStore) -> None:
    """An int field given a non-numeric secret fails with the field named and the value masked everywhere."""

    class Settings(SecretkitSettings):
        port: int

    with pytest.raises(ValidationError) as info:
        Settings.from_store(store)
    assert_hidden(info.value, BAD_PORT)
    assert info.value.errors()[0]["loc"] == ("port",)
    assert info.value.errors()[0]["type"] == "int_parsing"
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_a_referenced_secret_that_fails_validation_is_not_in_the_error(store: SecretStore) -> None:
    """The same holds for a field read by reference."""

    class Settings(SecretkitSettings):
        port: Annotated[int, Ref("memory://port")]

    with pytest.raises(ValidationError) as info:
        Settings.from_store(store)
    assert_hidden(info.value, BAD_PORT)


def test_a_bad_field_inside_a_json_secret_is_not_in_the_error(store: SecretStore) -> None:
    """A nested model validated from a JSON secret reports the nested location, not the value."""

    class Settings(SecretkitSettings):
        database: Database

    with pytest.raises(ValidationError) as info:
        Settings.from_store(store)
    assert_hidden(info.value, BAD_JSON, "s3cr3t-in-json-0002")
    assert info.value.errors()[0]["loc"] == ("database", "port")


def test_a_validator_that_quotes_the_value_is_redacted(store: SecretStore) -> None:
    """A field validator whose message quotes the secret has the quote masked."""

    class Settings(SecretkitSettings):
        token: SecretStr

        @field_validator("token")
        @classmethod
        def check(cls, value: SecretStr) -> SecretStr:
            raise ValueError(f"token {value.get_secret_value()} has the wrong prefix")

    with pytest.raises(ValidationError) as info:
        Settings.from_store(store)
    assert_hidden(info.value, QUOTED)
    assert "wrong prefix" in str(info.value)


def test_a_missing_field_says_where_secretkit_looked() -> None:
    """The error for a required field that no backend has carries a note with the names tried."""
    store = SecretStore([EnvBackend({})], negative_ttl=0)

    class Settings(SecretkitSettings):
        api_key: SecretStr

    with pytest.raises(ValidationError) as info:
        Settings.from_store(store)
    notes = getattr(info.value, "__notes__", [])
    assert notes == ["secretkit looked for field 'api_key' as 'api_key', 'API_KEY': not found"]


def test_a_plain_base_settings_with_the_source_shows_masks_in_its_message(store: SecretStore) -> None:
    """With only the source (no SecretkitSettings), pydantic's own message shows a mask for the input."""

    class Plain(BaseSettings):
        port: int

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, SecretkitSettingsSource(settings_cls, store)

    with pytest.raises(ValidationError) as info:
        Plain()
    shown = BAD_PORT in str(info.value) or BAD_PORT in repr(info.value)
    assert not shown, "the secret shows in pydantic's message"
    assert_hidden(redact_validation_error(info.value), BAD_PORT)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_pydantic_settings_debug_log_shows_no_value(
    store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PYDANTIC_SETTINGS_DEBUG logs what each source returned: secretkit's values appear masked."""
    monkeypatch.setenv("PYDANTIC_SETTINGS_DEBUG", "1")
    # A handler of our own, not propagated: pytest's report would print a captured log, value and all.
    logger = logging.getLogger("pydantic_settings")
    collect = _Collect()
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(collect)

    class Settings(SecretkitSettings):
        token: SecretStr
        plain_token: Annotated[str, Ref("TOKEN")]

    try:
        settings = Settings.from_store(store)
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
        logger.propagate = propagate
    assert settings.plain_token == QUOTED
    logged = "\n".join(collect.messages)
    assert "SecretkitSettingsSource" in logged
    shown = QUOTED in logged
    assert not shown, "the secret shows in pydantic-settings' debug log"


def test_a_rotation_that_fails_validation_is_not_in_the_error() -> None:
    """refresh() with a rotated secret that no longer validates raises a redacted error."""
    memory = MemoryBackend({"port": "8080"})
    store = SecretStore([], reference_backends=[memory], ttl=60)

    class Settings(SecretkitSettings):
        port: Annotated[int, Ref("memory://port")]

    settings = Settings.from_store(store)
    memory.set("port", BAD_PORT)
    with pytest.raises(ValidationError) as info:
        settings.refresh(force=True)
    assert_hidden(info.value, BAD_PORT)
    assert settings.port == 8080


# -- configuration stays readable -------------------------------------------------------------------


def test_a_configuration_mistake_shows_the_input_as_pydantic_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """PORT=abc gives an error that shows 'abc': a plain variable whose name marks no secret is config."""
    monkeypatch.setenv("PORT", "abc")

    class Settings(SecretkitSettings):
        port: int

    with pytest.raises(ValidationError) as info:
        Settings.from_store(SecretStore([EnvBackend({})], negative_ttl=0))
    assert "input_value='abc'" in str(info.value)
    assert info.value.errors()[0]["input"] == "abc"
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_a_missing_field_shows_configuration_and_masks_secrets_in_the_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A missing field's input is every value given: plain ones shown, a secret-named one masked."""
    monkeypatch.setenv("REGION", "plain-config-0007")
    monkeypatch.setenv("API_KEY", "s3cr3t-api-key-0005")

    class Settings(SecretkitSettings):
        region: str
        api_key: str
        host: str

    with pytest.raises(ValidationError) as info:
        Settings.from_store(SecretStore([EnvBackend({})], negative_ttl=0))
    (error,) = info.value.errors()
    assert error["loc"] == ("host",) and error["type"] == "missing"
    assert error["input"] == {"region": "plain-config-0007", "api_key": "**********"}
    assert_hidden(info.value, "s3cr3t-api-key-0005")


def test_a_url_shows_all_but_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL-shaped input that fails validation is shown with its user-info password masked."""
    monkeypatch.setenv("CACHE_URL", "redis://app:pw-in-url-0006@cache:6379/0")

    class Settings(SecretkitSettings):
        cache_url: Literal["redis://localhost:6379/0"]

    with pytest.raises(ValidationError) as info:
        Settings.from_store(SecretStore([EnvBackend({})], negative_ttl=0))
    assert info.value.errors()[0]["input"] == "redis://app:**********@cache:6379/0"
    assert_hidden(info.value, "pw-in-url-0006")
