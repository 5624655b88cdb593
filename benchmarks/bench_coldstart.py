"""Cold start over a slow network: one fetch after another vs secretkit's concurrent prefetch.

Run by hand: ``python benchmarks/bench_coldstart.py`` (``--quick`` for a smoke run, which
never fails on timing). It starts moto, OpenBao and the local GCP and Azure servers, each
behind the fault-injecting proxy of ``tests/servers/faultproxy.py`` adding 10 or 50 ms to
every response, and times, from fresh clients each time (connecting and logging in count):

1. sequential: the backend's ``fetch`` for each secret in turn, as an application that
   reads its secrets one by one does;
2. secretkit: ``SecretStore.prefetch`` of all of them (batches per backend in parallel,
   singles with a bounded number in flight);
3. Powertools (AWS only): ``SecretsProvider.get`` per name, the way its docs show;
4. ``SecretkitSettings`` with 20 remote fields (5 per backend) vs 20 sequential fetches.

No secret value is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from network._remotes import REMOTES, Remote, running_remotes
from secretkit import SecretRef, SecretStore


def sequential(remote: Remote, refs: list[str]) -> float:
    backend = remote.backend()
    started = time.perf_counter()
    for ref in refs:
        backend.fetch(SecretRef.parse(ref))
    took = time.perf_counter() - started
    backend.close()
    return took


def prefetched(backends: list[Any], refs: list[str]) -> float:
    store = SecretStore([], reference_backends=backends)
    started = time.perf_counter()
    failed = store.prefetch(refs)
    took = time.perf_counter() - started
    store.close()
    if failed:
        raise SystemExit(f"prefetch failed for {len(failed)} secrets: {sorted(failed)[:3]}")
    return took


def powertools(remote: Remote, names: list[str]) -> float:
    import boto3
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    client = boto3.session.Session().client("secretsmanager", endpoint_url=f"http://{remote.proxy.address}")
    provider = SecretsProvider(boto3_client=client)
    started = time.perf_counter()
    for name in names:
        provider.get(name)
    took = time.perf_counter() - started
    client.close()
    return took


def settings_case(remotes: dict[str, Remote], per_backend: int) -> tuple[float, float]:
    """(SecretkitSettings() with per_backend fields of each backend, the same fetched in sequence)."""
    from pydantic import SecretStr, create_model

    from secretkit.pydantic import Ref, SecretkitSettings

    refs = {s: [r.secret(f"settings-{s}-{i}") for i in range(per_backend)] for s, r in remotes.items()}
    fields: dict[str, Any] = {}
    for scheme, found in refs.items():
        for i, ref in enumerate(found):
            fields[f"{scheme.replace('-', '_')}_{i}"] = (Annotated[SecretStr, Ref(ref)], ...)
    model: Any = create_model("ColdSettings", __base__=SecretkitSettings, **fields)
    store = SecretStore([], reference_backends=[r.backend() for r in remotes.values()])
    started = time.perf_counter()
    model.from_store(store)
    took = time.perf_counter() - started
    store.close()
    one_by_one = sum(sequential(remotes[s], found) for s, found in refs.items())
    return took, one_by_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 secrets at 10 ms")
    args = parser.parse_args()
    counts = [10] if args.quick else [10, 40, 100]
    latencies = [10] if args.quick else [10, 50]

    with running_remotes() as remotes:
        pool = {s: [r.secret(f"cold-{s}-{i}") for i in range(max(counts))] for s, r in remotes.items()}
        print("cold start, ms (fresh clients each time; N secrets of one backend)")
        print(
            f"{'backend':<10}{'N':>5}{'lat':>6}{'sequential':>12}{'secretkit':>11}{'powertools':>12}{'speed-up':>10}"
        )
        for latency in latencies:
            for remote in remotes.values():
                remote.proxy.set("latency", latency)
            for scheme in REMOTES:
                remote = remotes[scheme]
                for count in counts:
                    refs = pool[scheme][:count]
                    one = sequential(remote, refs)
                    ours = prefetched([remote.backend()], refs)
                    theirs = "-"
                    if scheme == "aws-sm":
                        names = [ref.removeprefix("aws-sm://") for ref in refs]
                        theirs = f"{powertools(remote, names) * 1000:.0f}"
                    print(
                        f"{scheme:<10}{count:>5}{latency:>6}{one * 1000:>12.0f}{ours * 1000:>11.0f}"
                        f"{theirs:>12}{one / ours:>9.1f}x"
                    )
            # All four backends at once: N per backend.
            for count in counts[:2]:
                refs = [ref for s in REMOTES for ref in pool[s][:count]]
                one = sum(sequential(remotes[s], pool[s][:count]) for s in REMOTES)
                ours = prefetched([remotes[s].backend() for s in REMOTES], refs)
                print(
                    f"{'all four':<10}{count * 4:>5}{latency:>6}{one * 1000:>12.0f}{ours * 1000:>11.0f}"
                    f"{'-':>12}{one / ours:>9.1f}x"
                )
        latency = 10 if args.quick else 50
        for remote in remotes.values():
            remote.proxy.set("latency", latency)
        took, one_by_one = settings_case(remotes, per_backend=5)
        print(
            f"\nSecretkitSettings() with 20 remote fields (5 per backend) at {latency} ms: "
            f"{took * 1000:.0f} ms; the same 20 fetched one by one: {one_by_one * 1000:.0f} ms "
            f"({one_by_one / took:.1f}x)"
        )


if __name__ == "__main__":
    main()
