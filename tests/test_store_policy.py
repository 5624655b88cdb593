"""The time policy on its own: what a read does at a given instant, and how long a load holds.

No store and no clock: the policy is asked with plain numbers, as a store asks it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from secretkit import BackendUnavailable, Secret, SecretNotFound, SecretStore, TimePolicy
from secretkit._store.policy import FETCH, FRESH, RAISE, SERVE, SERVE_AND_REFRESH
from secretkit._store.records import Failed, Held
from secretkit.backends import MemoryBackend
from secretkit.testing import FakeClock


def policy(**kw: Any) -> TimePolicy:
    kw.setdefault("ttl", 100.0)
    kw.setdefault("jitter", 0.0)
    kw.setdefault("max_stale", 50.0)
    return TimePolicy(**kw)


def held_at(p: TimePolicy, loaded_at: float, **kw: Any) -> Held:
    times = p.held(loaded_at, backend_ttl=kw.pop("backend_ttl", None), local=False, variable=False)
    return Held(Secret("K", "v", source="memory"), "memory", loaded_at, *times)


def test_a_value_before_its_refresh_ahead_point_is_fresh_and_after_it_is_served_and_refreshed() -> None:
    """Within 80 % of its life a value is the answer; past it, it is served while one refresh starts."""
    p = policy()
    held = held_at(p, 0.0)
    assert p.of_held(held, 79.9, loading=False, queued=False) == FRESH
    assert p.of_held(held, 80.0, loading=False, queued=False) == SERVE_AND_REFRESH


def test_a_reader_never_waits_on_a_refresh_that_is_begun() -> None:
    """Past its life, a value whose refresh is queued or in flight is served at once, up to max_stale."""
    p = policy()
    held = held_at(p, 0.0)
    assert p.of_held(held, 120.0, loading=False, queued=True) == SERVE_AND_REFRESH
    assert p.of_held(held, 120.0, loading=True, queued=False) == SERVE_AND_REFRESH
    # Nobody read it in its refresh-ahead window and nothing is begun: the reader fetches.
    assert p.of_held(held, 120.0, loading=False, queued=False) == FETCH
    # Past max_stale nothing is served, however the refresh is doing.
    assert p.of_held(held, 150.0, loading=True, queued=True) == FETCH


def test_a_value_in_backoff_is_served_without_starting_another_refresh() -> None:
    """A failing backend is not asked again before the key's backoff step ends."""
    p = policy()
    held = held_at(p, 0.0)
    held.last_error, held.retry_at = BackendUnavailable("down"), 110.0
    assert p.of_held(held, 105.0, loading=False, queued=False) == SERVE
    assert p.of_held(held, 110.0, loading=False, queued=False) == SERVE_AND_REFRESH


def test_past_max_stale_a_just_failed_key_raises_and_is_probed_again_after_the_interval() -> None:
    """A dead backend sees a few attempts a second per key, and recovery is seen within one interval."""
    p = policy(probe_interval=0.1)
    held = held_at(p, 0.0)
    held.last_error, held.attempted_at = BackendUnavailable("down"), 200.0
    assert p.of_held(held, 200.05, loading=False, queued=False) == RAISE
    assert p.of_held(held, 200.10, loading=False, queued=False) == FETCH
    # Someone is already asking: join that load rather than raise the old error.
    assert p.of_held(held, 200.05, loading=True, queued=False) == FETCH


def test_a_remembered_failure_is_the_answer_until_it_expires_or_an_outage_is_probed() -> None:
    """Not-found is remembered for its whole time; an outage is probed every probe interval."""
    p = policy(probe_interval=0.1)
    missing = Failed(SecretNotFound("K"), until=5.0, streak=0, attempted_at=0.0)
    assert p.of_failed(missing, 4.9, loading=False) == RAISE
    assert p.of_failed(missing, 5.0, loading=False) == FETCH
    outage = Failed(BackendUnavailable("down"), until=10.0, streak=1, attempted_at=0.0)
    assert p.of_failed(outage, 0.05, loading=False) == RAISE
    assert p.of_failed(outage, 0.1, loading=False) == FETCH


def test_a_backend_ttl_caps_both_life_and_staleness() -> None:
    """A lease of 10 s is neither cached nor served stale past 10 s, whatever ttl and max_stale say."""
    p = policy(ttl=300.0, max_stale=3600.0)
    refresh_at, expires_at, stale_until = p.held(0.0, backend_ttl=10.0, local=False, variable=False)
    assert (refresh_at, expires_at, stale_until) == (8.0, 10.0, 10.0)


def test_jitter_only_shortens_a_life() -> None:
    """ttl stays an upper bound on staleness; the floor keeps a short ttl from refreshing back to back."""
    assert policy(jitter=0.1, rng=lambda: 1.0).life(None) == pytest.approx(90.0)
    assert policy(jitter=0.1, rng=lambda: 0.0).life(None) == 100.0


def test_a_variable_lives_as_long_as_it_is_unchanged_and_a_file_until_its_next_look() -> None:
    """The environment's value never expires by time; a local file's is re-read every local_recheck."""
    p = policy(local_recheck=1.0)
    assert p.held(0.0, backend_ttl=None, local=True, variable=True) == (math.inf, math.inf, math.inf)
    assert p.held(0.0, backend_ttl=None, local=True, variable=False) == (1.0, 1.0, 1.0)


def test_a_local_miss_is_looked_at_again_as_often_as_a_present_file_is_reread() -> None:
    """A secret file may appear at any moment: its absence is remembered no longer than a re-read."""
    p = policy(negative_ttl=5.0, local_recheck=1.0)
    assert p.negative_until(0.0, local=True) == 1.0
    assert p.negative_until(0.0, local=False) == 5.0


def test_backoff_doubles_up_to_its_cap_and_is_half_random() -> None:
    """Retries spread across a fleet, yet never come at once and never wait past the cap."""
    low = policy(backoff_base=1.0, backoff_max=60.0, rng=lambda: 0.0)
    high = policy(backoff_base=1.0, backoff_max=60.0, rng=lambda: 1.0)
    assert [low.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert high.backoff(40) == 60.0


def test_a_store_takes_a_policy_object_and_refuses_one_given_twice(clock: FakeClock) -> None:
    """policy= replaces the timing keywords; both at once would leave one silently ignored."""
    p = policy(ttl=42.0)
    store = SecretStore([MemoryBackend()], policy=p, clock=clock)
    assert store.ttl == 42.0 and store.policy is p
    with pytest.raises(TypeError, match="ttl"):
        SecretStore([MemoryBackend()], policy=p, ttl=5.0)


def test_a_policy_subclass_decides_for_the_store(clock: FakeClock) -> None:
    """A policy whose values expire when loaded makes every read a fetch: the store asks, not assumes."""

    class NoCache(TimePolicy):
        def held(
            self, now: float, *, backend_ttl: float | None, local: bool, variable: bool
        ) -> tuple[float, float, float]:
            return now, now, now

    backend = MemoryBackend({"K": "v"})
    store = SecretStore([backend], policy=NoCache(), clock=clock)
    for _ in range(3):
        assert store.get("K").reveal() == "v"
    assert backend.calls == 3
