"""Vault goes away and comes back: cached values keep being served, then the backend recovers.

The test has an OpenBao server of its own, since it stops it. A dev server keeps its data
in memory, so after the restart the test writes the secret again (as a new value).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from secretkit import BackendUnavailable, SecretRef, SecretStore
from secretkit.backends.vault import TokenAuth, VaultBackend
from secretkit.testing import FakeClock, assert_no_value_in_error
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer


@pytest.fixture
def own_openbao() -> Iterator[OpenBaoServer]:
    """An OpenBao server of this test's own, which the test may stop and restart."""
    with OpenBaoServer() as server:
        yield server


@pytest.mark.slow
def test_outage_serves_cached_values_and_recovers_after_restart(own_openbao: OpenBaoServer) -> None:
    """While Vault is down the last good value is served; once it is back, the new value is read."""
    OpenBaoAdmin(own_openbao).put("app/db", {"password": "before-outage"})
    clock = FakeClock()
    backend = VaultBackend(url=own_openbao.url, auth=TokenAuth(own_openbao.root_token), clock=clock)
    store = SecretStore(
        [backend], ttl=60, jitter=0.0, max_stale=3600, backoff_base=1.0, backoff_max=30.0, clock=clock
    )
    key = "vault://secret/app/db#password"
    try:
        assert store.get(key).reveal() == "before-outage"

        own_openbao.stop()
        clock.advance(61)
        assert store.get(key).reveal() == "before-outage"
        assert store.stats()["stale_served"] >= 1
        with pytest.raises(BackendUnavailable, match="Vault"):
            backend.fetch(SecretRef.parse(key).base)

        own_openbao.restart()
        OpenBaoAdmin(own_openbao).put("app/db", {"password": "after-restart"})
        clock.advance(31)  # past the longest backoff step
        store.get(key)  # still the stale value; starts a background retry
        assert store.wait_idle(timeout=60)
        assert store.get(key).reveal() == "after-restart"
    finally:
        store.close()


def test_a_server_that_is_not_there_is_backend_unavailable() -> None:
    """Nothing listening at VAULT_ADDR is BackendUnavailable naming the address, not a raw requests error."""
    from servers.openbao_server import free_port_pair

    url = f"http://127.0.0.1:{free_port_pair()}"
    backend = VaultBackend(url=url, auth=TokenAuth("unused-token"), kv_version=2)
    try:
        with pytest.raises(BackendUnavailable, match=url):
            backend.fetch(SecretRef.parse("vault://secret/app/x"))
    finally:
        backend.close()


def test_a_sealed_vault_is_backend_unavailable(own_openbao: OpenBaoServer) -> None:
    """A sealed Vault answers 503: BackendUnavailable saying it is sealed, so stale values are served."""
    OpenBaoAdmin(own_openbao).put("app/db", {"password": "sealed-away"})
    backend = VaultBackend(url=own_openbao.url, auth=TokenAuth(own_openbao.root_token))
    try:
        ref = SecretRef.parse("vault://secret/app/db?key=password")
        assert backend.fetch(ref).value == "sealed-away"
        own_openbao.client().sys.seal()
        with pytest.raises(BackendUnavailable, match="sealed") as info:
            backend.fetch(ref)
        assert_no_value_in_error(info.value, "sealed-away", own_openbao.root_token)
    finally:
        backend.close()
