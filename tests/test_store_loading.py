"""Loading on its own: single flight and what a load's outcome does to the records.

The loader is built from its rooms (records, policy, resolution) with a fake clock, no store.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from secretkit import BackendUnavailable, SecretNotFound, SecretRef, TimePolicy
from secretkit._backend import Fetched
from secretkit._store.calls import Calls
from secretkit._store.loading import Loader
from secretkit._store.observing import Observing
from secretkit._store.progress import Flight, Progress
from secretkit._store.records import Records
from secretkit._store.resolving import Resolver
from secretkit.backends import MemoryBackend
from secretkit.testing import FakeClock


class Rooms:
    """A loader and the rooms it works with, over one memory backend."""

    def __init__(self, backend: MemoryBackend, clock: FakeClock, **timing: Any) -> None:
        timing.setdefault("ttl", 100.0)
        timing.setdefault("jitter", 0.0)
        timing.setdefault("max_stale", 50.0)
        self.policy = TimePolicy(**timing)
        self.observing = Observing()
        self.records = Records(max_size=100)
        self.progress = Progress()
        resolver = Resolver([backend], (), None, 100, Calls(5.0, 8), self.observing)
        self.loader = Loader(self.progress, self.records, self.policy, self.observing, resolver, clock)

    def load(self, name: str) -> Any:
        return self.loader.start(name, "miss", inline=True)


def test_a_load_is_held_until_the_policy_says_and_counted_once(clock: FakeClock) -> None:
    """A completed load is kept with the policy's instants; its flight is gone."""
    rooms = Rooms(MemoryBackend({"K": "v"}), clock)
    assert rooms.load("K").reveal() == "v"
    held = rooms.records.held["K"]
    assert (held.refresh_at, held.expires_at, held.stale_until) == (
        clock.now + 80,
        clock.now + 100,
        clock.now + 150,
    )
    assert rooms.progress.flights == {}
    assert rooms.observing.count("memory").misses == 1


def test_a_reader_that_comes_while_a_key_loads_joins_that_load(clock: FakeClock) -> None:
    """Single flight: a second start of a key being loaded gets its flight, and no second fetch."""
    backend = MemoryBackend({"K": "v"})
    rooms = Rooms(backend, clock)
    (flight,) = rooms.loader.claim(["K"]).values()
    joined = rooms.loader.start("K", "miss", inline=True)
    assert joined is flight
    assert backend.calls == 0


def test_a_failed_refresh_serves_the_held_value_until_max_stale_then_says_when_it_ran_out(
    clock: FakeClock,
) -> None:
    """Stale-if-error: an outage keeps the last good value within max_stale, then surfaces with its age."""
    backend = MemoryBackend({"K": "v"})
    rooms = Rooms(backend, clock)
    rooms.load("K")
    backend.fail(ConnectionError("down"))
    clock.advance(120)
    assert rooms.loader.start("K", "refresh", inline=True).reveal() == "v"
    held = rooms.records.held["K"]
    assert held.streak == 1 and held.retry_at > clock.now
    assert isinstance(held.last_error, BackendUnavailable)
    clock.advance(40)  # past stale_until (150 s after the load)
    with pytest.raises(BackendUnavailable, match="last good value"):
        rooms.loader.start("K", "refresh", inline=True)


def test_not_found_is_remembered_for_negative_ttl_and_an_outage_for_its_backoff(clock: FakeClock) -> None:
    """A key with no value remembers why: absence for negative_ttl, an outage for one backoff step."""
    backend = MemoryBackend({})
    rooms = Rooms(backend, clock, negative_ttl=5.0, rng=lambda: 0.0)
    with pytest.raises(SecretNotFound):
        rooms.load("GONE")
    assert rooms.records.failed["GONE"].until == clock.now + 5.0
    backend.fail(ConnectionError("down"))
    with pytest.raises(BackendUnavailable):
        rooms.load("DOWN")
    failed = rooms.records.failed["DOWN"]
    assert failed.streak == 1 and failed.until == clock.now + 0.5


def test_an_invalidated_load_answers_its_readers_but_keeps_nothing(clock: FakeClock) -> None:
    """A load begun before invalidate() must not put back what invalidate() forgot."""
    rooms = Rooms(MemoryBackend({"K": "v"}), clock)
    (flight,) = rooms.loader.claim(["K"]).values()
    flight.invalidated = True
    assert rooms.loader.lead("K", flight, "miss").reveal() == "v"
    assert "K" not in rooms.records.held


def test_an_interrupted_load_ends_its_flight_so_no_reader_waits_forever(clock: FakeClock) -> None:
    """A KeyboardInterrupt in the leader is re-raised, and the key's readers get an error, not a hang."""

    class Interrupting(MemoryBackend):
        local = True  # called inline, in the leader's own thread

        def fetch(self, ref: SecretRef) -> Fetched:
            raise KeyboardInterrupt

    rooms = Rooms(Interrupting({"K": "v"}), clock)
    (flight,) = rooms.loader.claim(["K"]).values()
    waiter: list[BaseException] = []

    def wait() -> None:
        try:
            flight.wait(5)
        except BaseException as exc:
            waiter.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    with pytest.raises(KeyboardInterrupt):
        rooms.loader.lead("K", flight, "miss")
    thread.join(5)
    assert isinstance(waiter[0], BackendUnavailable)
    assert rooms.progress.flights == {}


def test_a_flight_gives_each_waiter_its_own_copy_of_the_error() -> None:
    """One error instance raised in many threads would collect every caller's frames."""
    flight = Flight()
    flight.finish(None, BackendUnavailable("down"))
    with pytest.raises(BackendUnavailable) as first:
        flight.wait()
    with pytest.raises(BackendUnavailable) as second:
        flight.wait()
    assert first.value is not second.value
