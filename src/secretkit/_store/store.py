"""SecretStore: the public face of a store, and its hot path.

A cached read is answered here (one dict lookup and one clock read). Everything else is
asked of the rooms below, each of which knows only the ones under it: the time policy
decides, loading runs single flights, resolution walks the chain and references, calls
reach backends, refreshing runs in the background, observing tells listeners.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, overload

from .. import _fork
from .._allow import AllowList
from .._backend import Backend
from .._errors import SecretkitError, copied
from .._events import AccessListener, Outcome
from .._lazylog import log as _log
from .._secret import LiveSecret, Secret
from .batching import Batches
from .calls import DEFAULT_CONCURRENCY, DEFAULT_DEADLINE, Calls
from .loading import Loader, remembered
from .observing import Observing, RotateCallback
from .policy import FRESH, RAISE, SERVE, SERVE_AND_REFRESH, TimePolicy
from .progress import Flight, Progress
from .records import Records
from .refreshing import Refresher
from .resolving import Resolver, default_backends

__all__ = ["SecretStore", "live_stores"]


class SecretStore:
    """Resolves names and references through a chain of backends, with a cache.

    A plain name is tried against each backend of ``backends`` in order; a reference
    (``aws-sm://prod/db#password``) goes to the backend of its scheme: one from
    ``backends`` or ``reference_backends`` if given, else one built on first use from
    the standard environment of its SDK.

    The environment is read live (a variable set, changed or deleted is seen on the next
    read); ``.env`` and secret files are re-read about once a second. Values from other
    backends live ``ttl`` seconds (shortened by up to ``jitter`` of it). Past
    ``refresh_ahead`` of that life a read returns the cached value and starts one
    background refresh; a value is served, without waiting, for up to ``max_stale``
    seconds past its life while the refresh is slow or failing. Every backend call has a
    total ``deadline``; at most ``concurrency`` calls per backend run at once. Not-found is
    remembered for ``negative_ttl`` seconds. ``max_size`` bounds every table the store keeps.

    The timing arguments are a shorthand for ``policy=TimePolicy(ttl=..., ...)``; pass a
    :class:`~secretkit.TimePolicy` (or a subclass) instead to decide otherwise.
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
        deadline: float = DEFAULT_DEADLINE,
        concurrency: int = DEFAULT_CONCURRENCY,
        reference_backends: Sequence[Backend] = (),
        on_access: AccessListener | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] | None = None,
        policy: TimePolicy | None = None,
    ) -> None:
        policy = TimePolicy.given(
            policy,
            rng=rng,
            ttl=ttl,
            refresh_ahead=refresh_ahead,
            max_stale=max_stale,
            negative_ttl=negative_ttl,
            jitter=jitter,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        self._observing = observing = Observing()
        self._calls = calls = Calls(deadline, concurrency)
        self._records = records = Records(max_size)
        self._resolver = resolver = Resolver(
            default_backends() if backends is None else backends,
            reference_backends,
            None if allow is None else AllowList(allow),
            max_size,
            calls,
            observing,
        )
        self._policy = policy
        self._clock = clock
        self._progress = progress = Progress()
        self._loader = loader = Loader(progress, records, policy, observing, resolver, clock)
        self._batches = batches = Batches(loader, resolver, calls, clock)
        self._refresher = Refresher(progress, records, policy, resolver, batches, clock)
        # The hot path reads these two directly: a cached read is one dict lookup.
        self._entries = records.held
        self._hit_listeners = observing.hit_listeners
        if on_access is not None:
            self.add_listener(on_access)
        self._closed = False
        _fork.track(self)

    def __repr__(self) -> str:
        chain = ", ".join(b.scheme for b in self._resolver.chain)
        return f"SecretStore(backends=[{chain}], ttl={self._policy.ttl})"

    @property
    def backends(self) -> tuple[Backend, ...]:
        """The chain tried for plain names, in order."""
        return tuple(b.backend for b in self._resolver.chain)

    @property
    def ttl(self) -> float:
        return self._policy.ttl

    @property
    def policy(self) -> TimePolicy:
        """The time policy: TTL, refresh-ahead, staleness, backoff."""
        return self._policy

    @property
    def allow(self) -> AllowList | None:
        """The allow-list (a tuple of the patterns given), or ``None``: everything is allowed."""
        return self._resolver.allow

    @property
    def max_size(self) -> int:
        return self._records.max_size

    @property
    def deadline(self) -> float:
        return self._calls.deadline

    @property
    def concurrency(self) -> int:
        return self._calls.concurrency

    @property
    def closed(self) -> bool:
        return self._closed

    # -- reads ---------------------------------------------------------------------------

    def get(self, name: str) -> Secret[Any]:
        """The secret for a plain name or a reference, from the cache when it is fresh."""
        # The hot path: one dict lookup and one clock read (plus one identity test against
        # the environment for a plain name it may hold); no lock, no allocation.
        entry = self._entries.get(name)
        if entry is not None and self._clock() < entry.refresh_at:
            envd = entry.envd
            if envd is None or envd.get(entry.env_key) is entry.env_raw:
                entry.hits += 1
                if self._hit_listeners:
                    self._observing.emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
                secret = entry.secret
                if not secret._registered:
                    secret._register()
                return secret
        secret = self._get_slow(name)
        if not secret._registered:
            secret._register()
        return secret

    def _read(self, name: str) -> Secret[Any]:
        """``get`` without registering configuration values for log redaction (for ``getenv``).

        The hot path is repeated rather than shared: a call more would cost a fifth of it.
        """
        entry = self._entries.get(name)
        if entry is not None and self._clock() < entry.refresh_at:
            envd = entry.envd
            if envd is None or envd.get(entry.env_key) is entry.env_raw:
                entry.hits += 1
                if self._hit_listeners:
                    self._observing.emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
                return entry.secret
        return self._get_slow(name)

    async def aget(self, name: str) -> Secret[Any]:
        """``get`` for async code: shares the cache and single flight, never blocks the loop.

        A cold key is loaded on the store's own threads and awaited without holding one, so
        many cold reads cannot exhaust the loop's default executor; cancelling this await
        leaves the shared load running for its other readers.
        """
        entry = self._entries.get(name)
        if entry is not None and self._clock() < entry.refresh_at:
            envd = entry.envd
            if envd is None or envd.get(entry.env_key) is entry.env_raw:
                entry.hits += 1
                if self._hit_listeners:
                    self._observing.emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
                secret = entry.secret
                if not secret._registered:
                    secret._register()
                return secret
        found = self._lookup(name, inline=False)
        if isinstance(found, Flight):
            found = await _landed(found)
        if not found._registered:
            found._register()
        return found

    def live(self, name: str) -> LiveSecret[Any]:
        """A handle whose ``reveal()`` reads through this store every time (follows rotation)."""
        if not isinstance(name, str):
            raise TypeError(f"a secret name must be a str, not {type(name).__name__}")
        return LiveSecret(self, name)

    def _get_slow(self, name: str) -> Secret[Any]:
        found = self._lookup(name, inline=True)
        if isinstance(found, Flight):
            # The leader's every backend call ends by its deadline, so this wait does too.
            return found.wait()
        return found

    def _lookup(self, name: str, *, inline: bool) -> Secret[Any] | Flight:
        """The cached secret, or the load that will give it (led here when ``inline``)."""
        if not isinstance(name, str):
            raise TypeError(f"a secret name must be a str, not {type(name).__name__}")
        now = self._clock()
        progress = self._progress
        entry = self._entries.get(name)
        if entry is not None:
            envd = entry.envd
            if envd is not None and envd.get(entry.env_key) is not entry.env_raw:
                # The variable was set, changed or deleted: what is held is no longer the answer.
                return self._loader.start(name, "expired", inline)
            verdict = self._policy.of_held(
                entry, now, loading=name in progress.flights, queued=name in progress.queued
            )
            if verdict == FRESH or verdict == SERVE or verdict == SERVE_AND_REFRESH:
                if verdict == SERVE_AND_REFRESH:
                    self._refresher.schedule(name)
                entry.hits += 1
                stale = verdict != FRESH and now >= entry.expires_at
                if stale:
                    self._observing.count(entry.backend).stale_served += 1
                if self._hit_listeners:
                    outcome: Outcome = "stale" if stale else "hit"
                    self._observing.emit(name, entry.backend, entry.secret.version, True, 0.0, outcome)
                return entry.secret
            if verdict == RAISE:
                error = remembered(name, entry, now)
                self._observing.remembered(name, error)
                raise copied(error)
            return self._loader.start(name, "expired", inline)
        failed = self._records.failed.get(name)
        if (
            failed is not None
            and self._policy.of_failed(failed, now, loading=name in progress.flights) == RAISE
            and not self._resolver.env_holds(name)
        ):
            self._observing.remembered(name, failed.error)
            raise copied(failed.error)
        self._resolver.check_allowed(name, self._resolver.key(name))
        return self._loader.start(name, "miss", inline)

    # -- control -------------------------------------------------------------------------

    def prefetch(self, names: Iterable[str]) -> dict[str, SecretkitError]:
        """Load ``names`` now, concurrently: one batch per backend that batches, the rest at
        most ``concurrency`` at a time per backend.

        Returns the errors by name (empty when every secret loaded); values already
        fresh in the cache are not fetched again.
        """
        wanted: list[str] = []
        now = self._clock()
        for name in dict.fromkeys(names):
            entry = self._entries.get(name)
            if (
                entry is None
                or now >= entry.refresh_at
                or (entry.envd is not None and entry.envd.get(entry.env_key) is not entry.env_raw)
            ):
                wanted.append(name)
        return self._batches.load(wanted, reason="prefetch")

    def refresh(self, name: str) -> Secret[Any]:
        """Fetch ``name`` again now (firing ``on_rotate`` if it changed) and return it."""
        self._check_allowed(name, self._resolver.key(name))
        found = self._loader.start(name, "refresh", inline=True)
        secret = found.wait() if isinstance(found, Flight) else found
        if not secret._registered:
            secret._register()
        return secret

    def invalidate(self, name: str | None = None) -> None:
        """Forget ``name`` (or every secret), so the next read fetches it."""
        progress = self._progress
        with progress.lock:
            if name is None:
                for flight in progress.flights.values():
                    flight.invalidated = True
                self._records.forget_all()
                progress.queue.clear()
                progress.queued.clear()
            else:
                loading = progress.flights.get(name)
                if loading is not None:
                    loading.invalidated = True  # a load begun before must not be kept
                self._records.forget(name)

    def wait_idle(self, timeout: float | None = 5.0) -> bool:
        """Wait until no background refresh is queued or running; ``False`` on timeout.

        For tests and orderly shutdown: application code never needs it.
        """
        return self._progress.wait_idle(timeout)

    def backend_for(self, scheme: str) -> Backend:
        """The backend serving ``scheme``: the configured one, or one built now from the environment."""
        return self._resolver.describe(scheme).backend

    def _check_allowed(self, name: str, ref: Any) -> None:
        """Refuse ``name`` (told to listeners) unless the allow-list grants it; the CLI asks here too."""
        self._resolver.check_allowed(name, ref)

    # -- observers -----------------------------------------------------------------------

    @overload
    def on_rotate(self, name: str, callback: RotateCallback) -> Callable[[], None]: ...
    @overload
    def on_rotate(self, name: str, callback: None = None) -> Callable[[RotateCallback], RotateCallback]: ...
    def on_rotate(
        self, name: str, callback: RotateCallback | None = None
    ) -> Callable[[], None] | Callable[[RotateCallback], RotateCallback]:
        """Call ``callback(old, new)`` when a refresh brings a new version or value of ``name``.

        Returns a function that unsubscribes; without ``callback``, works as a decorator.
        Callbacks run in the thread that refreshed; an exception in one is logged, not raised.
        """
        if callback is None:

            def decorator(fn: RotateCallback) -> RotateCallback:
                self.on_rotate(name, fn)
                return fn

            return decorator
        return self._observing.subscribe(name, callback, self._progress)

    def add_listener(self, listener: AccessListener, *, hits: bool | None = None) -> Callable[[], None]:
        """Call ``listener(AccessEvent)`` on every access; returns a function that removes it.

        ``hits=False`` (or a listener whose ``wants_hits`` is ``False``) is not told about cache
        hits, which keeps the read path as cheap as with no listener at all.
        """
        return self._observing.add_listener(listener, hits)

    def listeners(self) -> tuple[AccessListener, ...]:
        """The access listeners installed on this store."""
        return tuple(self._observing.listeners)

    def stats(self) -> dict[str, Any]:
        """Counters overall and per backend: hits, misses, fetches, errors, refreshes, rotations.

        Also ``size`` (values cached, overall and per backend), ``negative`` (failures
        remembered), ``loading`` (loads in flight) and ``stale_headroom``: seconds until the
        first value now served stale runs out of ``max_stale`` (``None`` when none is stale).
        """
        now = self._clock()
        with self._progress.lock:
            return self._observing.stats(self._records, now, len(self._progress.flights))

    def close(self) -> None:
        """Stop background refreshes and close every backend. Idempotent."""
        with self._progress.lock:
            if self._closed:
                return
            self._closed = True
            self._refresher.close()
            owned = list(dict.fromkeys(self._resolver.owned))
        self._loader.close()
        self._refresher.close_pool()
        self._calls.close()
        for backend in owned:
            try:
                backend.close()
            except Exception:
                _log.warning("secretkit: closing the %s backend failed", backend.scheme, exc_info=True)

    def __enter__(self) -> SecretStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _after_fork(self) -> None:
        # The parent's threads do not exist here: a lock they held, a flight they led or a
        # queued refresh would never finish. Keep the values, rebuild everything else.
        self._progress.reset()
        self._resolver._after_fork()
        self._calls._after_fork()
        self._loader._after_fork()
        self._refresher._after_fork()


def live_stores() -> list[SecretStore]:
    """Every store alive in this process (for telemetry, which exports them all)."""
    return _fork.tracked(SecretStore)


async def _landed(flight: Flight) -> Secret[Any]:
    """The outcome of ``flight``, awaited without holding a thread."""
    import asyncio  # here, not at the top: asyncio alone would double `import secretkit`

    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(_settle_waiter, waiter)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass

    flight.add_done_callback(wake)
    await waiter
    return flight.outcome()


def _settle_waiter(waiter: Any) -> None:
    if not waiter.done():
        waiter.set_result(None)
