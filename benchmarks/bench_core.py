"""Core benchmarks: the cached read path, first reads, cold readers, refresh-ahead latency, import time.

Run by hand: ``python benchmarks/bench_core.py`` (``--quick`` for a smoke run). Every
figure is a median of repeated runs in this one process; ratios are against a baseline
measured in the same run, so a slow or noisy machine shifts both sides together.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import timeit
from typing import Any

import cachetools
from _results import add_json_option, write_json

import secretkit
from secretkit import Fetched, SecretRef, SecretStore
from secretkit.backends import EnvBackend, MemoryBackend

#: The hot-path bounds, as ratios to ``os.environ[name]`` (which a live read must itself do).
BOUNDS = {
    "get_secret(name): a variable": 1.5,
    "get_secret(name): a variable holding a reference": 2.0,
    "get_secret(reference) from a remote backend": 1.0,
}


def bench_hot_path(number: int, repeat: int) -> list[tuple[str, float, float, float | None]]:
    name, ref_name = "BENCH_SECRET", "BENCH_SECRET_REF"
    os.environ[name] = "x" * 40
    os.environ[ref_name] = "memory://bench/remote"
    remote = "memory://bench/remote"
    secretkit.configure(
        backends=[EnvBackend()], reference_backends=[MemoryBackend({"bench/remote": "y" * 40})]
    )
    get_secret, getenv = secretkit.get_secret, secretkit.getenv
    environ = os.environ
    for key in (name, ref_name, remote):
        get_secret(key)
    live = secretkit.live(name)
    secret = get_secret(name)

    cache: cachetools.TTLCache[str, str] = cachetools.TTLCache(maxsize=1024, ttl=300)
    lock = threading.Lock()

    def diy() -> str:
        with lock:
            value = cache.get(name)
            if value is None:
                value = cache[name] = os.environ[name]
            return value

    candidates = [
        ("os.environ[name]", lambda: environ[name]),
        ("get_secret(name): a variable", lambda: get_secret(name).reveal()),
        ("get_secret(name): a variable holding a reference", lambda: get_secret(ref_name).reveal()),
        ("get_secret(reference) from a remote backend", lambda: get_secret(remote).reveal()),
        ("secretkit.getenv(name)", lambda: getenv(name)),
        ("cachetools.TTLCache + threading.Lock", diy),
        ("Secret.reveal() (a held snapshot)", secret.reveal),
        ("LiveSecret.reveal() (a live handle)", live.reveal),
    ]
    # Interleaved rounds: each round times every candidate once, so drift in machine load
    # hits all of them alike; the ratio is taken within a round, then the median across rounds.
    per_round: list[list[float]] = [[] for _ in candidates]
    for _ in range(repeat):
        for i, (_, fn) in enumerate(candidates):
            per_round[i].append(timeit.timeit(fn, number=number) / number * 1e9)
    rows = []
    for i, (label, _) in enumerate(candidates):
        ratios = [t / base for t, base in zip(per_round[i], per_round[0], strict=True)]
        rows.append((label, statistics.median(per_round[i]), statistics.median(ratios), BOUNDS.get(label)))
    secretkit.configure()
    return rows


class SlowBackend(MemoryBackend):
    def __init__(self, delay: float, data: dict[str, str]) -> None:
        super().__init__(data)
        self.slow = delay

    def fetch(self, ref: SecretRef) -> Fetched:
        time.sleep(self.slow)
        return super().fetch(ref)


def bench_cold_readers(threads: int) -> tuple[int, int]:
    """Backend calls made by ``threads`` readers of one cold key: secretkit vs DIY TTLCache."""
    backend = SlowBackend(0.05, {"K": "v"})
    store = SecretStore([backend])
    barrier = threading.Barrier(threads)

    def ours() -> None:
        barrier.wait()
        store.get("K")

    run_threads(ours, threads)

    diy_backend = SlowBackend(0.05, {"K": "v"})
    cache: cachetools.TTLCache[str, Any] = cachetools.TTLCache(maxsize=16, ttl=300)
    lock = threading.Lock()
    barrier2 = threading.Barrier(threads)

    def diy() -> None:
        # The usual hand-rolled cache: lock around the dict, fetch outside it.
        barrier2.wait()
        with lock:
            hit = cache.get("K")
        if hit is None:
            value = diy_backend.fetch(SecretRef("memory", "K"))
            with lock:
                cache["K"] = value

    run_threads(diy, threads)
    return backend.calls, diy_backend.calls


class InlineBackend(MemoryBackend):
    """Called on the reader's thread, as the store calls local backends: no deadline lane."""

    local = True


class TimelyBackend(MemoryBackend):
    """A remote backend whose transport ends every call by its deadline (as gRPC does): no lane."""

    enforced_deadline = 0.0  # it never blocks


