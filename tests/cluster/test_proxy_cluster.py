"""Workers behind a real ``bao proxy`` whose Vault is the three-node cluster, behind a load balancer.

The deployment a fleet runs: one Proxy per host, pointed at the cluster's load balancer
(here the counting tap, taking the nodes in turn and passing over a stopped one). The
cluster's nodes answer with ``X-Vault-Index``. The Proxy's lease cache keys on every
header, that one included, so the backend sends the index back only with KV reads (which the
Proxy passes through uncached) and never with a lease request: the host still shares one lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.openbao_cluster import OpenBaoCluster
from servers.openbao_proxy import OpenBaoProxy, RequestTap
from servers.openbao_server import OpenBaoAdmin
from servers.proxy_fleet import Fleet, fleet_on, run_workers

pytestmark = pytest.mark.slow

WORKERS = 4


@pytest.fixture
def balancer(cluster: OpenBaoCluster) -> Iterator[RequestTap]:
    with RequestTap(*cluster.urls) as running:
        yield running


@pytest.fixture
def fleet(cluster: OpenBaoCluster, database: str, tmp_path: Path) -> Fleet:
    """Five KV secrets and the database role's credential, for an AppRole the Proxy logs in with."""
    made = fleet_on(OpenBaoAdmin(cluster), tmp_path / "fleet", secrets=5, database_mount=database)
    cluster.put(f"fleet-ready/{tmp_path.name}", {"v": "1"})  # waits until every node has it all
    return made


def _kill_leader_after(cluster: OpenBaoCluster, delay: float, happened: dict[str, float]) -> threading.Thread:
    def kill() -> None:
        time.sleep(delay)
        leader = cluster.active()
        happened["killed"] = time.monotonic()
        cluster.stop_node(leader, kill=True)
        cluster.active(timeout=30)
        happened["elected"] = time.monotonic()
        happened["elected_wall"] = time.time()

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def test_a_host_behind_a_proxy_loses_no_read_and_keeps_its_one_lease_through_a_leader_loss(
    cluster: OpenBaoCluster, balancer: RequestTap, fleet: Fleet, database: str
) -> None:
    """Four workers read through the Proxy while the leader dies: no failed read, one login, one lease."""
    assert fleet.credential is not None
    with OpenBaoProxy(balancer.url, fleet.approle_mount, fleet.role_id, fleet.secret_id) as proxy:
        happened: dict[str, float] = {}
        killer = _kill_leader_after(cluster, 5.0, happened)
        try:
            # A 1 s store ttl: every worker goes back through the Proxy all through the fault.
            reports = run_workers(
                WORKERS, "own", Fleet.proxy_env(proxy.url), fleet.names, ttl=1.0, duration=20.0
            )
        finally:
            killer.join(60)
        leases = {v for r in reports for v in r["versions"][fleet.credential]}

        (lease_id,) = leases
        lease = cluster.lease(lease_id)
    kv_indexed = balancer.count("GET", "/v1/secret/data/", indexed=True)
    print(
        f"\nproxy in front of the cluster: election {happened['elected'] - happened['killed']:.2f} s, "
        f"{sum(balancer.counts().values())} requests reached the nodes; KV reads "
        f"{balancer.count('GET', '/v1/secret/data/')}, of which {kv_indexed} carried X-Vault-Index"
    )
    assert [r["failed"] for r in reports] == [0] * WORKERS
    assert balancer.logins(fleet.approle_mount) == 1
    assert balancer.count("GET", f"/v1/{database}/creds/app") == 1
    # The index went back with KV reads, which the Proxy never caches, and not with the lease
    # request, which it does: its cache keys on every header.
    assert kv_indexed > 0
    assert balancer.count("GET", f"/v1/{database}/creds/", indexed=True) == 0
    assert lease["ttl"] > 0
