"""One backend call: its lane and total deadline, the fetch observers told, its errors sealed.

A local backend is called inline; a remote one on its lane (at most ``concurrency`` calls
at once), and the caller stops waiting at the deadline. Whatever the backend raises comes
out as a secretkit error naming the secret and backend, with no backend frame attached.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .. import _events
from .._backend import BackendTraits, Fetched
from .._errors import AccessDenied, BackendUnavailable, SecretkitError, SecretNotFound, copied, shown
from .._events import Outcome
from .._refs import SecretRef
from .runner import Call, DeadlineExceeded, Runner
from .sealing import scrubbed, sealed, wrapped

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_DEADLINE", "Calls", "observed"]

log = logging.getLogger("secretkit")
T = TypeVar("T")

#: The default total deadline of one backend call (login and look-ups included), seconds.
DEFAULT_DEADLINE = 5.0
#: The default number of calls in flight at once per backend.
DEFAULT_CONCURRENCY = 8


class Calls:
    """The lanes of one store's backends and the way every call to them is made."""

    def __init__(self, deadline: float, concurrency: int) -> None:
        if deadline <= 0:
            raise ValueError("deadline must be > 0 seconds")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.deadline = deadline
        self.concurrency = concurrency
        self._after_fork()

    def _after_fork(self) -> None:
        # A lane's workers are the parent's threads: a child starts with none.
        self._lock = threading.Lock()
        self.lanes: dict[str, Runner] = {}

    def fetch(self, backend: BackendTraits, ref: SecretRef, name: str, reason: str) -> Fetched:
        """``backend.fetch(ref)`` for the secret ``name``; every failure a secretkit error."""
        error: SecretkitError
        scheme = backend.scheme
        try:
            if backend.local:
                fetched = observed(scheme, (name,), reason, backend.backend.fetch, ref)
            else:
                fetched = self.remote(backend, (name,), reason, backend.backend.fetch, ref)
        except DeadlineExceeded:
            error = self.late(backend, name)
        except SecretNotFound as exc:
            error = SecretNotFound(name, backends=[scheme], detail=exc.detail)
        except SecretkitError as exc:
            error = sealed(wrapped(exc, name, scheme))
        except Exception as exc:
            error = wrapped(exc, name, scheme)
            error.__cause__ = scrubbed(sealed(exc))
        else:
            if not isinstance(fetched, Fetched):
                raise BackendUnavailable(
                    f"secret {shown(name)}: the {scheme} backend returned {type(fetched).__name__}, "
                    "not Fetched; this is a bug in the backend"
                )
            return fetched
        # Raised here, outside the except blocks, so no __context__ keeps the backend's frames.
        raise error

    def fetch_many(
        self, backend: BackendTraits, refs: list[SecretRef], names: Sequence[str], reason: str
    ) -> Mapping[SecretRef, Fetched | Exception]:
        """``backend.fetch_many(refs)`` on its lane; raises as the backend (or the deadline) did."""
        assert backend.fetch_many is not None
        return self.remote(backend, names, reason, backend.fetch_many, refs)

    def failed_batch(self, backend: BackendTraits, exc: Exception, name: str) -> SecretkitError:
        """What a whole batch's failure means for one of its secrets."""
        if isinstance(exc, DeadlineExceeded):
            return self.late(backend, name)
        if isinstance(exc, SecretkitError):
            return wrapped(copied(exc), name, backend.scheme)
        err = wrapped(exc, name, backend.scheme)
        err.__cause__ = scrubbed(sealed(exc))
        return err

    def remote(
        self, backend: BackendTraits, names: Sequence[str], reason: str, fn: Callable[[Any], T], arg: Any
    ) -> T:
        """``fn(arg)`` on the backend's lane; ``DeadlineExceeded`` once its deadline passes."""
        call: Call[T] = self.lane(backend).submit(observed, backend.scheme, names, reason, fn, arg)
        return call.result(self.deadline_of(backend))

    def lane(self, backend: BackendTraits) -> Runner:
        lane = self.lanes.get(backend.scheme)
        if lane is None:
            with self._lock:
                lane = self.lanes.get(backend.scheme)
                if lane is None:
                    workers = backend.concurrency or self.concurrency
                    lane = self.lanes[backend.scheme] = Runner(workers, f"secretkit-{backend.scheme}")
        return lane

    def deadline_of(self, backend: BackendTraits) -> float:
        return float(backend.deadline or self.deadline)

    def late(self, backend: BackendTraits, name: str) -> BackendUnavailable:
        err = BackendUnavailable(
            f"secret {shown(name)}: the {backend.scheme} backend did not answer within the "
            f"{self.deadline_of(backend):g} s deadline; check that it is reachable, or raise "
            f"SecretStore(deadline=...) (or the backend's own deadline) if it is slow"
        )
        err.name, err.backend = name, backend.scheme
        return err

    def close(self) -> None:
        with self._lock:
            lanes = list(self.lanes.values())
        for lane in lanes:
            lane.close()


def observed(scheme: str, names: Sequence[str], reason: str, fn: Callable[[Any], T], arg: Any) -> T:
    """``fn(arg)``, told to every installed fetch observer (telemetry, audit)."""
    if not _events.observers:
        return fn(arg)
    spans = []
    for observer in list(_events.observers):
        try:
            spans.append(observer.start(scheme, names, reason))
        except Exception:
            log.warning("secretkit: fetch observer %r failed", observer, exc_info=True)
    try:
        result = fn(arg)
    except BaseException as exc:
        outcome: Outcome = (
            "not_found"
            if isinstance(exc, SecretNotFound)
            else "denied"
            if isinstance(exc, AccessDenied)
            else "error"
        )
        _end_spans(spans, outcome, None, exc)
        raise
    _end_spans(spans, "loaded", result.version if isinstance(result, Fetched) else None, None)
    return result


def _end_spans(spans: list[Any], outcome: Outcome, version: str | None, error: BaseException | None) -> None:
    for span in spans:
        try:
            span.end(outcome, version, error)
        except Exception:
            log.warning("secretkit: fetch observer span %r failed", span, exc_info=True)
