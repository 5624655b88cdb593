"""Losing a Vault leader and an AWS region under load: failed reads, waits, requests per node/region.

Run by hand: ``python benchmarks/bench_failover.py`` (``--quick`` for a shorter run, which
never fails on timing). Two scenarios, each with 8 threads reading 20 held secrets (``ttl``
2 s, so refreshes are due all through the fault) and one thread reading a secret nobody
read before every 50 ms:

- **leader loss**: a three-node OpenBao cluster (raft, ``tests/servers/openbao_cluster.py``),
  the backend given every node; the active node is killed (SIGKILL).
- **regional outage**: moto replicating us-east-1 to us-west-2, each region behind a fault
  proxy of its own; the primary is black-holed, then healed.

Reported: failed held reads (must be 0), the longest wait of a held and of a cold read, the
time from the fault to the first successful cold read, failed cold reads, the election time
or the time back on the primary after healing, and requests per node / region.
No secret value is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from secretkit import SecretStore
from secretkit.backends.aws import AwsSecretsManagerBackend
from secretkit.backends.vault import TokenAuth, VaultBackend
from servers.faultproxy import FaultProxy
from servers.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from servers.openbao_cluster import OpenBaoCluster
from servers.read_load import ReadLoad

HELD = 20


def _report(load: ReadLoad, fault_at: float, counts: dict[str, int], extra: str) -> None:
    after = load.cold_after(fault_at)
    first = min((end - fault_at for _, end, error in after if error is None), default=None)
    longest_cold = max((end - began for began, end, _ in after), default=0.0)
    failed_cold = sum(1 for *_, error in after if error is not None)
    print(f"  failed held reads: {len(load.held_failures)}")
    print(f"  longest wait: held {load.longest_held_wait * 1000:.1f} ms, cold {longest_cold:.2f} s")
    first_text = "none" if first is None else f"{first:.3f} s"
    print(f"  first cold success after the fault: {first_text}; failed cold reads: {failed_cold}")
    print(f"  {extra}")
    print(f"  requests: {counts}")


def leader_loss(settle: float) -> None:
    print("leader loss (3-node OpenBao cluster, leader killed):")
    with OpenBaoCluster() as cluster:
        run = uuid.uuid4().hex[:8]
        for i in range(HELD):
            cluster.admin("POST", f"/v1/secret/data/{run}/held-{i}", {"data": {"v": "x"}})
        for i in range(400):
            cluster.admin("POST", f"/v1/secret/data/{run}/cold-{i}", {"data": {"v": "x"}})
        cluster.put(f"{run}/last", {"v": "x"})
        backend = VaultBackend(addresses=cluster.urls, auth=TokenAuth(cluster.root_token))
        store = SecretStore([backend], ttl=2.0, refresh_ahead=0.5, max_stale=600, backoff_base=0.2)
        held = [f"vault://secret/{run}/held-{i}" for i in range(HELD)]
        for name in held:
            store.get(name)
        try:
            with ReadLoad(store, held, [f"vault://secret/{run}/cold-{i}" for i in range(400)]) as load:
                time.sleep(1.0)
                leader = cluster.active()
                fault_at = time.monotonic()
                cluster.stop_node(leader, kill=True)
                new = cluster.active(timeout=30)
                election = time.monotonic() - fault_at
                time.sleep(settle)
            assert backend.nodes is not None
            _report(
                load,
                fault_at,
                backend.nodes.requests_per_node(),
                f"election: {election:.2f} s ({leader.name} -> {new.name})",
            )
        finally:
            store.close()


def regional_outage(outage: float) -> None:
    print("regional outage (moto, us-east-1 black-holed, replica in us-west-2):")
    with (
        MotoServer() as moto,
        FaultProxy("127.0.0.1", moto.port) as east,
        FaultProxy("127.0.0.1", moto.port) as west,
    ):
        admin = moto.client("secretsmanager")
        run = uuid.uuid4().hex[:8]

        def make(name: str) -> str:
            admin.create_secret(Name=name, SecretString="x", AddReplicaRegions=[{"Region": "us-west-2"}])
            return f"aws-sm://{name}"

        held = [make(f"{run}/held-{i}") for i in range(HELD)]
        cold = [make(f"{run}/cold-{i}") for i in range(100)]
        backend = AwsSecretsManagerBackend(
            regions=["us-east-1", "us-west-2"],
            region_endpoints={"us-east-1": f"http://{east.address}", "us-west-2": f"http://{west.address}"},
        )
        assert backend.regions is not None
        regions = backend.regions
        store = SecretStore([backend], ttl=2.0, refresh_ahead=0.5, max_stale=600, backoff_base=0.2)
        for name in held:
            store.get(name)
        try:
            with ReadLoad(store, held, cold) as load:
                time.sleep(1.0)
                fault_at = time.monotonic()
                east.set("blackhole")
                time.sleep(outage)
                east.set("pass")
                healed = time.monotonic()
                back = _until_back(lambda: regions.requests_per_region(), "us-east-1", "us-west-2", healed)
            counts = regions.requests_per_region()
            _report(load, fault_at, counts, f"back on the primary after healing: {back}")
        finally:
            store.close()


def _until_back(counts: Callable[[], dict[str, int]], primary: str, replica: str, healed: float) -> str:
    """Seconds from healing until the replica stops getting calls while the primary does."""
    while time.monotonic() < healed + 40:
        before = counts()
        time.sleep(0.5)
        now = counts()
        if now[primary] > before[primary] and now[replica] == before[replica]:
            return f"{time.monotonic() - 0.5 - healed:.1f} s"
    return "not within 40 s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (never fails on timing)")
    args = parser.parse_args()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    leader_loss(settle=4.0 if args.quick else 10.0)
    # Longer than one read timeout (3 s), so even a quick run fails over to the replica.
    regional_outage(outage=5.0 if args.quick else 10.0)


if __name__ == "__main__":
    main()
