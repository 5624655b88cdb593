"""What a store remembers per key: held values and failed loads, bounded by ``max_size``.

The read path touches only ``Held.secret``, ``Held.refresh_at`` and, for a plain name the
environment may hold, ``Held.envd``/``env_key``/``env_raw``; everything else here runs on a
miss or a refresh, under the store's lock (see ``progress.py``).
"""

from __future__ import annotations

from typing import Any

from .._errors import copied
from .._secret import Secret

__all__ = ["Failed", "Held", "Records"]


class Held:
    """One cached value and the instants that govern it (clock seconds)."""

    __slots__ = (
        "attempted_at",
        "backend",
        "env_key",
        "env_raw",
        "envd",
        "expires_at",
        "hits",
        "last_error",
        "loaded_at",
        "local",
        "refresh_at",
        "retry_at",
        "secret",
        "stale_until",
        "streak",
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
        #: Refreshes that failed in a row since the value was loaded.
        self.streak = 0
        self.retry_at = 0.0
        self.attempted_at = loaded_at
        self.last_error: BaseException | None = None
        self.local = False
        # A plain name the environment may hold: the environment's dict, the key in it and
        # the object it held when this value was loaded. A read compares by identity, which
        # is all it costs to see a variable set, changed or deleted since.
        self.envd: Any = None
        self.env_key: Any = None
        self.env_raw: Any = None


class Failed:
    """A key with no value whose last load failed: not-found, a refusal, or an outage in backoff."""

    __slots__ = ("attempted_at", "error", "streak", "until")

    def __init__(self, error: BaseException, until: float, streak: int, attempted_at: float) -> None:
        self.error, self.until, self.streak, self.attempted_at = error, until, streak, attempted_at


class Records:
    """Held values and failed keys, each table kept within ``max_size``; callers hold the lock.

    Both tables are ordered by insertion (a key is re-inserted when it is loaded again), so
    the oldest is first: eviction takes it, and expired failures are dropped from the head.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        #: The cache: read without a lock on the hot path.
        self.held: dict[str, Held] = {}
        self.failed: dict[str, Failed] = {}
        # Hits of values no longer held, by backend: stats() counters never fall.
        self.retired_hits: dict[str, int] = {}

    def keep(self, name: str, held: Held, old: Held | None) -> None:
        """Hold ``held`` for ``name`` (replacing ``old``, whose hits it carries on)."""
        table = self.held
        if old is not None:
            held.hits = old.hits
            # Re-inserting moves the key to the end: eviction takes the oldest first.
            del table[name]
        elif len(table) >= self.max_size:
            oldest = next(iter(table))
            self.retire(oldest, table[oldest])
        table[name] = held
        self.failed.pop(name, None)

    def retire(self, name: str, held: Held) -> None:
        self.retired_hits[held.backend] = self.retired_hits.get(held.backend, 0) + held.hits
        del self.held[name]

    def forget(self, name: str) -> None:
        held = self.held.get(name)
        if held is not None:
            self.retire(name, held)
        self.failed.pop(name, None)

    def forget_all(self) -> None:
        for name, held in list(self.held.items()):
            self.retire(name, held)
        self.failed.clear()

    def fail(self, name: str, error: BaseException, now: float, until: float, streak: int) -> None:
        """Remember that ``name``'s load failed, until ``until``."""
        table = self.failed
        if until <= now and streak == 0:
            table.pop(name, None)
            return
        table.pop(name, None)  # re-inserted at the end: the table stays ordered by insertion
        # The oldest entries come first; drop the expired ones there, then the oldest if full.
        for _ in range(4):
            head = next(iter(table), None)
            if head is None or table[head].until > now:
                break
            del table[head]
        while len(table) >= self.max_size:
            del table[next(iter(table))]
        table[name] = Failed(copied(error), until, streak, now)
