"""Losing the leader of a real three-node OpenBao cluster under load, twice.

Eight threads read 20 held secrets whose refresh is due and a leased PostgreSQL credential
(20 s leases, renewed every 13 s), one thread reads secrets nobody has read yet, and the
backend's token renews every few seconds; then the active node is killed (an election
follows), brought back, and the next active node is killed.
"""

from __future__ import annotations

import time
import urllib.error
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from secretkit import SecretStore
from secretkit.backends.vault import TokenAuth
from servers.openbao_cluster import OpenBaoCluster, OpenBaoNode
from servers.postgres_server import Postgres
from servers.read_load import ReadLoad

pytestmark = pytest.mark.slow

HELD = 20
TOKEN_TTL = 12  # seconds: renewed every 8 s


@dataclass
class Fault:
    """What one leader loss did, in seconds from the kill."""

    killed: str
    elected: str
    election: float
    first_cold_success: float | None
    longest_cold_read: float
    cold_failures: int
    cold_failures_after_election: int
    renewals_after: int
    lease_renewed_after: float  # seconds from the election to the lease's first renewal on the new leader


def _last_renewal(cluster: OpenBaoCluster, lease_id: str) -> float:
    """When the server last renewed ``lease_id``, as a Unix time (0 if never)."""
    try:
        stamp = cluster.lease(lease_id).get("last_renewal")
    except urllib.error.HTTPError as exc:
        if exc.code == 400 and "invalid lease" in str(exc):
            return 0.0  # a new leader restores leases in the background: not yet
        raise
    return datetime.fromisoformat(stamp).timestamp() if stamp else 0.0


def _lose_leader(
    cluster: OpenBaoCluster, load: ReadLoad, backend: Any, lease_id: str, settle: float
) -> Fault:
    leader = cluster.active()
    renewals = backend.token_status().renewals
    killed_at = time.monotonic()
    cluster.stop_node(leader, kill=True)
    new: OpenBaoNode = cluster.active(timeout=30)
    elected_at, elected_wall = time.monotonic(), time.time()
    # Long enough for the token (every 8 s) and the lease (every 13 s) to renew on the new leader.
    deadline = elected_at + settle
    while (
        time.monotonic() < deadline
        or backend.token_status().renewals <= renewals
        or _last_renewal(cluster, lease_id) <= elected_wall
    ):
        assert time.monotonic() < elected_at + 3 * TOKEN_TTL, "the token or the lease stopped renewing"
        time.sleep(0.1)
    after = load.cold_after(killed_at)
    successes = [end - killed_at for _, end, error in after if error is None]
    failures = [r for r in after if r[2] is not None]
    return Fault(
        killed=leader.name,
        elected=new.name,
        election=elected_at - killed_at,
        first_cold_success=min(successes) if successes else None,
        longest_cold_read=max((end - began for began, end, _ in after), default=0.0),
        cold_failures=len(failures),
        # A cold read that began once the new leader was active (and the node list had a moment
        # to notice) must succeed.
        cold_failures_after_election=sum(1 for began, _, _ in failures if began > elected_at + 0.5),
        renewals_after=backend.token_status().renewals - renewals,
        lease_renewed_after=_last_renewal(cluster, lease_id) - elected_wall,
    )


def test_losing_the_leader_twice_under_load_fails_no_held_read_and_fires_no_rotation(
    cluster: OpenBaoCluster, make_backend: Any, database: str, postgres: Postgres
) -> None:
    """Held reads never fail, cold reads resume once a leader is elected, token and lease keep renewing."""
    run = uuid.uuid4().hex[:8]
    for i in range(HELD):
        cluster.admin("POST", f"/v1/secret/data/app/{run}/held-{i}", {"data": {"v": f"held-{i}"}})
    cold_count = 100  # read round and round (ReadLoad invalidates a name before reading it again)
    for i in range(cold_count):
        cluster.admin("POST", f"/v1/secret/data/app/{run}/cold-{i}", {"data": {"v": f"cold-{i}"}})
    cluster.put(f"app/{run}/last", {"v": "written after the others"})  # waits for replication
    token = cluster.token(["reader", "db-reader"], ttl=f"{TOKEN_TTL}s", renewable=True)
    backend = make_backend(auth=TokenAuth(token))
    # Refresh due after about a second, so held secrets refresh all through the faults.
    store = SecretStore([backend], ttl=2.0, refresh_ahead=0.5, max_stale=600, backoff_base=0.2, backoff_max=2)
    credential = f"vault://{database}/creds/app?engine=generic"
    held = [f"vault://secret/app/{run}/held-{i}#v" for i in range(HELD)] + [f"{credential}#username"]
    cold = [f"vault://secret/app/{run}/cold-{i}#v" for i in range(cold_count)]
    rotations: list[str] = []
    for name in held:
        store.on_rotate(name, lambda old, new, name=name: rotations.append(name))
        store.get(name)
    lease_id = str(store.get(credential).version)
    try:
        with ReadLoad(store, held, cold) as load:  # 8 held readers, a cold read every 50 ms
            time.sleep(2.0)
            first = _lose_leader(cluster, load, backend, lease_id, settle=4.0)
            restarted = next(node for node in cluster.nodes if node.name == first.killed)
            cluster.start_node(restarted)
            cluster.healthy()
            time.sleep(1.0)
            second = _lose_leader(cluster, load, backend, lease_id, settle=4.0)
        # The token is alive on the last leader: a secret nobody read yet reads.
        last = store.get(f"vault://secret/app/{run}/last#v").reveal()
        held_lease = str(store.get(credential).version)
        user = store.get(f"{credential}#username").reveal()
    finally:
        store.close()
    cold_done = len(load.cold_reads)
    print(
        f"\nleader loss under load: {load.held_reads} held reads, longest held wait "
        f"{load.longest_held_wait * 1000:.1f} ms, {cold_done} cold reads; requests per node "
        f"{backend.nodes.requests_per_node()}"
    )
    for fault in (first, second):
        print(f"  {fault}")
    assert load.held_failures == []
    assert rotations == []
    for fault in (first, second):
        assert fault.killed != fault.elected
        assert fault.first_cold_success is not None
        assert fault.cold_failures_after_election == 0, load.cold_reads
        assert fault.renewals_after >= 1
        assert fault.lease_renewed_after > 0
    assert cold_done > 100  # the cold reader kept going through both faults
    assert last == "written after the others"
    assert held_lease == lease_id, "the lease was renewed through both faults, never replaced"
    # The renewals reached PostgreSQL: the user's login is still valid past the lease's first end.
    query = f"select rolvaliduntil > now() + interval '2 seconds' from pg_roles where rolname = '{user}'"  # noqa: S608
    assert postgres.sql(query) == "t"
