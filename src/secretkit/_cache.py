"""Cache entries, single flight and the timing rules (jitter, refresh-ahead, backoff).

The read path touches only ``Entry.secret``, ``Entry.refresh_at`` and, for a plain name
the environment may hold, ``Entry.envd``/``env_key``/``env_raw``: everything else here runs
on a miss or a refresh, under the store's lock.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from typing import Any

from ._errors import fresh
from ._secret import Secret

__all__ = ["Entry", "Flight", "Timing"]


class Entry:
    """One cached value and the instants that govern it (clock seconds)."""

    __slots__ = (
        "attempted_at",
        "backend",
        "env_key",
        "env_raw",
        "envd",
        "expires_at",
        "failures",
        "hits",
        "last_error",
        "loaded_at",
        "local",
        "refresh_at",
        "retry_at",
        "secret",
        "stale_until",
    )

    def __init__(
        self,
        secret: Secret[Any],
        backend: str,
        loaded_at: float,
        refresh_at: float,
        expires_at: float,
        stale_until: float,
    ) -> None:
        self.secret = secret
        self.backend = backend
        self.loaded_at = loaded_at
        self.refresh_at = refresh_at
        self.expires_at = expires_at
        self.stale_until = stale_until
        self.hits = 0
        self.failures = 0
        self.retry_at = 0.0
        self.attempted_at = loaded_at
        self.last_error: BaseException | None = None
        self.local = False
        # A plain name the environment may hold: the environment's dict, the key in it and
        # the object it held when this entry was made. A read compares by identity, which
        # is all it costs to see a variable set, changed or deleted since.
        self.envd: Any = None
        self.env_key: Any = None
        self.env_raw: Any = None


# Guards the callback lists of every flight: taken only to add a callback or to finish.
_callbacks_lock = threading.Lock()


class Flight:
    """One load in progress; other readers of the same key wait for it and share its outcome."""

    __slots__ = ("_callbacks", "_done", "_latch", "error", "invalidated", "result")

    def __init__(self) -> None:
        # A lock held until the load finishes is the cheapest latch: an Event would build a
        # Condition on every cold read.
        self._latch = threading.Lock()
        self._latch.acquire()
        self._callbacks: list[Callable[[], object]] = []
        self._done = False
        #: Set by ``invalidate()``: the load's outcome is handed to its waiters, not kept.
        self.invalidated = False
        self.result: Secret[Any] | None = None
        self.error: BaseException | None = None

    def finish(self, result: Secret[Any] | None, error: BaseException | None) -> None:
        self.result, self.error = result, error
        with _callbacks_lock:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        self._latch.release()
        for callback in callbacks:
            callback()

    def add_done_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` when the load finishes (at once if it has)."""
        with _callbacks_lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, timeout: float | None = None) -> Secret[Any]:
        if not self._latch.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("timed out waiting for another reader's fetch")
        self._latch.release()  # let the next waiter through
        return self.outcome()

    def outcome(self) -> Secret[Any]:
        """The finished load's secret, or its error raised (a fresh copy per caller)."""
        if self.error is not None:
            raise fresh(self.error)
        assert self.result is not None
        return self.result


def _after_fork_in_child() -> None:
    global _callbacks_lock
    _callbacks_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Timing:
    """How long values live, when they are refreshed, and how failures back off."""

    def __init__(
        self,
        *,
        ttl: float,
        refresh_ahead: float,
        max_stale: float,
        negative_ttl: float,
        jitter: float,
        backoff_base: float,
        backoff_max: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if ttl < 0 or max_stale < 0 or negative_ttl < 0:
            raise ValueError("ttl, max_stale and negative_ttl must be >= 0")
        if not 0.0 < refresh_ahead <= 1.0:
            raise ValueError("refresh_ahead is a fraction of the TTL: 0 < refresh_ahead <= 1")
        if not 0.0 <= jitter < 1.0:
            raise ValueError("jitter is a fraction of the TTL: 0 <= jitter < 1")
        self.ttl = ttl
        self.refresh_ahead = refresh_ahead
        self.max_stale = max_stale
        self.negative_ttl = negative_ttl
        self.jitter = jitter
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rng = rng

    def life(self, backend_ttl: float | None) -> float:
        """A value's lifetime: the TTL shortened by up to ``jitter`` of itself, never to zero.

        Shortening only (never lengthening) keeps ``ttl`` an upper bound on staleness; the
        floor at ``1 - jitter`` keeps a short TTL from turning into back-to-back refreshes.
        """
        ttl = self.ttl if backend_ttl is None else min(self.ttl, max(backend_ttl, 0.0))
        return ttl * (1.0 - self.jitter * self.rng())

    def deadlines(self, now: float, backend_ttl: float | None) -> tuple[float, float, float]:
        """``(refresh_at, expires_at, stale_until)`` for a value loaded at ``now``.

        A backend TTL is the value's own end of validity (a lease, an ``exp``): past it the
        value is useless, so it is never served stale beyond it.
        """
        life = self.life(backend_ttl)
        expires_at = now + life
        stale_until = expires_at + self.max_stale
        if backend_ttl is not None:
            stale_until = min(stale_until, now + max(backend_ttl, 0.0))
        return now + life * self.refresh_ahead, expires_at, stale_until

    def backoff(self, failures: int) -> float:
        """Seconds before the next attempt after ``failures`` failures in a row (capped, jittered)."""
        step = min(self.backoff_max, self.backoff_base * float(2 ** min(failures - 1, 30)))
        # Half fixed, half random: spread retries across a fleet, yet never retry at once.
        return step * (0.5 + 0.5 * self.rng())
