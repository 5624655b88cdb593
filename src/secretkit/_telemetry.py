"""OpenTelemetry metrics and traces for every store, off until ``secretkit.instrument()``.

Built on two seams and nothing else: the fetch observers (one call per backend fetch or
batch, never per cache hit) and ``SecretStore.stats()`` (the counters the store keeps
anyway, exported through observable instruments). So the cached read path does exactly
what it does without telemetry. ``opentelemetry-api`` is imported on ``instrument()``,
never by ``import secretkit``.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from . import _events, _fork
from ._errors import MissingDependency, public_name
from ._events import Outcome, failure_types

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, MeterProvider, Observation
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ._store import SecretStore

__all__ = ["Instrumentation", "NameAttribute", "instrument", "traceparent_env"]

NameAttribute = Literal["name", "hash", "none"]

#: Counters of ``stats()["backends"][scheme]`` exported as monotonic sums:
#: (instrument name, stats key, unit, description).
_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    ("secretkit.cache.hits", "hits", "{hit}", "Reads answered from the cache."),
    ("secretkit.cache.misses", "misses", "{miss}", "Reads that went to a backend, by outcome."),
    ("secretkit.cache.stale_served", "stale_served", "{read}", "Reads served a value past its TTL."),
    ("secretkit.fetch.errors", "errors", "{error}", "Backend calls that failed (not-found excluded)."),
    ("secretkit.secret.rotations", "rotations", "{rotation}", "Refreshes that brought a new version."),
)

_COUNTER_KEYS = frozenset(key for _, key, _, _ in _COUNTERS)
_SUCCESS: frozenset[str] = frozenset({"loaded", "refreshed"})
#: Why a call counts as a refresh: in the background or asked for (``refresh``), or a
#: reader's own fetch of a value whose time was up (``expired``).
_REFRESHING: frozenset[str] = frozenset({"refresh", "expired"})
# The collector keeps ``misses`` by outcome under these keys: "misses:loaded", ...
_MISSED = "misses:"

_lock = threading.Lock()
_active: Instrumentation | None = None


@_fork.in_child
def _new_locks() -> None:
    # A parent thread collecting metrics at fork time would leave these locked in the child forever.
    global _lock
    _lock = threading.Lock()
    if _active is not None:
        _active._collector._lock = threading.Lock()


def instrument(
    *,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    name_attribute: NameAttribute = "name",
) -> Instrumentation:
    """Export metrics and traces of every store in this process through OpenTelemetry.

    Covers the default store, stores built before and after this call, and survives
    ``configure()``. The providers default to OpenTelemetry's global ones. Spans carry
    the secret's name, a hash of it (``name_attribute="hash"``) or neither (``"none"``);
    never a value. Calling it again replaces the previous instrumentation.
    """
    if name_attribute not in ("name", "hash", "none"):
        raise ValueError('name_attribute is "name", "hash" or "none"')
    try:
        from opentelemetry import metrics, trace
    except ImportError as exc:
        err = MissingDependency("otel", "opentelemetry-api", "otel")
        err.args = ('secretkit.instrument() needs opentelemetry-api: pip install "secretkit[otel]"',)
        raise err from exc
    from . import __version__

    meter = (meter_provider or metrics.get_meter_provider()).get_meter("secretkit", __version__)
    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("secretkit", __version__)
    global _active
    with _lock:
        if _active is not None:
            _active._stop()
        _active = Instrumentation(meter, tracer, name_attribute)
        return _active


class Instrumentation:
    """What ``instrument()`` switched on; ``uninstrument()`` switches it off."""

    def __init__(self, meter: Any, tracer: Tracer, name_attribute: NameAttribute) -> None:
        self._on = True
        self._collector = _Collector()
        self._observer = _Observer(
            tracer,
            meter.create_histogram(
                "secretkit.fetch.duration",
                unit="s",
                description="Duration of backend calls (one fetch or one batch).",
            ),
            meter.create_counter(
                "secretkit.refresh.failures",
                unit="{failure}",
                description="Background or explicit refreshes that did not bring a value.",
            ),
            name_attribute,
        )
        for i, (name, key, unit, description) in enumerate(_COUNTERS):
            meter.create_observable_counter(
                name,
                callbacks=[self._counter_callback(key, first=i == 0)],
                unit=unit,
                description=description,
            )
        meter.create_observable_up_down_counter(
            "secretkit.cache.size",
            callbacks=[self._size],
            unit="{secret}",
            description="Secrets held in the cache.",
        )
        meter.create_observable_up_down_counter(
            "secretkit.cache.negative_entries",
            callbacks=[self._negative],
            unit="{entry}",
            description="Remembered not-found, refused and failing names.",
        )
        meter.create_observable_gauge(
            "secretkit.cache.stale_headroom",
            callbacks=[self._headroom],
            unit="s",
            description="Seconds until the oldest value served stale reaches max_stale.",
        )
        _events.observers.append(self._observer)

    def uninstrument(self) -> None:
        """Stop recording: no more spans or points from secretkit."""
        global _active
        with _lock:
            self._stop()
            if _active is self:
                _active = None

    def _stop(self) -> None:
        # OpenTelemetry cannot unregister an instrument: its callbacks stay and report nothing.
        self._on = False
        if self._observer in _events.observers:
            _events.observers.remove(self._observer)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstrument()

    # -- observable instruments ----------------------------------------------------------

    def _counter_callback(self, key: str, *, first: bool = False) -> Any:
        def callback(options: CallbackOptions) -> Iterator[Observation]:
            from opentelemetry.metrics import Observation

            if not self._on:
                return
            if first:
                self._collector.take()
            for backend, row in self._collector.snapshot.counters.items():
                if key != "misses":
                    yield Observation(row.get(key, 0), {"secretkit.backend": backend})
                    continue
                # One series per outcome: a read that ended in not-found or an error went to
                # the backend as much as one that loaded, and hit ratios must count it.
                for counted, value in row.items():
                    if counted.startswith(_MISSED):
                        outcome = counted[len(_MISSED) :]
                        yield Observation(value, {"secretkit.backend": backend, "secretkit.outcome": outcome})

        return callback

    def _size(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        if self._on:
            for backend, value in self._collector.snapshot.size.items():
                yield Observation(value, {"secretkit.backend": backend})

    def _negative(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        if self._on:
            yield Observation(self._collector.snapshot.negative)

    def _headroom(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        headroom = self._collector.snapshot.headroom
        if self._on and headroom is not None:
            yield Observation(headroom)


class _Snapshot:
    __slots__ = ("counters", "headroom", "negative", "size")

    def __init__(self) -> None:
        self.counters: dict[str, dict[str, int]] = {}  # backend -> stats key -> total
        self.size: dict[str, int] = {}
        self.negative = 0
        self.headroom: float | None = None


class _Collector:
    """What the observable instruments report, read from every store once per collection.

    ``stats()`` walks a store's cache under its lock, so it is read once per collection,
    not once per instrument: the SDK runs one collection's callbacks one after another,
    in the order the instruments were made, and the first takes the snapshot.

    Counter totals never fall: a garbage-collected store takes its counters with it, so
    the last figures read from each store are kept once it is gone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.snapshot = _Snapshot()
        self._last: dict[int, dict[str, dict[str, int]]] = {}
        self._refs: dict[int, weakref.ref[SecretStore]] = {}
        self._gone: dict[str, dict[str, int]] = {}

    def take(self) -> None:
        from ._store import live_stores

        snap = _Snapshot()
        with self._lock:
            snap.counters = {backend: dict(row) for backend, row in self._gone.items()}
        headrooms: list[float] = []
        for store in live_stores():
            stats = store.stats()
            per: dict[str, dict[str, int]] = {
                backend: {
                    **{key: value for key, value in row.items() if key in _COUNTER_KEYS and key != "misses"},
                    **{_MISSED + outcome: count for outcome, count in row.get("missed", {}).items()},
                }
                for backend, row in stats["backends"].items()
            }
            self._remember(store, per)
            for backend, row in per.items():
                total = snap.counters.setdefault(backend, {})
                for key, value in row.items():
                    total[key] = total.get(key, 0) + value
            if store.closed:
                continue
            # Every backend seen reports a size, at zero too, so an emptied cache shows as 0, not a gap.
            for backend, row in stats["backends"].items():
                snap.size[backend] = snap.size.get(backend, 0) + int(row.get("size", 0))
            snap.negative += int(stats["negative"])
            headroom = stats["stale_headroom"]
            if headroom is not None:
                headrooms.append(float(headroom))
        snap.headroom = min(headrooms) if headrooms else None
        self.snapshot = snap

    def _remember(self, store: SecretStore, per: dict[str, dict[str, int]]) -> None:
        ident = id(store)
        with self._lock:
            if ident not in self._refs:
                self._refs[ident] = weakref.ref(store, lambda _: self._forget(ident))
            self._last[ident] = per

    def _forget(self, ident: int) -> None:
        with self._lock:
            self._refs.pop(ident, None)
            for backend, row in self._last.pop(ident, {}).items():
                gone = self._gone.setdefault(backend, {})
                for key, value in row.items():
                    gone[key] = gone.get(key, 0) + value


