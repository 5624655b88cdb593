"""Errors stop within one round trip of recovery (issue 11, item 4), on every remote backend.

The outage outlasts ``max_stale`` and the store's backoff is long (30 s): once the proxy
passes traffic again, reads must succeed within about one round trip, because a read that
would re-raise a remembered outage makes (or joins) one fresh attempt first.
"""

from __future__ import annotations

import re
import time

import pytest

from network._remotes import NETWORK_TEST, Remote, time_to_success
from secretkit import BackendUnavailable

pytestmark = NETWORK_TEST

VALUE = "recovering-value-4be0"


@pytest.mark.parametrize("fault", ["reset", "blackhole"])
def test_errors_stop_on_the_first_read_after_recovery(remote: Remote, fault: str) -> None:
    """After an outage longer than max_stale, reads succeed within a second of the network healing."""
    ref = remote.secret(VALUE)
    store = remote.store(
        ttl=0.3, jitter=0.0, max_stale=0.3, deadline=1.0, backoff_base=30.0, backoff_max=60.0
    )
    try:
        assert store.get(ref).reveal() == VALUE
        remote.proxy.set(fault)  # type: ignore[arg-type]
        time.sleep(0.7)  # past the TTL and max_stale: nothing usable is left
        for _ in range(2):
            with pytest.raises(BackendUnavailable) as caught:
                store.get(ref)
            assert VALUE not in str(caught.value)
        remote.proxy.set("pass")
        # One round trip and the store's probe interval, not the 30 s backoff step.
        took = time_to_success(store, ref, VALUE, limit=5.0)
        assert took < 1.0, f"reads kept failing for {took:.2f} s after recovery"
    finally:
        remote.proxy.set("pass")
        store.close()


def test_outage_error_says_what_happened(remote: Remote) -> None:
    """Once the held value is past max_stale, the error says it expired, not that it is still served."""
    ref = remote.secret(VALUE)
    store = remote.store(ttl=0.3, jitter=0.0, max_stale=0.3, deadline=1.0, backoff_base=30.0)
    try:
        store.get(ref)
        remote.proxy.set("reset")
        time.sleep(0.7)
        with pytest.raises(BackendUnavailable) as caught:
            store.get(ref)
        message = str(caught.value)
        assert "served while it lasts" not in message
        # When the value stopped being usable, and the error that followed.
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", message), message
        assert "last error" in message, message
    finally:
        remote.proxy.set("pass")
        store.close()
