"""Cache semantics: TTL and jitter, single flight, refresh-ahead, stale-if-error, backoff,
negative caching, rotation, size bounds, invalidation, statistics and events."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from secretkit import (
    AccessEvent,
    BackendUnavailable,
    Fetched,
    Secret,
    SecretNotFound,
    SecretRef,
    SecretStore,
)
from secretkit.backends import MemoryBackend
from secretkit.testing import FakeClock


def store_with(backend: MemoryBackend, clock: FakeClock, **kw: Any) -> SecretStore:
    kw.setdefault("ttl", 100)
    kw.setdefault("jitter", 0.0)
    return SecretStore([backend], clock=clock, **kw)


class GatedBackend(MemoryBackend):
    """A memory backend whose fetches block until the test opens the gate."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def fetch(self, ref: SecretRef) -> Fetched:
        self.entered.set()
        if not self.gate.wait(10):
            raise TimeoutError("gate never opened")
        return super().fetch(ref)


# -- TTL and jitter ---------------------------------------------------------------------


def test_a_fresh_value_is_served_from_the_cache(clock: FakeClock) -> None:
    """Reads within the TTL do not call the backend again."""
    backend = MemoryBackend({"K": "v1"})
    store = store_with(backend, clock)
    for _ in range(5):
        assert store.get("K").reveal() == "v1"
        clock.advance(10)
    assert backend.calls == 1


def test_reads_return_the_same_secret_object(clock: FakeClock) -> None:
    """A hit allocates nothing: it returns the cached Secret itself."""
    store = store_with(MemoryBackend({"K": "v1"}), clock)
    assert store.get("K") is store.get("K")


def test_an_expired_value_is_fetched_again(clock: FakeClock) -> None:
    """Past the TTL a read fetches the current value."""
    backend = MemoryBackend({"K": "v1"})
    store = store_with(backend, clock, refresh_ahead=1.0)
    store.get("K")
    backend.set("K", "v2")
    clock.advance(101)
    assert store.get("K").reveal() == "v2"
    assert backend.calls == 2


def test_jitter_shortens_life_within_bounds_and_never_to_zero(clock: FakeClock) -> None:
    """With jitter 0.1 every life lies in [0.9*ttl, ttl]: spread out, never near zero."""
    values = iter([0.0, 0.5, 0.999])
    store = SecretStore(
        [MemoryBackend({"A": "a", "B": "b", "C": "c"})],
        ttl=100,
        jitter=0.1,
        clock=clock,
        rng=lambda: next(values),
    )
    lives = []
    for name in "ABC":
        store.get(name)
        entry = store._entries[name]
        lives.append(entry.expires_at - entry.loaded_at)
    assert lives == pytest.approx([100.0, 95.0, 90.01])


def test_jitter_spreads_expiry_across_keys(clock: FakeClock) -> None:
    """Keys loaded at the same instant expire at different instants."""
    names = {f"K{i}": "v" for i in range(50)}
    store = SecretStore([MemoryBackend(names)], ttl=300, clock=clock)
    for name in names:
        store.get(name)
    expiries = {round(store._entries[n].expires_at, 6) for n in names}
    assert len(expiries) > 40
    assert min(expiries) >= clock.now + 270 and max(expiries) <= clock.now + 300


def test_ttl_zero_means_every_read_fetches(clock: FakeClock) -> None:
    """ttl=0 disables caching."""
    backend = MemoryBackend({"K": "v"})
    store = store_with(backend, clock, ttl=0)
    store.get("K")
    store.get("K")
    assert backend.calls == 2


# -- single flight ----------------------------------------------------------------------


def test_concurrent_cold_readers_share_one_fetch() -> None:
    """32 threads reading a cold key make exactly one backend call and all get its value."""
    backend = GatedBackend({"K": "shared"})
    store = SecretStore([backend])
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(store.get("K").reveal())) for _ in range(32)]
    for t in threads:
        t.start()
    assert backend.entered.wait(5)
    time.sleep(0.05)  # let the other readers reach the flight
    backend.gate.set()
    for t in threads:
        t.join(10)
    assert results == ["shared"] * 32
    assert backend.calls == 1


def test_concurrent_cold_readers_share_one_error() -> None:
    """When the one fetch fails, every waiting reader gets that error; the backend saw one call."""
    backend = GatedBackend()
    # negative_ttl covers a reader that arrives after the fetch ended (a slow thread start):
    # it gets the remembered error instead of fetching again.
    store = SecretStore([backend], negative_ttl=60)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            store.get("MISSING")
        except SecretNotFound as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    assert backend.entered.wait(5)
    time.sleep(0.05)
    backend.gate.set()
    for t in threads:
        t.join(10)
    assert len(errors) == 8
    assert backend.calls == 1


