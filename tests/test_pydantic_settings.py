"""Typed settings through secretkit: names, references, validation, rotation, refresh and source order."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import AliasChoices, BaseModel, Field, HttpUrl, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from _batching import BatchMemoryBackend
from secretkit import (
    InvalidReference,
    LiveSecret,
    Secret,
    SecretkitError,
    SecretRef,
    SecretStore,
)
from secretkit.backends.dotenv import DotenvBackend
from secretkit.backends.env import EnvBackend
from secretkit.pydantic import (
    Ref,
    SecretkitSettings,
    SecretkitSettingsError,
    SecretkitSettingsSource,
    declared_secrets,
)
from secretkit.testing import (
    CountingBackend,
    FakeClock,
    MemoryBackend,
    MemorySecrets,
    assert_no_value_in_error,
)

TTL = 60.0


class Database(BaseModel):
    host: str
    port: int


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory() -> MemoryBackend:
    return MemoryBackend(
        {
            "stripe": '{"api_key": "sk_live_stripe_0001", "webhook": "whsec_0001"}',
            "api-token": "token-v1-aaaaaaaa",
            "db-password": "db-password-v1",
        }
    )


@pytest.fixture
def dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # An empty working directory: no stray .env of the repository is read.
    monkeypatch.chdir(tmp_path)
    path = tmp_path / ".env"
    path.write_text(
        "SKT_DATABASE_URL=postgresql://app:dotenv-db-pw@db.internal:5432/app\n"
        'SKT_DATABASE={"host": "db.internal", "port": 5432}\n'
    )
    return path


@pytest.fixture
def store(dotenv_file: Path, memory: MemoryBackend, clock: FakeClock) -> Iterator[SecretStore]:
    store = SecretStore(
        [EnvBackend(), DotenvBackend(dotenv_file)],
        reference_backends=[memory],
        ttl=TTL,
        jitter=0.0,
        negative_ttl=0.0,
        clock=clock,
    )
    yield store
    store.close()


class AppSettings(SecretkitSettings):
    model_config = SettingsConfigDict(env_prefix="SKT_")

    port: int
    debug: bool = False
    public_url: HttpUrl
    database_url: SecretStr
    database: Database
    stripe_key: Annotated[SecretStr, Ref("memory://stripe#api_key")]
    api_token: Annotated[LiveSecret[str], Ref("memory://api-token")]
    db_password: Annotated[SecretStr, Ref("memory://db-password")]


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKT_PORT", "8443")
    monkeypatch.setenv("SKT_DEBUG", "true")
    monkeypatch.setenv("SKT_PUBLIC_URL", "https://app.example.com/")


# -- the whole story -------------------------------------------------------------------------------


def test_fields_from_env_dotenv_and_references_resolve_and_validate(
    store: SecretStore, app_env: None
) -> None:
    """Fields from the environment, a .env file and references arrive validated to their types."""
    settings = AppSettings.from_store(store)
    assert settings.port == 8443 and settings.debug is True
    assert str(settings.public_url) == "https://app.example.com/"
    assert settings.database_url.get_secret_value() == "postgresql://app:dotenv-db-pw@db.internal:5432/app"
    assert settings.database == Database(host="db.internal", port=5432)
    assert settings.stripe_key.get_secret_value() == "sk_live_stripe_0001"
    assert settings.api_token.reveal() == "token-v1-aaaaaaaa"
    # Plain configuration comes from pydantic-settings' environment source; only what the store read is bound.
    assert settings.secretkit_bindings() == {
        "database_url": "SKT_DATABASE_URL",
        "database": "SKT_DATABASE",
        "stripe_key": "memory://stripe#api_key",
        "api_token": "memory://api-token",
        "db_password": "memory://db-password",
    }


def test_a_live_field_follows_rotation_without_a_rebuild(
    store: SecretStore, app_env: None, memory: MemoryBackend, clock: FakeClock
) -> None:
    """A LiveSecret field gives the rotated value once the store's TTL has passed, with no refresh()."""
    settings = AppSettings.from_store(store)
    memory.set("api-token", "token-v2-bbbbbbbb")
    assert settings.api_token.reveal() == "token-v1-aaaaaaaa"  # cached until the TTL
    clock.advance(TTL + 1)
    assert settings.api_token.reveal() == "token-v2-bbbbbbbb"
    assert settings.api_token.version == "2"


