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


def bench_hot_path(number: int, rounds: int) -> list[tuple[str, float, float, float]]:
    """Per case: median ns per cached read, median ratio to ``os.environ[name]`` and to telemetry off."""
    name = "BENCH_TELEMETRY_SECRET"
    os.environ[name] = "x" * 40
    environ = os.environ
    secretkit.configure(backends=[EnvBackend()])  # bench_core.py's hot-path row reads this way
    get_secret = secretkit.get_secret
    get_secret(name)
    store = SecretStore([MemoryBackend({name: "x" * 40})])
    audited = SecretStore([MemoryBackend({name: "x" * 40})])
    store.get(name)
    audited.get(name)
    paths: dict[str, Callable[[], object]] = {
        "get_secret(name).reveal()": lambda: get_secret(name).reveal(),
        "store.get(name).reveal(), a cached value": lambda: store.get(name).reveal(),
    }
    ns: dict[str, list[float]] = {}
    to_env: dict[str, list[float]] = {}
    to_off: dict[str, list[float]] = {}

    def note(label: str, value: float, base: float, off: float) -> None:
        ns.setdefault(label, []).append(value)
        to_env.setdefault(label, []).append(value / base)
        to_off.setdefault(label, []).append(value / off)

    for i in range(rounds):
        base = per_call_ns(lambda: environ[name], number)
        timed: dict[tuple[str, str], float] = {}
        # Which state is timed first alternates, so neither always runs on the warmer machine.
        for state in ("off", "on") if i % 2 == 0 else ("on", "off"):
            inst = None
            if state == "on":
                reader, _, inst = sdk()
                reader.collect()  # the observable callbacks have run: nothing of them stays on the path
            for path, fn in paths.items():
                timed[path, state] = per_call_ns(fn, number)
            if inst is not None:
                inst.uninstrument()
        stop = secretkit.audit(audited)
        audit_ns = per_call_ns(lambda: audited.get(name).reveal(), number)
        stop()
        for path in paths:
            off = timed[path, "off"]
            note(f"{path}: telemetry off", off, base, off)
            note(f"{path}: instrument() on", timed[path, "on"], base, off)
        cached = "store.get(name).reveal(), a cached value"
        note(f"{cached}: audit() on", audit_ns, base, timed[cached, "off"])
    store.close()
    audited.close()
    secretkit.configure()
    return [
        (
            label,
            statistics.median(ns[label]),
            statistics.median(to_env[label]),
            statistics.median(to_off[label]),
        )
        for label in ns
    ]


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
    print(f"{'cached read':<62} {'median ns':>10} {'vs os.environ':>14} {'vs off':>8}")
    for label, ns, to_env, to_off in bench_hot_path(number, rounds):
        print(f"{label:<62} {ns:>10.0f} {to_env:>13.2f}x {to_off:>7.2f}x")
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
