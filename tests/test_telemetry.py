"""OpenTelemetry export, read back through the real OpenTelemetry SDK's in-memory exporter and reader."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import secretkit
from _batching import BatchMemoryBackend
from secretkit import AccessDenied, AccessEvent, BackendUnavailable, SecretNotFound, SecretStore
from secretkit._telemetry import Instrumentation, name_hash, traceparent_env
from secretkit.backends import MemoryBackend
from secretkit.testing import FakeClock

VALUE = "sk-live-TELEMETRY-0xC0FFEE-value"
ROTATED = "sk-live-TELEMETRY-0xBEEF-rotated"


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    instrumentation: Instrumentation

    def finished(self) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith("secretkit ")]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found

    def value(self, metric: str, backend: str | None = None) -> float:
        """The sum of a metric's points (those of one backend, if given)."""
        return sum(
            point.value
            for point in self.points(metric)
            if backend is None or point.attributes.get("secretkit.backend") == backend
        )


def make_otel(name_attribute: Any = "name") -> Otel:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    inst = secretkit.instrument(
        meter_provider=meter_provider, tracer_provider=tracer_provider, name_attribute=name_attribute
    )
    return Otel(spans, reader, tracer_provider, inst)


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = make_otel()
    yield o
    o.instrumentation.uninstrument()


def store_of(backend: MemoryBackend, clock: FakeClock, **options: Any) -> SecretStore:
    options.setdefault("jitter", 0.0)
    return SecretStore([backend], clock=clock, **options)


# -- traces ---------------------------------------------------------------------------------


def test_a_fetch_makes_one_span_with_the_documented_attributes(otel: Otel, clock: FakeClock) -> None:
    """A cold read makes one CLIENT span with backend, name, reason, version and outcome."""
    store = store_of(MemoryBackend({"API_TOKEN": VALUE}), clock)
    store.get("API_TOKEN")
    [span] = otel.finished()
    assert span.name == "secretkit fetch memory"
    assert span.kind.name == "CLIENT"
    attrs = dict(span.attributes or {})
    assert attrs["secretkit.backend"] == "memory"
    assert attrs["secretkit.secret.name"] == "API_TOKEN"
    assert attrs["secretkit.reason"] == "miss"
    assert attrs["secretkit.secret.count"] == 1
    assert attrs["secretkit.outcome"] == "loaded"
    assert attrs["secretkit.secret.version"] == "1"
    assert span.status.status_code is not StatusCode.ERROR


def test_a_batch_makes_one_span_naming_every_secret(otel: Otel, clock: FakeClock) -> None:
    """A batched prefetch is one span with the count and the list of names."""
    backend = BatchMemoryBackend({"a": VALUE, "b": VALUE, "c": VALUE})
    store = SecretStore([], reference_backends=[backend], clock=clock)
    names = ["memory://a", "memory://b", "memory://c"]
    assert store.prefetch(names) == {}
    [span] = otel.finished()
    attrs = dict(span.attributes or {})
    assert attrs["secretkit.secret.count"] == 3
    listed: Any = attrs["secretkit.secret.names"]
    assert sorted(listed) == names
    assert attrs["secretkit.reason"] == "prefetch"


def test_cache_hits_make_no_span(otel: Otel, clock: FakeClock) -> None:
    """Reads answered from the cache are not traced: one span for a hundred reads."""
    store = store_of(MemoryBackend({"K": VALUE}), clock)
    for _ in range(100):
        store.get("K")
    assert len(otel.finished()) == 1


def test_the_fetch_span_is_a_child_of_the_callers_span(otel: Otel, clock: FakeClock) -> None:
    """A fetch made while a request span is current is traced as that span's child."""
    store = store_of(MemoryBackend({"K": VALUE}), clock)
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /checkout") as request:
        store.get("K")
    [fetch] = otel.finished()
    assert fetch.parent is not None
    assert fetch.parent.span_id == request.get_span_context().span_id
    assert fetch.context.trace_id == request.get_span_context().trace_id


