"""One local Secret Manager for the session, and the real SDK client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.cloud.secretmanager_v1 import SecretManagerServiceClient

from secretkit.backends.gcp import GcpSecretManagerBackend
from servers.gcp_server import GcpSecretManagerServer, make_client

PROJECT = "test-project"


@pytest.fixture(scope="session")
def gcp_server() -> Iterator[GcpSecretManagerServer]:
    with GcpSecretManagerServer() as server:
        yield server


@pytest.fixture(scope="session")
def gcp_client(gcp_server: GcpSecretManagerServer) -> Iterator[SecretManagerServiceClient]:
    client = make_client(gcp_server.address)
    try:
        yield client
    finally:
        client.transport.close()


@pytest.fixture
def gcp_backend(gcp_client: SecretManagerServiceClient) -> GcpSecretManagerBackend:
    """A backend over the shared client, with ``test-project`` as its default project."""
    return GcpSecretManagerBackend(project=PROJECT, client=gcp_client)


@pytest.fixture
def private_server() -> Iterator[GcpSecretManagerServer]:
    """A server of its own, for tests that stop it or change how it authenticates."""
    with GcpSecretManagerServer() as server:
        yield server
