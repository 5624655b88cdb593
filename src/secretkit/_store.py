"""SecretStore: the chain of backends, the cache, references, the allow-list, events and rotation."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, overload

from . import _registry
from ._allow import AllowList
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
    shown,
)
from ._events import AccessEvent, Counters, Outcome
from ._fetch_errors import scrubbed, sealed, wrapped
from ._fetching import changed, check_options, consumes_field, field_of, observed
from ._redact import redact, remember
from ._refs import SecretRef, looks_like_reference, parse_reference
from ._runner import Call, DeadlineExceeded, Runner
from ._secret import LiveSecret, Secret

__all__ = ["RotateCallback", "SecretStore"]

log = logging.getLogger("secretkit")

RotateCallback = Callable[[Secret[Any], Secret[Any]], object]
AccessListener = Callable[[AccessEvent], object]
T = TypeVar("T")

_STORES: weakref.WeakSet[SecretStore] = weakref.WeakSet()
_NEVER = float("inf")

#: Seconds between re-reads of a value that lives on this machine (``.env``, a secret
#: file): often enough to pick up a rotated Kubernetes secret volume, rarely enough that
#: the re-read (a ``stat``, a small read) never shows in a profile.
LOCAL_RECHECK = 1.0
#: A read that would raise a remembered outage tries the backend once more first, unless
#: an attempt for that key ended this recently: errors stop within a round trip of the
#: backend's recovery, yet a dead backend sees at most a few attempts a second per key.
PROBE_INTERVAL = 0.1
#: The default total deadline of one backend call (login and look-ups included), seconds.
DEFAULT_DEADLINE = 5.0
#: The default number of calls in flight at once per backend.
DEFAULT_CONCURRENCY = 8
# Threads that run loads for prefetch, batched refreshes and async readers.
_LOADERS = 32
# Refresh batches in progress at once.
_REFRESHERS = 4


class _Failure:
    """A cached failure for a key that has no value: not-found, or an outage in backoff."""

    __slots__ = ("attempted_at", "error", "failures", "until")

    def __init__(self, error: BaseException, until: float, failures: int, attempted_at: float) -> None:
        self.error, self.until, self.failures, self.attempted_at = error, until, failures, attempted_at


class _Resolved:
    """What a load produced: the secret, and what the cache needs to know to keep it."""

    __slots__ = ("local", "probe", "scheme", "secret", "ttl")

    def __init__(self, secret: Secret[Any], scheme: str, ttl: float | None, local: bool) -> None:
        self.secret, self.scheme, self.ttl, self.local = secret, scheme, ttl, local
        # (dict, key, raw) of the environment, for a plain name the environment may hold.
        self.probe: tuple[Any, Any, Any] | None = None

    def __repr__(self) -> str:
        return f"_Resolved({self.secret!r}, {self.scheme!r})"


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

    The environment is read live (a variable set, changed or deleted is seen on the next
    read); ``.env`` and secret files are re-read about once a second. Values from other
    backends live ``ttl`` seconds (shortened by up to ``jitter`` of it). Past
    ``refresh_ahead`` of that life a read returns the cached value and starts one
    background refresh; a value is served, without waiting, for up to ``max_stale``
    seconds past its life while the refresh is slow or failing. Every backend call has a
    total ``deadline``; at most ``concurrency`` calls per backend run at once. Not-found is
    remembered for ``negative_ttl`` seconds. ``max_size`` bounds every table the store keeps.
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
        # The environment backend whose variables are watched on every read of a plain name.
        self._env: Any = next((b for b in self._chain if callable(getattr(b, "probe", None))), None)
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
        if deadline <= 0:
            raise ValueError("deadline must be > 0 seconds")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.max_size = max_size
        self.deadline = deadline
        self.concurrency = concurrency
        #: The allow-list (a tuple of the patterns given), or ``None``: everything is allowed.
        self.allow: AllowList | None = None if allow is None else AllowList(allow)
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self._failures: dict[str, _Failure] = {}
        self._keys: dict[str, SecretRef | None] = {}
        self._subscribers: dict[str, list[RotateCallback]] = {}
        self._listeners: list[AccessListener] = []
        # The listeners told about cache hits: an audit trail that samples none costs a hit nothing.
        self._hit_listeners: list[AccessListener] = []
        if on_access is not None:
            self.add_listener(on_access)
        self._counters: dict[str, Counters] = {}
        self._retired_hits: dict[str, int] = {}
        self._closed = False
        self._init_sync()
        _STORES.add(self)

    def _init_sync(self) -> None:
        # Everything a fork must rebuild: locks, flights, worker threads and their queues.
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._flights: dict[str, Flight] = {}
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._refreshing = 0
        self._worker: threading.Thread | None = None
        self._idle_waiters = 0
        self._lanes: dict[str, Runner] = {}
        self._loader = Runner(_LOADERS, "secretkit-load")
        # Refresh batches; each hands its loads to the loader, never the other way round,
        # so the two pools cannot wait on each other.
        self._refresher = Runner(_REFRESHERS, "secretkit-refresh")

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
        # The hot path: one dict lookup and one clock read (plus one identity test against
        # the environment for a plain name it may hold); no lock, no allocation.
        entry = self._entries.get(name)
        if entry is not None and self._clock() < entry.refresh_at:
            envd = entry.envd
            if envd is None:  # a reference, or a chain without the environment: registered
                entry.hits += 1
                if self._hit_listeners:
                    self._emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
                return entry.secret
            if envd.get(entry.env_key) is entry.env_raw:
                entry.hits += 1
                if self._hit_listeners:
                    self._emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
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
                    self._emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
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
                    self._emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
                secret = entry.secret
                if not secret._registered:
                    secret._register()
                return secret
        found = self._lookup(name, inline=False)
        if isinstance(found, Flight):
            import asyncio  # here, not at the top: asyncio alone would double `import secretkit`

            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()

            def wake() -> None:
                try:
                    loop.call_soon_threadsafe(_settle_waiter, waiter)
                except RuntimeError:  # the loop has closed: nobody is waiting any more
                    pass

            found.add_done_callback(wake)
            await waiter
            found = found.outcome()
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
        entry = self._entries.get(name)
        if entry is not None:
            envd = entry.envd
            if envd is not None and envd.get(entry.env_key) is not entry.env_raw:
                # The variable was set, changed or deleted: what is held is no longer the answer.
                return self._start(name, "refresh", inline)
            if now < entry.refresh_at:
                entry.hits += 1
                if self._hit_listeners:
                    self._emit(name, entry.backend, entry.secret.version, True, 0.0, "hit")
                return entry.secret
            if entry.local:
                return self._start(name, "refresh", inline)  # a local re-read: a stat and a small read
            stale = now >= entry.expires_at
            if now < entry.stale_until and (
                not stale
                or name in self._flights
                or name in self._queued  # its refresh waits behind others: it is begun
                or isinstance(entry.last_error, BackendUnavailable)
            ):
                # A held value is returned at once while its refresh is queued or runs,
                # however slow, or fails. Past its life with no refresh begun (nobody read it in its
                # refresh-ahead window), the reader fetches, bounded by the deadline, and
                # is given the held value if that fails.
                if now >= entry.retry_at:
                    self._schedule(name)
                entry.hits += 1
                if stale:
                    self._count(entry.backend).stale_served += 1
                if self._hit_listeners:
                    self._emit(
                        name, entry.backend, entry.secret.version, True, 0.0, "stale" if stale else "hit"
                    )
                return entry.secret
            if (
                not now < entry.stale_until
                and entry.last_error is not None
                and now < entry.attempted_at + PROBE_INTERVAL
                and name not in self._flights
            ):
                raise fresh(self._expired(name, entry, entry.last_error, now))
            return self._start(name, "refresh", inline)
        failure = self._failures.get(name)
        if failure is not None and now < failure.until and not self._env_holds(name):
            retry = (
                isinstance(failure.error, BackendUnavailable) and now >= failure.attempted_at + PROBE_INTERVAL
            ) or name in self._flights
            if not retry:
                if self._hit_listeners:
                    outcome: Outcome = "not_found" if isinstance(failure.error, SecretNotFound) else "error"
                    self._emit(name, None, None, True, 0.0, outcome, failure.error)
                raise fresh(failure.error)
        self._check_allowed(name, self._key(name))
        return self._start(name, "miss", inline)

    def _env_holds(self, name: str) -> bool:
        # A miss is never remembered for the environment's part of the chain.
        env = self._env
        return env is not None and "://" not in name and env.probe(name)[2] is not None

    def _key(self, name: str) -> SecretRef | None:
        """``name`` parsed once: its reference, or ``None`` for a plain name."""
        ref = self._keys.get(name, _UNPARSED)
        if ref is _UNPARSED:
            ref = parse_reference(name) if "://" in name and looks_like_reference(name) else None
            if len(self._keys) >= self.max_size:
                self._keys.clear()  # a memo: names an attacker chooses must not grow it
            self._keys[name] = ref
        return ref  # type: ignore[no-any-return]

    # -- loading -------------------------------------------------------------------------

    def _start(self, name: str, reason: str, inline: bool) -> Secret[Any] | Flight:
        """Join the key's load, or start one: here when ``inline``, else on a loader thread."""
        with self._lock:
            flight = self._flights.get(name)
            if flight is not None:
                return flight
            flight = self._flights[name] = Flight()
        if inline:
            return self._lead(name, flight, reason)
        self._loader.submit(self._lead_detached, name, flight, reason)
        return flight

    def _lead_detached(self, name: str, flight: Flight, reason: str) -> None:
        try:
            self._lead(name, flight, reason)
        except Exception:  # noqa: S110 - the outcome reached the flight's readers
            pass

    def _lead(self, name: str, flight: Flight, reason: str) -> Secret[Any]:
        started = self._clock()
        try:
            resolved = self._resolve(name, self._key(name), reason)
        except Exception as exc:
            return self._complete(name, flight, None, sealed(exc), started, reason)
        except BaseException as exc:
            self._abandon(name, flight, exc)
            raise
        return self._complete(name, flight, resolved, None, started, reason)

    def _abandon(self, name: str, flight: Flight, exc: BaseException) -> None:
        # KeyboardInterrupt, SystemExit, a green-thread timeout: not the backend's failure,
        # but the flight must end, or every later reader of the key would wait forever.
        with self._lock:
            if self._flights.get(name) is flight:
                del self._flights[name]
            if self._idle_waiters:
                self._idle.notify_all()
        flight.finish(
            None,
            BackendUnavailable(f"secret {shown(name)}: the fetch was interrupted ({type(exc).__name__})"),
        )

    def _complete(
        self,
        name: str,
        flight: Flight,
        resolved: _Resolved | None,
        error: BaseException | None,
        started: float,
        reason: str,
    ) -> Secret[Any]:
        now = self._clock()
        rotated: tuple[Secret[Any], list[RotateCallback]] | None = None
        served: Secret[Any] | None = None
        scheme: str | None = None
        outcome: Outcome
        with self._lock:
            if self._flights.get(name) is flight:
                del self._flights[name]
            old = self._entries.get(name)
            current = not flight.invalidated
            if resolved is not None:
                scheme = resolved.scheme
                counters = self._count(scheme)
                counters.fetches += 1
                if reason == "refresh":
                    counters.refreshes += 1
                elif reason == "miss":
                    counters.misses += 1
                if current:
                    entry = self._entry(resolved, now)
                    if old is not None:
                        entry.hits = old.hits
                        # Re-inserting moves the key to the end: eviction takes the oldest first.
                        del self._entries[name]
                    elif len(self._entries) >= self.max_size:
                        self._evict_one()
                    self._entries[name] = entry
                    self._failures.pop(name, None)
                    if old is not None and changed(old.secret, resolved.secret):
                        counters.rotations += 1
                        rotated = (old.secret, list(self._subscribers.get(name, ())))
                served = resolved.secret
                outcome = "refreshed" if reason == "refresh" else "loaded"
            else:
                assert error is not None
                backend = getattr(error, "backend", None) or (old.backend if old else None)
                scheme = backend
                counters = self._count(backend or "-")
                if isinstance(error, SecretNotFound):
                    counters.not_found += 1
                    outcome = "not_found"
                    if current:
                        # Deleted at the source: stop serving it.
                        if old is not None:
                            self._retire(name, old)
                        self._note_failure(name, error, now, self._negative_until(error, now), 0)
                else:
                    counters.errors += 1
                    outcome = "denied" if isinstance(error, AccessDenied) else "error"
                    if old is not None:
                        old.failures += 1
                        old.retry_at = now + self._timing.backoff(old.failures)
                        old.attempted_at = now
                        old.last_error = fresh(error)
                        if isinstance(error, BackendUnavailable) and not old.local:
                            if now < old.stale_until:
                                served = old.secret
                                counters.stale_served += 1
                                outcome = "stale"
                            else:
                                error = self._expired(name, old, error, now)
                    elif current and isinstance(error, AccessDenied):
                        # A refusal is as lasting as an absence: remember it briefly, or every
                        # read of a denied name becomes a request to the backend.
                        self._note_failure(name, error, now, self._negative_until(error, now), 0)
                    elif current and isinstance(error, BackendUnavailable):
                        previous = self._failures.get(name)
                        failures = (previous.failures if previous else 0) + 1
                        self._note_failure(name, error, now, now + self._timing.backoff(failures), failures)
            if self._idle_waiters:
                self._idle.notify_all()
        flight.finish(served, None if served is not None else error)
        if self._listeners:
            self._emit(name, scheme, served.version if served else None, False, now - started, outcome, error)
        if rotated is not None and served is not None:
            self._fire_rotation(name, rotated[0], served, rotated[1])
        if served is None:
            assert error is not None
            raise error
        return served

    def _entry(self, resolved: _Resolved, now: float) -> Entry:
        probe = resolved.probe
        if (
            probe is not None
            and probe[2] is not None
            and resolved.scheme == getattr(self._env, "scheme", None)
        ):
            # The variable itself is the value: valid for exactly as long as it is unchanged.
            entry = Entry(resolved.secret, resolved.scheme, now, _NEVER, _NEVER, _NEVER)
        elif resolved.local:
            until = now + LOCAL_RECHECK
            entry = Entry(resolved.secret, resolved.scheme, now, until, until, until)
            entry.local = True
        else:
            entry = Entry(resolved.secret, resolved.scheme, now, *self._timing.deadlines(now, resolved.ttl))
        if probe is not None:
            entry.envd, entry.env_key, entry.env_raw = probe
        elif not resolved.secret._registered:
            # The read path registers only what an environment probe guards; anything else
            # cached is registered now (configuration from a chain without the environment).
            resolved.secret._register()
        return entry

    def _negative_until(self, error: BaseException, now: float) -> float:
        ttl = self._timing.negative_ttl
        backend = getattr(error, "backend", None)
        tried = getattr(error, "backends", ()) or ((backend,) if backend else ())
        if tried and all(getattr(self._by_scheme.get(s), "local", False) for s in tried):
            # A file may appear at any moment: look again as often as a present one is re-read.
            ttl = min(ttl, LOCAL_RECHECK)
        return now + ttl

    def _note_failure(self, name: str, error: BaseException, now: float, until: float, failures: int) -> None:
        """Remember a failure for a key that has no value; the table stays within ``max_size``."""
        if until <= now and failures == 0:
            self._failures.pop(name, None)
            return
        table = self._failures
        table.pop(name, None)  # re-inserted at the end: the table stays ordered by insertion
        # The oldest entries come first; drop the expired ones there, then the oldest if full.
        for _ in range(4):
            head = next(iter(table), None)
            if head is None or table[head].until > now:
                break
            del table[head]
        while len(table) >= self.max_size:
            del table[next(iter(table))]
        table[name] = _Failure(fresh(error), until, failures, now)

    def _expired(self, name: str, entry: Entry, error: BaseException, now: float) -> BackendUnavailable:
        """The error for a key whose last good value ran out of ``max_stale`` while its backend failed."""
        expired_at = datetime.now(UTC) - timedelta(seconds=max(0.0, now - entry.stale_until))
        err = BackendUnavailable(
            f"secret {shown(name)}: the last good value (version {entry.secret.version or '-'}) could be "
            f"served until {expired_at.isoformat(timespec='seconds')} and no fetch has succeeded since; "
            f"last error: {error}"
        )
        err.name, err.backend = name, entry.backend
        err.__cause__ = error.__cause__
        return err

    def _evict_one(self) -> None:
        name = next(iter(self._entries))
        self._retire(name, self._entries[name])

    def _retire(self, name: str, entry: Entry) -> None:
        self._retired_hits[entry.backend] = self._retired_hits.get(entry.backend, 0) + entry.hits
        del self._entries[name]

    # -- resolution ----------------------------------------------------------------------

    def _resolve(self, name: str, ref: SecretRef | None, reason: str) -> _Resolved:
        if ref is not None:
            return self._fetch_ref(ref, name, reason)
        tried: list[str] = []
        probe: tuple[Any, Any, Any] | None = None
        env = self._env
        probe_env: Callable[[str], tuple[Any, Any, Any]] | None = env.probe if env is not None else None
        for backend in self._chain:
            if backend is env and probe_env is not None:
                # Taken before the read: a change racing the read is then seen by the next one.
                probe = probe_env(name)
            try:
                fetched = self._call_fetch(backend, SecretRef(backend.scheme, name), name, reason)
            except SecretNotFound:
                tried.append(backend.scheme)
                continue
            value = fetched.value
            if _registry.is_reference(value):
                assert isinstance(value, str)
                resolved = self._follow(name, backend.scheme, value, reason)
            else:
                # Configuration read from the environment or .env stays readable in logs
                # unless asked for as a secret; a secret file's content never does.
                register = not (getattr(backend, "configuration", False) and "file" not in fetched.metadata)
                secret = Secret(
                    name,
                    value,
                    source=backend.scheme,
                    version=fetched.version,
                    fetched_at=_utcnow(),
                    register=register,
                )
                resolved = _Resolved(secret, backend.scheme, fetched.ttl, getattr(backend, "local", False))
            resolved.probe = probe
            return resolved
        raise SecretNotFound(name, backends=tried)

    def _follow(self, name: str, via: str, target: str, reason: str) -> _Resolved:
        try:
            ref = parse_reference(target)
        except InvalidReference as exc:
            raise InvalidReference(
                f"secret {shown(name)} (from {via}) holds a reference that is not valid: {exc}"
            ) from None
        if not self._allowed_ref(ref):
            raise self._denied(name, f"it points to {shown(str(ref.base))}")
        resolved = self._fetch_ref(ref, name, reason)
        resolved.local = False  # what the variable points to may change without the variable
        if _registry.is_reference(resolved.secret.reveal()):
            raise InvalidReference(
                f"secret {shown(name)} (from {via}) points to {shown(str(ref))}, which holds another "
                "reference; secretkit follows one level: point to the secret itself"
            )
        return resolved

    def _fetch_ref(self, ref: SecretRef, name: str, reason: str) -> _Resolved:
        backend = self.backend_for(ref.scheme)
        check_options(backend, ref)
        target = ref if ref.field is None or consumes_field(backend, ref) else ref.base
        return self._resolved(name, ref, backend, self._call_fetch(backend, target, name, reason))

    def _resolved(self, name: str, ref: SecretRef, backend: Backend, fetched: Fetched) -> _Resolved:
        if ref.field is None or consumes_field(backend, ref):
            secret = Secret(
                name, fetched.value, source=backend.scheme, version=fetched.version, fetched_at=_utcnow()
            )
        else:
            document, value = field_of(fetched, ref, name, backend.scheme)
            secret = Secret(name, value, source=backend.scheme, version=fetched.version, fetched_at=_utcnow())
            # The document's other fields are secrets too, registered as long as this one is held.
            remember(fetched.value, document, owner=secret)
        return _Resolved(secret, backend.scheme, fetched.ttl, getattr(backend, "local", False))

    def _call_fetch(self, backend: Backend, ref: SecretRef, name: str, reason: str) -> Fetched:
        error: SecretkitError
        try:
            if getattr(backend, "local", False):
                fetched = observed(backend.scheme, (name,), reason, backend.fetch, ref)
            else:
                fetched = self._remote(backend, (name,), reason, backend.fetch, ref)
        except DeadlineExceeded:
            error = self._late(backend, name)
        except SecretNotFound as exc:
            error = SecretNotFound(name, backends=[backend.scheme], detail=exc.detail)
        except SecretkitError as exc:
            error = sealed(wrapped(exc, name, backend.scheme))
        except Exception as exc:
            error = wrapped(exc, name, backend.scheme)
            error.__cause__ = scrubbed(sealed(exc))
        else:
            if not isinstance(fetched, Fetched):
                raise BackendUnavailable(
                    f"secret {shown(name)}: the {backend.scheme} backend returned {type(fetched).__name__}, "
                    "not Fetched; this is a bug in the backend"
                )
            return fetched
        # Raised here, outside the except blocks, so no __context__ keeps the backend's frames.
        raise error

    def _remote(
        self, backend: Backend, names: Sequence[str], reason: str, fn: Callable[[Any], T], arg: Any
    ) -> T:
        """``fn(arg)`` on the backend's lane; ``DeadlineExceeded`` once its deadline passes."""
        call: Call[T] = self._lane(backend).submit(observed, backend.scheme, names, reason, fn, arg)
        return call.result(self._deadline_of(backend))

    def _lane(self, backend: Backend) -> Runner:
        lane = self._lanes.get(backend.scheme)
        if lane is None:
            with self._lock:
                lane = self._lanes.get(backend.scheme)
                if lane is None:
                    workers = getattr(backend, "concurrency", None) or self.concurrency
                    lane = self._lanes[backend.scheme] = Runner(workers, f"secretkit-{backend.scheme}")
        return lane

    def _deadline_of(self, backend: Backend) -> float:
        return float(getattr(backend, "deadline", None) or self.deadline)

    def _late(self, backend: Backend, name: str) -> BackendUnavailable:
        err = BackendUnavailable(
            f"secret {shown(name)}: the {backend.scheme} backend did not answer within the "
            f"{self._deadline_of(backend):g} s deadline; check that it is reachable, or raise "
            f"SecretStore(deadline=...) (or the backend's own deadline) if it is slow"
        )
        err.name, err.backend = name, backend.scheme
        return err

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
        """Load ``names`` now, concurrently: one batch per backend that batches, the rest at
        most ``concurrency`` at a time per backend.

        Returns the failures by name (empty when every secret loaded); values already
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
        return self._load_many(wanted, reason="prefetch")

    def _load_many(self, names: Sequence[str], *, reason: str) -> dict[str, SecretkitError]:
        failures: dict[str, SecretkitError] = {}
        mine: dict[str, Flight] = {}
        with self._lock:
            for name in names:
                if name not in self._flights:
                    mine[name] = self._flights[name] = Flight()
            self._queued.difference_update(names)  # in flight now, or already
        groups: dict[str, list[tuple[str, SecretRef]]] = {}
        jobs: list[Callable[[], None]] = []
        for name, flight in mine.items():
            try:
                ref = self._key(name)
                self._check_allowed(name, ref)
                if ref is not None:
                    backend = self.backend_for(ref.scheme)
                    check_options(backend, ref)
                    if callable(getattr(backend, "fetch_many", None)) and not consumes_field(backend, ref):
                        groups.setdefault(ref.scheme, []).append((name, ref))
                        continue
                jobs.append(_bind(self._single, name, flight, reason, failures))
            except Exception as exc:  # every flight claimed here must be settled, or readers wait forever
                self._settle(name, flight, None, exc, reason, failures)
        jobs[:0] = [
            _bind(self._batch, scheme, items, mine, reason, failures) for scheme, items in groups.items()
        ]
        self._run_all(jobs)
        return failures

    def _run_all(self, jobs: list[Callable[[], None]]) -> None:
        """Run ``jobs`` at once: all but the first on loader threads, the first here."""
        calls = [self._loader.submit(job) for job in jobs[1:]]
        if jobs:
            jobs[0]()
        for call in calls:
            call.result(None)

    def _single(self, name: str, flight: Flight, reason: str, failures: dict[str, SecretkitError]) -> None:
        started = self._clock()
        try:
            resolved = self._resolve(name, self._key(name), reason)
        except Exception as exc:
            self._settle(name, flight, None, exc, reason, failures, started)
        else:
            self._settle(name, flight, resolved, None, reason, failures, started)

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
            results = self._remote(backend, [n for n, _ in items], reason, backend.fetch_many, refs)  # type: ignore[attr-defined]
        except Exception as exc:
            for name, _ in items:
                if isinstance(exc, DeadlineExceeded):
                    err: BaseException = self._late(backend, name)
                elif isinstance(exc, SecretkitError):
                    err = wrapped(fresh(exc), name, scheme)
                else:
                    err = wrapped(exc, name, scheme)
                    err.__cause__ = scrubbed(sealed(exc))
                self._settle(name, flights[name], None, err, reason, failures, started)
            return
        for name, ref in items:
            self._batch_item(
                name, ref, backend, results.get(ref.base), flights[name], reason, failures, started
            )

    def _batch_item(
        self,
        name: str,
        ref: SecretRef,
        backend: Backend,
        result: Fetched | Exception | None,
        flight: Flight,
        reason: str,
        failures: dict[str, SecretkitError],
        started: float,
    ) -> None:
        # One frame per item: a failure's traceback must not reach the batch's other values.
        scheme = backend.scheme
        try:
            if result is None:
                fetched = self._call_fetch(backend, ref.base, name, reason)
            elif isinstance(result, SecretNotFound):
                raise SecretNotFound(name, backends=[scheme], detail=result.detail)
            elif isinstance(result, SecretkitError):
                raise sealed(wrapped(fresh(result), name, scheme))
            elif isinstance(result, Exception):
                raise wrapped(result, name, scheme) from scrubbed(sealed(result))
            else:
                fetched = result
            resolved = self._resolved(name, ref, backend, fetched)
        except Exception as exc:
            self._settle(name, flight, None, exc, reason, failures, started)
        else:
            self._settle(name, flight, resolved, None, reason, failures, started)

    def _settle(
        self,
        name: str,
        flight: Flight,
        resolved: _Resolved | None,
        error: BaseException | None,
        reason: str,
        failures: dict[str, SecretkitError],
        started: float | None = None,
    ) -> None:
        start = self._clock() if started is None else started
        try:
            self._complete(name, flight, resolved, None if error is None else sealed(error), start, reason)
        except SecretkitError as exc:
            failures[name] = sealed(exc)
        except Exception as exc:
            failures[name] = sealed(wrapped(exc, name, "-"))

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
                # The names stay in _queued until their loads hold flights: a batch waiting
                # for a busy refresh worker is still a refresh begun, to readers and _schedule.
                self._refreshing += 1
            # Handed off, not run here: a batch hung until its deadline must not hold back
            # the refreshes that come due after it (another backend's, most of all).
            self._refresher.submit(self._refresh_job, batch)

    def _refresh_job(self, batch: list[str]) -> None:
        try:
            self._refresh_batch(batch)
        except Exception:
            log.exception("secretkit: background refresh failed unexpectedly")
        finally:
            with self._lock:
                self._queued.difference_update(batch)
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
        self._check_allowed(name, self._key(name))
        found = self._start(name, "refresh", inline=True)
        secret = found.wait() if isinstance(found, Flight) else found
        if not secret._registered:
            secret._register()
        return secret

    def invalidate(self, name: str | None = None) -> None:
        """Forget ``name`` (or every secret), so the next read fetches it."""
        with self._lock:
            if name is None:
                for flight in self._flights.values():
                    flight.invalidated = True
                for key, entry in list(self._entries.items()):
                    self._retire(key, entry)
                self._failures.clear()
                self._queue.clear()
                self._queued.clear()
            else:
                loading = self._flights.get(name)
                if loading is not None:
                    loading.invalidated = True  # a load begun before must not be kept
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
        """Call ``callback(old, new)`` when a refresh brings a new version or value of ``name``.

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
        """Call ``listener(AccessEvent)`` on every access; returns a function that removes it.

        A listener with ``wants_hits = False`` is not told about cache hits, which keeps the
        read path as cheap as with no listener at all.
        """
        self._listeners.append(listener)
        if getattr(listener, "wants_hits", True):
            self._hit_listeners.append(listener)

        def remove() -> None:
            for listeners in (self._listeners, self._hit_listeners):
                if listener in listeners:
                    listeners.remove(listener)

        return remove

    def stats(self) -> dict[str, Any]:
        """Counters overall and per backend: hits, misses, fetches, errors, refreshes, rotations.

        Also ``size`` (values cached), ``negative`` (failures remembered), ``loading`` (loads
        in flight) and ``stale_headroom``: seconds until the first value now served stale
        runs out of ``max_stale`` (``None`` when none is stale).
        """
        now = self._clock()
        empty = {**Counters().as_dict(), "hits": 0}
        with self._lock:
            per: dict[str, dict[str, int]] = {}
            for scheme, counters in self._counters.items():
                per[scheme] = {**counters.as_dict(), "hits": self._retired_hits.get(scheme, 0)}
            for scheme, hits in self._retired_hits.items():
                if scheme not in per:
                    per[scheme] = {**empty, "hits": hits}
            headroom: float | None = None
            for entry in self._entries.values():
                row = per.get(entry.backend)
                if row is None:
                    row = per[entry.backend] = dict(empty)
                row["hits"] += entry.hits
                if entry.expires_at <= now < entry.stale_until:
                    left = entry.stale_until - now
                    headroom = left if headroom is None or left < headroom else headroom
            total: dict[str, Any] = dict(empty)
            for row in per.values():
                for key, value in row.items():
                    total[key] += value
            total["size"] = len(self._entries)
            total["negative"] = len(self._failures)
            total["loading"] = len(self._flights)
            total["stale_headroom"] = headroom
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
            runners = [self._loader, self._refresher, *self._lanes.values()]
        for runner in runners:
            runner.close()
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

    def _check_allowed(self, name: str, ref: SecretRef | None) -> None:
        """Refuse ``name`` (told to listeners) unless the allow-list grants it; the CLI asks here too."""
        allow = self.allow
        if allow is None:
            return
        if allow.admits_ref(ref) if ref is not None else allow.admits_name(name):
            return
        error = allow.refusal(name, "it matches no pattern")
        if self._listeners:
            self._emit(name, ref.scheme if ref else None, None, False, 0.0, "denied", error)
        raise error

    def _allowed_ref(self, ref: SecretRef) -> bool:
        """Whether the allow-list grants ``ref`` (see :class:`~secretkit._allow.AllowList`)."""
        return self.allow is None or self.allow.admits_ref(ref)

    def _denied(self, name: str, why: str) -> AccessDenied:
        return (self.allow or AllowList(())).refusal(name, why)

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
        for listener in list(self._hit_listeners if hit else self._listeners):
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
                    "secretkit: on_rotate callback %r for %s raised %s",
                    callback,
                    shown(name),
                    type(exc).__name__,
                )

    def _after_fork(self) -> None:
        # The parent's threads do not exist here: a lock they held, a flight they led or a
        # queued refresh would never finish. Keep the values, rebuild everything else.
        self._init_sync()


_UNPARSED: Any = object()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _bind(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: fn(*args)


def _settle_waiter(waiter: Any) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _utcnow() -> datetime:
    return datetime.now(UTC)
