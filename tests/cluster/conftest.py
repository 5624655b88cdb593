"""A real three-node OpenBao cluster for the session, and Vault backends that know all its nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from secretkit.backends.vault import TokenAuth, VaultBackend
from servers.openbao_cluster import OpenBaoCluster

#: What the applications of these tests read: the KV v2 data under secret/app/.
READER_POLICY = 'path "secret/data/app/*" { capabilities = ["read"] }'


@pytest.fixture(scope="session")
def cluster() -> Iterator[OpenBaoCluster]:
    """Three raft nodes, all voters; a test that stops nodes starts them again before it ends."""
    with OpenBaoCluster() as running:
        running.admin("PUT", "/v1/sys/policies/acl/reader", {"policy": READER_POLICY})
        yield running


@pytest.fixture(autouse=True)
def whole_cluster(cluster: OpenBaoCluster) -> Iterator[None]:
    """Every node runs and votes when a test starts, whatever the test before it stopped."""
    for node in cluster.nodes:
        if not node.running:
            cluster.start_node(node)
    cluster.healthy()
    yield


@pytest.fixture(autouse=True)
def no_vault_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_AGENT_ADDR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def make_backend(cluster: OpenBaoCluster) -> Iterator[Callable[..., VaultBackend]]:
    """VaultBackends given every node of the cluster (root token unless ``auth=``); closed after the test."""
    made: list[VaultBackend] = []

    def make(**kwargs: Any) -> VaultBackend:
        kwargs.setdefault("addresses", cluster.urls)
        kwargs.setdefault("auth", TokenAuth(cluster.root_token))
        backend = VaultBackend(**kwargs)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