# -- traces and the fetch histogram ---------------------------------------------------------


class _Observer:
    """A fetch observer: one span and one histogram point per backend call."""

    def __init__(
        self, tracer: Tracer, duration: Histogram, failures: Counter, name_attribute: NameAttribute
    ) -> None:
        from opentelemetry import context, trace

        self._context = context
        self._trace = trace
        self._tracer = tracer
        self._duration = duration
        self._failures = failures
        self._name_attribute = name_attribute

    def start(self, backend: str, names: Sequence[str], reason: str) -> _FetchSpan:
        attributes: dict[str, Any] = {
            "secretkit.backend": backend,
            "secretkit.reason": reason,
            "secretkit.secret.count": len(names),
        }
        shown = _shown(names, self._name_attribute)
        if shown is not None:
            if len(shown) == 1:
                attributes["secretkit.secret.name"] = shown[0]
            else:
                attributes["secretkit.secret.names"] = shown
        span = self._tracer.start_span(
            f"secretkit fetch {backend}", kind=self._trace.SpanKind.CLIENT, attributes=attributes
        )
        # The backend call runs inside the span, so an instrumented SDK's HTTP spans nest under it.
        token = self._context.attach(self._trace.set_span_in_context(span))
        return _FetchSpan(self, backend, reason, span, token)


