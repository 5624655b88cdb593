"""The gcp-sm backend against a local Secret Manager, through the real SDK: contract, references, errors."""

from __future__ import annotations

import os
import uuid

import pytest
from google.api_core import exceptions as google_exceptions
from google.cloud.secretmanager_v1 import SecretManagerServiceClient

from secretkit import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    SecretNotFound,
    SecretRef,
    SecretStore,
)
from secretkit.backends.gcp import GcpSecretManagerBackend, _crc32c_python
from secretkit.testing import BackendContract, assert_no_value_in_error
from servers.gcp_server import GcpSecretManagerServer, make_client, write_version

PROJECT = "test-project"


def new_id() -> str:
    return f"gcp-{uuid.uuid4().hex[:12]}"


def ref(text: str) -> SecretRef:
    return SecretRef.parse(f"gcp-sm://{text}")


class TestGcpSecretManager(BackendContract):
    """Short references (``gcp-sm://<secret>``) resolved in the backend's project."""

    @pytest.fixture
    def backend(
        self, gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient
    ) -> GcpSecretManagerBackend:
        self.client = gcp_client
        return gcp_backend

    def put(self, backend: GcpSecretManagerBackend, name: str, value: str | bytes) -> None:  # type: ignore[override]
        write_version(self.client, PROJECT, name, value)


class TestGcpSecretManagerFullNames(TestGcpSecretManager):
    """Full resource names (``projects/P/secrets/S[/versions/V]``) need no configured project."""

    @pytest.fixture
    def backend(  # type: ignore[override]
        self, gcp_client: SecretManagerServiceClient, monkeypatch: pytest.MonkeyPatch
    ) -> GcpSecretManagerBackend:
        monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
        monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
        self.client = gcp_client
        return GcpSecretManagerBackend(client=gcp_client)

    def ref(self, backend: GcpSecretManagerBackend, name: str, **options: str) -> SecretRef:  # type: ignore[override]
        return SecretRef("gcp-sm", f"projects/{PROJECT}/secrets/{name}", options=options)

    def pinned(self, backend: GcpSecretManagerBackend, name: str, version: str) -> SecretRef:  # type: ignore[override]
        return SecretRef("gcp-sm", f"projects/{PROJECT}/secrets/{name}/versions/{version}")


# -- references and versions ------------------------------------------------------------


def test_latest_reports_the_resolved_version_number(
    gcp_backend: GcpSecretManagerBackend,
    gcp_client: SecretManagerServiceClient,
    gcp_server: GcpSecretManagerServer,
) -> None:
    """Reading ``latest`` reports the number the service resolved it to, so a new version is a new id."""
    secret = new_id()
    write_version(gcp_client, PROJECT, secret, "one")
    write_version(gcp_client, PROJECT, secret, "two")
    fetched = gcp_backend.fetch(ref(secret))
    assert fetched.version == "2"
    number = gcp_server.project_number(PROJECT)
    assert fetched.metadata["name"] == f"projects/{number}/secrets/{secret}/versions/2"


def test_every_reference_form_reads_the_same_version(
    gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient
) -> None:
    """``?version=1``, ``P/S?version=1`` and ``projects/P/secrets/S/versions/1`` all read version 1."""
    secret = new_id()
    write_version(gcp_client, PROJECT, secret, "first")
    write_version(gcp_client, PROJECT, secret, "second")
    forms = [
        f"{secret}?version=1",
        f"{PROJECT}/{secret}?version=1",
        f"projects/{PROJECT}/secrets/{secret}/versions/1",
        f"projects/{PROJECT}/secrets/{secret}/versions/1?version=1",
        f"projects/{PROJECT}/secrets/{secret}?version=1",
    ]
    for form in forms:
        fetched = gcp_backend.fetch(ref(form))
        assert (fetched.value, fetched.version) == ("first", "1"), form


