"""The per-backend concurrency limit: it grows while calls succeed and backs off when the server says so.

The limiter is driven with a fake clock (nothing sleeps); the store-level tests count
backend calls and calls in flight, never time.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from secretkit import BackendUnavailable, SecretRef, SecretStore
from secretkit._store.concurrency import CALM, START, Limiter, Paused
from secretkit._throttled import MAX_RETRY_AFTER, Throttled, retry_after
from secretkit.backends import MemoryBackend


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wave(limiter: Limiter, error: BaseException | None = None) -> int:
    """Fill the limit, then end every call the same way; how many were let through."""
    started = []
    while True:
        try:
            started.append(limiter.acquire(0))
        except TimeoutError:
            break
    for at in started:
        limiter.release(at, error)
    return len(started)


def test_the_limit_doubles_per_round_trip_while_calls_succeed_up_to_the_ceiling() -> None:
    """16, 32, 64 calls in three waves: 100 secrets in three round trips, never above the ceiling."""
    limiter = Limiter(64, clock=FakeClock())
    assert [wave(limiter) for _ in range(4)] == [START, 32, 64, 64]
    assert limiter.limit == 64


def test_a_trickle_of_calls_does_not_grow_the_limit() -> None:
    """One call at a time, succeeding forever, proves nothing about 64 at once."""
    limiter = Limiter(64, clock=FakeClock())
    for _ in range(100):
        limiter.release(limiter.acquire(0), None)
    assert limiter.limit == START


def test_a_burst_of_refusals_to_calls_sent_together_halves_the_limit_once() -> None:
    """32 calls refused with 429 together are one signal: the limit halves once, not five times."""
    clock = FakeClock()
    limiter = Limiter(64, clock=clock)
    wave(limiter)
    assert limiter.limit == 32
    clock.now += 0.05
    assert wave(limiter, Throttled("429", status=429)) == 32
    assert (limiter.limit, limiter.cuts) == (16, 1)


def test_a_refusal_to_a_call_sent_after_the_cut_cuts_again() -> None:
    """Still refused at the lower limit: it halves again, down to one call, never zero."""
    clock = FakeClock()
    limiter = Limiter(8, clock=clock)
    for _ in range(10):
        clock.now += 0.05
        wave(limiter, Throttled("503", status=503))
    assert limiter.limit == 1
    assert limiter.acquire(0) == clock.now


def test_after_a_cut_the_limit_grows_by_one_per_round_trip() -> None:
    """Past a cut the limit probes upward slowly (additive increase), not by doubling."""
    clock = FakeClock()
    limiter = Limiter(64, clock=clock)
    wave(limiter)
    clock.now += 0.05
    wave(limiter, Throttled("429"))
    assert limiter.limit == 16
    grown = []
    for _ in range(3):
        clock.now += 0.05
        wave(limiter)
        grown.append(limiter.limit)
    assert grown == [17, 18, 19]


def test_retry_after_holds_every_new_call_and_a_caller_whose_deadline_ends_first_is_told_at_once() -> None:
    """A 429 with Retry-After: 2 means nothing is sent for 2 s; a 1 s deadline fails without waiting."""
    clock = FakeClock()
    limiter = Limiter(64, clock=clock)
    limiter.release(limiter.acquire(0), Throttled("429", retry_after=2.0, status=429))
    with pytest.raises(Paused) as paused:
        limiter.acquire(1.0)
    assert paused.value.wait == pytest.approx(2.0)
    assert limiter.in_flight == 0
    clock.now += 2.0
    limiter.release(limiter.acquire(0), None)


def test_a_retry_after_of_a_year_pauses_at_most_the_cap() -> None:
    """A hostile or broken Retry-After cannot stop a process from ever asking again."""
    clock = FakeClock()
    limiter = Limiter(64, clock=clock)
    limiter.release(limiter.acquire(0), Throttled("429", retry_after=365 * 86400.0))
    with pytest.raises(Paused):
        limiter.acquire(MAX_RETRY_AFTER - 1)
    clock.now += MAX_RETRY_AFTER
    limiter.release(limiter.acquire(0), None)


def test_a_full_limit_makes_a_caller_wait_for_a_slot_and_the_next_release_gives_it() -> None:
    """Calls beyond the limit wait (never exceed it); one ending lets exactly one more through."""
    limiter = Limiter(1)
    first = limiter.acquire(0)
    with pytest.raises(TimeoutError):
        limiter.acquire(0)
    got: list[float] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.acquire(10)))
    waiter.start()
    time.sleep(0.05)
    assert got == []
    limiter.release(first, None)
    waiter.join(10)
    assert len(got) == 1
    assert limiter.in_flight == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), (b"0.5", 0.5), ("-4", 0.0), ("", None), ("soon", None), (None, None), ("nan", None)],
)
def test_retry_after_is_read_as_seconds_capped_and_never_negative(
    header: object, seconds: float | None
) -> None:
    """Delta-seconds are read; garbage is ignored rather than trusted."""
    assert retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    """An HTTP date is the wait until then, by the wall clock given."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after(header, now.timestamp()) == pytest.approx(30.0)
    assert (
        retry_after(format_datetime(now + timedelta(days=2), usegmt=True), now.timestamp()) == MAX_RETRY_AFTER
    )