def test_a_failed_fetch_span_has_the_error_type_and_an_error_status(otel: Otel, clock: FakeClock) -> None:
    """A backend failure marks the span as an error and names the error type, not its message."""
    backend = MemoryBackend({"K": VALUE})
    backend.fail(ConnectionError(f"refused while sending {VALUE}"))
    store = store_of(backend, clock)
    with pytest.raises(BackendUnavailable):
        store.get("K")
    [span] = otel.finished()
    attrs = dict(span.attributes or {})
    assert attrs["secretkit.outcome"] == "error"
    assert attrs["error.type"] == "BackendUnavailable"  # what the caller catches
    assert attrs["secretkit.cause.type"] == "ConnectionError"  # what the backend raised
    assert span.status.status_code is StatusCode.ERROR
    assert span.events == ()


def test_not_found_is_an_outcome_on_the_span(otel: Otel, clock: FakeClock) -> None:
    """A secret that does not exist is traced with outcome not_found."""
    store = store_of(MemoryBackend(), clock)
    with pytest.raises(SecretNotFound):
        store.get("NOPE")
    [span] = otel.finished()
    assert dict(span.attributes or {})["secretkit.outcome"] == "not_found"


def test_names_can_be_exported_as_hashes_or_not_at_all(clock: FakeClock) -> None:
    """name_attribute="hash" exports a stable hash of the name; "none" exports no name."""
    for mode in ("hash", "none"):
        o = make_otel(mode)
        try:
            store_of(MemoryBackend({"CUSTOMER_4711_KEY": VALUE}), clock).get("CUSTOMER_4711_KEY")
            [span] = o.finished()
        finally:
            o.instrumentation.uninstrument()
        attrs = dict(span.attributes or {})
        assert "CUSTOMER_4711_KEY" not in span.to_json()
        if mode == "hash":
            assert attrs["secretkit.secret.name"] == name_hash("CUSTOMER_4711_KEY")
        else:
            assert "secretkit.secret.name" not in attrs


@pytest.mark.usefixtures("isolated_default")
def test_the_default_store_a_later_configure_installs_is_traced(otel: Otel) -> None:
    """instrument() covers every store: the default one installed by configure() after it too."""
    secretkit.configure(backends=[MemoryBackend({"LATE_KEY": VALUE})])
    secretkit.get_secret("LATE_KEY")
    [span] = otel.finished()
    assert dict(span.attributes or {})["secretkit.secret.name"] == "LATE_KEY"
    assert otel.value("secretkit.cache.size", backend="memory") >= 1


def test_the_name_attribute_mode_is_checked() -> None:
    """An unknown name_attribute is refused rather than silently exporting names."""
    with pytest.raises(ValueError, match="name_attribute"):
        secretkit.instrument(name_attribute="plain")  # type: ignore[arg-type]


# -- metrics --------------------------------------------------------------------------------


def test_reads_show_in_the_cache_and_fetch_metrics(otel: Otel, clock: FakeClock) -> None:
    """Hits, misses, cache size and the fetch-duration histogram report by backend and outcome."""
    store = store_of(MemoryBackend({"A": VALUE, "B": VALUE}), clock)
    for _ in range(5):
        store.get("A")
    store.get("B")
    assert otel.value("secretkit.cache.hits", backend="memory") >= 4
    assert otel.value("secretkit.cache.misses", backend="memory") >= 2
    assert otel.value("secretkit.cache.size", backend="memory") >= 2
    durations = [
        p for p in otel.points("secretkit.fetch.duration") if p.attributes["secretkit.outcome"] == "loaded"
    ]
    assert sum(p.count for p in durations) == 2
    assert all(p.attributes["secretkit.backend"] == "memory" for p in durations)


def misses_by_outcome(otel: Otel, backend: str) -> dict[str, float]:
    """``secretkit.cache.misses`` of one backend, by its ``secretkit.outcome`` attribute."""
    found: dict[str, float] = {}
    for point in otel.points("secretkit.cache.misses"):
        if point.attributes.get("secretkit.backend") == backend:
            outcome = point.attributes["secretkit.outcome"]
            found[outcome] = found.get(outcome, 0) + point.value
    return found