def test_the_project_in_a_reference_wins_over_the_backends(
    gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient
) -> None:
    """``gcp-sm://other-project/S`` reads the other project's secret, not the default project's."""
    secret = new_id()
    write_version(gcp_client, PROJECT, secret, "default-project-value")
    write_version(gcp_client, "other-project", secret, "other-project-value")
    assert gcp_backend.fetch(ref(secret)).value == "default-project-value"
    assert gcp_backend.fetch(ref(f"other-project/{secret}")).value == "other-project-value"


def test_a_version_alias_is_resolved_to_its_number(
    gcp_backend: GcpSecretManagerBackend,
    gcp_client: SecretManagerServiceClient,
) -> None:
    """``?version=<alias>`` reads the aliased version and reports its number."""
    secret = new_id()
    gcp_client.create_secret(
        request={
            "parent": f"projects/{PROJECT}",
            "secret_id": secret,
            "secret": {"replication": {"automatic": {}}, "version_aliases": {"stable": 1}},
        }
    )
    write_version(gcp_client, PROJECT, secret, "aliased")
    write_version(gcp_client, PROJECT, secret, "newer")
    fetched = gcp_backend.fetch(ref(f"{secret}?version=stable"))
    assert (fetched.value, fetched.version) == ("aliased", "1")


def test_a_regional_secret_is_read_by_its_full_name(
    gcp_backend: GcpSecretManagerBackend, gcp_server: GcpSecretManagerServer
) -> None:
    """``projects/P/locations/L/secrets/S`` reads the regional secret and reports its version."""
    secret = new_id()
    gcp_server.add_version(PROJECT, secret, "regional-value", location="europe-west1")
    fetched = gcp_backend.fetch(ref(f"projects/{PROJECT}/locations/europe-west1/secrets/{secret}"))
    assert (fetched.value, fetched.version) == ("regional-value", "1")
    assert "/locations/europe-west1/" in fetched.metadata["name"]


def test_a_name_the_service_rejects_is_an_invalid_reference(gcp_backend: GcpSecretManagerBackend) -> None:
    """INVALID_ARGUMENT (here a malformed project id) becomes InvalidReference with the cause chained."""
    with pytest.raises(InvalidReference) as info:
        gcp_backend.fetch(ref("Not_A_Project/db-password"))
    assert isinstance(info.value.__cause__, google_exceptions.InvalidArgument)


@pytest.mark.parametrize(
    "text",
    [
        "projects/p/secrets/s/versions/1?version=2",
        "a/b/c",
        "p//s",
        "s?stage=AWSCURRENT",
        "s?version=not%20a%20version",
    ],
)
def test_malformed_references_are_refused_locally(
    gcp_backend: GcpSecretManagerBackend, gcp_server: GcpSecretManagerServer, text: str
) -> None:
    """A reference that cannot name a secret version raises InvalidReference without a call."""
    before = len(gcp_server.calls)
    with pytest.raises(InvalidReference):
        gcp_backend.fetch(ref(text))
    assert len(gcp_server.calls) == before


def test_a_name_that_cannot_be_a_secret_id_is_not_found_without_a_call(
    gcp_backend: GcpSecretManagerBackend, gcp_server: GcpSecretManagerServer
) -> None:
    """``API.KEY`` cannot exist in Secret Manager: not found (so a chain moves on), and no RPC is made."""
    before = len(gcp_server.calls)
    with pytest.raises(SecretNotFound) as info:
        gcp_backend.fetch(SecretRef("gcp-sm", "API.KEY"))
    assert "not a Secret Manager secret id" in str(info.value)
    assert len(gcp_server.calls) == before


