"""The Vault backend given every node of a real cluster: redirects, dead and silent nodes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from secretkit import SecretStore
from secretkit.backends.vault import VaultBackend
from servers.faultproxy import FaultProxy
from servers.openbao_cluster import OpenBaoCluster
from servers.redirecting_node import RedirectingNode

pytestmark = pytest.mark.slow


# A value no other test uses: a Secret registers it for redaction, and a common word such as
# "value" would then be masked in every later test's log lines and tracebacks.
VALUE = f"node-read-{uuid.uuid4().hex[:12]}"


def _secret(cluster: OpenBaoCluster) -> str:
    path = f"app/{uuid.uuid4().hex[:10]}"
    cluster.put(path, {"v": VALUE})
    return f"vault://secret/{path}#v"


def test_a_standby_redirect_to_a_node_of_the_cluster_is_followed(
    cluster: OpenBaoCluster, make_backend: Callable[..., VaultBackend]
) -> None:
    """A 307 to a listed address is Vault saying where the active node is: the read goes there."""
    name = _secret(cluster)
    with RedirectingNode(cluster.active().url) as standby:
        backend = make_backend(addresses=[standby.url, *cluster.urls])
        store = SecretStore([backend])
        try:
            assert store.get(name).reveal() == VALUE
        finally:
            store.close()
        assert standby.seen


@pytest.mark.parametrize("mode", ["blackhole", "reset"])
def test_a_node_that_stops_answering_is_left_within_the_deadline(
    cluster: OpenBaoCluster, make_backend: Callable[..., VaultBackend], mode: str
) -> None:
    """The first node black-holed or resetting: reads move to the next node, and stay there."""
    names = [_secret(cluster) for _ in range(3)]
    first = cluster.nodes[0]
    with FaultProxy("127.0.0.1", first.api_port) as proxy:
        others = [node.url for node in cluster.nodes[1:]]
        silent = f"http://{proxy.address}"
        backend = make_backend(addresses=[silent, *others], timeout=1.0)
        store = SecretStore([backend], deadline=5.0)
        try:
            proxy.set(mode)  # type: ignore[arg-type]
            waits = []
            for name in names:
                began = time.monotonic()
                assert store.get(name).reveal() == VALUE
                waits.append(time.monotonic() - began)
        finally:
            proxy.set("pass")
            store.close()
    print(f"\n{mode}: cold reads took {[round(w, 3) for w in waits]} s")
    # A silent node costs one read timeout (1 s here) once; later reads stay on the node that answered.
    assert waits[0] < 5.0
    assert backend.nodes is not None
    assert backend.nodes.requests_per_node()[silent] == 1
