"""Background refresh: the due queue, the worker that drains it, and batches handed off.

A read past a value's refresh-ahead point queues its key and returns at once. One worker
thread takes everything queued as a batch and hands it to a refresh pool, so a batch hung
until its deadline never holds back the refreshes that come due after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .._lazylog import log
from .batching import Batches
from .policy import TimePolicy
from .progress import Progress
from .records import Records
from .resolving import Resolver
from .runner import Runner

__all__ = ["Refresher"]


# Refresh batches in progress at once.
_REFRESHERS = 4
# Seconds an idle worker waits for a refresh before its thread ends (the next starts another).
_IDLE = 60.0


class Refresher:
    """Queues keys due for refresh and refreshes them in batches, off the readers' threads."""

    def __init__(
        self,
        progress: Progress,
        records: Records,
        policy: TimePolicy,
        resolver: Resolver,
        batches: Batches,
        clock: Callable[[], float],
    ) -> None:
        self._progress = progress
        self._records = records
        self._policy = policy
        self._resolver = resolver
        self._batches = batches
        self._clock = clock
        self.closed = False
        self._after_fork()

    def _after_fork(self) -> None:
        self._worker: threading.Thread | None = None
        # Refresh batches; each hands its loads to the loader pool, never the other way
        # round, so the two pools cannot wait on each other.
        self._pool = Runner(_REFRESHERS, "secretkit-refresh")

    def schedule(self, name: str) -> None:
        """Queue ``name`` for a background refresh (unless it is queued or loading already)."""
        progress = self._progress
        with progress.lock:
            if self.closed or name in progress.queued or name in progress.flights:
                return
            progress.queue.append(name)
            progress.queued.add(name)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._drain_queue, name="secretkit-refresh", daemon=True
                )
                self._worker.start()
            progress.wakeup.notify()

    def _drain_queue(self) -> None:
        """The worker's loop: take what is queued as one batch, hand it to the pool, wait for more."""
        progress = self._progress
        while True:
            with progress.lock:
                while not progress.queue and not self.closed:
                    if not progress.wakeup.wait(timeout=_IDLE) and not progress.queue:
                        # Idle for a minute: let the thread go; the next refresh starts another.
                        self._worker = None
                        return
                if self.closed:
                    self._worker = None
                    return
                batch = list(progress.queue)
                progress.queue.clear()
                # The names stay in `queued` until their loads hold flights: a batch waiting
                # for a busy pool is still a refresh begun, to readers and to schedule().
                progress.refreshing += 1
            # Handed off, not run here: a batch hung until its deadline must not hold back
            # the refreshes that come due after it (another backend's, most of all).
            self._pool.submit(self._refresh_job, batch)

    def _refresh_job(self, batch: list[str]) -> None:
        progress = self._progress
        try:
            self._refresh(batch)
        except Exception:
            log.exception("secretkit: background refresh failed unexpectedly")
        finally:
            with progress.lock:
                progress.queued.difference_update(batch)
                progress.refreshing -= 1
                progress.changed()

    def _refresh(self, names: list[str]) -> None:
        now = self._clock()
        held = self._records.held
        # A name queued twice may have been refreshed by the first batch already.
        names = [n for n in names if (h := held.get(n)) is None or now >= h.refresh_at]
        if not names:
            return
        # Secrets of a batching backend that are close to due ride along with the ones that
        # are due, so a set of secrets loaded together is refreshed in one call.
        batching = {s for s in {self._resolver.key_scheme(n) for n in names} if self._resolver.batches(s)}
        if batching:
            until = self._policy.ride_along_until(now)
            extra = [
                key
                for key, h in list(held.items())
                if key not in names
                and h.backend in batching
                and "://" in key
                and h.refresh_at <= until
                and now >= h.retry_at
            ]
            names = names + extra
        self._batches.load(names, reason="refresh")

    def close(self) -> None:
        """Stop the worker (queued batches still run); call with the store's lock held."""
        self.closed = True
        self._progress.wakeup.notify_all()

    def close_pool(self) -> None:
        self._pool.close()
