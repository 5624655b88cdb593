"""The azure-kv backend, through the real azure-keyvault-secrets SDK, against a local HTTPS vault."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient

from secretkit import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    MissingDependency,
    SecretNotFound,
    SecretRef,
    SecretStore,
)
from secretkit.backends import EnvBackend, MemoryBackend
from secretkit.backends.azure import AzureKeyVaultBackend
from secretkit.testing import BackendContract, CountingBackend, FakeClock, assert_no_value_in_error
from servers.azure_server import KeyVaultServer, StaticTokenCredential, free_port, write_secret

Write = Callable[..., str]


class TestAzureKeyVaultContract(BackendContract):
    """The shared backend contract, against the local vault through the SDK."""

    @pytest.fixture
    def backend(self, kv_backend: AzureKeyVaultBackend, kv_writer: SecretClient) -> AzureKeyVaultBackend:
        self.writer = kv_writer
        return kv_backend

    def put(self, backend: AzureKeyVaultBackend, name: str, value: str | bytes) -> None:  # type: ignore[override]
        write_secret(self.writer, name, value)


def ref(path: str, **options: str) -> SecretRef:
    return SecretRef("azure-kv", path, options=options)


@pytest.fixture
def bare_backend(
    kv_server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AzureKeyVaultBackend]:
    """A backend with no default vault: every reference names its vault."""
    monkeypatch.delenv("AZURE_KEYVAULT_URL", raising=False)
    backend = AzureKeyVaultBackend(credential=StaticTokenCredential(), **kv_server.client_options())
    yield backend
    backend.close()


# -- references ------------------------------------------------------------------------------


def test_a_vault_name_means_the_public_cloud_vault(kv_backend: AzureKeyVaultBackend) -> None:
    """A bare vault name stands for https://<name>.vault.azure.net."""
    assert kv_backend.secret_client("My-Vault").vault_url == "https://my-vault.vault.azure.net"


def test_a_host_or_url_is_used_as_the_vault(kv_backend: AzureKeyVaultBackend) -> None:
    """A host (any cloud) or a full https URL is the vault itself."""
    assert kv_backend.secret_client("v1.vault.azure.cn").vault_url == "https://v1.vault.azure.cn"
    assert kv_backend.secret_client("https://v2.vault.usgovcloudapi.net/").vault_url == (
        "https://v2.vault.usgovcloudapi.net"
    )


def test_a_reference_naming_a_host_reads_that_vault(
    bare_backend: AzureKeyVaultBackend, kv_server: KeyVaultServer, secret_name: str
) -> None:
    """``azure-kv://host:port/name`` reads that vault; another host is another vault."""
    kv_server.put(secret_name, "from-127", host="127.0.0.1")
    kv_server.put(secret_name, "from-localhost", host="localhost")
    port = kv_server.port
    assert bare_backend.fetch(ref(f"127.0.0.1:{port}/{secret_name}")).value == "from-127"
    assert bare_backend.fetch(ref(f"localhost:{port}/{secret_name}")).value == "from-localhost"


def test_a_reference_may_carry_the_full_vault_url(
    bare_backend: AzureKeyVaultBackend, kv_server: KeyVaultServer, secret_name: str
) -> None:
    """``azure-kv://https://host/name`` reads ``name`` from the vault at that URL."""
    kv_server.put(secret_name, "by-url")
    store = SecretStore([], reference_backends=[bare_backend])
    assert store.get(f"azure-kv://{kv_server.url}/{secret_name}").reveal() == "by-url"


def test_a_secret_identifier_reads_its_version(
    bare_backend: AzureKeyVaultBackend, kv_server: KeyVaultServer, secret_name: str
) -> None:
    """A Key Vault secret identifier (``.../secrets/name/version``) reads that version."""
    old = kv_server.put(secret_name, "old")
    kv_server.put(secret_name, "new")
    fetched = bare_backend.fetch(ref(f"{kv_server.url}/secrets/{secret_name}/{old}"))
    assert (fetched.value, fetched.version) == ("old", old)
    assert bare_backend.fetch(ref(f"{kv_server.url}/secrets/{secret_name}")).value == "new"
    assert bare_backend.fetch(ref(f"{kv_server.url}/secrets/{secret_name}/")).value == "new"