def test_snapshot_fields_change_only_on_refresh_and_only_those_that_changed(
    store: SecretStore, app_env: None, memory: MemoryBackend, clock: FakeClock
) -> None:
    """refresh() replaces exactly the SecretStr fields whose secret rotated; the others keep their objects."""
    settings = AppSettings.from_store(store)
    before = {name: getattr(settings, name) for name in ("stripe_key", "database_url", "database")}
    memory.set("db-password", "db-password-v2")
    clock.advance(TTL + 1)
    assert settings.db_password.get_secret_value() == "db-password-v1"  # a snapshot
    assert settings.refresh() == frozenset({"db_password"})
    assert settings.db_password.get_secret_value() == "db-password-v2"
    for name, value in before.items():
        assert getattr(settings, name) is value
    assert settings.refresh() == frozenset()


def test_a_new_version_that_keeps_a_fields_key_does_not_change_that_field(
    store: SecretStore, memory: MemoryBackend, clock: FakeClock
) -> None:
    """Fields read from keys of one JSON secret change only where their key's value changed."""

    class Keys(SecretkitSettings):
        api_key: Annotated[SecretStr, Ref("memory://stripe#api_key")]
        webhook: Annotated[SecretStr, Ref("memory://stripe#webhook")]

    settings = Keys.from_store(store)
    memory.set("stripe", '{"api_key": "sk_live_stripe_0001", "webhook": "whsec_0002"}')
    clock.advance(TTL + 1)
    assert settings.refresh() == frozenset({"webhook"})
    assert settings.webhook.get_secret_value() == "whsec_0002"


def test_refresh_reads_through_the_cache_unless_forced(
    store: SecretStore, app_env: None, memory: MemoryBackend
) -> None:
    """Within the TTL refresh() sees the cached value; refresh(force=True) asks the backend."""
    settings = AppSettings.from_store(store)
    memory.set("stripe", '{"api_key": "sk_live_stripe_0002"}')
    assert settings.refresh() == frozenset()
    assert settings.refresh(force=True) == frozenset({"stripe_key"})
    assert settings.stripe_key.get_secret_value() == "sk_live_stripe_0002"


def test_a_rotated_value_that_fails_validation_changes_nothing(
    store: SecretStore, app_env: None, memory: MemoryBackend, clock: FakeClock
) -> None:
    """If a rotated secret does not validate, refresh() raises and every field keeps its old value."""

    class Pinned(SecretkitSettings):
        stripe_key: Annotated[SecretStr, Ref("memory://stripe#api_key")]
        port: Annotated[int, Ref("memory://port")]

    memory.set("port", "8080")
    settings = Pinned.from_store(store)
    memory.set("stripe", '{"api_key": "sk_live_stripe_0003"}')
    memory.set("port", "port-is-now-garbage-77")
    clock.advance(TTL + 1)
    with pytest.raises(ValidationError) as info:
        settings.refresh()
    assert_no_value_in_error(info.value, "port-is-now-garbage-77")
    assert settings.port == 8080
    assert settings.stripe_key.get_secret_value() == "sk_live_stripe_0001"


def test_a_secret_field_is_a_snapshot_with_metadata(store: SecretStore, memory: MemoryBackend) -> None:
    """A field typed secretkit.Secret receives the Secret itself, with its source and version."""

    class WithSecret(SecretkitSettings):
        token: Annotated[Secret[str], Ref("memory://api-token")]

    settings = WithSecret.from_store(store)
    assert settings.token.reveal() == "token-v1-aaaaaaaa"
    assert (settings.token.source, settings.token.version) == ("memory", "1")


