"""What secretkit adds to a cold Secret Manager read: the raw SDK call against secretkit's.

Run by hand: ``python benchmarks/bench_gcp.py`` (``--quick`` for a smoke run). The three
reads below go to the same local gRPC server (tests/servers/gcp_server.py) over the same
channel, interleaved round by round so machine noise lands on all of them alike; every
figure is a median. "Cold" means nothing is cached: each round reads a secret no one has
read before, so the store's figure is a true first read (its miss path, the backend, the
gRPC call). Values are never printed.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _results import add_json_option, write_json

from secretkit import SecretRef, SecretStore
from secretkit.backends.gcp import GcpSecretManagerBackend, _crc32c_function, _crc32c_python
from servers.gcp_server import GcpSecretManagerServer, make_client

PROJECT = "bench-project"
TARGET = 1.10  # the bar: under 10 % over the raw SDK call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    add_json_option(parser)
    args = parser.parse_args()
    rounds, warmup = (300, 50) if args.quick else (3000, 200)

    server = GcpSecretManagerServer().start()
    client = make_client(server.address)
    try:
        # One secret per round, so every store read is a true first read of its key.
        secrets = [f"db-password-{i}" for i in range(rounds + warmup)]
        for secret in secrets:
            server.add_version(PROJECT, secret, '{"user": "app", "password": "' + "p" * 24 + '"}')
        backend = GcpSecretManagerBackend(project=PROJECT, client=client)
        store = SecretStore([backend], negative_ttl=0)
        contenders: list[tuple[str, Callable[[str], object]]] = [
            (
                "raw SDK access_secret_version",
                lambda s: (
                    client.access_secret_version(
                        name=f"projects/{PROJECT}/secrets/{s}/versions/latest"
                    ).payload.data
                ),
            ),
            ("GcpSecretManagerBackend.fetch", lambda s: backend.fetch(SecretRef("gcp-sm", s)).value),
            ("SecretStore.get, first read", lambda s: store.get(f"gcp-sm://{s}").reveal()),
        ]
        timings = measure(contenders, secrets, warmup)
        store.close()
    finally:
        client.transport.close()
        server.stop()

    base = statistics.median(timings[contenders[0][0]])
    print(
        f"secretkit gcp-sm cold fetch (python {sys.version.split()[0]}, {'quick' if args.quick else 'full'},"
    )
    print(f"{rounds} interleaved rounds against a local gRPC Secret Manager)")
    print()
    print(f"{'read':<34} {'median us':>10} {'vs raw SDK':>11}")
    for label, _ in contenders:
        median = statistics.median(timings[label])
        print(f"{label:<34} {median * 1e6:>10.1f} {median / base:>10.3f}x")
    print()
    checksum = "pure Python" if _crc32c_function() is _crc32c_python else "google-crc32c (C)"
    print(f"payload checksum verified with {checksum}")
    for label, _ in contenders[1:]:
        overhead = statistics.median(timings[label]) / base - 1
        verdict = "met" if overhead < TARGET - 1 else "NOT met"
        print(f"target under +{TARGET - 1:.0%} for {label}: {verdict} ({overhead:+.1%})")
    write_json(
        args.json,
        {
            "quick": args.quick,
            "rounds": rounds,
            "checksum": checksum,
            "cold_us": {label: statistics.median(timings[label]) * 1e6 for label, _ in contenders},
            "baseline": contenders[0][0],
        },
    )
    return 0


def measure(
    contenders: list[tuple[str, Callable[[str], object]]], secrets: list[str], warmup: int
) -> dict[str, list[float]]:
    """Seconds per call of each contender: each reads one new secret per round, the order rotating."""
    for secret in secrets[:warmup]:
        for _, fn in contenders:
            fn(secret)
    timings: dict[str, list[float]] = {label: [] for label, _ in contenders}
    clock = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i, secret in enumerate(secrets[warmup:]):
            shift = i % len(contenders)
            for label, fn in contenders[shift:] + contenders[:shift]:
                start = clock()
                fn(secret)
                timings[label].append(clock() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


if __name__ == "__main__":
    sys.exit(main())
