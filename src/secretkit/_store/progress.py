"""What is under way: loads in flight (single flight), refreshes queued or running, and the lock.

The one lock of a store guards this and the records. A forked child rebuilds all of it
(``reset``): none of the parent's threads exist there, so nothing here is under way.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .. import _fork
from .._errors import copied
from .._secret import Secret

__all__ = ["Flight", "Progress"]


# Guards the callback lists of every flight: taken only to add a callback or to finish.
_callbacks_lock = threading.Lock()


@_fork.in_child
def _new_callbacks_lock() -> None:
    global _callbacks_lock
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
        """The finished load's secret, or its error raised (a copy per caller)."""
        if self.error is not None:
            raise copied(self.error)
        assert self.result is not None
        return self.result


class Progress:
    """Flights by key, the refresh queue, and the lock and condition that guard them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        #: Wakes the refresh worker when a key is queued or the store closes.
        self.wakeup = threading.Condition(self.lock)
        self.idle_waiters = 0
        #: One load per key; its readers wait on it (single flight).
        self.flights: dict[str, Flight] = {}
        #: Keys due for a background refresh, in order, and the same as a set. A key stays in
        #: ``queued`` until its load holds a flight: to readers, a queued refresh is begun.
        self.queue: deque[str] = deque()
        self.queued: set[str] = set()
        #: Refresh batches running.
        self.refreshing = 0

    def begun(self, name: str) -> bool:
        """A load of ``name`` is in flight or queued (read without the lock: a hint)."""
        return name in self.flights or name in self.queued

    def changed(self) -> None:
        """Wake ``wait_idle`` callers; call with the lock held."""
        if self.idle_waiters:
            self.idle.notify_all()

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until nothing is queued, refreshing or in flight; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            self.idle_waiters += 1
            try:
                while self.queue or self.refreshing or self.flights:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self.idle.wait(remaining)
            finally:
                self.idle_waiters -= 1
        return True