# -- naming rules ----------------------------------------------------------------------------------


def test_names_are_matched_in_any_of_three_cases_unless_case_sensitive() -> None:
    """Case-insensitive lookups try the declared spelling, upper and lower case; case-sensitive ones, one."""
    env = {"APP_TOKEN": "upper-token-1111"}
    store = SecretStore([EnvBackend(env)], negative_ttl=0)

    class Insensitive(SecretkitSettings):
        model_config = SettingsConfigDict(env_prefix="app_")
        token: SecretStr

    class Sensitive(SecretkitSettings):
        model_config = SettingsConfigDict(env_prefix="app_", case_sensitive=True)
        token: SecretStr | None = None

    assert Insensitive.from_store(store).token.get_secret_value() == "upper-token-1111"
    assert Sensitive.from_store(store).token is None
    assert declared_secrets(Insensitive, store) == {"token": ("app_token", "APP_TOKEN")}


def test_aliases_are_looked_up_like_pydantic_settings_does() -> None:
    """validation_alias and AliasChoices name the secret; the prefix applies to field names only."""
    env = {"LEGACY_KEY": "legacy-key-2222", "SKT_PLAIN": "plain-2222"}
    store = SecretStore([EnvBackend(env)], negative_ttl=0)

    class Aliased(SecretkitSettings):
        model_config = SettingsConfigDict(env_prefix="SKT_")
        key: SecretStr = Field(validation_alias=AliasChoices("NEW_KEY", "LEGACY_KEY"))
        plain: str

    settings = Aliased.from_store(store)
    assert settings.key.get_secret_value() == "legacy-key-2222"
    assert settings.plain == "plain-2222"
    assert settings.secretkit_bindings() == {"key": "LEGACY_KEY", "plain": "SKT_PLAIN"}


def test_env_prefix_target_all_prefixes_aliases_too() -> None:
    """With env_prefix_target='all' an alias is looked up with the prefix, as pydantic-settings does."""
    env = {"SKT_ALIASED": "prefixed-alias-3333"}
    store = SecretStore([EnvBackend(env)], negative_ttl=0)

    class Prefixed(SecretkitSettings):
        model_config = SettingsConfigDict(env_prefix="SKT_", env_prefix_target="all")
        value: str = Field(validation_alias="ALIASED")

    assert Prefixed.from_store(store).value == "prefixed-alias-3333"


def test_a_reference_held_in_the_environment_is_followed(memory: MemoryBackend) -> None:
    """DB_PASSWORD=memory://db-password gives the field the password, not the reference."""
    store = SecretStore([EnvBackend({"DB_PASSWORD": "memory://db-password"})], reference_backends=[memory])

    class ByName(SecretkitSettings):
        db_password: SecretStr

    assert ByName.from_store(store).db_password.get_secret_value() == "db-password-v1"


def test_a_secret_ref_instance_works_as_a_marker(memory: MemoryBackend) -> None:
    """Annotated[..., SecretRef(...)] reads that secret, like Ref(...)."""
    store = SecretStore([], reference_backends=[memory])

    class Marked(SecretkitSettings):
        webhook: Annotated[SecretStr, SecretRef("memory", "stripe", field="webhook")]

    assert Marked.from_store(store).webhook.get_secret_value() == "whsec_0001"


def test_a_malformed_reference_fails_when_the_class_is_defined() -> None:
    """Ref() checks its reference at once, so a typo fails at import time rather than at startup."""
    with pytest.raises(InvalidReference):
        Ref("aws-sm://prod/db#")