def test_every_read_that_went_to_a_backend_is_a_miss_whatever_it_ended_in(
    otel: Otel, clock: FakeClock
) -> None:
    """Cold reads that find nothing, are refused or fail, and reads past the TTL, are misses by outcome."""
    # A scheme of its own: instrumentation covers every store of the process.
    backend = MemoryBackend({"A": VALUE, "B": VALUE, "C": VALUE}, scheme="memory-misses")
    store = store_of(backend, clock, ttl=10, max_stale=100)
    store.get("A")  # cold: loaded
    store.get("A")  # a hit
    with pytest.raises(SecretNotFound):
        store.get("NOPE")  # cold: not_found
    backend.fail(ConnectionError("connection refused"))
    with pytest.raises(BackendUnavailable):
        store.get("B")  # cold: error
    backend.fail(AccessDenied("the policy does not allow C"))
    with pytest.raises(AccessDenied):
        store.get("C")  # cold: denied
    backend.fail(None)
    clock.advance(11)
    store.get("A")  # past its TTL, fetched by the reader: refreshed
    backend.fail(ConnectionError("connection refused"))
    clock.advance(11)
    assert store.get("A").reveal() == VALUE  # past its TTL, the fetch failed: stale
    # Neither a prefetch nor an asked-for refresh is a read.
    backend.fail(None)
    store.prefetch(["B"])
    store.refresh("C")
    expected = {"loaded": 1, "not_found": 1, "error": 1, "denied": 1, "refreshed": 1, "stale": 1}
    assert misses_by_outcome(otel, "memory-misses") == expected
    assert store.stats()["backends"]["memory-misses"]["missed"] == expected
    assert store.stats()["misses"] == 6
    assert otel.value("secretkit.cache.hits", backend="memory-misses") == 1


def test_a_reader_fetching_an_expired_value_is_traced_as_expired(otel: Otel, clock: FakeClock) -> None:
    """A fetch a reader waits on because the value's time was up has reason expired, not refresh."""
    store = store_of(MemoryBackend({"K": VALUE}), clock, ttl=10)
    store.get("K")
    clock.advance(11)
    store.get("K")
    assert [dict(s.attributes or {})["secretkit.reason"] for s in otel.finished()] == ["miss", "expired"]


class EchoingError(Exception):
    """An SDK error whose text repeats what the server said, however it is copied."""

    def __init__(self, said: str) -> None:
        super().__init__()
        self.said = said

    def __str__(self) -> str:
        return f"the server said {self.said}"