def test_a_short_reference_with_no_project_anywhere_says_how_to_name_one(
    gcp_client: SecretManagerServiceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no project in the reference, the backend or the environment, the error names the fixes."""
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    backend = GcpSecretManagerBackend(client=gcp_client)
    with pytest.raises(ConfigurationError) as info:
        backend.fetch(ref("db-password"))
    assert "GOOGLE_CLOUD_PROJECT" in str(info.value)
    assert "gcp-sm://<project>/db-password" in str(info.value)


# -- payloads and checksums -------------------------------------------------------------


def test_crc32c_matches_the_standard_check_value() -> None:
    """The pure-Python CRC-32C gives the published check value for "123456789"."""
    assert _crc32c_python(b"123456789") == 0xE3069283
    assert _crc32c_python(b"") == 0


def test_the_c_and_python_crc32c_agree() -> None:
    """When google-crc32c is installed, the backend's fast checksum equals the pure-Python one."""
    google_crc32c = pytest.importorskip("google_crc32c")
    for size in (0, 1, 7, 64, 1000, 65536):
        data = os.urandom(size)
        assert google_crc32c.value(data) == _crc32c_python(data)


def test_a_payload_with_a_wrong_checksum_is_never_returned(
    gcp_backend: GcpSecretManagerBackend, gcp_server: GcpSecretManagerServer
) -> None:
    """A data_crc32c that does not match the payload raises BackendUnavailable naming the version."""
    secret = new_id()
    value = "corrupted-in-transit-value"
    gcp_server.add_version(PROJECT, secret, value)
    gcp_server.checksum_fault(PROJECT, secret, "wrong")
    with pytest.raises(BackendUnavailable) as info:
        gcp_backend.fetch(ref(secret))
    assert "checksum" in str(info.value)
    assert "version 1" in str(info.value)
    assert_no_value_in_error(info.value, value)


def test_a_payload_without_a_checksum_is_accepted(
    gcp_backend: GcpSecretManagerBackend, gcp_server: GcpSecretManagerServer
) -> None:
    """A response that carries no data_crc32c (older API versions) is returned unverified."""
    secret = new_id()
    gcp_server.add_version(PROJECT, secret, "no-checksum-value")
    gcp_server.checksum_fault(PROJECT, secret, "missing")
    assert gcp_backend.fetch(ref(secret)).value == "no-checksum-value"


# -- errors -----------------------------------------------------------------------------


def test_a_missing_secret_is_not_found_with_the_vendor_error_chained(
    gcp_backend: GcpSecretManagerBackend,
) -> None:
    """NOT_FOUND becomes SecretNotFound, with google's NotFound as the cause."""
    with pytest.raises(SecretNotFound) as info:
        gcp_backend.fetch(ref(new_id()))
    assert isinstance(info.value.__cause__, google_exceptions.NotFound)


def test_a_missing_version_is_not_found(
    gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient
) -> None:
    """Pinning a version that does not exist raises SecretNotFound naming that version."""
    secret = new_id()
    write_version(gcp_client, PROJECT, secret, "only-version")
    with pytest.raises(SecretNotFound) as info:
        gcp_backend.fetch(ref(f"{secret}?version=9"))
    assert "versions/9" in str(info.value)


def test_permission_denied_is_access_denied_naming_the_role(
    gcp_backend: GcpSecretManagerBackend, gcp_server: GcpSecretManagerServer
) -> None:
    """PERMISSION_DENIED becomes AccessDenied naming the secret and the IAM role to grant, cause chained."""
    secret = new_id()
    value = "denied-secret-value"
    gcp_server.add_version(PROJECT, secret, value)
    gcp_server.deny(PROJECT, secret)
    with pytest.raises(AccessDenied) as info:
        gcp_backend.fetch(ref(secret))
    assert secret in str(info.value)
    assert "roles/secretmanager.secretAccessor" in str(info.value)
    assert isinstance(info.value.__cause__, google_exceptions.PermissionDenied)
    assert_no_value_in_error(info.value, value)


def test_a_call_without_credentials_is_access_denied(private_server: GcpSecretManagerServer) -> None:
    """UNAUTHENTICATED (no or bad credentials) becomes AccessDenied too."""
    private_server.require_auth = True
    private_server.add_version(PROJECT, "db", "needs-a-token")
    client = make_client(private_server.address)
    try:
        backend = GcpSecretManagerBackend(project=PROJECT, client=client)
        with pytest.raises(AccessDenied) as info:
            backend.fetch(ref("db"))
        assert isinstance(info.value.__cause__, google_exceptions.Unauthenticated)
    finally:
        client.transport.close()


@pytest.mark.parametrize("state", ["DISABLED", "DESTROYED"])
def test_a_pinned_version_that_is_not_enabled_names_the_version_and_state(
    gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient, state: str
) -> None:
    """A disabled version is refused, a destroyed one is gone; errors name version and state only."""
    secret = new_id()
    write_version(gcp_client, PROJECT, secret, "old-value")
    write_version(gcp_client, PROJECT, secret, "current-value")
    name = f"projects/{PROJECT}/secrets/{secret}/versions/1"
    if state == "DISABLED":
        gcp_client.disable_secret_version(request={"name": name})
    else:
        gcp_client.destroy_secret_version(request={"name": name})
    expected: type[Exception] = AccessDenied if state == "DISABLED" else SecretNotFound
    with pytest.raises(expected) as info:
        gcp_backend.fetch(ref(f"{secret}?version=1"))
    assert f"version 1 of projects/{PROJECT}/secrets/{secret} is {state}" in str(info.value)
    assert isinstance(info.value.__cause__, google_exceptions.FailedPrecondition)
    assert_no_value_in_error(info.value, "old-value", "current-value")
    assert gcp_backend.fetch(ref(secret)).value == "current-value"


def test_latest_does_not_fall_back_when_the_newest_version_is_disabled(
    gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient
) -> None:
    """As in the service, ``latest`` is the newest version: when it is disabled the error names it."""
    secret = new_id()
    write_version(gcp_client, PROJECT, secret, "enabled-value")
    write_version(gcp_client, PROJECT, secret, "disabled-value")
    gcp_client.disable_secret_version(request={"name": f"projects/{PROJECT}/secrets/{secret}/versions/2"})
    with pytest.raises(AccessDenied) as info:
        gcp_backend.fetch(ref(secret))
    assert "version 2" in str(info.value)
    assert "DISABLED" in str(info.value)


def test_a_slow_answer_is_backend_unavailable_after_the_timeout(
    gcp_client: SecretManagerServiceClient, gcp_server: GcpSecretManagerServer
) -> None:
    """DEADLINE_EXCEEDED becomes BackendUnavailable with google's error chained."""
    secret = new_id()
    gcp_server.add_version(PROJECT, secret, "slow-value")
    gcp_server.delay(PROJECT, secret, 2.0)
    backend = GcpSecretManagerBackend(project=PROJECT, client=gcp_client, timeout=0.3)
    with pytest.raises(BackendUnavailable) as info:
        backend.fetch(ref(secret))
    assert isinstance(info.value.__cause__, google_exceptions.DeadlineExceeded)
    assert "DEADLINE_EXCEEDED" in str(info.value)


def test_errors_through_a_store_name_the_reference(
    gcp_backend: GcpSecretManagerBackend, gcp_server: GcpSecretManagerServer
) -> None:
    """Through a store, denied and not-found errors name the reference that was read and the backend."""
    secret = new_id()
    gcp_server.add_version(PROJECT, secret, "store-denied-value")
    gcp_server.deny(PROJECT, secret)
    store = SecretStore([gcp_backend], negative_ttl=0)
    with pytest.raises(AccessDenied) as denied:
        store.get(f"gcp-sm://{secret}")
    assert denied.value.name == f"gcp-sm://{secret}"
    assert denied.value.backend == "gcp-sm"
    with pytest.raises(SecretNotFound) as missing:
        store.get(f"gcp-sm://{new_id()}")
    assert "gcp-sm" in str(missing.value)