def test_an_identifier_and_a_different_version_option_conflict(
    bare_backend: AzureKeyVaultBackend, kv_server: KeyVaultServer
) -> None:
    """A reference naming two different versions is refused before any request."""
    identifier = f"{kv_server.url}/secrets/x/{'a' * 32}"
    with pytest.raises(InvalidReference, match="different versions"):
        bare_backend.fetch(ref(identifier, version="b" * 32))


@pytest.mark.parametrize(
    ("path", "options", "why"),
    [
        ("vlt1/name", {"stage": "x"}, "no option 'stage' \\(it takes: version\\)"),
        ("http://127.0.0.1:1/name", {}, "https:// only"),
        ("a_b/name", {}, "not a vault name"),
        ("vlt1/a/b", {}, "expected azure-kv://"),
        ("vlt1/bad.name", {}, "not a valid Key Vault secret name"),
        ("vlt1/", {}, "not a valid Key Vault secret name"),
        ("vlt1/name", {"version": ""}, "32 hexadecimal"),
        ("https://vlt1.vault.azure.net", {}, "expected azure-kv://"),
    ],
)
def test_malformed_references_are_refused(
    bare_backend: AzureKeyVaultBackend, path: str, options: dict[str, str], why: str
) -> None:
    """A reference that cannot name a Key Vault secret raises InvalidReference saying why."""
    with pytest.raises(InvalidReference, match=why):
        bare_backend.fetch(ref(path, **options))


