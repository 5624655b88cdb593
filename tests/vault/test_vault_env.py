"""The backend takes its settings from the environment the vault CLI reads: TLS and namespaces."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import hvac
import pytest

from secretkit import BackendUnavailable, SecretRef, SecretStore
from secretkit.backends.vault import TokenAuth, VaultBackend
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer, free_port_pair


@pytest.fixture(scope="module")
def tls_openbao() -> Iterator[OpenBaoServer]:
    """An OpenBao dev server over TLS, with a CA of its own."""
    with OpenBaoServer(tls=True) as server:
        OpenBaoAdmin(server).put("app/tls", {"key": "over-tls"})
        yield server


def test_vault_cacert_verifies_a_tls_server(
    tls_openbao: OpenBaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With VAULT_CACERT naming the server's CA, an https VAULT_ADDR is read with verification on."""
    assert tls_openbao.ca_cert is not None
    monkeypatch.setenv("VAULT_ADDR", tls_openbao.url)
    monkeypatch.setenv("VAULT_TOKEN", tls_openbao.root_token)
    monkeypatch.setenv("VAULT_CACERT", tls_openbao.ca_cert)
    with SecretStore([VaultBackend()]) as store:
        assert store.get("vault://secret/app/tls#key").reveal() == "over-tls"


def test_an_unknown_ca_is_backend_unavailable(
    tls_openbao: OpenBaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the CA, the server's certificate is not trusted: the read fails as BackendUnavailable."""
    monkeypatch.setenv("VAULT_ADDR", tls_openbao.url)
    monkeypatch.setenv("VAULT_TOKEN", tls_openbao.root_token)
    backend = VaultBackend()
    try:
        with pytest.raises(BackendUnavailable):
            backend.fetch(SecretRef.parse("vault://secret/app/tls?key=key"))
    finally:
        backend.close()


def test_vault_skip_verify_reads_without_verification(
    tls_openbao: OpenBaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VAULT_SKIP_VERIFY=true turns certificate verification off, as it does for the vault CLI."""
    monkeypatch.setenv("VAULT_ADDR", tls_openbao.url)
    monkeypatch.setenv("VAULT_TOKEN", tls_openbao.root_token)
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "true")
    backend = VaultBackend()
    try:
        # urllib3 warns on every unverified request; that warning is the point here, not an error.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            assert backend.fetch(SecretRef.parse("vault://secret/app/tls?key=key")).value == "over-tls"
    finally:
        backend.close()


def test_vault_namespace_selects_the_namespace(vault: OpenBaoAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    """VAULT_NAMESPACE sends every request, the mount lookup included, to that namespace."""
    namespace = vault.unique("team")
    vault.root.write_data(f"sys/namespaces/{namespace}", data={})
    admin = hvac.Client(url=vault.url, token=vault.server.root_token, namespace=namespace)
    admin.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    admin.secrets.kv.v2.create_or_update_secret(path="app/ns", secret={"key": "in-the-namespace"})
    vault.put("app/ns", {"key": "in-the-root-namespace"})
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    monkeypatch.setenv("VAULT_TOKEN", vault.server.root_token)
    monkeypatch.setenv("VAULT_NAMESPACE", namespace)
    with SecretStore([VaultBackend()]) as store:
        assert store.get("vault://secret/app/ns#key").reveal() == "in-the-namespace"
    with SecretStore([VaultBackend(namespace="")]) as store:
        assert store.get("vault://secret/app/ns#key").reveal() == "in-the-root-namespace"


def test_proxy_variables_are_honoured(vault: OpenBaoAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY routes requests through a proxy (here: nothing listening); NO_PROXY exempts the host."""
    path = vault.unique("app/proxy")
    vault.put(path, {"key": "proxied"})
    ref = SecretRef.parse(f"vault://secret/{path}?key=key")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port_pair()}")
    through_proxy = VaultBackend(url=vault.url, auth=TokenAuth(vault.server.root_token))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    exempt = VaultBackend(url=vault.url, auth=TokenAuth(vault.server.root_token))
    try:
        with pytest.raises(BackendUnavailable):
            through_proxy.fetch(ref)
        assert exempt.fetch(ref).value == "proxied"
    finally:
        through_proxy.close()
        exempt.close()