# -- refresh-ahead ----------------------------------------------------------------------


def test_reader_never_waits_on_refresh(clock: FakeClock) -> None:
    """A read past refresh-ahead returns the cached value at once and starts one background refresh."""
    backend = GatedBackend({"K": "v1"})
    backend.gate.set()
    store = store_with(backend, clock, refresh_ahead=0.5)
    store.get("K")
    backend.set("K", "v2")
    backend.gate.clear()
    clock.advance(60)  # past 50% of the TTL, before expiry
    started = time.monotonic()
    values = [store.get("K").reveal() for _ in range(20)]
    elapsed = time.monotonic() - started
    assert values == ["v1"] * 20
    assert elapsed < 5  # the gate is closed: a reader that waited would hang for 10 s
    assert backend.entered.wait(5)
    backend.gate.set()
    assert store.wait_idle(5)
    assert store.get("K").reveal() == "v2"
    assert backend.calls == 2  # one load, one refresh, despite 20 reads in the window


def test_refresh_ahead_fires_on_rotate_once(clock: FakeClock) -> None:
    """A background refresh that brings a new version calls on_rotate with old and new."""
    backend = MemoryBackend({"K": "v1"})
    store = store_with(backend, clock)
    seen: list[tuple[str, str]] = []
    store.on_rotate("K", lambda old, new: seen.append((old.reveal(), new.reveal())))
    store.get("K")
    backend.set("K", "v2")
    clock.advance(85)
    store.get("K")
    assert store.wait_idle(5)
    store.get("K")
    assert seen == [("v1", "v2")]


def test_refresh_without_change_does_not_fire(clock: FakeClock) -> None:
    """A refresh that brings the same version fires no rotation."""
    backend = MemoryBackend({"K": "v1"})
    store = store_with(backend, clock, refresh_ahead=1.0)
    fired: list[object] = []
    store.on_rotate("K", lambda old, new: fired.append(new))
    store.get("K")
    clock.advance(101)
    store.get("K")
    assert fired == []
    assert backend.calls == 2


def test_rotation_is_detected_by_value_when_the_backend_has_no_versions(clock: FakeClock) -> None:
    """For backends without versions a changed value counts as a rotation."""
    env: dict[str, str] = {"K": "a"}
    from secretkit.backends import EnvBackend

    store = SecretStore([EnvBackend(env)], ttl=10, jitter=0, clock=clock, refresh_ahead=1.0)
    fired: list[str] = []
    store.on_rotate("K", lambda old, new: fired.append(new.reveal()))
    store.get("K")
    clock.advance(11)
    store.get("K")
    env["K"] = "b"
    clock.advance(11)
    store.get("K")
    assert fired == ["b"]


def test_on_rotate_unsubscribe_and_decorator(clock: FakeClock) -> None:
    """on_rotate returns an unsubscribe function, and works as a decorator."""
    backend = MemoryBackend({"K": "v1"})
    store = store_with(backend, clock, refresh_ahead=1.0)
    a: list[str] = []
    b: list[str] = []
    stop = store.on_rotate("K", lambda old, new: a.append(new.reveal()))

    @store.on_rotate("K")
    def on_b(old: Secret[Any], new: Secret[Any]) -> None:
        b.append(new.reveal())

    store.get("K")
    backend.set("K", "v2")
    clock.advance(101)
    store.get("K")
    stop()
    backend.set("K", "v3")
    clock.advance(101)
    store.get("K")
    assert a == ["v2"] and b == ["v2", "v3"]


def test_a_failing_rotate_callback_does_not_break_reads_or_others(clock: FakeClock) -> None:
    """An exception in one subscriber is logged; the read succeeds and other subscribers run."""
    backend = MemoryBackend({"K": "v1"})
    store = store_with(backend, clock, refresh_ahead=1.0)
    ok: list[str] = []

    def boom(old: Secret[Any], new: Secret[Any]) -> None:
        raise RuntimeError("subscriber bug")

    store.on_rotate("K", boom)
    store.on_rotate("K", lambda old, new: ok.append(new.reveal()))
    store.get("K")
    backend.set("K", "v2")
    clock.advance(101)
    assert store.get("K").reveal() == "v2"
    assert ok == ["v2"]


