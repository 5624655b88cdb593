"""A real three-node OpenBao cluster for the session, and Vault backends that know all its nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from secretkit.backends.vault import VaultBackend
from servers.openbao_cluster import OpenBaoCluster
from servers.postgres_server import Postgres, postgres_or_skip
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


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server (skipped where none can be found), for leased database credentials."""
    yield from postgres_or_skip()


@pytest.fixture(scope="session")
def database(cluster: OpenBaoCluster, postgres: Postgres) -> str:
    """The database engine at ``database/`` on the cluster: role ``app`` issues users with 20 s
    leases, renewable for an hour; policy ``db-reader`` may read them.

    A lease shorter than an election (up to 5 s on a loaded machine) would run out while no
    node can renew it, and the next read would rightly get a new user."""
    mount = cluster.database_mount("database", postgres.port, {"app": ("20s", "1h")})
    cluster.admin(
        "PUT",
        "/v1/sys/policies/acl/db-reader",
        {"policy": f'path "{mount}/creds/app" {{ capabilities = ["read"] }}'},
    )
    return mount
