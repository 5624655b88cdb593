"""Reads during network faults, per backend and fault mode, and a soak with rotations.

Run by hand: ``python benchmarks/bench_faults.py`` (``--quick`` for a smoke run of a few
seconds per backend, which never fails on timing). It starts moto, OpenBao and the local
GCP and Azure servers, each behind the fault-injecting proxy of
``tests/servers/faultproxy.py``; 4 reader threads read 5 secrets through one store
(``ttl`` short, so refreshes happen during the fault; ``max_stale`` an hour).

For each backend and fault mode (latency 500 ms, reset, blackhole, drip 1 byte/100 ms,
close after 100 bytes) it reports:

- failed: reads that raised although the value was within ``max_stale`` (must be 0);
- worst / p99: read latency of held keys during the fault;
- requests: client-to-server writes the proxy saw during the fault (no storm);
- recovery: time from the network healing until every reader sees the value written
  during the fault.

The soak (3 minutes; 2 s with ``--quick``) runs the readers over all four backends while
every secret is rewritten every 10 s, and reports reads, errors, ``on_rotate`` calls, and
RSS, threads and open files at start and end. No secret value is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _results import add_json_option, write_json

from network._remotes import REMOTES, Remote, running_remotes
from secretkit import SecretStore

FAULTS: list[tuple[str, float]] = [
    ("latency", 500),
    ("reset", 0),
    ("blackhole", 0),
    ("drip", 100),
    ("close_after", 100),
]
READERS = 4
SECRETS = 5


class Readers:
    """Reader threads that read ``refs`` in turn and record every read's latency and outcome."""

    def __init__(self, store: SecretStore, refs: list[str], *, keep: bool = True) -> None:
        self.store = store
        self.refs = refs
        # The soak keeps counts only: hundreds of thousands of samples would be the RSS growth it reports.
        self.keep = keep
        self.reads = 0
        self.samples: list[tuple[float, float]] = []  # (when, seconds)
        self.errors: list[tuple[float, str]] = []
        self.last: dict[str, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(READERS)]

    def __enter__(self) -> Readers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, offset: int) -> None:
        i = offset
        while not self._stop.is_set():
            ref = self.refs[i % len(self.refs)]
            i += 1
            started = time.perf_counter()
            try:
                value = self.store.get(ref).reveal()
            except Exception as exc:
                with self._lock:
                    self.errors.append((started, type(exc).__name__))
            else:
                took = time.perf_counter() - started
                with self._lock:
                    self.reads += 1
                    if self.keep:
                        self.samples.append((started, took))
                    self.last[ref] = value
            time.sleep(0.002)  # a reader that also does work; and a shared, 2-core machine

    def between(self, start: float, end: float) -> list[float]:
        with self._lock:
            return [took for when, took in self.samples if start <= when < end]

    def errors_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for when, _ in self.errors if start <= when < end)


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return max(values, default=0.0)
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def fault_run(
    remote: Remote, fault: str, amount: float, *, ttl: float, hold: float, window: float
) -> dict[str, Any]:
    names = [f"fault-{fault}-{i}" for i in range(SECRETS)]
    refs = [remote.secret(f"before-{n}") for n in names]
    store = SecretStore([], reference_backends=[remote.backend()], ttl=ttl, max_stale=3600, deadline=2.0)
    try:
        store.prefetch(refs)
        with Readers(store, refs) as readers:
            time.sleep(ttl)
            start, requests = time.perf_counter(), remote.proxy.requests
            remote.proxy.set(fault, amount)  # type: ignore[arg-type]
            for ref in refs:
                remote.write(ref_name(ref), f"after-{ref_name(ref)}")
            time.sleep(hold)
            healed = time.perf_counter()
            during = remote.proxy.requests - requests
            remote.proxy.set("pass")
            recovered: float | None = None
            while time.perf_counter() - healed < window:
                if all(readers.last.get(ref, "").startswith("after-") for ref in refs):
                    recovered = time.perf_counter() - healed
                    break
                time.sleep(0.01)
            latencies = readers.between(start, healed)
            failed = readers.errors_between(start, healed + (recovered or window))
        return {
            "backend": remote.scheme,
            "fault": fault,
            "amount": amount,
            "failed": failed,
            "reads": len(latencies),
            "worst_ms": max(latencies, default=0.0) * 1000,
            "p99_ms": p99(latencies) * 1000,
            "requests": during,
            "recovery_s": recovered,
            "window_s": window,
        }
    finally:
        remote.proxy.set("pass")
        store.close()