# -- stale-if-error and backoff ---------------------------------------------------------


def test_stale_value_is_served_while_the_backend_is_down(clock: FakeClock) -> None:
    """After expiry, a failing backend means the last good value, up to max_stale."""
    backend = MemoryBackend({"K": "good"})
    store = store_with(backend, clock, refresh_ahead=1.0, max_stale=500, backoff_base=1, backoff_max=8)
    store.get("K")
    backend.fail(ConnectionError("down"))
    clock.advance(101)
    assert store.get("K").reveal() == "good"
    clock.advance(300)
    assert store.get("K").reveal() == "good"
    assert store.stats()["stale_served"] >= 2


def test_the_error_surfaces_after_max_stale(clock: FakeClock) -> None:
    """Once max_stale has passed, the backend's failure surfaces as BackendUnavailable."""
    backend = MemoryBackend({"K": "good"})
    store = store_with(backend, clock, refresh_ahead=1.0, max_stale=50, backoff_base=1, backoff_max=4)
    store.get("K")
    backend.fail(ConnectionError("connection refused"))
    clock.advance(101)
    assert store.get("K").reveal() == "good"
    clock.advance(60)
    with pytest.raises(BackendUnavailable) as info:
        store.get("K")
    assert isinstance(info.value.__cause__, ConnectionError)
    assert "memory" in str(info.value) and "'K'" in str(info.value)


def test_a_dead_backend_sees_one_attempt_per_backoff_step(clock: FakeClock) -> None:
    """Many reads while the backend is down cause at most one attempt per key per backoff step."""
    backend = MemoryBackend({"K": "good"})
    values = iter([1.0] * 1000)  # rng=1 → backoff step is exactly base * 2**n, capped
    store = SecretStore(
        [backend],
        ttl=100,
        jitter=0.0,
        refresh_ahead=1.0,
        max_stale=10_000,
        backoff_base=2,
        backoff_max=16,
        clock=clock,
        rng=lambda: next(values),
    )
    store.get("K")
    backend.fail(ConnectionError("down"))
    clock.advance(101)
    calls_before = backend.calls
    attempts = []
    for _ in range(60):  # one minute of reads, one per second, each a burst of 10
        for _ in range(10):
            assert store.get("K").reveal() == "good"
        assert store.wait_idle(5)
        attempts.append(backend.calls - calls_before)
        clock.advance(1)
    # Backoff steps 2, 4, 8, 16, 16, 16 ... seconds: about 6 attempts in 60 s, not 600.
    assert 4 <= attempts[-1] <= 8


def test_access_denied_on_refresh_is_not_served_stale(clock: FakeClock) -> None:
    """A refresh refused with AccessDenied stops the old value at its TTL instead of serving it stale."""
    from secretkit import AccessDenied

    backend = MemoryBackend({"K": "v1"})
    store = store_with(backend, clock, refresh_ahead=0.5, max_stale=1000)
    store.get("K")
    backend.fail(AccessDenied("revoked"))
    clock.advance(60)  # in the refresh window: the background refresh is refused
    assert store.get("K").reveal() == "v1"
    assert store.wait_idle(5)
    clock.advance(50)  # past the TTL
    with pytest.raises(AccessDenied):
        store.get("K")


def test_the_store_recovers_when_the_backend_returns(clock: FakeClock) -> None:
    """After an outage, the next attempt past the backoff brings the new value back."""
    backend = MemoryBackend({"K": "v1"})
    store = store_with(backend, clock, refresh_ahead=1.0, backoff_base=1, backoff_max=2)
    store.get("K")
    backend.fail(ConnectionError("down"))
    clock.advance(101)
    assert store.get("K").reveal() == "v1"
    backend.fail(None)
    backend.set("K", "v2")
    clock.advance(3)
    store.get("K")
    assert store.wait_idle(5)
    assert store.get("K").reveal() == "v2"


def test_cold_failures_back_off_too(clock: FakeClock) -> None:
    """A key that was never loaded is not hammered while its backend is down."""
    backend = MemoryBackend({"K": "v"})
    backend.fail(ConnectionError("down"))
    store = store_with(backend, clock, backoff_base=5, backoff_max=5)
    for _ in range(20):
        with pytest.raises(BackendUnavailable):
            store.get("K")
    assert backend.calls == 1
    clock.advance(5.1)
    backend.fail(None)
    assert store.get("K").reveal() == "v"