@pytest.mark.parametrize(
    ("reference", "meant"),
    [
        ("aws-sn://prod/app/db#password", "aws-sm"),
        ("AWS-SM://prod/app/db#password", "aws-sm"),
        ("aws_sm://prod/app/db#password", "aws-sm"),
        ("aws-sm:/prod/app/db#password", "aws-sm"),
        ("Vualt://secret/app#token", "vault"),
    ],
)
def test_a_scheme_typed_wrong_in_ref_fails_at_class_definition_naming_the_scheme_meant(
    reference: str, meant: str
) -> None:
    """Ref() with a near-miss scheme fails when the class is defined, and says which scheme was meant."""
    with pytest.raises(InvalidReference) as info:

        class Typo(SecretkitSettings):
            db_password: Annotated[SecretStr, Ref(reference)]

    assert meant in str(info.value)


def test_an_unknown_option_in_ref_fails_at_class_definition() -> None:
    """Ref("aws-sm://...?stag=...") fails at definition, naming the option and the ones the backend takes."""
    with pytest.raises(InvalidReference) as info:
        Ref("aws-sm://prod/app/db#password?stag=AWSPREVIOUS")
    assert "'stag'" in str(info.value) and "stage" in str(info.value)
    Ref("aws-sm://prod/app/db#password?stage=AWSPREVIOUS")  # a known option passes


def test_a_secret_ref_marker_is_checked_when_the_class_is_defined() -> None:
    """A SecretRef marker with a near-miss scheme fails at class definition too, naming the field."""
    with pytest.raises(InvalidReference) as info:

        class Typo(SecretkitSettings):
            token: Annotated[SecretStr, SecretRef("vualt", "secret/app", "token")]

    assert "'token'" in str(info.value) and "vault" in str(info.value)


def test_empty_and_none_strings_follow_the_env_options() -> None:
    """env_ignore_empty skips an empty secret; env_parse_none_str turns a marker into None."""
    store = SecretStore([EnvBackend({"EMPTY": "", "NOTHING": "null"})], negative_ttl=0)

    class Options(SecretkitSettings):
        model_config = SettingsConfigDict(env_ignore_empty=True, env_parse_none_str="null")
        empty: str = "default"
        nothing: int | None = 5

    settings = Options.from_store(store)
    assert (settings.empty, settings.nothing) == ("default", None)


def test_optional_models_and_lists_are_decoded_from_json() -> None:
    """Optional models, lists and str-or-list unions validate from JSON secrets, plain text stays text."""
    env = {"DB": '{"host": "h", "port": 1}', "HOSTS": '["a", "b"]', "EITHER": "just-text"}
    store = SecretStore([EnvBackend(env)], negative_ttl=0)

    class Complex(SecretkitSettings):
        db: Database | None = None
        hosts: list[str]
        either: list[str] | str

    settings = Complex.from_store(store)
    assert settings.db == Database(host="h", port=1)
    assert settings.hosts == ["a", "b"]
    assert settings.either == "just-text"


def test_the_env_file_of_the_config_is_read_and_its_references_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory: MemoryBackend
) -> None:
    """A name missing from the store is looked up in model_config's env_file, following references there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prod.env").write_text("TOKEN=memory://api-token\nREGION=eu-west-1\n")
    store = SecretStore([EnvBackend({})], reference_backends=[memory], negative_ttl=0)

    class FromFile(SecretkitSettings):
        model_config = SettingsConfigDict(env_file="prod.env")
        token: SecretStr
        region: str

    settings = FromFile.from_store(store)
    assert settings.token.get_secret_value() == "token-v1-aaaaaaaa"
    assert settings.region == "eu-west-1"


# -- what is fetched ---------------------------------------------------------------------------------


def test_only_declared_fields_are_fetched() -> None:
    """The store is asked for the declared fields' names only, never for anything else it holds."""
    held = MemoryBackend({f"OTHER_{i}": f"other-{i}" for i in range(50)} | {"WANTED": "wanted-value"})
    store = SecretStore([held], negative_ttl=0)

    class Small(SecretkitSettings):
        wanted: SecretStr
        optional: str = "x"

    Small.from_store(store)
    asked = {ref.path for ref in held.fetched}
    assert asked == {"wanted", "WANTED", "optional", "OPTIONAL"}


