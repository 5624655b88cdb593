"""Cold start over a slow network, counted in round trips: prefetch and concurrent cold reads.

Run by hand: ``python benchmarks/bench_coldstart.py`` (``--quick`` for a smoke run, which
never fails on timing; ``--sequential`` adds one-by-one fetches, for all four backends
their sum, and Powertools for comparison; ``--json PATH`` writes the figures as JSON).
It starts moto, OpenBao and the local GCP and Azure servers, each behind the
fault-injecting proxy of ``tests/servers/faultproxy.py`` adding ``--latency`` ms (50 by
default) to every response, and times, from fresh clients each time (connecting, TLS and
logging in count):

- ``prefetch``: ``SecretStore.prefetch`` of N secrets of one backend, and of N of each of
  the four at once;
- ``gets``: N threads each reading one cold secret with ``store.get`` at the same moment.

A round trip is the time divided by the injected latency: the physical floor is one, plus
connection setup (a TLS handshake is one more). ``requests`` is what the proxy saw the
client send (HTTP requests; for gRPC, HTTP/2 frames batches), ``conns`` the connections
opened. Each figure is the best of ``--repeat`` runs. No secret value is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _results import add_json_option, write_json

from network._remotes import REMOTES, ColdReaders, Remote, running_remotes
from secretkit import SecretRef, SecretStore


class Run:
    """One timed cold start: milliseconds, and what the proxies saw."""

    def __init__(self, ms: float, requests: int, connections: int) -> None:
        self.ms, self.requests, self.connections = ms, requests, connections


def measured(remotes: list[Remote], body: Callable[[], None]) -> Run:
    before = [(r.proxy.requests, r.proxy.connections) for r in remotes]
    started = time.perf_counter()
    body()
    took = (time.perf_counter() - started) * 1000
    requests = sum(r.proxy.requests - b[0] for r, b in zip(remotes, before, strict=True))
    connections = sum(r.proxy.connections - b[1] for r, b in zip(remotes, before, strict=True))
    return Run(took, requests, connections)


def prefetched(remotes: list[Remote], refs: list[str]) -> Run:
    store = SecretStore([], reference_backends=[r.backend() for r in remotes])
    try:
        run = measured(remotes, lambda: _no_failures(store.prefetch(refs)))
    finally:
        store.close()
    return run


def concurrent_gets(remotes: list[Remote], refs: list[str]) -> Run:
    store = SecretStore([], reference_backends=[r.backend() for r in remotes])
    try:
        readers = ColdReaders(store, refs)
        run = measured(remotes, readers.go)
    finally:
        store.close()
    if readers.failures:
        raise SystemExit(f"{len(readers.failures)} cold gets failed: {type(readers.failures[0]).__name__}")
    return run


def _no_failures(failed: dict[str, Any]) -> None:
    if failed:
        raise SystemExit(f"prefetch failed for {len(failed)} secrets: {type(next(iter(failed.values())))}")


def best(repeat: int, fn: Callable[[], Run]) -> Run:
    return min((fn() for _ in range(repeat)), key=lambda run: run.ms)


def sequential(remote: Remote, refs: list[str]) -> float:
    backend = remote.backend()
    started = time.perf_counter()
    for ref in refs:
        backend.fetch(SecretRef.parse(ref))
    took = time.perf_counter() - started
    backend.close()
    return took * 1000


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
    return took * 1000


def settings_case(
    remotes: dict[str, Remote], per_backend: int, one_by_one: bool
) -> tuple[float, float | None]:
    """ms of ``SecretkitSettings()`` with ``per_backend`` fields per backend, and of fetching them in turn."""
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
    sequential_ms = sum(sequential(remotes[s], found) for s, found in refs.items()) if one_by_one else None
    return took * 1000, sequential_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 secrets, one run each")
    parser.add_argument("--latency", type=float, default=50.0, help="ms added to every response")
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (the best is shown)")
    parser.add_argument("--sequential", action="store_true", help="also time one-by-one fetches")
    add_json_option(parser)
    args = parser.parse_args()
    counts = [10] if args.quick else [10, 40, 100]
    latency = 10.0 if args.quick else args.latency
    repeat = 1 if args.quick else args.repeat
    rows: list[dict[str, object]] = []
    # Per backend and count; the four backends' sum is what one application reading all in turn pays.
    one_by_one: dict[tuple[str, int], float] = {}

    with running_remotes() as remotes:
        pool = {s: [r.secret(f"cold-{s}-{i}") for i in range(max(counts))] for s, r in remotes.items()}
        for remote in remotes.values():
            remote.proxy.set("latency", latency)
        print(f"cold start at {latency:g} ms per round trip, fresh clients, best of {repeat}")
        print(f"(round trips = ms / {latency:g}; requests and connections as the proxy saw them)")
        header = f"{'backend':<10}{'N':>5}{'prefetch ms':>13}{'RTs':>6}{'reqs':>6}{'conns':>6}"
        header += f"{'N gets ms':>11}{'RTs':>6}"
        if args.sequential:
            header += f"{'one by one':>12}{'powertools':>12}"
        print(header)
        cases: list[tuple[str, list[Remote], dict[int, list[str]]]] = [
            (scheme, [remotes[scheme]], {n: pool[scheme][:n] for n in counts}) for scheme in REMOTES
        ]
        every = [remotes[s] for s in REMOTES]
        cases.append(("all four", every, {n: [r for s in REMOTES for r in pool[s][:n]] for n in counts}))
        for label, involved, by_count in cases:
            for refs in by_count.values():
                ours = best(repeat, lambda: prefetched(involved, refs))  # noqa: B023 - called at once
                gets = best(repeat, lambda: concurrent_gets(involved, refs))  # noqa: B023
                line = (
                    f"{label:<10}{len(refs):>5}{ours.ms:>13.0f}{ours.ms / latency:>6.1f}"
                    f"{ours.requests:>6}{ours.connections:>6}{gets.ms:>11.0f}{gets.ms / latency:>6.1f}"
                )
                row: dict[str, object] = {
                    "backend": label,
                    "secrets": len(refs),
                    "prefetch_ms": ours.ms,
                    "prefetch_requests": ours.requests,
                    "prefetch_connections": ours.connections,
                    "gets_ms": gets.ms,
                }
                if args.sequential and len(involved) == 1:
                    one = one_by_one[label, len(refs) // len(involved)] = sequential(involved[0], refs)
                    row["one_by_one_ms"] = one
                    theirs = "-"
                    if label == "aws-sm":
                        names = [ref.removeprefix("aws-sm://") for ref in refs]
                        row["powertools_ms"] = ms = powertools(involved[0], names)
                        theirs = f"{ms:.0f}"
                    line += f"{one:>12.0f}{theirs:>12}"
                elif args.sequential:
                    one = sum(one_by_one[s, len(refs) // len(involved)] for s in REMOTES)
                    row["one_by_one_ms"] = one
                    line += f"{one:>12.0f}{'-':>12}"
                rows.append(row)
                print(line, flush=True)
        took, one_ms = settings_case(remotes, per_backend=5, one_by_one=args.sequential)
        print(
            f"\nSecretkitSettings() with 20 remote fields (5 per backend): {took:.0f} ms "
            f"({took / latency:.1f} round trips)"
            + ("" if one_ms is None else f"; the same 20 fetched one by one: {one_ms:.0f} ms")
        )
    write_json(
        args.json,
        {
            "quick": args.quick,
            "latency_ms": latency,
            "repeat": repeat,
            "rows": rows,
            "settings": {"fields": 20, "secretkit_ms": took, "one_by_one_ms": one_ms},
        },
    )


if __name__ == "__main__":
    main()
