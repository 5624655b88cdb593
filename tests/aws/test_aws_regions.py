"""Replica regions: a regional outage is ridden out on a replica that keeps the version id.

One moto server replicates secrets from us-east-1 to us-west-2; each region's endpoint is a
fault proxy of its own, so one region can be black-holed or reset while the other answers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from secretkit import SecretStore
from secretkit._errors import BackendUnavailable, ConfigurationError, SecretNotFound
from secretkit.backends.aws import AwsSecretsManagerBackend
from servers.faultproxy import FaultProxy
from servers.moto_server import MotoServer
from servers.read_load import ReadLoad

PRIMARY, REPLICA = "us-east-1", "us-west-2"


@dataclass
class TwoRegions:
    moto: MotoServer
    east: FaultProxy
    west: FaultProxy
    admin: Any

    def backend(self, **kwargs: Any) -> AwsSecretsManagerBackend:
        return AwsSecretsManagerBackend(
            regions=[PRIMARY, REPLICA],
            region_endpoints={PRIMARY: f"http://{self.east.address}", REPLICA: f"http://{self.west.address}"},
            **kwargs,
        )

    def replicated(self, value: str) -> tuple[str, str]:
        """A new secret in the primary, replicated: ``(name, VersionId)``."""
        name = f"app/{uuid.uuid4().hex[:10]}"
        made = self.admin.create_secret(
            Name=name, SecretString=value, AddReplicaRegions=[{"Region": REPLICA}]
        )
        return name, str(made["VersionId"])


@pytest.fixture
def regions(moto: MotoServer, sm_admin: Any) -> Iterator[TwoRegions]:
    with FaultProxy("127.0.0.1", moto.port) as east, FaultProxy("127.0.0.1", moto.port) as west:
        yield TwoRegions(moto, east, west, sm_admin)
        east.set("pass")
        west.set("pass")


def test_a_replica_serves_the_same_value_and_version_id_when_the_primary_is_black_holed(
    regions: TwoRegions,
) -> None:
    """Failing over is not a rotation: the replica's value and VersionId are the primary's."""
    name, version = regions.replicated("replicated-value")
    backend = regions.backend()
    store = SecretStore([backend])
    try:
        regions.east.set("blackhole")
        began = time.monotonic()
        secret = store.get(f"aws-sm://{name}")
        took = time.monotonic() - began
        assert secret.reveal() == "replicated-value"
        assert secret.version == version
        assert took < store.deadline
        assert backend.regions is not None
        assert backend.regions.requests_per_region()[REPLICA] == 1
    finally:
        store.close()


def test_a_reference_pinned_to_a_region_never_fails_over(regions: TwoRegions) -> None:
    """``?region=us-east-1`` means that region: its outage is the reference's outage."""
    name, _ = regions.replicated("pinned")
    backend = regions.backend()
    store = SecretStore([backend], deadline=2.0)
    try:
        regions.east.set("reset")
        with pytest.raises(BackendUnavailable):
            store.get(f"aws-sm://{name}?region={PRIMARY}")
        assert backend.regions is not None
        assert backend.regions.requests_per_region()[REPLICA] == 0
        assert store.get(f"aws-sm://{name}?region={REPLICA}").reveal() == "pinned"
    finally:
        store.close()


def test_a_secret_the_primary_says_does_not_exist_is_not_served_from_another_region(
    regions: TwoRegions, moto: MotoServer
) -> None:
    """Not found in the primary is an answer, not an outage: no region is asked after it."""
    name = f"app/{uuid.uuid4().hex[:10]}"
    moto.client("secretsmanager", region_name=REPLICA).create_secret(Name=name, SecretString="west only")
    store = SecretStore([regions.backend()])
    try:
        with pytest.raises(SecretNotFound):
            store.get(f"aws-sm://{name}")
    finally:
        store.close()


def test_a_batch_read_fails_over_to_the_replica_with_the_primary_reset(regions: TwoRegions) -> None:
    """``prefetch`` (BatchGetSecretValue) of a black-holed primary is served by the replica."""
    made = [regions.replicated(f"batch-{i}") for i in range(5)]
    backend = regions.backend()
    store = SecretStore([backend])
    try:
        regions.east.set("reset")
        store.prefetch([f"aws-sm://{name}" for name, _ in made])
        for i, (name, version) in enumerate(made):
            secret = store.get(f"aws-sm://{name}")
            assert (secret.reveal(), secret.version) == (f"batch-{i}", version)
    finally:
        store.close()


def test_regions_that_are_not_region_names_are_refused_before_any_call() -> None:
    """A region list is configuration: a typo is a ConfigurationError, not an outage."""
    with pytest.raises(ConfigurationError):
        AwsSecretsManagerBackend(regions=["us-east-1", "us-east-1"])
    with pytest.raises(ConfigurationError):
        AwsSecretsManagerBackend(regions=["us-east-1", "x@evil/"])


def test_a_regional_outage_under_load_fails_no_held_read_and_returns_to_the_primary_when_it_heals(
    regions: TwoRegions,
) -> None:
    """8 readers of 20 held secrets and a cold reader ride out a black-holed primary, then go home."""
    held = [regions.replicated(f"held-{i}") for i in range(20)]
    cold = [regions.replicated(f"cold-{i}") for i in range(60)]
    backend = regions.backend()
    store = SecretStore([backend], ttl=1.0, refresh_ahead=0.5, max_stale=600, backoff_base=0.2, backoff_max=1)
    rotations: list[str] = []
    refs = [f"aws-sm://{name}" for name, _ in held]
    for ref in refs:
        store.on_rotate(ref, lambda old, new, ref=ref: rotations.append(ref))
        store.get(ref)
    cold_refs = [f"aws-sm://{name}" for name, _ in cold]
    assert backend.regions is not None
    try:
        with ReadLoad(store, refs, cold_refs, cold_every=0.1, pause=0.002) as load:
            time.sleep(1.0)
            outage = time.monotonic()
            regions.east.set("blackhole")
            time.sleep(4.0)
            at_heal = backend.regions.requests_per_region()
            regions.east.set("pass")
            healed = time.monotonic()
            # Back home: the primary answers again after its cool-off (at most 30 s; here a few).
            back = None
            while time.monotonic() < healed + 35:
                now = backend.regions.requests_per_region()
                if now[PRIMARY] > at_heal[PRIMARY] + 3 and regions.east.mode == "pass":
                    west_before = now[REPLICA]
                    time.sleep(1.0)
                    if backend.regions.requests_per_region()[REPLICA] == west_before:
                        back = time.monotonic() - healed
                        break
                time.sleep(0.1)
    finally:
        store.close()
    during = load.cold_after(outage, healed)
    print(
        f"\nregional outage under load: longest held wait {load.longest_held_wait * 1000:.1f} ms, "
        f"{len(during)} cold reads during the outage (longest "
        f"{max((e - b for b, e, _ in during), default=0):.2f} s), back on the primary "
        f"{back} s after it healed; requests per region {backend.regions.requests_per_region()}"
    )
    assert load.held_failures == []
    assert rotations == []
    assert during and all(error is None for _, _, error in during), during
    assert all(end - began < 5.0 for began, end, _ in during)
    assert back is not None
