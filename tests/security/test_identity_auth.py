"""Attacks on the workload-identity logins: tampered or replayed IAM payloads, foreign certificates, FIFOs.

The IAM payload is judged as Vault's aws auth method judges it (``identity/vault_iam.py``),
by moto's STS with signatures checked; certificates by OpenBao's ``cert`` method.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from identity import conftest as identity
from identity.conftest import AwsWorld, CertMount, app_secret, write_leaf
from identity.vault_iam import replay
from secretkit import AccessDenied, ConfigurationError, SecretRef
from secretkit.backends.vault import AwsIamAuth, CertAuth, VaultBackend
from secretkit.testing import assert_no_value_in_error
from servers.openbao_server import OpenBaoAdmin

MakeBackend = Callable[..., VaultBackend]
# The identity suite's servers and environment, shared rather than started twice.
identity_env = identity.identity_env
tls_bao, bao, backends = identity.tls_bao, identity.bao, identity.backends
cert_mount, aws_world = identity.cert_mount, identity.aws_world
SERVER_ID = "vault.prod.example"


def as_ref(reference: str) -> SecretRef:
    path, _, key = reference.removeprefix("vault://").partition("#")
    return SecretRef("vault", path, options={"key": key})


def signed_payload(world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    key_id, secret = world.keys["vault-client"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    return AwsIamAuth("app", sts_endpoint=world.server.url + "/", header_value=SERVER_ID).login_data()


def headers_of(payload: dict[str, str]) -> dict[str, list[str]]:
    decoded: dict[str, list[str]] = json.loads(base64.b64decode(payload["iam_request_headers"]))
    return decoded


def with_headers(payload: dict[str, str], headers: dict[str, list[str]]) -> dict[str, str]:
    return {**payload, "iam_request_headers": base64.b64encode(json.dumps(headers).encode()).decode()}


# -- AWS IAM ------------------------------------------------------------------------------------


def test_an_iam_login_with_a_tampered_body_is_refused_by_sts(
    aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payload whose body was changed after signing (a parameter added) fails STS's signature check."""
    payload = signed_payload(aws_world, monkeypatch)
    assert replay(payload, sts_endpoint=aws_world.server.url + "/", server_id=SERVER_ID).status == 200
    # Vault checks the action itself; what STS says of a changed body is the point here.
    body = base64.b64encode(b"Action=GetCallerIdentity&Version=2011-06-15&X=1").decode()
    forged = {**payload, "iam_request_body": body}
    headers = {k: v[0] for k, v in headers_of(forged).items()}
    import requests

    response = requests.post(
        aws_world.server.url + "/", data=base64.b64decode(body), headers=headers, timeout=10
    )
    assert response.status_code == 403
    assert "SignatureDoesNotMatch" in response.text


def test_an_iam_login_replayed_to_a_vault_with_another_server_id_is_refused(
    aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server-id header is signed: rewriting it for another Vault breaks the signature."""
    payload = signed_payload(aws_world, monkeypatch)
    signed = headers_of(payload)
    assert "x-vault-aws-iam-server-id" in signed["Authorization"][0].split("SignedHeaders=")[1].split(",")[0]
    rewritten = {**signed, "X-Vault-AWS-IAM-Server-ID": ["vault.other.example"]}
    verdict = replay(
        with_headers(payload, rewritten), sts_endpoint=aws_world.server.url + "/", server_id=None
    )
    assert verdict.status == 403
    assert verdict.arn is None


def test_an_iam_login_with_a_stolen_signature_on_other_credentials_is_refused(
    aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user's key id put into the Authorization header does not make STS vouch for that user."""
    payload = signed_payload(aws_world, monkeypatch)
    signed = headers_of(payload)
    mine, _ = aws_world.keys["vault-client"]
    theirs, _ = aws_world.keys["source"]
    signed["Authorization"] = [signed["Authorization"][0].replace(mine, theirs)]
    verdict = replay(with_headers(payload, signed), sts_endpoint=aws_world.server.url + "/")
    assert verdict.status == 403
    assert verdict.arn is None


def test_the_iam_payload_carries_no_secret_access_key(
    aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vault receives a signature, never the AWS secret key (nor anything that reveals it)."""
    payload = signed_payload(aws_world, monkeypatch)
    _, secret = aws_world.keys["vault-client"]
    decoded = " ".join(
        base64.b64decode(v).decode() for k, v in payload.items() if k.startswith("iam_request")
    )
    assert secret not in json.dumps(payload)
    assert secret not in decoded


# -- certificates -------------------------------------------------------------------------------


def test_a_certificate_from_a_ca_the_role_does_not_trust_is_access_denied(
    tls_bao: OpenBaoAdmin, cert_mount: CertMount, backends: MakeBackend, tmp_path: Path
) -> None:
    """A self-made CA's certificate with the right name gets no token: AccessDenied, no key in the error."""
    cert_mount.trust("web", trustme.CA())
    cert, key = write_leaf(trustme.CA(), tmp_path, "app-1")
    backend = backends(
        url=tls_bao.url,
        verify=tls_bao.server.ca_cert,
        auth=CertAuth(cert, key, role="web", mount=cert_mount.mount),
    )
    with pytest.raises(AccessDenied) as info:
        backend.fetch(as_ref(app_secret(tls_bao, "unreachable")))
    assert_no_value_in_error(info.value, key.read_text().splitlines()[1], "unreachable")


def test_certificate_auth_is_never_attempted_over_plain_http(
    bao: OpenBaoAdmin, backends: MakeBackend, tmp_path: Path
) -> None:
    """An http:// address is refused before any connection: a certificate login proves nothing without TLS."""
    cert, key = write_leaf(trustme.CA(), tmp_path, "app-1")
    backend = backends(url=bao.url, auth=CertAuth(cert, key))
    with pytest.raises(ConfigurationError, match="https"):
        backend.fetch(as_ref(app_secret(bao, "unreachable")))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_client_certificate_path_that_is_a_fifo_is_refused_without_blocking(
    tls_bao: OpenBaoAdmin, backends: MakeBackend, tmp_path: Path
) -> None:
    """A FIFO (or device) where the certificate should be is refused at once, through the bounded reader."""
    fifo = tmp_path / "cert.pem"
    os.mkfifo(fifo)
    key = tmp_path / "key.pem"
    key.write_text("not read")
    backend = backends(url=tls_bao.url, verify=tls_bao.server.ca_cert, auth=CertAuth(fifo, key))
    outcome: list[BaseException] = []

    def login() -> None:
        try:
            backend.fetch(as_ref(app_secret(tls_bao, "unreachable")))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=login, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive(), "reading the certificate blocked on a FIFO"
    assert isinstance(outcome[0], ConfigurationError)
    assert "regular file" in str(outcome[0])