class Counting(MemoryBackend):
    """A remote backend without batch calls that records how many calls it had at once."""

    def __init__(self, count: int, delay: float) -> None:
        super().__init__({f"k{i}": f"v{i}" for i in range(count)}, delay=delay)
        self.busy = 0
        self.most = 0
        self._count_lock = threading.Lock()

    def fetch(self, ref: SecretRef):  # type: ignore[no-untyped-def]
        with self._count_lock:
            self.busy += 1
            self.most = max(self.most, self.busy)
        try:
            return super().fetch(ref)
        finally:
            with self._count_lock:
                self.busy -= 1


def test_a_prefetch_of_100_runs_many_calls_at_once_but_never_more_than_the_ceiling() -> None:
    """100 secrets of a backend without batch calls overlap (not 8 at a time), up to concurrency."""
    backend = Counting(100, delay=0.05)
    store = SecretStore([], reference_backends=[backend], concurrency=40)
    try:
        assert store.prefetch([f"memory://k{i}" for i in range(100)]) == {}
        assert backend.calls == 100
        assert START < backend.most <= 40
    finally:
        store.close()


def test_fields_of_one_secret_in_a_prefetch_are_read_with_one_call() -> None:
    """``#user`` and ``#password`` of one JSON secret cost one read, not one per field."""
    backend = MemoryBackend({"db": '{"user": "app", "password": "pw"}'})
    store = SecretStore([], reference_backends=[backend])
    try:
        assert store.prefetch(["memory://db#user", "memory://db#password"]) == {}
        assert backend.calls == 1
        assert store.get("memory://db#user").reveal() == "app"
    finally:
        store.close()


def test_a_server_asking_to_wait_is_not_asked_again_before_its_retry_after() -> None:
    """After a 429 with Retry-After: 30, another cold read fails at once without a request."""
    backend = MemoryBackend({"a": "1", "b": "2"})
    store = SecretStore([], reference_backends=[backend], deadline=2.0)
    try:
        backend.fail(Throttled("HTTP 429 from the test server", retry_after=30.0, status=429))
        with pytest.raises(BackendUnavailable):
            store.get("memory://a")
        assert backend.calls == 1
        backend.fail(None)
        started = time.perf_counter()
        with pytest.raises(BackendUnavailable, match="asked secretkit to wait") as raised:
            store.get("memory://b")
        assert backend.calls == 1
        assert time.perf_counter() - started < 1.5  # told at once, not at the 2 s deadline
        assert isinstance(raised.value, Throttled)
        assert (raised.value.name, raised.value.backend) == ("memory://b", "memory")
    finally:
        store.close()


def test_after_a_calm_spell_the_limit_doubles_per_round_trip_again() -> None:
    """A server overloaded (or sealed) for a moment is not crept back up one call per round trip."""
    clock = FakeClock()
    limiter = Limiter(64, clock=clock)
    for _ in range(5):
        clock.now += 0.05
        wave(limiter, Throttled("503", status=503))
    assert limiter.limit == 1
    clock.now += CALM + 1
    grown = []
    for _ in range(4):
        wave(limiter)
        grown.append(limiter.limit)
    assert grown == [2, 4, 8, 16]


class ThreadNoting(MemoryBackend):
    """Records the thread each fetch ran on."""

    def __init__(self, enforced: float | None) -> None:
        super().__init__({"a": "1"})
        self.enforced_deadline = enforced
        self.threads: list[threading.Thread] = []

    def fetch(self, ref: SecretRef):  # type: ignore[no-untyped-def]
        self.threads.append(threading.current_thread())
        return super().fetch(ref)


@pytest.mark.parametrize(("enforced", "inline"), [(2.0, True), (5.0, True), (9.0, False), (None, False)])
def test_only_a_backend_whose_transport_ends_calls_within_the_deadline_is_called_on_the_readers_thread(
    enforced: float | None, inline: bool
) -> None:
    """No lane handoff when the transport keeps the deadline promise itself; a lane otherwise."""
    backend = ThreadNoting(enforced)
    store = SecretStore([], reference_backends=[backend], deadline=5.0)
    try:
        assert store.get("memory://a").reveal() == "1"
    finally:
        store.close()
    assert (backend.threads == [threading.current_thread()]) is inline