def test_a_name_with_underscores_finds_the_hyphenated_secret(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """``DB_PASSWORD`` reads the Key Vault secret ``db-password`` (names are case-insensitive)."""
    kv_write(f"{secret_name}-db-password", "hyphenated")
    plain = f"{secret_name}_DB_PASSWORD".upper()
    store = SecretStore([EnvBackend({}), kv_backend])
    secret = store.get(plain)
    assert secret.reveal() == "hyphenated"
    assert secret.source == "azure-kv"


def test_a_colon_reads_as_a_double_hyphen(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """``Section:Key`` reads ``Section--Key``, as .NET's KeyVaultSecretManager names it."""
    kv_write(f"{secret_name}--Db", "sectioned")
    assert kv_backend.fetch(ref(f"{secret_name}:Db")).value == "sectioned"


def test_a_plain_name_key_vault_cannot_hold_falls_through_the_chain(kv_backend: AzureKeyVaultBackend) -> None:
    """A plain name with characters Key Vault forbids is not-found there, so later backends are asked."""
    store = SecretStore([kv_backend, MemoryBackend({"app.key": "from-memory"})])
    assert store.get("app.key").reveal() == "from-memory"
    with pytest.raises(SecretNotFound, match="not a valid Key Vault secret name"):
        kv_backend.fetch(ref("app.key"))


def test_without_a_default_vault_a_vaultless_reference_is_a_configuration_error(
    bare_backend: AzureKeyVaultBackend,
) -> None:
    """With no vault_url and no $AZURE_KEYVAULT_URL, ``azure-kv://name`` says how to name a vault."""
    with pytest.raises(ConfigurationError, match="AZURE_KEYVAULT_URL"):
        bare_backend.fetch(ref("db-password"))


def test_the_default_vault_comes_from_the_environment(
    kv_server: KeyVaultServer, monkeypatch: pytest.MonkeyPatch, secret_name: str
) -> None:
    """$AZURE_KEYVAULT_URL names the vault for plain names and vault-less references."""
    kv_server.put(secret_name, "from-env-vault")
    monkeypatch.setenv("AZURE_KEYVAULT_URL", kv_server.url)
    backend = AzureKeyVaultBackend(credential=StaticTokenCredential(), **kv_server.client_options())
    try:
        assert backend.vault_url == kv_server.url
        assert backend.fetch(ref(secret_name)).value == "from-env-vault"
    finally:
        backend.close()


def test_a_malformed_default_vault_is_refused_at_construction() -> None:
    """A vault_url that is neither a name, a host nor an https URL fails when the backend is built."""
    with pytest.raises(ConfigurationError, match="vault_url"):
        AzureKeyVaultBackend(vault_url="http://insecure.example")


def test_one_client_per_vault_even_under_concurrency(kv_backend: AzureKeyVaultBackend) -> None:
    """Threads asking for the same vault's client at once all get one shared client."""
    barrier = threading.Barrier(16)
    seen: list[object] = []
    lock = threading.Lock()

    def grab(vault: str) -> None:
        barrier.wait()
        client = kv_backend.secret_client(vault)
        with lock:
            seen.append(client)

    threads = [threading.Thread(target=grab, args=(("va1", "vb2")[i % 2],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen) == 16
    assert len({id(c) for c in seen}) == 2
    assert kv_backend.secret_client("va1") is kv_backend.secret_client("https://va1.vault.azure.net")


def test_a_given_client_serves_its_vault(kv_server: KeyVaultServer, secret_name: str) -> None:
    """``client=`` is used for its own vault, which becomes the default vault, and is not closed."""
    kv_server.put(secret_name, "via-client")
    client = SecretClient(kv_server.url, StaticTokenCredential(), **kv_server.client_options())
    backend = AzureKeyVaultBackend(client=client)
    assert backend.vault_url == kv_server.url
    assert backend.secret_client() is client
    assert backend.fetch(ref(secret_name)).value == "via-client"
    backend.close()
    assert client.get_secret(secret_name).value == "via-client"  # still open
    client.close()


# -- versions, rotation ----------------------------------------------------------------------


def test_the_version_is_the_key_vault_version_id(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """``Secret.version`` is the id Key Vault gave the version, and metadata names the secret."""
    version = kv_write(secret_name, "versioned", content_type="text/plain")
    store = SecretStore([kv_backend])
    assert store.get(f"azure-kv://{secret_name}").version == version
    fetched = kv_backend.fetch(ref(secret_name))
    assert fetched.metadata["id"].endswith(f"/secrets/{secret_name}/{version}")
    assert fetched.metadata["content_type"] == "text/plain"


def test_rotation_fires_on_rotate_with_both_version_ids(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """After the TTL a new Key Vault version is loaded and on_rotate gets old and new, by version id."""
    clock = FakeClock()
    store = SecretStore([kv_backend], ttl=60, jitter=0.0, clock=clock)
    key = f"azure-kv://{secret_name}"
    first = kv_write(secret_name, "v-one")
    assert store.get(key).version == first
    seen: list[tuple[str | None, str | None]] = []
    store.on_rotate(key, lambda old, new: seen.append((old.version, new.version)))
    second = kv_write(secret_name, "v-two")
    clock.advance(61)
    assert store.get(key).reveal() == "v-two"
    assert seen == [(first, second)]


def test_a_missing_version_is_not_found_with_a_hint(
    kv_backend: AzureKeyVaultBackend, kv_server: KeyVaultServer, kv_write: Write, secret_name: str
) -> None:
    """A version that does not exist is SecretNotFound; one not shaped like a Key Vault id says so.

    In ``?version=`` such a version is refused before the request (tests/security/test_option_errors.py);
    in a secret identifier's path it is asked for, and the not-found says what a version id looks like.
    """
    kv_write(secret_name, "exists")
    with pytest.raises(SecretNotFound, match="has no version"):
        kv_backend.fetch(ref(secret_name, version="0" * 32))
    with pytest.raises(SecretNotFound, match="32 hexadecimal"):
        kv_backend.fetch(ref(f"{kv_server.url}/secrets/{secret_name}/3"))


def test_a_base64_tagged_secret_comes_back_as_bytes(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """A value tagged file-encoding=hex (``az keyvault secret set --file``) is decoded to bytes."""
    kv_write(secret_name, b"\x00\x01binary".hex(), tags={"file-encoding": "hex"})
    assert kv_backend.fetch(ref(secret_name)).value == b"\x00\x01binary"


def test_a_mislabelled_binary_secret_is_an_error_without_its_value(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """A value tagged base64 that is not base64 raises ConfigurationError that does not quote it."""
    value = "not base64 at all!!"
    kv_write(secret_name, value, tags={"file-encoding": "base64"})
    with pytest.raises(ConfigurationError, match="not valid base64") as info:
        kv_backend.fetch(ref(secret_name))
    assert_no_value_in_error(info.value, value)


def test_certificate_backed_secrets_stay_text(
    kv_backend: AzureKeyVaultBackend, kv_server: KeyVaultServer, secret_name: str
) -> None:
    """A certificate's secret (base64 PFX, no file-encoding tag) comes back as the text Key Vault holds."""
    pfx = base64.b64encode(b"not-really-a-pfx").decode()
    kv_server.put(secret_name, pfx, content_type="application/x-pkcs12", kid="https://x/keys/k/1")
    assert kv_backend.fetch(ref(secret_name)).value == pfx


# -- disabled, expired, not yet valid --------------------------------------------------------


def test_a_disabled_secret_is_access_denied(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """A disabled latest version raises AccessDenied naming the secret and saying it is disabled."""
    kv_write(secret_name, "enabled-once")
    kv_write(secret_name, "now-disabled", enabled=False)
    store = SecretStore([kv_backend])
    with pytest.raises(AccessDenied, match="disabled") as info:
        store.get(f"azure-kv://{secret_name}")
    assert secret_name in str(info.value)
    assert info.value.backend == "azure-kv"
    assert_no_value_in_error(info.value, "now-disabled", "enabled-once")


def test_an_enabled_older_version_of_a_disabled_secret_still_reads(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """Disabling the latest version leaves an older, enabled one readable when pinned."""
    old = kv_write(secret_name, "older-enabled")
    kv_write(secret_name, "newer-disabled", enabled=False)
    assert kv_backend.fetch(ref(secret_name, version=old)).value == "older-enabled"


def test_an_expired_secret_is_refused_though_key_vault_returns_it(
    kv_backend: AzureKeyVaultBackend, kv_writer: SecretClient, kv_write: Write, secret_name: str
) -> None:
    """Key Vault hands out a secret past its exp; the backend raises AccessDenied instead, value-free."""
    past = datetime.now(UTC) - timedelta(hours=1)
    kv_write(secret_name, "expired-value", expires_on=past)
    assert kv_writer.get_secret(secret_name).value == "expired-value"  # the service does return it
    with pytest.raises(AccessDenied, match="expired") as info:
        kv_backend.fetch(ref(secret_name))
    assert_no_value_in_error(info.value, "expired-value")


def test_a_not_yet_valid_secret_is_refused(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """A version whose nbf is in the future raises AccessDenied saying from when it is valid."""
    kv_write(secret_name, "future-value", not_before=datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(AccessDenied, match="not valid before") as info:
        kv_backend.fetch(ref(secret_name))
    assert_no_value_in_error(info.value, "future-value")


def test_an_expiry_caps_how_long_the_value_is_cached(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str
) -> None:
    """A value expiring in 100 s is fetched again after 100 s even though the store's TTL is 300 s."""
    kv_write(secret_name, "short-lived", expires_on=datetime.now(UTC) + timedelta(seconds=100))
    fetched = kv_backend.fetch(ref(secret_name))
    assert fetched.ttl is not None and 0 < fetched.ttl <= 100
    counting = CountingBackend(kv_backend)
    clock = FakeClock()
    store = SecretStore([counting], ttl=300, jitter=0.0, clock=clock)
    key = f"azure-kv://{secret_name}"
    store.get(key)
    clock.advance(50)
    store.get(key)
    assert counting.fetch_calls == 1
    clock.advance(60)
    store.get(key)
    assert counting.fetch_calls == 2


# -- errors ----------------------------------------------------------------------------------


def test_a_denied_secret_is_access_denied_with_the_role_to_grant(
    kv_backend: AzureKeyVaultBackend, kv_server: KeyVaultServer, secret_name: str
) -> None:
    """A 403 from Key Vault raises AccessDenied naming the secret and the permission to grant."""
    kv_server.put(secret_name, "guarded-value")
    kv_server.deny(secret_name)
    with pytest.raises(AccessDenied, match="Key Vault Secrets User") as info:
        kv_backend.fetch(ref(secret_name))
    assert secret_name in str(info.value)
    assert_no_value_in_error(info.value, "guarded-value")


def test_a_rejected_token_is_access_denied(kv_server: KeyVaultServer, secret_name: str) -> None:
    """A credential whose token the vault rejects (401 after the challenge) raises AccessDenied."""
    kv_server.put(secret_name, "needs-a-good-token")
    backend = AzureKeyVaultBackend(
        kv_server.url, StaticTokenCredential(token="wrong-token"), **kv_server.client_options()
    )
    try:
        with pytest.raises(AccessDenied, match="could not authenticate") as info:
            backend.fetch(ref(secret_name))
    finally:
        backend.close()
    assert_no_value_in_error(info.value, "needs-a-good-token")


class _NoCredential:
    """A credential with nothing configured, as DefaultAzureCredential is on a bare laptop."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.identity import CredentialUnavailableError

        raise CredentialUnavailableError(message="no credential is configured in this environment")


def test_a_credential_that_cannot_get_a_token_is_access_denied(kv_server: KeyVaultServer) -> None:
    """When the credential has no token to give, the error says how to configure one."""
    backend = AzureKeyVaultBackend(kv_server.url, _NoCredential(), **kv_server.client_options())
    try:
        with pytest.raises(AccessDenied, match=r"no credential is configured.*az login"):
            backend.fetch(ref("anything"))
    finally:
        backend.close()


def test_an_unreachable_vault_is_backend_unavailable_with_the_cause(kv_server: KeyVaultServer) -> None:
    """Nothing listening at the vault URL raises BackendUnavailable with the SDK error chained."""
    from azure.core.exceptions import ServiceRequestError

    backend = AzureKeyVaultBackend(
        f"https://127.0.0.1:{free_port()}", StaticTokenCredential(), **kv_server.client_options()
    )
    try:
        with pytest.raises(BackendUnavailable, match="could not reach") as info:
            backend.fetch(ref("anything"))
    finally:
        backend.close()
    assert isinstance(info.value.__cause__, ServiceRequestError)


def test_an_untrusted_certificate_is_backend_unavailable(kv_server: KeyVaultServer) -> None:
    """A vault whose certificate is not trusted is unreachable, not a silent downgrade."""
    options = {**kv_server.client_options(), "connection_verify": True}
    backend = AzureKeyVaultBackend(kv_server.url, StaticTokenCredential(), **options)
    try:
        with pytest.raises(BackendUnavailable, match="could not reach"):
            backend.fetch(ref("anything"))
    finally:
        backend.close()


@pytest.mark.parametrize("kind", ["garbled", "truncated"])
def test_a_broken_response_never_leaks_the_value(
    kv_backend: AzureKeyVaultBackend, kv_server: KeyVaultServer, secret_name: str, kind: str
) -> None:
    """A 200 whose body is cut short raises BackendUnavailable with no SDK error (or value) attached."""
    value = f"partially-sent-value-{kind}"
    kv_server.put(secret_name, value)
    kv_server.fault(secret_name, kind)
    try:
        with pytest.raises(BackendUnavailable) as info:
            kv_backend.fetch(ref(secret_name))
        err = info.value
        assert err.__cause__ is None and err.__context__ is None
        assert_no_value_in_error(err, value)
        store = SecretStore([kv_backend], negative_ttl=0)
        with pytest.raises(BackendUnavailable) as through_store:
            store.get(f"azure-kv://{secret_name}")
        assert_no_value_in_error(through_store.value, value)
    finally:
        kv_server.fault(secret_name, None)
    assert kv_backend.fetch(ref(secret_name)).value == value


def test_network_trace_logging_is_refused() -> None:
    """logging_enable=True would log response bodies (values), so the backend refuses it."""
    with pytest.raises(ConfigurationError, match="logging_enable"):
        AzureKeyVaultBackend("https://vlt1.vault.azure.net", StaticTokenCredential(), logging_enable=True)


def test_debug_logging_never_shows_a_value(
    kv_backend: AzureKeyVaultBackend, kv_write: Write, secret_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With every logger at DEBUG, reading a secret logs no value."""
    value = "value-that-must-not-be-logged"
    kv_write(secret_name, value)
    with caplog.at_level("DEBUG"):
        store = SecretStore([kv_backend])
        assert store.get(f"azure-kv://{secret_name}").reveal() == value
    assert caplog.records  # the SDK did log (requests, responses)
    assert value not in caplog.text


# -- outages ---------------------------------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[KeyVaultServer]:
    """A vault of this test's own, which it may stop and start."""
    server = KeyVaultServer(free_port()).start()
    yield server
    server.close()


def test_an_outage_serves_cached_values_and_recovery_brings_the_new_version(
    own_server: KeyVaultServer,
) -> None:
    """While the vault is down the last good value is served; once it is back, the rotated one is."""
    backend = AzureKeyVaultBackend(own_server.url, StaticTokenCredential(), **own_server.client_options())
    clock = FakeClock()
    store = SecretStore([backend], ttl=60, jitter=0.0, max_stale=3600, clock=clock)
    own_server.put("outage-secret", "before-outage")
    own_server.put("never-read", "cold")
    key = "azure-kv://outage-secret"
    assert store.get(key).reveal() == "before-outage"

    own_server.stop()
    clock.advance(61)
    assert store.get(key).reveal() == "before-outage"
    assert store.stats()["stale_served"] >= 1
    with pytest.raises(BackendUnavailable):
        store.get("azure-kv://never-read")  # nothing cached to fall back on

    own_server.put("outage-secret", "after-outage")  # rotated while clients could not see it
    own_server.start()
    clock.advance(120)
    store.get(key)  # stale, and schedules a refresh now that the backoff has passed
    assert store.wait_idle(10)
    assert store.get(key).reveal() == "after-outage"
    store.close()


def test_a_restarted_vault_is_reached_again(own_server: KeyVaultServer) -> None:
    """After the vault comes back, a backend whose connections died fetches again without help."""
    backend = AzureKeyVaultBackend(own_server.url, StaticTokenCredential(), **own_server.client_options())
    own_server.put("restart-secret", "still-here")
    try:
        assert backend.fetch(ref("restart-secret")).value == "still-here"
        own_server.stop()
        with pytest.raises(BackendUnavailable):
            backend.fetch(ref("restart-secret"))
        own_server.start()
        deadline = time.monotonic() + 5
        while True:  # the listener may take a moment to accept again
            try:
                assert backend.fetch(ref("restart-secret")).value == "still-here"
                break
            except BackendUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        backend.close()


# -- packaging -------------------------------------------------------------------------------


def test_importing_the_backend_module_imports_no_sdk() -> None:
    """``secretkit.backends.azure`` imports nothing from azure until a backend is built."""
    code = (
        "import sys, secretkit.backends.azure\n"
        "loaded = sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_missing_sdk_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without azure-keyvault-secrets, building the backend says which extra to install."""
    monkeypatch.setitem(sys.modules, "azure.keyvault.secrets", None)
    with pytest.raises(MissingDependency, match=r'pip install "secretkit\[azure\]"'):
        AzureKeyVaultBackend("vlt1")


def test_a_missing_azure_identity_is_reported_when_a_credential_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without azure-identity and without a credential, the first client names the missing package."""
    backend = AzureKeyVaultBackend("vlt1")
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    with pytest.raises(MissingDependency, match="azure-identity"):
        backend.secret_client()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_opens_its_own_connection(own_server: KeyVaultServer) -> None:
    """After fork the child reads through a connection of its own, never through the parent's TLS stream."""
    backend = AzureKeyVaultBackend(own_server.url, StaticTokenCredential(), **own_server.client_options())
    own_server.put("fork-secret", "forked-value")
    assert backend.fetch(ref("fork-secret")).value == "forked-value"
    before = own_server.connections
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            ok = backend.fetch(ref("fork-secret")).value == "forked-value"
            os.write(write_fd, json.dumps({"read": ok}).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + 15
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("the child hung after fork")
        time.sleep(0.02)
    with os.fdopen(read_fd) as pipe:
        assert json.loads(pipe.read() or "{}") == {"read": True}
    assert own_server.connections == before + 1
    assert backend.fetch(ref("fork-secret")).value == "forked-value"  # the parent's connection is intact
    backend.close()
