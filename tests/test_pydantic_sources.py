"""SecretkitSettings runs pydantic-settings' own sources, with references resolved through the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from _batching import BatchMemoryBackend
from secretkit import Fetched, LiveSecret, Secret, SecretRef, SecretStore
from secretkit._redact import redact
from secretkit.backends.env import EnvBackend
from secretkit.pydantic import Ref, SecretkitSettings, SecretkitSettingsError
from secretkit.testing import CountingBackend, MemoryBackend, assert_no_value_in_error

DB_PASSWORD = "db-password-v1-5f2e"
API_TOKEN = "token-v1-9c41aa"
NOT_JSON = "plain-secret-text-7d1c"


class Database(BaseModel):
    host: str
    password: SecretStr


class Unreachable(MemoryBackend):
    def fetch(self, ref: SecretRef) -> Fetched:
        raise ConnectionError("the vault is down")


@pytest.fixture(autouse=True)
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # No stray .env of the repository is read.
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def memory() -> CountingBackend:
    return CountingBackend(
        BatchMemoryBackend(
            {"db-password": DB_PASSWORD, "api-token": API_TOKEN, "not-json": NOT_JSON, "port": "8443"}
        )
    )


@pytest.fixture
def store(memory: CountingBackend) -> SecretStore:
    # Only references go to the memory backend; names are pydantic-settings' sources' business.
    return SecretStore([EnvBackend({})], reference_backends=[memory], negative_ttl=0)


def test_a_nested_variable_holding_a_reference_is_resolved(
    store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APP_DB__PASSWORD=memory://... fills db.password with the secret, through env_nested_delimiter."""
    monkeypatch.setenv("APP_DB__HOST", "db.internal")
    monkeypatch.setenv("APP_DB__PASSWORD", "memory://db-password")

    class Nested(SecretkitSettings):
        model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="__")
        db: Database

    settings = Nested.from_store(store)
    assert settings.db.host == "db.internal"
    assert settings.db.password.get_secret_value() == DB_PASSWORD


