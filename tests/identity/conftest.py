"""Real servers for the workload-identity tests: OpenBao over TLS (it asks for client certificates) and moto.

OpenBao's ``-dev-tls`` listener requests a client certificate on every connection (Vault's
listener does unless ``tls_disable_client_certs`` is set), which is all the ``cert`` auth
method needs. moto plays STS and Secrets Manager with request signatures checked.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt as pyjwt
import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa

from secretkit.backends.vault import VaultBackend
from servers.aws_env import use_test_aws_env
from servers.moto_server import MotoServer
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer
from servers.vault_env import (
    PROXY_SETTINGS,
    VAULT_SETTINGS,
    clear_env,
    fresh_home,
    reader_admin,
    vault_backends,
)

#: The login settings auth_from_env reads, beyond the client's own.
LOGIN_SETTINGS = (
    "VAULT_TOKEN_FILE",
    "VAULT_AUTH_METHOD",
    "VAULT_AUTH_ROLE",
    "VAULT_AUTH_MOUNT",
    "VAULT_JWT_FILE",
    "VAULT_KUBERNETES_TOKEN_FILE",
    "VAULT_ROLE_ID",
    "VAULT_ROLE_ID_FILE",
    "VAULT_SECRET_ID_FILE",
    "VAULT_AWS_HEADER_VALUE",
    "VAULT_AWS_STS_REGION",
    "VAULT_AWS_STS_ENDPOINT",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
)
ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def identity_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Vault or AWS settings of the machine leak in; a HOME with no ~/.vault-token."""
    clear_env(monkeypatch, VAULT_SETTINGS + LOGIN_SETTINGS + PROXY_SETTINGS)
    use_test_aws_env(monkeypatch, tmp_path)
    return fresh_home(monkeypatch, tmp_path / "home")


# -- OpenBao -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_bao() -> Iterator[OpenBaoAdmin]:
    """An OpenBao dev server over TLS (its own CA), with the ``reader`` policy."""
    with OpenBaoServer(tls=True) as server:
        yield reader_admin(server)


@pytest.fixture(scope="session")
def bao() -> Iterator[OpenBaoAdmin]:
    """A plain-http OpenBao dev server, with the ``reader`` policy."""
    with OpenBaoServer() as server:
        yield reader_admin(server)


@pytest.fixture
def backends() -> Iterator[Callable[..., VaultBackend]]:
    """Build VaultBackends; every one is closed after the test."""
    with vault_backends() as make:
        yield make


@dataclass
class CertMount:
    """A ``cert`` auth mount with one role per CA: ``roles[name]`` is the CA that role trusts."""

    admin: OpenBaoAdmin
    mount: str
    roles: dict[str, trustme.CA] = field(default_factory=dict)

    def trust(self, role: str, ca: trustme.CA, **params: Any) -> None:
        data = {"certificate": ca.cert_pem.bytes().decode(), "token_policies": "reader", **params}
        self.admin.root.write_data(f"auth/{self.mount}/certs/{role}", data=data)
        self.roles[role] = ca

    def forget(self, role: str) -> None:
        self.admin.root.delete(f"auth/{self.mount}/certs/{role}")
        self.roles.pop(role, None)


@pytest.fixture
def cert_mount(tls_bao: OpenBaoAdmin) -> CertMount:
    """A fresh ``cert`` auth mount on the TLS server (no role yet)."""
    mount = tls_bao.unique("cert")
    tls_bao.root.sys.enable_auth_method("cert", path=mount)
    return CertMount(tls_bao, mount)


def write_leaf(ca: trustme.CA, directory: Path, name: str) -> tuple[Path, Path]:
    """A client certificate for ``name`` issued by ``ca``, written as cert.pem and key.pem."""
    leaf = ca.issue_cert(f"{name}.clients.test", common_name=name)
    cert, key = directory / "cert.pem", directory / "key.pem"
    # Written as a rotation tool does: new files renamed over the old ones.
    for path, pem in ((cert, leaf.cert_chain_pems[0].bytes()), (key, leaf.private_key_pem.bytes())):
        fresh = path.with_suffix(".new")
        fresh.write_bytes(pem)
        fresh.replace(path)
    return cert, key


def app_secret(admin: OpenBaoAdmin, value: str) -> str:
    """A new secret under secret/app/ (the reader policy's), as a vault:// reference to its key."""
    path = admin.unique("app/identity")
    admin.put(path, {"value": value})
    return f"vault://secret/{path}#value"


# -- moto: STS and Secrets Manager with signatures and IAM checked --------------------------------


@dataclass
class AwsWorld:
    """A moto server enforcing IAM, with a user, roles and secrets already made."""

    server: MotoServer
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    app_role: str = ""
    cross_role: str = ""


def _trust(principal: dict[str, Any], action: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": principal, "Action": action}],
        }
    )


def _allow(actions: list[str], resource: str = "*") -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]}
    )


