"""The secretkit_memory fixture as tests use it: references by scheme, settings that read nothing real."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

import secretkit
from secretkit import LiveSecret, SecretStore
from secretkit.backends.env import EnvBackend
from secretkit.pydantic import Ref, SecretkitSettings
from secretkit.testing import MemorySecrets


@pytest.fixture
def no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """AWS settings that fail at once if anything builds a real aws-sm backend and calls it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-used")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-used")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))


class AppSettings(SecretkitSettings):
    db_password: Annotated[SecretStr, Ref("aws-sm://prod/app/db#password")]
    db_port: Annotated[int, Ref("aws-sm://prod/app/db#port")]
    api_key: SecretStr
    region: str = "eu-west-1"


def test_a_reference_is_served_from_memory_by_its_scheme(
    secretkit_memory: MemorySecrets, no_real_aws: None
) -> None:
    """set("aws-sm://prod/app/db", {...}) serves Ref("aws-sm://...#field") fields; no AWS call is made."""
    secretkit_memory.set("aws-sm://prod/app/db", {"password": "pw-from-memory-0001", "port": 5432})
    secretkit_memory.set("API_KEY", "key-from-memory-0002")
    settings = AppSettings()
    assert settings.db_password.get_secret_value() == "pw-from-memory-0001"
    assert settings.db_port == 5432
    assert settings.api_key.get_secret_value() == "key-from-memory-0002"


def test_one_key_of_a_json_secret_can_be_set_and_rotated(
    secretkit_memory: MemorySecrets, no_real_aws: None
) -> None:
    """set("aws-sm://...#password", ...) sets that key and keeps the others; refresh() sees a rotation."""
    secretkit_memory.set("aws-sm://prod/app/db", {"password": "pw-0003", "port": 5432})
    secretkit_memory.set("aws-sm://prod/app/db#password", "pw-0004")
    secretkit_memory.set("API_KEY", "key-0005")
    settings = AppSettings()
    assert (settings.db_password.get_secret_value(), settings.db_port) == ("pw-0004", 5432)
    secretkit_memory["aws-sm://prod/app/db#password"] = "pw-0006"
    assert settings.refresh() == frozenset({"db_password"})
    assert settings.db_password.get_secret_value() == "pw-0006"


def test_a_variable_holding_a_reference_resolves_from_memory(
    secretkit_memory: MemorySecrets, no_real_aws: None
) -> None:
    """The fixture's stand-in environment may hold references, as a deployment's does."""
    secretkit_memory.set("vault://secret/app/stripe", {"key": "sk-from-memory-0007"})
    secretkit_memory.environ["STRIPE_KEY"] = "vault://secret/app/stripe#key"
    secretkit_memory.environ["PORT"] = "9000"

    class Settings(SecretkitSettings):
        stripe_key: SecretStr
        port: int

    settings = Settings()
    assert settings.stripe_key.get_secret_value() == "sk-from-memory-0007"
    assert settings.port == 9000


def test_the_stand_in_environment_is_the_environment_of_the_test(secretkit_memory: MemorySecrets) -> None:
    """getenv() and a LiveSecret field read the fixture's environ, live, as they read os.environ."""
    secretkit_memory.environ["SESSION_TOKEN"] = "token-v1-0014"

    class Settings(SecretkitSettings):
        session_token: LiveSecret[str]

    settings = Settings()
    assert secretkit.getenv("SESSION_TOKEN") == "token-v1-0014"
    assert settings.session_token.reveal() == "token-v1-0014"
    secretkit_memory.environ["SESSION_TOKEN"] = "token-v2-0015"
    assert settings.session_token.reveal() == "token-v2-0015"


def test_settings_read_nothing_from_the_real_environment(
    secretkit_memory: MemorySecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A developer's real API_KEY is not read: the field is missing unless the test sets it."""
    monkeypatch.setenv("API_KEY", "developers-real-key-0008")

    class Settings(SecretkitSettings):
        api_key: SecretStr

    with pytest.raises(ValidationError) as info:
        Settings()
    assert info.value.errors()[0]["type"] == "missing"
    assert "developers-real-key-0008" not in str(info.value)
    secretkit_memory.environ = {"API_KEY": "asked-for-0009"}  # a test may hand it an environment
    assert Settings().api_key.get_secret_value() == "asked-for-0009"


def test_settings_read_no_env_file_or_secrets_dir_unless_asked(
    secretkit_memory: MemorySecrets, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The config's .env file and secrets_dir are not read; _env_file= in the test reads one."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("API_KEY=developers-dotenv-key-0010\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "token").write_text("developers-file-token-0011")

    class Settings(SecretkitSettings):
        model_config = SettingsConfigDict(env_file=".env", secrets_dir=str(secrets))
        api_key: SecretStr | None = None
        token: SecretStr | None = None

    settings = Settings()
    assert settings.api_key is None and settings.token is None
    asked = Settings(_env_file=".env", _secrets_dir=str(secrets))
    assert asked.api_key is not None and asked.api_key.get_secret_value() == "developers-dotenv-key-0010"
    assert asked.token is not None and asked.token.get_secret_value() == "developers-file-token-0011"


def test_a_class_that_names_its_own_store_reads_the_fixtures(secretkit_memory: MemorySecrets) -> None:
    """A class with secretkit_store set reads the fixture's store; from_store(store) still reads that one."""
    real = SecretStore([EnvBackend({"API_KEY": "from-the-class-store-0012"})])

    class Settings(SecretkitSettings):
        secretkit_store = real
        api_key: SecretStr

    secretkit_memory.set("API_KEY", "from-the-fixture-0013")
    assert Settings().api_key.get_secret_value() == "from-the-fixture-0013"
    assert Settings.from_store(real).api_key.get_secret_value() == "from-the-class-store-0012"
    real.close()


def test_setting_an_unknown_scheme_names_the_scheme_meant(secretkit_memory: MemorySecrets) -> None:
    """set("aws-sn://...") is refused with the scheme it was meant to be, not stored where nothing reads."""
    with pytest.raises(Exception, match="aws-sm"):
        secretkit_memory.set("aws-sn://prod/app/db", "x")


FAILING_TESTS = """
    from pydantic import SecretStr
    from secretkit.pydantic import SecretkitSettings

    class Settings(SecretkitSettings):
        api_key: SecretStr

    def test_equal(secretkit_memory):
        secretkit_memory.set("API_KEY", "sk-live-0123456789abcdef-LEAK")
        assert Settings().api_key.get_secret_value() == "sk-live-0123456789abcdef-XXXX"

    def test_in_a_boolean_expression(secretkit_memory):
        secretkit_memory.set("API_KEY", "sk-live-0123456789abcdef-LEAK")
        value = Settings().api_key.get_secret_value()
        assert value.startswith("nope") or value == "other"
"""


def test_a_failing_assertion_on_a_secret_never_prints_it(tmp_path: Path) -> None:
    """pytest's report of a failing comparison with a secret shows a mask: no value, no diff of its tail."""
    (tmp_path / "test_app.py").write_text(textwrap.dedent(FAILING_TESTS))
    for flags in ([], ["-vv", "-l"]):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "test_app.py", "-p", "no:cacheprovider", *flags],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = result.stdout + result.stderr
        assert "2 failed" in output, output.splitlines()[-1:]
        for part in ("sk-live-0123456789abcdef-LEAK", "abcdef-LEAK", "LEAK'"):
            shown = part in output
            assert not shown, f"a part of the secret shows in pytest's report ({flags})"
