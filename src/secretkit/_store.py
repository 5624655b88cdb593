"""SecretStore: the chain of backends, the cache, references, the allow-list, events and rotation."""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, overload

from . import _registry
from ._backend import Backend, Fetched
from ._cache import Entry, Flight, Timing
from ._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    SecretkitError,
    SecretNotFound,
    fresh,
)
from ._events import AccessEvent, Counters, Outcome
from ._redact import redact, remember
from ._refs import SecretRef, looks_like_reference, parse_reference
from ._secret import LiveSecret, Missing, Secret, field_value

__all__ = ["RotateCallback", "SecretStore"]

log = logging.getLogger("secretkit")

RotateCallback = Callable[[Secret[Any], Secret[Any]], object]
AccessListener = Callable[[AccessEvent], object]

_STORES: weakref.WeakSet[SecretStore] = weakref.WeakSet()


class _Failure:
    """A cached failure for a key that has no value: not-found, or an outage in backoff."""

    __slots__ = ("error", "failures", "until")

    def __init__(self, error: BaseException, until: float, failures: int) -> None:
        self.error, self.until, self.failures = error, until, failures


def default_backends() -> list[Backend]:
    """The default chain: the environment, then ``./.env``, then ``/run/secrets``."""
    from .backends.dotenv import DotenvBackend
    from .backends.env import EnvBackend
    from .backends.files import FileBackend

    return [EnvBackend(), DotenvBackend(".env"), FileBackend("/run/secrets")]


