"""The cold path: many secrets in a few round trips, set-up asked once, and an overloaded server left alone.

Real SDKs against real servers: the fault proxy adds latency and counts requests; the
refusing forwarder of ``_refusing.py`` stands in for an overloaded Vault (429 / 503 with
``Retry-After``). Timing bounds are generous multiples of the injected latency, set
between what the old fixed limit of 8 calls cost and what the adaptive limit costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from network._refusing import Refusing
from network._remotes import NETWORK_TEST, ColdReaders, Remote
from secretkit import BackendUnavailable, SecretStore
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer

pytestmark = NETWORK_TEST

GetRemote = Callable[[str], Remote]
LATENCY = 0.2


def test_a_prefetch_of_100_secrets_costs_a_few_round_trips_not_one_per_eight(remote: Remote) -> None:
    """100 secrets at 200 ms take under 10 round trips on every backend (8 at a time took over 13)."""
    refs = [remote.secret(f"cold-{i}") for i in range(100)]
    remote.proxy.set("latency", LATENCY * 1000)
    store = remote.store(deadline=10.0)
    try:
        started = time.perf_counter()
        assert store.prefetch(refs) == {}
        took = time.perf_counter() - started
        assert store.get(refs[-1]).reveal() == "cold-99"
    finally:
        remote.proxy.set("pass")
        store.close()
    assert took < 10 * LATENCY, f"prefetch of 100 took {took / LATENCY:.1f} round trips"


def test_a_prefetch_of_40_vault_secrets_makes_40_reads_and_asks_the_set_up_once(remotes: GetRemote) -> None:
    """40 Vault secrets: 40 reads, one token look-up, one mount look-up (not one per worker)."""
    remote = remotes("vault")
    refs = [remote.secret(f"count-{i}") for i in range(40)]
    remote.proxy.set("latency", 20)  # enough that the first calls overlap, as over a real link
    store = remote.store(deadline=5.0)
    try:
        before = remote.proxy.requests
        assert store.prefetch(refs) == {}
        made = remote.proxy.requests - before
    finally:
        remote.proxy.set("pass")
        store.close()
    assert 40 <= made <= 42, f"{made} requests for 40 secrets"


def test_concurrent_cold_gets_of_one_vault_mount_look_it_up_once(remotes: GetRemote) -> None:
    """20 threads reading 20 cold Vault secrets of one mount share one token and one mount look-up."""
    remote = remotes("vault")
    refs = [remote.secret(f"get-{i}") for i in range(20)]
    remote.proxy.set("latency", 20)
    store = remote.store(deadline=5.0)
    try:
        readers = ColdReaders(store, refs)
        before = remote.proxy.requests
        readers.go(timeout=30)
        made = remote.proxy.requests - before
    finally:
        remote.proxy.set("pass")
        store.close()
    assert readers.failures == []
    assert 20 <= made <= 22, f"{made} requests for 20 secrets"


@pytest.fixture
def refusing(net_openbao: OpenBaoServer) -> Iterator[Refusing]:
    shim = Refusing(net_openbao.host, net_openbao.port).start()
    yield shim
    shim.stop()


@pytest.mark.parametrize("status", [429, 503])
def test_a_vault_refusing_with_retry_after_is_not_asked_again_until_then(
    net_openbao: OpenBaoServer, refusing: Refusing, status: int
) -> None:
    """A 429/503 with Retry-After holds the next read until then; one past the deadline fails unsent."""
    from secretkit.backends.vault import TokenAuth, VaultBackend

    admin = OpenBaoAdmin(net_openbao)
    names = [admin.unique("throttled") for _ in range(5)]
    for name in names:
        admin.put(f"net/{name}", {"v": name})
    refs = [f"vault://secret/net/{name}?key=v" for name in names]
    backend = VaultBackend(url=refusing.url, auth=TokenAuth(net_openbao.root_token))
    store = SecretStore([], reference_backends=[backend], deadline=3.0)
    try:
        assert store.get(refs[0]).reveal() == names[0]  # token and mount known: one request a read
        refusing.refuse(status, "1")
        with pytest.raises(BackendUnavailable):
            store.get(refs[1])
        assert refusing.refused == 1
        refusing.refuse(None)
        started = time.perf_counter()
        assert store.get(refs[2]).reveal() == names[2]
        assert time.perf_counter() - started >= 0.8  # sent once the server's second had passed

        refusing.refuse(status, "30")
        with pytest.raises(BackendUnavailable):
            store.get(refs[3])
        asked = refusing.requests
        started = time.perf_counter()
        with pytest.raises(BackendUnavailable, match="asked secretkit to wait"):
            store.get(refs[4])
        assert time.perf_counter() - started < 2.5  # told at once, not at the 3 s deadline
        assert refusing.requests == asked  # nothing was sent
    finally:
        store.close()
