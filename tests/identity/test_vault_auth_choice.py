"""One way to choose the Vault auth method (VAULT_AUTH_METHOD); files re-read on change."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from identity.conftest import app_secret
from secretkit import ConfigurationError, SecretRef, SecretStore
from secretkit.backends.vault import (
    AppRoleAuth,
    AwsIamAuth,
    CertAuth,
    JwtAuth,
    KubernetesAuth,
    TokenAuth,
    VaultBackend,
)
from secretkit.backends.vault_auth import DEFAULT_KUBERNETES_JWT, auth_from_env
from servers.openbao_server import OpenBaoAdmin

MakeBackend = Callable[..., VaultBackend]


def as_ref(reference: str) -> SecretRef:
    path, _, key = reference.removeprefix("vault://").partition("#")
    return SecretRef("vault", path, options={"key": key})


def read_until(backend: VaultBackend, ref: SecretRef, done: Callable[[], bool], seconds: float = 10) -> int:
    """Read ``ref`` every 0.1 s until ``done()``; every read must succeed. Returns the reads made."""
    reads = 0
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the change was never acted on"
        assert backend.fetch(ref).value
        reads += 1
        time.sleep(0.1)
    return reads


# -- choosing from the environment ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"VAULT_AUTH_METHOD": "kubernetes", "VAULT_AUTH_ROLE": "app"}, KubernetesAuth("app")),
        (
            {"VAULT_AUTH_METHOD": "Kubernetes", "VAULT_AUTH_ROLE": "app", "VAULT_AUTH_MOUNT": "k8s-east"},
            KubernetesAuth("app", mount="k8s-east"),
        ),
        (
            {"VAULT_AUTH_METHOD": "aws", "VAULT_AUTH_ROLE": "app", "VAULT_AWS_HEADER_VALUE": "vault.example"},
            AwsIamAuth("app", header_value="vault.example"),
        ),
        (
            {"VAULT_AUTH_METHOD": "jwt", "VAULT_AUTH_ROLE": "ci", "VAULT_JWT_FILE": "/run/ci/token"},
            JwtAuth("ci", jwt_file="/run/ci/token"),
        ),
        (
            {"VAULT_AUTH_METHOD": "cert", "VAULT_CLIENT_CERT": "/c.pem", "VAULT_CLIENT_KEY": "/k.pem"},
            CertAuth("/c.pem", "/k.pem"),
        ),
        (
            {"VAULT_AUTH_METHOD": "approle", "VAULT_ROLE_ID": "rid", "VAULT_SECRET_ID_FILE": "/run/sid"},
            AppRoleAuth("rid", secret_id_file="/run/sid"),
        ),
        (
            {"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN_FILE": "/run/agent/sink"},
            TokenAuth(token_file="/run/agent/sink"),
        ),
        ({}, TokenAuth()),
    ],
)
def test_the_environment_names_the_auth_method(env: dict[str, str], expected: object) -> None:
    """VAULT_AUTH_METHOD and the method's variables build that method: a deployment switches without code."""
    assert auth_from_env(env) == expected


def test_the_kubernetes_method_reads_the_pods_token_by_default() -> None:
    """VAULT_AUTH_METHOD=kubernetes with no token file reads the service account's projected token."""
    auth = auth_from_env({"VAULT_AUTH_METHOD": "kubernetes", "VAULT_AUTH_ROLE": "app"})
    assert isinstance(auth, KubernetesAuth)
    assert auth.jwt_file == DEFAULT_KUBERNETES_JWT


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"VAULT_AUTH_METHOD": "kubernetes"}, "VAULT_AUTH_ROLE"),
        ({"VAULT_AUTH_METHOD": "aws"}, "VAULT_AUTH_ROLE"),
        ({"VAULT_AUTH_METHOD": "jwt", "VAULT_AUTH_ROLE": "ci"}, "VAULT_JWT_FILE"),
        ({"VAULT_AUTH_METHOD": "cert", "VAULT_CLIENT_CERT": "/c.pem"}, "VAULT_CLIENT_KEY"),
        ({"VAULT_AUTH_METHOD": "approle"}, "VAULT_ROLE_ID"),
        ({"VAULT_AUTH_METHOD": "ldap"}, "approle, aws, cert, jwt, kubernetes, proxy, token"),
    ],
)
def test_an_incomplete_choice_says_what_to_set(env: dict[str, str], says: str) -> None:
    """A method named without its settings is refused when the backend is built, naming what to set."""
    with pytest.raises(ConfigurationError, match=says):
        auth_from_env(env)


def test_with_nothing_configured_the_error_says_what_to_set(bao: OpenBaoAdmin, backends: MakeBackend) -> None:
    """No auth=, no VAULT_AUTH_METHOD, no token: the error names VAULT_AUTH_METHOD and VAULT_TOKEN."""
    backend = backends(url=bao.url)
    with pytest.raises(ConfigurationError) as info:
        backend.fetch(as_ref(app_secret(bao, "unreachable")))
    message = str(info.value)
    assert "VAULT_AUTH_METHOD" in message
    assert "VAULT_TOKEN" in message
    assert "kubernetes" in message


