"""Loading many keys at once: one call per backend that batches, the rest on their lanes.

Used by ``prefetch`` and by background refreshes. A reference to a remote backend without
batch calls is started on that backend's lane at once (one call per distinct secret, however
many ``#fields`` of it are asked for), so as many run together as its limit lets through,
without a waiting thread per key; plain names walk the chain on loader threads. Every key
claimed here gets a flight, and every flight is settled, whatever fails: a reader joining
one must never wait forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._backend import BackendTraits, Fetched
from .._errors import SecretkitError, SecretNotFound, copied
from .._options import check_options
from .._refs import SecretRef
from .calls import Calls, checked
from .loading import Loader
from .progress import Flight
from .resolving import Resolver
from .runner import Call
from .sealing import scrubbed, sealed, wrapped

__all__ = ["Batches"]


class Batches:
    """Concurrent loads of many keys for one store."""

    def __init__(self, loader: Loader, resolver: Resolver, calls: Calls, clock: Callable[[], float]) -> None:
        self._loader = loader
        self._resolver = resolver
        self._calls = calls
        self._clock = clock

    def load(self, names: Sequence[str], *, reason: str) -> dict[str, SecretkitError]:
        """Load ``names`` now, concurrently; the errors by name (empty when all loaded)."""
        errors: dict[str, SecretkitError] = {}
        mine = self._loader.claim(names)
        groups: dict[str, list[tuple[str, SecretRef]]] = {}
        singles: dict[tuple[str, SecretRef], list[tuple[str, SecretRef]]] = {}
        jobs: list[Callable[[], None]] = []
        for name, flight in mine.items():
            try:
                ref = self._resolver.key(name)
                self._resolver.check_allowed(name, ref)
                if ref is not None:
                    backend = self._resolver.describe(ref.scheme)
                    check_options(backend.backend, ref)
                    consumes = backend.consumes_field(ref)
                    if backend.fetch_many is not None and not consumes:
                        groups.setdefault(ref.scheme, []).append((name, ref))
                        continue
                    if not backend.local:
                        target = ref if ref.field is None or consumes else ref.base
                        singles.setdefault((ref.scheme, target), []).append((name, ref))
                        continue
                jobs.append(_bind(self._single, name, flight, reason, errors))
            except Exception as exc:  # every flight claimed here must be settled, or readers wait forever
                self._loader.settle(name, flight, None, exc, reason, errors)
        started, sent = self._clock(), time.monotonic()
        calls: list[tuple[Call[Fetched] | Exception, list[tuple[str, SecretRef]]]] = []
        # Round robin over backends, so one backend's many keys do not queue another's behind them.
        for (scheme, target), items in _interleaved(singles):
            try:
                backend = self._resolver.describe(scheme)
                calls.append((self._calls.start(backend, target, [n for n, _ in items], reason), items))
            except Exception as exc:
                calls.append((exc, items))
        jobs[:0] = [
            _bind(self._batch, scheme, items, mine, reason, errors) for scheme, items in groups.items()
        ]
        self._run_all(jobs)
        for call, items in calls:
            self._landed(call, items, mine, reason, errors, started, sent)
        return errors

    def _landed(
        self,
        call: Call[Fetched] | Exception,
        items: list[tuple[str, SecretRef]],
        flights: Mapping[str, Flight],
        reason: str,
        errors: dict[str, SecretkitError],
        started: float,
        sent: float,
    ) -> None:
        """Settle the keys read by one started call, waiting out what is left of its deadline."""
        backend = self._resolver.describe(items[0][1].scheme)
        result: Fetched | Exception
        if isinstance(call, Exception):
            result = call
        else:
            left = sent + self._calls.deadline_of(backend) - time.monotonic()
            try:
                result = checked(backend, call.result(max(left, 0.0)), items[0][0])
            except Exception as exc:
                result = exc
        shared = len(items) > 1
        for name, ref in items:
            if isinstance(result, Exception):
                err = self._calls.failure(backend, result, name, shared=shared)
                self._loader.settle(name, flights[name], None, err, reason, errors, started)
            else:
                self._item(name, ref, backend, result, flights[name], reason, errors, started)

    def _run_all(self, jobs: list[Callable[[], None]]) -> None:
        """Run ``jobs`` at once: all but the first on loader threads, the first here."""
        pool = self._loader.pool
        calls = [pool.submit(job) for job in jobs[1:]]
        if jobs:
            jobs[0]()
        for call in calls:
            call.result(None)

    def _single(self, name: str, flight: Flight, reason: str, errors: dict[str, SecretkitError]) -> None:
        started = self._clock()
        try:
            loaded = self._resolver.load(name, self._resolver.key(name), reason)
        except Exception as exc:
            self._loader.settle(name, flight, None, exc, reason, errors, started)
        else:
            self._loader.settle(name, flight, loaded, None, reason, errors, started)

    def _batch(
        self,
        scheme: str,
        items: list[tuple[str, SecretRef]],
        flights: Mapping[str, Flight],
        reason: str,
        errors: dict[str, SecretkitError],
    ) -> None:
        backend = self._resolver.describe(scheme)
        refs = list(dict.fromkeys(ref.base for _, ref in items))
        started = self._clock()
        try:
            results = self._calls.fetch_many(backend, refs, [n for n, _ in items], reason)
        except Exception as exc:
            for name, _ in items:
                err = self._calls.failed_batch(backend, exc, name)
                self._loader.settle(name, flights[name], None, err, reason, errors, started)
            return
        for name, ref in items:
            self._item(name, ref, backend, results.get(ref.base), flights[name], reason, errors, started)

    def _item(
        self,
        name: str,
        ref: SecretRef,
        backend: BackendTraits,
        result: Fetched | Exception | None,
        flight: Flight,
        reason: str,
        errors: dict[str, SecretkitError],
        started: float,
    ) -> None:
        # One frame per item: a failure's traceback must not reach the batch's other values.
        scheme = backend.scheme
        try:
            if result is None:
                fetched = self._calls.fetch(backend, ref.base, name, reason)
            elif isinstance(result, SecretNotFound):
                raise SecretNotFound(name, backends=[scheme], detail=result.detail)
            elif isinstance(result, SecretkitError):
                raise sealed(wrapped(copied(result), name, scheme))
            elif isinstance(result, Exception):
                raise wrapped(result, name, scheme) from scrubbed(sealed(result))
            else:
                fetched = result
            loaded = self._resolver.loaded_from(name, ref, backend, fetched)
        except Exception as exc:
            self._loader.settle(name, flight, None, exc, reason, errors, started)
        else:
            self._loader.settle(name, flight, loaded, None, reason, errors, started)


def _interleaved(
    singles: dict[tuple[str, SecretRef], list[tuple[str, SecretRef]]],
) -> list[tuple[tuple[str, SecretRef], list[tuple[str, SecretRef]]]]:
    by_scheme: dict[str, list[tuple[tuple[str, SecretRef], list[tuple[str, SecretRef]]]]] = {}
    for key, items in singles.items():
        by_scheme.setdefault(key[0], []).append((key, items))
    queues = list(by_scheme.values())
    out: list[tuple[tuple[str, SecretRef], list[tuple[str, SecretRef]]]] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def _bind(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: fn(*args)