def test_non_secretkit_exceptions_become_backend_unavailable_with_cause(clock: FakeClock) -> None:
    """A third-party backend's own exception is wrapped, with the cause chained."""

    class Flaky:
        scheme = "flaky"

        def fetch(self, ref: SecretRef) -> Fetched:
            raise OSError("socket closed")

        def close(self) -> None:
            pass

    store = SecretStore([Flaky()], clock=clock)
    with pytest.raises(BackendUnavailable) as info:
        store.get("K")
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.backend == "flaky" and info.value.name == "K"


# -- negative caching -------------------------------------------------------------------


def test_not_found_is_cached_for_negative_ttl(clock: FakeClock) -> None:
    """A typo does not become a request storm: not-found is remembered briefly."""
    backend = MemoryBackend()
    store = store_with(backend, clock, negative_ttl=5)
    for _ in range(10):
        with pytest.raises(SecretNotFound):
            store.get("TYPO")
    assert backend.calls == 1
    backend.set("TYPO", "now-exists")
    clock.advance(6)
    assert store.get("TYPO").reveal() == "now-exists"


def test_access_denied_is_cached_for_negative_ttl(clock: FakeClock) -> None:
    """A refused read is remembered like a missing one: no request storm on a denied name."""
    from secretkit import AccessDenied

    backend = MemoryBackend({"K": "v"})
    backend.fail(AccessDenied("no policy"))
    store = store_with(backend, clock, negative_ttl=5)
    for _ in range(10):
        with pytest.raises(AccessDenied):
            store.get("K")
    assert backend.calls == 1
    backend.fail(None)
    clock.advance(6)
    assert store.get("K").reveal() == "v"


def test_not_found_names_every_backend_tried(clock: FakeClock) -> None:
    """SecretNotFound lists each backend of the chain it asked."""
    store = SecretStore([MemoryBackend(scheme="first"), MemoryBackend(scheme="second")], clock=clock)
    with pytest.raises(SecretNotFound, match=r"tried: first, second") as info:
        store.get("NOPE")
    assert isinstance(info.value, KeyError) and isinstance(info.value, LookupError)
    assert info.value.backends == ("first", "second")


def test_a_secret_deleted_at_the_source_stops_being_served(clock: FakeClock) -> None:
    """When a refresh finds the secret gone, the store stops serving it."""
    backend = MemoryBackend({"K": "v"})
    store = store_with(backend, clock, refresh_ahead=1.0)
    store.get("K")
    backend.delete("K")
    clock.advance(101)
    with pytest.raises(SecretNotFound):
        store.get("K")


# -- size, invalidation -----------------------------------------------------------------


def test_size_is_bounded(clock: FakeClock) -> None:
    """The cache holds at most max_size entries, evicting the oldest loaded."""
    backend = MemoryBackend({f"K{i}": "v" for i in range(10)})
    store = store_with(backend, clock, max_size=3)
    for i in range(10):
        store.get(f"K{i}")
    assert set(store._entries) == {"K7", "K8", "K9"}
    assert store.stats()["size"] == 3


def test_invalidate_one_and_all(clock: FakeClock) -> None:
    """invalidate(name) forgets one secret; invalidate() forgets all."""
    backend = MemoryBackend({"A": "a", "B": "b"})
    store = store_with(backend, clock)
    store.get("A")
    store.get("B")
    store.invalidate("A")
    store.get("A")
    store.get("B")
    assert backend.calls == 3
    store.invalidate()
    store.get("A")
    store.get("B")
    assert backend.calls == 5


def test_refresh_forces_a_fetch_and_reports_rotation(clock: FakeClock) -> None:
    """refresh(name) fetches now even when the value is fresh."""
    backend = MemoryBackend({"K": "v1"})
    store = store_with(backend, clock)
    fired: list[str] = []
    store.on_rotate("K", lambda old, new: fired.append(new.reveal()))
    store.get("K")
    backend.set("K", "v2")
    assert store.refresh("K").reveal() == "v2"
    assert store.get("K").reveal() == "v2"
    assert fired == ["v2"]


# -- backend-provided TTL (leases) ------------------------------------------------------


def test_a_backend_ttl_caps_the_life(clock: FakeClock) -> None:
    """A Fetched.ttl shorter than the store's TTL governs that value's life."""

    class Leased(MemoryBackend):
        def fetch(self, ref: SecretRef) -> Fetched:
            f = super().fetch(ref)
            return Fetched(f.value, f.version, ttl=10)

    backend = Leased({"K": "v"})
    store = store_with(backend, clock, ttl=300, refresh_ahead=1.0)
    store.get("K")
    clock.advance(11)
    store.get("K")
    assert backend.calls == 2


