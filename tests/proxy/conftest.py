"""An OpenBao dev server behind a request tap, and OpenBao Proxies in front of it, for the Proxy tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.openbao_proxy import RequestTap
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer
from servers.postgres_server import Postgres, postgres_or_skip
from servers.vault_env import PROXY_SETTINGS, VAULT_SETTINGS, clear_env, fresh_home

#: Variables the Proxy mode reads besides the Vault client's own.
AGENT_SETTINGS = (
    "VAULT_AGENT_ADDR",
    "BAO_AGENT_ADDR",
    "VAULT_AUTH_METHOD",
    "VAULT_AUTH_MOUNT",
    "VAULT_TOKEN_FILE",
)


@pytest.fixture(scope="module")
def openbao() -> Iterator[OpenBaoServer]:
    """A server of the module's own: what reaches it is counted per test, on mounts of the test's own."""
    with OpenBaoServer() as server:
        yield server


@pytest.fixture(scope="module")
def tap(openbao: OpenBaoServer) -> Iterator[RequestTap]:
    """Every request that reaches the server (from a Proxy or an application) passes it and is counted."""
    with RequestTap(openbao.url) as running:
        yield running


@pytest.fixture(scope="module")
def admin(openbao: OpenBaoServer) -> OpenBaoAdmin:
    return OpenBaoAdmin(openbao)


@pytest.fixture(autouse=True)
def vault_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Vault, agent or proxy variables of the machine, and a HOME with no ~/.vault-token."""
    clear_env(monkeypatch, VAULT_SETTINGS + AGENT_SETTINGS + PROXY_SETTINGS)
    return fresh_home(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server (skipped where none can be found), for a dynamic database credential."""
    yield from postgres_or_skip()
