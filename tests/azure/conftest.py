"""Fixtures for the Azure Key Vault tests: one local vault per session, real SDK clients."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient

from secretkit.backends.azure import AzureKeyVaultBackend
from servers.azure_server import KeyVaultServer, StaticTokenCredential, free_port, write_secret


@pytest.fixture(scope="session")
def kv_server() -> Iterator[KeyVaultServer]:
    with KeyVaultServer(free_port()) as server:
        yield server


@pytest.fixture(scope="session")
def kv_writer(kv_server: KeyVaultServer) -> Iterator[SecretClient]:
    """A plain SDK client of the default test vault, for writing what the tests read."""
    client = SecretClient(kv_server.url, StaticTokenCredential(), **kv_server.client_options())
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kv_backend(kv_server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureKeyVaultBackend]:
    monkeypatch.delenv("AZURE_KEYVAULT_URL", raising=False)
    backend = AzureKeyVaultBackend(
        vault_url=kv_server.url, credential=StaticTokenCredential(), **kv_server.client_options()
    )
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def secret_name() -> str:
    """A Key Vault secret name no other test uses (the vault lives for the whole session)."""
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def kv_write(kv_writer: SecretClient) -> Callable[..., str]:
    """``kv_write(name, value, **set_secret_kwargs)`` stores a version and returns its id."""

    def put(name: str, value: str | bytes, **kwargs: Any) -> str:
        return write_secret(kv_writer, name, value, **kwargs)

    return put
