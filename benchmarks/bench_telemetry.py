"""Telemetry benchmarks: the cached read path with OpenTelemetry and the audit trail on and off.

Run by hand: ``python benchmarks/bench_telemetry.py`` (``--quick`` for a smoke run). Needs
``opentelemetry-sdk`` (the test extra). The hot path is timed the way ``bench_core.py``
times it: interleaved rounds, each case against ``os.environ[name]`` measured in the same
round, median of the ratios. Telemetry is switched on and off from round to round, with
fresh SDK providers each time, so machine drift hits both states alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import secretkit
from secretkit import SecretStore
from secretkit._telemetry import Instrumentation
from secretkit.backends import EnvBackend, MemoryBackend


def sdk() -> tuple[InMemoryMetricReader, InMemorySpanExporter, Instrumentation]:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    inst = secretkit.instrument(
        meter_provider=MeterProvider(metric_readers=[reader]), tracer_provider=tracer_provider
    )
    return reader, spans, inst


def per_call_ns(fn: Callable[[], object], number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e9


def bench_hot_path(number: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Median ns per cached read and median ratio to ``os.environ[name]``, per state."""
    name = "BENCH_TELEMETRY_SECRET"
    os.environ[name] = "x" * 40
    environ = os.environ
    store = SecretStore([EnvBackend()])
    audited = SecretStore([EnvBackend()])
    store.get(name)
    audited.get(name)
    get, get_audited = store.get, audited.get

    samples: dict[str, list[tuple[float, float]]] = {
        "telemetry off": [],
        "instrument() on": [],
        "audit() on (hits not audited)": [],
    }
    for i in range(rounds):
        base = per_call_ns(lambda: environ[name], number)
        off = per_call_ns(lambda: get(name).reveal(), number)
        reader, _, inst = sdk()
        reader.collect()  # the observable callbacks have run: nothing about them stays on the path
        on = per_call_ns(lambda: get(name).reveal(), number)
        inst.uninstrument()
        stop = secretkit.audit(audited)
        aud = per_call_ns(lambda: get_audited(name).reveal(), number)
        stop()
        # Alternate which state is timed first, so neither always gets the warmer cache.
        pairs = [("telemetry off", off), ("instrument() on", on)]
        if i % 2:
            pairs.reverse()
        for label, ns in pairs:
            samples[label].append((ns, ns / base))
        samples["audit() on (hits not audited)"].append((aud, aud / base))
    store.close()
    audited.close()
    return {
        label: (statistics.median(ns for ns, _ in rows), statistics.median(r for _, r in rows))
        for label, rows in samples.items()
    }


def bench_fetch_overhead(number: int, rounds: int) -> tuple[float, float]:
    """Median microseconds per backend call (an in-memory refresh) without and with telemetry."""
    backend = MemoryBackend({"K": "v"})
    store = SecretStore([backend])
    store.get("K")
    off: list[float] = []
    on: list[float] = []
    for _ in range(rounds):
        off.append(per_call_ns(lambda: store.refresh("K"), number) / 1e3)
        _, spans, inst = sdk()
        on.append(per_call_ns(lambda: store.refresh("K"), number) / 1e3)
        inst.uninstrument()
        spans.clear()
    store.close()
    return statistics.median(off), statistics.median(on)


def bench_collection(secrets: int, rounds: int) -> float:
    """Median milliseconds for one metric collection with ``secrets`` cached values."""
    backend = MemoryBackend({f"S{i}": "v" for i in range(secrets)})
    store = SecretStore([backend])
    store.prefetch([f"S{i}" for i in range(secrets)])
    reader, _, inst = sdk()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        reader.collect()
        times.append((time.perf_counter() - started) * 1e3)
    inst.uninstrument()
    store.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    args = parser.parse_args()
    number, rounds = (20_000, 3) if args.quick else (200_000, 25)

    mode = "quick" if args.quick else "full"
    print(f"secretkit telemetry benchmarks (python {sys.version.split()[0]}, {mode})")
    print()
    print(f"{'cached read: store.get(name).reveal()':<42} {'median ns':>10} {'vs os.environ':>14}")
    for label, (ns, ratio) in bench_hot_path(number, rounds).items():
        print(f"{label:<42} {ns:>10.0f} {ratio:>13.2f}x")
    print()
    off, on = bench_fetch_overhead(number // 20, rounds)
    print(
        f"backend call (in-memory refresh): {off:.1f} us without telemetry, {on:.1f} us with a span "
        f"and a histogram point (+{on - off:.1f} us)"
    )
    secrets = 1000 if args.quick else 10_000
    print(f"one metric collection with {secrets} cached secrets: {bench_collection(secrets, rounds):.2f} ms")


if __name__ == "__main__":
    main()