def test_the_environment_chooses_approle_for_a_store_built_without_code(
    bao: OpenBaoAdmin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """VAULT_ADDR + VAULT_AUTH_METHOD=approle + role id and secret-id file: a plain SecretStore() reads."""
    mount, role_id, secret_id = bao.approle(["reader"])
    (tmp_path / "secret-id").write_text(secret_id)
    reference = app_secret(bao, "chosen-by-env")
    monkeypatch.setenv("VAULT_ADDR", bao.url)
    monkeypatch.setenv("VAULT_AUTH_METHOD", "approle")
    monkeypatch.setenv("VAULT_AUTH_MOUNT", mount)
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID_FILE", str(tmp_path / "secret-id"))
    with SecretStore() as store:
        assert store.get(reference).reveal() == "chosen-by-env"


def test_an_explicit_auth_always_wins_over_the_environment(
    bao: OpenBaoAdmin, backends: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auth= given in code is used even where the environment names another (here broken) method."""
    monkeypatch.setenv("VAULT_AUTH_METHOD", "kubernetes")  # no role: would be refused
    reference = app_secret(bao, "explicit-wins")
    backend = backends(url=bao.url, auth=TokenAuth(bao.token(["reader"])))
    assert backend.fetch(as_ref(reference)).value == "explicit-wins"
    assert backend.token_status().method == "token"


# -- credential files read again ----------------------------------------------------------------


def test_a_rewritten_token_file_is_used_without_waiting_for_a_refusal(
    bao: OpenBaoAdmin, backends: MakeBackend, tmp_path: Path
) -> None:
    """Vault Agent rewrites its sink: the backend switches to the new token within about a second,
    and the old one can be revoked at once without a failed read."""
    sink = tmp_path / "sink"
    first = bao.token(["reader"], ttl="1h")
    sink.write_text(first)
    ref = as_ref(app_secret(bao, "agent-sink-value"))
    backend = backends(url=bao.url, auth=TokenAuth(token_file=sink))
    assert backend.fetch(ref).value == "agent-sink-value"
    second = bao.token(["reader"], ttl="1h")
    sink.write_text(second)
    read_until(backend, ref, lambda: backend.token_status().logins == 2)
    bao.root.auth.token.revoke(first)
    assert backend.fetch(ref).value == "agent-sink-value"
    assert backend.token_status().logins == 2


def test_a_rotated_jwt_file_causes_a_login(bao: OpenBaoAdmin, backends: MakeBackend, tmp_path: Path) -> None:
    """A projected token rewritten on disk (kubelet, a CI runner) is sent in a new login within a second."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    mount = bao.unique("jwt")
    bao.root.sys.enable_auth_method("jwt", path=mount)
    bao.root.auth.jwt.configure(jwt_validation_pubkeys=[public.decode()], bound_issuer="tests", path=mount)
    bao.root.auth.jwt.create_role(
        "app",
        role_type="jwt",
        user_claim="sub",
        bound_audiences=["vault"],
        token_policies=["reader"],
        allowed_redirect_uris=[],
        path=mount,
    )

    def sign(subject: str) -> str:
        now = int(time.time())
        claims = {"iss": "tests", "sub": subject, "aud": "vault", "iat": now, "exp": now + 600}
        return pyjwt.encode(claims, key, algorithm="RS256")

    token_file = tmp_path / "token"
    token_file.write_text(sign("pod-1"))
    ref = as_ref(app_secret(bao, "jwt-rotated"))
    backend = backends(url=bao.url, auth=JwtAuth("app", jwt_file=token_file, mount=mount))
    assert backend.fetch(ref).value == "jwt-rotated"
    token_file.write_text(sign("pod-1-rotated"))
    read_until(backend, ref, lambda: backend.token_status().logins == 2)
    entity = bao.root.auth.token.lookup(backend._client.token)["data"]
    assert entity["meta"]["role"] == "app"


def test_a_broken_new_credential_file_keeps_the_working_token(
    bao: OpenBaoAdmin, backends: MakeBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rewrite that leaves the file empty (half-written) fails its login; reads go on with the old token."""
    sink = tmp_path / "sink"
    sink.write_text(bao.token(["reader"], ttl="1h"))
    ref = as_ref(app_secret(bao, "keeps-working"))
    backend = backends(url=bao.url, auth=TokenAuth(token_file=sink))
    assert backend.fetch(ref).value == "keeps-working"
    sink.write_text("")
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert backend.fetch(ref).value == "keeps-working"
        time.sleep(0.1)
    assert backend.token_status().logins == 1
    assert "keeping the current token" in caplog.text
    # The next good rewrite is picked up: the watch went on after the failed login.
    sink.write_text(bao.token(["reader"], ttl="1h"))
    read_until(backend, ref, lambda: backend.token_status().logins == 2)