def row_line(row: dict[str, Any]) -> str:
    amount = f" {row['amount']:g}" if row["amount"] else ""
    recovered = row["recovery_s"]
    back = f"{recovered:.2f} s" if recovered is not None else f"> {row['window_s']:.0f} s"
    return (
        f"{row['backend']:<10}{row['fault'] + amount:<16}{row['failed']:>7}{row['reads']:>8}"
        f"{row['worst_ms']:>10.1f}{row['p99_ms']:>9.1f}{row['requests']:>10}{back:>11}"
    )


def ref_name(ref: str) -> str:
    """The secret's name in its backend (what ``Remote.write`` takes) from its reference."""
    tail = ref.split("://", 1)[1].split("?", 1)[0]
    return tail.rsplit("/", 1)[-1]


def process_usage() -> tuple[float, int, int]:
    rss_kb = 0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return rss_kb / 1024, threading.active_count(), len(os.listdir("/proc/self/fd"))


def soak(remotes: dict[str, Remote], seconds: float, every: float) -> dict[str, Any]:
    refs: dict[str, list[str]] = {
        s: [r.secret(f"soak-0-{i}") for i in range(SECRETS)] for s, r in remotes.items()
    }
    store = SecretStore([], reference_backends=[r.backend() for r in remotes.values()], ttl=2.0, deadline=2.0)
    rotations = [0]

    def rotated(old: Any, new: Any) -> None:
        rotations[0] += 1

    every_ref = [ref for found in refs.values() for ref in found]
    for ref in every_ref:
        store.on_rotate(ref, rotated)
    store.prefetch(every_ref)
    rss0, threads0, files0 = process_usage()
    written = 0
    started = time.perf_counter()
    with Readers(store, every_ref, keep=False) as readers:
        round_ = 0
        while time.perf_counter() - started < seconds:
            time.sleep(every)
            round_ += 1
            for scheme, found in refs.items():
                for ref in found:
                    remotes[scheme].write(ref_name(ref), f"soak-{round_}-{ref_name(ref)}")
                    written += 1
        time.sleep(min(3.0, every))  # let the last rotation be read
    rss1, threads1, files1 = process_usage()
    store.close()
    print(
        f"\nsoak: {seconds:.0f} s, {len(every_ref)} secrets over {len(remotes)} backends, rewritten every "
        f"{every:g} s ({written} writes): {readers.reads} reads, {len(readers.errors)} errors, "
        f"{rotations[0]} on_rotate calls"
    )
    print(
        f"  RSS {rss0:.1f} -> {rss1:.1f} MiB, threads {threads0} -> {threads1}, "
        f"open files {files0} -> {files1}"
    )
    return {
        "seconds": seconds,
        "secrets": len(every_ref),
        "writes": written,
        "reads": readers.reads,
        "errors": len(readers.errors),
        "rotations": rotations[0],
        "rss_mib": [rss0, rss1],
        "threads": [threads0, threads1],
        "open_files": [files0, files1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: short faults, a 2 s soak")
    parser.add_argument("--part", choices=("all", "faults", "soak"), default="all", help="run one part only")
    add_json_option(parser)
    args = parser.parse_args()
    faults, ttl, hold, window, soak_for, every = FAULTS, 2.0, 10.0, 60.0, 180.0, 10.0
    if args.quick:
        faults, ttl, hold, window, soak_for, every = FAULTS[2:4], 0.3, 0.5, 3.0, 2.0, 1.0

    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {"quick": args.quick, "ttl_s": ttl, "hold_s": hold, "rows": rows}
    with running_remotes() as remotes:
        print(
            f"reads during a fault of {hold:g} s ({READERS} readers, {SECRETS} secrets, ttl {ttl:g} s, "
            "max_stale 1 h, deadline 2 s)"
        )
        print(
            f"{'backend':<10}{'fault':<16}{'failed':>7}{'reads':>8}{'worst ms':>10}{'p99 ms':>9}"
            f"{'requests':>10}{'recovery':>11}"
        )
        for scheme in REMOTES if args.part != "soak" else ():
            for fault, amount in faults:
                row = fault_run(remotes[scheme], fault, amount, ttl=ttl, hold=hold, window=window)
                rows.append(row)
                print(row_line(row), flush=True)
        if args.part != "faults":
            results["soak"] = soak(remotes, soak_for, every)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