class SecretStore:
    """Resolves names and references through a chain of backends, with a cache.

    A plain name is tried against each backend of ``backends`` in order; a reference
    (``aws-sm://prod/db#password``) goes to the backend of its scheme: one from
    ``backends`` or ``reference_backends`` if given, else one built on first use from
    the standard environment of its SDK.

    Values live ``ttl`` seconds (shortened by up to ``jitter`` of it). Past
    ``refresh_ahead`` of that life a read returns the cached value and starts one
    background refresh. If refreshing fails, the last good value is served for up to
    ``max_stale`` seconds after it expired, with capped, jittered backoff between
    attempts. Not-found is remembered for ``negative_ttl`` seconds.
    """

    def __init__(
        self,
        backends: Sequence[Backend] | None = None,
        *,
        ttl: float = 300.0,
        refresh_ahead: float = 0.8,
        max_stale: float = 3600.0,
        negative_ttl: float = 5.0,
        allow: Sequence[str] | None = None,
        jitter: float = 0.1,
        max_size: int = 10_000,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        reference_backends: Sequence[Backend] = (),
        on_access: AccessListener | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] | None = None,
    ) -> None:
        import random

        self._chain: list[Backend] = list(default_backends() if backends is None else backends)
        for backend in [*self._chain, *reference_backends]:
            if not isinstance(getattr(backend, "scheme", None), str) or not callable(
                getattr(backend, "fetch", None)
            ):
                raise TypeError(f"{backend!r} is not a backend: it needs a str .scheme and a .fetch(ref)")
        self._by_scheme: dict[str, Backend] = {}
        for backend in [*self._chain, *reference_backends]:
            self._by_scheme.setdefault(backend.scheme, backend)
        self._owned: list[Backend] = [*self._chain, *reference_backends]
        self._timing = Timing(
            ttl=ttl,
            refresh_ahead=refresh_ahead,
            max_stale=max_stale,
            negative_ttl=negative_ttl,
            jitter=jitter,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            rng=rng or random.random,
        )
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self.allow: tuple[str, ...] | None = None if allow is None else tuple(allow)
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self._failures: dict[str, _Failure] = {}
        self._subscribers: dict[str, list[RotateCallback]] = {}
        self._listeners: list[AccessListener] = [on_access] if on_access else []
        self._counters: dict[str, Counters] = {}
        self._retired_hits: dict[str, int] = {}
        self._closed = False
        self._init_sync()
        _STORES.add(self)

    def _init_sync(self) -> None:
        # Everything a fork must rebuild: locks, flights, the refresh queue and its thread.
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._flights: dict[str, Flight] = {}
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._refreshing = 0
        self._worker: threading.Thread | None = None
        self._generation = 0  # bumped by invalidate(): a load begun before must not be kept
        self._key_generation: dict[str, int] = {}
        self._idle_waiters = 0

    def __repr__(self) -> str:
        chain = ", ".join(b.scheme for b in self._chain)
        return f"SecretStore(backends=[{chain}], ttl={self._timing.ttl})"

    @property
    def backends(self) -> tuple[Backend, ...]:
        """The chain tried for plain names, in order."""
        return tuple(self._chain)

    @property
    def ttl(self) -> float:
        return self._timing.ttl

    # -- reads ---------------------------------------------------------------------------

    def get(self, name: str) -> Secret[Any]:
        """The secret for a plain name or a reference, from the cache when it is fresh."""
        # The hot path: one dict lookup, one clock read, no lock, no allocation.
        entry = self._entries.get(name)
        if entry is not None and self._clock() < entry.refresh_at:
            entry.hits += 1
            if self._listeners:
                self._emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
            return entry.secret
        return self._get_slow(name)

    async def aget(self, name: str) -> Secret[Any]:
        """``get`` for async code: shares the cache and single flight, never blocks the loop."""
        entry = self._entries.get(name)
        if entry is not None and self._clock() < entry.refresh_at:
            entry.hits += 1
            if self._listeners:
                self._emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
            return entry.secret
        import asyncio  # here, not at the top: asyncio alone would double `import secretkit`

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._get_slow, name)

    def live(self, name: str) -> LiveSecret[Any]:
        """A handle whose ``reveal()`` reads through this store every time (follows rotation)."""
        if not isinstance(name, str):
            raise TypeError(f"a secret name must be a str, not {type(name).__name__}")
        return LiveSecret(self, name)

    def _get_slow(self, name: str) -> Secret[Any]:
        if not isinstance(name, str):
            raise TypeError(f"a secret name must be a str, not {type(name).__name__}")
        started = self._clock()
        now = started
        entry = self._entries.get(name)
        if entry is not None:
            if now < entry.expires_at:
                if now >= entry.refresh_at and now >= entry.retry_at:
                    self._schedule(name)
                entry.hits += 1
                if self._listeners:
                    self._emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
                return entry.secret
            if (
                entry.failures
                and now < entry.stale_until
                and isinstance(entry.last_error, BackendUnavailable)
            ):
                # The backend is failing: serve the last good value and retry in the background.
                if now >= entry.retry_at:
                    self._schedule(name)
                self._count(entry.backend).stale_served += 1
                if self._listeners:
                    self._emit(name, entry.backend, entry.secret.version, True, 0.0, "stale")
                return entry.secret
            if entry.failures and now < entry.retry_at and entry.last_error is not None:
                raise fresh(entry.last_error)
        else:
            failure = self._failures.get(name)
            if failure is not None and now < failure.until:
                if self._listeners:
                    outcome: Outcome = "not_found" if isinstance(failure.error, SecretNotFound) else "error"
                    self._emit(name, None, None, True, 0.0, outcome, failure.error)
                raise fresh(failure.error)
        self._check_allowed(name)
        return self._load(name, reason="miss")

    # -- loading -------------------------------------------------------------------------

    def _load(self, name: str, *, reason: str) -> Secret[Any]:
        with self._lock:
            flight = self._flights.get(name)
            leader = flight is None
            if flight is None:
                flight = self._flights[name] = Flight(self._epoch_of(name))
        if not leader:
            return flight.wait()
        started = self._clock()
        try:
            secret, scheme, backend_ttl = self._resolve(name)
        except Exception as exc:
            return self._complete(name, flight, None, exc, None, None, started, reason)
        except BaseException as exc:
            self._abandon(name, flight, exc)
            raise
        return self._complete(name, flight, secret, None, scheme, backend_ttl, started, reason)

    def _epoch_of(self, name: str) -> tuple[int, int]:
        return (self._generation, self._key_generation.get(name, 0))

    def _abandon(self, name: str, flight: Flight, exc: BaseException) -> None:
        # KeyboardInterrupt, SystemExit, a green-thread timeout: not the backend's failure,
        # but the flight must end, or every later reader of the key would wait forever.
        with self._lock:
            if self._flights.get(name) is flight:
                del self._flights[name]
            if self._idle_waiters:
                self._idle.notify_all()
        flight.finish(
            None, BackendUnavailable(f"secret {name!r}: the fetch was interrupted ({type(exc).__name__})")
        )

    def _complete(
        self,
        name: str,
        flight: Flight,
        secret: Secret[Any] | None,
        error: BaseException | None,
        scheme: str | None,
        backend_ttl: float | None,
        started: float,
        reason: str,
    ) -> Secret[Any]:
        now = self._clock()
        rotated: tuple[Secret[Any], list[RotateCallback]] | None = None
        served: Secret[Any] | None = None
        outcome: Outcome
        with self._lock:
            self._flights.pop(name, None)
            old = self._entries.get(name)
            current = flight.epoch == self._epoch_of(name)
            if secret is not None:
                assert scheme is not None
                counters = self._count(scheme)
                counters.fetches += 1
                if reason == "refresh":
                    counters.refreshes += 1
                elif reason == "miss":
                    counters.misses += 1
                refresh_at, expires_at, stale_until = self._timing.deadlines(now, backend_ttl)
                entry = Entry(secret, scheme, now, refresh_at, expires_at, stale_until)
                if current:
                    if old is not None:
                        entry.hits = old.hits
                        # Re-inserting moves the key to the end: eviction takes the oldest first.
                        del self._entries[name]
                    elif len(self._entries) >= self.max_size:
                        self._evict_one()
                    self._entries[name] = entry
                    self._failures.pop(name, None)
                if current and old is not None and _changed(old.secret, secret):
                    counters.rotations += 1
                    rotated = (old.secret, list(self._subscribers.get(name, ())))
                served = secret
                outcome = "refreshed" if reason == "refresh" else "loaded"
            else:
                assert error is not None
                backend = getattr(error, "backend", None) or (old.backend if old else None)
                counters = self._count(backend or "-")
                if isinstance(error, SecretNotFound):
                    counters.not_found += 1
                    outcome = "not_found"
                    if current:
                        # Deleted at the source: stop serving it.
                        if old is not None:
                            self._retire(name, old)
                        if self._timing.negative_ttl > 0:
                            self._failures[name] = _Failure(fresh(error), now + self._timing.negative_ttl, 0)
                else:
                    counters.errors += 1
                    outcome = "denied" if isinstance(error, AccessDenied) else "error"
                    if (
                        current
                        and old is None
                        and isinstance(error, AccessDenied)
                        and self._timing.negative_ttl > 0
                    ):
                        # A refusal is as lasting as an absence: remember it briefly, or every
                        # read of a denied name becomes a request to the backend.
                        self._failures[name] = _Failure(fresh(error), now + self._timing.negative_ttl, 0)
                    if old is not None:
                        old.failures += 1
                        old.retry_at = now + self._timing.backoff(old.failures)
                        old.last_error = fresh(error)
                        if isinstance(error, BackendUnavailable) and now < old.stale_until:
                            served = old.secret
                            counters.stale_served += 1
                            outcome = "stale"
                    elif current and isinstance(error, BackendUnavailable):
                        previous = self._failures.get(name)
                        failures = (previous.failures if previous else 0) + 1
                        self._failures[name] = _Failure(
                            fresh(error), now + self._timing.backoff(failures), failures
                        )
            if self._idle_waiters:
                self._idle.notify_all()
        flight.finish(served, None if served is not None else error)
        if self._listeners:
            self._emit(
                name,
                scheme or (old.backend if old else None),
                served.version if served else None,
                False,
                now - started,
                outcome,
                error,
            )
        if rotated is not None and served is not None:
            self._fire_rotation(name, rotated[0], served, rotated[1])
        if served is None:
            assert error is not None
            raise error
        return served

    def _evict_one(self) -> None:
        name = next(iter(self._entries))
        self._retire(name, self._entries[name])

    def _retire(self, name: str, entry: Entry) -> None:
        self._retired_hits[entry.backend] = self._retired_hits.get(entry.backend, 0) + entry.hits
        del self._entries[name]

    # -- resolution ----------------------------------------------------------------------

    def _resolve(self, name: str) -> tuple[Secret[Any], str, float | None]:
        if "://" in name and looks_like_reference(name):
            ref = parse_reference(name)
            return self._fetch_ref(ref, name)
        tried: list[str] = []
        for backend in self._chain:
            try:
                fetched = self._call_fetch(backend, SecretRef(backend.scheme, name), name)
            except SecretNotFound:
                tried.append(backend.scheme)
                continue
            value = fetched.value
            if _registry.is_reference(value):
                assert isinstance(value, str)
                return self._follow(name, backend.scheme, value)
            return (
                Secret(name, value, source=backend.scheme, version=fetched.version, fetched_at=_utcnow()),
                backend.scheme,
                fetched.ttl,
            )
        raise SecretNotFound(name, backends=tried)

    def _follow(self, name: str, via: str, target: str) -> tuple[Secret[Any], str, float | None]:
        try:
            ref = parse_reference(target)
        except InvalidReference as exc:
            raise InvalidReference(
                f"secret {name!r} (from {via}) holds a reference that is not valid: {exc}"
            ) from None
        if not self._allowed_ref(ref):
            raise self._denied(name, f"it points to {str(ref.base)!r}")
        secret, scheme, backend_ttl = self._fetch_ref(ref, name)
        if _registry.is_reference(secret.reveal()):
            raise InvalidReference(
                f"secret {name!r} (from {via}) points to {str(ref)!r}, which holds another "
                "reference; secretkit follows one level: point to the secret itself"
            )
        return secret, scheme, backend_ttl

    def _fetch_ref(self, ref: SecretRef, name: str) -> tuple[Secret[Any], str, float | None]:
        backend = self.backend_for(ref.scheme)
        if ref.field is None or _consumes_field(backend, ref):
            fetched = self._call_fetch(backend, ref, name)
            value: Any = fetched.value
        else:
            fetched = self._call_fetch(backend, ref.base, name)
            value = _field(fetched, ref, name, backend.scheme)
        secret = Secret(name, value, source=backend.scheme, version=fetched.version, fetched_at=_utcnow())
        return secret, backend.scheme, fetched.ttl

    def _call_fetch(self, backend: Backend, ref: SecretRef, name: str) -> Fetched:
        error: SecretkitError
        try:
            fetched = backend.fetch(ref)
        except SecretNotFound as exc:
            error = SecretNotFound(name, backends=[backend.scheme], detail=exc.detail)
        except SecretkitError as exc:
            error = _sealed(_wrap(exc, name, backend.scheme))
        except Exception as exc:
            error = _wrap(exc, name, backend.scheme)
            error.__cause__ = _sealed(exc)
        else:
            if not isinstance(fetched, Fetched):
                raise BackendUnavailable(
                    f"secret {name!r}: the {backend.scheme} backend returned {type(fetched).__name__}, "
                    "not Fetched; this is a bug in the backend"
                )
            return fetched
        # Raised here, outside the except blocks, so no __context__ keeps the backend's frames.
        raise error

    def backend_for(self, scheme: str) -> Backend:
        """The backend serving ``scheme``: the configured one, or one built now from the environment."""
        backend = self._by_scheme.get(scheme)
        if backend is not None:
            return backend
        with self._build_lock:
            backend = self._by_scheme.get(scheme)
            if backend is None:
                cls = _registry.backend_class(scheme)
                try:
                    backend = cls()
                except SecretkitError:
                    raise
                except Exception as exc:
                    raise ConfigurationError(
                        f"the {scheme} backend could not be built from the environment "
                        f"({type(exc).__name__}: {redact(str(exc))[:200]}); configure it explicitly "
                        "with SecretStore(reference_backends=[...])"
                    ) from exc
                self._by_scheme[scheme] = backend
                self._owned.append(backend)
        return backend

    # -- batches -------------------------------------------------------------------------

    def prefetch(self, names: Iterable[str]) -> dict[str, SecretkitError]:
        """Load ``names`` now, batching references per backend where the backend can.

        Returns the failures by name (empty when every secret loaded); values already
        fresh in the cache are not fetched again.
        """
        wanted: list[str] = []
        now = self._clock()
        for name in dict.fromkeys(names):
            entry = self._entries.get(name)
            if entry is None or now >= entry.refresh_at:
                wanted.append(name)
        return self._load_many(wanted, reason="prefetch")

    def _load_many(self, names: Sequence[str], *, reason: str) -> dict[str, SecretkitError]:
        failures: dict[str, SecretkitError] = {}
        mine: dict[str, Flight] = {}
        with self._lock:
            for name in names:
                if name not in self._flights:
                    mine[name] = self._flights[name] = Flight(self._epoch_of(name))
        groups: dict[str, list[tuple[str, SecretRef]]] = {}
        singles: list[str] = []
        for name in mine:
            try:
                self._check_allowed(name)
                if "://" in name and looks_like_reference(name):
                    ref = parse_reference(name)
                    backend = self.backend_for(ref.scheme)
                    if callable(getattr(backend, "fetch_many", None)) and not _consumes_field(backend, ref):
                        groups.setdefault(ref.scheme, []).append((name, ref))
                        continue
                singles.append(name)
            except Exception as exc:  # every flight claimed here must be settled, or readers wait forever
                self._settle(name, mine[name], None, exc, reason, failures)
        for scheme, items in groups.items():
            self._batch(scheme, items, mine, reason, failures)
        for name in singles:
            started = self._clock()
            try:
                secret, scheme, backend_ttl = self._resolve(name)
            except Exception as exc:
                self._settle(name, mine[name], None, exc, reason, failures, started=started)
            else:
                self._settle(
                    name, mine[name], (secret, scheme, backend_ttl), None, reason, failures, started=started
                )
        return failures

    def _batch(
        self,
        scheme: str,
        items: list[tuple[str, SecretRef]],
        flights: Mapping[str, Flight],
        reason: str,
        failures: dict[str, SecretkitError],
    ) -> None:
        backend = self.backend_for(scheme)
        refs = list(dict.fromkeys(ref.base for _, ref in items))
        started = self._clock()
        try:
            results = backend.fetch_many(refs)  # type: ignore[attr-defined]
        except Exception as exc:
            _sealed(exc)
            for name, _ in items:
                if isinstance(exc, SecretkitError):
                    err: BaseException = _wrap(fresh(exc), name, scheme)
                else:
                    err = _wrap(exc, name, scheme)
                    err.__cause__ = exc
                self._settle(name, flights[name], None, err, reason, failures, started=started)
            return
        for name, ref in items:
            result = results.get(ref.base)
            try:
                if result is None:
                    fetched = self._call_fetch(backend, ref.base, name)
                elif isinstance(result, SecretNotFound):
                    raise SecretNotFound(name, backends=[scheme], detail=result.detail)
                elif isinstance(result, SecretkitError):
                    raise _sealed(_wrap(fresh(result), name, scheme))
                elif isinstance(result, Exception):
                    raise _wrap(result, name, scheme) from _sealed(result)
                else:
                    fetched = result
                value: Any = fetched.value if ref.field is None else _field(fetched, ref, name, scheme)
                secret = Secret(name, value, source=scheme, version=fetched.version, fetched_at=_utcnow())
            except Exception as exc:
                self._settle(name, flights[name], None, exc, reason, failures, started=started)
            else:
                self._settle(
                    name,
                    flights[name],
                    (secret, scheme, fetched.ttl),
                    None,
                    reason,
                    failures,
                    started=started,
                )

    def _settle(
        self,
        name: str,
        flight: Flight,
        ok: tuple[Secret[Any], str, float | None] | None,
        error: BaseException | None,
        reason: str,
        failures: dict[str, SecretkitError],
        *,
        started: float | None = None,
    ) -> None:
        start = self._clock() if started is None else started
        try:
            if ok is not None:
                self._complete(name, flight, ok[0], None, ok[1], ok[2], start, reason)
            else:
                self._complete(name, flight, None, error, None, None, start, reason)
        except SecretkitError as exc:
            failures[name] = exc
        except Exception as exc:
            failures[name] = _wrap(exc, name, "-")

    # -- background refresh --------------------------------------------------------------

    def _schedule(self, name: str) -> None:
        with self._lock:
            if self._closed or name in self._queued or name in self._flights:
                return
            self._queue.append(name)
            self._queued.add(name)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._run_refresher, name="secretkit-refresh", daemon=True
                )
                self._worker.start()
            self._wakeup.notify()

    def _run_refresher(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    if not self._wakeup.wait(timeout=60.0) and not self._queue:
                        # Idle for a minute: let the thread go; the next refresh starts another.
                        self._worker = None
                        return
                if self._closed:
                    self._worker = None
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._queued.difference_update(batch)
                self._refreshing += 1
            try:
                self._refresh_batch(batch)
            except Exception:
                log.exception("secretkit: background refresh failed unexpectedly")
            finally:
                with self._lock:
                    self._refreshing -= 1
                    if self._idle_waiters:
                        self._idle.notify_all()

    def _refresh_batch(self, names: list[str]) -> None:
        # Secrets of a batching backend that are close to due ride along with the ones that
        # are due, so a set of secrets loaded together is refreshed in one call.
        now = self._clock()
        # A name queued twice may have been refreshed by the first batch already.
        names = [n for n in names if (e := self._entries.get(n)) is None or now >= e.refresh_at]
        if not names:
            return
        window = self._timing.ttl * (1.0 - self._timing.refresh_ahead)
        schemes = {looks_like_reference(n) for n in names if "://" in n}
        batching = {
            s
            for s in schemes
            if s and s in self._by_scheme and callable(getattr(self._by_scheme[s], "fetch_many", None))
        }
        if batching:
            extra = [
                key
                for key, entry in list(self._entries.items())
                if key not in names
                and entry.backend in batching
                and "://" in key
                and entry.refresh_at <= now + window
                and now >= entry.retry_at
            ]
            names = names + extra
        self._load_many(names, reason="refresh")

    def wait_idle(self, timeout: float | None = 5.0) -> bool:
        """Wait until no background refresh is queued or running; ``False`` on timeout.

        For tests and orderly shutdown: application code never needs it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._idle_waiters += 1
            try:
                while self._queue or self._refreshing or self._flights:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._idle.wait(remaining)
            finally:
                self._idle_waiters -= 1
        return True

    # -- control -------------------------------------------------------------------------

    def refresh(self, name: str) -> Secret[Any]:
        """Fetch ``name`` again now (firing ``on_rotate`` if it changed) and return it."""
        self._check_allowed(name)
        return self._load(name, reason="refresh")

    def invalidate(self, name: str | None = None) -> None:
        """Forget ``name`` (or every secret), so the next read fetches it."""
        with self._lock:
            if name is None:
                self._generation += 1
                self._key_generation.clear()
                for key, entry in list(self._entries.items()):
                    self._retire(key, entry)
                self._failures.clear()
                self._queue.clear()
                self._queued.clear()
            else:
                self._key_generation[name] = self._key_generation.get(name, 0) + 1
                found = self._entries.get(name)
                if found is not None:
                    self._retire(name, found)
                self._failures.pop(name, None)

    @overload
    def on_rotate(self, name: str, callback: RotateCallback) -> Callable[[], None]: ...
    @overload
    def on_rotate(self, name: str, callback: None = None) -> Callable[[RotateCallback], RotateCallback]: ...
    def on_rotate(
        self, name: str, callback: RotateCallback | None = None
    ) -> Callable[[], None] | Callable[[RotateCallback], RotateCallback]:
        """Call ``callback(old, new)`` when a refresh brings a new version of ``name``.

        Returns a function that unsubscribes; without ``callback``, works as a decorator.
        Callbacks run in the thread that refreshed; an exception in one is logged, not raised.
        """
        if callback is None:

            def decorator(fn: RotateCallback) -> RotateCallback:
                self.on_rotate(name, fn)
                return fn

            return decorator
        cb = callback
        with self._lock:
            self._subscribers.setdefault(name, []).append(cb)

        def unsubscribe() -> None:
            with self._lock:
                subs = self._subscribers.get(name, [])
                if cb in subs:
                    subs.remove(cb)

        return unsubscribe

    def add_listener(self, listener: AccessListener) -> Callable[[], None]:
        """Call ``listener(AccessEvent)`` on every access; returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def stats(self) -> dict[str, Any]:
        """Counters overall and per backend: hits, misses, fetches, errors, refreshes, rotations."""
        with self._lock:
            per: dict[str, dict[str, int]] = {}
            for scheme, counters in self._counters.items():
                per[scheme] = {**counters.as_dict(), "hits": self._retired_hits.get(scheme, 0)}
            for scheme, hits in self._retired_hits.items():
                per.setdefault(scheme, {**Counters().as_dict(), "hits": hits})
            for entry in self._entries.values():
                row = per.setdefault(entry.backend, {**Counters().as_dict(), "hits": 0})
                row["hits"] += entry.hits
            total: dict[str, Any] = {key: 0 for key in [*Counters.__slots__, "hits"]}
            for row in per.values():
                for key, value in row.items():
                    total[key] += value
            total["size"] = len(self._entries)
            total["backends"] = per
        return total

    def close(self) -> None:
        """Stop background refreshes and close every backend. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wakeup.notify_all()
            owned = list(dict.fromkeys(self._owned))
        for backend in owned:
            try:
                backend.close()
            except Exception:
                log.warning("secretkit: closing the %s backend failed", backend.scheme, exc_info=True)

    def __enter__(self) -> SecretStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------------

    def _check_allowed(self, name: str) -> None:
        if self.allow is None:
            return
        if "://" in name and looks_like_reference(name):
            ref = parse_reference(name)
            if self._allowed_ref(ref):
                return
        elif any(fnmatch.fnmatchcase(name, p) for p in self.allow):
            return
        raise self._denied(name, "it matches no pattern")

    def _allowed_ref(self, ref: SecretRef) -> bool:
        if self.allow is None:
            return True
        candidates = (ref.path, f"{ref.scheme}://{ref.path}", str(ref))
        return any(fnmatch.fnmatchcase(c, p) for c in candidates for p in self.allow)

    def _denied(self, name: str, why: str) -> AccessDenied:
        err = AccessDenied(
            f"secret {name!r} is refused by this store's allow-list ({why}: {list(self.allow or [])}); "
            "add a matching pattern to allow=[...] to permit it"
        )
        err.name = name
        return err

    def _count(self, scheme: str) -> Counters:
        counters = self._counters.get(scheme)
        if counters is None:
            counters = self._counters[scheme] = Counters()
        return counters

    def _emit(
        self,
        name: str,
        backend: str | None,
        version: str | None,
        hit: bool,
        latency: float,
        outcome: Outcome,
        error: BaseException | None = None,
    ) -> None:
        event = AccessEvent(
            name, backend, version, hit, latency, outcome, type(error).__name__ if error else None
        )
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.warning("secretkit: access listener %r failed", listener, exc_info=True)

    def _fire_rotation(
        self, name: str, old: Secret[Any], new: Secret[Any], callbacks: list[RotateCallback]
    ) -> None:
        for callback in callbacks:
            try:
                callback(old, new)
            except Exception as exc:
                log.warning(
                    "secretkit: on_rotate callback %r for %r raised %s", callback, name, type(exc).__name__
                )

    def _after_fork(self) -> None:
        # The parent's threads do not exist here: a lock they held, a flight they led or a
        # queued refresh would never finish. Keep the values, rebuild everything else.
        self._init_sync()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _consumes_field(backend: Backend, ref: SecretRef) -> bool:
    # A backend may read ``#field`` itself (dotenv's ``path/to/.env#KEY``): a bool, or a
    # function of the reference.
    consumes = getattr(backend, "consumes_field", False)
    if callable(consumes):
        return bool(consumes(ref))
    return bool(consumes)


def _changed(old: Secret[Any], new: Secret[Any]) -> bool:
    if old.version is not None and new.version is not None:
        return old.version != new.version
    return old != new


def _field(fetched: Fetched, ref: SecretRef, name: str, scheme: str) -> Any:
    assert ref.field is not None
    # One parse serves both the field and redaction; no intermediate Secret for the document.
    document, value = field_value(fetched.value, ref.field)
    if isinstance(value, Missing):
        del document  # a traceback with locals must not find the parsed secret in this frame
        if value.part is None:
            err = ConfigurationError(
                f"secret {str(ref.base)!r} is not JSON, so it has no field {ref.field!r}; "
                "drop the #field or store the secret as a JSON object"
            )
            err.name, err.backend = name, scheme
            raise err
        raise SecretNotFound(name, backends=[scheme], detail=f"the JSON secret has no key {value.part!r}")
    remember(fetched.value, document)  # the other fields are secrets too
    return value


def _sealed(err: BaseException) -> Any:
    """``err`` with no traceback anywhere in its chain, and no hidden context.

    Frames between a backend and the store hold raw responses and values in their locals;
    error reporters that capture locals (Sentry does by default) would send them. Types
    and messages, which say what went wrong, are kept.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        if current.__suppress_context__:
            current.__context__ = None
        current = current.__cause__ or current.__context__
    return err


def _wrap(exc: BaseException, name: str, scheme: str) -> SecretkitError:
    if isinstance(exc, SecretkitError):
        if exc.name is None:
            exc.name = name
        if exc.backend is None:
            exc.backend = scheme
        return exc
    detail = redact(str(exc))
    if len(detail) > 200:
        detail = detail[:200] + "..."
    err = BackendUnavailable(
        f"secret {name!r}: the {scheme} backend failed ({type(exc).__name__}"
        + (f": {detail}" if detail else "")
        + "); the last good value is served while it lasts - check that the backend is reachable"
    )
    err.name, err.backend = name, scheme
    return err


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
