"""Failures of real backends seen through every channel: boto3 against moto behind a fault proxy, OpenBao.

Metrics, spans, the audit trail and access events must tell the same story about the same
failure, and they are fed by the SDKs' own exceptions here, not by stand-ins.
"""

from __future__ import annotations

import logging
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
from secretkit import AccessDenied, AccessEvent, BackendUnavailable, SecretStore
from secretkit.testing import FakeClock
from servers.aws_env import use_test_aws_env
from servers.faultproxy import FaultProxy
from servers.moto_server import MotoServer
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer

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


def failed_misses(reader: InMemoryMetricReader) -> float:
    """``secretkit.cache.misses`` of aws-sm reads that ended in an error."""
    return sum(
        p.value
        for p in points(reader, "secretkit.cache.misses")
        if p.attributes.get("secretkit.backend") == "aws-sm"
        and p.attributes.get("secretkit.outcome") == "error"
    )


class Channels:
    """Every channel secretkit reports a failure on, installed together."""

    def __init__(self, store: SecretStore, caplog: pytest.LogCaptureFixture) -> None:
        self.reader = InMemoryMetricReader()
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.instrumentation = secretkit.instrument(
            meter_provider=MeterProvider(metric_readers=[self.reader]), tracer_provider=tracer_provider
        )
        self.events: list[AccessEvent] = []
        store.add_listener(self.events.append)
        caplog.set_level(logging.INFO, logger="secretkit.audit")
        secretkit.audit(store)
        self.caplog = caplog

    def names(self, outcome: str) -> dict[str, set[tuple[str | None, str | None]]]:
        """``(error type, cause type)`` pairs each channel gave failures of ``outcome``."""
        spans = {
            (a.get("error.type"), a.get("secretkit.cause.type"))
            for s in self.spans.get_finished_spans()
            if (a := dict(s.attributes or {})).get("secretkit.outcome") == outcome
        }
        metric = {
            (p.attributes.get("error.type"), p.attributes.get("secretkit.cause.type"))
            for p in points(self.reader, "secretkit.fetch.duration")
            if p.attributes.get("secretkit.outcome") == outcome
        }
        audit = {
            (r.error_type, r.cause_type)
            for r in self.caplog.records
            if r.name == "secretkit.audit" and r.outcome == outcome
        }
        events = {(e.error, e.cause) for e in self.events if e.outcome == outcome}
        return {"span": spans, "metric": metric, "audit": audit, "event": events}


def test_an_aws_connection_failure_has_one_name_on_every_channel(
    moto: MotoServer, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """botocore's own connection error is BackendUnavailable, caused by that botocore type, everywhere."""
    from secretkit.backends.aws import AwsSecretsManagerBackend

    name = f"telemetry-{uuid.uuid4().hex[:10]}"
    moto.client("secretsmanager").create_secret(Name=name, SecretString=VALUE)
    backend = AwsSecretsManagerBackend(endpoint_url=f"http://{proxy.address}")
    store = SecretStore([], reference_backends=[backend], deadline=30)
    channels = Channels(store, caplog)
    try:
        errors_before = failed_misses(channels.reader)
        proxy.set("reset")
        with pytest.raises(BackendUnavailable) as info:
            store.get(f"aws-sm://{name}")
        cause = info.value.__cause__
        assert cause is not None and not isinstance(cause, secretkit.SecretkitError)
        expected = {("BackendUnavailable", type(cause).__name__)}
        assert channels.names("error") == {
            "span": expected,
            "metric": expected,
            "audit": expected,
            "event": expected,
        }
        # The failed cold read is a miss, by its outcome (compared with where the counter
        # stood: earlier tests' stores may still be alive, and instrumentation sees them all).
        assert failed_misses(channels.reader) == errors_before + 1
    finally:
        channels.instrumentation.uninstrument()
        store.close()


@pytest.fixture(scope="module")
def openbao() -> Iterator[OpenBaoAdmin]:
    with OpenBaoServer() as server:
        admin = OpenBaoAdmin(server)
        admin.root.sys.create_or_update_policy(
            "reader", 'path "secret/data/app/*" { capabilities = ["read"] }'
        )
        yield admin


def test_a_vault_refusal_is_a_refusal_by_vault_on_every_channel_and_every_read(
    openbao: OpenBaoAdmin, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenBao's 403 is AccessDenied (cause: hvac's Forbidden) everywhere, and denied by vault from memory."""
    from secretkit.backends.vault import TokenAuth, VaultBackend

    for variable in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    path = openbao.unique("other/private")
    openbao.put(path, {"password": VALUE})
    backend = VaultBackend(url=openbao.url, auth=TokenAuth(openbao.token(["reader"])))
    store = SecretStore([], reference_backends=[backend], negative_ttl=60)
    channels = Channels(store, caplog)
    ref = f"vault://secret/{path}#password"
    try:
        for _ in range(3):
            with pytest.raises(AccessDenied):
                store.get(ref)
        expected = {("AccessDenied", "Forbidden")}
        assert channels.names("denied") == {
            "span": expected,
            "metric": expected,
            "audit": expected,
            "event": expected,
        }
        # One request to OpenBao; the two reads after it were answered from the store's memory.
        assert len(channels.spans.get_finished_spans()) == 1
        assert [(e.backend, e.outcome, e.hit) for e in channels.events] == [
            ("vault", "denied", False),
            ("vault", "denied", True),
            ("vault", "denied", True),
        ]
        audited = [(r.backend, r.outcome) for r in caplog.records if r.name == "secretkit.audit"]
        assert audited == [("vault", "denied")] * 3
    finally:
        channels.instrumentation.uninstrument()
        store.close()
        backend.close()