def test_references_in_env_dotenv_and_markers_are_fetched_in_one_batch(
    store: SecretStore, memory: CountingBackend, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference in the environment, one in .env and a Ref() field cost one fetch_many call."""
    monkeypatch.setenv("DB_PASSWORD", "memory://db-password")
    (empty_cwd / ".env").write_text("API_TOKEN=memory://api-token\n")

    class Mixed(SecretkitSettings):
        model_config = SettingsConfigDict(env_file=".env")
        db_password: SecretStr
        api_token: SecretStr
        port: Annotated[int, Ref("memory://port")]

    settings = Mixed.from_store(store)
    assert (memory.batch_calls, memory.fetch_calls) == (1, 0)
    assert settings.db_password.get_secret_value() == DB_PASSWORD
    assert settings.api_token.get_secret_value() == API_TOKEN
    assert settings.port == 8443


def test_a_reference_in_a_secrets_dir_file_is_resolved(store: SecretStore, empty_cwd: Path) -> None:
    """A secrets_dir file that holds a reference gives the secret it names."""
    secrets = empty_cwd / "secrets"
    secrets.mkdir()
    (secrets / "db_password").write_text("memory://db-password\n")

    class FromFiles(SecretkitSettings):
        model_config = SettingsConfigDict(secrets_dir=secrets)
        db_password: SecretStr

    assert FromFiles.from_store(store).db_password.get_secret_value() == DB_PASSWORD


def test_secrets_dir_references_join_the_one_batch(
    store: SecretStore, memory: CountingBackend, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """References in secrets_dir files are fetched in the same fetch_many as the environment's.

    A file for a field the environment already sets is not fetched at all.
    """
    monkeypatch.setenv("DB_PASSWORD", "memory://db-password")
    secrets = empty_cwd / "secrets"
    secrets.mkdir()
    (secrets / "api_token").write_text("memory://api-token\n")
    (secrets / "db_password").write_text("memory://no-such-secret\n")

    class Mixed(SecretkitSettings):
        model_config = SettingsConfigDict(secrets_dir=secrets)
        db_password: SecretStr
        api_token: SecretStr

    settings = Mixed.from_store(store)
    assert (memory.batch_calls, memory.fetch_calls) == (1, 0)
    assert settings.db_password.get_secret_value() == DB_PASSWORD
    assert settings.api_token.get_secret_value() == API_TOKEN
    assert store.stats()["not_found"] == 0  # memory://no-such-secret was not asked for


def test_a_secrets_dir_link_out_of_its_directory_is_not_fetched(
    store: SecretStore, memory: CountingBackend, empty_cwd: Path
) -> None:
    """A file in secrets_dir that links outside it is not read for the prefetch, nor used by the source."""
    outside = empty_cwd / "elsewhere"
    outside.write_text("memory://api-token\n")
    secrets = empty_cwd / "secrets"
    secrets.mkdir()
    (secrets / "api_token").symlink_to(outside)

    class Linked(SecretkitSettings):
        model_config = SettingsConfigDict(secrets_dir=secrets)
        api_token: SecretStr | None = None

    with pytest.warns(UserWarning, match="resolves outside"):
        assert Linked.from_store(store).api_token is None
    assert (memory.batch_calls, memory.fetch_calls) == (0, 0)


def test_a_field_given_as_a_keyword_does_not_fetch_its_environment_reference(
    store: SecretStore, memory: CountingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the constructor sets a field, the reference the environment holds for it is not fetched."""
    monkeypatch.setenv("DB_PASSWORD", "memory://db-password")

    class Pinned(SecretkitSettings):
        db_password: SecretStr

    assert Pinned.from_store(store, db_password="given").db_password.get_secret_value() == "given"
    assert (memory.batch_calls, memory.fetch_calls) == (0, 0)


def test_an_override_of_settings_customise_sources_gets_secretkit_sources(
    store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subclass that reorders the sources still has references resolved in the ones it returns."""
    monkeypatch.setenv("DB_PASSWORD", "memory://db-password")

    class EnvLast(SecretkitSettings):
        db_password: SecretStr

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, file_secret_settings, env_settings

    assert EnvLast.from_store(store).db_password.get_secret_value() == DB_PASSWORD


def test_sources_keep_pydantic_settings_names(store: SecretStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """settings_sources_data is keyed by pydantic-settings' class names, as BaseSettings code expects."""
    monkeypatch.setenv("PORT", "8000")
    seen: dict[str, dict[str, Any]] = {}

    class Watcher(PydanticBaseSettingsSource):
        def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
            return None, field_name, False

        def __call__(self) -> dict[str, Any]:
            seen.update(self.settings_sources_data)
            return {}

    class Named(SecretkitSettings):
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
            return init_settings, env_settings, Watcher(settings_cls)

    Named.from_store(store)
    assert seen["EnvSettingsSource"] == {"port": "8000"}


def test_a_live_field_from_a_plain_variable_follows_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A LiveSecret field read from a plain variable reads that variable again on each reveal()."""
    monkeypatch.setenv("API_TOKEN", "token-one")

    class Live(SecretkitSettings):
        api_token: LiveSecret[str]

    settings = Live.from_store(SecretStore([EnvBackend()]))
    assert settings.api_token.reveal() == "token-one"
    monkeypatch.setenv("API_TOKEN", "token-two")
    assert settings.api_token.reveal() == "token-two"


def test_a_secret_field_from_a_reference_carries_its_metadata(
    store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Secret field whose variable holds a reference is the store's snapshot of that reference."""
    monkeypatch.setenv("DB_PASSWORD", "memory://db-password")

    class Snap(SecretkitSettings):
        db_password: Secret[str]

    settings = Snap.from_store(store)
    assert settings.db_password.reveal() == DB_PASSWORD
    assert settings.db_password.name == "memory://db-password"
    assert settings.secretkit_bindings() == {"db_password": "memory://db-password"}


def test_refresh_follows_a_rotated_secret_behind_an_environment_reference(
    store: SecretStore, memory: CountingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """refresh(force=True) replaces a field read through a variable's reference when the secret rotates."""
    monkeypatch.setenv("DB_PASSWORD", "memory://db-password")

    class Rotating(SecretkitSettings):
        db_password: SecretStr
        port: int = 1

    settings = Rotating.from_store(store)
    inner = memory.inner
    assert isinstance(inner, MemoryBackend)
    inner.set("db-password", "db-password-v2-77aa")
    assert settings.refresh(force=True) == frozenset({"db_password"})
    assert settings.db_password.get_secret_value() == "db-password-v2-77aa"


def test_refresh_follows_a_rotated_secret_inside_a_nested_field(
    store: SecretStore, memory: CountingBackend, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference in APP_DB__PASSWORD is re-read by refresh(); the field's other parts stay as built.

    db.host comes from .env and db.password from the environment: pydantic-settings merges the
    two, and refresh() builds the field again through the sources, keyword arguments included.
    """
    monkeypatch.setenv("APP_DB__PASSWORD", "memory://db-password")
    (empty_cwd / ".env").write_text("APP_DB__HOST=db.internal\n")

    class Nested(SecretkitSettings):
        model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="__", env_file=".env")
        db: Database
        name: str = "default"

    settings = Nested.from_store(store, name="given")
    assert settings.secretkit_bindings() == {"db": "memory://db-password"}
    assert settings.refresh(force=True) == frozenset()

    inner = memory.inner
    assert isinstance(inner, MemoryBackend)
    inner.set("db-password", "db-password-v2-77aa")
    assert settings.refresh(force=True) == frozenset({"db"})
    assert settings.db.password.get_secret_value() == "db-password-v2-77aa"
    assert (settings.db.host, settings.name) == ("db.internal", "given")
    assert settings.refresh(force=True) == frozenset()


def test_a_nested_field_that_fails_validation_on_refresh_is_left_as_it_was(
    store: SecretStore, memory: CountingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When building a nested field again fails, refresh() raises a redacted error and changes nothing."""
    monkeypatch.setenv("APP_LIMITS__PORT", "memory://port")

    class Limits(BaseModel):
        port: int

    class Nested(SecretkitSettings):
        model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="__")
        limits: Limits

    settings = Nested.from_store(store)
    assert settings.limits.port == 8443
    inner = memory.inner
    assert isinstance(inner, MemoryBackend)
    inner.set("port", "not-a-port-5e1f")
    with pytest.raises(ValidationError) as caught:
        settings.refresh(force=True)
    assert "not-a-port-5e1f" not in str(caught.value)
    assert settings.limits.port == 8443


def test_a_reference_that_points_nowhere_is_an_error_not_the_default(
    store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable set to a reference naming no secret fails the build: a typo never becomes the default."""
    monkeypatch.setenv("DB_PASSWORD", "memory://no-such-secret")

    class Defaulted(SecretkitSettings):
        db_password: str = "fallback"

    with pytest.raises(SecretkitSettingsError) as info:
        Defaulted.from_store(store)
    assert "DB_PASSWORD" in str(info.value)
    assert "memory://no-such-secret" in str(info.value)


def test_an_unreachable_backend_behind_a_variable_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference whose backend is down fails the build with SecretkitSettingsError naming the field."""
    monkeypatch.setenv("DB_PASSWORD", "memory://db-password")
    store = SecretStore([EnvBackend({})], reference_backends=[Unreachable()], negative_ttl=0, backoff_base=0)

    class Down(SecretkitSettings):
        db_password: SecretStr

    with pytest.raises(SecretkitSettingsError) as info:
        Down.from_store(store)
    assert "db_password" in str(info.value)


def test_a_referenced_secret_that_is_not_json_for_a_model_shows_no_value(
    store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic-settings' SettingsError for undecodable JSON keeps no copy of the secret in its chain."""
    monkeypatch.setenv("DB", "memory://not-json")

    class Modelled(SecretkitSettings):
        db: Database

    with pytest.raises(SettingsError) as info:
        Modelled.from_store(store)
    assert_no_value_in_error(info.value, NOT_JSON)
    cause = info.value.__cause__
    assert isinstance(cause, json.JSONDecodeError)
    assert NOT_JSON not in cause.doc


def test_a_secret_typed_field_from_a_plain_variable_is_masked_in_logs(
    store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SecretStr field read from a plain variable is registered for redaction; a str field is not."""
    monkeypatch.setenv("SESSION_KEY", "session-key-3e8b0f1a")
    monkeypatch.setenv("APP_ENV", "production-eu-4411")

    class Typed(SecretkitSettings):
        session_key: SecretStr
        app_env: str

    settings = Typed.from_store(store)
    line = redact(f"key {settings.session_key.get_secret_value()} in {settings.app_env}")
    assert line == "key ********** in production-eu-4411"


def test_a_live_field_from_a_secrets_dir_file_follows_the_file(store: SecretStore, empty_cwd: Path) -> None:
    """A LiveSecret field read from a secrets_dir file reads that file through the store."""
    secrets = empty_cwd / "secrets"
    secrets.mkdir()
    (secrets / "api_token").write_text("file-token-1c9e")

    class FromFile(SecretkitSettings):
        model_config = SettingsConfigDict(secrets_dir=secrets)
        api_token: LiveSecret[str]

    settings = FromFile.from_store(store)
    assert settings.api_token.reveal() == "file-token-1c9e"
    assert settings.secretkit_bindings() == {"api_token": f"file://{(secrets / 'api_token').resolve()}"}


def test_an_extra_dotenv_key_holding_a_reference_is_resolved_when_extras_are_allowed(
    store: SecretStore, empty_cwd: Path
) -> None:
    """With extra="allow", a .env key that is no field's becomes an extra input holding the secret."""
    (empty_cwd / ".env").write_text("SIDE_TOKEN=memory://api-token\n")

    class Extras(SecretkitSettings):
        model_config = SettingsConfigDict(env_file=".env", extra="allow")

    settings = Extras.from_store(store)
    assert settings.model_extra == {"side_token": API_TOKEN}
    assert API_TOKEN not in repr(settings)


def test_an_extra_dotenv_reference_is_not_fetched_when_extras_are_refused(
    store: SecretStore, memory: CountingBackend, empty_cwd: Path
) -> None:
    """With extra="forbid", the error for a .env key that is no field's costs no fetch."""
    (empty_cwd / ".env").write_text("SIDE_TOKEN=memory://api-token\n")

    class Strict(SecretkitSettings):
        model_config = SettingsConfigDict(env_file=".env", extra="forbid")

    with pytest.raises(ValidationError) as info:
        Strict.from_store(store)
    assert [error["type"] for error in info.value.errors()] == ["extra_forbidden"]
    assert (memory.batch_calls, memory.fetch_calls) == (0, 0)