@pytest.mark.parametrize(
    "failure",
    [ConnectionError("connection refused"), EchoingError(VALUE)],
    ids=["connection-error", "an-error-that-echoes-a-value"],
)
def test_every_channel_names_a_backends_own_exception_as_the_caller_sees_it(
    otel: Otel, clock: FakeClock, caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    """Span, histogram, audit and access event all say BackendUnavailable, caused by the backend's type."""
    backend = MemoryBackend({"K": VALUE, "J": VALUE}, scheme="memory-naming")
    store = store_of(backend, clock)
    events: list[AccessEvent] = []
    store.add_listener(events.append, hits=False)
    caplog.set_level(logging.INFO, logger="secretkit.audit")
    secretkit.audit(store)
    store.get("K")  # the value is now known, so an error quoting it is shown through a stand-in
    backend.fail(failure)
    with pytest.raises(BackendUnavailable) as info:
        store.get("J")
    expected = (type(info.value).__name__, type(failure).__name__)
    assert expected == ("BackendUnavailable", type(failure).__name__)

    span = otel.finished()[-1]
    attrs = dict(span.attributes or {})
    assert (attrs["error.type"], attrs["secretkit.cause.type"]) == expected
    assert span.status.description == "BackendUnavailable"
    [point] = [
        p for p in otel.points("secretkit.fetch.duration") if p.attributes["secretkit.outcome"] == "error"
    ]
    assert (point.attributes["error.type"], point.attributes["secretkit.cause.type"]) == expected
    [record] = [r for r in caplog.records if r.name == "secretkit.audit" and r.outcome == "error"]
    assert (record.error_type, record.cause_type) == expected
    [event] = [e for e in events if e.outcome == "error"]
    assert (event.error, event.cause) == expected
    for text in (span.to_json(), caplog.text, repr(events)):
        assert VALUE not in text


def test_a_refresh_failure_is_counted_under_the_callers_error_name(otel: Otel, clock: FakeClock) -> None:
    """secretkit.refresh.failures names a backend's ConnectionError as BackendUnavailable, its cause apart."""
    backend = MemoryBackend({"K": VALUE}, scheme="memory-refresh-naming")
    store = store_of(backend, clock)
    store.get("K")
    backend.fail(ConnectionError("connection refused"))
    assert store.refresh("K").reveal() == VALUE  # the last good value, served stale
    [point] = [
        p
        for p in otel.points("secretkit.refresh.failures")
        if p.attributes["secretkit.backend"] == "memory-refresh-naming"
    ]
    assert point.attributes["error.type"] == "BackendUnavailable"
    assert point.attributes["secretkit.cause.type"] == "ConnectionError"


def test_hit_counters_follow_the_store_without_a_call_per_read(otel: Otel, clock: FakeClock) -> None:
    """Hits are read from the store's own counters at collection time, so later reads show up."""
    store = store_of(MemoryBackend({"K": VALUE}), clock, on_access=None)
    store.get("K")
    before = otel.value("secretkit.cache.hits", backend="memory")
    for _ in range(1000):
        store.get("K")
    assert otel.value("secretkit.cache.hits", backend="memory") == before + 1000
    assert store.listeners() == ()  # telemetry installed nothing on the read path


def test_counters_do_not_fall_when_a_store_is_garbage_collected(otel: Otel, clock: FakeClock) -> None:
    """A store that goes away keeps its part of the monotonic totals."""
    store = store_of(MemoryBackend({"K": VALUE}), clock)
    for _ in range(3):
        store.get("K")
    before = otel.value("secretkit.cache.hits", backend="memory")
    assert before >= 2
    del store
    gc.collect()
    assert otel.value("secretkit.cache.hits", backend="memory") == before


def test_rotations_are_counted(otel: Otel, clock: FakeClock) -> None:
    """A refresh that brings a new version moves secretkit.secret.rotations."""
    # A scheme of its own: instrumentation covers every store in the process, and stores of
    # earlier tests may still be alive (an idle refresh thread holds its store for a minute).
    backend = MemoryBackend({"K": VALUE}, scheme="memory-rotations")
    store = store_of(backend, clock, ttl=10)
    store.get("K")
    backend.set("K", ROTATED)
    store.refresh("K")
    assert otel.value("secretkit.secret.rotations", backend="memory-rotations") == 1


def test_negative_entries_are_reported(otel: Otel, clock: FakeClock) -> None:
    """A remembered not-found shows in secretkit.cache.negative_entries."""
    store = store_of(MemoryBackend(), clock, negative_ttl=60)
    with pytest.raises(SecretNotFound):
        store.get("TYPO_NAME")
    assert otel.value("secretkit.cache.negative_entries") >= 1


def test_an_outage_moves_stale_served_and_refresh_failures(otel: Otel, clock: FakeClock) -> None:
    """While the backend is down, stale serves and refresh failures climb and the headroom shrinks."""
    # A scheme of its own, and the headroom read for this store from stats() too: other
    # stores of the process (earlier tests') may be alive and stale as well.
    backend = MemoryBackend({"K": VALUE}, scheme="memory-outage")
    store = store_of(backend, clock, ttl=10, max_stale=100, backoff_base=0.5, backoff_max=1.0)
    store.get("K")
    assert store.stats()["stale_headroom"] is None
    backend.fail(ConnectionError("connection refused"))
    clock.advance(11)  # past the TTL: only a stale value is left
    for _ in range(3):
        assert store.get("K").reveal() == VALUE
        store.wait_idle()
        clock.advance(2)
    assert otel.value("secretkit.cache.stale_served", backend="memory-outage") >= 1
    assert otel.value("secretkit.refresh.failures", backend="memory-outage") >= 1
    [headroom] = otel.points("secretkit.cache.stale_headroom")
    assert 0 < headroom.value <= store.stats()["stale_headroom"] <= 100
    backend.fail(None)
    store.refresh("K")
    assert store.stats()["stale_headroom"] is None


# -- nothing exported holds a value ---------------------------------------------------------


def test_no_exported_span_or_point_contains_a_value(otel: Otel, clock: FakeClock) -> None:
    """Every field of every span and metric point, serialised, is free of the values read."""
    backend = MemoryBackend({"K": VALUE, "J": '{"password": "' + ROTATED + '"}'})
    store = SecretStore([backend], clock=clock, ttl=10, max_stale=100, reference_backends=[backend])
    store.get("K")
    store.get("memory://J#password")
    backend.set("K", ROTATED)
    store.refresh("K")
    backend.fail(RuntimeError(f"server said: {VALUE} / {ROTATED}"))
    clock.advance(11)
    store.get("K")
    store.wait_idle()
    with pytest.raises(BackendUnavailable):
        store.get("NEVER_LOADED")
    exported = [span.to_json() for span in otel.spans.get_finished_spans()]
    data = otel.reader.get_metrics_data()
    assert data is not None
    exported.append(data.to_json())
    assert len(otel.finished()) >= 4
    for text in exported:
        for value in (VALUE, ROTATED, "0xC0FFEE", "0xBEEF"):
            assert value not in text


# -- switching on and off -------------------------------------------------------------------


def test_uninstrument_stops_spans_and_points(clock: FakeClock) -> None:
    """After uninstrument() no span is made and the observable instruments report nothing."""
    o = make_otel()
    o.instrumentation.uninstrument()
    store_of(MemoryBackend({"K": VALUE}), clock).get("K")
    assert o.finished() == []
    assert o.points("secretkit.cache.misses") == []


def test_instrumenting_again_replaces_the_previous_instrumentation(clock: FakeClock) -> None:
    """A second instrument() call takes over: one span per fetch, not one per call made."""
    first = make_otel()
    second = make_otel()
    try:
        store_of(MemoryBackend({"K": VALUE}), clock).get("K")
        assert first.finished() == []
        assert len(second.finished()) == 1
    finally:
        second.instrumentation.uninstrument()
        first.instrumentation.uninstrument()


def test_import_secretkit_imports_no_opentelemetry() -> None:
    """`import secretkit` (and a cached read) leaves OpenTelemetry unimported until instrument()."""
    code = (
        "import sys, secretkit; "
        "from secretkit._telemetry import traceparent_env; assert traceparent_env() == {}; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_instrument_without_the_extra_names_it() -> None:
    """Without opentelemetry-api, instrument() raises MissingDependency naming secretkit[otel]."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import secretkit\n"
        "try:\n    secretkit.instrument()\n"
        "except secretkit.MissingDependency as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "secretkit[otel]"' in out.stdout


# -- propagation to child processes ---------------------------------------------------------


def test_traceparent_env_carries_the_current_span(otel: Otel) -> None:
    """Inside a span, TRACEPARENT names its trace and span id (W3C trace context)."""
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("deploy") as span:
        env = traceparent_env()
    ctx = span.get_span_context()
    assert env["TRACEPARENT"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    assert set(env) <= {"TRACEPARENT", "TRACESTATE"}


def test_traceparent_env_is_empty_outside_a_span(otel: Otel) -> None:
    """With no current span there is nothing to propagate."""
    assert traceparent_env() == {}