def test_a_value_past_its_backend_ttl_is_never_served_stale(clock: FakeClock) -> None:
    """A leased or expiring value is not served stale past the end of its validity."""

    class Leased(MemoryBackend):
        def fetch(self, ref: SecretRef) -> Fetched:
            f = super().fetch(ref)
            return Fetched(f.value, f.version, ttl=30)

    backend = Leased({"K": "lease-1"})
    store = store_with(
        backend, clock, ttl=20, refresh_ahead=1.0, max_stale=3600, backoff_base=1, backoff_max=2
    )
    store.get("K")
    backend.fail(ConnectionError("down"))
    clock.advance(21)  # past the store's TTL, inside the lease: served stale
    assert store.get("K").reveal() == "lease-1"
    clock.advance(10)  # past the lease
    with pytest.raises(BackendUnavailable):
        store.get("K")


# -- statistics and events --------------------------------------------------------------


def test_stats_count_hits_misses_fetches_errors_per_backend(clock: FakeClock) -> None:
    """stats() reports totals and per-backend counters, never values."""
    backend = MemoryBackend({"K": "value-never-in-stats"})
    store = store_with(backend, clock, negative_ttl=0)
    store.get("K")
    store.get("K")
    store.get("K")
    with pytest.raises(SecretNotFound):
        store.get("MISSING")
    stats = store.stats()
    # The read that found nothing went to the backend too: a miss, by its outcome.
    assert stats["hits"] == 2 and stats["misses"] == 2 and stats["fetches"] == 1
    assert stats["missed"] == {"loaded": 1, "not_found": 1}
    assert stats["not_found"] == 1
    assert stats["backends"]["memory"]["hits"] == 2
    assert "value-never-in-stats" not in repr(stats)


def test_every_access_emits_an_event_without_the_value(clock: FakeClock) -> None:
    """The access hook sees name, backend, version, hit/miss and outcome."""
    events: list[AccessEvent] = []
    backend = MemoryBackend({"K": "value-never-in-events"})
    store = SecretStore([backend], clock=clock, on_access=events.append, negative_ttl=0)
    store.get("K")
    store.get("K")
    with pytest.raises(SecretNotFound):
        store.get("NOPE")
    assert [(e.name, e.backend, e.version, e.hit, e.outcome) for e in events] == [
        ("K", "memory", "1", False, "loaded"),
        ("K", "memory", "1", True, "hit"),
        ("NOPE", "memory", None, False, "not_found"),
    ]
    assert all("value-never-in-events" not in repr(e) for e in events)


def test_a_failing_listener_does_not_break_reads(clock: FakeClock) -> None:
    """An exception in an access listener is logged, not raised."""
    store = SecretStore([MemoryBackend({"K": "v"})], clock=clock)

    def bad(event: AccessEvent) -> None:
        raise RuntimeError("metrics down")

    remove = store.add_listener(bad)
    assert store.get("K").reveal() == "v"
    remove()
    assert store.listeners() == ()


def test_close_closes_backends_once_and_is_idempotent() -> None:
    """close() closes each backend and can be called again."""
    backend = MemoryBackend({"K": "v"})
    with SecretStore([backend]) as store:
        store.get("K")
    assert backend.closed
    store.close()


# -- errors raised to many readers -------------------------------------------------------


def test_each_reader_gets_its_own_error_object(clock: FakeClock) -> None:
    """A remembered error is raised as a fresh copy: no caller's frames pile up on another's."""
    store = store_with(MemoryBackend(), clock, negative_ttl=60)
    seen: list[BaseException] = []
    for _ in range(50):
        try:
            store.get("MISSING")
        except SecretNotFound as exc:
            seen.append(exc)
    assert len({id(e) for e in seen}) == 50
    depth = 0
    tb = seen[-1].__traceback__
    while tb is not None:
        depth += 1
        tb = tb.tb_next
    assert depth < 10
    assert all(e.backends == ("memory",) for e in seen)


def test_one_callers_context_does_not_show_in_anothers_error(clock: FakeClock) -> None:
    """An error remembered while one caller handled an exception carries no trace of it to the next."""
    store = store_with(MemoryBackend(), clock, negative_ttl=60)
    try:
        raise ValueError("first caller's private state")
    except ValueError:
        with pytest.raises(SecretNotFound):
            store.get("MISSING")
    with pytest.raises(SecretNotFound) as info:
        store.get("MISSING")
    assert info.value.__context__ is None


