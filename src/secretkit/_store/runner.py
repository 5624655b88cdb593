"""Backend calls on daemon worker threads, so a caller can stop waiting at a deadline.

A socket timeout bounds one read, not a whole call: a server that answers a byte at a
time never trips it. The only way to give a caller a total deadline without the SDK's
help is to make the call on another thread and stop waiting for it. The abandoned call
runs on (its SDK's own timeouts end it) but holds no lock, no flight and no caller.

Workers are daemon threads made on demand and let go when idle, so a hung call never
keeps the interpreter from exiting (``concurrent.futures`` joins its workers at exit).
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Call", "DeadlineExceeded", "Runner"]

T = TypeVar("T")

#: How long an idle worker waits for work before it ends.
IDLE_SECONDS = 30.0


class DeadlineExceeded(TimeoutError):
    """The waiter stopped waiting: the call did not finish in time (it may still be running)."""


class Call(Generic[T]):
    """One submitted call: wait for its result for at most a given time."""

    __slots__ = ("_done", "_error", "_result", "cancelled")

    def __init__(self) -> None:
        # A lock held until the call ends is a cheaper latch than an Event (no Condition).
        self._done = threading.Lock()
        self._done.acquire()
        self._result: T | None = None
        self._error: BaseException | None = None
        self.cancelled = False

    def result(self, timeout: float | None) -> T:
        """The call's result; :class:`DeadlineExceeded` if it has not finished within ``timeout``.

        An exception the call raised is raised here, so a backend's own ``TimeoutError``
        stays distinct from the deadline.
        """
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            # Not started yet: it never will be. Started: it runs on, and its result is dropped.
            self.cancelled = True
            raise DeadlineExceeded
        self._done.release()  # a second waiter (none today) would get through too
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._result  # type: ignore[return-value]

    def _run(self, fn: Callable[[], T]) -> None:
        if self.cancelled:
            return
        try:
            self._result = fn()
        except BaseException as exc:  # handed to the waiter, who decides what it means
            self._error = exc
        finally:
            self._done.release()


class Runner:
    """At most ``workers`` calls at once, each run in the submitter's ``contextvars`` context.

    Calls beyond the limit queue; a queued call whose waiter gave up is skipped.
    """

    def __init__(self, workers: int, name: str) -> None:
        if workers < 1:
            raise ValueError("a runner needs at least one worker")
        self.workers = workers
        self.name = name
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: deque[tuple[Call[Any], Callable[[], Any]]] = deque()
        self._threads = 0
        self._idle = 0
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Call[T]:
        """Start ``fn(*args)`` on a worker (or queue it) and return its :class:`Call`."""
        call: Call[T] = Call()
        context = contextvars.copy_context()
        job: Callable[[], T] = lambda: context.run(fn, *args)  # noqa: E731 - one closure, no helper class
        with self._lock:
            self._queue.append((call, job))
            if self._idle:
                self._ready.notify()
            elif self._threads < self.workers and not self._closed:
                self._threads += 1
                threading.Thread(target=self._work, name=self.name, daemon=True).start()
        return call

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    if self._closed:
                        self._threads -= 1
                        return
                    self._idle += 1
                    woken = self._ready.wait(IDLE_SECONDS)
                    self._idle -= 1
                    if not woken and not self._queue:
                        self._threads -= 1
                        return
                call, job = self._queue.popleft()
            call._run(job)
            del call, job  # a finished call's result must not live on in an idle worker's frame

    def close(self) -> None:
        """Let idle workers go; calls already queued still run."""
        with self._lock:
            self._closed = True
            self._ready.notify_all()
