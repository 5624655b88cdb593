"""Attacks on the cold path's limits: a server that hangs every call, or asks for an endless pause."""

from __future__ import annotations

import threading

import pytest

from secretkit import BackendUnavailable, Fetched, SecretRef, SecretStore
from secretkit._store.concurrency import Limiter, Paused
from secretkit._throttled import MAX_RETRY_AFTER, Throttled, retry_after
from secretkit.backends import MemoryBackend


class Hanging(MemoryBackend):
    """Every call hangs until released, as against a server that accepts and never answers."""

    def __init__(self) -> None:
        super().__init__(scheme="hanging")
        self.release = threading.Event()
        self.busy = 0
        self.most = 0
        self._count = threading.Lock()

    def fetch(self, ref: SecretRef) -> Fetched:
        with self._count:
            self.busy += 1
            self.most = max(self.most, self.busy)
        self.release.wait(30)
        with self._count:
            self.busy -= 1
        return Fetched("late")


def test_a_server_that_never_answers_holds_at_most_the_ceiling_of_calls_and_threads() -> None:
    """40 cold reads of a hung backend: at most `concurrency` calls reach it, the rest end at the deadline."""
    backend = Hanging()
    store = SecretStore([], reference_backends=[backend], deadline=0.3, concurrency=4)
    errors: list[BaseException] = []

    def read(i: int) -> None:
        try:
            store.get(f"hanging://k{i}")
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(i,)) for i in range(40)]
    try:
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join(10)
        assert len(errors) == 40
        assert all(isinstance(e, BackendUnavailable) for e in errors)
        assert backend.most <= 4
        lane = [t for t in threading.enumerate() if t.name == "secretkit-hanging"]
        assert len(lane) <= 4
    finally:
        backend.release.set()
        store.close()


@pytest.mark.parametrize("header", ["31536000", "Fri, 31 Dec 9999 23:59:59 GMT", "1e308", "inf"])
def test_a_retry_after_of_any_size_pauses_a_backend_for_at_most_a_minute(header: str) -> None:
    """A hostile or broken Retry-After cannot stop a process from ever asking its server again."""
    wait = retry_after(header)
    assert wait is not None
    assert wait <= MAX_RETRY_AFTER
    now = [0.0]
    limiter = Limiter(8, clock=lambda: now[0])
    limiter.release(limiter.acquire(0), Throttled("refused", retry_after=wait))
    with pytest.raises(Paused):
        limiter.acquire(1.0)
    now[0] += MAX_RETRY_AFTER
    limiter.release(limiter.acquire(0), None)
