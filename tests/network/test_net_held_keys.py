"""A reader never waits on the network for a key it holds (issue 11, item 1), on every remote backend.

The value is cached and a read in its refresh-ahead window starts a refresh while the proxy
hangs every response (blackhole) or hands it over a byte per 100 ms (drip): reads keep
returning the held value at once, before and past its TTL while the refresh hangs, and
after the store gave up on it. A read that waited would take the
fetch deadline (1 s here); the bound asserted is half of that, the figures are in
``benchmarks/bench_faults.py``.
"""

from __future__ import annotations

import time

import pytest

from network._remotes import NETWORK_TEST, Remote

pytestmark = NETWORK_TEST

VALUE = "held-value-7f3a"
WAITED = 0.5  # seconds: a read that waited on the network would take the 1 s deadline


@pytest.mark.parametrize(("fault", "amount"), [("blackhole", 0), ("drip", 100)], ids=["blackhole", "drip"])
def test_held_key_is_served_at_once_whatever_the_refresh_does(
    remote: Remote, fault: str, amount: int
) -> None:
    """A held key is returned without waiting while its refresh hangs, past its TTL and past the deadline."""
    ref = remote.secret(VALUE)
    store = remote.store(ttl=0.6, refresh_ahead=0.5, jitter=0.0, max_stale=3600, deadline=1.0)
    try:
        assert store.get(ref).reveal() == VALUE
        remote.proxy.set(fault, amount)  # type: ignore[arg-type]
        time.sleep(0.35)  # in the refresh-ahead window: the next read starts a refresh, which hangs
        took: list[float] = []
        # While the refresh hangs (before and past the TTL), then after the store gave up on it.
        for pause in (0.0, 0.35, 0.2, 0.6, 0.1):
            time.sleep(pause)
            started = time.perf_counter()
            value = store.get(ref).reveal()
            took.append(time.perf_counter() - started)
            assert value == VALUE
        assert max(took) < WAITED, [round(t, 3) for t in took]
    finally:
        remote.proxy.set("pass")
        store.close()


def test_held_key_queued_behind_a_hung_refresh_is_served_at_once(remote: Remote) -> None:
    """A key whose refresh waits behind another key's hung refresh is still served at once once it expires."""
    first, second = remote.secret(VALUE), remote.secret(VALUE)
    store = remote.store(ttl=1.0, refresh_ahead=0.5, jitter=0.0, max_stale=3600, deadline=2.0)
    try:
        store.get(first)
        time.sleep(0.3)
        store.get(second)  # loaded 0.3 s later: due, and expired, 0.3 s after the first
        remote.proxy.set("blackhole")
        time.sleep(0.25)
        store.get(first)  # 0.55 s: starts the first refresh, which hangs for the 2 s deadline
        time.sleep(0.3)
        store.get(second)  # 0.85 s: the second key's refresh is asked for while the first hangs
        time.sleep(0.55)  # 1.4 s: the second key has expired; its refresh has not run yet
        started = time.perf_counter()
        assert store.get(second).reveal() == VALUE
        took = time.perf_counter() - started
        assert took < WAITED, f"the held key waited {took:.2f} s"
    finally:
        remote.proxy.set("pass")
        store.close()


def test_held_keys_are_served_at_once_while_many_refreshes_hang(remote: Remote) -> None:
    """Six keys coming due one after another, each refresh hanging, are all served at once past their TTL."""
    refs = []
    store = remote.store(ttl=1.0, refresh_ahead=0.5, jitter=0.0, max_stale=3600, deadline=2.0)
    try:
        for i in range(6):
            refs.append(remote.secret(f"{VALUE}-{i}"))
            store.get(refs[-1])
            time.sleep(0.05)  # each comes due (and expires) 50 ms after the one before
        remote.proxy.set("blackhole")
        worst, until = 0.0, time.perf_counter() + 1.4  # past every key's expiry, inside the deadline
        while time.perf_counter() < until:
            for ref in refs:
                started = time.perf_counter()
                store.get(ref)
                worst = max(worst, time.perf_counter() - started)
            time.sleep(0.02)
        assert worst < WAITED, f"a held key waited {worst:.2f} s"
    finally:
        remote.proxy.set("pass")
        store.close()


def test_due_keys_are_refreshed_concurrently(remotes: object) -> None:
    """Eight expired Vault keys (no batch API) refresh together, not one round trip after another."""
    from collections.abc import Callable

    get_remote: Callable[[str], Remote] = remotes  # type: ignore[assignment]
    remote = get_remote("vault")
    refs = [remote.secret(f"due-{i}") for i in range(8)]
    store = remote.store(ttl=1.0, refresh_ahead=0.5, jitter=0.0, max_stale=3600, deadline=5.0)
    try:
        store.prefetch(refs)
        remote.proxy.set("latency", 300)
        time.sleep(0.6)  # every key is due (past refresh-ahead) and none has expired
        started = time.perf_counter()
        for ref in refs:
            assert store.get(ref).reveal().startswith("due-")  # at once; the refresh is queued
        assert store.wait_idle(timeout=10)
        took = time.perf_counter() - started
        # One after another: 8 x 300 ms = 2.4 s at least. Concurrently: a few round trips.
        assert took < 1.5, f"refreshing 8 due keys took {took:.2f} s"
    finally:
        remote.proxy.set("pass")
        store.close()
