"""AWS Secrets Manager benchmarks against a real moto server: secretkit vs Powertools vs SecretCache.

Run by hand: ``python benchmarks/bench_aws.py`` (``--quick`` for a smoke run, which never
fails on timing). It starts its own moto server on a free loopback port; every library
talks to it over HTTP through boto3. Figures are medians of interleaved rounds in this
one process, and ratios are taken within a round, so machine load hits both sides alike.
Requests are counted on the wire (botocore's ``before-send`` event). No value is printed.

Measured:

1. cached read: ``secretkit.get_secret(ref).reveal()`` vs Powertools ``parameters.get_secret``
   vs ``SecretCache.get_secret_string``, all cache hits;
2. requests made by 32 threads reading one cold secret, for all three;
3. cold fetch: a secretkit miss vs a raw ``boto3`` ``get_secret_value`` (the overhead);
4. requests per hour for 20 secrets with a 5-minute TTL, with and without batching, and
   the requests one refresh of 20 due secrets costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _results import add_json_option, write_json

import secretkit
from secretkit import Fetched, SecretRef, SecretStore
from secretkit.backends.aws import AwsSecretsManagerBackend
from secretkit.testing import FakeClock
from servers.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, WireLog

THREADS = 32


def aws_environment(server: MotoServer) -> None:
    """Point boto3 (and so all three libraries) at the moto server, and at nothing else."""
    empty = Path(tempfile.gettempdir()) / f"bench-aws-none-{uuid.uuid4().hex}"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": server.url,
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        os.environ.pop(name, None)


def create(admin: Any, value: str) -> str:
    name = f"bench/{uuid.uuid4().hex[:12]}"
    admin.create_secret(Name=name, SecretString=value)
    return name


def payload() -> str:
    # A realistic JSON secret; random, so nothing meaningful could leak even if it were printed.
    return json.dumps({"username": "app", "password": uuid.uuid4().hex})


# -- 1. cached read ----------------------------------------------------------------------------


def bench_cached_read(admin: Any, number: int, repeat: int) -> list[tuple[str, float, float]]:
    from aws_lambda_powertools.utilities import parameters
    from aws_secretsmanager_caching import SecretCache

    name = create(admin, payload())
    ref = f"aws-sm://{name}"
    secretkit.configure(backends=[])  # the default store, resolving aws-sm:// with zero config
    get_secret = secretkit.get_secret
    store = secretkit.default_store()
    cache = SecretCache()
    get_string = cache.get_secret_string
    pt_get = parameters.get_secret
    # Warm every cache (and check all three read the same secret, without showing it).
    assert get_secret(ref).reveal() == pt_get(name, max_age=300) == get_string(name)

    candidates: list[tuple[str, Callable[[], object], int]] = [
        ("secretkit.get_secret(ref).reveal()", lambda: get_secret(ref).reveal(), number),
        ("store.get(ref).reveal()", lambda: store.get(ref).reveal(), number),
        ("Powertools parameters.get_secret(name)", lambda: pt_get(name, max_age=300), max(1, number // 10)),
        ("SecretCache.get_secret_string(name)", lambda: get_string(name), max(1, number // 100)),
    ]
    per_round: list[list[float]] = [[] for _ in candidates]
    for _ in range(repeat):
        for i, (_, fn, n) in enumerate(candidates):
            per_round[i].append(timeit.timeit(fn, number=n) / n * 1e9)
    rows = []
    for i, (label, _, _) in enumerate(candidates):
        vs_secretkit = [t / base for t, base in zip(per_round[i], per_round[0], strict=True)]
        rows.append((label, statistics.median(per_round[i]), statistics.median(vs_secretkit)))
    secretkit.configure()
    return rows


# -- 2. cold readers -----------------------------------------------------------------------------


def _race(read: Callable[[], object]) -> None:
    barrier = threading.Barrier(THREADS)

    def worker() -> None:
        barrier.wait()
        read()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def bench_cold_readers(server: MotoServer, admin: Any) -> list[tuple[str, dict[str, int]]]:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_secretsmanager_caching import SecretCache

    rows = []

    wire = WireLog()
    name = create(admin, payload())
    store = SecretStore(
        [], reference_backends=[AwsSecretsManagerBackend(client=wire.attach(server.client("secretsmanager")))]
    )
    _race(lambda: store.get(f"aws-sm://{name}").reveal())
    rows.append(("secretkit", dict(wire.calls)))
    store.close()

    wire = WireLog()
    name = create(admin, payload())
    provider = SecretsProvider(boto3_client=wire.attach(server.client("secretsmanager")))
    _race(lambda: provider.get(name, max_age=300))
    rows.append(("Powertools SecretsProvider", dict(wire.calls)))

    wire = WireLog()
    name = create(admin, payload())
    cache = SecretCache(client=wire.attach(server.client("secretsmanager")))
    _race(lambda: cache.get_secret_string(name))
    rows.append(("SecretCache", dict(wire.calls)))
    return rows


# -- 3. cold fetch ---------------------------------------------------------------------------------


def bench_cold_fetch(server: MotoServer, admin: Any, rounds: int) -> tuple[float, float, float, float]:
    """Median µs of a raw boto3 get_secret_value and of a secretkit miss over the same client."""
    client = server.client("secretsmanager")
    name = create(admin, payload())
    ref = f"aws-sm://{name}"
    store = SecretStore([], reference_backends=[AwsSecretsManagerBackend(client=client)])
    store.get(ref)
    client.get_secret_value(SecretId=name)
    raw: list[float] = []
    ours: list[float] = []
    for _ in range(rounds):
        # Alternate which goes first, so neither always meets a warmer or colder server.
        for first in (True, False):
            for is_raw in (first, not first):
                if is_raw:
                    t0 = time.perf_counter()
                    client.get_secret_value(SecretId=name)
                    raw.append(time.perf_counter() - t0)
                else:
                    store.invalidate(ref)
                    t0 = time.perf_counter()
                    store.get(ref)
                    ours.append(time.perf_counter() - t0)
    store.close()
    raw_us, ours_us = statistics.median(raw) * 1e6, statistics.median(ours) * 1e6

    # secretkit's own cost of a miss, with a backend that costs nothing: the noise-free part.
    class Instant:
        scheme = "aws-sm"

        def fetch(self, ref: SecretRef) -> Fetched:
            return Fetched("x", version="1")

        def close(self) -> None:
            pass

    local = SecretStore([], reference_backends=[Instant()])

    def miss() -> None:
        local.invalidate(ref)
        local.get(ref)

    n = max(1000, rounds * 50)
    own_us = min(timeit.repeat(miss, number=n, repeat=5)) / n * 1e6
    return raw_us, ours_us, (ours_us - raw_us) / raw_us * 100, own_us


# -- 4. batching -----------------------------------------------------------------------------------


class NoBatch:
    """The same backend without ``fetch_many``: what a store does when it cannot batch."""

    scheme = "aws-sm"

    def __init__(self, inner: AwsSecretsManagerBackend) -> None:
        self.inner = inner

    def fetch(self, ref: SecretRef) -> Fetched:
        return self.inner.fetch(ref)

    def close(self) -> None:
        self.inner.close()


def bench_requests_per_hour(server: MotoServer, admin: Any, batching: bool) -> dict[str, int]:
    """Every second of a simulated hour, an application reads each of 20 secrets (TTL 300 s)."""
    names = [create(admin, payload()) for _ in range(20)]
    refs = [f"aws-sm://{n}" for n in names]
    wire = WireLog()
    backend = AwsSecretsManagerBackend(client=wire.attach(server.client("secretsmanager")))
    clock = FakeClock()
    store = SecretStore(
        [], reference_backends=[backend if batching else NoBatch(backend)], ttl=300, clock=clock
    )
    store.prefetch(refs)
    for _ in range(3600):
        clock.advance(1)
        for ref in refs:
            store.get(ref)
        store.wait_idle(30)
    store.close()
    return dict(wire.calls)


def bench_one_refresh(server: MotoServer, admin: Any) -> dict[str, int]:
    """Requests made when 20 cached secrets come due at once and one of them is read."""
    refs = [f"aws-sm://{create(admin, payload())}" for _ in range(20)]
    wire = WireLog()
    backend = AwsSecretsManagerBackend(client=wire.attach(server.client("secretsmanager")))
    clock = FakeClock()
    store = SecretStore([], reference_backends=[backend], ttl=300, jitter=0.0, clock=clock)
    store.prefetch(refs)
    wire.reset()
    clock.advance(250)
    store.get(refs[0])
    store.wait_idle(30)
    calls = dict(wire.calls)
    store.close()
    return calls


# -- report ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations; never fails on timing")
    add_json_option(parser)
    args = parser.parse_args()
    number, repeat, rounds = (2_000, 3, 20) if args.quick else (200_000, 9, 300)
    results: dict[str, Any] = {"quick": args.quick, "threads": THREADS}

    misses: list[str] = []
    with MotoServer() as server:
        aws_environment(server)
        admin = server.client("secretsmanager")
        print(
            f"secretkit AWS benchmarks against moto at {server.url} "
            f"({'quick' if args.quick else 'full'} run)\n"
        )

        rows = bench_cached_read(admin, number, repeat)
        results["cached_read"] = [{"label": label, "ns": ns, "x_secretkit": x} for label, ns, x in rows]
        print("1. cached read (cache hit)               median ns/op   x secretkit")
        for label, ns, ratio in rows:
            print(f"   {label:<40} {ns:>10.0f}   {ratio:>9.1f}")
        for label, _, speedup in rows[2:]:
            print(f"   secretkit is {speedup:.1f}x faster than {label.split()[0]} (target >= 10x)")
            if speedup < 10:
                misses.append(f"cached read only {speedup:.1f}x faster than {label.split()[0]}")

        print(f"\n2. requests on the wire from {THREADS} threads reading one cold secret")
        results["cold_readers"] = readers = dict(bench_cold_readers(server, admin))
        for label, calls in readers.items():
            shown = ", ".join(f"{op} {n}" for op, n in sorted(calls.items())) or "none"
            print(f"   {label:<28} {shown}")
            if label == "secretkit" and calls != {"GetSecretValue": 1}:
                misses.append(f"{THREADS} cold readers made {calls}, not 1 GetSecretValue")

        raw_us, ours_us, overhead, own_us = bench_cold_fetch(server, admin, rounds)
        results["cold_fetch"] = {
            "raw_us": raw_us,
            "secretkit_us": ours_us,
            "overhead_pct": overhead,
            "own_us": own_us,
        }
        print("\n3. cold fetch                             median µs")
        print(f"   raw boto3 get_secret_value               {raw_us:>9.0f}")
        print(
            f"   secretkit miss (same client)             {ours_us:>9.0f}   "
            f"overhead {overhead:+.1f}% (target < 10%)"
        )
        print(f"   secretkit's own cost of a miss           {own_us:>9.1f}   (a backend that costs nothing)")
        if overhead >= 10:
            misses.append(f"a cold fetch adds {overhead:.1f}% to a raw boto3 call")

        print("\n4. requests per simulated hour, 20 secrets read every second, TTL 300 s")
        per_hour: dict[str, dict[str, int]] = {}
        results["requests_per_hour"] = per_hour
        for batching in (True, False):
            calls = per_hour["batching" if batching else "no_batching"] = bench_requests_per_hour(
                server, admin, batching
            )
            shown = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
            print(
                f"   {'with batching' if batching else 'without batching':<28} "
                f"{sum(calls.values()):>5}   ({shown})"
            )
        # Lives are 270-300 s (jitter 0.1) and refreshes start at 80 % of them: about 16 rounds.
        print("   (ideal with batching: one call per refresh round, about 17 including the prefetch)")
        results["one_refresh"] = refresh = bench_one_refresh(server, admin)
        print(
            f"   one refresh of 20 due secrets: {', '.join(f'{op} {n}' for op, n in sorted(refresh.items()))}"
        )
        if refresh != {"BatchGetSecretValue": 1}:
            misses.append(f"refreshing 20 due secrets made {refresh}")

    results["targets_missed"] = misses
    write_json(args.json, results)
    print()
    if misses:
        print("targets missed: " + "; ".join(misses))
        return 0 if args.quick else 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
