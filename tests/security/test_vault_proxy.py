"""Behind an OpenBao Proxy the application holds no token, and a token lying around is not sent.

A real dev server and a real ``bao proxy`` (AppRole auto-auth, ``use_auto_auth_token``). The
attack: a developer's ``~/.vault-token`` (root, from ``vault login``) on a host whose
deployment names a proxy with ``VAULT_AGENT_ADDR``. Sent, it would widen every process to root
and take its leases out of the proxy's shared cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from secretkit import AccessDenied, SecretStore
from servers.openbao_proxy import OpenBaoProxy
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer
from servers.vault_env import PROXY_SETTINGS, VAULT_SETTINGS, clear_env, fresh_home

pytestmark = pytest.mark.slow

_APP_POLICY = 'path "secret/data/app/*" { capabilities = ["read"] }'


@pytest.fixture(scope="module")
def proxied() -> Iterator[tuple[OpenBaoAdmin, OpenBaoProxy]]:
    """A server with ``app/`` (the proxy's role may read it) and ``ops/`` (only root may), and its proxy."""
    with OpenBaoServer() as server:
        admin = OpenBaoAdmin(server)
        admin.root.sys.create_or_update_policy("app-reader", _APP_POLICY)
        admin.put("app/config", {"k": "app-value-1"})
        admin.put("ops/root-only", {"k": "ops-value-1"})
        mount, role_id, secret_id = admin.approle(["app-reader"])
        with OpenBaoProxy(server.url, mount, role_id, secret_id) as proxy:
            yield admin, proxy


@pytest.fixture
def agent_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, proxied: tuple[OpenBaoAdmin, OpenBaoProxy]
) -> Path:
    """VAULT_AGENT_ADDR at the proxy, no VAULT_TOKEN, and a root token in ~/.vault-token."""
    clear_env(monkeypatch, (*VAULT_SETTINGS, *PROXY_SETTINGS, "VAULT_AGENT_ADDR", "VAULT_AUTH_METHOD"))
    home = fresh_home(monkeypatch, tmp_path / "home")
    (home / ".vault-token").write_text(proxied[0].server.root_token)
    monkeypatch.setenv("VAULT_AGENT_ADDR", proxied[1].url)
    return home


def test_a_token_file_in_home_is_not_sent_to_the_proxy(agent_host: Path) -> None:
    """The proxy's role reads app/; ops/, which only the root token in ~/.vault-token reads, is refused."""
    store = SecretStore(backends=[])
    try:
        assert store.get("vault://secret/app/config#k").reveal() == "app-value-1"
        with pytest.raises(AccessDenied) as info:
            store.get("vault://secret/ops/root-only#k")
    finally:
        store.close()
    message = str(info.value)
    assert "ops-value-1" not in message
    assert "Proxy" in message, "the refusal says the request went through the proxy, whose role to check"
