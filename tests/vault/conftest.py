"""A real OpenBao dev server for the Vault backend tests, and helpers to set it up per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from secretkit.backends.vault import TokenAuth, VaultBackend
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer
from servers.postgres_server import Postgres, postgres_or_skip

#: What an application reading secret/app/... needs: read on the KV v2 data path. The
#: mount lookup (sys/internal/ui/mounts) needs no grant of its own.
READER_POLICY = 'path "secret/data/app/*" { capabilities = ["read"] }'


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """One OpenBao dev server for the session; tests use unique paths, so they never collide."""
    with OpenBaoServer() as server:
        yield server


@pytest.fixture(scope="session")
def vault(openbao: OpenBaoServer) -> OpenBaoAdmin:
    """The session server's root client and helpers; the ``reader`` policy exists."""
    admin = OpenBaoAdmin(openbao)
    admin.root.sys.create_or_update_policy("reader", READER_POLICY)
    return admin


@pytest.fixture(autouse=True)
def vault_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No settings of the machine leak in: no VAULT_* or proxy variables, a HOME with no ~/.vault-token."""
    for name in (
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "VAULT_NAMESPACE",
        "VAULT_CACERT",
        "VAULT_CAPATH",
        "VAULT_SKIP_VERIFY",
        "VAULT_CLIENT_CERT",
        "VAULT_CLIENT_KEY",
        "VAULT_PROXY_ADDR",
        "VAULT_HTTP_PROXY",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def make_backend(vault: OpenBaoAdmin) -> Iterator[Callable[..., VaultBackend]]:
    """Build VaultBackends for the session server (root token unless ``auth=``); all closed after the test."""
    made: list[VaultBackend] = []

    def make(**kwargs: Any) -> VaultBackend:
        kwargs.setdefault("url", vault.url)
        kwargs.setdefault("auth", TokenAuth(vault.server.root_token))
        backend = VaultBackend(**kwargs)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the session (skipped where no PostgreSQL server can be found)."""
    yield from postgres_or_skip()