@pytest.fixture(scope="session")
def aws_world() -> Iterator[AwsWorld]:
    """Users ``vault-client`` (no policy) and ``source`` (may only assume roles); roles
    ``app`` (web identity, reads secrets) and ``cross-account`` (reads secrets); then IAM on."""
    with MotoServer() as server:
        world = AwsWorld(server)
        sm, iam = server.client("secretsmanager"), server.client("iam")
        for i in range(4):
            name = f"identity/secret-{i}"
            sm.create_secret(Name=name, SecretString=json.dumps({"password": f"pw-{i}"}))
            world.secrets.append(name)
        for user, policy in (
            ("vault-client", None),
            ("source", _allow(["sts:AssumeRole"])),
            ("sts-front", _allow(["sts:AssumeRoleWithWebIdentity"])),
        ):
            iam.create_user(UserName=user)
            if policy:
                iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=policy)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            world.keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        read = _allow(["secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"])
        app = iam.create_role(
            RoleName="app",
            AssumeRolePolicyDocument=_trust(
                {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.test"},
                "sts:AssumeRoleWithWebIdentity",
            ),
        )
        iam.put_role_policy(RoleName="app", PolicyName="read", PolicyDocument=read)
        world.app_role = app["Role"]["Arn"]
        cross = iam.create_role(
            RoleName="cross-account",
            AssumeRolePolicyDocument=_trust({"AWS": f"arn:aws:iam::{ACCOUNT}:user/source"}, "sts:AssumeRole"),
        )
        iam.put_role_policy(RoleName="cross-account", PolicyName="read", PolicyDocument=read)
        world.cross_role = cross["Role"]["Arn"]
        server.enforce_iam()
        yield world


class OidcIssuer:
    """The platform's OIDC issuer (EKS, GitHub Actions...): an RSA key pair, and tokens signed with it."""

    AUDIENCE = "sts.amazonaws.com"

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, subject: str = "system:serviceaccount:default:app", lifetime: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://oidc.test",
            "sub": subject,
            "aud": self.AUDIENCE,
            "iat": now,
            "exp": now + lifetime,
        }
        return pyjwt.encode(claims, self.key, algorithm="RS256")

    def valid(self, token: str) -> bool:
        try:
            pyjwt.decode(token, self.key.public_key(), algorithms=["RS256"], audience=self.AUDIENCE)
        except pyjwt.InvalidTokenError:
            return False
        return True


class StsFront:
    """STS as the workload sees it: moto's STS behind a front that checks web identity tokens.

    moto trusts any web identity token, and with request authentication enforced it cannot
    serve the unsigned ``AssumeRoleWithWebIdentity`` call at all. So the front plays the part
    of STS that moto lacks: it verifies the token's signature and audience against the test's
    OIDC issuer, and passes the call on signed as a user allowed only that action; the
    credentials that come back are moto's own, which its Secrets Manager then checks. Other
    calls (``AssumeRole``, ``GetCallerIdentity``) pass through as they are.

    It records each call's parameters, and with ``lifetime=`` rewrites ``Expiration`` to
    ``lifetime`` seconds past botocore's 15-minute refresh window: moto's hour-long
    credentials then come due for refresh every ``lifetime`` seconds, as real ones do near
    the end of their life.
    """

    #: botocore's advisory refresh window (15 minutes) before a credential's expiry.
    REFRESH_WINDOW = 15 * 60

    def __init__(self, world: AwsWorld, issuer: OidcIssuer, lifetime: float | None = None) -> None:
        self.world = world
        self.upstream = world.server.url
        self.issuer = issuer
        self.lifetime = lifetime
        self.calls: list[dict[str, list[str]]] = []
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params = parse_qs(body.decode())
                with front._lock:
                    front.calls.append(params)
                # The Host header stays: it is signed, and moto checks the signature against it.
                headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
                if params.get("Action") == ["AssumeRoleWithWebIdentity"]:
                    if not front.issuer.valid(params.get("WebIdentityToken", [""])[0]):
                        self._answer(400, _sts_error("InvalidIdentityToken", "the token is not valid"))
                        return
                    headers = front._signed(body)
                request = urllib.request.Request(  # noqa: S310 - the test's own loopback moto
                    front.upstream + self.path, data=body, headers=headers, method="POST"
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                        status, data = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, data = exc.code, exc.read()
                self._answer(status, front._shorten(data))

            def _answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def _signed(self, body: bytes) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import ReadOnlyCredentials

        key_id, secret = self.world.keys["sts-front"]
        request = AWSRequest(
            method="POST",
            url=self.upstream + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        SigV4Auth(ReadOnlyCredentials(key_id, secret, None), "sts", "us-east-1").add_auth(request)
        return {k: str(v) for k, v in request.headers.items()}

    def _shorten(self, data: bytes) -> bytes:
        if self.lifetime is None:
            return data
        expires = datetime.now(UTC) + timedelta(seconds=self.REFRESH_WINDOW + self.lifetime)
        stamp = expires.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        return re.sub(rb"<Expiration>[^<]*</Expiration>", b"<Expiration>" + stamp + b"</Expiration>", data)

    def actions(self, action: str) -> list[dict[str, list[str]]]:
        with self._lock:
            return [c for c in self.calls if c.get("Action") == [action]]

    def __enter__(self) -> StsFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _sts_error(code: str, message: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>0</RequestId></ErrorResponse>"
    ).encode()


@pytest.fixture(scope="session")
def oidc() -> OidcIssuer:
    return OidcIssuer()


@pytest.fixture
def sts_front(aws_world: AwsWorld, oidc: OidcIssuer) -> Iterator[StsFront]:
    """STS with web identity tokens checked, credentials as moto issues them."""
    with StsFront(aws_world, oidc) as front:
        yield front


def web_identity(
    monkeypatch: pytest.MonkeyPatch, token_file: Path, role_arn: str, sts_url: str, session: str = "pod-app"
) -> None:
    """The environment EKS (IRSA) gives a pod: a token file and a role; no AWS keys."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", role_arn)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", session)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_url)