def bench_first_read(reads: int) -> dict[str, float]:
    """Median µs of a first read (a name never read before) from a backend that answers at once.

    What the store itself costs on a miss (the in-memory backend's own call is about 1 us).
    A remote backend that enforces its own deadline is called on the reader's thread, in a
    slot of its concurrency limit; any other remote backend goes through its deadline lane
    (a handoff to a worker thread and back); a local one is called inline, with no slot.
    """
    document = '{"user": "app", "password": "' + "p" * 24 + '"}'
    out: dict[str, float] = {}
    for label, backend_type, value in (
        ("remote, enforces its deadline, text value", TimelyBackend, "p" * 24),
        ("remote, on a lane, text value", MemoryBackend, "p" * 24),
        ("remote, on a lane, JSON value", MemoryBackend, document),
        ("local, JSON value", InlineBackend, document),
    ):
        names = [f"first-{i}" for i in range(reads)]
        backend = backend_type({name: value for name in names}, scheme="bench")
        store = SecretStore([], reference_backends=[backend], negative_ttl=0)
        times: list[float] = []
        clock = time.perf_counter
        for name in names:
            start = clock()
            store.get(f"bench://{name}")
            times.append(clock() - start)
        store.close()
        out[label] = statistics.median(times[reads // 10 :]) * 1e6
    return out


def run_threads(target: Any, n: int) -> None:
    ts = [threading.Thread(target=target) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def bench_refresh_window(reads: int) -> tuple[float, float, float, int]:
    """Latency of reads across refresh-ahead windows with a backend that takes 200 ms."""
    backend = SlowBackend(0.2, {"K": "v"})
    ttl = 0.5
    store = SecretStore([backend], ttl=ttl, refresh_ahead=0.5, jitter=0.0)
    store.get("K")
    samples: list[float] = []
    end = time.monotonic() + max(1.5, reads * 0.0005)
    while time.monotonic() < end:
        t0 = time.perf_counter()
        store.get("K").reveal()
        samples.append(time.perf_counter() - t0)
        time.sleep(0.0005)
    store.wait_idle(5)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99) - 1]
    return statistics.median(samples) * 1e6, p99 * 1e6, samples[-1] * 1e3, backend.calls - 1


def bench_import(repeat: int) -> tuple[float, float, list[str]]:
    # Timed as an installed package runs: with its bytecode cached. PYTHONDONTWRITEBYTECODE
    # would make every run compile each module edited since its .pyc was written.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def once(module: str) -> float:
        code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        return float(out.stdout)

    once("secretkit")  # writes the bytecode cache
    ours = statistics.median(once("secretkit") for _ in range(repeat)) * 1e3
    # What `import secretkit` itself imports from the standard library (logging, json and
    # hashlib wait for first use).
    stdlib = "typing, dataclasses, datetime, threading, re, random, urllib.parse, weakref, contextvars"
    base = statistics.median(once(stdlib) for _ in range(repeat)) * 1e3
    check = (
        "import sys, secretkit; print(','.join(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'boto3','botocore','hvac','google','azure','pydantic','grpc','requests'})))"
    )
    heavy = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    return ours, base, [m for m in heavy.split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    add_json_option(parser)
    args = parser.parse_args()
    number, repeat = (20_000, 3) if args.quick else (200_000, 25)
    results: dict[str, object] = {"quick": args.quick}

    print(f"secretkit core benchmarks (python {sys.version.split()[0]}, {'quick' if args.quick else 'full'})")
    print()
    rows = bench_hot_path(number, repeat)
    print(f"{'cached read':<50} {'median ns':>10} {'vs os.environ':>14} {'bound':>7}")
    for label, ns, ratio, bound in rows:
        verdict = "" if bound is None else f"{bound:>6.1f}x {'within' if ratio <= bound else 'OVER'}"
        print(f"{label:<50} {ns:>10.0f} {ratio:>13.2f}x {verdict}")
    print()
    results["hot_path"] = {
        label: {"ns": ns, "vs_environ": ratio, "bound": bound} for label, ns, ratio, bound in rows
    }

    ours, diy = bench_cold_readers(32)
    results["cold_readers"] = {"threads": 32, "secretkit_calls": ours, "diy_calls": diy}
    print(
        f"32 threads reading one cold key: secretkit {ours} backend call(s); DIY TTLCache+Lock {diy} call(s)"
    )

    first = bench_first_read(2000 if args.quick else 20_000)
    print(
        "first read of a name, backend answering at once (median us): "
        + ", ".join(f"{label} {us:.1f}" for label, us in first.items())
    )
    lane = first["remote, on a lane, text value"] - first["remote, enforces its deadline, text value"]
    print(
        f"  of which the handoff to a deadline lane, for a backend that does not enforce one: {lane:.1f} us"
    )
    results["first_read_us"] = first
    results["lane_handoff_us"] = lane

    median_us, p99_us, max_ms, refreshes = bench_refresh_window(2000 if args.quick else 20_000)
    print(
        f"reads through refresh-ahead windows (backend takes 200 ms): median {median_us:.1f} us, "
        f"p99 {p99_us:.1f} us, max {max_ms:.2f} ms, background refreshes {refreshes}"
    )
    results["refresh_window"] = {
        "backend_s": 0.2,
        "median_us": median_us,
        "p99_us": p99_us,
        "max_ms": max_ms,
        "refreshes": refreshes,
    }

    ours_ms, json_ms, heavy = bench_import(3 if args.quick else 15)
    print(
        f"import secretkit: {ours_ms:.1f} ms (the stdlib modules it uses, alone: {json_ms:.1f} ms); "
        f"cloud SDKs / pydantic imported: {heavy or 'none'}"
    )
    results["import"] = {"secretkit_ms": ours_ms, "stdlib_ms": json_ms, "heavy_modules": heavy}
    write_json(args.json, results)


if __name__ == "__main__":
    main()
