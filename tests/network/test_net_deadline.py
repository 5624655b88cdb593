"""Every fetch has a total deadline (issue 11, item 2), on every remote backend.

A cold key behind a proxy that never answers, or answers a byte per 100 ms (which no
per-read socket timeout ever trips), fails with ``BackendUnavailable`` naming the deadline
by the deadline (plus scheduling slack); the abandoned attempt holds nothing, so the next
read after the network heals succeeds. For Vault the cold fetch includes the login and the
mount look-up, which go through the proxy too.
"""

from __future__ import annotations

import time

import pytest

from network._remotes import NETWORK_TEST, Remote, time_to_success
from secretkit import BackendUnavailable

pytestmark = NETWORK_TEST

VALUE = "cold-value-91c2"
SLACK = 0.75  # seconds past the deadline allowed for thread scheduling on a loaded machine


@pytest.mark.parametrize(("fault", "amount"), [("blackhole", 0), ("drip", 100)], ids=["blackhole", "drip"])
def test_cold_key_fails_by_the_deadline(remote: Remote, fault: str, amount: int) -> None:
    """A cold read fails within the store's deadline, with an error naming it and no value in it."""
    ref = remote.secret(VALUE)
    store = remote.store(deadline=1.0)
    try:
        remote.proxy.set(fault, amount)  # type: ignore[arg-type]
        started = time.perf_counter()
        # The store's deadline, or (gRPC) the SDK's own connect deadline if it comes first.
        with pytest.raises(BackendUnavailable, match=r"deadline|timed out") as caught:
            store.get(ref)
        took = time.perf_counter() - started
        assert took < 1.0 + SLACK, f"the cold read took {took:.2f} s"
        assert VALUE not in str(caught.value)

        # The abandoned attempt holds no lock or flight: once the network heals, a read succeeds.
        remote.proxy.set("pass")
        assert time_to_success(store, ref, VALUE, limit=3.0) < 1.0 + SLACK
    finally:
        remote.proxy.set("pass")
        store.close()


def test_backend_deadline_overrides_the_store_deadline(remote: Remote) -> None:
    """A backend's own ``deadline`` attribute replaces the store's for its fetches."""
    ref = remote.secret(VALUE)
    backend = remote.backend()
    backend.deadline = 0.5  # type: ignore[attr-defined]
    from secretkit import SecretStore

    store = SecretStore([], reference_backends=[backend], deadline=30.0)
    try:
        remote.proxy.set("blackhole")
        started = time.perf_counter()
        with pytest.raises(BackendUnavailable, match=r"deadline"):
            store.get(ref)
        assert time.perf_counter() - started < 0.5 + SLACK
    finally:
        remote.proxy.set("pass")
        store.close()
