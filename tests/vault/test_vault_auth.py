"""Auth methods and the token's life: lazy login, renewal, re-login, denial, against a real OpenBao."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from secretkit import AccessDenied, ConfigurationError, SecretRef, SecretStore
from secretkit.backends.vault import AppRoleAuth, JwtAuth, KubernetesAuth, TokenAuth, VaultBackend
from secretkit.testing import assert_no_value_in_error
from servers.openbao_server import OpenBaoAdmin

MakeBackend = Callable[..., VaultBackend]
RENEWER = "secretkit-vault-renew"


def app_secret(vault: OpenBaoAdmin, value: str) -> SecretRef:
    """A new secret under secret/app/ (readable with the reader policy), as a ?key=value reference."""
    path = vault.unique("app/auth")
    vault.put(path, {"value": value})
    return SecretRef("vault", f"secret/{path}", options={"key": "value"})


def approle_auth(vault: OpenBaoAdmin, **role: Any) -> AppRoleAuth:
    mount, role_id, secret_id = vault.approle(["reader"], **role)
    return AppRoleAuth(role_id, secret_id=secret_id, mount=mount)


def read_for(backend: VaultBackend, ref: SecretRef, seconds: float) -> list[str | bytes]:
    """Read ``ref`` every 0.2 s for ``seconds`` (real time: the token's TTL is real)."""
    values = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(backend.fetch(ref).value)
        time.sleep(0.2)
    return values


# -- AppRole -------------------------------------------------------------------------------


def test_approle_login_reads_a_secret(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """An AppRole role_id and secret_id log in, and the token reads what the role's policy allows."""
    ref = app_secret(vault, "approle-value")
    backend = make_backend(auth=approle_auth(vault))
    assert backend.fetch(ref).value == "approle-value"
    status = backend.token_status()
    assert (status.method, status.logged_in, status.logins) == ("approle", True, 1)


def test_approle_secret_id_file_is_read(
    vault: OpenBaoAdmin, make_backend: MakeBackend, tmp_path: Path
) -> None:
    """secret_id_file= reads the secret id from a file (as a deployment tool drops it)."""
    mount, role_id, secret_id = vault.approle(["reader"])
    (tmp_path / "secret-id").write_text(secret_id + "\n")
    ref = app_secret(vault, "from-file-secret-id")
    backend = make_backend(auth=AppRoleAuth(role_id, secret_id_file=tmp_path / "secret-id", mount=mount))
    assert backend.fetch(ref).value == "from-file-secret-id"


def test_login_is_lazy_and_happens_once_for_concurrent_readers(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """Building the backend does not log in; sixteen threads reading at once cause one login."""
    refs = [app_secret(vault, f"value-{i}") for i in range(16)]
    backend = make_backend(auth=approle_auth(vault))
    assert not backend.token_status().logged_in
    barrier = threading.Barrier(16)
    results: dict[int, str | bytes] = {}

    def read(i: int) -> None:
        barrier.wait()
        results[i] = backend.fetch(refs[i]).value

    threads = [threading.Thread(target=read, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {i: f"value-{i}" for i in range(16)}
    assert backend.token_status().logins == 1


def test_wrong_approle_credentials_are_access_denied(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """A rejected login raises AccessDenied naming the method, and never shows the secret id."""
    mount, role_id, _ = vault.approle(["reader"])
    wrong = "5ee0a7a1-0000-4000-8000-not-the-secret"
    backend = make_backend(auth=AppRoleAuth(role_id, secret_id=wrong, mount=mount))
    with pytest.raises(AccessDenied, match="AppRoleAuth") as info:
        backend.fetch(app_secret(vault, "unreachable"))
    assert_no_value_in_error(info.value, wrong, role_id)


# -- JWT -------------------------------------------------------------------------------------


class JwtIssuer:
    """An RSA key pair made by the test, and JWTs signed with it."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, subject: str = "ci-job", audience: str = "vault-tests", lifetime: int = 600) -> str:
        now = int(time.time())
        claims = {
            "iss": "secretkit-tests",
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
        }
        return pyjwt.encode(claims, self.key, algorithm="RS256")


@pytest.fixture(scope="module")
def jwt_mount(vault: OpenBaoAdmin) -> tuple[str, JwtIssuer]:
    """A JWT auth mount that trusts the test's own public key, with a role ``ci`` bound to an audience."""
    issuer = JwtIssuer()
    mount = vault.unique("jwt")
    vault.root.sys.enable_auth_method("jwt", path=mount)
    vault.root.auth.jwt.configure(
        jwt_validation_pubkeys=[issuer.public_pem], bound_issuer="secretkit-tests", path=mount
    )
    vault.root.auth.jwt.create_role(
        "ci",
        role_type="jwt",
        user_claim="sub",
        bound_audiences=["vault-tests"],
        token_policies=["reader"],
        token_ttl="1h",
        allowed_redirect_uris=[],
        path=mount,
    )
    return mount, issuer


def test_jwt_login_with_a_key_pair_the_test_made(
    vault: OpenBaoAdmin, make_backend: MakeBackend, jwt_mount: tuple[str, JwtIssuer]
) -> None:
    """A JWT signed by a key whose public half Vault trusts logs in to the role and reads."""
    mount, issuer = jwt_mount
    ref = app_secret(vault, "jwt-value")
    backend = make_backend(auth=JwtAuth("ci", jwt=issuer.sign(), mount=mount))
    assert backend.fetch(ref).value == "jwt-value"
    assert backend.token_status().method == "jwt"


def test_jwt_from_an_untrusted_key_is_access_denied(
    vault: OpenBaoAdmin, make_backend: MakeBackend, jwt_mount: tuple[str, JwtIssuer]
) -> None:
    """A JWT signed by another key is refused: AccessDenied, without the JWT in the message."""
    mount, _ = jwt_mount
    forged = JwtIssuer().sign()
    backend = make_backend(auth=JwtAuth("ci", jwt=forged, mount=mount))
    with pytest.raises(AccessDenied) as info:
        backend.fetch(app_secret(vault, "unreachable"))
    assert_no_value_in_error(info.value, forged)


def test_jwt_file_is_read_again_at_each_login(
    vault: OpenBaoAdmin, make_backend: MakeBackend, jwt_mount: tuple[str, JwtIssuer], tmp_path: Path
) -> None:
    """jwt_file= is re-read when the backend logs in again, so a platform's rotated token is used."""
    mount, issuer = jwt_mount
    jwt_file = tmp_path / "token"
    jwt_file.write_text(issuer.sign())
    ref = app_secret(vault, "jwt-file-value")
    backend = make_backend(auth=JwtAuth("ci", jwt_file=jwt_file, mount=mount))
    assert backend.fetch(ref).value == "jwt-file-value"
    # The platform rotates the token on disk; the backend's Vault token is then revoked.
    jwt_file.write_text(issuer.sign(subject="ci-job-2"))
    vault.revoke_logins(mount)
    assert backend.fetch(ref).value == "jwt-file-value"
    assert backend.token_status().logins == 2


# -- Kubernetes ----------------------------------------------------------------------------


class _TokenReviewHandler(BaseHTTPRequestHandler):
    """The Kubernetes API's TokenReview endpoint: a service-account JWT is valid if it names a uid."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        claims = pyjwt.decode(body["spec"]["token"], options={"verify_signature": False})
        uid = claims.get("kubernetes.io/serviceaccount/service-account.uid")
        status: dict[str, Any] = {"authenticated": False}
        if self.path == "/apis/authentication.k8s.io/v1/tokenreviews" and uid:
            status = {"authenticated": True, "user": {"username": claims["sub"], "uid": uid}}
        data = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def kubernetes_mount(vault: OpenBaoAdmin) -> Iterator[str]:
    """A Kubernetes auth mount whose API server is a local TokenReview endpoint; role ``app``."""
    api = ThreadingHTTPServer(("127.0.0.1", 0), _TokenReviewHandler)
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    mount = vault.unique("kubernetes")
    vault.root.sys.enable_auth_method("kubernetes", path=mount)
    vault.root.auth.kubernetes.configure(
        kubernetes_host=f"http://127.0.0.1:{api.server_port}",
        # Required with disable_local_ca_jwt; unused over plain http.
        kubernetes_ca_cert=trustme.CA().cert_pem.bytes().decode(),
        disable_local_ca_jwt=True,
        mount_point=mount,
    )
    vault.root.auth.kubernetes.create_role(
        "app",
        bound_service_account_names=["app"],
        bound_service_account_namespaces=["default"],
        policies=["reader"],
        mount_point=mount,
    )
    yield mount
    api.shutdown()
    api.server_close()
    thread.join(5)


def service_account_token() -> str:
    """A service-account JWT shaped as Kubernetes writes it into a pod."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:default:app",
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/service-account.name": "app",
        "kubernetes.io/serviceaccount/service-account.uid": "4f1c2d3e-0000-4000-8000-000000000001",
        "kubernetes.io/serviceaccount/secret.name": "app-token",
    }
    return pyjwt.encode(claims, key, algorithm="RS256")


def test_kubernetes_login_with_the_pods_service_account_token(
    vault: OpenBaoAdmin, make_backend: MakeBackend, kubernetes_mount: str, tmp_path: Path
) -> None:
    """The service-account token file logs in to a Kubernetes role, and the token reads the secret."""
    token_file = tmp_path / "token"
    token_file.write_text(service_account_token())
    ref = app_secret(vault, "k8s-value")
    backend = make_backend(auth=KubernetesAuth("app", jwt_file=token_file, mount=kubernetes_mount))
    assert backend.fetch(ref).value == "k8s-value"
    assert backend.token_status().method == "kubernetes"


def test_kubernetes_login_without_the_token_file_names_the_file(
    vault: OpenBaoAdmin, make_backend: MakeBackend, kubernetes_mount: str, tmp_path: Path
) -> None:
    """Outside a pod (no token file), the error names the missing file, not a Vault failure."""
    missing = tmp_path / "no-such-token"
    backend = make_backend(auth=KubernetesAuth("app", jwt_file=missing, mount=kubernetes_mount))
    with pytest.raises(ConfigurationError, match="no-such-token"):
        backend.fetch(app_secret(vault, "unreachable"))


# -- denial, revocation, renewal -------------------------------------------------------------


def test_policy_limited_token_is_denied_other_paths(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """A token whose policy covers secret/app/* is denied secret/other/*: AccessDenied, no value shown."""
    path = vault.unique("other/private")
    vault.put(path, {"password": "value-the-token-may-not-see"})
    backend = make_backend(auth=TokenAuth(vault.token(["reader"])))
    store = SecretStore([backend], negative_ttl=0)
    name = f"vault://secret/{path}#password"
    with pytest.raises(AccessDenied) as info:
        store.get(name)
    assert path in str(info.value)
    assert info.value.backend == "vault"
    assert_no_value_in_error(info.value, "value-the-token-may-not-see")
    # Denied by policy is not a dead token: no login was attempted again.
    assert backend.token_status().logins == 1


def test_revoked_token_is_replaced_by_logging_in_again(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """When Vault revokes the backend's token, the next read logs in through AppRole again and succeeds."""
    auth = approle_auth(vault)
    ref = app_secret(vault, "survives-revocation")
    backend = make_backend(auth=auth)
    assert backend.fetch(ref).value == "survives-revocation"
    vault.revoke_logins(auth.mount)
    assert backend.fetch(ref).value == "survives-revocation"
    assert backend.token_status().logins == 2


def test_revoked_fixed_token_is_access_denied_with_advice(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """A token given outright cannot be replaced: once revoked, reads fail with AccessDenied saying so."""
    token = vault.token(["reader"])
    ref = app_secret(vault, "fixed-token-value")
    backend = make_backend(auth=TokenAuth(token))
    assert backend.fetch(ref).value == "fixed-token-value"
    vault.root.auth.token.revoke(token)
    with pytest.raises(AccessDenied, match="expired or revoked") as info:
        backend.fetch(ref)
    assert_no_value_in_error(info.value, token, "fixed-token-value")


@pytest.mark.slow
def test_short_ttl_token_is_renewed_in_the_background(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """A renewable 5-second token keeps working for longer than 5 seconds: it is renewed at 2/3 of its TTL."""
    token = vault.token(["reader"], ttl="5s", renewable=True)
    ref = app_secret(vault, "renewed-token-value")
    backend = make_backend(auth=TokenAuth(token))
    values = read_for(backend, ref, 6.5)
    assert set(values) == {"renewed-token-value"}
    status = backend.token_status()
    assert status.renewals >= 1
    assert status.logins == 1
    assert status.renewable


@pytest.mark.slow
def test_token_at_its_max_ttl_is_replaced_by_a_new_login(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """A token that cannot be renewed past its max TTL is replaced by logging in again before it expires."""
    auth = approle_auth(vault, token_ttl="2s", token_max_ttl="3s")
    ref = app_secret(vault, "relogin-value")
    backend = make_backend(auth=auth)
    values = read_for(backend, ref, 4.0)
    assert set(values) == {"relogin-value"}
    assert backend.token_status().logins >= 2


def test_close_stops_the_renewal_thread(vault: OpenBaoAdmin) -> None:
    """close() stops the background renewal thread: no thread is left behind."""
    backend = VaultBackend(url=vault.url, auth=TokenAuth(vault.token(["reader"], ttl="1h")))
    backend.fetch(app_secret(vault, "x-value"))
    renewers = [t for t in threading.enumerate() if t.name == RENEWER]
    assert renewers, "a renewable token with a TTL should have a renewal thread"
    backend.close()
    backend.close()
    assert not any(t.is_alive() for t in renewers)


def test_a_token_that_never_expires_needs_no_renewal_thread(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """A root token (no TTL) is never renewed: no thread is started for it."""
    before = {t.ident for t in threading.enumerate() if t.name == RENEWER}
    backend = make_backend()
    backend.fetch(app_secret(vault, "root-read"))
    after = {t.ident for t in threading.enumerate() if t.name == RENEWER}
    assert after <= before
    assert backend.token_status().ttl is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_reads_with_its_own_session_and_renewal_thread(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """After fork the child reads through a fresh session and renews its token; the parent keeps reading."""
    ref = app_secret(vault, "fork-value")
    backend = make_backend(auth=TokenAuth(vault.token(["reader"], ttl="1h")))
    assert backend.fetch(ref).value == "fork-value"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            result = {
                "read": backend.fetch(ref).value == "fork-value",
                "renewer": any(t.name == RENEWER and t.is_alive() for t in threading.enumerate()),
            }
            os.write(write_fd, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    assert backend.fetch(ref).value == "fork-value"
    deadline = time.monotonic() + 30
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.05)
    with os.fdopen(read_fd, "rb") as pipe:
        result = json.loads(pipe.read() or b"{}")
    assert result == {"read": True, "renewer": True}
    assert backend.fetch(ref).value == "fork-value"
