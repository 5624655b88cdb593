"""How many calls one backend may have in flight: a limit that adapts to what the server says.

A cold start wants many calls at once (100 secrets at 8 in flight cost ~13 round trips);
a server that is struggling wants fewer. So the limit starts at a window, grows by one per
call that succeeds while the window is in use (it doubles per round trip, as TCP's slow
start does) up to the ceiling, and halves when the server says it is overloaded
(:class:`~secretkit._throttled.Throttled`: a 429 or 503). After a cut it grows by one per
round trip only, until 30 s pass without another refusal. A server's ``Retry-After``
holds every new call until it has passed; a caller whose deadline ends first is told at
once instead of sending.

Only calls that started after the last cut can cut again: a burst of 64 refusals to calls
sent together is one signal, not six halvings. The clock is injected (tests tick it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .._throttled import MAX_RETRY_AFTER, Throttled

__all__ = ["CALM", "START", "Limiter", "Paused"]

#: After this long without a refusal the limit doubles per round trip again (slow start), so
#: a server that was briefly overloaded (or sealed) is not crept back up to one call at a time.
CALM = 30.0
#: The limit a backend starts at (or its ceiling, if lower): enough that the slow start
#: reaches 100 calls in three round trips (16 + 32 + 64), few enough not to flood a server.
START = 16


class Paused(Exception):
    """No call may start before the caller's deadline: the server asked to wait longer."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class Limiter:
    """The adaptive in-flight limit of one backend (thread-safe)."""

    def __init__(
        self, ceiling: int, *, start: int = START, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ceiling < 1:
            raise ValueError("a concurrency ceiling must be >= 1")
        self.ceiling = ceiling
        self._clock = clock
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        #: Calls allowed in flight now.
        self.limit = min(max(start, 1), ceiling)
        #: At or above this the limit grows by one per round trip (a limit's worth of
        #: successes, counted in ``_credit``), not one per call; a cut sets it.
        self._threshold = ceiling
        self._credit = 0
        self.in_flight = 0
        #: No call starts before this (the server's Retry-After).
        self.resume_at = float("-inf")
        self._cut_at = float("-inf")
        #: When the limit was last reached (every slot taken, or a caller waiting).
        self._full_at = float("-inf")
        #: Times the limit was cut, for stats and tests.
        self.cuts = 0
        self._waiting = 0

    def acquire(self, timeout: float) -> float:
        """Take a slot, waiting at most ``timeout`` seconds; the start time to give ``release``.

        Raises :class:`Paused` when the server's wait outlasts ``timeout`` (nothing is sent)
        and ``TimeoutError`` when no slot freed in time.
        """
        clock = self._clock
        with self._lock:
            now = clock()
            end = now + timeout
            while True:
                if self.resume_at > now:
                    if self.resume_at >= end:
                        raise Paused(self.resume_at - now)
                    self._wait(self.resume_at - now)
                elif self.in_flight < self.limit:
                    self.in_flight += 1
                    if self.in_flight >= self.limit:
                        self._full_at = now
                    return now
                else:
                    self._full_at = now
                    if now >= end:
                        raise TimeoutError
                    self._wait(end - now)
                now = clock()

    def release(self, started: float, error: BaseException | None) -> None:
        """The call that took a slot at ``started`` ended (``error``: what it raised, if anything)."""
        with self._lock:
            self.in_flight -= 1
            if isinstance(error, Throttled):
                self._throttled(started, error.retry_after)
            elif error is None and self._full_at >= started:
                # Grow only when the limit was reached while this call ran: a trickle of
                # calls proves nothing about how many the server takes at once.
                if self._threshold < self.ceiling and self._clock() - self._cut_at > CALM:
                    self._threshold = self.ceiling
                if self.limit < self._threshold:
                    self.limit = min(self.limit + 1, self.ceiling)
                else:
                    self._credit += 1
                    if self._credit >= self.limit:
                        self._credit = 0
                        self.limit = min(self.limit + 1, self.ceiling)
            if self._waiting:  # notify_all is Python code: a cold read with no waiter skips it
                self._free.notify_all()

    def _wait(self, seconds: float) -> None:
        self._waiting += 1
        try:
            self._free.wait(seconds)
        finally:
            self._waiting -= 1

    def _throttled(self, started: float, wait: float | None) -> None:
        now = self._clock()
        if wait is not None and wait > 0:
            self.resume_at = max(self.resume_at, now + min(wait, MAX_RETRY_AFTER))
        if started > self._cut_at:
            self._cut_at = now
            self.limit = max(1, self.limit // 2)
            self._threshold = self.limit
            self._credit = 0
            self.cuts += 1

    def __repr__(self) -> str:
        return f"Limiter(limit={self.limit}, in_flight={self.in_flight}, ceiling={self.ceiling})"
