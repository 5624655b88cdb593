"""Vault backend benchmarks against a real OpenBao dev server: secretkit vs raw hvac.

Run by hand: ``python benchmarks/bench_vault.py`` (``--quick`` for a smoke run, which never
fails on timing). It starts its own OpenBao server on a free loopback port; both sides use
an hvac client over keep-alive HTTP to it. Calls are interleaved (the order rotating every
round), so machine load hits both sides alike; every figure is a median. No secret value
is printed.

Measured:

1. cold fetch: ``SecretStore.get`` of an invalidated key (the whole miss path: reference
   parsing, single flight, the backend, ``Fetched`` -> ``Secret``) and ``VaultBackend.fetch``
   alone, against hvac's ``read_secret_version`` on a default ``hvac.Client`` (the overhead %,
   the target being < 10 %). The backend reads proxy and CA variables once when it is built
   and turns off requests' per-request environment scan (``trust_env``); a raw client set up
   the same way is shown too, so that gain is visible rather than hidden in the ratio;
2. cached read: ``SecretStore.get(...).reveal()`` of a fresh key against the raw hvac read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _results import add_json_option, write_json
from _rounds import interleaved

from secretkit import SecretRef, SecretStore
from secretkit.backends.vault import TokenAuth, VaultBackend
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer

PATH = "bench/db"
REF = f"vault://secret/{PATH}#password"


def report(title: str, samples: dict[str, list[float]], baseline: str) -> None:
    base = statistics.median(samples[baseline])
    print(f"\n{title} ({len(samples[baseline])} rounds, medians)")
    print(f"  {'':46} {'median':>10} {'ratio':>8} {'overhead':>9}")
    for label, values in samples.items():
        median = statistics.median(values)
        overhead = f"{(median - base) / base * 100:+.1f}%" if label != baseline else ""
        print(f"  {label:46} {median * 1e6:8.1f}us {median / base:7.3f}x {overhead:>9}")


def timed_per_call(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """The median over ``repeats`` of the mean seconds per call in a loop of ``calls``."""
    results = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        results.append((time.perf_counter() - started) / calls)
    return statistics.median(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds only (a smoke run)")
    add_json_option(parser)
    args = parser.parse_args()
    rounds, warmup = (150, 20) if args.quick else (3000, 200)

    with OpenBaoServer() as server:
        admin = OpenBaoAdmin(server)
        admin.put(PATH, {"username": "bench", "password": "bench-password-value"})
        raw = server.client()
        raw_lean = server.client()
        raw_lean.session.trust_env = False
        backend = VaultBackend(url=server.url, auth=TokenAuth(server.root_token))
        store = SecretStore([backend], ttl=3600)
        ref = SecretRef.parse(REF).base

        def raw_read() -> object:
            return raw.secrets.kv.v2.read_secret_version(
                path=PATH, mount_point="secret", raise_on_deleted_version=True
            )["data"]["data"]["password"]

        def raw_lean_read() -> object:
            return raw_lean.secrets.kv.v2.read_secret_version(
                path=PATH, mount_point="secret", raise_on_deleted_version=True
            )["data"]["data"]["password"]

        def backend_fetch() -> object:
            return backend.fetch(ref)

        def store_miss() -> object:
            return store.get(REF)

        # Warm both sides: login, mount lookup, keep-alive connections.
        for _ in range(warmup):
            raw_read()
            raw_lean_read()
            backend_fetch()
            store.invalidate(REF)
            store_miss()

        # The store miss needs an invalidated key; invalidating is timed outside the call.
        miss_samples: list[float] = []

        def timed_miss() -> object:
            store.invalidate(REF)
            started = time.perf_counter()
            result = store_miss()
            miss_samples.append(time.perf_counter() - started)
            return result

        cold = interleaved(
            {
                "hvac read_secret_version (raw)": raw_read,
                "hvac read_secret_version, trust_env=False": raw_lean_read,
                "VaultBackend.fetch": backend_fetch,
                "__store_miss__": timed_miss,
            },
            rounds,
        )
        cold["SecretStore.get, cache miss"] = miss_samples
        del cold["__store_miss__"]
        report("cold fetch over HTTP to OpenBao", cold, "hvac read_secret_version (raw)")

        store.get(REF)
        cached_calls, repeats = (2_000, 5) if args.quick else (100_000, 7)
        hit = timed_per_call(lambda: store.get(REF).reveal(), cached_calls, repeats)
        raw_median = statistics.median(cold["hvac read_secret_version (raw)"])
        print(f"\ncached read ({cached_calls} calls x {repeats}, median of means)")
        print(f"  {'SecretStore.get(ref).reveal(), cache hit':46} {hit * 1e9:8.0f}ns")
        print(f"  {'hvac read_secret_version (raw)':46} {raw_median * 1e9:8.0f}ns")
        print(f"  a cached read is {raw_median / hit:,.0f}x faster than a raw hvac read")

        sk_miss = statistics.median(cold["SecretStore.get, cache miss"])
        lean = statistics.median(cold["hvac read_secret_version, trust_env=False"])
        print(
            f"\nsummary: cold fetch overhead {(sk_miss - raw_median) / raw_median * 100:+.1f}% vs a default "
            f"hvac client (target < 10%), {(sk_miss - lean) / lean * 100:+.1f}% vs one with "
            f"trust_env=False; cached read {raw_median / hit:,.0f}x faster than raw hvac"
        )
        store.close()
        raw.adapter.close()
        raw_lean.adapter.close()
    write_json(
        args.json,
        {
            "quick": args.quick,
            "rounds": rounds,
            "cold_us": {label: statistics.median(values) * 1e6 for label, values in cold.items()},
            "overhead_pct": (sk_miss - raw_median) / raw_median * 100,
            "overhead_vs_trust_env_false_pct": (sk_miss - lean) / lean * 100,
            "cached_ns": hit * 1e9,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
