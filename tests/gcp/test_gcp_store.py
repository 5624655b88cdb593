"""A store reading gcp-sm: rotation by version, refresh-ahead, disabled versions, outages and recovery."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from google.api_core import exceptions as google_exceptions
from google.cloud.secretmanager_v1 import SecretManagerServiceClient

from secretkit import AccessDenied, BackendUnavailable, Secret, SecretStore
from secretkit.backends.gcp import GcpSecretManagerBackend
from secretkit.testing import FakeClock
from servers.gcp_server import GcpSecretManagerServer, write_version

PROJECT = "test-project"


def new_id() -> str:
    return f"gcp-{uuid.uuid4().hex[:12]}"


def test_rotation_to_a_new_version_fires_on_rotate_with_both_versions(
    gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient, clock: FakeClock
) -> None:
    """After the TTL a new version is read and on_rotate gets the old and new secrets with their numbers."""
    secret = new_id()
    key = f"gcp-sm://{PROJECT}/{secret}"
    write_version(gcp_client, PROJECT, secret, "rotated-from")
    store = SecretStore([gcp_backend], ttl=60, jitter=0.0, clock=clock)
    rotations: list[tuple[Secret[Any], Secret[Any]]] = []
    store.on_rotate(key, lambda old, new: rotations.append((old, new)))
    assert store.get(key).version == "1"
    write_version(gcp_client, PROJECT, secret, "rotated-to")
    clock.advance(61)
    current = store.get(key)
    assert (current.reveal(), current.version) == ("rotated-to", "2")
    assert [(old.version, new.version) for old, new in rotations] == [("1", "2")]


def test_a_cached_read_makes_no_call(
    gcp_backend: GcpSecretManagerBackend, gcp_server: GcpSecretManagerServer, clock: FakeClock
) -> None:
    """Within the TTL, reads are served from the cache: one AccessSecretVersion call in all."""
    secret = new_id()
    gcp_server.add_version(PROJECT, secret, "cached-once")
    store = SecretStore([gcp_backend], ttl=60, jitter=0.0, clock=clock)
    for _ in range(5):
        assert store.get(f"gcp-sm://{secret}").reveal() == "cached-once"
        clock.advance(5)
    assert gcp_server.access_count(f"/secrets/{secret}/") == 1


def test_refresh_ahead_serves_the_cached_value_and_refreshes_in_the_background(
    gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient, clock: FakeClock
) -> None:
    """Past refresh-ahead a read returns the cached value at once; a background refresh brings the new one."""
    secret = new_id()
    key = f"gcp-sm://{secret}"
    write_version(gcp_client, PROJECT, secret, "cached-value")
    store = SecretStore([gcp_backend], ttl=60, refresh_ahead=0.5, jitter=0.0, clock=clock)
    try:
        assert store.get(key).reveal() == "cached-value"
        write_version(gcp_client, PROJECT, secret, "refreshed-value")
        clock.advance(31)
        assert store.get(key).reveal() == "cached-value"
        assert store.wait_idle()
        assert store.get(key).reveal() == "refreshed-value"
    finally:
        store.close()


def test_a_json_field_of_a_pinned_version(
    gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient
) -> None:
    """``gcp-sm://P/S#field?version=N`` picks one key of that version's JSON."""
    secret = new_id()
    write_version(gcp_client, PROJECT, secret, '{"password": "pw-version-1"}')
    write_version(gcp_client, PROJECT, secret, '{"password": "pw-version-2"}')
    store = SecretStore([gcp_backend])
    assert store.get(f"gcp-sm://{PROJECT}/{secret}#password?version=1").reveal() == "pw-version-1"
    assert store.get(f"gcp-sm://{PROJECT}/{secret}#password").reveal() == "pw-version-2"


def test_a_disabled_newest_version_stops_being_served_after_the_ttl(
    gcp_backend: GcpSecretManagerBackend, gcp_client: SecretManagerServiceClient, clock: FakeClock
) -> None:
    """Disabling the version in use is a revocation: after the TTL the store raises instead of serving it."""
    secret = new_id()
    key = f"gcp-sm://{secret}"
    write_version(gcp_client, PROJECT, secret, "soon-revoked")
    store = SecretStore([gcp_backend], ttl=60, jitter=0.0, negative_ttl=0, clock=clock)
    assert store.get(key).reveal() == "soon-revoked"
    gcp_client.disable_secret_version(request={"name": f"projects/{PROJECT}/secrets/{secret}/versions/1"})
    clock.advance(61)
    with pytest.raises(AccessDenied) as info:
        store.get(key)
    assert "version 1" in str(info.value)
    assert "DISABLED" in str(info.value)


def test_a_corrupt_payload_is_never_served_the_last_good_value_is(
    gcp_backend: GcpSecretManagerBackend,
    gcp_server: GcpSecretManagerServer,
    clock: FakeClock,
) -> None:
    """When a refresh brings a payload whose checksum fails, the store keeps serving the last good value."""
    secret = new_id()
    key = f"gcp-sm://{secret}"
    gcp_server.add_version(PROJECT, secret, "good-value")
    store = SecretStore([gcp_backend], ttl=60, jitter=0.0, clock=clock)
    assert store.get(key).reveal() == "good-value"
    gcp_server.add_version(PROJECT, secret, "corrupt-value")
    gcp_server.checksum_fault(PROJECT, secret, "wrong")
    clock.advance(61)
    assert store.get(key).reveal() == "good-value"
    assert store.stats()["stale_served"] == 1


@pytest.mark.slow
def test_an_outage_serves_cached_values_and_the_store_recovers(
    private_server: GcpSecretManagerServer, clock: FakeClock
) -> None:
    """Server down: cached values are served, a cold read fails; server back: the new version is read."""
    server = private_server
    server.add_version(PROJECT, "db-password", "before-outage")
    server.add_version(PROJECT, "never-read", "cold-value")
    backend = GcpSecretManagerBackend(project=PROJECT, endpoint=f"http://{server.address}")
    store = SecretStore([backend], ttl=60, jitter=0.0, backoff_base=1.0, backoff_max=2.0, clock=clock)
    key = "gcp-sm://db-password"
    rotations: list[tuple[str | None, str | None]] = []
    store.on_rotate(key, lambda old, new: rotations.append((old.version, new.version)))
    try:
        assert store.get(key).reveal() == "before-outage"
        server.stop()

        clock.advance(61)
        assert store.get(key).reveal() == "before-outage"
        with pytest.raises(BackendUnavailable) as cold:
            store.get("gcp-sm://never-read")
        cause = cold.value.__cause__
        assert isinstance(cause, google_exceptions.RetryError | google_exceptions.ServiceUnavailable)

        server.add_version(PROJECT, "db-password", "after-outage")
        server.start()
        # The client reconnects on its own schedule: poll, bounded, stepping past the store's backoff.
        deadline = time.monotonic() + 20
        while store.get(key).reveal() != "after-outage":
            assert time.monotonic() < deadline, "the store did not recover after the server came back"
            store.wait_idle()
            clock.advance(3)
            time.sleep(0.05)
        assert rotations == [("1", "2")]
        assert store.get("gcp-sm://never-read").reveal() == "cold-value"
    finally:
        store.close()
