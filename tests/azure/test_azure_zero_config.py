"""Zero configuration: a store reads ``azure-kv://vault/name`` with nothing but an Azure host's environment.

The environment is an App Service one: a managed-identity endpoint (``IDENTITY_ENDPOINT``,
``IDENTITY_HEADER``) for ``DefaultAzureCredential``, and an HTTPS proxy (``HTTPS_PROXY``) through
which ``https://<vault>.vault.azure.net`` reaches the local vault, whose certificate is trusted
through ``REQUESTS_CA_BUNDLE``. Nothing in the test names a URL, a credential or a CA to secretkit.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from secretkit import SecretStore
from secretkit.backends.azure import AzureKeyVaultBackend
from servers.azure_server import RESOURCE, KeyVaultServer, LoopbackGateway, free_port

VAULT_HOST = "zeroconf-vault.vault.azure.net"

# Variables that would make DefaultAzureCredential pick another identity than the test's.
_FOREIGN = [
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_KEYVAULT_URL",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "HTTP_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
]


@pytest.fixture
def azure_host(kv_server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackGateway]:
    """The process environment of an App Service instance whose vault is the local one."""
    gateway = LoopbackGateway(kv_server.port, free_port()).start()
    for name in _FOREIGN:
        monkeypatch.delenv(name, raising=False)
    for name, value in gateway.environment(kv_server.ca_path).items():
        monkeypatch.setenv(name, value)
    try:
        yield gateway
    finally:
        gateway.stop()


def test_a_store_reads_a_vault_reference_with_no_configuration(
    azure_host: LoopbackGateway, kv_server: KeyVaultServer
) -> None:
    """``SecretStore()`` builds the backend itself, maps the vault name and the secret name, and reads."""
    kv_server.put("zero-config-db-password", "from-managed-identity", host=VAULT_HOST)
    with SecretStore([]) as store:
        secret = store.get("azure-kv://zeroconf-vault/zero_config_db_password")
        assert secret.reveal() == "from-managed-identity"
        assert secret.source == "azure-kv"
    assert azure_host.token_requests == [RESOURCE]
    assert VAULT_HOST in azure_host.tunnels


def test_the_default_vault_may_be_a_name_in_the_environment(
    azure_host: LoopbackGateway, kv_server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With $AZURE_KEYVAULT_URL holding a vault name, plain names resolve through a no-argument backend."""
    kv_server.put("zero-config-api-key", "plain-name-value", host=VAULT_HOST)
    monkeypatch.setenv("AZURE_KEYVAULT_URL", "zeroconf-vault")
    with SecretStore([AzureKeyVaultBackend()]) as store:
        assert store.get("ZERO_CONFIG_API_KEY").reveal() == "plain-name-value"
