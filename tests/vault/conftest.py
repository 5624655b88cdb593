"""A real OpenBao dev server for the Vault backend tests, and helpers to set it up per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from secretkit.backends.vault import VaultBackend
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer
from servers.postgres_server import Postgres, postgres_or_skip
from servers.vault_env import (
    PROXY_SETTINGS,
    VAULT_SETTINGS,
    clear_env,
    fresh_home,
    reader_admin,
    vault_backends,
)


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """One OpenBao dev server for the session; tests use unique paths, so they never collide."""
    with OpenBaoServer() as server:
        yield server


@pytest.fixture(scope="session")
def vault(openbao: OpenBaoServer) -> OpenBaoAdmin:
    """The session server's root client and helpers; the ``reader`` policy exists."""
    return reader_admin(openbao)


@pytest.fixture(autouse=True)
def vault_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No settings of the machine leak in: no VAULT_* or proxy variables, a HOME with no ~/.vault-token."""
    clear_env(monkeypatch, VAULT_SETTINGS + PROXY_SETTINGS)
    return fresh_home(monkeypatch, tmp_path / "home")


@pytest.fixture
def make_backend(vault: OpenBaoAdmin) -> Iterator[Callable[..., VaultBackend]]:
    """Build VaultBackends for the session server (root token unless ``auth=``); all closed after the test."""
    with vault_backends(vault.server.root_token, url=vault.url) as make:
        yield make


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the session (skipped where no PostgreSQL server can be found)."""
    yield from postgres_or_skip()
