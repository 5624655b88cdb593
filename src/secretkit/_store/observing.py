"""Who is told what about one store: access listeners, rotation subscribers, counters and stats.

Below the loading and resolution rooms: they call ``emit``/``count``/``rotated`` here to
tell, and nothing here calls back into them. The process-wide fetch observers (telemetry,
audit) are told by ``calls.py``, around each backend call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import shown
from .._events import AccessEvent, AccessListener, Counters, Outcome, failure_types, outcome_of, wants_hits
from .._lazylog import log
from .._secret import Secret
from .progress import Progress
from .records import Records

__all__ = ["Observing", "RotateCallback"]


RotateCallback = Callable[[Secret[Any], Secret[Any]], object]


class Observing:
    """A store's listeners, subscribers and counters; the store's lock guards the subscribers."""

    def __init__(self) -> None:
        self.listeners: list[AccessListener] = []
        # The listeners told about cache hits: an audit trail that samples none costs a hit nothing.
        self.hit_listeners: list[AccessListener] = []
        self.subscribers: dict[str, list[RotateCallback]] = {}
        self.counters: dict[str, Counters] = {}

    def add_listener(self, listener: AccessListener, hits: bool | None = None) -> Callable[[], None]:
        self.listeners.append(listener)
        if wants_hits(listener, hits):
            self.hit_listeners.append(listener)

        def remove() -> None:
            for listeners in (self.listeners, self.hit_listeners):
                if listener in listeners:
                    listeners.remove(listener)

        return remove

    def subscribe(self, name: str, callback: RotateCallback, progress: Progress) -> Callable[[], None]:
        """Add a rotation subscriber under the store's lock; returns the unsubscriber."""
        subscribers = self.subscribers
        with progress.lock:
            subscribers.setdefault(name, []).append(callback)

        def unsubscribe() -> None:
            with progress.lock:  # read when called: a forked child has rebuilt the lock
                subs = subscribers.get(name, [])
                if callback in subs:
                    subs.remove(callback)

        return unsubscribe

    def count(self, scheme: str) -> Counters:
        counters = self.counters.get(scheme)
        if counters is None:
            counters = self.counters[scheme] = Counters()
        return counters

    def remembered(self, name: str, error: BaseException) -> None:
        """Tell of a read answered by a remembered failure (no backend was asked this time).

        Named as the first answer was (outcome, backend, error): a refusal is a refusal
        every time, and every listener hears of it, as of any refusal; a remembered
        not-found or outage is a cache hit of sorts, told to the listeners of hits.
        """
        outcome = outcome_of(error)
        listeners = self.listeners if outcome == "denied" else self.hit_listeners
        if listeners:
            backend = getattr(error, "backend", None)
            self.emit(name, backend, None, True, 0.0, outcome, error, listeners)

    def emit(
        self,
        name: str,
        backend: str | None,
        version: str | None,
        hit: bool,
        latency: float,
        outcome: Outcome,
        error: BaseException | None = None,
        listeners: list[AccessListener] | None = None,
    ) -> None:
        """Tell ``listeners`` (by default those of hits or of misses, as ``hit`` says) of one access."""
        if listeners is None:
            listeners = self.hit_listeners if hit else self.listeners
        kind, cause = failure_types(error) if error is not None else (None, None)
        event = AccessEvent(name, backend, version, hit, latency, outcome, kind, cause)
        for listener in list(listeners):
            try:
                listener(event)
            except Exception:
                log.warning("secretkit: access listener %r failed", listener, exc_info=True)

    def rotated(self, name: str, old: Secret[Any], new: Secret[Any], callbacks: list[RotateCallback]) -> None:
        for callback in callbacks:
            try:
                callback(old, new)
            except Exception as exc:
                log.warning(
                    "secretkit: on_rotate callback %r for %s raised %s",
                    callback,
                    shown(name),
                    type(exc).__name__,
                )

    def stats(self, records: Records, now: float, loading: int) -> dict[str, Any]:
        """The figures of ``SecretStore.stats()``; call with the store's lock held."""
        empty = {**Counters().as_dict(), "hits": 0}
        retired = records.retired_hits
        per: dict[str, dict[str, Any]] = {}
        for scheme, counters in self.counters.items():
            per[scheme] = {**counters.as_dict(), "hits": retired.get(scheme, 0)}
        for scheme, hits in retired.items():
            if scheme not in per:
                per[scheme] = {**empty, "hits": hits}
        sizes: dict[str, int] = {}
        headroom: float | None = None
        for held in records.held.values():
            row = per.get(held.backend)
            if row is None:
                row = per[held.backend] = dict(empty)
            row["hits"] += held.hits
            sizes[held.backend] = sizes.get(held.backend, 0) + 1
            if held.expires_at <= now < held.stale_until:
                left = held.stale_until - now
                headroom = left if headroom is None or left < headroom else headroom
        total: dict[str, Any] = dict(empty)
        for row in per.values():
            for key, value in row.items():
                total[key] += value
        # ``misses`` by how the read ended ({outcome: count}), per backend and in total.
        missed: dict[str, int] = {}
        for scheme, row in per.items():
            row["size"] = sizes.get(scheme, 0)
            kept = self.counters.get(scheme)
            row["missed"] = by_outcome = dict(kept.missed) if kept is not None else {}
            for outcome, count in by_outcome.items():
                missed[outcome] = missed.get(outcome, 0) + count
        total["missed"] = missed
        total["size"] = len(records.held)
        total["negative"] = len(records.failed)
        total["loading"] = loading
        total["stale_headroom"] = headroom
        total["backends"] = per
        return total
