"""A recreated secret fires ``on_rotate`` (issue 11, item 5), on every remote backend.

Deleting a secret and writing it again restarts its version numbering on Vault ("1" again)
and GCP; on AWS and Azure the new secret gets a new version id. Either way the store sees
a rotation (a version that changed or went backwards, or a changed value) and tells its
subscribers once, with the old and new values.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from network._remotes import NETWORK_TEST, Remote
from secretkit import Secret

pytestmark = NETWORK_TEST


def test_recreated_secret_fires_on_rotate(remote: Remote) -> None:
    """Delete-and-rewrite is a rotation: one on_rotate call with the old and the new value."""
    name = f"net-{uuid.uuid4().hex[:12]}"
    remote.write(name, "rotation-old-1")
    remote.write(name, "rotation-old-2")
    ref = remote.ref(name)
    remote.proxy.set("latency", 20)
    store = remote.store(ttl=0.3, jitter=0.0, max_stale=3600, deadline=5.0)
    rotations: list[tuple[Any, Any]] = []

    def rotated(old: Secret[Any], new: Secret[Any]) -> None:
        rotations.append((old.reveal(), new.reveal()))

    try:
        assert store.get(ref).reveal() == "rotation-old-2"
        store.on_rotate(ref, rotated)
        remote.recreate(name, "rotation-new")
        time.sleep(0.35)
        store.get(ref)  # past the TTL: returns the held value, refreshes in the background
        assert store.wait_idle(timeout=10)
        assert store.get(ref).reveal() == "rotation-new"
        assert rotations == [("rotation-old-2", "rotation-new")]
    finally:
        remote.proxy.set("pass")
        store.close()
