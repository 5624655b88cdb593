"""An outage seen through the metrics: boto3 against a real moto server, behind a fault-injecting proxy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import secretkit
from secretkit import SecretStore
from secretkit.testing import FakeClock
from servers.aws_env import use_test_aws_env
from servers.faultproxy import FaultProxy
from servers.moto_server import MotoServer

pytestmark = pytest.mark.slow

VALUE = "db-pass-OUTAGE-0xABAD1DEA"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3 sees test credentials and nothing of the machine's AWS configuration."""
    use_test_aws_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.host, moto.port) as p:
        yield p
        p.set("pass")


def points(reader: InMemoryMetricReader, metric: str) -> list[Any]:
    data = reader.get_metrics_data()
    return [
        point
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for m in scope.metrics
        if m.name == metric
        for point in m.data.data_points
    ]


def total(reader: InMemoryMetricReader, metric: str) -> float:
    return sum(p.value for p in points(reader, metric) if p.attributes.get("secretkit.backend") == "aws-sm")


def test_an_aws_outage_moves_the_stale_and_failure_metrics(moto: MotoServer, proxy: FaultProxy) -> None:
    """Connections reset: reads are served stale, failures are counted and traced, and all recover."""
    from secretkit.backends.aws import AwsSecretsManagerBackend

    name = f"telemetry-{uuid.uuid4().hex[:10]}"
    moto.client("secretsmanager").create_secret(Name=name, SecretString=VALUE)
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    clock = FakeClock()
    backend = AwsSecretsManagerBackend(endpoint_url=f"http://{proxy.address}")
    store = SecretStore(
        [], reference_backends=[backend], clock=clock, ttl=10, max_stale=100, jitter=0.0, backoff_base=0.1
    )
    ref = f"aws-sm://{name}"
    with secretkit.instrument(
        meter_provider=MeterProvider(metric_readers=[reader]), tracer_provider=tracer_provider
    ):
        try:
            assert store.get(ref).reveal() == VALUE
            # Instrumentation covers every store of the process, and earlier tests' stores may
            # still be alive: the counters are compared with where they stood, not with zero.
            stale_before = total(reader, "secretkit.cache.stale_served")
            errors_before = total(reader, "secretkit.fetch.errors")
            proxy.set("reset")
            clock.advance(11)  # the value has expired: the next read must try the backend
            assert store.get(ref).reveal() == VALUE
            clock.advance(1)
            assert store.get(ref).reveal() == VALUE
            store.wait_idle(30)

            assert total(reader, "secretkit.cache.stale_served") >= stale_before + 1
            assert total(reader, "secretkit.fetch.errors") >= errors_before + 1
            [headroom] = points(reader, "secretkit.cache.stale_headroom")
            assert 0 < headroom.value <= store.stats()["stale_headroom"] <= 100
            failed = [
                s
                for s in spans.get_finished_spans()
                if (s.attributes or {}).get("secretkit.outcome") not in ("loaded", "refreshed")
            ]
            assert failed and all((s.attributes or {}).get("error.type") for s in failed)

            proxy.set("pass")
            store.refresh(ref)
            assert store.stats()["stale_headroom"] is None
            exported = [s.to_json() for s in spans.get_finished_spans()]
            data = reader.get_metrics_data()
            assert data is not None
            exported.append(data.to_json())
            assert not any(VALUE in text or "0xABAD1DEA" in text for text in exported)
        finally:
            store.close()
