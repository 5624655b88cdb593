"""A response cut short is an outage, never a missing secret, on every remote backend.

The proxy closes each connection after 100 bytes of response: inside the HTTP headers,
which some clients still parse as an empty ``200``. Read as "not found", that would make
the store drop a held value and fail every reader; read as unavailable, the held value is
served and a cold read fails with ``BackendUnavailable``.
"""

from __future__ import annotations

import time

import pytest

from network._remotes import NETWORK_TEST, Remote
from secretkit import BackendUnavailable

pytestmark = NETWORK_TEST

VALUE = "truncated-value-5d1e"


def test_cut_response_is_unavailable_not_missing(remote: Remote) -> None:
    """A cold read through a connection cut after 100 bytes raises BackendUnavailable."""
    ref = remote.secret(VALUE)
    store = remote.store(deadline=2.0)
    try:
        remote.proxy.set("close_after", 100)
        with pytest.raises(BackendUnavailable) as caught:
            store.get(ref)
        assert VALUE not in str(caught.value)
    finally:
        remote.proxy.set("pass")
        store.close()


def test_held_key_survives_cut_responses(remote: Remote) -> None:
    """While every response is cut short, a held key past its TTL keeps being served."""
    ref = remote.secret(VALUE)
    store = remote.store(ttl=0.3, refresh_ahead=0.5, jitter=0.0, max_stale=3600, deadline=2.0)
    try:
        assert store.get(ref).reveal() == VALUE
        remote.proxy.set("close_after", 100)
        for _ in range(6):
            time.sleep(0.15)
            assert store.get(ref).reveal() == VALUE
        assert store.wait_idle(timeout=5)
        assert store.get(ref).reveal() == VALUE
    finally:
        remote.proxy.set("pass")
        store.close()
