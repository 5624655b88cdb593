"""A real three-node OpenBao cluster for the session, and Vault backends that know all its nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from secretkit.backends.vault import VaultBackend
from servers.openbao_cluster import OpenBaoCluster
from servers.vault_env import PROXY_SETTINGS, READER_POLICY, VAULT_SETTINGS, clear_env, vault_backends


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
    clear_env(monkeypatch, (*VAULT_SETTINGS, "VAULT_AGENT_ADDR", *PROXY_SETTINGS))


@pytest.fixture
def make_backend(cluster: OpenBaoCluster) -> Iterator[Callable[..., VaultBackend]]:
    """VaultBackends given every node of the cluster (root token unless ``auth=``); closed after the test."""
    with vault_backends(cluster.root_token, addresses=cluster.urls) as make:
        yield make