def test_references_sharing_a_backend_are_fetched_in_one_batch() -> None:
    """Three references to one batching backend cost one fetch_many call and no single fetches."""
    batch = CountingBackend(
        BatchMemoryBackend({"a": "value-a-1", "b": "value-b-1", "c": '{"k": "value-c-1"}'})
    )
    store = SecretStore([], reference_backends=[batch])

    class Batched(SecretkitSettings):
        a: Annotated[SecretStr, Ref("memory://a")]
        b: Annotated[SecretStr, Ref("memory://b")]
        c: Annotated[SecretStr, Ref("memory://c#k")]

    settings = Batched.from_store(store)
    assert (batch.batch_calls, batch.fetch_calls) == (1, 0)
    assert settings.c.get_secret_value() == "value-c-1"


def test_fields_given_as_keywords_are_not_fetched(memory: MemoryBackend) -> None:
    """A field set by a higher-priority source (here the constructor) is never fetched."""
    counting = CountingBackend(memory)
    store = SecretStore([], reference_backends=[counting])

    class Pinned(SecretkitSettings):
        token: Annotated[SecretStr, Ref("memory://api-token")]

    assert Pinned.from_store(store, token="given-here").token.get_secret_value() == "given-here"
    assert counting.fetch_calls == 0


# -- order with other sources ------------------------------------------------------------------------


def _settings_with_order(order: str, store: SecretStore) -> type[BaseSettings]:
    class Ordered(BaseSettings):
        token: SecretStr

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            secretkit_settings = SecretkitSettingsSource(settings_cls, store)
            if order == "secretkit-first":
                return init_settings, secretkit_settings, env_settings
            return init_settings, env_settings, secretkit_settings

    return Ordered


def test_secretkit_before_the_env_source_wins_and_resolves_references(
    monkeypatch: pytest.MonkeyPatch, memory: MemoryBackend
) -> None:
    """Ordered first, secretkit gives the resolved value where the env source would give the reference."""
    monkeypatch.setenv("TOKEN", "memory://api-token")
    store = SecretStore([EnvBackend()], reference_backends=[memory])
    settings = _settings_with_order("secretkit-first", store)()
    assert settings.token.get_secret_value() == "token-v1-aaaaaaaa"  # type: ignore[attr-defined]


def test_the_env_source_before_secretkit_wins_and_secretkit_fetches_nothing(
    monkeypatch: pytest.MonkeyPatch, memory: MemoryBackend
) -> None:
    """Ordered after pydantic's env source, secretkit skips what that source already set."""
    monkeypatch.setenv("TOKEN", "from-plain-env")
    counting = CountingBackend(memory)
    store = SecretStore([counting])
    settings = _settings_with_order("env-first", store)()
    assert settings.token.get_secret_value() == "from-plain-env"  # type: ignore[attr-defined]
    assert counting.fetch_calls == 0


def test_a_subclass_can_put_pydantic_env_source_back(
    monkeypatch: pytest.MonkeyPatch, memory: MemoryBackend
) -> None:
    """A SecretkitSettings subclass may add pydantic's env source after secretkit (for nested variables)."""
    monkeypatch.setenv("NESTED__HOST", "nested-host")
    monkeypatch.setenv("NESTED__PORT", "6543")
    monkeypatch.setenv("TOKEN", "memory://api-token")
    store = SecretStore([EnvBackend()], reference_backends=[memory])

    class Mixed(SecretkitSettings):
        model_config = SettingsConfigDict(env_nested_delimiter="__")
        nested: Database
        token: LiveSecret[str]

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                cls.secretkit_source(settings_cls, env_settings, dotenv_settings),
                env_settings,
            )

    settings = Mixed.from_store(store)
    assert settings.nested == Database(host="nested-host", port=6543)
    assert settings.token.reveal() == "token-v1-aaaaaaaa"