class _FetchSpan:
    __slots__ = ("_backend", "_observer", "_reason", "_span", "_started", "_thread", "_token")

    def __init__(self, observer: _Observer, backend: str, reason: str, span: Span, token: Any) -> None:
        self._observer = observer
        self._backend = backend
        self._reason = reason
        self._span = span
        self._token = token
        self._thread = threading.get_ident()
        self._started = time.perf_counter()

    def end(self, outcome: Outcome, version: str | None, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - self._started
        observer = self._observer
        attributes: dict[str, str] = {
            "secretkit.backend": self._backend,
            "secretkit.outcome": outcome,
            "secretkit.reason": self._reason,
        }
        named: dict[str, str] = {}
        if error is not None:
            # Named as the caller, the audit trail and listeners name it (``failure_types``);
            # types only: a message is written for people and may quote what a server said.
            kind, cause = failure_types(error)
            named["error.type"] = kind
            if cause is not None:
                named["secretkit.cause.type"] = cause
        observer._duration.record(elapsed, {**attributes, **named})
        if self._reason in _REFRESHING and outcome not in _SUCCESS:
            failed = {"secretkit.backend": self._backend, "secretkit.outcome": outcome, **named}
            observer._failures.add(1, failed)
        span = self._span
        span.set_attribute("secretkit.outcome", outcome)
        if version is not None:
            span.set_attribute("secretkit.secret.version", version)
        if named:
            span.set_attributes(named)
            span.set_status(observer._trace.Status(observer._trace.StatusCode.ERROR, named["error.type"]))
        span.end()
        if self._thread == threading.get_ident():
            observer._context.detach(self._token)


def _shown(names: Sequence[str], mode: NameAttribute) -> list[str] | None:
    if mode == "none":
        return None
    if mode == "hash":
        return [name_hash(name) for name in names]
    return [public_name(name) for name in names]


def name_hash(name: str) -> str:
    """The stable, short hash of a secret name that ``name_attribute="hash"`` exports.

    The hash is of the shaped name (``public_name``): a hash of a pasted connection string
    would let anyone holding the trace try passwords against it.
    """
    return "sha256:" + hashlib.sha256(public_name(name).encode()).hexdigest()[:16]


def traceparent_env() -> dict[str, str]:
    """``TRACEPARENT`` (and ``TRACESTATE``) for a child process, from the current span.

    Empty when OpenTelemetry is not in use or no span is recording here, so the child
    starts its own trace.
    """
    if "opentelemetry.trace" not in sys.modules:
        # Nothing in this process made a span, and importing OpenTelemetry would not change that.
        return {}
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return {key.upper(): value for key, value in carrier.items() if key in ("traceparent", "tracestate")}
