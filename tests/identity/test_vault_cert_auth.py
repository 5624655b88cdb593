"""TLS certificate auth against OpenBao's ``cert`` method, with certificates made by trustme."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from identity.conftest import CertMount, app_secret, write_leaf
from secretkit import SecretStore
from secretkit.backends.vault import CertAuth, VaultBackend
from servers.openbao_server import OpenBaoAdmin

MakeBackend = Callable[..., VaultBackend]


def token_meta(admin: OpenBaoAdmin, backend: VaultBackend) -> dict[str, str]:
    """What Vault recorded about the certificate the backend's current token was issued for."""
    token = backend._client.token
    return dict(admin.root.auth.token.lookup(token)["data"]["meta"])


def test_a_client_certificate_logs_in_and_reads(
    tls_bao: OpenBaoAdmin, cert_mount: CertMount, backends: MakeBackend, tmp_path: Path
) -> None:
    """A certificate from a CA the role trusts logs in over TLS, and its token reads what the role allows."""
    ca = trustme.CA()
    cert_mount.trust("web", ca)
    cert, key = write_leaf(ca, tmp_path, "app-1")
    reference = app_secret(tls_bao, "cert-value")
    backend = backends(
        url=tls_bao.url,
        verify=tls_bao.server.ca_cert,
        auth=CertAuth(cert, key, role="web", mount=cert_mount.mount),
    )
    with SecretStore([backend]) as store:
        assert store.get(reference).reveal() == "cert-value"
    status = backend.token_status()
    assert (status.method, status.logins) == ("cert", 1)
    assert token_meta(tls_bao, backend)["common_name"] == "app-1"


def test_a_rotated_certificate_is_presented_at_the_next_login(
    tls_bao: OpenBaoAdmin, cert_mount: CertMount, backends: MakeBackend, tmp_path: Path
) -> None:
    """When the files are replaced by a certificate from a new CA (the old CA no longer trusted),
    the next read logs in with the new one: the backend does not keep the certificate it loaded."""
    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert_mount.trust("web", old_ca)
    cert, key = write_leaf(old_ca, tmp_path, "app-old")
    reference = app_secret(tls_bao, "rotated-cert-value")
    backend = backends(
        url=tls_bao.url,
        verify=tls_bao.server.ca_cert,
        auth=CertAuth(cert, key, role="web", mount=cert_mount.mount),
    )
    assert backend.fetch(_ref(reference)).value == "rotated-cert-value"
    assert token_meta(tls_bao, backend)["common_name"] == "app-old"

    # The rotation: the role now trusts only the new CA, and the files hold its certificate.
    cert_mount.trust("web", new_ca)
    write_leaf(new_ca, tmp_path, "app-new")
    _wait_for_relogin(backend, reference, logins=2)
    assert token_meta(tls_bao, backend)["common_name"] == "app-new"


def test_revoking_the_token_logs_in_again_with_the_certificate(
    tls_bao: OpenBaoAdmin, cert_mount: CertMount, backends: MakeBackend, tmp_path: Path
) -> None:
    """A certificate is a credential that logs in again by itself: a revoked token is replaced."""
    ca = trustme.CA()
    cert_mount.trust("web", ca)
    cert, key = write_leaf(ca, tmp_path, "app-1")
    reference = _ref(app_secret(tls_bao, "relogin-cert-value"))
    backend = backends(
        url=tls_bao.url,
        verify=tls_bao.server.ca_cert,
        auth=CertAuth(cert, key, role="web", mount=cert_mount.mount),
    )
    assert backend.fetch(reference).value == "relogin-cert-value"
    tls_bao.revoke_logins(cert_mount.mount)
    assert backend.fetch(reference).value == "relogin-cert-value"
    assert backend.token_status().logins == 2


def test_cert_auth_from_the_environment(
    tls_bao: OpenBaoAdmin, cert_mount: CertMount, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """VAULT_AUTH_METHOD=cert with the vault CLI's VAULT_CLIENT_CERT / VAULT_CLIENT_KEY logs in, no code."""
    ca = trustme.CA()
    cert_mount.trust("web", ca)
    cert, key = write_leaf(ca, tmp_path, "app-env")
    reference = app_secret(tls_bao, "env-cert-value")
    for name, value in {
        "VAULT_ADDR": tls_bao.url,
        "VAULT_CACERT": str(tls_bao.server.ca_cert),
        "VAULT_AUTH_METHOD": "cert",
        "VAULT_AUTH_MOUNT": cert_mount.mount,
        "VAULT_AUTH_ROLE": "web",
        "VAULT_CLIENT_CERT": str(cert),
        "VAULT_CLIENT_KEY": str(key),
    }.items():
        monkeypatch.setenv(name, value)
    with SecretStore() as store:
        assert store.get(reference).reveal() == "env-cert-value"


def _ref(reference: str) -> object:
    from secretkit import SecretRef

    path, _, key = reference.removeprefix("vault://").partition("#")
    return SecretRef("vault", path, options={"key": key})


def _wait_for_relogin(backend: VaultBackend, reference: str, *, logins: int) -> None:
    """Read until the backend has logged in ``logins`` times (it looks at the files once a second)."""
    import time

    deadline = time.monotonic() + 15
    while backend.token_status().logins < logins:
        assert time.monotonic() < deadline, "the changed certificate never caused a login"
        assert backend.fetch(_ref(reference)).value  # type: ignore[arg-type]
        time.sleep(0.2)
