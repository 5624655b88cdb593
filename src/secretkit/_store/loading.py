"""Loading: one load per key (single flight), and what its outcome does to the records.

A load is led by the first reader (or a loader thread) and shared, as a :class:`Flight`, by
every reader that comes while it runs. Its completion keeps the value, or remembers the failure (not-found,
a refusal, an outage in backoff) and decides from the time policy whether the last good
value is still served; then the flight's readers, the listeners and the rotation
subscribers are told, in that order, outside the lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from .._errors import AccessDenied, BackendUnavailable, SecretkitError, SecretNotFound, copied, shown
from .._events import READ_REASONS, Outcome, outcome_of
from .._secret import Secret
from .observing import Observing, RotateCallback
from .policy import TimePolicy
from .progress import Flight, Progress
from .records import Held, Records
from .resolving import Loaded, Resolver
from .runner import Runner
from .sealing import sealed, wrapped

__all__ = ["Flight", "Loader", "expired", "remembered"]

# Threads that run loads for prefetch, batched refreshes and async readers.
_LOADERS = 32


class Loader:
    """Starts, leads and completes the loads of one store."""

    def __init__(
        self,
        progress: Progress,
        records: Records,
        policy: TimePolicy,
        observing: Observing,
        resolver: Resolver,
        clock: Callable[[], float],
    ) -> None:
        self._progress = progress
        self._records = records
        self._policy = policy
        self._observing = observing
        self._resolver = resolver
        self._clock = clock
        self._after_fork()

    def _after_fork(self) -> None:
        #: Loader threads: detached leads (async readers) and the jobs of a batch load.
        self.pool = Runner(_LOADERS, "secretkit-load")

    def start(self, name: str, reason: str, inline: bool) -> Secret[Any] | Flight:
        """Join the key's load, or start one: here when ``inline``, else on a loader thread."""
        progress = self._progress
        with progress.lock:
            flight = progress.flights.get(name)
            if flight is not None:
                return flight
            flight = progress.flights[name] = Flight()
        if inline:
            return self.lead(name, flight, reason)
        self.pool.submit(self._lead_detached, name, flight, reason)
        return flight

    def claim(self, names: Iterable[str]) -> dict[str, Flight]:
        """Flights for those of ``names`` that have none; the caller must settle every one."""
        mine: dict[str, Flight] = {}
        progress = self._progress
        with progress.lock:
            for name in names:
                if name not in progress.flights:
                    mine[name] = progress.flights[name] = Flight()
            progress.queued.difference_update(names)  # in flight now, or already
        return mine

    def _lead_detached(self, name: str, flight: Flight, reason: str) -> None:
        try:
            self.lead(name, flight, reason)
        except Exception:  # noqa: S110 - the outcome reached the flight's readers
            pass

    def lead(self, name: str, flight: Flight, reason: str) -> Secret[Any]:
        started = self._clock()
        try:
            loaded = self._resolver.load(name, self._resolver.key(name), reason)
        except Exception as exc:
            return self.complete(name, flight, None, sealed(exc), started, reason)
        except BaseException as exc:
            self._abandon(name, flight, exc)
            raise
        return self.complete(name, flight, loaded, None, started, reason)

    def _abandon(self, name: str, flight: Flight, exc: BaseException) -> None:
        # KeyboardInterrupt, SystemExit, a green-thread timeout: not the backend's failure,
        # but the flight must end, or every later reader of the key would wait forever.
        progress = self._progress
        with progress.lock:
            if progress.flights.get(name) is flight:
                del progress.flights[name]
            progress.changed()
        flight.finish(
            None,
            BackendUnavailable(f"secret {shown(name)}: the fetch was interrupted ({type(exc).__name__})"),
        )

    def settle(
        self,
        name: str,
        flight: Flight,
        loaded: Loaded | None,
        error: BaseException | None,
        reason: str,
        errors: dict[str, SecretkitError],
        started: float | None = None,
    ) -> None:
        """``complete``, with a failure put in ``errors`` instead of raised (for batch loads)."""
        start = self._clock() if started is None else started
        try:
            self.complete(name, flight, loaded, None if error is None else sealed(error), start, reason)
        except SecretkitError as exc:
            errors[name] = sealed(exc)
        except Exception as exc:
            errors[name] = sealed(wrapped(exc, name, "-"))

    def complete(
        self,
        name: str,
        flight: Flight,
        loaded: Loaded | None,
        error: BaseException | None,
        started: float,
        reason: str,
    ) -> Secret[Any]:
        """Apply a load's outcome, tell everyone waiting, and return the secret (or raise)."""
        now = self._clock()
        policy, records, observing, progress = self._policy, self._records, self._observing, self._progress
        rotated: tuple[Secret[Any], list[RotateCallback]] | None = None
        served: Secret[Any] | None = None
        scheme: str | None = None
        outcome: Outcome
        with progress.lock:
            if progress.flights.get(name) is flight:
                del progress.flights[name]
            old = records.held.get(name)
            current = not flight.invalidated
            if loaded is not None:
                scheme = loaded.scheme
                counters = observing.count(scheme)
                counters.fetches += 1
                if reason == "refresh" or reason == "expired":
                    counters.refreshes += 1
                if current:
                    records.keep(name, self._held_from(loaded, now), old)
                    if old is not None and _changed(old.secret, loaded.secret):
                        counters.rotations += 1
                        rotated = (old.secret, list(observing.subscribers.get(name, ())))
                served = loaded.secret
                outcome = "refreshed" if reason == "refresh" or reason == "expired" else "loaded"
            else:
                assert error is not None
                backend = getattr(error, "backend", None) or (old.backend if old else None)
                scheme = backend
                counters = observing.count(backend or "-")
                if isinstance(error, SecretNotFound):
                    counters.not_found += 1
                    outcome = "not_found"
                    if current:
                        # Deleted at the source: stop serving it.
                        if old is not None:
                            records.retire(name, old)
                        until = policy.negative_until(now, local=self._resolver.only_local(error))
                        records.fail(name, error, now, until, 0)
                else:
                    counters.errors += 1
                    outcome = outcome_of(error)
                    if old is not None:
                        old.streak += 1
                        old.retry_at = now + policy.backoff(old.streak)
                        old.attempted_at = now
                        old.last_error = copied(error)
                        if isinstance(error, BackendUnavailable) and not old.local:
                            if policy.serves_stale(old, now):
                                served = old.secret
                                counters.stale_served += 1
                                outcome = "stale"
                            else:
                                error = expired(name, old, error, now)
                    elif current and isinstance(error, AccessDenied):
                        # A refusal is as lasting as an absence: remember it briefly, or every
                        # read of a denied name becomes a request to the backend.
                        until = policy.negative_until(now, local=self._resolver.only_local(error))
                        records.fail(name, error, now, until, 0)
                    elif current and isinstance(error, BackendUnavailable):
                        previous = records.failed.get(name)
                        streak = (previous.streak if previous else 0) + 1
                        records.fail(name, error, now, now + policy.backoff(streak), streak)
            if reason in READ_REASONS:
                # A reader went to the backend: a miss, whatever it ended in.
                counters.missed_read(outcome)
            progress.changed()
        flight.finish(served, None if served is not None else error)
        if observing.listeners:
            observing.emit(
                name, scheme, served.version if served else None, False, now - started, outcome, error
            )
        if rotated is not None and served is not None:
            observing.rotated(name, rotated[0], served, rotated[1])
        if served is None:
            assert error is not None
            raise error
        return served

    def _held_from(self, loaded: Loaded, now: float) -> Held:
        times = self._policy.held(now, backend_ttl=loaded.ttl, local=loaded.local, variable=loaded.variable)
        held = Held(loaded.secret, loaded.scheme, now, *times)
        held.local = loaded.local and not loaded.variable
        probe = loaded.probe
        if probe is not None:
            held.envd, held.env_key, held.env_raw = probe
        elif not loaded.secret._registered:
            # The read path registers only what an environment probe guards; anything else
            # cached is registered now (configuration from a chain without the environment).
            loaded.secret._register()
        return held

    def close(self) -> None:
        self.pool.close()


def remembered(name: str, held: Held, now: float) -> BaseException:
    """The error a read of ``held`` raises from memory, its backend not asked again yet.

    A refusal stays a refusal (the backend said no, whatever the value's age); any other
    failure is an outage that outlived the last good value.
    """
    error = held.last_error
    assert error is not None
    if isinstance(error, AccessDenied):
        return error
    return expired(name, held, error, now)


def expired(name: str, held: Held, error: BaseException, now: float) -> BackendUnavailable:
    """The error for a key whose last good value ran out of ``max_stale`` while its backend failed."""
    expired_at = datetime.now(UTC) - timedelta(seconds=max(0.0, now - held.stale_until))
    err = BackendUnavailable(
        f"secret {shown(name)}: the last good value (version {held.secret.version or '-'}) could be "
        f"served until {expired_at.isoformat(timespec='seconds')} and no fetch has succeeded since; "
        f"last error: {error}"
    )
    err.name, err.backend = name, held.backend
    err.__cause__ = error.__cause__
    return err


def _changed(old: Secret[Any], new: Secret[Any]) -> bool:
    # A new version, or the same version with another value: a secret deleted and created
    # again starts its versions over, and that is a rotation too.
    return old.version != new.version or old != new
