"""The time policy: one object decides fresh, serve-and-refresh, fetch or raise, and for how long.

Every rule about time lives here: a value's life (TTL, jitter, a backend's own TTL), the
refresh-ahead point, how long a value is served stale while its backend fails, how long
not-found is remembered, how failures back off, and how often a remembered outage is
probed. The store asks; the policy answers from the records and the time it is given, so a
test drives it with plain numbers (``tests/test_store_policy.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final, Literal

from .._errors import BackendUnavailable
from .records import Failed, Held

__all__ = ["FETCH", "FRESH", "NEVER", "RAISE", "SERVE", "SERVE_AND_REFRESH", "TimePolicy", "Verdict"]

Verdict = Literal["fresh", "serve", "serve-and-refresh", "fetch", "raise"]
#: Within its refresh-ahead point: the held value is the answer.
FRESH: Final = "fresh"
#: Past refresh-ahead (or stale within ``max_stale``) while a refresh is begun or backing off:
#: the held value, at once.
SERVE: Final = "serve"
#: As ``SERVE``, and a background refresh is due now.
SERVE_AND_REFRESH: Final = "serve-and-refresh"
#: The reader loads (or joins the load of) the key.
FETCH: Final = "fetch"
#: The remembered failure is the answer, without asking the backend.
RAISE: Final = "raise"

NEVER = float("inf")

# The defaults of the store's timing keywords (the same as TimePolicy's own).
_DEFAULTS: dict[str, float] = {
    "ttl": 300.0,
    "refresh_ahead": 0.8,
    "max_stale": 3600.0,
    "negative_ttl": 5.0,
    "jitter": 0.1,
    "backoff_base": 1.0,
    "backoff_max": 60.0,
}


class TimePolicy:
    """How long values live, when they are refreshed, served stale, retried and re-read.

    The keyword arguments of ``SecretStore`` are a shorthand for one of these; pass
    ``SecretStore(policy=TimePolicy(...))`` (or a subclass) to decide otherwise.
    """

    def __init__(
        self,
        *,
        ttl: float = 300.0,
        refresh_ahead: float = 0.8,
        max_stale: float = 3600.0,
        negative_ttl: float = 5.0,
        jitter: float = 0.1,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        local_recheck: float = 1.0,
        probe_interval: float = 0.1,
        rng: Callable[[], float] | None = None,
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
        #: Seconds between re-reads of a value that lives on this machine (``.env``, a secret
        #: file): often enough to pick up a rotated Kubernetes secret volume, rarely enough
        #: that the re-read (a ``stat``, a small read) never shows in a profile.
        self.local_recheck = local_recheck
        #: A read that would raise a remembered outage tries the backend once more first,
        #: unless an attempt for that key ended this recently: errors stop within a round
        #: trip of the backend's recovery, yet a dead backend sees a few attempts a second per key.
        self.probe_interval = probe_interval
        self.rng = rng or random.random

    @classmethod
    def given(
        cls, policy: TimePolicy | None, *, rng: Callable[[], float] | None, **timing: float
    ) -> TimePolicy:
        """``policy``, or one built from the store's timing keywords; both at once is a ``TypeError``.

        A keyword left at its default is not "given": only one that differs conflicts.
        """
        if policy is None:
            return cls(**timing, rng=rng)
        given = sorted(k for k, v in timing.items() if v != _DEFAULTS[k])
        if given or rng is not None:
            raise TypeError(
                "pass the timing either as policy= or as keywords, not both "
                f"(given: {', '.join(given) or 'rng'})"
            )
        return policy

    def __repr__(self) -> str:
        return (
            f"TimePolicy(ttl={self.ttl}, refresh_ahead={self.refresh_ahead}, max_stale={self.max_stale}, "
            f"negative_ttl={self.negative_ttl})"
        )

    # -- what a read does ------------------------------------------------------------------

    def of_held(self, held: Held, now: float, *, loading: bool, queued: bool) -> Verdict:
        """What a read of a held value does at ``now``, given whether its load is in flight or queued."""
        if now < held.refresh_at:
            return FRESH
        if held.local:
            return FETCH  # a local re-read: a stat and a small read
        stale = now >= held.expires_at
        if now < held.stale_until and (
            not stale or loading or queued or isinstance(held.last_error, BackendUnavailable)
        ):
            # Returned at once while its refresh is queued or runs, however slow, or fails.
            # Past its life with no refresh begun (nobody read it in its refresh-ahead window),
            # the reader fetches, bounded by the deadline, and is given the held value if that fails.
            return SERVE_AND_REFRESH if now >= held.retry_at else SERVE
        if (
            not now < held.stale_until
            and held.last_error is not None
            and now < held.attempted_at + self.probe_interval
            and not loading
        ):
            return RAISE
        return FETCH

    def of_failed(self, failed: Failed, now: float, *, loading: bool) -> Verdict:
        """What a read of a key whose last load failed (and that holds no value) does at ``now``."""
        if now >= failed.until or loading:
            return FETCH
        if isinstance(failed.error, BackendUnavailable) and now >= failed.attempted_at + self.probe_interval:
            return FETCH  # probe a remembered outage: it may be over
        return RAISE

    # -- how long a load holds ---------------------------------------------------------------

    def life(self, backend_ttl: float | None) -> float:
        """A value's lifetime: the TTL shortened by up to ``jitter`` of itself, never to zero.

        Shortening only (never lengthening) keeps ``ttl`` an upper bound on staleness; the
        floor at ``1 - jitter`` keeps a short TTL from turning into back-to-back refreshes.
        """
        ttl = self.ttl if backend_ttl is None else min(self.ttl, max(backend_ttl, 0.0))
        return ttl * (1.0 - self.jitter * self.rng())

    def deadlines(self, now: float, backend_ttl: float | None) -> tuple[float, float, float]:
        """``(refresh_at, expires_at, stale_until)`` for a remote value loaded at ``now``.

        A backend TTL is the value's own end of validity (a lease, an ``exp``): past it the
        value is useless, so it is never served stale beyond it.
        """
        life = self.life(backend_ttl)
        expires_at = now + life
        stale_until = expires_at + self.max_stale
        if backend_ttl is not None:
            stale_until = min(stale_until, now + max(backend_ttl, 0.0))
        return now + life * self.refresh_ahead, expires_at, stale_until

    def held(
        self, now: float, *, backend_ttl: float | None, local: bool, variable: bool
    ) -> tuple[float, float, float]:
        """``(refresh_at, expires_at, stale_until)`` for any value loaded at ``now``.

        A variable of the environment is valid for exactly as long as it is unchanged (the
        read path sees a change by identity); a local file's value until its next re-read.
        """
        if variable:
            return NEVER, NEVER, NEVER
        if local:
            until = now + self.local_recheck
            return until, until, until
        return self.deadlines(now, backend_ttl)

    def serves_stale(self, held: Held, now: float) -> bool:
        """Whether ``held`` is still served now that its refresh found the backend unavailable."""
        return not held.local and now < held.stale_until

    def negative_until(self, now: float, *, local: bool) -> float:
        """Until when not-found (or a refusal) is remembered; ``local``: only local backends were asked.

        A file may appear at any moment: a local miss is looked at again as often as a present
        file is re-read.
        """
        return now + (min(self.negative_ttl, self.local_recheck) if local else self.negative_ttl)

    def backoff(self, streak: int) -> float:
        """Seconds before the next attempt after ``streak`` failures in a row (capped, jittered)."""
        step = min(self.backoff_max, self.backoff_base * float(2 ** min(streak - 1, 30)))
        # Half fixed, half random: spread retries across a fleet, yet never retry at once.
        return step * (0.5 + 0.5 * self.rng())

    def ride_along_until(self, now: float) -> float:
        """A batch refresh takes along the values of its backend due before this instant.

        So a set of secrets loaded together is refreshed in one call, not one by one.
        """
        return now + self.ttl * (1.0 - self.refresh_ahead)
