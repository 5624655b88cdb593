"""A backend's error names the setting it fell back on, so the app says what only doctor used to.

With ``VAULT_ADDR`` unset the Vault backend tries the vault CLI's default address; with no
``AWS_ENDPOINT_URL`` boto3 calls AWS's own endpoint; a short GCP reference takes the backend's
project; a short Azure reference the default vault. When that was not what the user meant,
the error is the only thing they see: it says which setting was not given and what was used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from secretkit import BackendUnavailable, SecretkitError, SecretNotFound, SecretStore
from servers.aws_env import use_test_aws_env
from servers.moto_server import REGION, MotoServer, free_port
from servers.openbao_server import OpenBaoServer

# -- Vault / OpenBao ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBaoServer]:
    with OpenBaoServer() as server:
        yield server


@pytest.fixture
def vault_env(monkeypatch: pytest.MonkeyPatch, bao: OpenBaoServer) -> None:
    for name in ("VAULT_ADDR", "VAULT_AGENT_ADDR", "VAULT_AUTH_METHOD", "VAULT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)


def test_vault_addr_unset_is_named_in_the_error(vault_env, bao) -> None:
    """OpenBao runs, not at the default address: the error says VAULT_ADDR is not set and what was tried."""
    bao.client().secrets.kv.v2.create_or_update_secret("app/defaults", secret={"k": "defaults-value-1"})
    with pytest.raises(SecretkitError) as info:
        SecretStore(deadline=10).get("vault://secret/app/defaults#k")
    message = str(info.value)
    assert "VAULT_ADDR is not set" in message, message
    assert "https://127.0.0.1:8200" in message, message


def test_vault_addr_set_says_nothing_about_defaults(vault_env, bao, monkeypatch) -> None:
    """The note is about a fallback: with VAULT_ADDR set, the same failure does not claim it is unset."""
    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BackendUnavailable) as info:
        SecretStore(deadline=10).get("vault://secret/app/defaults#k")
    assert "not set" not in str(info.value)
    monkeypatch.setenv("VAULT_ADDR", bao.url)  # and the address it names is what is used
    bao.client().secrets.kv.v2.create_or_update_secret("app/defaults", secret={"k": "defaults-value-1"})
    assert SecretStore().get("vault://secret/app/defaults#k").reveal() == "defaults-value-1"


# -- AWS ------------------------------------------------------------------------------------


@pytest.fixture
def aws_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """moto's test credentials and region, and a proxy that refuses: AWS itself is never contacted."""
    use_test_aws_env(monkeypatch, tmp_path)
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTPS_PROXY", closed)
    monkeypatch.setenv("https_proxy", closed)


@pytest.mark.parametrize("scheme, host", [("aws-sm", "secretsmanager"), ("aws-ssm", "ssm")])
def test_aws_endpoint_unset_is_named_in_the_error(aws_offline, scheme, host) -> None:
    """No AWS_ENDPOINT_URL (moto forgotten): the error names AWS's endpoint and the region's variable."""
    with pytest.raises(BackendUnavailable) as info:
        SecretStore().get(f"{scheme}://prod/app/defaults")
    message = str(info.value)
    assert "AWS_ENDPOINT_URL is not set" in message, message
    assert f"https://{host}.{REGION}.amazonaws.com" in message, message
    assert "from AWS_DEFAULT_REGION" in message, message


def test_aws_region_from_aws_region_is_named(aws_offline, monkeypatch) -> None:
    """secretkit falls back on AWS_REGION when boto3's AWS_DEFAULT_REGION is unset: the error says which."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    with pytest.raises(BackendUnavailable) as info:
        SecretStore().get("aws-sm://prod/app/defaults")
    assert "eu-central-1, from AWS_REGION" in str(info.value), str(info.value)


def test_an_endpoint_someone_chose_is_not_called_a_default(monkeypatch, tmp_path) -> None:
    """With AWS_ENDPOINT_URL at moto, a not-found says nothing about defaults."""
    use_test_aws_env(monkeypatch, tmp_path)
    with MotoServer() as moto:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
        with pytest.raises(SecretNotFound) as info:
            SecretStore().get("aws-sm://prod/app/defaults")
    assert "not set" not in str(info.value)


# -- GCP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcp() -> Iterator[object]:
    from servers.gcp_server import GcpSecretManagerServer

    server = GcpSecretManagerServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_gcp_project_from_the_environment_is_named(gcp, monkeypatch) -> None:
    """A short reference takes the backend's project: a not-found says it came from GOOGLE_CLOUD_PROJECT."""
    from secretkit.backends.gcp import GcpSecretManagerBackend

    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "defaults-project")
    store = SecretStore([GcpSecretManagerBackend(endpoint=f"http://{gcp.address}")])
    with pytest.raises(SecretNotFound) as info:
        store.get("gcp-sm://no-such-secret")
    assert "defaults-project from GOOGLE_CLOUD_PROJECT" in str(info.value), str(info.value)
    with pytest.raises(SecretNotFound) as named:
        store.get("gcp-sm://defaults-project/no-such-secret")
    assert "GOOGLE_CLOUD_PROJECT" not in str(named.value)  # the reference named its project


# -- Azure ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_vault() -> Iterator[object]:
    from servers.azure_server import KeyVaultServer
    from servers.azure_server import free_port as azure_port

    server = KeyVaultServer(azure_port()).start()
    try:
        yield server
    finally:
        server.close()


def test_azure_default_vault_is_named_with_its_variable(key_vault, monkeypatch) -> None:
    """A reference that names no vault uses AZURE_KEYVAULT_URL's: a not-found says so."""
    from secretkit.backends.azure import AzureKeyVaultBackend
    from servers.azure_server import StaticTokenCredential

    monkeypatch.setenv("AZURE_KEYVAULT_URL", key_vault.url)
    backend = AzureKeyVaultBackend(credential=StaticTokenCredential(), **key_vault.client_options())
    with pytest.raises(SecretNotFound) as info:
        SecretStore([backend]).get("azure-kv://no-such-secret")
    assert "the default vault, from AZURE_KEYVAULT_URL" in str(info.value), str(info.value)
