"""Loading many keys at once: one call per backend that batches, the rest on their lanes.

Used by ``prefetch`` and by background refreshes. Every key claimed here gets a flight,
and every flight is settled, whatever fails: a reader joining one must never wait forever.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._backend import BackendTraits, Fetched
from .._errors import SecretkitError, SecretNotFound, copied
from .._refs import SecretRef
from .calls import Calls
from .loading import Loader
from .progress import Flight
from .resolving import Resolver
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
        jobs: list[Callable[[], None]] = []
        for name, flight in mine.items():
            try:
                ref = self._resolver.key(name)
                self._resolver.check_allowed(name, ref)
                if ref is not None and self._resolver.batching(ref) is not None:
                    groups.setdefault(ref.scheme, []).append((name, ref))
                    continue
                jobs.append(_bind(self._single, name, flight, reason, errors))
            except Exception as exc:  # every flight claimed here must be settled, or readers wait forever
                self._loader.settle(name, flight, None, exc, reason, errors)
        jobs[:0] = [
            _bind(self._batch, scheme, items, mine, reason, errors) for scheme, items in groups.items()
        ]
        self._run_all(jobs)
        return errors

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


def _bind(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: fn(*args)
