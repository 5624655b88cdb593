"""Cold-fetch overhead of the azure-kv backend over the raw SDK call, against the local test vault.

Run by hand: ``python benchmarks/bench_azure.py`` (``--quick`` for a smoke run). Both sides talk
to the same HTTPS vault (tests/servers/azure_server.py) through the same kind of SecretClient,
and their calls are interleaved, so a slow or noisy machine shifts both sides together.
Every figure is a median; no secret value is ever printed.

* cache miss: ``SecretClient.get_secret`` against ``AzureKeyVaultBackend.fetch`` (one shared client)
  and against ``SecretStore.get`` of an invalidated key (the whole miss path).
* own work: the backend's parsing and checking alone, timed without the network.
* new client: building a client and fetching once (a new process's first read; TLS handshake
  included, the vault's auth challenge already cached by the SDK in both cases).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _results import add_json_option, write_json  # noqa: E402
from _rounds import interleaved  # noqa: E402
from azure.keyvault.secrets import SecretClient  # noqa: E402

from secretkit import SecretRef, SecretStore  # noqa: E402
from secretkit.backends.azure import AzureKeyVaultBackend  # noqa: E402
from servers.azure_server import KeyVaultServer, StaticTokenCredential, free_port  # noqa: E402

NAME = "bench-secret"


def report(title: str, samples: dict[str, list[float]], baseline: str) -> None:
    base = statistics.median(samples[baseline])
    print(f"\n{title} ({len(samples[baseline])} rounds)")
    print(f"  {'':44} {'median':>10} {'p90':>10} {'ratio':>7} {'overhead':>9}")
    for label, values in samples.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(
            f"  {label:44} {median * 1e6:8.0f}us {p90 * 1e6:8.0f}us {median / base:7.3f} "
            f"{(median - base) * 1e6:+7.0f}us"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    add_json_option(parser)
    args = parser.parse_args()
    miss_rounds, client_rounds = (60, 15) if args.quick else (600, 120)

    with KeyVaultServer(free_port()) as server:
        server.put(NAME, "v" * 64)
        options = server.client_options()
        client = SecretClient(server.url, StaticTokenCredential(), **options)
        backend = AzureKeyVaultBackend(client=client)
        store = SecretStore([backend], negative_ttl=0)
        key = f"azure-kv://{NAME}"
        ref = SecretRef.parse(key)

        def raw() -> object:
            return client.get_secret(NAME)

        def fetch() -> object:
            return backend.fetch(ref)

        def store_miss() -> object:
            store.invalidate(key)
            return store.get(key)

        # secretkit's own work in a fetch, without the network: parsing the reference and
        # checking and wrapping the SDK's answer. Immune to the noise that the round trips have.
        held = client.get_secret(NAME)

        def own_work() -> object:
            url, name, _ = backend._target(ref)
            return backend._fetched(ref, held, url, name)

        own = statistics.median(timeit.repeat(own_work, number=2000, repeat=5)) / 2000

        for fn in (raw, fetch, store_miss):  # the challenge, the TLS session, the connection pool
            for _ in range(5):
                fn()
        misses = interleaved(
            {
                "SecretClient.get_secret (raw SDK)": raw,
                "AzureKeyVaultBackend.fetch": fetch,
                "SecretStore.get, cache miss": store_miss,
            },
            miss_rounds,
        )

        def raw_new() -> object:
            with SecretClient(server.url, StaticTokenCredential(), **options) as fresh:
                return fresh.get_secret(NAME)

        def ours_new() -> object:
            fresh = AzureKeyVaultBackend(server.url, StaticTokenCredential(), **options)
            try:
                return fresh.fetch(ref)
            finally:
                fresh.close()

        raw_new()
        ours_new()
        fresh = interleaved(
            {
                "new SecretClient + get_secret (raw SDK)": raw_new,
                "new AzureKeyVaultBackend + fetch": ours_new,
            },
            client_rounds,
        )
        store.close()
        client.close()

    print("azure-kv cold fetch against a local HTTPS Key Vault (loopback, TLS, bearer token)")
    report("cache miss, warm connection", misses, "SecretClient.get_secret (raw SDK)")
    report("new client, first fetch", fresh, "new SecretClient + get_secret (raw SDK)")
    raw_median = statistics.median(misses["SecretClient.get_secret (raw SDK)"])
    print(
        f"\nthe backend's own work per fetch (no network): {own * 1e6:.1f}us, "
        f"{own / raw_median:.2%} of the raw call's median"
    )
    worst = max(
        statistics.median(misses["AzureKeyVaultBackend.fetch"])
        / statistics.median(misses["SecretClient.get_secret (raw SDK)"]),
        statistics.median(fresh["new AzureKeyVaultBackend + fetch"])
        / statistics.median(fresh["new SecretClient + get_secret (raw SDK)"]),
    )
    print(f"\nbackend over raw SDK, worst median ratio: {worst:.3f} (target: under 1.10)")
    write_json(
        args.json,
        {
            "quick": args.quick,
            "rounds": miss_rounds,
            "miss_us": {label: statistics.median(values) * 1e6 for label, values in misses.items()},
            "miss_baseline": "SecretClient.get_secret (raw SDK)",
            "new_client_us": {label: statistics.median(values) * 1e6 for label, values in fresh.items()},
            "own_work_us": own * 1e6,
            "worst_backend_ratio": worst,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
