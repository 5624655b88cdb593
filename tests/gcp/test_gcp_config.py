"""How a gcp-sm backend is built: lazily, from the environment, with ADC, and what it owns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jwt
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

from secretkit import ConfigurationError, MissingDependency, SecretRef, SecretStore
from secretkit.backends.gcp import GcpSecretManagerBackend
from servers.gcp_server import GcpSecretManagerServer, make_client

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "test-project"


@pytest.fixture
def no_adc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """ADC that fails at once (a missing key file) instead of probing the metadata server."""
    missing = tmp_path / "no-such-key.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    return missing


def test_importing_the_backend_module_imports_no_sdk() -> None:
    """Importing ``secretkit.backends.gcp`` loads neither google nor grpc: building a backend does."""
    code = (
        "import sys, secretkit, secretkit.backends.gcp\n"
        "loaded = [m for m in sys.modules if m.startswith(('google', 'grpc'))]\n"
        "print(len(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "0"


def test_a_missing_sdk_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the SDK, building the backend raises MissingDependency naming secretkit[gcp]."""
    monkeypatch.setitem(sys.modules, "google.cloud.secretmanager_v1", None)
    with pytest.raises(MissingDependency) as info:
        GcpSecretManagerBackend()
    assert "secretkit[gcp]" in str(info.value)


def test_building_touches_no_credentials_until_the_first_fetch(no_adc: Path) -> None:
    """The no-argument backend and a default store build without looking up ADC; the first fetch does."""
    backend = GcpSecretManagerBackend()
    SecretStore().close()
    with pytest.raises(ConfigurationError) as info:
        backend.fetch(SecretRef.parse("gcp-sm://some-project/db-password"))
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(info.value)
    assert isinstance(info.value.__cause__, DefaultCredentialsError)


def test_a_store_builds_the_backend_from_a_reference_with_no_configuration(no_adc: Path) -> None:
    """A store with no gcp-sm backend builds one on the first gcp-sm reference, from the environment."""
    store = SecretStore(backends=[])
    try:
        with pytest.raises(ConfigurationError):
            store.get("gcp-sm://some-project/db-password")
        assert isinstance(store.backend_for("gcp-sm"), GcpSecretManagerBackend)
    finally:
        store.close()


def test_the_project_comes_from_google_cloud_project(
    gcp_server: GcpSecretManagerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given only an emulator endpoint, the backend reads short references in $GOOGLE_CLOUD_PROJECT."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    gcp_server.add_version("env-project", "api-key", "from-env-project")
    backend = GcpSecretManagerBackend(endpoint=f"http://{gcp_server.address}")
    store = SecretStore([], reference_backends=[backend])
    try:
        assert store.get("gcp-sm://api-key").reveal() == "from-env-project"
    finally:
        store.close()


def test_an_explicit_project_wins_over_the_environment(
    gcp_client: SecretManagerServiceClient,
    gcp_server: GcpSecretManagerServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``project=`` beats $GOOGLE_CLOUD_PROJECT."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    gcp_server.add_version("explicit-project", "api-key", "from-explicit-project")
    backend = GcpSecretManagerBackend(project="explicit-project", client=gcp_client)
    assert backend.fetch(SecretRef("gcp-sm", "api-key")).value == "from-explicit-project"


def test_conflicting_arguments_are_refused(gcp_client: SecretManagerServiceClient) -> None:
    """client=, transport= and endpoint= exclude each other; credentials cannot go with a ready client."""
    with pytest.raises(ConfigurationError, match="one of client=, transport= and endpoint="):
        GcpSecretManagerBackend(client=gcp_client, endpoint="http://127.0.0.1:1")
    with pytest.raises(ConfigurationError, match="give the credentials to the client"):
        GcpSecretManagerBackend(client=gcp_client, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    with pytest.raises(ConfigurationError, match="timeout"):
        GcpSecretManagerBackend(client=gcp_client, timeout=0)


def test_a_transport_instance_is_used_as_given(gcp_server: GcpSecretManagerServer) -> None:
    """``transport=`` takes a ready SDK transport, and close() leaves it to its owner."""
    gcp_server.add_version(PROJECT, "via-transport", "transport-value")
    client = make_client(gcp_server.address)
    transport = client.transport
    assert isinstance(transport, SecretManagerServiceGrpcTransport)
    backend = GcpSecretManagerBackend(project=PROJECT, transport=transport)
    assert backend.fetch(SecretRef("gcp-sm", "via-transport")).value == "transport-value"
    backend.close()
    response = client.access_secret_version(name=f"projects/{PROJECT}/secrets/via-transport/versions/latest")
    assert response.name.endswith("/versions/1")
    transport.close()


def test_close_leaves_a_client_passed_in_open(
    gcp_client: SecretManagerServiceClient, gcp_server: GcpSecretManagerServer
) -> None:
    """A client the caller passed in still works after the backend is closed."""
    gcp_server.add_version(PROJECT, "still-open", "open-value")
    backend = GcpSecretManagerBackend(project=PROJECT, client=gcp_client)
    backend.close()
    response = gcp_client.access_secret_version(name=f"projects/{PROJECT}/secrets/still-open/versions/latest")
    assert response.name.endswith("/versions/1")


def test_close_closes_the_channel_it_opened_and_a_later_fetch_opens_another(
    gcp_server: GcpSecretManagerServer,
) -> None:
    """close() releases the backend's own channel; fetching again after close() reconnects."""
    gcp_server.add_version(PROJECT, "reopened", "reopened-value")
    backend = GcpSecretManagerBackend(project=PROJECT, endpoint=f"http://{gcp_server.address}")
    assert backend.fetch(SecretRef("gcp-sm", "reopened")).value == "reopened-value"
    backend.close()
    backend.close()
    assert backend.fetch(SecretRef("gcp-sm", "reopened")).value == "reopened-value"
    backend.close()


@pytest.mark.slow
def test_application_default_credentials_end_to_end(tmp_path: Path) -> None:
    """With ADC from a key file, the backend sends a signed token over TLS and reads in the key's project."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    chain = b"".join(pem.bytes() for pem in leaf.cert_chain_pems)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "secretkit-test@adc-project.iam.gserviceaccount.com"
    key_file = tmp_path / "service-account.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "adc-project",
                "private_key_id": "test-key-1",
                "private_key": key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "client_email": email,
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    server = GcpSecretManagerServer(require_auth=True, tls=(leaf.private_key_pem.bytes(), chain)).start()
    try:
        server.add_version("adc-project", "db-password", "adc-secret-value")
        env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")}
        # The CA is trusted through gRPC's own variable, process-wide: hence a child process.
        env.update(
            GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
            GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=str(ca_file),
            EXPECTED="adc-secret-value",
        )
        code = textwrap.dedent(
            f"""
            import os
            from secretkit import SecretStore
            from secretkit.backends.gcp import GcpSecretManagerBackend

            backend = GcpSecretManagerBackend(endpoint="127.0.0.1:{server.port}")
            with SecretStore([], reference_backends=[backend]) as store:
                secret = store.get("gcp-sm://db-password")
                print(secret.version, secret.reveal() == os.environ["EXPECTED"])
            """
        )
        result = subprocess.run(
            [sys.executable, "-W", "error", "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.split() == ["1", "True"]
        claims = jwt.decode(server.tokens[-1], options={"verify_signature": False})
        assert claims["iss"] == email
        assert claims["aud"] == "https://secretmanager.googleapis.com/"
    finally:
        server.stop()