def test_the_default_store_is_used_when_none_is_given(secretkit_memory: MemorySecrets) -> None:
    """Without a store argument, fields resolve through secretkit's default store."""
    secretkit_memory.set("API_TOKEN", "default-store-token")

    class Defaults(SecretkitSettings):
        api_token: LiveSecret[str]

    settings = Defaults()
    assert settings.api_token.reveal() == "default-store-token"
    secretkit_memory.set("API_TOKEN", "default-store-token-2")
    assert settings.api_token.reveal() == "default-store-token-2"


# -- failures ---------------------------------------------------------------------------------------


def test_an_unreachable_backend_raises_one_error_naming_the_field(memory: MemoryBackend) -> None:
    """A backend outage fails construction with an error that names the field and is a SettingsError."""
    memory.fail(ConnectionError("connection refused"))
    store = SecretStore([], reference_backends=[memory])

    class Needs(SecretkitSettings):
        db_password: Annotated[SecretStr, Ref("memory://db-password")]

    with pytest.raises(SecretkitSettingsError) as info:
        Needs.from_store(store)
    assert isinstance(info.value, SettingsError) and isinstance(info.value, SecretkitError)
    assert "db_password" in str(info.value) and "memory" in str(info.value)
    assert set(info.value.errors) == {"db_password"}
    assert_no_value_in_error(info.value, "db-password-v1")


def test_a_reference_to_an_unknown_scheme_fails_when_the_class_is_defined() -> None:
    """A Ref() to a scheme no backend serves fails at class definition, naming the scheme."""
    with pytest.raises(InvalidReference) as info:

        class Unknown(SecretkitSettings):
            token: Annotated[SecretStr, Ref("nosuchscheme://app/token")]

    assert "nosuchscheme" in str(info.value)


def test_frozen_settings_refuse_refresh(memory: MemoryBackend) -> None:
    """refresh() on frozen settings raises TypeError instead of mutating them."""
    store = SecretStore([], reference_backends=[memory])

    class Frozen(SecretkitSettings):
        model_config = SettingsConfigDict(frozen=True)
        token: Annotated[SecretStr, Ref("memory://api-token")]

    with pytest.raises(TypeError, match="frozen"):
        Frozen.from_store(store).refresh()


def test_declared_secrets_fetches_nothing(memory: MemoryBackend) -> None:
    """declared_secrets() lists what each field would read, for preflight checks, without fetching."""
    counting = CountingBackend(memory)
    store = SecretStore([counting], reference_backends=[counting])

    class Declared(SecretkitSettings):
        model_config = SettingsConfigDict(env_prefix="APP_", case_sensitive=True)
        api_key: SecretStr
        stripe: Annotated[SecretStr, Ref("memory://stripe#api_key")]

    assert declared_secrets(Declared, store) == {
        "api_key": ("APP_api_key",),
        "stripe": ("memory://stripe#api_key",),
    }
    assert counting.fetch_calls == 0


class Portable(SecretkitSettings):
    """At module level, so that pickle can find the class."""

    token: Annotated[SecretStr, Ref("memory://api-token")]


def test_pickled_settings_keep_their_values_but_not_the_store(memory: MemoryBackend) -> None:
    """Settings with SecretStr fields pickle (for worker processes); the copy's refresh() changes nothing."""
    store = SecretStore([], reference_backends=[memory])
    copy = pickle.loads(pickle.dumps(Portable.from_store(store)))  # noqa: S301 - our own bytes
    assert copy.token.get_secret_value() == "token-v1-aaaaaaaa"
    memory.set("api-token", "token-v2-bbbbbbbb")
    assert copy.refresh(force=True) == frozenset()


def test_settings_copy_and_deepcopy_share_the_store(store: SecretStore, app_env: None) -> None:
    """model_copy(deep=True) works (the store is shared, not cloned) and the copy can refresh."""
    settings = AppSettings.from_store(store)
    clone = settings.model_copy(deep=True)
    assert clone.secretkit_bindings() == settings.secretkit_bindings()
    assert clone.refresh() == frozenset()