def test_errors_through_the_store_carry_no_backend_frames(clock: FakeClock) -> None:
    """A traceback with locals of a store error shows none of the backend's locals (raw values)."""
    import traceback

    class Leaky:
        scheme = "leaky"

        def fetch(self, ref: SecretRef) -> Fetched:
            raw_response = {"SecretString": "raw-value-in-a-local"}  # noqa: F841 - the point of the test
            raise OSError("connection reset")

        def close(self) -> None:
            pass

    backend = MemoryBackend({"PLAIN": "plain-value-never-shown", "J": '{"a": "json-value-never-shown"}'})
    store = SecretStore([backend, Leaky()], clock=clock, negative_ttl=0)
    texts = []
    for key in ["memory://PLAIN#field", "memory://J#a.missing", "leaky://x"]:
        with pytest.raises(Exception) as info:
            store.get(key)
        # Formatted at once: this test's own frame (in the traceback too) holds no value yet.
        texts.append(
            "".join(traceback.TracebackException.from_exception(info.value, capture_locals=True).format())
        )
    for text in texts:
        for needle in ["plain-value-never-shown", "json-value-never-shown", "raw-value-in-a-local"]:
            assert needle not in text


def test_an_interrupted_fetch_does_not_block_later_readers() -> None:
    """A BaseException (KeyboardInterrupt, a green-thread timeout) in a fetch ends its flight."""

    class Interrupting(MemoryBackend):
        interrupt = True

        def fetch(self, ref: SecretRef) -> Fetched:
            if self.interrupt:
                self.interrupt = False
                raise KeyboardInterrupt
            return super().fetch(ref)

    store = SecretStore([Interrupting({"K": "v"})])
    with pytest.raises(KeyboardInterrupt):
        store.get("K")
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(store.get("K").reveal()))
    reader.start()
    reader.join(5)
    assert result == ["v"]
    assert store.wait_idle(1)


def test_invalidating_one_key_does_not_discard_a_load_of_another(clock: FakeClock) -> None:
    """invalidate("B") while A is loading keeps A's new value, and A's rotation fires once."""
    backend = GatedBackend({"A": "a1", "B": "b"})
    backend.gate.set()
    store = store_with(backend, clock, refresh_ahead=1.0)
    rotations: list[tuple[str, str]] = []
    store.on_rotate("A", lambda old, new: rotations.append((old.reveal(), new.reveal())))
    store.get("A")
    backend.set("A", "a2")
    backend.gate.clear()
    backend.entered.clear()
    refresher = threading.Thread(target=store.refresh, args=("A",))
    refresher.start()
    assert backend.entered.wait(5)
    store.invalidate("B")
    backend.gate.set()
    refresher.join(5)
    assert store.get("A").reveal() == "a2"
    clock.advance(101)
    store.get("A")
    assert rotations == [("a1", "a2")]


def test_invalidate_during_a_load_drops_that_load(clock: FakeClock) -> None:
    """A load that began before invalidate(name) returns to its caller but is not cached."""
    backend = GatedBackend({"A": "a1"})
    store = store_with(backend, clock)
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(store.get("A").reveal()))
    reader.start()
    assert backend.entered.wait(5)
    store.invalidate("A")
    backend.gate.set()
    reader.join(5)
    assert result == ["a1"]
    assert "A" not in store._entries


def test_a_hung_refresh_does_not_hold_back_another_backends_refresh(clock: FakeClock) -> None:
    """A refresh stuck in one backend leaves later refreshes of other keys free to run."""
    hung = GatedBackend({"H": "h-1"}, scheme="hung")
    other = MemoryBackend({"O": "o-1"}, scheme="other")
    store = SecretStore([], reference_backends=[hung, other], ttl=100, jitter=0.0, clock=clock)
    hung.gate.set()
    store.get("hung://H")
    store.get("other://O")
    hung.gate.clear()
    hung.entered.clear()
    clock.advance(85)  # both in their refresh window
    store.get("hung://H")
    assert hung.entered.wait(5)  # its refresh now hangs in the backend
    other.set("O", "o-2")
    store.get("other://O")
    deadline = time.monotonic() + 5
    while store.get("other://O").reveal() != "o-2" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.get("other://O").reveal() == "o-2"
    hung.gate.set()
    assert store.wait_idle(5)
